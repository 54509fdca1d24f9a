"""The command server (dsv.cli.server): a command run through it is the command run in its own process.

Each test starts a real server (``dsv server on``) in a temporary repository
and runs the real CLI (``python -m dsv``) against it. The property: the same
arguments, folder, environment and umask give the same output, exit code and
files with or without the server (``DSV_NO_SERVER=1``), and the server's count
of commands shows which way each one ran.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import read_tree, write_tree

from dsv.cli import server as command_server

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="the server needs fork")


def dsv_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, **kw: object) -> subprocess.CompletedProcess[bytes]:
    full = dict(os.environ)
    full.pop("DSV_DEBUG", None)
    full.update(env or {})
    kw.setdefault("timeout", 120)
    return subprocess.run([sys.executable, "-m", "dsv", *args], cwd=cwd, capture_output=True, env=full,
                          **kw)  # type: ignore[call-overload,no-any-return]


def start_dsv(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    full = dict(os.environ)
    full.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "dsv", *args], cwd=cwd, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def server_state(root: Path) -> dict[str, object]:
    proc = dsv_cli("server", "status", "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def served(root: Path) -> int:
    reply = command_server.request(str(root / ".dsv"), b"status")
    assert reply is not None, "no server answers"
    return int(reply["commands"])  # type: ignore[call-overload]


@pytest.fixture
def repo_root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "data"
    write_tree(root, {f"train/{c}/{i}.txt": f"{c}-{i}" for c in ("cat", "dog") for i in range(5)})
    assert dsv_cli("init", cwd=root).returncode == 0
    assert dsv_cli("commit", "-m", "v1", cwd=root).returncode == 0
    (root / "train" / "cat" / "0.txt").write_text("changed")
    (root / "train" / "dog" / "9.txt").write_text("new")
    assert dsv_cli("commit", "-m", "v2", cwd=root).returncode == 0
    assert dsv_cli("tag", "v2", cwd=root).returncode == 0
    try:
        yield root
    finally:
        command_server.stop(str(root / ".dsv"))


@pytest.fixture
def served_root(repo_root: Path) -> Path:
    proc = dsv_cli("server", "on", "--json", cwd=repo_root)
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout)
    assert state["enabled"] and state["running"] and state["commands"] == 0
    return repo_root


READ_COMMANDS = [
    ["status"], ["status", "--json"], ["log"], ["log", "--json"], ["diff", "HEAD~1", "HEAD"],
    ["diff", "HEAD~1", "HEAD", "--json"], ["show", "v2"], ["tag", "--list"], ["branch", "--list"],
    ["changelog", "HEAD~1", "HEAD"], ["checkout", "no-such-rev"], ["diff", "HEAD", "nope"], ["nosuchcommand"],
    ["log", "--no-such-flag"], ["commit", "--help"], ["fsck"],
]


def test_a_served_command_prints_what_it_prints_in_its_own_process(served_root: Path) -> None:
    for args in READ_COMMANDS:  # one repository and server for all (each costs ~2 s to set up)
        before = served(served_root)
        alone = dsv_cli(*args, cwd=served_root, env={"DSV_NO_SERVER": "1"})
        assert served(served_root) == before, f"DSV_NO_SERVER=1 must run {args} in its own process"
        through = dsv_cli(*args, cwd=served_root)
        assert served(served_root) == before + 1, f"{args} did not run in the server"
        assert (through.returncode, through.stdout, through.stderr) == (alone.returncode, alone.stdout, alone.stderr), args


def test_writing_commands_through_the_server(served_root: Path, tmp_path: Path) -> None:
    # A twin of the repository, worked on without the server, for comparison.
    twin = tmp_path / "twin"
    shutil.copytree(served_root, twin, ignore=shutil.ignore_patterns("server"))
    for root, env in ((served_root, {}), (twin, {"DSV_NO_SERVER": "1"})):
        before = served(served_root)
        (root / "train" / "cat" / "new.txt").write_text("added")
        (root / "train" / "dog" / "1.txt").unlink()
        commit = dsv_cli("commit", "-m", "v3", cwd=root, env=env)
        assert commit.returncode == 0, commit.stderr
        checkout = dsv_cli("checkout", "v2", cwd=root, env=env)
        assert checkout.returncode == 0, checkout.stderr
        assert served(served_root) == before + (2 if root == served_root else 0)
        assert not (root / "train" / "cat" / "new.txt").exists() and (root / "train" / "dog" / "1.txt").exists()
        log = dsv_cli("log", "main", "--json", cwd=root, env={"DSV_NO_SERVER": "1"})
        assert [c["message"] for c in json.loads(log.stdout)] == ["v3", "v2", "v1"]
    assert read_tree(served_root) == read_tree(twin)


def test_the_command_runs_in_the_callers_folder_with_its_environment_and_umask(served_root: Path) -> None:
    sub = served_root / "train" / "cat"
    alone = dsv_cli("diff", "HEAD~1", "HEAD", cwd=sub, env={"DSV_NO_SERVER": "1"})
    before = served(served_root)
    through = dsv_cli("diff", "HEAD~1", "HEAD", cwd=sub)
    assert served(served_root) == before + 1
    assert through.stdout == alone.stdout and through.returncode == 0
    # The environment is the caller's, per command.
    (served_root / "train" / "cat" / "env.txt").write_text("x")
    proc = dsv_cli("commit", "-m", "by ada", cwd=sub, env={"DSV_AUTHOR_NAME": "Ada Served"})
    assert proc.returncode == 0, proc.stderr
    log = dsv_cli("log", "--json", cwd=sub, env={"DSV_NO_SERVER": "1"})
    assert json.loads(log.stdout)[0]["author"] == "Ada Served"
    # The umask is the caller's: a checkout writes files as it would in-process.
    (served_root / "train" / "cat" / "env.txt").unlink()
    proc = dsv_cli("checkout", "HEAD", "--force", cwd=served_root, preexec_fn=lambda: os.umask(0o077))
    assert proc.returncode == 0, proc.stderr
    assert (served_root / "train" / "cat" / "env.txt").stat().st_mode & 0o777 == 0o600
    proc = dsv_cli("checkout", "HEAD~1", cwd=served_root, preexec_fn=lambda: os.umask(0o022))
    assert proc.returncode == 0, proc.stderr
    proc = dsv_cli("checkout", "main", cwd=served_root, preexec_fn=lambda: os.umask(0o022))
    assert proc.returncode == 0, proc.stderr
    assert (served_root / "train" / "cat" / "env.txt").stat().st_mode & 0o777 == 0o644


def test_what_is_not_forwarded(served_root: Path) -> None:
    before = served(served_root)
    for args in (["-C", ".", "log"], ["--version"], ["--debug", "log"], ["server", "status"]):
        assert dsv_cli(*args, cwd=served_root).returncode == 0
    assert dsv_cli("log", cwd=served_root, env={"DSV_DEBUG": "1"}).returncode == 0
    assert served(served_root) == before
    assert command_server._forwardable(["-q", "log"]) and not command_server._forwardable(["-q", "-Cx", "log"])


@pytest.mark.parametrize("var", ["PYTHONIOENCODING", "PYTHONUNBUFFERED", "LC_ALL", "ARROW_IO_THREADS", "GLIBC_TUNABLES"])
def test_an_environment_read_at_start_up_that_differs_runs_in_process(served_root: Path, var: str) -> None:
    value = {"PYTHONIOENCODING": "latin-1", "LC_ALL": "C", "ARROW_IO_THREADS": "3", "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4096"}.get(var, os.environ.get(var, "") + "1")
    before = served(served_root)
    alone = dsv_cli("log", cwd=served_root, env={"DSV_NO_SERVER": "1", var: value})
    through = dsv_cli("log", cwd=served_root, env={var: value})
    assert served(served_root) == before
    assert (through.returncode, through.stdout) == (alone.returncode, alone.stdout)
    assert server_state(served_root)["running"]


def test_a_server_whose_code_changed_exits_and_the_command_runs_in_process(repo_root: Path) -> None:
    # Started directly, with core.server off: the in-process command must not start a new one.
    command_server.start(str(repo_root), str(repo_root / ".dsv"))
    assert command_server.wait_until_running(str(repo_root / ".dsv")) is not None
    assert dsv_cli("log", cwd=repo_root).returncode == 0
    assert served(repo_root) == 1
    source = Path(command_server.__file__).parent / "render.py"
    st = source.stat()
    try:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        proc = dsv_cli("log", cwd=repo_root)
        assert proc.returncode == 0 and b"v2" in proc.stdout and proc.stderr == b""
    finally:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    deadline = time.monotonic() + 10
    while command_server.request(str(repo_root / ".dsv"), b"status") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert command_server.request(str(repo_root / ".dsv"), b"status") is None, "a stale server kept running"
    assert "exiting: code changed since the server started" in (repo_root / ".dsv" / "server" / "server.log").read_text()


def test_a_killed_server_means_in_process_and_a_new_server(served_root: Path) -> None:
    pid = server_state(served_root)["pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while command_server.request(str(served_root / ".dsv"), b"status") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (served_root / ".dsv" / "server" / "sock").exists(), "the dead server's socket stays behind"
    proc = dsv_cli("log", cwd=served_root)
    assert proc.returncode == 0 and b"v2" in proc.stdout and proc.stderr == b""
    # core.server is on: that in-process command started a new server for the next one.
    reply = command_server.wait_until_running(str(served_root / ".dsv"), timeout=20)
    assert reply is not None and reply["pid"] != pid
    before = served(served_root)
    assert dsv_cli("status", cwd=served_root).returncode == 0
    assert served(served_root) == before + 1


def _blocking_command(root: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """A served command that blocks until killed: ``metrics add`` reading a FIFO nobody writes."""
    fifo = root.parent / "metrics.fifo"
    os.mkfifo(fifo)
    before = served(root)
    proc = start_dsv("metrics", "add", "HEAD", str(fifo), "--name", "m", cwd=root)
    deadline = time.monotonic() + 20
    while served(root) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert served(root) == before + 1
    time.sleep(0.3)  # the child is blocked opening the FIFO
    assert proc.poll() is None
    return proc, fifo


def test_ctrl_c_reaches_the_served_command(served_root: Path) -> None:
    proc, _ = _blocking_command(served_root)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert b"dsv: interrupted" in err


def test_sigterm_ends_the_served_command_and_the_client_the_same_way(served_root: Path) -> None:
    proc, _ = _blocking_command(served_root)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGTERM


def server_children(root: Path) -> tuple[list[int], int | None]:
    """The server's children, and which of them is its prepared process (if any)."""
    reply = command_server.request(str(root / ".dsv"), b"status")
    assert reply is not None, "no server answers"
    server_pid = reply["pid"]
    children = [int(p) for p in Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()]
    return children, reply["prepared_pid"]  # type: ignore[return-value]


