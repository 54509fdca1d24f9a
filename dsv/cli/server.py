"""An opt-in command server (``core.server``): dsv commands without Python's start-up. The client side.

Every ``dsv`` process pays ~0.14 s before it does any work: CPython itself,
``import click`` and ``import pyarrow`` (which loads Arrow's C++ libraries).
On a 20,000-file tree git checks out a version in ~0.1 s, so start-up alone
is more than the whole of git's command. The command server removes that
floor the way Mercurial's ``chg`` and Bazel's server do: a long-lived process
per repository (:mod:`dsv.cli.serverprocess`) imports every dsv module once,
and each command runs in a child *forked* from it, already warm.

This module is what every ``dsv`` process runs first (:func:`forward`, from
:func:`dsv.cli.run`), so it imports nothing beyond ``os`` and ``sys`` until a
server answers. The client finds the repository above the current folder and,
if its server listens on ``.dsv/server/sock``, sends it the arguments, the
current folder, the environment, the umask, the CPU affinity, the resource
limits and which signals are ignored, together with **every open file
descriptor** (stdin, stdout, stderr and any other inherited one, so
``/dev/fd/N`` and ``<(...)`` work), passed over the Unix socket. The server
answers ``ready`` (or refuses: the command then runs here), the client says
``go``, and from then on the command is the server's child's: the client
forwards ``SIGINT``, ``SIGTERM`` and ``SIGHUP`` (unless they are ignored here,
as under ``nohup``), and exits with the child's exit code, or dies of the
signal the child died of. If the client dies, the server kills the child, as
the command would have died with its process.

Anything unsure runs the command in its own process, exactly as without a
server: no server listening, no answer within :data:`READY_TIMEOUT_S`, a
refusal (another interpreter or dsv, an environment read at import time that
differs, code that changed, limits the server cannot grant), a closed standard
stream, ``-C``, ``--debug``, ``DSV_NO_SERVER``. docs/server.md has the rules;
docs/architecture.md ("Start-up: a command server") why it is built this way.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket

FOLDER = "server"
"""``.dsv/server/``: the server's socket, lock and log."""
SOCKET = "sock"
LOCK = "server.lock"
LOG = "server.log"
STARTED = "started"
"""Touched when a command starts a server in the background (:func:`ensure_running` waits
:data:`AUTO_START_EVERY_S` before trying again, so a server that cannot start is not retried by every command)."""
PROTOCOL = b"dsv-server-2"

READY_TIMEOUT_S = 5.0
"""How long the client waits for the server to accept its request; then it runs the command itself."""
AUTO_START_EVERY_S = 10.0
MAX_FDS = 200
"""More open descriptors than this: the command runs in its own process (one message carries them all)."""

FORWARDED_SIGNALS = (2, 15, 1)  # SIGINT, SIGTERM, SIGHUP (the same numbers on Linux and macOS)


def disabled() -> bool:
    """``DSV_NO_SERVER`` set to anything but empty or ``0``: every command runs in its own process."""
    return os.environ.get("DSV_NO_SERVER", "") not in ("", "0")


in_worker = False
"""True in a command the server forked (it must not start another server)."""


# -- running a command in the server --------------------------------------------------------------------


def forward(args: list[str]) -> int | None:
    """Run ``dsv ARGS`` in the repository's command server: its exit code, or ``None`` to run it here."""
    if not _forwardable(args):
        return None
    try:
        cwd = os.getcwd()
    except OSError:
        return None
    dsv_dir = _find_dsv_dir(cwd)
    if dsv_dir is None:
        return None
    path = os.path.join(dsv_dir, FOLDER, SOCKET)
    if len(os.fsencode(path)) >= 100 or not os.path.exists(path):
        return None
    fds = _open_fds()
    if fds is None:
        return None
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(READY_TIMEOUT_S)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    try:
        return _Conversation(sock, args, cwd, fds).run()
    finally:
        sock.close()


def _forwardable(args: list[str]) -> bool:
    """Whether the arguments may run in the server: not ``dsv server ...``, not with ``-C`` (the
    server is the one of the repository around the current folder) or ``--debug``, not when asked not to."""
    if not args or disabled() or os.environ.get("DSV_DEBUG") == "1" or "--debug" in args:
        return False
    for a in args:
        if not a.startswith("-"):
            return a != "server"
        if a.startswith("--"):
            continue
        if "C" in a[1:]:  # -C PATH, -CPATH, -qC PATH
            return False
    return False  # only options (--version, --help): not worth a server


