"""The file-system monitor (dsv.worktree.fsmonitor): status with it equals status without it.

Each test starts a real daemon (inotify) on a temporary repository and stops it
at the end. The main property: after any sequence of edits (modify, create,
delete, rename files and folders, chmod, symlinks, ignored paths, touching
without changing), ``status`` and ``commit`` with the monitor give exactly what
a full walk gives.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import dsv
from dsv.worktree import fsmonitor

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux only")


@pytest.fixture
def monitored(tmp_path: Path) -> Iterator[tuple[Path, dsv.Repo]]:
    root = tmp_path / "data"
    for i in range(40):
        p = root / f"d{i % 4}" / f"sub{i % 3}" / f"f{i}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(64))
    repo = dsv.Repo.init(root)
    repo.commit("v1")
    state = repo.fsmonitor_on()
    assert state["enabled"] and state["running"]
    try:
        yield root, repo
    finally:
        fsmonitor.request(str(root / ".dsv"), "stop")


def _full_status(root: Path) -> dict[str, object]:
    """Status by a full walk: the same repository, read with the monitor's answers ignored."""
    repo = dsv.Repo(root)
    real = repo._repo.monitor_session
    repo._repo.monitor_session = lambda cache: None  # type: ignore[method-assign]
    try:
        return repo.status().to_dict()
    finally:
        repo._repo.monitor_session = real  # type: ignore[method-assign]


def _monitored_status(root: Path) -> dict[str, object]:
    repo = dsv.Repo(root)
    session = repo._repo.monitor_session(repo._repo.load_statcache(repo._repo.refs.head().commit))
    assert session is not None and session.token is not None, "the daemon did not answer"
    return dsv.Repo(root).status().to_dict()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if ".dsv" not in p.parts and (p.is_file() or p.is_symlink()))


def _dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if ".dsv" not in p.parts and p.is_dir() and not p.is_symlink())


OPS = ["modify", "create", "delete", "rename", "mkdir-files", "rmdir", "move-dir", "chmod", "touch", "same-size", "symlink", "ignored"]


def _random_edit(rng: random.Random, root: Path, n: int, ops: list[str] = OPS) -> str:
    files, dirs = _files(root), _dirs(root)
    op = rng.choice(ops)
    if op == "modify" and files:
        p = rng.choice(files)
        if not p.is_symlink():
            with open(p, "ab") as f:
                f.write(b"x")
    elif op == "create":
        base = rng.choice(dirs) if dirs else root
        (base / f"new{n}.txt").write_bytes(os.urandom(16))
    elif op == "delete" and files:
        rng.choice(files).unlink()
    elif op == "rename" and files:
        p = rng.choice(files)
        base = rng.choice(dirs) if dirs else root
        p.rename(base / f"moved{n}{p.suffix}")
    elif op == "mkdir-files":
        base = rng.choice(dirs) if dirs else root
        d = base / f"nd{n}" / "deep"
        d.mkdir(parents=True)
        for k in range(3):
            (d / f"g{k}.bin").write_bytes(os.urandom(8))
    elif op == "rmdir" and dirs:
        shutil.rmtree(rng.choice(dirs))
    elif op == "move-dir" and dirs:
        d = rng.choice(dirs)
        target = root / f"md{n}"
        if not str(target).startswith(str(d) + os.sep):
            d.rename(target)
    elif op == "chmod" and files:
        p = rng.choice(files)
        if not p.is_symlink():
            p.chmod(p.stat().st_mode ^ 0o100)
    elif op == "touch" and files:
        p = rng.choice(files)
        if not p.is_symlink():
            os.utime(p)
    elif op == "same-size" and files:
        p = rng.choice(files)
        if not p.is_symlink():
            st = p.stat()
            data = bytearray(p.read_bytes())
            if data:
                data[0] ^= 0xFF
                p.write_bytes(bytes(data))
                os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # restored mtime: only ctime tells
    elif op == "symlink":
        base = rng.choice(dirs) if dirs else root
        os.symlink("target-nowhere", base / f"link{n}")
    elif op == "ignored":
        (root / ".dsvignore").write_text("*.tmp\nscratch/\n")
        (root / "scratch").mkdir(exist_ok=True)
        (root / "scratch" / f"s{n}.bin").write_bytes(b"s")
        (root / f"t{n}.tmp").write_bytes(b"t")
    return op


