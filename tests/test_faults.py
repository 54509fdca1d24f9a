"""Fault injection: crashes, failing writes, corruption, hostile manifests, racy stat caches.

Each test drives a real repository under ``tmp_path``; process-level faults run the
installed CLI as a subprocess (``python -m dsv``), in-process faults patch ``os``
functions around :class:`dsv.Repo` calls.
"""

from __future__ import annotations

import errno
import json
import os
import random
import resource
import shutil
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import dsv  # noqa: E402
from dsv.base.errors import StorageError, UnsafePathError  # noqa: E402
from faultutil import (  # noqa: E402
    BIG,
    damage_chunk,
    assert_fsck_clean,
    assert_one_line_error,
    dsv_cmd,
    dsv_env,
    log_entries,
    log_ids,
    object_files,
    ok,
    random_dataset,
    read_tree,
    run_dsv,
    start_dsv,
    tree_listing,
    visible_objects,
    write_files,
)


def assert_same_tree(actual: dict[str, bytes], expected: dict[str, bytes], what: str) -> None:
    """Compare two trees, naming a few differing paths instead of dumping megabytes."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    differ = sorted(p for p in set(actual) & set(expected) if actual[p] != expected[p])
    assert not (missing or extra or differ), f"{what}: missing {missing[:5]}, extra {extra[:5]}, differ {differ[:5]}"


def make_repo(path: Path, files: dict[str, bytes], message: str = "initial") -> str:
    """A repository at ``path`` with ``files`` committed; returns the commit id."""
    path.mkdir(parents=True, exist_ok=True)
    write_files(path, files)
    repo = dsv.Repo.init(path)
    return repo.commit(message).id


# -- 1. SIGKILL during commit ---------------------------------------------------------------


def _mutate(rng: random.Random, root: Path, tree: dict[str, bytes], step: int) -> None:
    """Change a good part of the tree: rewrite, add, delete, move, and every other step a big file."""
    small = sorted(p for p in tree if p.startswith("data/"))
    for p in rng.sample(small, 300):
        tree[p] = rng.randbytes(rng.randint(1, 400))
        write_files(root, {p: tree[p]})
    for p in rng.sample(small, 30):
        if p in tree:
            del tree[p]
            (root / p).unlink()
    for p in rng.sample(sorted(p for p in tree if p.startswith("data/")), 10):
        new = f"moved/s{step}/{p.rsplit('/', 1)[1]}"
        tree[new] = tree.pop(p)
        (root / new).parent.mkdir(parents=True, exist_ok=True)
        os.rename(root / p, root / new)
    for i in range(30):
        p = f"data/new{step}/n{i}.bin"
        tree[p] = rng.randbytes(rng.randint(1, 400))
        write_files(root, {p: tree[p]})
    if step % 2 == 0:
        p = f"big/blob{step // 2 % 2}.bin"
        tree[p] = rng.randbytes(BIG + rng.randint(0, 4096))
        write_files(root, {p: tree[p]})


def _checkout_and_compare(root: Path, rev: str, expected: dict[str, bytes]) -> None:
    ok(run_dsv(root, "checkout", rev))
    assert_same_tree(read_tree(root), expected, f"checkout {rev}")


@pytest.mark.slow
def test_commit_killed_at_random_moments_lands_whole_or_not_at_all(tmp_path: Path) -> None:
    rng = random.Random(0xD5F1)
    root = tmp_path / "repo"
    root.mkdir()
    tree = random_dataset(rng, 3000, 2)
    write_files(root, tree)
    ok(run_dsv(root, "init"))
    t0 = time.monotonic()
    ok(run_dsv(root, "commit", "-m", "initial"))
    duration = time.monotonic() - t0  # startup included: kills land in every phase
    history = log_ids(root)
    snapshots = {history[0]: dict(tree)}
    outcomes = []
    for step in range(8):
        _mutate(rng, root, tree, step)
        delay = rng.uniform(0.0, duration * 1.1)
        proc = start_dsv(root, "-q", "commit", "-m", f"killed-{step}", start_new_session=True)
        time.sleep(delay)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: a forked scan helper dies too
        except ProcessLookupError:
            pass
        proc.communicate()

        assert_fsck_clean(root)
        entries = log_entries(root)
        ids = [e["id"] for e in entries]
        landed = ids != history
        if landed:
            assert ids[1:] == history, f"step {step}: history rewritten, not extended"
            assert entries[0]["message"] == f"killed-{step}"
            assert entries[0]["parents"] == [history[0]]
        outcomes.append((round(delay, 3), proc.returncode, landed))

        res = run_dsv(root, "commit", "-m", f"after-{step}", "--json")
        if landed:
            assert_one_line_error(res.stderr, res.returncode, contains=["nothing to commit"])
            new = ids[0]
        else:
            ok(res)
            new = json.loads(res.stdout)["id"]
            assert log_ids(root) == [new, *history]
        snapshots[new] = dict(tree)
        history = [new, *history]
        assert_same_tree(read_tree(root), tree, f"working tree after step {step}")  # commit never writes it

    # Killed commits leave only garbage: gc sweeps it and every commit (each made right
    # after a kill) still checks out byte for byte.
    ok(run_dsv(root, "gc", "--grace", "0"))
    assert_fsck_clean(root)
    assert not os.listdir(root / ".dsv" / "objects" / "tmp")
    order = list(snapshots)
    rng.shuffle(order)
    for cid in order:
        _checkout_and_compare(root, cid, snapshots[cid])
    _checkout_and_compare(root, "main", tree)
    print("kill outcomes (delay, exit, landed):", outcomes)


# -- 2a. file-size limit in a child process -------------------------------------------------


def _limited(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so the write fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


@pytest.mark.parametrize(
    "kind",
    ["loose", "pack"],
)
def test_commit_beyond_file_size_limit_fails_cleanly(tmp_path: Path, kind: str) -> None:
    import subprocess

    rng = random.Random(7)
    root = tmp_path / "repo"
    make_repo(root, {"keep.txt": b"keep me\n"})
    if kind == "loose":
        write_files(root, {"big.bin": rng.randbytes(BIG)})
        limit = 4 * 1024 * 1024
    else:
        write_files(root, {f"many/f{i}.bin": rng.randbytes(2048) for i in range(1500)})
        limit = 1024 * 1024
    before_log = log_ids(root)
    before_objects = visible_objects(root)
    before_files = object_files(root)
    res = subprocess.run(
        dsv_cmd("commit", "-m", "too big"),
        cwd=root,
        env=dsv_env(),
        capture_output=True,
        text=True,
        preexec_fn=_limited(limit),
        timeout=120,
    )
    line = assert_one_line_error(res.stderr, res.returncode)
    assert "too large" in line.lower() or "space" in line.lower(), line
    assert log_ids(root) == before_log
    assert_fsck_clean(root)
    assert visible_objects(root) == before_objects
    assert object_files(root) == before_files, "the failed commit left files in .dsv/objects"
    assert not os.listdir(root / ".dsv" / "locks")
    # Without the limit the same commit goes through.
    ok(run_dsv(root, "commit", "-m", "fits now"))
    assert len(log_ids(root)) == 2


# -- 2b. disk full after N writes, in process -----------------------------------------------


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


class DiskFull:
    """An ``os.write`` replacement: the first ``fail_at`` writes pass, then the disk is full.

    Only writes to files under ``scope`` count (never stdout/stderr); ``locks=False``
    spares lock files.
    """

    def __init__(self, scope: str, fail_at: int | None, *, locks: bool = True, code: int = errno.ENOSPC) -> None:
        self.real = os.write
        self.real_writev = os.writev
        self.scope = scope
        self.fail_at = fail_at
        self.locks = locks
        self.code = code
        self.calls = 0
        self.failed = 0
        self._lock = threading.Lock()

    def _count(self, fd: int) -> None:
        if fd > 2:
            target = _fd_path(fd)
            if target.startswith(self.scope) and (self.locks or not target.endswith(".lock")):
                with self._lock:
                    n = self.calls
                    self.calls += 1
                if self.fail_at is not None and n >= self.fail_at:
                    self.failed += 1
                    raise OSError(self.code, os.strerror(self.code))

    def __call__(self, fd: int, data: object) -> int:
        self._count(fd)
        return self.real(fd, data)  # type: ignore[arg-type]

    def writev(self, fd: int, buffers: object) -> int:
        """The same for ``os.writev`` (pack writers write several buffers at once)."""
        self._count(fd)
        return self.real_writev(fd, buffers)  # type: ignore[arg-type]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Replace both ``os.write`` and ``os.writev``."""
        monkeypatch.setattr(os, "write", self)
        monkeypatch.setattr(os, "writev", self.writev)