def served_children(root: Path) -> list[int]:
    """The server's children that run commands (not its prepared process)."""
    children, prepared = server_children(root)
    return [c for c in children if c != prepared]


def test_a_served_command_killed_outright_kills_its_caller_the_same_way(served_root: Path) -> None:
    proc, _ = _blocking_command(served_root)
    children = served_children(served_root)
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGKILL, err
    log = (served_root / ".dsv" / "server" / "server.log").read_text()
    assert f"command {children[0]} (dsv metrics add HEAD" in log and "ended by signal 9 (killed)" in log


def test_garbage_on_the_socket_does_not_stop_the_server(served_root: Path) -> None:
    path = str(served_root / ".dsv" / "server" / "sock")
    for junk in (b"", b"hello\n", b"\xff" * 100, (12).to_bytes(8, "little") + b"dsv-server-1\0run\0\0",
                 (1 << 40).to_bytes(8, "little")):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(junk)
        s.close()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)  # connects and says nothing: the server moves on after its timeout
    before = served(served_root)
    proc = dsv_cli("log", cwd=served_root)
    assert proc.returncode == 0 and b"v2" in proc.stdout
    assert served(served_root) == before + 1
    s.close()


def test_commands_run_side_by_side(served_root: Path) -> None:
    before = served(served_root)
    results: list[subprocess.CompletedProcess[bytes]] = []

    def one() -> None:
        results.append(dsv_cli("log", "--json", cwd=served_root))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 and len(json.loads(r.stdout)) == 2 for r in results)
    assert served(served_root) == before + 6