@pytest.mark.parametrize("seed", range(6))
def test_status_and_commit_with_the_monitor_match_a_full_walk(monitored: tuple[Path, dsv.Repo], seed: int) -> None:
    root, _ = monitored
    rng = random.Random(seed)
    for step in range(25):
        for k in range(rng.randint(1, 3)):
            _random_edit(rng, root, step * 10 + k)
        want = _full_status(root)
        got = _monitored_status(root)
        assert got == want, (seed, step)
        if rng.random() < 0.3:
            commit = dsv.Repo(root).commit(f"step {step}", allow_empty=True)
            assert commit.id
            assert _full_status(root)["clean"], "the monitored commit missed a change"
            assert _monitored_status(root)["clean"]


def test_a_folder_filled_right_after_it_is_created_is_seen(monitored: tuple[Path, dsv.Repo]) -> None:
    # Files written into a new folder before the daemon has added its watch are found
    # because the folder itself is reported and walked.
    root, _ = monitored
    for round_ in range(5):
        d = root / f"burst{round_}" / "a" / "b"
        d.mkdir(parents=True)
        for k in range(50):
            (d / f"x{k}").write_bytes(b"%d" % k)
        got = _monitored_status(root)
        assert len(got["added"]) == 50 * (round_ + 1)  # type: ignore[arg-type]
        assert got == _full_status(root)


def test_a_restarted_daemon_answers_full_then_settles(monitored: tuple[Path, dsv.Repo]) -> None:
    root, _ = monitored
    dsv_dir = str(root / ".dsv")
    _monitored_status(root)
    fsmonitor.request(dsv_dir, "stop")
    # Changes while no daemon runs are not seen by any monitor: the next one must walk.
    (root / "d0" / "sub0" / "f0.bin").write_bytes(b"changed while the monitor was down")
    st = dsv.Repo(root).status()  # starts a new daemon, walks the tree
    assert st.modified == ("d0/sub0/f0.bin",)
    assert fsmonitor.wait_until_running(dsv_dir)
    assert dsv.Repo(root).status().to_dict() == _full_status(root)
    assert _monitored_status(root)["modified"] == ["d0/sub0/f0.bin"]


def test_a_queue_overflow_means_walking_everything() -> None:
    m = fsmonitor.Monitor.__new__(fsmonitor.Monitor)
    m.ident, m.seq, m.changed, m.full_before, m.problem = "x", 5, {"a": 3}, 1, None
    token = m.answer(None)["token"]
    assert m.answer(token) == {"token": "x:6", "full": False, "paths": []}
    m.changed["b"] = m.seq
    m.full_before = m.seq + 1  # what IN_Q_OVERFLOW sets
    assert m.answer("x:6")["full"] is True
    assert m.answer("other:6")["full"] is True  # a token of another daemon


def test_state_of_another_stat_cache_is_not_trusted(monitored: tuple[Path, dsv.Repo]) -> None:
    root, _ = monitored
    _monitored_status(root)
    state_path = root / ".dsv" / "fsmonitor" / fsmonitor.STATE
    state = json.loads(state_path.read_text())
    state["statcache"][0] += 1  # another cache file than the one on disk
    state_path.write_text(json.dumps(state))
    repo = dsv.Repo(root)
    session = repo._repo.monitor_session(repo._repo.load_statcache(repo._repo.refs.head().commit))
    assert session is not None and session.changed is None


