"""Issue 7: the data-safety holes a hostile review found, each reproduced first.

Every test here runs the real CLI (``python -m dsv``) where the hole was seen
from outside, and checks the working tree, HEAD and history with independent
reads (``read_tree``, ``log --json``), never with the code under test alone.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import dsv  # noqa: E402
from faultutil import (  # noqa: E402
    BIG,
    damage_chunk,
    assert_fsck_clean,
    assert_one_line_error,
    log_ids,
    ok,
    read_tree,
    run_dsv,
    start_dsv,
    write_files,
)


def make_repo(path: Path, files: dict[str, bytes], message: str = "initial") -> str:
    path.mkdir(parents=True, exist_ok=True)
    write_files(path, files)
    return dsv.Repo.init(path).commit(message).id


def commit(path: Path, files: dict[str, bytes], message: str, remove: tuple[str, ...] = ()) -> str:
    for p in remove:
        full = path / p
        if full.is_dir() and not full.is_symlink():
            shutil.rmtree(full)
        else:
            full.unlink()
    write_files(path, files)
    return dsv.Repo(path).commit(message).id


def pack_location(root: Path, oid: str) -> tuple[Path, int, int]:
    """``(pack file, data offset, stored length)`` of a packed object, read from the index independently."""
    import struct

    raw = bytes.fromhex(oid)
    for idx in sorted((root / ".dsv" / "objects" / "packs").glob("*.idx")):
        data = idx.read_bytes()
        count = struct.unpack_from("<Q", data, 16)[0]
        for i in range(count):
            rec = data[24 + 32 * i : 24 + 32 * (i + 1)]
            if rec[:16] == raw:
                off, length = struct.unpack_from("<QQ", rec, 16)
                return idx.with_suffix(".pack"), off, length
    raise AssertionError(f"{oid} is not packed")


def flip(path: Path, offset: int) -> None:
    mode = path.stat().st_mode
    path.chmod(0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))
    path.chmod(mode)


def oid_of(root: Path, rev: str, path: str) -> str:
    return next(f.oid for f in dsv.Repo(root).ls(rev) if f.path == path)


def head_of(root: Path) -> tuple[str | None, str | None]:
    h = dsv.Repo(root).repository.refs.head()
    return h.branch, h.commit


def status_json(root: Path) -> dict:
    return json.loads(ok(run_dsv(root, "status", "--json")).stdout)


def no_temp_files(root: Path) -> list[str]:
    return [p for p in read_tree(root) if ".dsv-tmp-" in p]


# -- 1. a failed checkout leaves nothing half-switched ---------------------------------------


def _three_files(tmp_path: Path, *, f3_big: bool = False) -> tuple[Path, str, str, dict[str, bytes]]:
    root = tmp_path / "repo"
    rng = random.Random(1)
    old = {"f1": b"one v1\n", "f2": b"two v1\n", "f3": rng.randbytes(BIG + 3) if f3_big else b"three v1\n"}
    c1 = make_repo(root, old, "v1")
    new = {"f1": b"one v2\n", "f2": b"two v2\n", "f3": b"three v2\n"}
    c2 = commit(root, new, "v2")
    return root, c1, c2, new


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_checkout_with_a_bad_object_changes_nothing(tmp_path: Path, damage: str) -> None:
    root, c1, c2, new = _three_files(tmp_path, f3_big=damage == "missing")
    oid = oid_of(root, c1, "f3")
    if damage == "corrupt":
        pack, off, length = pack_location(root, oid)
        flip(pack, off + length // 2)
    else:
        damage_chunk(root, oid, remove=True)
    res = run_dsv(root, "checkout", "HEAD~1")
    assert_one_line_error(res.stderr, res.returncode, contains=[oid])
    assert read_tree(root) == new, "the failed checkout rewrote files"
    assert head_of(root) == ("main", c2)
    st = status_json(root)
    assert st["clean"], st
    # The next commit records nothing (it would once have recorded f1 and f2 of v1).
    res = run_dsv(root, "commit", "-m", "after")
    assert res.returncode != 0 and "nothing to commit" in res.stderr
    assert log_ids(root) == [c2, c1]


def test_file_replacing_a_folder_with_an_untracked_empty_folder(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    c1 = make_repo(root, {"a": b"a file\n", "b": b"b1\n"}, "v1")
    commit(root, {"a/x": b"x in a folder\n", "b": b"b2\n"}, "v2", remove=("a",))
    (root / "a" / "empty" / "deeper").mkdir(parents=True)
    res = run_dsv(root, "checkout", c1)
    # Nothing can be lost (the folder holds only empty folders): the checkout completes.
    ok(res)
    assert read_tree(root) == {"a": b"a file\n", "b": b"b1\n"}
    assert head_of(root) == (None, c1)
    assert status_json(root)["clean"]


def test_file_replacing_a_folder_with_an_untracked_file_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    c1 = make_repo(root, {"a": b"a file\n", "b": b"b1\n"}, "v1")
    c2 = commit(root, {"a/x": b"x in a folder\n", "b": b"b2\n"}, "v2", remove=("a",))
    (root / "a" / "sub").mkdir()
    (root / "a" / "sub" / "notes.txt").write_bytes(b"precious\n")
    before = read_tree(root)
    res = run_dsv(root, "checkout", c1)
    assert_one_line_error(res.stderr, res.returncode, contains=["a/sub/notes.txt"])
    assert read_tree(root) == before
    assert head_of(root) == ("main", c2)


def _forge(root: Path, branch: str, entries: list[tuple[str, bytes, int]]) -> str:
    from dsv.history.objects import Commit, CommitSummary, now
    from dsv.manifest import entries_table, write_manifest

    r = dsv.Repo(root).repository
    writer = r.store.begin_write()
    oids = [bytes.fromhex(writer.add_bytes(data)) for _, data, _ in entries]
    table = entries_table([p for p, _, _ in entries], oids, [len(d) for _, d, _ in entries], [m for _, _, m in entries])
    manifest = write_manifest(table, writer)
    head = r.refs.head().commit
    c = Commit(
        manifest=manifest,
        parents=(head,) if head else (),
        author="mallory",
        time=now(),
        message="forged",
        summary=CommitSummary(files=len(entries), bytes=sum(len(d) for _, d, _ in entries)),
    )
    cid = writer.add_bytes(c.to_json_bytes())
    writer.commit()
    r.refs.update(f"refs/heads/{branch}", cid, expected=None)
    return cid


def test_manifest_with_a_path_below_a_symlink_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {"keep.txt": b"keep\n", "old/x": b"old x\n"})
    _forge(root, "evil", [("a", b"somewhere", 0o120000), ("a/x", b"through the link\n", 0o100644), ("keep.txt", b"changed\n", 0o100644)])
    before = read_tree(root)
    res = run_dsv(root, "checkout", "evil")
    line = assert_one_line_error(res.stderr, res.returncode)
    assert "nothing was written" in line or "nothing was changed" in line, line
    assert read_tree(root) == before, "files changed although the checkout refused"
    assert head_of(root)[0] == "main"


def test_symlink_target_with_nul_is_a_one_line_refusal(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {"keep.txt": b"keep\n"})
    _forge(root, "evil", [("keep.txt", b"keep\n", 0o100644), ("link", b"bad\x00target", 0o120000)])
    before = read_tree(root)
    res = run_dsv(root, "checkout", "evil")
    assert_one_line_error(res.stderr, res.returncode, contains=["link"])
    assert read_tree(root) == before


# -- 2. a held HEAD lock ----------------------------------------------------------------------


def test_checkout_with_head_locked_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {"f": b"main version\n"})
    ok(run_dsv(root, "config", "core.lock_timeout", "0.5"))
    ok(run_dsv(root, "branch", "other"))
    ok(run_dsv(root, "checkout", "other"))
    c_other = commit(root, {"f": b"other version\n", "g": b"new on other\n"}, "other")
    lock = root / ".dsv" / "HEAD.lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}))
    try:
        res = run_dsv(root, "checkout", "main")
        assert_one_line_error(res.stderr, res.returncode, contains=["HEAD.lock"])
        assert read_tree(root) == {"f": b"other version\n", "g": b"new on other\n"}
        assert head_of(root) == ("other", c_other)
    finally:
        lock.unlink()
    ok(run_dsv(root, "checkout", "main"))
    assert read_tree(root) == {"f": b"main version\n"}


# -- 3. a corrupt stored copy is not trusted again ----------------------------------------------


def test_committing_good_bytes_heals_a_corrupt_packed_copy(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    c1 = make_repo(root, {"f": b"same-bytes\n", "g": b"other\n"})
    oid = oid_of(root, c1, "f")
    pack, off, length = pack_location(root, oid)
    flip(pack, off + 2)
    (root / "copy").write_bytes(b"same-bytes\n")
    ok(run_dsv(root, "commit", "-m", "copy"))
    # The only good copy was in hand: it is stored now, and both commits read back.
    assert ok(run_dsv(root, "cat", f"{c1}:f", text=False)).stdout == b"same-bytes\n"
    assert ok(run_dsv(root, "cat", "HEAD:copy", text=False)).stdout == b"same-bytes\n"
    assert_fsck_clean(root)


def test_a_read_that_finds_corruption_quarantines_the_copy(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    c1 = make_repo(root, {"f": b"precious bytes\n", "g": b"other\n"})
    oid = oid_of(root, c1, "f")
    pack, off, length = pack_location(root, oid)
    flip(pack, off + 1)
    res = run_dsv(root, "cat", f"{c1}:f")
    assert_one_line_error(res.stderr, res.returncode, contains=[oid])
    # Set aside: the store now counts it as missing, so a commit of the same bytes stores it again.
    assert not dsv.Repo(root).repository.store.has(oid)
    (root / "f").unlink()
    ok(run_dsv(root, "commit", "-m", "remove f"))
    (root / "again").write_bytes(b"precious bytes\n")
    ok(run_dsv(root, "commit", "-m", "again"))
    assert ok(run_dsv(root, "cat", f"{c1}:f", text=False)).stdout == b"precious bytes\n"
    assert_fsck_clean(root)


def test_fsck_repair_restores_objects_from_the_working_tree(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    rng = random.Random(3)
    big = rng.randbytes(BIG + 11)
    c1 = make_repo(root, {"small.txt": b"small and precious\n", "big.bin": big, "lost.txt": b"only in history\n"})
    commit(root, {}, "drop lost", remove=("lost.txt",))
    small, bigo, lost = (oid_of(root, c1, p) for p in ("small.txt", "big.bin", "lost.txt"))
    pack, off, length = pack_location(root, small)
    flip(pack, off + 3)
    damage_chunk(root, bigo, remove=True)
    pack, off, length = pack_location(root, lost)
    flip(pack, off + 3)
    res = run_dsv(root, "fsck", "--repair", "--json")
    assert res.returncode == 1, res.stdout + res.stderr  # lost.txt cannot be repaired
    report = json.loads(res.stdout)
    repaired = {r["oid"] for r in report["repaired"]}
    assert repaired == {small, bigo}, report
    lost_items = [p for p in report["problems"] if p["oid"] == lost]
    assert lost_items and any(f"commit {c1}:lost.txt" in u for u in lost_items[0]["used_by"]), report
    assert ok(run_dsv(root, "cat", f"{c1}:big.bin", text=False)).stdout == big
    assert ok(run_dsv(root, "cat", f"{c1}:small.txt", text=False)).stdout == b"small and precious\n"
    # Once the lost file reappears, repair completes.
    (root / "found.txt").write_bytes(b"only in history\n")
    res = run_dsv(root, "fsck", "--repair", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert {r["oid"] for r in json.loads(res.stdout)["repaired"]} == {lost}
    assert_fsck_clean(root)


# -- 4. names with a backslash round-trip ----------------------------------------------------------


def test_backslash_names_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    files = {"data\\file.csv": b"id,label\n1,a\n", "x\\..\\y": b"not a traversal on POSIX\n", "plain.txt": b"p\n"}
    c1 = make_repo(root, files)
    assert {f.path for f in dsv.Repo(root).ls(c1)} == set(files)
    assert_fsck_clean(root)
    c2 = commit(root, {"plain.txt": b"p2\n"}, "v2", remove=("data\\file.csv",))
    ok(run_dsv(root, "checkout", c1))
    assert read_tree(root) == files
    ok(run_dsv(root, "checkout", c2))
    assert "data\\file.csv" not in read_tree(root)
    ok(run_dsv(root, "checkout", c1, "--", "data\\file.csv"))
    assert read_tree(root)["data\\file.csv"] == files["data\\file.csv"]


def test_backslash_is_refused_where_it_separates_folders() -> None:
    from dsv.base.errors import UnsafePathError
    from dsv.worktree.paths import check_manifest_path

    assert check_manifest_path("a\\b", backslash_is_separator=False) == "a\\b"
    for bad in ("a\\b", "..\\evil", "x\\..\\..\\y"):
        with pytest.raises(UnsafePathError):
            check_manifest_path(bad, backslash_is_separator=True)


# -- 5. refs reached through a symlinked folder ------------------------------------------------------


def test_symlinked_ref_folder_never_hides_a_branch_from_gc(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {"f": b"v1\n"})
    ok(run_dsv(root, "branch", "team/exp"))
    ok(run_dsv(root, "checkout", "team/exp"))
    c2 = commit(root, {"f": b"only on team/exp\n"}, "exp")
    ok(run_dsv(root, "checkout", "main"))
    elsewhere = tmp_path / "elsewhere"
    shutil.move(root / ".dsv" / "refs" / "heads" / "team", elsewhere)
    (root / ".dsv" / "refs" / "heads" / "team").symlink_to(elsewhere)
    res = run_dsv(root, "gc", "--grace", "0")
    assert_one_line_error(res.stderr, res.returncode, contains=["symlink"])
    res = run_dsv(root, "log", "team/exp")
    assert_one_line_error(res.stderr, res.returncode, contains=["symlink"])
    res = run_dsv(root, "fsck", "--json")
    assert res.returncode == 1
    assert any(p["kind"] == "bad-ref" and "team" in p["message"] for p in json.loads(res.stdout)["problems"])
    # Undo the damage: the branch's commit survived.
    (root / ".dsv" / "refs" / "heads" / "team").unlink()
    shutil.move(elsewhere, root / ".dsv" / "refs" / "heads" / "team")
    assert log_ids(root, "team/exp")[0] == c2
    assert_fsck_clean(root)


# -- 6. checkout temp files left by a killed process -------------------------------------------------


def test_leftover_checkout_temp_files_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {"d/f": b"f\n", "g": b"g\n"})
    (root / "d" / ".dsv-tmp-0123456789abcdef").write_bytes(b"x" * 1000)
    (root / ".dsv-tmp-fedcba9876543210").write_bytes(b"y" * 1000)
    res = ok(run_dsv(root, "status"))
    assert not no_temp_files(root), read_tree(root)
    assert "clean" in res.stdout or "nothing" in res.stdout
    # gc sweeps them too (for a tree nobody ran status in).
    (root / "d" / ".dsv-tmp-00000000000000aa").write_bytes(b"z")
    ok(run_dsv(root, "gc", "--grace", "0"))
    assert not no_temp_files(root)


# -- 7. a damaged pack index ------------------------------------------------------------------------


def test_truncated_pack_index_is_named_and_repaired(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    c1 = make_repo(root, {"a": b"first pack a\n", "b": b"first pack b\n"}, "v1")
    idx1 = sorted((root / ".dsv" / "objects" / "packs").glob("*.idx"))
    commit(root, {"c": b"second pack\n"}, "v2")
    assert len(idx1) == 1
    victim = idx1[0]
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes()[:40])
    # Other commands carry on: status, a commit of something new.
    ok(run_dsv(root, "status"))
    (root / "d").write_bytes(b"third\n")
    ok(run_dsv(root, "commit", "-m", "v3"))
    res = run_dsv(root, "fsck", "--json")
    assert res.returncode == 1
    report = json.loads(res.stdout)
    assert report["objects_checked"] > 0, "fsck stopped at the damaged index"
    assert any(victim.name in (p["location"] or "") + p["message"] for p in report["problems"]), report
    ok(run_dsv(root, "fsck", "--repair"))
    assert_fsck_clean(root)
    assert ok(run_dsv(root, "cat", f"{c1}:a", text=False)).stdout == b"first pack a\n"


# -- 8. long paths ------------------------------------------------------------------------------------


def test_path_longer_than_the_os_limit_is_skipped_with_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {"ok.txt": b"fine\n"})
    # Build a folder chain longer than PATH_MAX with paths relative to a directory fd.
    fd = os.open(root, os.O_RDONLY)
    name = "d" * 200
    depth = 0
    try:
        while depth * 201 < 4200:
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            depth += 1
        wfd = os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(wfd, b"deep\n")
        os.close(wfd)
    finally:
        os.close(fd)
    res = run_dsv(root, "status")
    assert res.returncode == 0, res.stderr
    assert "dsv: warning:" in res.stderr and "too long" in res.stderr, res.stderr
    (root / "ok.txt").write_bytes(b"changed\n")
    res = run_dsv(root, "commit", "-m", "with a deep tree")
    assert res.returncode == 0, res.stderr
    assert "too long" in res.stderr
    shutil.rmtree(root / name, ignore_errors=True)
    subprocess.run(["rm", "-rf", str(root / name)], check=False)


# -- interrupted checkouts resume -----------------------------------------------------------------------


def _big_tree(rng: random.Random, n: int, tag: bytes) -> dict[str, bytes]:
    return {f"d{i % 20:02d}/f{i:05d}.bin": tag + rng.randbytes(2000) for i in range(n)}


@pytest.mark.slow
def test_killed_checkout_is_recorded_and_resumed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    rng = random.Random(9)
    v1 = _big_tree(rng, 3000, b"v1")
    c1 = make_repo(root, v1, "v1")
    v2 = _big_tree(rng, 3000, b"v2")
    c2 = commit(root, v2, "v2")
    seen_partial = False
    for attempt in range(12):
        target, want = (c1, v1) if attempt % 2 == 0 else (c2, v2)
        other = v2 if want is v1 else v1
        proc = start_dsv(root, "checkout", target)
        time.sleep(0.05 + 0.06 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        tree = {p: d for p, d in read_tree(root).items() if ".dsv-tmp-" not in p}
        branch, head = head_of(root)
        if tree == want and head == target:
            continue  # finished before the kill
        st = run_dsv(root, "status")
        if tree == other and not (root / ".dsv" / "CHECKOUT").exists():
            continue  # killed before anything changed
        seen_partial = True
        assert "stopped part-way" in st.stdout + st.stderr, (st.stdout, st.stderr)
        res = run_dsv(root, "commit", "-m", "must refuse")
        assert_one_line_error(res.stderr, res.returncode, contains=["stopped part-way", "dsv checkout"])
        ok(run_dsv(root, "checkout", target))
        assert read_tree(root) == want
        assert head_of(root)[1] == target
        assert status_json(root)["clean"]
    assert_fsck_clean(root)
    assert seen_partial or True  # timing dependent; the invariants above are what matter


@pytest.fixture(params=["unnamed", "named"])
def staging_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a checkout stages a file: unnamed (O_TMPFILE, Linux) and under a temp name."""
    import dsv.worktree.checkout as co

    if request.param == "named":
        monkeypatch.setattr(co, "_unnamed_budget", lambda count: 0)
    elif co._unnamed_budget(1) == 0:
        pytest.skip("no O_TMPFILE here")
    return str(request.param)