def test_closed_or_piped_output(served_root: Path) -> None:
    before = served(served_root)
    devnull = subprocess.run([sys.executable, "-m", "dsv", "log"], cwd=served_root, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, timeout=60)
    assert devnull.returncode == 0 and devnull.stderr == b""
    # A reader that stops early (dsv log | head -1) is not an error, as in-process.
    piped = subprocess.run(["bash", "-o", "pipefail", "-c", f"{sys.executable} -m dsv log | head -1"],
                           cwd=served_root, capture_output=True, timeout=60)
    assert piped.returncode == 0 and piped.stdout.startswith(b"commit ")
    assert served(served_root) == before + 2
    # A closed stdout cannot be passed: the command runs in its own process, as before.
    shut = subprocess.run(["bash", "-c", f"{sys.executable} -m dsv log >&-; echo rc=$?"], cwd=served_root,
                          capture_output=True, timeout=60)
    assert shut.stdout.strip() == b"rc=0"
    assert served(served_root) == before + 2


def test_off_on_and_config(served_root: Path) -> None:
    proc = dsv_cli("config", "core.server", "false", cwd=served_root)
    assert proc.returncode == 0, proc.stderr
    state = server_state(served_root)
    assert not state["enabled"] and not state["running"]
    proc = dsv_cli("log", cwd=served_root)  # off: no server is started
    assert proc.returncode == 0
    time.sleep(0.3)
    assert command_server.request(str(served_root / ".dsv"), b"status") is None
    assert json.loads((served_root / ".dsv" / "config.json").read_text()).get("core", {}).get("server") is None
    proc = dsv_cli("config", "core.server", "true", cwd=served_root)
    assert proc.returncode == 0
    assert dsv_cli("status", cwd=served_root).returncode == 0  # starts one (not waiting)
    assert command_server.wait_until_running(str(served_root / ".dsv"), timeout=20) is not None
    proc = dsv_cli("server", "off", cwd=served_root)
    assert proc.returncode == 0 and proc.stdout == b"server: off; not running\n"