def test_cli_on_status_off(monitored: tuple[Path, dsv.Repo]) -> None:
    from click.testing import CliRunner

    from dsv.cli.app import cli

    root, _ = monitored
    runner = CliRunner()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        out = runner.invoke(cli, ["fsmonitor", "status", "--json"])
        assert out.exit_code == 0 and json.loads(out.output)["running"] is True
        out = runner.invoke(cli, ["fsmonitor", "off"])
        assert out.exit_code == 0 and "off" in out.output
        deadline = time.monotonic() + 5
        while fsmonitor.request(str(root / ".dsv"), "status") is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert json.loads(runner.invoke(cli, ["fsmonitor", "status", "--json"]).output) == {
            "enabled": False, "running": False, "pid": None, "watches": None, "problem": None}
        (root / "late.txt").write_text("x")
        assert dsv.Repo(root).status().added == ("late.txt",)
        assert fsmonitor.request(str(root / ".dsv"), "status") is None  # off: no daemon is started
    finally:
        os.chdir(cwd)


def test_status_after_checkouts_stays_monitored_and_right(monitored: tuple[Path, dsv.Repo]) -> None:
    root, _ = monitored
    rng = random.Random(11)
    commits = [dsv.Repo(root).log()[0].id]
    for step in range(4):
        for k in range(3):
            _random_edit(rng, root, 500 + step * 10 + k, [op for op in OPS if op != "ignored"])  # a .dsvignore change means a full walk
        commits.append(dsv.Repo(root).commit(f"c{step}").id)
    for step in range(8):
        target = rng.choice(commits)
        local = root / f"local{step}.txt"  # an untracked file the switch carries over
        local.write_text("mine")
        dsv.Repo(root).checkout(target)
        session = dsv.Repo(root)._repo.monitor_session(dsv.Repo(root)._repo.load_statcache(target))
        assert session is not None and session.changed is not None, "the checkout lost the monitor's state"
        assert _monitored_status(root) == _full_status(root)
        local.unlink()


# -- found by the outside attack (one test each) ---------------------------------------------------------


def test_a_file_replaced_by_a_folder_is_walked_once_and_committed_right(monitored: tuple[Path, dsv.Repo]) -> None:
    root, _ = monitored
    (root / "d").write_text("a file first")
    dsv.Repo(root).commit("file d")
    (root / "d").unlink()
    assert _monitored_status(root)["removed"] == ["d"]  # d is now pending
    (root / "d").mkdir()
    (root / "d" / "inside").write_text("x")
    got = _monitored_status(root)
    assert got == _full_status(root) and got["added"] == ["d/inside"] and got["removed"] == ["d"]
    c = dsv.Repo(root).commit("d is a folder")
    assert (c.commit.summary.files, c.commit.summary.added, c.commit.summary.removed) == (41, 1, 1)
    assert _full_status(root)["clean"] and _monitored_status(root)["clean"]


def test_a_root_reached_through_a_symlink_is_watched(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "a").mkdir(parents=True)
    (real / "a" / "x").write_text("1")
    link = tmp_path / "link"
    link.symlink_to(real)
    repo = dsv.Repo.init(link)
    repo.commit("v1")
    try:
        state = dsv.Repo(link).fsmonitor_on()
        assert state["watches"] and not state["problem"]
        _monitored_status(link)
        (real / "a" / "x").write_text("2")
        assert dsv.Repo(link).status().modified == ("a/x",)
    finally:
        fsmonitor.request(str(real / ".dsv"), "stop")


def test_two_folders_swapped_in_one_step_stay_watched(monitored: tuple[Path, dsv.Repo]) -> None:
    import ctypes

    root, _ = monitored
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2"):
        pytest.skip("no renameat2 in this libc")
    at_fdcwd, rename_exchange = -100, 2
    rc = libc.renameat2(at_fdcwd, os.fsencode(root / "d0"), at_fdcwd, os.fsencode(root / "d1"), rename_exchange)
    if rc != 0:
        pytest.skip(f"renameat2(RENAME_EXCHANGE) failed: {os.strerror(ctypes.get_errno())}")
    assert _monitored_status(root) == _full_status(root)
    dsv.Repo(root).commit("swapped")
    for d in ("d0", "d1"):
        (root / d / "sub0" / "late.txt").write_text(d)
        got = _monitored_status(root)
        assert f"{d}/sub0/late.txt" in got["added"], got  # type: ignore[operator]
        assert got == _full_status(root)