def _pending_change_template(tmp_path: Path) -> Path:
    """A repository with one commit and a pending change: small files and one big file."""
    rng = random.Random(11)
    root = tmp_path / "template"
    make_repo(root, random_dataset(rng, 40))
    files = {f"data/d00/changed{i}.bin": rng.randbytes(300) for i in range(60)}
    files["big/blob.bin"] = rng.randbytes(BIG + 17)
    write_files(root, files)
    return root


def _assert_untouched_after_failure(root: Path, head_before: str) -> None:
    repo = dsv.Repo(root)
    assert repo.repository.refs.head().commit == head_before
    assert repo.repository.refs.head().branch == "main"
    report = repo.fsck()
    assert report.ok, [p.to_dict() for p in report.problems]
    assert not os.listdir(root / ".dsv" / "locks"), "a lock was left behind"
    assert not [n for n in os.listdir(root / ".dsv" / "refs" / "heads") if n != "main"], "ref lock or temp left behind"
    assert not os.listdir(root / ".dsv" / "objects" / "tmp"), "temp objects were not cleaned up"


def test_disk_full_at_every_write_of_a_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = _pending_change_template(tmp_path)
    head_before = dsv.Repo(template).repository.refs.head().commit
    assert head_before is not None

    # Count the writes a successful commit makes.
    probe = tmp_path / "probe"
    shutil.copytree(template, probe, symlinks=True)
    counter = DiskFull(str(probe), None)
    counter.install(monkeypatch)
    dsv.Repo(probe).commit("probe")
    monkeypatch.undo()
    total = counter.calls
    assert total >= 4, f"only {total} writes counted; the fault never reaches the store"

    failures = 0
    for n in range(total):
        root = tmp_path / f"n{n}"
        shutil.copytree(template, root, symlinks=True)
        expected = read_tree(root)
        fault = DiskFull(str(root), n)
        fault.install(monkeypatch)
        try:
            res = dsv.Repo(root).commit(f"write {n} fails")
        except StorageError as err:
            monkeypatch.undo()
            failures += 1
            assert err.errno == errno.ENOSPC, err
            assert "\n" not in err.message
            _assert_untouched_after_failure(root, head_before)
        else:
            # Only a best-effort write (the stat cache) may fail without failing the commit;
            # then the commit must be complete.
            monkeypatch.undo()
            assert fault.failed, f"write {n} was never attempted"
            assert_fsck_clean(root)
            repo = dsv.Repo(root)
            assert {f.path: repo.read_file(res.id, f.path) for f in repo.ls(res.id)} == expected
            continue
        # Space is back: the same commit now succeeds and stores exactly the tree.
        repo = dsv.Repo(root)
        res = repo.commit("retry")
        assert repo.log()[1].id == head_before
        assert {f.path: repo.read_file(res.id, f.path) for f in repo.ls(res.id)} == expected
    assert failures >= total - 1, f"{total - failures} failing writes did not fail the commit"
    print(f"{total} writes per commit; {failures} injected failures failed the commit")