def test_not_a_repository_and_a_bad_setting(tmp_path: Path) -> None:
    proc = dsv_cli("server", "on", cwd=tmp_path)
    assert proc.returncode != 0 and proc.stderr.count(b"\n") == 1 and b"not a dsv repository" in proc.stderr.lower()
    root = tmp_path / "r"
    root.mkdir()
    assert dsv_cli("init", cwd=root).returncode == 0
    proc = dsv_cli("config", "core.server", "maybe", cwd=root)
    assert proc.returncode != 0 and proc.stderr.count(b"\n") == 1


# -- found by an outside attack on the server (each failed before its fix) ---------------------------------


def test_inherited_descriptors_reach_the_command(served_root: Path, tmp_path: Path) -> None:
    metrics = tmp_path / "m.json"
    metrics.write_text('{"accuracy": 0.9}')
    before = served(served_root)
    script = (f"{sys.executable} -m dsv metrics add HEAD <(cat {metrics}) --name ps && "
              f"{sys.executable} -m dsv metrics add HEAD /dev/fd/7 --name fd7 7<{metrics}")
    proc = subprocess.run(["bash", "-c", script], cwd=served_root, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert served(served_root) == before + 2
    listed = dsv_cli("metrics", "list", "HEAD", "--json", cwd=served_root, env={"DSV_NO_SERVER": "1"})
    names = {r["name"] for r in json.loads(listed.stdout)}
    assert {"ps", "fd7"} <= names


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT, signal.SIGTERM])
def test_a_signal_the_caller_ignores_stays_ignored(served_root: Path, sig: int) -> None:
    """nohup, trap '' INT, a background job's SIGINT: ignored in-process, so ignored when served."""
    fifo = served_root.parent / "metrics.fifo"
    os.mkfifo(fifo)
    before = served(served_root)
    proc = subprocess.Popen([sys.executable, "-m", "dsv", "metrics", "add", "HEAD", str(fifo), "--name", "ignored"],
                            cwd=served_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(sig, signal.SIG_IGN))
    deadline = time.monotonic() + 20
    while served(served_root) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(sig)
    time.sleep(0.3)
    assert proc.poll() is None, "an ignored signal ended the command"
    with open(fifo, "w") as f:
        f.write('{"accuracy": 0.5}')
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