def test_a_lost_event_queue_rebuilds_the_watches(tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / ".dsv" / fsmonitor.FOLDER).mkdir(parents=True)
    (root / "a").mkdir()
    m = fsmonitor.Monitor(str(root), str(root / ".dsv"))
    try:
        token = m.answer(None)["token"]
        # Folders created while events were being lost are watched again after an overflow.
        (root / "b" / "c").mkdir(parents=True)
        real_read = m.ino.read
        m.ino.read = lambda: [(-1, fsmonitor.IN_Q_OVERFLOW, b"")]  # type: ignore[method-assign]
        m.pump()
        m.ino.read = real_read  # type: ignore[method-assign]
        assert {"", "a/", "b/", "b/c/"} <= set(m.dir_wd)
        assert m.answer(token)["full"] is True
    finally:
        os.close(m.ino.fd)


def test_tokens_from_the_future_and_forged_pending_paths_are_not_trusted(monitored: tuple[Path, dsv.Repo]) -> None:
    root, _ = monitored
    _monitored_status(root)
    state_path = root / ".dsv" / "fsmonitor" / fsmonitor.STATE
    (tmp := root.parent / "outside.txt").write_text("not in the tree")
    state = json.loads(state_path.read_text())
    ident, _, number = state["token"].rpartition(":")
    state["token"] = f"{ident}:{int(number) + 1000}"
    state_path.write_text(json.dumps(state))
    (root / "d0" / "sub0" / "f0.bin").write_bytes(b"changed")
    assert dsv.Repo(root).status().modified == ("d0/sub0/f0.bin",)
    state = json.loads(state_path.read_text())
    state["pending"] += ["../outside.txt", "/", "a//b", "./x"]
    state_path.write_text(json.dumps(state))
    st = dsv.Repo(root).status()
    assert st.to_dict() == _full_status(root)
    c = dsv.Repo(root).commit("no outside file")
    assert not [f.path for f in dsv.Repo(root).ls(c.id) if ".." in f.path or f.path.startswith("/")]
    assert tmp.exists()


def test_warnings_repeat_as_a_full_walk_repeats_them(monitored: tuple[Path, dsv.Repo]) -> None:
    root, _ = monitored
    os.mkfifo(root / "pipe")
    first = dsv.Repo(root).status()
    assert any("pipe" in w for w in first.warnings)
    second = dsv.Repo(root).status()
    assert any("pipe" in w for w in second.warnings), "the warning must not vanish once the monitor has reported the path"


