"""Findings of an outside review of remotes (issue 10), each pinned by a test written before its fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dsv
from dsv.base.errors import CorruptMetadataError

from conftest import read_tree, write_tree


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dsv", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _pushed(tmp_path: Path) -> tuple[dsv.Repo, str]:
    """A folder remote holding main (two files) and tag v1."""
    url = str(tmp_path / "remote")
    src = dsv.Repo.init(tmp_path / "src")
    write_tree(Path(src.root), {"a.txt": "a", "d/b.txt": "b"})
    src.commit("first")
    src.create_tag("v1")
    src.add_remote("origin", url)
    src.push(tags=True)
    src.push()
    return src, url


def _forge_refs(url: str, edit) -> None:  # type: ignore[no-untyped-def]
    path = Path(url) / "refs.json"
    doc = json.loads(path.read_bytes())
    edit(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "name",
    [
        "refs/heads/../../../../../escaped",
        "refs/tags/../../HEAD",
        "refs/tags/a b\\c",
        "refs/heads/x/../y",
        "refs/metrics/notacommit/run",
    ],
)
def test_forged_ref_name_in_refs_json_is_refused_before_anything_is_written(name: str, tmp_path: Path) -> None:
    """A remote's refs.json naming ../ (or a name no local ref may have) must not write outside .dsv/refs."""
    _, url = _pushed(tmp_path)
    _forge_refs(url, lambda d: d["refs"].__setitem__(name, d["refs"]["refs/heads/main"]))
    with pytest.raises(CorruptMetadataError):
        dsv.Repo.clone(url, tmp_path / "c")
    assert not (tmp_path / "c").exists()
    local = dsv.Repo.init(tmp_path / "l")
    local.add_remote("origin", url)
    with pytest.raises(CorruptMetadataError):
        local.fetch()
    assert not any(p.name == "escaped" for p in tmp_path.rglob("escaped"))
    assert local.fsck().ok
    proc = _cli("fetch", cwd=tmp_path / "l")
    assert proc.returncode == 3 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_forged_default_branch_is_refused(tmp_path: Path) -> None:
    """refs.json 'head' becomes the clone's HEAD: '../../x' must not reach .dsv/HEAD."""
    _, url = _pushed(tmp_path)
    _forge_refs(url, lambda d: d.update(head="../../evil"))
    with pytest.raises(CorruptMetadataError):
        dsv.Repo.clone(url, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def _big(seed: int, size: int = 9 * 1024 * 1024) -> bytearray:
    import random

    return bytearray(random.Random(seed).randbytes(size))


def _age_packs(url: str, seconds: float = 3600) -> None:
    for p in (Path(url) / "packs").iterdir():
        st = p.stat()
        os.utime(p, (st.st_atime - seconds, st.st_mtime - seconds))


def test_chunks_a_push_reuses_survive_gc_grace_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A push finds most chunks of a big file already on the remote (unreachable garbage) and relies on them.

    The lease must name the packs holding those chunks, or a gc --grace 0 running
    during the upload deletes them and the pushed ref names a file whose chunks are gone.
    """
    from dsv.remote import repo as remote_repo

    url = str(tmp_path / "remote")
    repo = dsv.Repo.init(tmp_path / "r")
    write_tree(Path(repo.root), {"keep.txt": "kept"})
    repo.commit("main")
    repo.add_remote("origin", url)
    repo.push()
    big = _big(1)
    repo.create_branch("side")
    repo.checkout("side")
    write_tree(Path(repo.root), {"big.bin": bytes(big)})
    repo.commit("side with a big file")
    repo.push("origin", ["side"])
    repo.checkout("main")
    repo.create_branch("side", "main", force=True)
    repo.push("origin", ["side"], force=True)  # big.bin's chunks are now garbage on the remote

    _age_packs(url)  # older than CLOCK_SLACK before any lease: only the lease's .packs protects them
    other = dsv.Repo.clone(url, tmp_path / "other")
    edited = bytearray(big)
    edited[-10:] = b"0123456789"  # same chunks but the last: a new chunk list
    write_tree(Path(other.root), {"big.bin": bytes(edited)})
    other.commit("reuses the garbage chunks")
    ran: list[object] = []
    original_rely = remote_repo.Lease.rely_on

    def rely_then_gc(self, packs):  # type: ignore[no-untyped-def]
        original_rely(self, packs)
        if not ran:
            ran.append(repo.gc_remote("origin", 0))

    monkeypatch.setattr(remote_repo.Lease, "rely_on", rely_then_gc)
    other.push()
    monkeypatch.undo()
    assert ran
    final = dsv.Repo.clone(url, tmp_path / "final")
    assert (Path(final.root) / "big.bin").read_bytes() == bytes(edited)
    assert final.fsck().ok


def test_json_option_values_are_parsed_and_nested_secrets_masked(tmp_path: Path) -> None:
    """--option client_kwargs={...} (documented) must work, its secrets masked; anon=false must not mean anonymous."""
    from dsv.store.remotefs import RemoteFS

    repo = dsv.Repo.init(tmp_path / "r")
    proc = _cli("remote", "add", "o", "s3://bucket/p", "--option", 'client_kwargs={"aws_secret_access_key":"NESTEDSECRET1"}', "--option", "anon=false", cwd=tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    listed = _cli("remote", "list", "-v", cwd=tmp_path / "r")
    assert "NESTEDSECRET1" not in listed.stdout + listed.stderr
    as_json = _cli("remote", "list", "--json", cwd=tmp_path / "r")
    assert "NESTEDSECRET1" not in as_json.stdout
    pytest.importorskip("s3fs")
    fs = RemoteFS("s3://bucket/p", dict(dsv.Repo(repo.root).repository.config.remotes["o"].options))
    assert fs.fs.anon is False
    assert fs.fs.client_kwargs.get("aws_secret_access_key") == "NESTEDSECRET1"


def test_bad_json_option_is_one_line(tmp_path: Path) -> None:
    dsv.Repo.init(tmp_path / "r")
    _cli("remote", "add", "o", "s3://bucket/p", "--option", "client_kwargs=notjson", "--option", "endpoint_url=http://127.0.0.1:1", cwd=tmp_path / "r")
    proc = _cli("fetch", "o", cwd=tmp_path / "r")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_backend_constructor_errors_are_one_line(tmp_path: Path) -> None:
    """s3fs raises KeyError for both secret and password: a usage mistake, not an internal error."""
    pytest.importorskip("s3fs")
    dsv.Repo.init(tmp_path / "r")
    _cli("remote", "add", "o", "s3://bucket/p", "--option", "secret=SECRETVALUE1", "--option", "password=SECRETVALUE2", cwd=tmp_path / "r")
    proc = _cli("push", "o", cwd=tmp_path / "r")
    assert proc.returncode != 0 and "internal error" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "SECRETVALUE" not in proc.stderr


def test_push_all_keeps_the_current_branch_as_the_remote_default(tmp_path: Path) -> None:
    """The first push of --all must not make the alphabetically first branch what every clone checks out."""
    url = str(tmp_path / "remote")
    src = dsv.Repo.init(tmp_path / "src")
    write_tree(Path(src.root), {"a.txt": "a"})
    src.commit("first")
    src.create_branch("aaa-experiment")
    src.add_remote("origin", url)
    src.push(all_branches=True)
    clone = dsv.Repo.clone(url, tmp_path / "c")
    assert clone.cloned.branch == "main"
    assert read_tree(Path(clone.root)) == {"a.txt": b"a"}


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_clone_into_a_non_empty_destination_says_what_is_there(kind: str, tmp_path: Path) -> None:
    """It said 'a dsv repository already exists' for a plain folder with one file in it."""
    _, url = _pushed(tmp_path)
    dest = tmp_path / "dest"
    if kind == "folder":
        dest.mkdir()
        (dest / "mine.txt").write_text("keep")
    else:
        dest.write_text("keep")
    proc = _cli("clone", url, str(dest), cwd=tmp_path)
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert "dsv repository" not in proc.stderr and "exists" in proc.stderr
    if kind == "folder":
        assert read_tree(dest) == {"mine.txt": b"keep"}
    else:
        assert dest.read_text() == "keep"


def test_fetch_shows_remote_branch_as_branch_to_tracking_name(tmp_path: Path) -> None:
    """Fetch printed 'origin/main -> origin/main'; git's 'main -> origin/main' says what went where."""
    _, url = _pushed(tmp_path)
    local = dsv.Repo.init(tmp_path / "l")
    local.add_remote("origin", url)
    proc = _cli("fetch", cwd=tmp_path / "l")
    assert proc.returncode == 0, proc.stderr
    assert " main -> origin/main" in proc.stdout and "origin/main -> origin/main" not in proc.stdout


def test_ref_naming_a_file_instead_of_a_commit_blames_the_remote(tmp_path: Path) -> None:
    """It said 'commit … is malformed (run dsv fsck)', sending the user to check a healthy local repository."""
    src, url = _pushed(tmp_path)
    oid = src.manifest_table("HEAD").to_pylist()[0]["oid"]
    file_id = oid.hex() if isinstance(oid, bytes) else str(oid)
    _forge_refs(url, lambda d: d["refs"].__setitem__("refs/tags/x", file_id))
    local = dsv.Repo.init(tmp_path / "l")
    local.add_remote("origin", url)
    proc = _cli("fetch", cwd=tmp_path / "l")
    assert proc.returncode == 3 and len(proc.stderr.strip().splitlines()) == 1
    assert url in proc.stderr and "dsv fsck' to see" not in proc.stderr
    assert local.fsck().ok and not local.tags()


def test_log_decorates_remote_tracking_branches(tmp_path: Path) -> None:
    """git log shows 'origin/main' beside the commit a fetch recorded; dsv log did not."""
    _, url = _pushed(tmp_path)
    clone = dsv.Repo.clone(url, tmp_path / "c")
    proc = _cli("log", cwd=Path(clone.root))
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert "HEAD -> main" in first and "origin/main" in first, first