def _find_dsv_dir(cwd: str) -> str | None:
    path = cwd
    while True:
        candidate = os.path.join(path, ".dsv")
        if os.path.isdir(candidate):
            return candidate
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def _open_fds() -> list[int] | None:
    """This process's open descriptors (0, 1 and 2 first), or ``None`` if one of 0-2 is closed or there are too many."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            return None  # closed: the socket would take its number and be passed as the stream
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        try:
            names = os.listdir("/dev/fd")
        except OSError:
            return [0, 1, 2]
    fds = [0, 1, 2]
    for name in names:
        fd = int(name)
        if fd >= 1024:
            return None  # the server's child parks its own descriptors there
        if fd > 2:
            try:
                os.fstat(fd)
            except OSError:
                continue  # the listing's own descriptor, closed by now
            fds.append(fd)
    return fds if len(fds) <= MAX_FDS else None


def request_body(kind: bytes, fields: list[bytes]) -> bytes:
    """One request on the wire: an 8-byte length, then NUL-separated fields."""
    body = b"\0".join([PROTOCOL, kind, *fields])
    return len(body).to_bytes(8, "little") + body


def _limits() -> bytes:
    try:
        import resource
    except ImportError:
        return b""
    out = []
    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            res = getattr(resource, name)
            try:
                soft, hard = resource.getrlimit(res)
            except (OSError, ValueError):
                continue
            out.append(f"{res}:{soft}:{hard}")
    return ",".join(out).encode()


class _Conversation:
    """One command sent to the server: the request, the hand-over, the signals, the outcome."""

    def __init__(self, sock: _socket.socket, args: list[str], cwd: str, fds: list[int]) -> None:
        self.sock = sock
        self.args = args
        self.cwd = cwd
        self.fds = fds
        self.buf = b""
        self.worker = 0
        self.early: list[int] = []  # signals that came before the command started
        self.forwarded: list[int] = []
        self.saved: dict[int, object] = {}

    def run(self) -> int | None:
        import _signal

        ignored = [s for s in sorted(_signal.valid_signals()) if _signal.getsignal(s) == _signal.SIG_IGN]
        for signum in FORWARDED_SIGNALS:
            if signum not in ignored:  # ignored here (nohup, trap ''): ignored by the command too
                self.saved[signum] = _signal.getsignal(signum)
                _signal.signal(signum, self._relay)
        try:
            committed = self._hand_over(ignored)
        finally:
            if not self.worker:
                self._restore()
        if not committed:
            return self._settle_early()
        return self._outcome()

    def _relay(self, signum: int, frame: object) -> None:
        if not self.worker:
            self.early.append(signum)
            return
        self.forwarded.append(signum)
        try:
            os.kill(self.worker, signum)
        except OSError:
            pass

    def _restore(self) -> None:
        import _signal

        for signum, handler in self.saved.items():
            _signal.signal(signum, handler)  # type: ignore[arg-type]
        self.saved.clear()

    def _hand_over(self, ignored: list[int]) -> bool:
        """Send the request; ``True`` once the server has the command (the client then waits for it)."""
        import _socket

        umask = os.umask(0o022)
        os.umask(umask)
        try:
            affinity = ",".join(map(str, sorted(os.sched_getaffinity(0)))).encode()
        except (AttributeError, OSError):
            affinity = b""
        env = [k + b"=" + v for k, v in os.environb.items()]
        fields = [os.fsencode(sys.executable), os.fsencode(package_dir()), os.fsencode(self.cwd), str(umask).encode(),
                  ",".join(map(str, ignored)).encode(), ",".join(map(str, self.fds)).encode(), affinity, _limits(),
                  str(len(self.args)).encode(), *(os.fsencode(a) for a in self.args), *env]
        ancillary = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in self.fds)
        try:
            self.sock.sendall(request_body(b"run", fields))
            if self.early:
                return False
            if self._line() != b"ready":
                return False  # refused, timed out or gone: nothing ran
            if self.early:
                return False  # interrupted before the command started: it does not run
            # The descriptors go with "go", so none is held by a server that never answered.
            self.sock.sendmsg([b"go\n"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, ancillary)])
        except OSError:
            return False
        # The server has the command now: wait for it however long it takes.
        self.sock.settimeout(None)
        first = self._line()
        if first is None or not first.startswith(b"pid "):
            # The child could not take over (its folder vanished...) before running anything,
            # or died at once: run the command here.
            return False
        self.worker = int(first[4:])
        for signum in self.early:
            self._relay(signum, None)
        return True

    def _settle_early(self) -> int | None:
        """Nothing ran in the server: run the command here, unless a signal came meanwhile."""
        if not self.early:
            return None
        signum = self.early[0]
        if signum == 2:
            sys.stderr.write("\ndsv: interrupted\n")  # what Ctrl-C this early gives in-process
            return 130
        self._die_of(signum)
        return 128 + signum

    def _outcome(self) -> int:
        while True:
            line = self._line()
            if line is None:
                break
            if line.startswith(b"exit "):
                return int(line[5:])
            if line.startswith(b"signal "):
                signum = int(line[7:])
                self._die_of(signum)  # the command died of it: so does its caller
                return 128 + signum  # (a signal whose default is to go on)
        if self.forwarded:
            self._die_of(self.forwarded[-1])
        sys.stderr.write("dsv: error: the command's process in the command server ended without an exit status "
                         "(the server was killed or stopped; run the command again)\n")
        return 1

    def _die_of(self, signum: int) -> None:
        import _signal

        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        if signum not in (_signal.SIGKILL, _signal.SIGSTOP):  # (those two cannot be caught anyway)
            _signal.signal(signum, _signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def _line(self) -> bytes | None:
        line, self.buf = read_line(self.sock, self.buf)
        return line


def read_line(sock: _socket.socket, buf: bytes) -> tuple[bytes | None, bytes]:
    """The next newline-ended line from ``sock`` (``buf``: what was read past the last one) and what
    is left over; ``None`` when the connection ends or fails first."""
    while b"\n" not in buf:
        try:
            data = sock.recv(4096)
        except OSError:
            return None, buf
        if not data:
            return None, buf
        buf += data
    line, _, rest = buf.partition(b"\n")
    return line, rest


def package_dir() -> str:
    """The folder that holds the ``dsv`` package (what the server checks a client runs too)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- managing the server (dsv server on/off/status) ------------------------------------------------------