class FailingFsync:
    """An ``os.fsync`` replacement failing with EIO from the ``fail_at``-th fsync of a regular file under ``scope``."""

    def __init__(self, scope: str, fail_at: int | None) -> None:
        self.real = os.fsync
        self.scope = scope
        self.fail_at = fail_at
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, fd: int) -> None:
        import stat as statmod

        if statmod.S_ISREG(os.fstat(fd).st_mode) and _fd_path(fd).startswith(self.scope):
            with self._lock:
                n = self.calls
                self.calls += 1
            if self.fail_at is not None and n >= self.fail_at:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        self.real(fd)


def test_fsync_failure_at_every_file_of_a_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    template = _pending_change_template(tmp_path)
    head_before = dsv.Repo(template).repository.refs.head().commit
    probe = tmp_path / "probe"
    shutil.copytree(template, probe, symlinks=True)
    counter = FailingFsync(str(probe), None)
    monkeypatch.setattr(os, "fsync", counter)
    dsv.Repo(probe).commit("probe")
    monkeypatch.undo()
    assert counter.calls >= 3  # loose object, pack, index, ref...
    for n in range(counter.calls):
        root = tmp_path / f"n{n}"
        shutil.copytree(template, root, symlinks=True)
        monkeypatch.setattr(os, "fsync", FailingFsync(str(root), n))
        with pytest.raises(StorageError) as exc:
            dsv.Repo(root).commit(f"fsync {n} fails")
        monkeypatch.undo()
        assert exc.value.errno == errno.EIO
        _assert_untouched_after_failure(root, head_before)  # type: ignore[arg-type]
        dsv.Repo(root).commit("retry")


