"""Remotes end to end through the library: round trips, negotiation, request counts, partial clones, refs CAS.

Every backend is real: a local folder, fsspec's memory filesystem (own root per
test), and S3 served by moto on loopback (tests/s3server.py).
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path

import pytest

import dsv
from dsv.base.errors import PushRejectedError, RemoteCorruptError, UnsafePathError, WorktreeError
from dsv.remote import RefStatus

from conftest import read_tree, write_tree

BACKENDS = ["folder", "memory", "s3"]


@pytest.fixture(params=BACKENDS)
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """``(url, options)`` of an empty remote on each backend."""
    if request.param == "folder":
        return str(tmp_path / "remote"), {}
    if request.param == "memory":
        return f"memory://dsv-{uuid.uuid4().hex}/repo", {}
    server = request.getfixturevalue("s3_env")
    return f"s3://{server.new_bucket()}/datasets/penguins", {"endpoint_url": server.endpoint}


def _dataset(root: Path, n: int = 40, seed: int = 1) -> None:
    rnd = random.Random(seed)
    files = {f"images/{'cat' if i % 2 else 'dog'}/{i:04d}.jpg": rnd.randbytes(rnd.randint(10, 3000)) for i in range(n)}
    files["labels.csv"] = "path,label\n" + "".join(f"{p},{p.split('/')[1]}\n" for p in sorted(files))
    files["empty.txt"] = b""
    write_tree(root, files)
    os.symlink("labels.csv", root / "link.csv")


def _origin(repo: dsv.Repo, url: str, options: dict[str, str]) -> None:
    repo.add_remote("origin", url, options)


def test_push_then_clone_round_trips_byte_for_byte(remote, tmp_path: Path) -> None:
    url, options = remote
    src = dsv.Repo.init(tmp_path / "src")
    _dataset(Path(src.root))
    first = src.commit("first").id
    src.create_tag("v1", message="annotated", meta={"split": "train"})
    (Path(src.root) / "labels.csv").write_text("changed\n")
    src.commit("second")
    src.add_metrics("HEAD", _metrics_file(tmp_path), name="run1")
    _origin(src, url, options)
    res = src.push(refs=["main", "v1"])
    assert [u.status for u in res.refs if not u.ref.startswith("refs/metrics/")] == [RefStatus.CREATED, RefStatus.CREATED]
    assert any(u.ref.startswith("refs/metrics/") for u in res.refs), "metrics records travel with their commits"
    dst = dsv.Repo.clone(url, tmp_path / "dst", options=options)
    assert read_tree(Path(dst.root)) == read_tree(Path(src.root))
    assert [e.id for e in dst.log()] == [e.id for e in src.log()]
    tag = {t.name: t for t in dst.tags()}["v1"]
    assert tag.commit == first and tag.tag is not None and tag.tag.meta == {"split": "train"}
    assert [m.record.name for m in dst.metrics("HEAD")] == ["run1"]
    assert dst.fsck().ok
    # The old version checks out too (its objects came along).
    dst.checkout("v1")
    assert (Path(dst.root) / "labels.csv").read_text().startswith("path,label")


def _metrics_file(tmp_path: Path) -> str:
    p = tmp_path / "metrics.json"
    p.write_text('{"overall": {"accuracy": 0.9}}')
    return str(p)


def test_noop_push_and_fetch_cost_one_request_whatever_the_size(s3_env, tmp_path: Path) -> None:
    """Count real HTTP requests at the server: a no-op push or fetch is one GET of refs.json."""
    counts = []
    for n_files, n_commits in ((5, 1), (3000, 4)):
        bucket = s3_env.new_bucket()
        url, options = f"s3://{bucket}/r", {"endpoint_url": s3_env.endpoint}
        repo = dsv.Repo.init(tmp_path / f"r{n_files}")
        for c in range(n_commits):
            write_tree(Path(repo.root), {f"d/{i}.txt": f"{c} {i}" for i in range(n_files)})
            repo.commit(f"c{c}")
        _origin(repo, url, options)
        repo.push()
        before = s3_env.requests()
        assert repo.push().refs[0].status == RefStatus.UP_TO_DATE
        push_requests = s3_env.requests() - before
        before = s3_env.requests()
        assert repo.fetch().refs == ()
        fetch_requests = s3_env.requests() - before
        counts.append((push_requests, fetch_requests))
    assert counts[0] == counts[1] == (1, 1), counts


def test_small_files_travel_in_packs_not_one_request_each(s3_env, tmp_path: Path) -> None:
    url, options = f"s3://{s3_env.new_bucket()}/r", {"endpoint_url": s3_env.endpoint}
    repo = dsv.Repo.init(tmp_path / "r")
    write_tree(Path(repo.root), {f"f/{i:05d}.bin": os.urandom(64) + str(i).encode() for i in range(5000)})
    repo.commit("5000 files")
    _origin(repo, url, options)
    before = s3_env.requests()
    res = repo.push()
    made = s3_env.requests() - before
    assert res.stats.objects >= 5000
    assert made < 25, f"{made} requests for 5000 files"
    # And a clone fetches them in few requests too.
    before = s3_env.requests()
    dsv.Repo.clone(url, tmp_path / "c", options=options)
    assert s3_env.requests() - before < 25


def test_one_percent_edit_of_a_big_file_pushes_about_one_percent(remote, tmp_path: Path) -> None:
    url, options = remote
    repo = dsv.Repo.init(tmp_path / "r")
    size = 24 * 1024 * 1024
    data = bytearray(random.Random(3).randbytes(size))
    (Path(repo.root) / "big.bin").write_bytes(data)
    repo.commit("big")
    _origin(repo, url, options)
    first = repo.push()
    assert first.stats.bytes >= size
    start = size // 2
    data[start : start + size // 100] = random.Random(4).randbytes(size // 100)
    (Path(repo.root) / "big.bin").write_bytes(data)
    repo.commit("1% edit")
    second = repo.push()
    assert second.stats.bytes < size * 0.04, second.stats
    clone = dsv.Repo.clone(url, tmp_path / "c", options=options)
    assert (Path(clone.root) / "big.bin").read_bytes() == bytes(data)


def test_non_fast_forward_is_rejected_with_a_fetch_first_hint(remote, tmp_path: Path) -> None:
    url, options = remote
    a = dsv.Repo.init(tmp_path / "a")
    write_tree(Path(a.root), {"x": "1"})
    a.commit("base")
    _origin(a, url, options)
    a.push()
    b = dsv.Repo.clone(url, tmp_path / "b", options=options)
    write_tree(Path(a.root), {"x": "from a"})
    a_tip = a.commit("a").id
    a.push()
    write_tree(Path(b.root), {"x": "from b"})
    b_tip = b.commit("b").id
    with pytest.raises(PushRejectedError) as info:
        b.push()
    assert "fetch first" in str(info.value) + (info.value.hint or "")
    assert info.value.result.refs[0].status == RefStatus.REJECTED
    # The remote keeps a's commit; b's --force-with-lease fails while b's view is stale...
    b2 = dsv.Repo(b.root)
    with pytest.raises(PushRejectedError, match="stale"):
        b2.push(force_with_lease=True)
    # ... and succeeds once b has fetched (it then knows what it replaces).
    b2.fetch()
    assert b2.push(force_with_lease=True).refs[0].status == RefStatus.FORCED
    a.fetch()
    assert a.resolve("origin/main").commit_id == b_tip
    assert a_tip in {e.id for e in a.log(a_tip)}, "the replaced commit is still in a's repository"


def test_pull_fast_forwards_and_refuses_to_clobber_local_edits(remote, tmp_path: Path) -> None:
    url, options = remote
    a = dsv.Repo.init(tmp_path / "a")
    write_tree(Path(a.root), {"labels.csv": "v1", "other": "o"})
    a.commit("v1")
    _origin(a, url, options)
    a.push()
    b = dsv.Repo.clone(url, tmp_path / "b", options=options)
    write_tree(Path(a.root), {"labels.csv": "v2"})
    a.commit("v2")
    a.push()
    write_tree(Path(b.root), {"labels.csv": "my local edit"})
    with pytest.raises(WorktreeError):
        b.pull()
    assert (Path(b.root) / "labels.csv").read_text() == "my local edit"
    assert b.log()[0].commit.message == "v1"
    write_tree(Path(b.root), {"labels.csv": "v1"})
    res = b.pull()
    assert res.status == "fast-forward"
    assert (Path(b.root) / "labels.csv").read_text() == "v2"
    assert b.status().clean and b.status().branch == "main"
    assert b.pull().status == "up-to-date"


def test_shallow_clone_fetches_one_version_then_more_on_demand(remote, tmp_path: Path) -> None:
    url, options = remote
    src = dsv.Repo.init(tmp_path / "src")
    write_tree(Path(src.root), {"old.bin": os.urandom(50_000), "keep.txt": "k"})
    src.commit("old")
    (Path(src.root) / "old.bin").unlink()
    write_tree(Path(src.root), {"new.bin": os.urandom(1000)})
    src.commit("new")
    _origin(src, url, options)
    src.push()
    old_oid = src.ls("HEAD~1", "old.bin")[0].oid
    old_bytes = src.read_file("HEAD~1", "old.bin")
    c = dsv.Repo.clone(url, tmp_path / "c", depth=1, options=options)
    assert sorted(read_tree(Path(c.root))) == ["keep.txt", "new.bin"]
    assert not c.repository.local_store.has(old_oid), "a shallow clone does not fetch older versions' files"
    # History and older versions come on demand from the promisor remote.
    assert [e.commit.message for e in c.log()] == ["new", "old"]
    d = c.diff("HEAD~1", "HEAD")
    assert {ch.path for ch in d.changes} == {"old.bin", "new.bin"}
    c.checkout("HEAD~1")
    assert (Path(c.root) / "old.bin").read_bytes() == old_bytes
    assert c.repository.local_store.has(old_oid)


def test_clone_of_paths_fetches_only_those_and_refuses_a_commit_that_would_drop_the_rest(remote, tmp_path: Path) -> None:
    url, options = remote
    src = dsv.Repo.init(tmp_path / "src")
    write_tree(Path(src.root), {"a/1.bin": os.urandom(2000), "a/2.bin": os.urandom(2000), "b/3.bin": os.urandom(2000), "c.txt": "c"})
    src.commit("all")
    _origin(src, url, options)
    src.push()
    b_oid = src.ls("HEAD", "b/3.bin")[0].oid
    c = dsv.Repo.clone(url, tmp_path / "c", paths=["a"], options=options)
    assert sorted(read_tree(Path(c.root))) == ["a/1.bin", "a/2.bin"]
    assert not c.repository.local_store.has(b_oid)
    with pytest.raises(WorktreeError, match="only a"):
        c.commit("would drop b and c.txt")
    c.checkout("HEAD", force=True)  # the whole tree: the rest is fetched on demand
    assert read_tree(Path(c.root)) == read_tree(Path(src.root))
    write_tree(Path(c.root), {"d.txt": "new"})
    c.commit("now allowed")


def test_corrupt_object_at_fetch_names_object_and_remote_and_keeps_nothing(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    src = dsv.Repo.init(tmp_path / "src")
    payload = b"precious bytes " * 100
    write_tree(Path(src.root), {"data.bin": payload})
    src.commit("c")
    _origin(src, url, {})
    src.push()
    oid = src.ls("HEAD", "data.bin")[0].oid
    packs = [p for p in (Path(url) / "packs").iterdir() if p.name.startswith("pack-") and p.suffix == ".pack"]
    (pack,) = packs
    blob = bytearray(pack.read_bytes())
    at = blob.index(payload)
    blob[at + 10] ^= 0xFF
    pack.chmod(0o644)
    pack.write_bytes(bytes(blob))
    with pytest.raises(RemoteCorruptError) as info:
        dsv.Repo.clone(url, tmp_path / "dst")
    assert oid in str(info.value) and url in str(info.value)
    assert not (tmp_path / "dst").exists(), "a failed clone leaves nothing behind"
    # A fetch into an existing repository keeps nothing corrupt either.
    other = dsv.Repo.init(tmp_path / "other")
    _origin(other, url, {})
    with pytest.raises(RemoteCorruptError):
        other.fetch()
    assert not other.repository.local_store.has(oid)
    assert other.repository.refs.read("refs/remotes/origin/main") is None


def test_another_objects_bytes_under_an_id_are_caught(tmp_path: Path) -> None:
    """A forged remote: the record of one file holds another file's bytes (same length)."""
    url = str(tmp_path / "remote")
    src = dsv.Repo.init(tmp_path / "src")
    write_tree(Path(src.root), {"a.txt": "AAAAAAAA", "b.txt": "BBBBBBBB"})
    src.commit("c")
    _origin(src, url, {})
    src.push()
    (pack,) = [p for p in (Path(url) / "packs").iterdir() if p.name.startswith("pack-") and p.suffix == ".pack"]
    blob = pack.read_bytes().replace(b"AAAAAAAA", b"BBBBBBBB")
    pack.chmod(0o644)
    pack.write_bytes(blob)
    with pytest.raises(RemoteCorruptError, match="does not verify"):
        dsv.Repo.clone(url, tmp_path / "dst")