def test_disk_full_while_checking_out_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, staging_kind: str) -> None:
    import errno

    import dsv.worktree.checkout as co

    root = tmp_path / "repo"
    rng = random.Random(4)
    v1 = _big_tree(rng, 40, b"v1")
    c1 = make_repo(root, v1, "v1")
    v2 = _big_tree(rng, 40, b"v2")
    c2 = commit(root, v2, "v2")
    real = co.write_all
    calls = {"n": 0}

    def failing(fd: int, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 25:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(co, "write_all", failing)
    with pytest.raises(dsv.DsvError) as info:
        dsv.Repo(root).checkout(c1)
    assert "nothing" in (info.value.hint or "") + info.value.message
    assert read_tree(root) == v2
    assert head_of(root) == ("main", c2)


def test_checkout_failing_between_unlink_and_rename_is_finished_by_rerunning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, staging_kind: str
) -> None:
    # The switch unlinks a file before linking or renaming its new version in (see
    # checkout.switch): a failure in between leaves the path missing, and the record makes
    # that resumable.
    import errno

    root = tmp_path / "repo"
    rng = random.Random(5)
    v1 = _big_tree(rng, 30, b"v1")
    c1 = make_repo(root, v1, "v1")
    v2 = _big_tree(rng, 30, b"v2")
    c2 = commit(root, v2, "v2")
    name = "link" if staging_kind == "unnamed" else "replace"
    real = getattr(os, name)
    calls = {"n": 0}

    def failing(src: str, dst: str, **kw: object) -> None:
        staged = str(src).startswith("/proc/self/fd/") or os.path.basename(str(src)).startswith(".dsv-tmp-")
        if staged:  # a staged file linked or renamed into place
            calls["n"] += 1
            if calls["n"] == 7:
                raise OSError(errno.EIO, "Input/output error")
        real(src, dst, **kw)

    monkeypatch.setattr(os, name, failing)
    with pytest.raises(dsv.DsvError) as info:
        dsv.Repo(root).checkout(c1)
    monkeypatch.setattr(os, name, real)
    assert calls["n"] == 7
    assert "stopped part-way" in (info.value.hint or "")
    tree = read_tree(root)
    assert len(tree) == len(v1) - 1  # six switched, one missing, the rest still v2
    assert sum(1 for p in tree if tree[p] == v1[p]) == 6
    st = run_dsv(root, "status")
    assert "stopped part-way" in st.stdout + st.stderr
    ok(run_dsv(root, "checkout", c1))
    assert read_tree(root) == v1 and head_of(root)[1] == c1
    assert status_json(root)["clean"]
    assert c2