class ServerUnavailable(OSError):
    """No command server here (no fork or descriptor passing, or a path too long for a socket)."""


def server_dir(dsv_dir: str) -> str:
    """``.dsv/server``."""
    return os.path.join(dsv_dir, FOLDER)


def check_available(dsv_dir: str) -> None:
    """Raise :class:`ServerUnavailable` where no server can run for this repository."""
    if not hasattr(os, "fork") or sys.platform == "win32":
        raise ServerUnavailable("the command server needs fork() and Unix sockets, which this system lacks")
    path = os.path.join(server_dir(dsv_dir), SOCKET)
    if len(os.fsencode(path)) >= 100:
        raise ServerUnavailable(f"the repository's path is too long for the server's socket ({path})")


def start(root: str, dsv_dir: str) -> None:
    """Start a server for the repository at ``root`` in the background (it exits at once if one runs)."""
    import subprocess

    check_available(dsv_dir)
    folder = server_dir(dsv_dir)
    try:
        os.mkdir(folder, 0o700)  # never .dsv itself: a repository moved away stays gone
    except FileExistsError:
        pass
    with open(os.path.join(folder, LOG), "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "dsv.cli.serverprocess", os.path.realpath(root)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True, cwd="/",
        )


def ensure_running(root: str, dsv_dir: str) -> None:
    """With ``core.server`` on: start a server if none listens, not waiting for it, and at most every
    :data:`AUTO_START_EVERY_S`. Quiet on failure: commands run in their own process either way."""
    import time

    if in_worker or disabled():
        return
    if request(dsv_dir, b"ping", timeout=0.5) is not None:
        return
    marker = os.path.join(server_dir(dsv_dir), STARTED)
    try:
        if time.time() - os.stat(marker).st_mtime < AUTO_START_EVERY_S:
            return
    except OSError:
        pass
    try:
        start(root, dsv_dir)
        with open(marker, "wb"):
            pass
    except OSError:
        pass


def request(dsv_dir: str, kind: bytes, *, timeout: float = 2.0) -> dict[str, object] | None:
    """Ask the server for ``status``, ``ping`` or ``stop``; its reply, or ``None`` if none answers."""
    import _socket
    import json

    path = os.path.join(server_dir(dsv_dir), SOCKET)
    if len(os.fsencode(path)) >= 100:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall(request_body(kind, []))
        line, _ = read_line(sock, b"")
    except OSError:
        return None
    finally:
        sock.close()
    if line is None or not line.startswith(b"ok "):
        return None
    try:
        reply = json.loads(line[3:])
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


def lock_is_free(dsv_dir: str) -> bool:
    """Whether no server holds ``.dsv/server/server.lock`` (none runs, or it is gone)."""
    import fcntl

    try:
        fd = os.open(os.path.join(server_dir(dsv_dir), LOCK), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases the probe's lock
    return True


def wait_until_running(dsv_dir: str, timeout: float = 15.0, *, grace: float = 3.0) -> dict[str, object] | None:
    """Wait for a server to answer; its status, or ``None`` (also as soon as one that started has died:
    after ``grace`` seconds nobody holds its lock)."""
    import time

    began = time.monotonic()
    while time.monotonic() - began < timeout:
        reply = request(dsv_dir, b"status", timeout=0.5)
        if reply is not None:
            return reply
        if time.monotonic() - began > grace and lock_is_free(dsv_dir):
            return None
        time.sleep(0.02)
    return None


def stop(dsv_dir: str, *, wait: float = 10.0) -> bool:
    """Make the server exit and wait until it has let go of its lock (commands it started go on to
    finish); whether one ran. A server too busy to answer in time is sent ``SIGTERM``."""
    import signal
    import time

    if lock_is_free(dsv_dir):
        return False
    deadline = time.monotonic() + wait
    if request(dsv_dir, b"stop", timeout=wait / 2) is None:
        pid = lock_holder(dsv_dir)
        if pid is not None and not lock_is_free(dsv_dir):
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
    while not lock_is_free(dsv_dir):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def lock_holder(dsv_dir: str) -> int | None:
    """The pid the running server wrote into its lock file."""
    try:
        with open(os.path.join(server_dir(dsv_dir), LOCK), "rb") as f:
            return int(f.read(32).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def last_log_line(dsv_dir: str) -> str | None:
    """The server log's last line (why a server did not start), if any."""
    try:
        with open(os.path.join(server_dir(dsv_dir), LOG), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = [line for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1].strip() if lines else None