def test_failed_directory_sync_after_ref_move_is_not_reported_as_nothing_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dsv.base.fsio as fsio

    root = tmp_path / "repo"
    head = make_repo(root, {"a.txt": b"a"})
    write_files(root, {"b.txt": b"b"})
    heads_dir = str(root / ".dsv" / "refs" / "heads")
    real = fsio.fsync_dir

    def failing(path):  # type: ignore[no-untyped-def]
        if os.fspath(path) == heads_dir:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(path)

    monkeypatch.setattr(fsio, "fsync_dir", failing)
    try:
        dsv.Repo(root).commit("dir sync fails")
        raised = False
    except StorageError:
        raised = True
    monkeypatch.undo()
    moved = dsv.Repo(root).repository.refs.head().commit != head
    assert raised != moved, f"commit {'raised' if raised else 'returned'} but the branch {'moved' if moved else 'did not move'}"


def test_disk_full_through_the_cli_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from dsv.cli import main

    root = tmp_path / "repo"
    make_repo(root, {"a.txt": b"a"})
    write_files(root, {"big.bin": random.Random(3).randbytes(BIG)})
    head = dsv.Repo(root).repository.refs.head().commit
    monkeypatch.chdir(root)
    DiskFull(str(root), 1).install(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        main(["-q", "commit", "-m", "full"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert exc.value.code not in (0, None)
    line = assert_one_line_error(err, int(exc.value.code))
    assert "No space left on device" in line
    _assert_untouched_after_failure(root, head)  # type: ignore[arg-type]


def test_disk_full_while_writing_the_lock_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the failed lock write once escaped as a bare OSError and left an empty lock behind."""
    root = tmp_path / "repo"
    make_repo(root, {"a.txt": b"a"})
    repo = dsv.Repo(root)
    repo.repository.set_config({"core.lock_timeout": 1.0})
    head = repo.repository.refs.head().commit
    write_files(root, {"b.txt": b"b"})
    DiskFull(str(root), 0, locks=True).install(monkeypatch)
    try:
        with pytest.raises(StorageError):
            dsv.Repo(root).commit("lock write fails")
    finally:
        monkeypatch.undo()
    assert dsv.Repo(root).repository.refs.head().commit == head
    assert not os.listdir(root / ".dsv" / "locks"), "an empty lock file was left behind"
    dsv.Repo(root).commit("works again")


# -- 3. corrupted and missing objects -------------------------------------------------------


def _pack_location(root: Path, oid: str) -> tuple[Path, int, int]:
    """``(pack file, data offset, length)`` of a packed object."""
    from dsv.store.pack import decode_index

    packs = root / ".dsv" / "objects" / "packs"
    raw = bytes.fromhex(oid)
    for idx in sorted(packs.glob("*.idx")):
        index = decode_index(idx.read_bytes(), what=str(idx))
        if raw in index.ids:
            i = index.ids.index(raw)
            return idx.with_suffix(".pack"), index.offsets[i], index.lengths[i]
    raise AssertionError(f"{oid} is not packed")


def _flip(path: Path, offset: int) -> None:
    mode = path.stat().st_mode
    path.chmod(0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))
    path.chmod(mode)


@pytest.fixture
def two_commits(tmp_path: Path) -> tuple[Path, str, str, dict[str, bytes], dict[str, bytes]]:
    """A repository where c2 changes exactly one small and one big file of c1."""
    rng = random.Random(5)
    root = tmp_path / "repo"
    t1 = random_dataset(rng, 50, 1)
    c1 = make_repo(root, t1, "c1")
    t2 = dict(t1)
    t2["data/d01/f00001.bin"] = b"version two\n"
    t2["big/blob0.bin"] = rng.randbytes(BIG + 5)
    write_files(root, t2)
    c2 = dsv.Repo(root).commit("c2").id
    return root, c1, c2, t1, t2


def _oid_of(root: Path, rev: str, path: str) -> str:
    return next(f.oid for f in dsv.Repo(root).ls(rev) if f.path == path)


def _assert_fsck_names(root: Path, oid: str, actual: str | None, user: str) -> None:
    res = run_dsv(root, "fsck")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stdout.splitlines() if oid in ln]
    assert lines, res.stdout
    text = "\n".join(lines)
    if actual is not None:
        assert f"expected {oid}" in text and f"got {actual}" in text, text
    assert user in text, text
    js = json.loads(run_dsv(root, "fsck", "--json").stdout)
    assert js["ok"] is False
    assert any(p["oid"] == oid for p in js["problems"])


@pytest.mark.parametrize("where", ["pack", "chunk"])
def test_corrupt_object_is_reported_and_never_checked_out(two_commits, where: str) -> None:
    from dsv.base.hashing import hash_bytes

    root, c1, c2, t1, t2 = two_commits
    path = "data/d01/f00001.bin" if where == "pack" else "big/blob0.bin"
    oid = _oid_of(root, c1, path)
    if where == "pack":
        pack, off, length = _pack_location(root, oid)
        _flip(pack, off + length // 2)
        corrupt = bytearray(t1[path])
        corrupt[length // 2] ^= 0x5A
        _assert_fsck_names(root, oid, hash_bytes(bytes(corrupt)), f"commit {c1}:{path}")
    else:
        chunk = damage_chunk(root, oid)
        # The chunk and the big file that needs it are both named, with the file's users.
        _assert_fsck_names(root, oid, None, f"commit {c1}:{path}")
        assert chunk in run_dsv(root, "fsck").stdout

    before = read_tree(root)
    assert_same_tree(before, t2, "before")
    head = dsv.Repo(root).repository.refs.head()
    # Whole-tree checkout, then a path checkout: both refuse, the file keeps its good version.
    for args in (["checkout", c1], ["checkout", c1, path], ["checkout", "-f", c1]):
        res = run_dsv(root, *args)
        assert_one_line_error(res.stderr, res.returncode, contains=[oid])
        now = read_tree(root)
        assert now[path] == t2[path], f"{args}: corrupt bytes reached the working tree"
        for p, data in now.items():
            assert data in (t1.get(p), t2.get(p)), f"{args}: {p} holds neither version"
        assert not [p for p in now if ".dsv-" in p], f"{args}: temp file left in the working tree"
        assert dsv.Repo(root).repository.refs.head() == head
    res = run_dsv(root, "cat", f"{c1}:{path}", text=False)
    assert_one_line_error(res.stderr, res.returncode, contains=[oid])
    if where == "pack":
        assert res.stdout == b"", "cat printed unverified bytes"
    # The good version is still readable.
    assert ok(run_dsv(root, "cat", f"{c2}:data/d01/f00001.bin")).stdout == "version two\n"


def test_cat_of_corrupt_big_object_prints_nothing(two_commits) -> None:
    """Regression: cat once streamed every unverified byte before failing at the end."""
    root, c1, c2, t1, t2 = two_commits
    oid = _oid_of(root, c1, "big/blob0.bin")
    damage_chunk(root, oid)
    res = run_dsv(root, "cat", f"{c1}:big/blob0.bin", text=False)
    assert_one_line_error(res.stderr, res.returncode, contains=[oid])
    assert res.stdout == b"", f"cat wrote {len(res.stdout)} unverified bytes to stdout"


def test_missing_chunk_is_reported(two_commits) -> None:
    root, c1, c2, t1, t2 = two_commits
    oid = _oid_of(root, c1, "big/blob0.bin")
    chunk = damage_chunk(root, oid, remove=True)
    res = run_dsv(root, "fsck")
    assert res.returncode == 1
    line = next(ln for ln in res.stdout.splitlines() if oid in ln)
    assert "missing" in line and chunk in line and f"commit {c1}:big/blob0.bin" in line, line
    res = run_dsv(root, "checkout", c1)
    assert_one_line_error(res.stderr, res.returncode, contains=[oid])
    after = {p: d for p, d in read_tree(root).items() if p in t2}  # leftover temp files: see the next test
    assert_same_tree(after, t2, "after failed checkout")
    assert dsv.Repo(root).repository.refs.head().commit == c2


def test_checkout_of_missing_object_leaves_no_temp_file(two_commits) -> None:
    """Regression: a missing object once left the checkout's temp file in the working tree."""
    root, c1, c2, t1, t2 = two_commits
    oid = _oid_of(root, c1, "big/blob0.bin")
    damage_chunk(root, oid, remove=True)
    res = run_dsv(root, "checkout", c1, "big/blob0.bin")
    assert_one_line_error(res.stderr, res.returncode, contains=[oid])
    assert_same_tree(read_tree(root), t2, "after failed checkout")


# -- 4. hostile manifests and symlinks ------------------------------------------------------


def _forge_commit(root: Path, branch: str, entries: list[tuple[str, bytes, int]]) -> str:
    """Store a commit whose manifest holds ``entries`` verbatim and point ``branch`` at it."""
    from dsv.history.objects import Commit, CommitSummary, now
    from dsv.manifest import entries_table, write_manifest

    r = dsv.Repo(root).repository
    writer = r.store.begin_write()
    oids = [bytes.fromhex(writer.add_bytes(data)) for _, data, _ in entries]
    table = entries_table([p for p, _, _ in entries], oids, [len(d) for _, d, _ in entries], [m for _, _, m in entries])
    manifest = write_manifest(table, writer)
    head = r.refs.head().commit
    commit = Commit(
        manifest=manifest,
        parents=(head,) if head else (),
        author="mallory",
        email="m@example.invalid",
        time=now(),
        message="hostile",
        summary=CommitSummary(files=len(entries), bytes=sum(len(d) for _, d, _ in entries)),
    )
    cid = writer.add_bytes(commit.to_json_bytes())
    writer.commit()
    r.refs.update(f"refs/heads/{branch}", cid, expected=None)
    return cid


def _whole_listing(base: Path) -> dict[str, tuple[int, int, int]]:
    """Everything below ``base`` except the bookkeeping inside ``.dsv`` that a failed command may touch."""
    out = {k: v for k, v in tree_listing(base).items() if "/.dsv/locks" not in "/" + k and not k.endswith(".dsv/statcache")}
    # The .dsv folder's own mtime moves when a lock file (HEAD.lock) comes and goes; its entries are compared.
    return {k: (v if not k.endswith(".dsv") else v[:2]) for k, v in out.items()}


ABS_NAME = f"dsv-evil-{uuid.uuid4().hex[:8]}"
HOSTILE = [
    "../evil",
    "../../../evil-top",
    f"/{ABS_NAME}",
    "a/../../x",
    "sub/../../../../y",
    ".dsv/config.json",
    ".dsv",
    ".dsv/refs/heads/main",
    "a\x00b",
    "",
    ".",
    "a//b",
    "a/./b",
]


@pytest.mark.parametrize("bad", HOSTILE, ids=[repr(p) for p in HOSTILE])
def test_checkout_refuses_hostile_manifest_paths(tmp_path: Path, bad: str) -> None:
    outer = tmp_path / "outer"
    root = outer / "repo"
    make_repo(root, {"keep.txt": b"keep\n", "zzz/last.txt": b"last\n"})
    _forge_commit(
        root,
        "evil",
        [("aaa/first.txt", b"written before the bad path?\n", 0o100644), ("keep.txt", b"overwritten!\n", 0o100644), (bad, b"PWNED\n", 0o100644)],
    )
    parent_before = sorted(os.listdir(tmp_path.parent))
    before = _whole_listing(tmp_path)
    config = (root / ".dsv" / "config.json").read_bytes()

    def unchanged(what: str) -> None:
        assert _whole_listing(tmp_path) == before, f"{what}: something was written"
        assert sorted(os.listdir(tmp_path.parent)) == parent_before
        assert not os.path.lexists(f"/{ABS_NAME}")
        assert (root / ".dsv" / "config.json").read_bytes() == config
        assert dsv.Repo(root).repository.refs.head().branch == "main"

    res = run_dsv(root, "checkout", "evil")
    assert_one_line_error(res.stderr, res.returncode, contains=["unsafe path"])
    unchanged("dsv checkout evil")
    with pytest.raises(UnsafePathError):
        dsv.Repo(root).checkout("evil", force=True)
    unchanged("Repo.checkout('evil', force=True)")
    # fsck names the hostile path too.
    report = dsv.Repo(root).fsck()
    assert [p.kind for p in report.problems] == ["unsafe-path"], report.problems


def test_checkout_never_writes_through_an_untracked_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x").write_bytes(b"outside original\n")
    root = tmp_path / "repo"
    make_repo(root, {"data/link/x": b"inside x\n", "data/other.txt": b"o\n"}, "with folder")
    c1 = dsv.Repo(root).log()[0].id
    shutil.rmtree(root / "data" / "link")
    dsv.Repo(root).commit("without folder")
    os.symlink(outside, root / "data" / "link")  # untracked, pointing out of the tree
    before_out = read_tree(outside)
    for args in (["checkout", c1], ["checkout", "-f", c1], ["checkout", c1, "data/link/x"], ["checkout", "-f", c1, "data/link"]):
        res = run_dsv(root, *args)
        assert_one_line_error(res.stderr, res.returncode)
        assert read_tree(outside) == before_out, f"{args} wrote through the symlink"
        assert not [n for n in os.listdir(outside) if n != "x"]
        assert os.readlink(root / "data" / "link") == str(outside)


def test_checkout_never_deletes_through_a_symlinked_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "repo"
    make_repo(root, {"data/sub/x": b"x\n", "data/sub/y": b"y\n", "keep.txt": b"k\n"}, "c1")
    c1 = dsv.Repo(root).log()[0].id
    (root / "data" / "sub" / "y").unlink()
    dsv.Repo(root).commit("c2 drops y")
    ok(run_dsv(root, "checkout", c1))
    # The tracked folder is swapped for a link to a folder holding files of the same names.
    shutil.rmtree(root / "data" / "sub")
    os.symlink(outside, root / "data" / "sub")
    write_files(outside, {"x": b"x\n", "y": b"precious\n"})
    before = read_tree(outside)
    for args in (["checkout", "main"], ["checkout", "-f", "main"]):
        res = run_dsv(root, *args)
        if res.returncode:
            assert_one_line_error(res.stderr, res.returncode)
        assert read_tree(outside) == before, f"{args} deleted or changed a file through the symlink"
    assert os.path.islink(root / "data" / "sub") or not os.path.lexists(root / "data" / "sub" / "y")


def test_checkout_never_writes_through_a_symlink_from_the_manifest(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "repo"
    make_repo(root, {"keep.txt": b"k\n"})
    _forge_commit(
        root,
        "evil",
        [("data/link", os.fsencode(str(outside)), 0o120000), ("data/link/x", b"PWNED\n", 0o100644), ("keep.txt", b"k\n", 0o100644)],
    )
    res = run_dsv(root, "checkout", "evil")
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    assert_one_line_error(res.stderr, res.returncode)
    assert os.listdir(outside) == [], "a file was written through the manifest's own symlink"


def test_checkout_replaces_a_tracked_symlink_with_a_real_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "repo"
    make_repo(root, {"data/link/x": b"inside x\n"}, "folder")
    c1 = dsv.Repo(root).log()[0].id
    shutil.rmtree(root / "data" / "link")
    os.symlink(outside, root / "data" / "link")
    dsv.Repo(root).commit("symlink")  # the symlink itself is tracked now
    ok(run_dsv(root, "checkout", c1))
    assert not (root / "data" / "link").is_symlink()
    assert (root / "data" / "link" / "x").read_bytes() == b"inside x\n"
    assert os.listdir(outside) == []


# -- 5. racy stat cache ---------------------------------------------------------------------


def _committed(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "repo"
    make_repo(root, {"data/a.txt": b"AAAAAAAA", "data/b.txt": b"bbbbbbbb", "c.txt": b"c"})
    repo = dsv.Repo(root)
    assert repo.status().clean
    return root, root / "data" / "a.txt"


def _rewrite_same_size(path: Path) -> None:
    old = path.read_bytes()
    new = bytes(b ^ 0x20 for b in old)
    assert len(new) == len(old) and new != old
    path.write_bytes(new)


def test_status_sees_same_size_rewrite_with_restored_mtime(tmp_path: Path) -> None:
    root, f = _committed(tmp_path)
    st = os.stat(f)
    _rewrite_same_size(f)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(f)
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert dsv.Repo(root).status().modified == ("data/a.txt",)
    out = json.loads(ok(run_dsv(root, "status", "--json")).stdout)
    assert out["modified"] == ["data/a.txt"]


def test_status_sees_change_when_file_and_cache_share_an_mtime(tmp_path: Path) -> None:
    root, f = _committed(tmp_path)
    cache = root / ".dsv" / "statcache"
    assert cache.exists()
    _rewrite_same_size(f)
    t = os.stat(f).st_mtime_ns
    os.utime(f, ns=(t, t))
    os.utime(cache, ns=(t, t))
    assert dsv.Repo(root).status().modified == ("data/a.txt",)
    assert json.loads(ok(run_dsv(root, "status", "--json")).stdout)["modified"] == ["data/a.txt"]


def test_racy_entry_is_rehashed_even_when_its_stat_key_matches(tmp_path: Path) -> None:
    """Isolates the racy rule: the cached key equals the file's stat, only the cache's mtime differs."""
    from dsv.worktree import statcache

    root, f = _committed(tmp_path)
    cache_path = str(root / ".dsv" / "statcache")
    _rewrite_same_size(f)
    st = os.lstat(f)
    time.sleep(0.05)  # file timestamps come from a coarse clock: let it tick past the rewrite

    def forge() -> None:
        # As if the cache had been written right after the rewrite, in the same clock tick.
        cache = statcache.load(cache_path)
        assert cache is not None
        row = cache.index["data/a.txt"]
        cache.set_key(row, statcache.stat_key(st, cache.modes[row]))
        statcache.save(cache_path, cache)

    forge()
    # Control: a cache written strictly after the file is trusted (no re-hash, change unseen).
    assert os.stat(cache_path).st_mtime_ns > max(st.st_mtime_ns, st.st_ctime_ns)
    assert dsv.Repo(root).status().clean
    # Racy: the cache's mtime equals the file's; the entry must not be trusted.
    forge()
    os.utime(cache_path, ns=(st.st_mtime_ns, st.st_mtime_ns))
    assert dsv.Repo(root).status().modified == ("data/a.txt",)


# -- 8. unreadable file during commit -------------------------------------------------------


@pytest.mark.parametrize("victim", ["data/d03/f00003.bin", "big/blob1.bin"])
def test_unreadable_file_fails_commit_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, victim: str, capsys) -> None:
    from dsv.cli import main

    rng = random.Random(9)
    root = tmp_path / "repo"
    head = make_repo(root, random_dataset(rng, 20))
    write_files(root, random_dataset(random.Random(10), 100, 2))
    target = str(root / victim)
    real_open = os.open

    def guarded_open(path, flags, *args, **kw):  # type: ignore[no-untyped-def]
        if os.fspath(path) == target:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", guarded_open)
    with pytest.raises(StorageError) as exc:
        dsv.Repo(root).commit("cannot read")
    assert exc.value.path == target and exc.value.errno == errno.EACCES
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with pytest.raises(SystemExit) as sysexit:
            main(["-q", "commit", "-m", "cannot read"])
    finally:
        os.chdir(cwd)
    monkeypatch.undo()
    line = assert_one_line_error(capsys.readouterr().err, int(sysexit.value.code))
    assert target in line and "Permission denied" in line
    _assert_untouched_after_failure(root, head)
    res = dsv.Repo(root).commit("readable again")
    assert dsv.Repo(root).read_file(res.id, victim) == (root / victim).read_bytes()


def test_atomic_write_of_parts_survives_short_writev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The stat cache is written as parts with one writev; a short writev must still write every byte in order.
    from dsv.base import fsio

    parts = [b"abc", bytearray(), memoryview(b"defg"), b"h" * 100_000]
    real = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, bufs: real(fd, [bytes(bufs[0])[:2]]))
    fsio.atomic_write_bytes(tmp_path / "x", parts, durable=False)
    assert (tmp_path / "x").read_bytes() == b"abcdefg" + b"h" * 100_000


def test_atomic_write_of_many_parts_writes_them_all(tmp_path: Path) -> None:
    from dsv.base import fsio

    parts = [bytes([i % 256]) * 3 for i in range(fsio.WRITEV_PARTS_MAX * 5)]
    fsio.atomic_write_bytes(tmp_path / "x", parts, durable=False)
    assert (tmp_path / "x").read_bytes() == b"".join(parts)


def test_short_writevs_in_every_batch_and_in_the_pack_writer_lose_no_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fsio.writev_all (shared by atomic writes and the pack writer) finishes every short writev."""
    from dsv.base import fsio
    from dsv.store.local import LocalObjectStore

    real = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, bufs: real(fd, [bytes(bufs[0])[:1]]))
    parts = [bytes([i % 256]) * 3 for i in range(fsio.WRITEV_PARTS_MAX * 3 + 7)]
    fsio.atomic_write_bytes(tmp_path / "x", parts, durable=False)
    assert (tmp_path / "x").read_bytes() == b"".join(parts)
    store = LocalObjectStore.create(str(tmp_path / "objects"))
    w = store.begin_write()
    blobs = [os.urandom(100 + i) for i in range(600)]
    ids = [w.add_bytes(b) for b in blobs]
    w.commit()
    fresh = LocalObjectStore(str(tmp_path / "objects"))
    assert [fresh.read(i) for i in ids] == blobs
