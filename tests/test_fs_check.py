"""``dsv://`` checked from outside (issue 11 review): fsspec conventions, odd paths, failures, recompute.

Every read is compared with bytes this file wrote itself (and with a checkout),
and every failure must be an ``OSError`` naming what was asked for.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sys
from pathlib import Path

import fsspec
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import dsv  # noqa: E402
from dsv.api.fs import DsvFileSystem  # noqa: E402
from faultutil import ok, read_tree, run_dsv, write_files  # noqa: E402


@pytest.fixture
def small_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    write_files(root, {"labels.csv": b"id,label\n1,cat\n", "team@/a.txt": b"at", "data/x.bin": b"x" * 100})
    dsv.Repo.init(root).commit("v1")
    monkeypatch.setenv("DSV_CACHE_DIR", str(tmp_path / "cache"))
    return root


def test_a_folder_whose_name_ends_in_at_is_a_path_not_a_location(small_repo: Path) -> None:
    fs = DsvFileSystem(repo=str(small_repo), rev="HEAD", skip_instance_cache=True)
    assert fs.cat("team@/a.txt") == b"at"
    assert fs.info("team@/a.txt")["size"] == 2
    assert fs.exists("team@/a.txt")
    assert fsspec.open(f"dsv://HEAD@{small_repo}/team@/a.txt").open().read() == b"at"


def test_modified_is_the_commit_time_and_duckdb_reads_parquet(small_repo: Path, tmp_path: Path) -> None:
    import datetime as dt

    duckdb = pytest.importorskip("duckdb")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1, 2, 3]}), small_repo / "t.parquet")
    repo = dsv.Repo(small_repo)
    repo.commit("v2")
    fs = DsvFileSystem(repo=str(small_repo), rev="HEAD", skip_instance_cache=True)
    when = fs.modified("t.parquet")
    assert isinstance(when, dt.datetime) and when.tzinfo is not None
    assert when == repo.log(limit=1)[0].commit.time
    with pytest.raises(FileNotFoundError, match="nope"):
        fs.modified("nope")
    con = duckdb.connect()
    con.register_filesystem(fs)
    assert con.sql("select sum(a) from read_parquet('dsv://HEAD/t.parquet')").fetchall() == [(6,)]


def test_a_missing_local_repository_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        DsvFileSystem(repo=str(tmp_path / "nowhere"), rev="HEAD", skip_instance_cache=True)


def test_listing_from_a_remote_that_disappeared_raises_oserror(small_repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    repo = dsv.Repo(small_repo)
    repo.add_remote("o", str(remote))
    repo.push("o", all_branches=True)
    os.chdir(tmp_path)
    fs = DsvFileSystem(repo=str(remote), rev="main", skip_instance_cache=True)
    shutil.rmtree(remote)
    # What is already held may still be listed; anything that needs the remote fails as an OSError.
    for call in (lambda: fs.find(""), lambda: fs.ls("data"), lambda: fs.info("labels.csv")):
        try:
            call()
        except OSError as err:
            assert "main" in str(err)
    with pytest.raises(OSError, match="main"):
        fs.cat("labels.csv")


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_random_histories_read_through_dsv_equal_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random trees, random edits over several commits: every file at every revision, local and
    from a folder remote, equals the bytes of a checkout of that revision (hashed here)."""
    rng = random.Random(11)
    root = tmp_path / "repo"
    root.mkdir()
    names = ["a", "a.b/c", "a b/#1?.txt", "ü/ç@x", "deep/er/f.bin", "e", "zero"] + [f"d{i % 3}/f{i}.bin" for i in range(12)]
    files: dict[str, bytes] = {}
    repo = dsv.Repo.init(root)
    commits: list[str] = []
    for step in range(4):
        for name in rng.sample(names, 6):
            if name in files and rng.random() < 0.3:
                del files[name]
                os.remove(root / name)
            else:
                files[name] = b"" if name == "zero" else rng.randbytes(rng.choice([1, 100, 5000]))
        write_files(root, files)
        commits.append(repo.commit(f"step {step}").id)
    remote = tmp_path / "remote"
    repo.add_remote("o", str(remote))
    repo.push("o", all_branches=True)
    monkeypatch.setenv("DSV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    for i, cid in enumerate(commits):
        ok(run_dsv(root, "checkout", "-f", cid))
        want = {p: _sha(b) for p, b in read_tree(root).items() if not p.startswith(".dsv")}
        for where in (str(root), str(remote)):
            for rev in (cid, cid[:10], f"main~{len(commits) - 1 - i}"):
                fs = DsvFileSystem(repo=where, rev=rev, skip_instance_cache=True)
                got = {p: _sha(fs.cat(p)) for p in fs.find("")}
                assert got == want, (where, rev)
                assert {p: fs.size(p) for p in got} == {p: (root / p).stat().st_size for p in want}


def test_a_damaged_cache_heals_from_the_remote(small_repo: Path, tmp_path: Path) -> None:
    """A truncated pack in the cache of a remote: the good copies are fetched again, never wrong bytes."""
    import glob

    rng = random.Random(3)
    files = {f"s/{i}.bin": rng.randbytes(rng.randint(1, 3000)) for i in range(8)}
    files["big.bin"] = rng.randbytes(9 * 1024 * 1024)  # chunked
    write_files(small_repo, files)
    repo = dsv.Repo(small_repo)
    repo.commit("v2")
    remote = tmp_path / "remote"
    repo.add_remote("o", str(remote))
    repo.push("o", all_branches=True)
    os.chdir(tmp_path)
    cache = tmp_path / "c"
    fs = DsvFileSystem(repo=str(remote), rev="main", cache=str(cache), skip_instance_cache=True)
    assert all(fs.cat(p) == b for p, b in files.items())
    packs = glob.glob(str(cache / "objects" / "**" / "pack-*.pack"), recursive=True)
    assert packs
    for p in packs:
        with open(p, "r+b") as f:
            f.truncate(os.path.getsize(p) // 2)
    fs = DsvFileSystem(repo=str(remote), rev="main", cache=str(cache), skip_instance_cache=True)
    assert {p: fs.cat(p) == b for p, b in files.items()} == {p: True for p in files}
    assert fs.cat_file("big.bin", 5_000_000, 5_000_100) == files["big.bin"][5_000_000:5_000_100]


def test_a_cache_that_is_a_file_names_the_revision_and_the_cache(tmp_path: Path) -> None:
    # cache= pointing at a file raised NotADirectoryError naming only the path.
    root = tmp_path / "origin"
    root.mkdir()
    (root / "a.txt").write_bytes(b"a\n")
    repo = dsv.Repo.init(root)
    repo.commit("one")
    repo.add_remote("origin", str(tmp_path / "remote"))
    repo.push("origin", all_branches=True)
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match=r"dsv://main: cannot use .*not-a-folder as the cache"):
        DsvFileSystem(repo=str(tmp_path / "remote"), rev="main", cache=str(blocker), skip_instance_cache=True)
