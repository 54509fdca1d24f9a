"""``dsv://``: every version readable through fsspec by pandas, pyarrow and polars (issue 11).

The bytes read through ``dsv://`` are compared with the bytes a real checkout of
the same revision writes, and reads of big files are counted at the store.
"""

from __future__ import annotations

import io
import os
import random
import sys
from hashlib import md5
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from fsspec.tests.abstract import AbstractFixtures
from fsspec.tests.abstract.get import AbstractGetTests

sys.path.insert(0, os.path.dirname(__file__))

import dsv  # noqa: E402
import dsv.base.hashing  # noqa: E402
from dsv.api.fs import DsvFileSystem  # noqa: E402
from faultutil import ok, read_tree, run_dsv, write_files  # noqa: E402


@pytest.fixture
def versions(tmp_path: Path) -> tuple[Path, dict[str, bytes], dict[str, bytes]]:
    """A repository with tags v1 and v2: CSV, Parquet (big enough to be chunked) and images."""
    root = tmp_path / "repo"
    rng = random.Random(4)
    n = 400_000
    table = pa.table(
        {
            "id": list(range(n)),
            "label": [rng.choice(["cat", "dog", "bird"]) for _ in range(n)],
            "score": [rng.random() for _ in range(n)],
            "note": [f"sample {i} {rng.random()}" for i in range(n)],
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=50_000)
    v1 = {
        "labels.csv": b"id,label\n1,cat\n2,dog\n",
        "data/train.parquet": buf.getvalue(),
        **{f"images/cat/{i:03d}.png": rng.randbytes(500) for i in range(5)},
        **{f"images/dog/{i:03d}.png": rng.randbytes(500) for i in range(3)},
    }
    assert len(v1["data/train.parquet"]) > 8 * 1024 * 1024
    write_files(root, v1)
    repo = dsv.Repo.init(root)
    repo.commit("v1")
    repo.create_tag("v1")
    v2 = dict(v1)
    v2["labels.csv"] = b"id,label\n1,cat\n2,cat\n3,bird\n"
    v2["images/bird/000.png"] = rng.randbytes(700)
    write_files(root, v2)
    repo.commit("v2")
    repo.create_tag("v2")
    return root, v1, v2


def test_pandas_pyarrow_and_polars_read_what_a_checkout_writes(versions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd
    import polars as pl

    root, v1, v2 = versions
    ok(run_dsv(root, "checkout", "v1"))
    checked_out = read_tree(root)
    assert checked_out == v1
    opts = {"repo": str(root)}
    assert pd.read_csv("dsv://v1/labels.csv", storage_options=opts).equals(pd.read_csv(root / "labels.csv"))
    assert pd.read_csv("dsv://v2/labels.csv", storage_options=opts).shape == (3, 2)
    assert pd.read_parquet("dsv://v1/data/train.parquet", storage_options=opts).equals(pd.read_parquet(root / "data/train.parquet"))
    # polars reads fsspec files (its own URL handling knows only cloud schemes).
    with fsspec.open("dsv://v2/labels.csv", "rb", **opts) as f:
        assert pl.read_csv(f)["label"].to_list() == ["cat", "cat", "bird"]
    with fsspec.open("dsv://v1/data/train.parquet", "rb", **opts) as f:
        assert pl.read_parquet(f).shape == (400_000, 4)
    fs = DsvFileSystem(repo=str(root), rev="v1")
    assert ds.dataset("data/", filesystem=fs, format="parquet").to_table().equals(pq.read_table(root / "data/train.parquet"))
    # The repository found along the path, and the current folder as the default.
    assert pd.read_csv(f"dsv://v2@{root}/labels.csv").shape == (3, 2)
    monkeypatch.chdir(root / "images")
    with fsspec.open("dsv://v2/images/bird/000.png", "rb") as f:
        assert f.read() == v2["images/bird/000.png"]
    with fsspec.open("dsv://v2~1/labels.csv", "rb") as f:
        assert f.read() == v1["labels.csv"]


def test_listing_and_metadata(versions) -> None:
    root, v1, v2 = versions
    fs = fsspec.filesystem("dsv", repo=str(root), rev="v2", skip_instance_cache=True)
    assert sorted(fs.ls("", detail=False)) == ["data", "images", "labels.csv"]
    assert sorted(fs.ls("images", detail=False)) == ["images/bird", "images/cat", "images/dog"]
    info = fs.info("labels.csv")
    assert info["type"] == "file" and info["size"] == len(v2["labels.csv"])
    assert fs.info("images")["type"] == "directory"
    assert sorted(fs.find("images/cat")) == sorted(p for p in v2 if p.startswith("images/cat/"))
    assert sorted(fs.glob("images/*/000.png")) == ["images/bird/000.png", "images/cat/000.png", "images/dog/000.png"]
    assert fs.exists("images/bird/000.png") and not fs.exists("images/fish")
    walked = {d: sorted(files) for d, _, files in fs.walk("images")}
    assert walked["images/dog"] == ["000.png", "001.png", "002.png"]
    assert fs.cat_file("labels.csv", start=3, end=8) == v2["labels.csv"][3:8]
    assert fs.cat_file("labels.csv", start=-5) == v2["labels.csv"][-5:]
    old = fsspec.filesystem("dsv", repo=str(root), rev="v1")
    assert not old.exists("images/bird")


def test_misses_and_writes_raise_what_fsspec_users_expect(versions) -> None:
    root, _, _ = versions
    opts = {"repo": str(root)}
    with pytest.raises(FileNotFoundError, match="nope"):
        fsspec.open("dsv://nope/labels.csv", "rb", **opts).open()
    fs = DsvFileSystem(repo=str(root), rev="v1")
    with pytest.raises(FileNotFoundError, match="v1"):
        fs.info("images/bird/000.png")
    with pytest.raises(FileNotFoundError, match="v1"):
        fs.cat_file("missing.csv")
    with pytest.raises(IsADirectoryError, match="v1"):
        fs.open("images", "rb")
    for action in (lambda: fs.open("x", "wb"), lambda: fs.rm("labels.csv"), lambda: fs.mkdir("new"), lambda: fs.pipe("x", b"y")):
        with pytest.raises(PermissionError, match="read-only"):
            action()
    # A small file opens as an in-memory copy: seekable, and as read-only as the rest.
    with fs.open("labels.csv", "rb") as f:
        assert f.seek(3) == 3 and f.read() == b"label\n1,cat\n2,dog\n" and f.size == 21 and not f.writable()
        with pytest.raises(io.UnsupportedOperation, match="read-only"):
            f.write(b"x")
    assert fs.cat_file("labels.csv") == b"id,label\n1,cat\n2,dog\n"


def test_a_parquet_column_read_reads_a_fraction_of_the_file(versions, monkeypatch: pytest.MonkeyPatch) -> None:
    root, v1, _ = versions
    fs = DsvFileSystem(repo=str(root), rev="v1")
    store = fs._store
    read_bytes = {"n": 0}
    real = store.read

    def counting(oid: str) -> bytes:
        data = real(oid)
        read_bytes["n"] += len(data)
        return data

    monkeypatch.setattr(store, "read", counting)
    real_into = fs._local.read_into

    def counting_into(oid: str, buffer: bytearray) -> memoryview | None:
        view = real_into(oid, buffer)
        read_bytes["n"] += len(view) if view is not None else 0
        return view

    monkeypatch.setattr(fs._local, "read_into", counting_into)
    with fs.open("data/train.parquet", "rb") as f:
        meta = pq.ParquetFile(f).metadata
    assert meta.num_rows == 400_000
    footer_cost = read_bytes["n"]
    with fs.open("data/train.parquet", "rb") as f:
        col = pq.ParquetFile(f).read_row_group(0, columns=["label"])
    assert col.num_rows == 50_000
    size = len(v1["data/train.parquet"])
    assert footer_cost < size / 20, (footer_cost, size)
    assert read_bytes["n"] < size / 4, (read_bytes["n"], size)


def test_a_torch_style_loop_reads_each_object_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    rng = random.Random(7)
    images = {f"img/{i % 10}/{i:05d}.png": rng.randbytes(64) for i in range(2000)}
    write_files(root, images)
    dsv.Repo.init(root).commit("images")
    fs = DsvFileSystem(repo=str(root), rev="HEAD")
    store = fs._store
    seen: list[str] = []
    real = store.read
    monkeypatch.setattr(store, "read", lambda oid: (seen.append(oid), real(oid))[1])
    order = list(images)
    rng.shuffle(order)
    for p in order:  # as a DataLoader with shuffle=True would
        with fs.open(p, "rb") as f:
            assert f.read() == images[p]
    from collections import Counter

    assert max(Counter(seen).values()) == 1, "an object was read twice"
    image_ids = {dsv.base.hashing.hash_bytes(v) for v in images.values()}
    assert image_ids <= set(seen)
    assert len(set(seen) - image_ids) <= 4  # besides the images: only manifest chunks, each once


class TestDsvGet(AbstractFixtures, AbstractGetTests):
    """fsspec's own abstract tests for reading (get) run against a dsv snapshot."""

    @pytest.fixture(scope="class")
    @classmethod
    def fs(cls, tmp_path_factory: pytest.TempPathFactory) -> DsvFileSystem:  # type: ignore[override]
        root = tmp_path_factory.mktemp("abstract") / "repo"
        files: dict[str, bytes] = {}
        for scenario in ("bulk", "glob", "prefix", "hashed"):
            base = f"{scenario}/source"
            if scenario == "bulk":
                for p in ("file1", "file2", "subdir/subfile1", "subdir/subfile2", "subdir/nesteddir/nestedfile"):
                    files[f"{base}/{p}"] = b""
            elif scenario == "glob":
                files[f"{base}/file1"] = files[f"{base}/file2"] = b""
                for i in range(2):
                    for p in ("subfile1", "subfile2", "nesteddir/nestedfile"):
                        files[f"{base}/subdir{i}/{p}"] = b""
            elif scenario == "prefix":
                files[f"{base}/subdir.txt"] = files[f"{base}/subdir/subfile.txt"] = b""
            else:
                for i in range(10):
                    files[f"{base}/{md5(str(i).encode()).hexdigest()}.txt"] = f"{i}".encode()
        write_files(root, files)
        dsv.Repo.init(root).commit("scenarios")
        return DsvFileSystem(repo=str(root), rev="HEAD", skip_instance_cache=True)

    @pytest.fixture
    def fs_join(self):  # type: ignore[override]
        # The suite joins local targets with it too: keep a leading "/".
        return lambda first, *rest: "/".join([first.rstrip("/")] + [p.strip("/") for p in rest if p]).lstrip("/") if not first.startswith("/") else "/".join([first.rstrip("/")] + [p.strip("/") for p in rest if p])

    def test_get_directory_recursive(self, *args, **kwargs):  # type: ignore[override]
        pytest.skip("creates files in the filesystem under test; dsv:// is read-only")

    @pytest.fixture
    def fs_path(self) -> str:  # type: ignore[override]
        return ""

    @pytest.fixture
    def fs_bulk_operations_scenario_0(self, fs):  # type: ignore[override]
        yield "bulk/source"

    @pytest.fixture
    def fs_glob_edge_cases_files(self, fs):  # type: ignore[override]
        yield "glob/source"

    @pytest.fixture
    def fs_dir_and_file_with_same_name_prefix(self, fs):  # type: ignore[override]
        yield "prefix/source"

    @pytest.fixture
    def fs_10_files_with_hashed_names(self, fs):  # type: ignore[override]
        yield "hashed/source"


def test_filesystems_sharing_a_repository_see_commits_made_after_the_first(tmp_path: Path) -> None:
    # Filesystems on one repository share its opened store (and loaded pack indexes) within a process:
    # a commit made after the first filesystem was opened must still be readable by a new one.
    root = tmp_path / "repo"
    write_files(root, {"a.txt": b"one\n"})
    repo = dsv.Repo.init(root)
    repo.commit("one")
    first = DsvFileSystem(repo=str(root), rev="HEAD", skip_instance_cache=True)
    assert first.cat_file("a.txt") == b"one\n"
    write_files(root, {"a.txt": b"two\n", "b.txt": b"new\n"})
    ok(run_dsv(root, "commit", "-m", "two"))  # another process writes new packs
    second = DsvFileSystem(repo=str(root), rev="HEAD", skip_instance_cache=True)
    assert second.cat_file("a.txt") == b"two\n" and second.cat_file("b.txt") == b"new\n"
    assert first.cat_file("a.txt") == b"one\n"  # the first is still its snapshot


def test_verified_bytes_are_shared_by_filesystems_until_cleared(versions, monkeypatch: pytest.MonkeyPatch) -> None:
    # A data loader that makes a filesystem per read (or reads a column every epoch) re-reads and
    # re-hashes nothing it already verified in this process; clear_cache() forgets it all.
    import dsv.api.fs as dsvfs

    root, v1, _ = versions
    first = DsvFileSystem(repo=str(root), rev="v1", skip_instance_cache=True)
    with first.open("data/train.parquet", "rb") as f:
        pq.ParquetFile(f).read_row_group(0, columns=["label"])
    second = DsvFileSystem(repo=str(root), rev="v1", skip_instance_cache=True)
    reads: list[str] = []
    real, real_into = second._store.read, second._local.read_into
    monkeypatch.setattr(second._store, "read", lambda oid: (reads.append(oid), real(oid))[1])
    monkeypatch.setattr(second._local, "read_into", lambda oid, buffer: (reads.append(oid), real_into(oid, buffer))[1])
    with second.open("data/train.parquet", "rb") as f:
        assert pq.ParquetFile(f).read_row_group(0, columns=["label"]).num_rows == 50_000
    assert reads == []
    dsvfs.clear_cache()
    third = DsvFileSystem(repo=str(root), rev="v1", skip_instance_cache=True)
    third.info("data/train.parquet")  # its manifest chunk read again: not what is counted here
    assert third._store is second._store or third._local is not second._local
    monkeypatch.setattr(third._store, "read", lambda oid: (reads.append(oid), real(oid))[1])
    monkeypatch.setattr(third._local, "read_into", lambda oid, buffer: (reads.append(oid), real_into(oid, buffer))[1])
    assert third.cat_file("data/train.parquet", 0, 4) == v1["data/train.parquet"][:4]
    assert reads


def _big_file(root: Path) -> tuple[DsvFileSystem, bytes, str]:
    rng = random.Random(12)
    data = rng.randbytes(9 * 1024 * 1024)
    write_files(root, {"big.bin": data})
    dsv.Repo.init(root).commit("big")
    fs = DsvFileSystem(repo=str(root), rev="HEAD", skip_instance_cache=True)
    return fs, data, fs.info("big.bin")["oid"]


def test_part_of_a_chunk_is_read_in_place_and_a_chunk_asked_again_is_kept_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first read of part of a chunk reads it into a reused buffer (no fresh memory for a whole
    # chunk) and keeps the part; the same part again costs no read; another part of the same chunk
    # reads it whole once, and from then on any part of it is served from memory.
    import dsv.api.fs as dsvfs

    dsvfs.clear_cache()
    fs, data, oid = _big_file(tmp_path / "repo")
    chunks = fs._chunk_map(oid)
    assert chunks is not None and len(chunks) > 20
    lo, hi = chunks.offsets[5], chunks.offsets[6]  # chunk 5, whole
    whole, into = [], []
    real, real_into = fs._store.read, fs._local.read_into
    monkeypatch.setattr(fs._store, "read", lambda oid: (whole.append(oid), real(oid))[1])
    monkeypatch.setattr(fs._local, "read_into", lambda oid, buffer: (into.append(oid), real_into(oid, buffer))[1])
    c5 = chunks.chunk_id(5)
    assert fs.cat_file("big.bin", lo + 10, lo + 100) == data[lo + 10 : lo + 100]
    assert (whole, into) == ([], [c5])
    assert fs.cat_file("big.bin", lo + 10, lo + 100) == data[lo + 10 : lo + 100]
    assert fs.cat_file("big.bin", lo + 20, lo + 90) == data[lo + 20 : lo + 90]  # inside the part kept
    assert (whole, into) == ([], [c5])
    assert fs.cat_file("big.bin", lo + 200, lo + 300) == data[lo + 200 : lo + 300]
    assert (whole, into) == ([c5], [c5])
    for a, b in [(lo, hi), (lo + 1, lo + 2), (hi - 5, hi)]:
        assert fs.cat_file("big.bin", a, b) == data[a:b]
    assert (whole, into) == ([c5], [c5])
    # A range across chunks: whole middle chunks are read whole, the ends in place.
    a, b = chunks.offsets[8] + 7, chunks.offsets[11] + 7
    assert fs.cat_file("big.bin", a, b) == data[a:b]
    assert sorted(whole) == sorted([c5, chunks.chunk_id(9), chunks.chunk_id(10)])
    assert sorted(into) == sorted([c5, chunks.chunk_id(8), chunks.chunk_id(11)])
    # Every read through a file object agrees with the bytes, across the pieces kept.
    rng = random.Random(3)
    with fs.open("big.bin", "rb") as f:
        for _ in range(300):
            start = rng.randrange(len(data))
            n = rng.randrange(1, 300_000)
            f.seek(start)
            assert f.read(n) == data[start : start + n]
    dsvfs.clear_cache()


def test_a_corrupt_chunk_is_never_returned(tmp_path: Path) -> None:
    # A byte flipped in one chunk of a big file: any read touching that chunk raises (and the copy is
    # set aside), reads of other chunks return the right bytes, before and after.
    import dsv.api.fs as dsvfs
    from dsv.store.local import LocalObjectStore

    dsvfs.clear_cache()
    fs, data, oid = _big_file(tmp_path / "repo")
    chunks = fs._chunk_map(oid)
    assert chunks is not None
    bad = chunks.chunk_id(7)
    found = fs._local._find_packed(bytes.fromhex(bad))
    assert found is not None
    pack, row = found
    os.chmod(pack.pack_path, 0o644)
    with open(pack.pack_path, "r+b") as f:
        f.seek(pack.index.offsets[row] + 1000)
        b = f.read(1)
        f.seek(pack.index.offsets[row] + 1000)
        f.write(bytes([b[0] ^ 0x5A]))
    lo = chunks.offsets[7]
    dsvfs.clear_cache()
    fs = DsvFileSystem(repo=str(tmp_path / "repo"), rev="HEAD", skip_instance_cache=True)
    assert fs.cat_file("big.bin", 5, 50) == data[5:50]
    for start, end in [(lo + 2000, lo + 2100), (lo + 10, lo + 20), (lo - 10, lo + 10), (0, len(data))]:
        with pytest.raises(OSError, match=bad):
            fs.cat_file("big.bin", start, end)
    with pytest.raises(OSError):
        with fs.open("big.bin", "rb") as f:
            f.seek(lo + 3000)
            f.read(10)
    assert [q.oid for q in LocalObjectStore(fs._local.root).quarantined()] == [bad]
    assert fs.cat_file("big.bin", chunks.offsets[9] + 1, chunks.offsets[9] + 99) == data[chunks.offsets[9] + 1 : chunks.offsets[9] + 99]
    dsvfs.clear_cache()


def test_a_big_file_reads_by_range_in_a_partial_clone(tmp_path: Path) -> None:
    # A partial clone's store fetches what it lacks from its promisor remote: dsv:// reads a big file
    # it does not hold through that store (chunk list and chunks fetched, verified, on demand).
    rng = random.Random(21)
    big = rng.randbytes(9 * 1024 * 1024)
    root = tmp_path / "src"
    write_files(root, {"big.bin": big, "small.txt": b"s\n"})
    repo = dsv.Repo.init(root)
    repo.commit("one")
    repo.add_remote("o", str(tmp_path / "remote"))
    repo.push("o", all_branches=True)
    clone = dsv.Repo.clone(str(tmp_path / "remote"), tmp_path / "clone", paths=["small.txt"])
    oid = next(f.oid for f in clone.ls("HEAD") if f.path == "big.bin")
    assert not clone.repository.local_store.has(oid)
    fs = DsvFileSystem(repo=str(tmp_path / "clone"), rev="HEAD", skip_instance_cache=True)
    assert type(fs._store).__name__ == "PromisorStore" and fs._local is fs._store.local
    for start, end in [(0, 10), (4_000_000, 4_300_000), (len(big) - 5, len(big))]:
        assert fs.cat_file("big.bin", start, end) == big[start:end]
    assert fs.cat_file("small.txt") == b"s\n"


def test_the_first_path_asked_in_a_manifest_chunk_is_found_by_search(tmp_path: Path) -> None:
    # The first lookup in a manifest chunk binary-searches its table (no dict of every row): every
    # path, looked up first in a fresh process state, must give what a listing gives, and a name
    # that sorts between, before or after files must be missing.
    import dsv.api.fs as dsvfs

    root = tmp_path / "repo"
    rng = random.Random(9)
    files = {f"d{i % 7}/{i:04d}.bin": rng.randbytes(rng.randint(0, 40)) for i in range(3000)}
    files.update({"Z.txt": b"z", "a b.txt": b"ab", "\u00fc.txt": b"u", "\u4e2d/\u6587.txt": b"zh", "zz/last": b"l"})
    write_files(root, files)
    dsv.Repo.init(root).commit("many")
    fs = DsvFileSystem(repo=str(root), rev="HEAD", skip_instance_cache=True)
    assert len(fs._chunk_ids) > 2  # the lookups cross several manifest chunks
    listed = {e["name"]: e for e in fs.find("", detail=True).values()}
    assert set(listed) == set(files)
    for p in rng.sample(sorted(files), 300) + ["Z.txt", "a b.txt", "\u00fc.txt", "\u4e2d/\u6587.txt", "zz/last", "d0/0000.bin"]:
        dsvfs.clear_cache()
        fresh = DsvFileSystem(repo=str(root), rev="HEAD", skip_instance_cache=True)
        assert fresh.info(p) == listed[p] and fresh.cat_file(p) == files[p]
        for missing in (p + "x", p[:-1], "!" + p):
            with pytest.raises(FileNotFoundError):
                fresh.info(missing)
        assert fresh.info(p) == listed[p]  # after misses, and after the chunk's dict is built
    dsvfs.clear_cache()


def test_a_process_that_read_parquet_through_dsv_exits_cleanly(tmp_path: Path) -> None:
    # pyarrow releases a Python filesystem's files from its own threads, possibly after
    # read_table returned; at interpreter exit that aborted the process (exit 134) about
    # one run in three to ten. dsv pauses at exit so the threads finish first.
    import subprocess

    root = tmp_path / "repo"
    root.mkdir()
    rng = random.Random(3)
    n = 3_000_000
    labels = pa.array([rng.choice(["cat", "dog", "bird"]) for _ in range(1000)] * (n // 1000))
    table = pa.table({"id": pa.array(range(n)), "label": labels, "score": pa.array([rng.random() for _ in range(1000)] * (n // 1000))})
    pq.write_table(table, root / "data.parquet", row_group_size=200_000)
    assert (root / "data.parquet").stat().st_size > 8 * 1024 * 1024  # stored as chunks
    repo = dsv.Repo.init(root)
    repo.commit("v1")
    code = (
        "import pyarrow.parquet as pq\n"
        "from dsv.api.fs import DsvFileSystem\n"
        f"t = pq.read_table('data.parquet', columns=['label'], filesystem=DsvFileSystem(repo={str(root)!r}))\n"
        "print(t.num_rows)\n"
    )
    codes = []
    for _ in range(12):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        codes.append(proc.returncode)
        assert proc.returncode != 0 or proc.stdout.strip() == str(n)
    assert codes == [0] * 12, f"exit codes {codes}"


def test_a_branch_url_sees_new_commits_in_a_long_running_process(tmp_path: Path) -> None:
    # fsspec's instance cache used to hand back the filesystem that resolved 'main' on first use.
    import pandas as pd

    root = tmp_path / "repo"
    root.mkdir()
    (root / "t.csv").write_text("a\n1\n")
    repo = dsv.Repo.init(root)
    repo.commit("v1")
    assert pd.read_csv("dsv://main/t.csv", storage_options={"repo": str(root)}).a.tolist() == [1]
    (root / "t.csv").write_text("a\n2\n")
    repo.commit("v2")
    assert pd.read_csv("dsv://main/t.csv", storage_options={"repo": str(root)}).a.tolist() == [2]
    assert fsspec.filesystem("dsv", repo=str(root), rev="main").cat_file("t.csv") == b"a\n2\n"