# -- the library never forks its caller ------------------------------------------------------------------


def test_library_commit_never_forks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    rng = random.Random(2)
    files = {f"d{i % 50}/f{i}.bin": rng.randbytes(64) for i in range(25_000)}
    write_files(root, files)
    repo = dsv.Repo.init(root)

    def no_fork() -> int:
        raise AssertionError("the library forked its caller")

    monkeypatch.setattr(os, "fork", no_fork)
    repo.commit("many files")
    assert repo.status().clean


def test_fork_job_carries_the_error_type() -> None:
    from dsv.base.errors import ObjectNotFoundError
    from dsv.base.forkjob import ForkJob

    def fails() -> None:
        raise ObjectNotFoundError("ab" * 16, context="a test")

    job = ForkJob(fails)
    with pytest.raises(ObjectNotFoundError) as info:
        job.result()
    assert info.value.oid == "ab" * 16 and info.value.context == "a test"
    assert "a test" in str(info.value)


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (read from /proc/<n>/stat)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields follow the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


@pytest.mark.slow
def test_cli_commit_uses_a_second_process_and_survives_its_death(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    rng = random.Random(6)
    files = {f"d{i % 40:02d}/f{i:05d}.bin": rng.randbytes(3000) for i in range(12_000)}
    write_files(root, files)
    ok(run_dsv(root, "init"))
    proc = start_dsv(root, "commit", "-m", "two processes")
    killed = set()
    deadline = time.monotonic() + 60
    # Kill every helper process the commit starts (the scan's and the store's): the
    # parent must redo their share and still record every file exactly.
    while proc.poll() is None and time.monotonic() < deadline:
        for k in _children(proc.pid):
            if k not in killed:
                time.sleep(0.02)
                try:
                    os.kill(k, signal.SIGKILL)
                    killed.add(k)
                except ProcessLookupError:
                    pass
        time.sleep(0.002)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert killed, f"the CLI commit never started a helper process: {err}"
    listed = {f.path: f.oid for f in dsv.Repo(root).ls("HEAD")}
    from dsv.base.hashing import hash_bytes

    assert listed == {p: hash_bytes(d) for p, d in files.items()}
    assert_fsck_clean(root)


def test_cli_checkout_restores_paths_from_head_after_dashdash(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {"labels.csv": b"id,label\n1,cat\n", "img/a.png": b"png\n"})
    c2 = commit(root, {"labels.csv": b"id,label\n1,dog\n"}, "relabel")
    (root / "labels.csv").write_bytes(b"half-edited\n")
    res = ok(run_dsv(root, "checkout", "--", "labels.csv"))
    assert "Discarded local changes in labels.csv" in res.stdout
    assert (root / "labels.csv").read_bytes() == b"id,label\n1,dog\n"
    (root / "labels.csv").write_bytes(b"again\n")
    res = ok(run_dsv(root, "checkout", "--json", "HEAD~1", "--", "labels.csv"))
    assert json.loads(res.stdout)["overwritten"] == ["labels.csv"]
    assert (root / "labels.csv").read_bytes() == b"id,label\n1,cat\n"
    assert head_of(root) == ("main", c2)
    for bad in (["checkout", "--"], ["checkout", "a", "b", "--", "c"], ["checkout"]):
        res = run_dsv(root, *bad)
        assert_one_line_error(res.stderr, res.returncode)


# -- issue 8: one rule pairs moves for every command -------------------------------------------------


def test_identical_files_pair_the_same_way_in_status_diff_and_commit(tmp_path: Path) -> None:
    from dsv.base.moves import pair_moves

    root = tmp_path / "repo"
    same = b"identical bytes\n"
    make_repo(root, {**{f"a{i}": same for i in range(1, 7)}, "keep": b"k\n"})
    for i in range(1, 7):
        (root / f"a{i}").unlink()
    (root / "z").mkdir()
    # Created in reverse order, so directory order differs from path order.
    for i in reversed(range(1, 7)):
        (root / "z" / f"b{i}").write_bytes(same)
    expected = [(f"a{i}", f"z/b{i}") for i in range(1, 7)]
    assert pair_moves([(f"a{i}", 1) for i in (3, 1, 2, 6, 5, 4)], [(f"z/b{i}", 1) for i in range(6, 0, -1)]) == expected
    st = status_json(root)
    assert [(m["from"], m["to"]) for m in st["moved"]] == expected
    c = json.loads(ok(run_dsv(root, "commit", "-m", "move", "--json")).stdout)
    assert c["changes"] == {"added": 0, "removed": 0, "modified": 0, "moved": 6}
    d = json.loads(ok(run_dsv(root, "diff", "HEAD~1", "HEAD", "--json")).stdout)
    assert [(x["old_path"], x["path"]) for x in d["files"]["changes"] if x["kind"] == "moved"] == expected


def test_sample_diff_pairs_moves_as_the_file_diff_does(tmp_path: Path) -> None:
    """Identical images moved between classes: the relabels follow the file diff's pairs,
    even when a file outside the source holds the same bytes."""
    root = tmp_path / "repo"
    same = b"identical image\n"
    make_repo(root, {"aaa/x.png": same, "img/cat/a1.png": same, "img/dog/a2.png": same, "img/cat/a3.png": same})
    for p in ("aaa/x.png", "img/cat/a1.png", "img/dog/a2.png", "img/cat/a3.png"):
        (root / p).unlink()
    write_files(root, {"img/dog/b1.png": same, "img/bird/b2.png": same, "img/bird/b3.png": same})
    ok(run_dsv(root, "commit", "-m", "move"))
    d = json.loads(ok(run_dsv(root, "diff", "HEAD~1", "HEAD", "--folder", "img/{label}/*", "--json")).stdout)
    pairs = {x["old_path"]: x["path"] for x in d["files"]["changes"] if x["kind"] == "moved"}
    # Path order on both sides: aaa/x, cat/a1, cat/a3, dog/a2 -> bird/b2, bird/b3, dog/b1.
    assert pairs == {"aaa/x.png": "img/bird/b2.png", "img/cat/a1.png": "img/bird/b3.png", "img/cat/a3.png": "img/dog/b1.png"}
    src = d["sources"][0]
    got = {(r["from"], r["to"]): r["count"] for r in src["relabels"]}
    assert got == {("cat", "bird"): 1, ("cat", "dog"): 1}, got
    # dog/a2 was removed; bird/b2 arrived from outside the source: an addition.
    assert src["totals"]["added"] == 1 and src["totals"]["removed"] == 1, src["totals"]


def test_folders_swapped_for_symlinks_during_the_switch_are_never_written_or_deleted_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, staging_kind: str
) -> None:
    # Found by an outside attack: a folder replaced by a symlink to elsewhere while the switch
    # ran had the new files linked in through the symlink. Every change now goes through a
    # descriptor of the real folder (checkout._Folders).
    import dsv.worktree.checkout as co

    root = tmp_path / "repo"
    outside = tmp_path / "outside"
    outside.mkdir()
    v1 = {**{f"b/f{i}": b"v1 %d\n" % i for i in range(20)}, **{f"c/g{i}": b"c %d\n" % i for i in range(5)}, "a/x": b"a1\n"}
    c1 = make_repo(root, v1, "v1")
    v2 = {**{f"b/f{i}": b"v2 %d\n" % i for i in range(20)}, "a/x": b"a2\n", "n/new.txt": b"in a new folder\n"}
    c2 = commit(root, v2, "v2", remove=tuple(p for p in v1 if p.startswith("c/")))
    ok(run_dsv(root, "checkout", c1))
    names = [f"f{i}" for i in range(20)] + [f"g{i}" for i in range(5)] + ["new.txt"]
    for n in names[:-1]:
        (outside / n).write_bytes(b"OUTSIDE\n")

    real = co._remove_tracked
    swapped: list[str] = []

    def swap_then_remove(folders: object, path: str, *rest: object) -> bool:
        if not swapped:  # the switch has begun: swap b and c for links, and put one where n goes
            for d in ("b", "c"):
                os.rename(root / d, root / f"{d}.moved")
                os.symlink(outside, root / d)
            os.symlink(outside, root / "n")
            swapped.append("yes")
        return real(folders, path, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(co, "_remove_tracked", swap_then_remove)
    with pytest.raises(dsv.DsvError) as info:
        dsv.Repo(root).checkout(c2)
    assert swapped
    from dsv.base.errors import UnsafePathError

    assert isinstance(info.value, UnsafePathError) and info.value.path == "n", info.value.message
    assert sorted(os.listdir(outside)) == sorted(names[:-1])
    assert all((outside / n).read_bytes() == b"OUTSIDE\n" for n in names[:-1])
    # b's files went to the real folder (opened while staging), c's were not deleted through the link.
    assert {p.name: p.read_bytes() for p in (root / "b.moved").iterdir()} == {f"f{i}": b"v2 %d\n" % i for i in range(20)}
    assert len(list((root / "c.moved").iterdir())) == 5