def test_a_socket_path_too_long_walks_instead_of_failing(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    deep.mkdir(parents=True)
    (deep / "f").write_text("1")
    repo = dsv.Repo.init(deep)
    repo.commit("v1")
    repo._repo.set_config({"core.fsmonitor": True})
    (deep / "f").write_text("2")
    assert dsv.Repo(deep).status().modified == ("f",)  # walked: no crash, no daemon
    with pytest.raises(dsv.DsvError) as info:
        dsv.Repo(deep).fsmonitor_on()
    assert "too long" in str(info.value)
    assert "too long" in str(dsv.Repo(deep).fsmonitor_status()["problem"])


def test_a_daemon_whose_socket_is_deleted_exits(monitored: tuple[Path, dsv.Repo]) -> None:
    root, _ = monitored
    pid = dsv.Repo(root).fsmonitor_status()["pid"]
    assert isinstance(pid, int)
    (root / ".dsv" / "fsmonitor" / fsmonitor.SOCKET).unlink()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        # Keep the tree busy: the daemon must notice even when it never idles.
        (root / "busy.txt").write_text(str(time.monotonic()))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the daemon outlived its socket")
    state = dsv.Repo(root).fsmonitor_on()  # and a new one can start
    assert state["running"] and state["pid"] != pid


def test_cookies_of_clients_that_gave_up_are_forgotten() -> None:
    m = fsmonitor.Monitor.__new__(fsmonitor.Monitor)
    m.cookies = {"cookie-1": time.monotonic() - 120, "cookie-2": time.monotonic()}
    m.prune_cookies()
    assert list(m.cookies) == ["cookie-2"]


def test_a_folder_replaced_by_a_file_or_a_symlink_is_checked_as_one(monitored: tuple[Path, dsv.Repo]) -> None:
    root, _ = monitored
    shutil.rmtree(root / "d1" / "sub1")
    (root / "d1" / "sub1").write_text("a file now")
    shutil.rmtree(root / "d2" / "sub2")
    os.symlink("../d0", root / "d2" / "sub2")
    got = _monitored_status(root)
    assert "d1/sub1" in got["added"] and "d2/sub2" in got["added"], got  # type: ignore[operator]
    assert got == _full_status(root)
    dsv.Repo(root).commit("folders became a file and a link")
    assert _full_status(root)["clean"] and _monitored_status(root)["clean"]


def test_config_reads_and_sets_the_monitor_and_off_stops_the_daemon(monitored: tuple[Path, dsv.Repo]) -> None:
    root, _ = monitored
    assert run_cli(root, "config", "core.fsmonitor") == (0, "true")
    code, out = run_cli(root, "config", "core.fsmonitor", "false", "--json")
    assert code == 0 and json.loads(out) == {"key": "core.fsmonitor", "value": False}
    assert run_cli(root, "config", "core.fsmonitor") == (0, "false")
    deadline = time.monotonic() + 5
    while fsmonitor.request(str(root / ".dsv"), "status") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fsmonitor.request(str(root / ".dsv"), "status") is None, "config ... false left the daemon running"


def test_a_command_that_starts_the_daemon_settles_at_once(monitored: tuple[Path, dsv.Repo]) -> None:
    # The status that starts a new daemon waits for it, so the next one is already monitored.
    root, _ = monitored
    fsmonitor.request(str(root / ".dsv"), "stop")
    deadline = time.monotonic() + 5
    while fsmonitor.request(str(root / ".dsv"), "status") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dsv.Repo(root).status().clean  # starts a daemon and walks
    repo = dsv.Repo(root)
    session = repo._repo.monitor_session(repo._repo.load_statcache(repo._repo.refs.head().commit))
    assert session is not None and session.changed is not None, "the second status walked again"


def run_cli(root: Path, *args: str) -> tuple[int, str]:
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "dsv", "-C", str(root), *args], capture_output=True, text=True)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout.strip()


def test_status_names_why_every_command_walks(monitored: tuple[Path, dsv.Repo]) -> None:
    root, _ = monitored
    assert dsv.Repo(root).fsmonitor_status()["problem"] is None
    (root / "rules").write_text("*.tmp\n")
    (root / ".dsvignore").symlink_to("rules")
    assert ".dsvignore is a symlink" in str(dsv.Repo(root).fsmonitor_status()["problem"])


@pytest.mark.parametrize("before", [False, True])
@pytest.mark.parametrize("failure", ["unavailable", "never_runs"])
def test_a_failed_on_keeps_the_setting_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: bool, failure: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "a.txt").write_text("a")
    repo = dsv.Repo.init(root)
    repo.commit("v1")
    repo.repository.set_config({"core.fsmonitor": before})
    if failure == "unavailable":
        def refuse(*args: object, **kw: object) -> None:
            raise fsmonitor.MonitorUnavailable("inotify is not available")

        monkeypatch.setattr(fsmonitor, "start", refuse)
    else:
        monkeypatch.setattr(fsmonitor, "start", lambda *a, **k: None)
        monkeypatch.setattr(fsmonitor, "wait_until_running", lambda *a, **k: False)
    with pytest.raises(dsv.DsvError) as info:
        repo.fsmonitor_on()
    assert ("inotify is not available" if failure == "unavailable" else "did not start") in str(info.value)
    assert dsv.Repo(root).repository.settings.fsmonitor is before
    assert dsv.Repo(root).status().clean