def _stop_server(root: Path) -> int:
    pid = server_state(root)["pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGSTOP)
    return pid


def test_a_stopped_server_does_not_hang_commands_and_runs_nothing_late(served_root: Path) -> None:
    before = served(served_root)
    pid = _stop_server(served_root)
    try:
        proc = dsv_cli("tag", "late", cwd=served_root)  # waits READY_TIMEOUT_S, then runs in its own process
        assert proc.returncode == 0, proc.stderr
        # Interrupted while waiting for the server: the command never runs.
        early = start_dsv("tag", "early", cwd=served_root)
        time.sleep(1.0)
        early.send_signal(signal.SIGINT)
        out, err = early.communicate(timeout=20)
        assert early.returncode == 130 and err.strip() == b"dsv: interrupted", err
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(1.5)  # the server now reads both requests, whose clients are gone
    assert served(served_root) == before
    tags = dsv_cli("tag", "--list", cwd=served_root, env={"DSV_NO_SERVER": "1"}).stdout.decode()
    assert "late" in tags and "early" not in tags


def test_a_trickling_client_does_not_stall_the_others(served_root: Path) -> None:
    path = str(served_root / ".dsv" / "server" / "sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    stop = threading.Event()

    def trickle() -> None:
        try:
            s.sendall((1000).to_bytes(8, "little"))
            while not stop.wait(0.3):
                s.sendall(b"x")
        except OSError:
            pass

    t = threading.Thread(target=trickle)
    t.start()
    try:
        time.sleep(0.5)
        for _ in range(3):  # a hang guard, not a timing: before the fix each waited as long as the trickle went on
            proc = dsv_cli("log", cwd=served_root, timeout=8)
            assert proc.returncode == 0
    finally:
        stop.set()
        t.join()
        s.close()


def test_a_changed_dependency_ends_the_server(repo_root: Path) -> None:
    import click

    command_server.start(str(repo_root), str(repo_root / ".dsv"))
    assert command_server.wait_until_running(str(repo_root / ".dsv")) is not None
    source = Path(click.__file__).parent / "formatting.py"
    st = source.stat()
    try:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        proc = dsv_cli("log", cwd=repo_root)
        assert proc.returncode == 0 and b"v2" in proc.stdout
        deadline = time.monotonic() + 10
        while command_server.request(str(repo_root / ".dsv"), b"status") is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert command_server.request(str(repo_root / ".dsv"), b"status") is None
    finally:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_killed_client_takes_its_command_with_it(served_root: Path) -> None:
    proc, fifo = _blocking_command(served_root)
    (child,) = served_children(served_root)
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(OSError):  # nobody reads the FIFO any more
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert "ended by signal 9 (its client went away)" in (served_root / ".dsv" / "server" / "server.log").read_text()


def test_server_on_restarts_it_with_the_callers_environment(served_root: Path) -> None:
    assert dsv_cli("server", "on", cwd=served_root, env={"LC_ALL": "C"}).returncode == 0
    first = server_state(served_root)["pid"]
    before = served(served_root)
    assert dsv_cli("log", cwd=served_root).returncode == 0
    state = server_state(served_root)
    assert state["commands"] == before and state["refused"] == 1 and "LC_ALL" in str(state["last_refusal"])
    text = dsv_cli("server", "status", cwd=served_root).stdout.decode()
    assert "1 run in its own process: environment read at start-up differs from the server's (LC_ALL)" in text
    assert dsv_cli("server", "on", cwd=served_root).returncode == 0
    assert server_state(served_root)["pid"] != first
    assert dsv_cli("log", cwd=served_root).returncode == 0
    assert served(served_root) == 1


def test_a_server_that_cannot_start_is_reported_at_once(repo_root: Path) -> None:
    (repo_root / ".dsv" / "server" / "sock").mkdir(parents=True)
    proc = dsv_cli("server", "on", cwd=repo_root, timeout=12)
    assert proc.returncode == 1 and proc.stderr.count(b"\n") == 1
    assert b"did not start: exiting: cannot listen on" in proc.stderr
    assert "Traceback" not in (repo_root / ".dsv" / "server" / "server.log").read_text()


def test_a_moved_repository_leaves_no_ghost_behind(served_root: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    served_root.rename(moved)
    deadline = time.monotonic() + 10
    while command_server.request(str(moved / ".dsv"), b"status") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert command_server.request(str(moved / ".dsv"), b"status") is None
    time.sleep(1.5)
    assert not served_root.exists(), "the server recreated the repository's old folder"
    assert dsv_cli("log", cwd=moved).returncode == 0  # and the moved one works (and starts a new server)
    command_server.wait_until_running(str(moved / ".dsv"))
    command_server.stop(str(moved / ".dsv"))


def test_server_status_starts_nothing(repo_root: Path) -> None:
    assert dsv_cli("config", "core.server", "true", cwd=repo_root).returncode == 0
    assert json.loads(dsv_cli("server", "status", "--json", cwd=repo_root).stdout)["running"] is False
    time.sleep(1.5)
    assert command_server.request(str(repo_root / ".dsv"), b"status") is None


def test_what_the_client_keeps_to_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not command_server._forwardable(["-qC", "x", "log"]) and not command_server._forwardable(["-Cx", "log"])
    assert not command_server._forwardable(["log", "--debug"])
    for value in ("1", "true", "yes"):
        monkeypatch.setenv("DSV_NO_SERVER", value)
        assert not command_server._forwardable(["log"])
    for value in ("", "0"):
        monkeypatch.setenv("DSV_NO_SERVER", value)
        assert command_server._forwardable(["log"])


def test_the_command_has_the_callers_limits_and_cpus(served_root: Path) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(soft, 300)

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        os.sched_setaffinity(0, {0})

    fifo = served_root.parent / "metrics.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-m", "dsv", "metrics", "add", "HEAD", str(fifo), "--name", "lim"],
                            cwd=served_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limited)
    try:
        deadline = time.monotonic() + 20
        while not served_children(served_root) and time.monotonic() < deadline:
            time.sleep(0.02)
        (child,) = served_children(served_root)
        time.sleep(0.3)
        limits = Path(f"/proc/{child}/limits").read_text()
        assert re.search(rf"Max open files\s+{want}\s", limits), limits
        assert "Cpus_allowed_list:\t0\n" in Path(f"/proc/{child}/status").read_text()
    finally:
        with open(fifo, "w") as f:
            f.write('{"accuracy": 0.5}')
        proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_a_command_whose_server_and_process_both_die_is_reported(served_root: Path) -> None:
    proc, _ = _blocking_command(served_root)
    (child,) = served_children(served_root)
    os.kill(int(server_state(served_root)["pid"]), signal.SIGKILL)  # type: ignore[arg-type]
    time.sleep(0.3)
    assert proc.poll() is None, "the command stops with its server"
    os.kill(child, signal.SIGKILL)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert err.count(b"\n") == 1 and err.startswith(b"dsv: error: the command's process in the command server ended")


# -- found by the second attack ----------------------------------------------------------------------


@pytest.mark.parametrize("unbuffered", [True, False])
@pytest.mark.parametrize("served_mode", [True, False])
def test_ctrl_c_ends_a_command_stuck_on_a_full_pipe(repo_root: Path, unbuffered: bool, served_mode: bool) -> None:
    write_tree(repo_root, {f"many/{i:05d}-{'x' * 40}.txt": str(i) for i in range(2500)})
    assert dsv_cli("commit", "-m", "many", cwd=repo_root).returncode == 0
    env = dict(os.environ)
    env.pop("DSV_DEBUG", None)
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    if served_mode:
        assert subprocess.run([sys.executable, "-m", "dsv", "server", "on"], cwd=repo_root, env=env,
                              capture_output=True, timeout=60).returncode == 0
    else:
        env["DSV_NO_SERVER"] = "1"
    r, w = os.pipe()  # nobody reads: the listing (> 64 KiB) fills it and the command blocks writing
    try:
        proc = subprocess.Popen([sys.executable, "-m", "dsv", "ls", "-l"], cwd=repo_root, env=env, stdout=w,
                                stderr=subprocess.PIPE)
        time.sleep(3)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("Ctrl-C did not end a command blocked on a full pipe") from None
        assert proc.returncode == 130 and b"dsv: interrupted" in err
    finally:
        os.close(r)
        os.close(w)


def test_a_client_killed_after_its_server_restarted_still_takes_its_command_with_it(served_root: Path) -> None:
    proc, fifo = _blocking_command(served_root)
    (child,) = served_children(served_root)
    assert dsv_cli("server", "on", cwd=served_root).returncode == 0  # the old server now only drains
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists(), "the command outlived its client"
    with pytest.raises(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_a_server_that_cannot_be_stopped_is_reported(served_root: Path) -> None:
    pid = _stop_server(served_root)
    try:
        proc = dsv_cli("server", "off", cwd=served_root, timeout=60)
        assert proc.returncode == 1 and proc.stderr.count(b"\n") == 1
        assert f"the command server (pid {pid}) did not stop within 10 s".encode() in proc.stderr
    finally:
        os.kill(pid, signal.SIGCONT)  # the SIGTERM it was sent meanwhile now ends it
    deadline = time.monotonic() + 10
    while not command_server.lock_is_free(str(served_root / ".dsv")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert command_server.lock_is_free(str(served_root / ".dsv"))


def _prepared_pid(root: Path, timeout: float = 15.0) -> int:
    """The server's prepared process, once it is ready for a command."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = command_server.request(str(root / ".dsv"), b"status")
        if reply and reply.get("prepared"):
            return int(reply["prepared_pid"])  # type: ignore[call-overload]
        time.sleep(0.05)
    raise AssertionError("the server prepared no process for the next command")


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not Path(f"/proc/{pid}").exists()


def test_the_prepared_process_runs_the_next_command(served_root: Path) -> None:
    # docs/server.md, "A prepared process": the next command runs in it, then another is prepared.
    first = _prepared_pid(served_root)
    assert json.loads(dsv_cli("server", "status", "--json", cwd=served_root).stdout)["prepared"] is True
    proc, fifo = _blocking_command(served_root)
    try:
        assert served_children(served_root) == [first]  # the command runs in the prepared process
    finally:
        with open(fifo, "w") as f:
            f.write('{"accuracy": 0.5}')
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert _gone(first)
    second = _prepared_pid(served_root)
    assert second != first
    # ... and prints what the command prints in its own process.
    through = dsv_cli("metrics", "--json", cwd=served_root)
    alone = dsv_cli("metrics", "--json", cwd=served_root, env={"DSV_NO_SERVER": "1"})
    assert (through.returncode, through.stdout, through.stderr) == (alone.returncode, alone.stdout, alone.stderr)
    assert _gone(second)


def test_a_killed_prepared_process_is_replaced_and_commands_go_on(served_root: Path) -> None:
    first = _prepared_pid(served_root)
    os.kill(first, signal.SIGKILL)
    assert _gone(first)
    before = served(served_root)
    res = dsv_cli("log", "--json", cwd=served_root)
    assert res.returncode == 0 and served(served_root) == before + 1, res.stderr
    assert [c["message"] for c in json.loads(res.stdout)] == ["v2", "v1"]
    assert _prepared_pid(served_root) != first


def test_a_stopped_server_leaves_no_prepared_process_and_starts_again(served_root: Path) -> None:
    first = _prepared_pid(served_root)
    assert dsv_cli("server", "off", cwd=served_root).returncode == 0
    assert _gone(first), "the prepared process outlived its server"
    on = dsv_cli("server", "on", "--json", cwd=served_root)
    assert on.returncode == 0 and json.loads(on.stdout)["running"], on.stderr  # no lock left held
    assert _prepared_pid(served_root) != first


def test_a_stopped_prepared_process_never_holds_a_command(served_root: Path) -> None:
    # Found by an outside attack: a prepared process that was SIGSTOPped took the next command
    # and held it forever. The server now asks it first and forks when it does not answer.
    first = _prepared_pid(served_root)
    os.kill(first, signal.SIGSTOP)
    try:
        before = served(served_root)
        res = dsv_cli("log", "--json", cwd=served_root, timeout=30)
        assert res.returncode == 0, res.stderr
        assert served(served_root) == before + 1  # still served: forked
        assert _gone(first), "the stopped prepared process was left behind"
    finally:
        try:
            os.kill(first, signal.SIGCONT)
        except OSError:
            pass
    assert _prepared_pid(served_root) != first


def test_commands_allocate_arrow_memory_from_the_system_allocator(served_root: Path) -> None:
    # docs/server.md: pyarrow's default pool (mimalloc) made a forked child's manifest diff take
    # 36-62 ms in a third of the checkouts instead of 9-18 ms; a pool the user chose is kept.
    reply = command_server.request(str(served_root / ".dsv"), b"status")
    assert reply is not None and reply["arrow_pool"] == "system"
    assert dsv_cli("server", "off", cwd=served_root).returncode == 0
    on = dsv_cli("server", "on", cwd=served_root, env={"ARROW_DEFAULT_MEMORY_POOL": "jemalloc"})
    assert on.returncode == 0, on.stderr
    chosen = subprocess.run([sys.executable, "-c", "import pyarrow as pa; print(pa.default_memory_pool().backend_name)"],
                            env={**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "jemalloc"}, capture_output=True, text=True).stdout.strip()
    reply = command_server.request(str(served_root / ".dsv"), b"status")
    assert reply is not None and reply["arrow_pool"] == chosen  # what Arrow makes of the user's choice, untouched


_FAULTS_PROBE = """
import os, resource, sys
from dsv.cli import servedchild
if sys.argv[1] == "reserve":
    servedchild._reserve_heap(servedchild._size_of(sys.argv[2] + "/statcache"))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
blobs = [b"x" * (1 << 20) for _ in range(8)]  # what a command allocates: 8 MiB in blocks of 1 MiB
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_prepared_process_has_heap_faulted_in_for_the_command(tmp_path: Path) -> None:
    """The prepared process reserves heap (servedchild._reserve_heap): the command's large
    allocations then take no page faults; a user's own malloc tuning is left alone."""
    (tmp_path / "statcache").write_bytes(b"\0" * (1 << 20))

    def faults(*args: str, env: dict[str, str] | None = None) -> int:
        proc = subprocess.run([sys.executable, "-c", _FAULTS_PROBE, *args], capture_output=True, text=True, env=env, check=True)
        return int(proc.stdout)

    pages = (8 << 20) // 4096
    assert faults("plain", str(tmp_path)) > pages // 2  # fresh memory: a fault per page
    assert faults("reserve", str(tmp_path)) < pages // 10
    tuned = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    assert faults("reserve", str(tmp_path), env=tuned) > pages // 2