def test_truncated_pack_is_one_clear_error(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    src = dsv.Repo.init(tmp_path / "src")
    write_tree(Path(src.root), {f"{i}.bin": os.urandom(5000) for i in range(10)})
    src.commit("c")
    _origin(src, url, {})
    src.push()
    (pack,) = [p for p in (Path(url) / "packs").iterdir() if p.name.startswith("pack-") and p.suffix == ".pack"]
    pack.chmod(0o644)
    with open(pack, "r+b") as f:
        f.truncate(pack.stat().st_size // 2)
    with pytest.raises(RemoteCorruptError, match="truncated"):
        dsv.Repo.clone(url, tmp_path / "dst")


def test_forged_manifest_with_traversal_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A remote whose manifest names ../ paths: clone refuses before writing a file, anywhere."""
    from dsv.history.objects import Commit, CommitSummary, now
    from dsv.manifest import entries_table, write_manifest
    from dsv.remote import RemoteRepo

    url = str(tmp_path / "remote")
    rem = RemoteRepo("evil", url)
    rem.ensure_initialized()
    w = rem.store.begin_write()
    payload = b"owned"
    oid = w.add_raw(payload)
    w.commit()
    w = rem.store.begin_write(meta=True)
    table = entries_table(["../escaped.txt", "ok.txt"], [oid, oid], [len(payload)] * 2, [0o100644] * 2)
    manifest = write_manifest(table, w)
    commit = Commit(manifest=manifest, author="mallory", time=now(), message="evil", summary=CommitSummary(files=2, bytes=10))
    cid = w.add_bytes(commit.to_json_bytes())
    w.commit()
    rem.refs.update(lambda doc: doc.model_copy(update={"refs": {"refs/heads/main": cid}}))
    with pytest.raises(UnsafePathError):
        dsv.Repo.clone(url, tmp_path / "work" / "dst")
    assert not (tmp_path / "work" / "escaped.txt").exists()
    assert not (tmp_path / "work" / "dst").exists()


def test_remote_branch_resolves_as_a_revision(remote, tmp_path: Path) -> None:
    url, options = remote
    a = dsv.Repo.init(tmp_path / "a")
    write_tree(Path(a.root), {"x": "1"})
    tip = a.commit("c").id
    _origin(a, url, options)
    a.push()
    assert a.resolve("origin/main").commit_id == tip
    b = dsv.Repo.init(tmp_path / "b")
    _origin(b, url, options)
    b.fetch()
    assert b.resolve("origin/main").commit_id == tip
    b.checkout("origin/main")
    assert (Path(b.root) / "x").read_text() == "1"