def test_answers_keep_coming_while_events_stream_in_and_stay_right(monitored: tuple[Path, dsv.Repo]) -> None:
    """The daemon coalesces a stream of events (it waits a few ms before reading): a writer that
    never pauses must not starve the answers, and every answer must still see every change."""
    import threading

    root, _ = monitored
    stop = threading.Event()
    written: list[str] = []

    def churn() -> None:
        i = 0
        while not stop.is_set():
            p = root / "churn" / f"{i % 200}.txt"
            p.parent.mkdir(exist_ok=True)
            p.write_text(str(i))
            if i % 200 == 0:
                written.append(str(i))
            i += 1

    t = threading.Thread(target=churn)
    t.start()
    try:
        for _ in range(5):
            repo = dsv.Repo(root)
            session = repo._repo.monitor_session(repo._repo.load_statcache(repo._repo.refs.head().commit))
            assert session is not None and session.token is not None, "no answer while events kept coming"
    finally:
        stop.set()
        t.join()
    assert written
    assert _monitored_status(root) == _full_status(root)


def _daemons_of(root: Path) -> list[int]:
    """Pids of every monitor daemon process serving ``root`` (from their command lines)."""
    out = []
    want = os.path.realpath(root).encode()
    for pid in os.listdir("/proc"):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"dsv.worktree.fsmonitor" in cmd and want in cmd:
            out.append(int(pid))
    return out


def test_on_twice_then_off_leaves_no_daemon(monitored: tuple[Path, dsv.Repo]) -> None:
    # A second 'on' used to start a second daemon that waited for the lock and took over,
    # unwanted, once 'off' had stopped the first (found by a new user).
    root, _ = monitored
    assert run_cli(root, "fsmonitor", "on")[0] == 0
    assert run_cli(root, "fsmonitor", "on")[0] == 0
    assert len(_daemons_of(root)) == 1, "a second 'on' started another daemon"
    assert run_cli(root, "fsmonitor", "off")[0] == 0
    deadline = time.monotonic() + 3 * fsmonitor.CHECK_EVERY_S + 2
    while time.monotonic() < deadline:
        time.sleep(0.1)
    assert fsmonitor.request(str(root / ".dsv"), "status") is None, "a daemon answers after 'off'"
    assert _daemons_of(root) == []


def test_a_daemon_started_while_another_runs_exits_when_the_monitor_is_off(monitored: tuple[Path, dsv.Repo]) -> None:
    # Two commands may each start a daemon at once: the one that waits for the lock must not
    # take over after 'off' stopped the other.
    root, _ = monitored
    import subprocess

    first = _daemons_of(root)
    subprocess.run([sys.executable, "-m", "dsv.worktree.fsmonitor", os.path.realpath(root)], check=True)  # detaches
    deadline = time.monotonic() + 10
    while len(_daemons_of(root)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(_daemons_of(root)) == 2, "the second daemon did not start"
    dsv.Repo(root).fsmonitor_off()  # while the second waits (up to 3 s) for the first's lock
    deadline = time.monotonic() + 3 * fsmonitor.CHECK_EVERY_S + 5
    while _daemons_of(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _daemons_of(root) == [], f"still running after 'off': {_daemons_of(root)} (first: {first})"
    assert fsmonitor.request(str(root / ".dsv"), "status") is None


def test_off_then_on_at_once_runs_a_daemon(monitored: tuple[Path, dsv.Repo]) -> None:
    root, _ = monitored
    assert run_cli(root, "fsmonitor", "off")[0] == 0
    assert run_cli(root, "fsmonitor", "on")[0] == 0
    time.sleep(3 * fsmonitor.CHECK_EVERY_S + 1)
    assert fsmonitor.request(str(root / ".dsv"), "status") is not None
    assert len(_daemons_of(root)) == 1
