"""An opt-in command server (``core.server``): dsv commands without Python's start-up.

Every ``dsv`` process pays ~0.14 s before it does any work: CPython itself,
``import click`` and ``import pyarrow`` (which loads Arrow's C++ libraries).
On a 20,000-file tree git checks out a version in ~0.1 s, so start-up alone
is more than the whole of git's command. This module removes that floor the
way Mercurial's ``chg`` and Bazel's server do: a long-lived process per
repository imports every dsv module once, and each command runs in a child
*forked* from it, already warm.

* **The client** (:func:`forward`, called first by :func:`dsv.cli.run`) finds
  the repository above the current folder and, if its server listens on
  ``.dsv/server/sock``, sends it the arguments, the current folder, the
  environment and the umask, with the command's stdin, stdout and stderr
  themselves (file descriptors passed over the Unix socket). It forwards
  Ctrl-C, ``SIGTERM`` and ``SIGHUP`` to the child and exits with the child's
  exit code. With no server listening it returns ``None`` and the command runs
  in its own process, as it always did (~0.1 ms spent asking).
* **The server** (:func:`serve`, ``python -m dsv.cli.server ROOT``) accepts a
  connection, checks that the caller is the same user, the same interpreter
  and the same dsv, forks, and goes back to listening: commands run side by
  side, each in its own process, exactly as separate ``dsv`` processes would
  (locks, atomic writes and exit codes unchanged). A child starts from the
  server's state, which never ran a command, so nothing leaks from one
  command to the next.
* **When in doubt, in-process.** The server refuses (and the client runs the
  command itself) when the interpreter, dsv's location or an environment
  variable read at import time (``PYTHON*``, ``LANG``, ``LC_*``, ``ARROW_*``,
  ``OMP_*``) differs from its own; it exits when any dsv source file changed
  since it started (an upgrade), when its socket or repository went away, and
  after :data:`IDLE_EXIT_S` without a command. ``dsv server off`` or
  ``DSV_NO_SERVER=1`` runs everything in-process.

Linux and macOS only (``fork`` and descriptor passing); elsewhere ``dsv server
on`` says so. Documented in docs/server.md; the choice is explained in
docs/architecture.md ("Start-up: a command server").
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket
    import socket

FOLDER = "server"
"""``.dsv/server/``: the server's socket, lock and log."""
SOCKET = "sock"
LOCK = "server.lock"
LOG = "server.log"
PROTOCOL = b"dsv-server-1"

IDLE_EXIT_S = 3 * 3600.0
"""A server that ran no command for this long exits (the next in-process command starts it again)."""
CHECK_EVERY_S = 1.0
"""How often the server checks its socket, its repository and dsv's source files."""
REQUEST_TIMEOUT_S = 5.0
"""How long a connection may stay open without sending its request (the server serves others meanwhile)."""
READ_TIMEOUT_S = 1.0
"""How long the server waits for the rest of a request it started reading."""
MAX_PENDING = 64
"""Connections waiting to send their request; beyond this the oldest is closed."""

IMPORT_TIME_ENV = (b"PYTHON", b"LC_", b"LANG", b"ARROW_", b"OMP_", b"MALLOC_", b"JEMALLOC", b"MIMALLOC")
"""Prefixes of environment variables read while modules load: a command whose values differ runs in-process."""

FORWARDED_SIGNALS = (2, 15, 1)  # SIGINT, SIGTERM, SIGHUP (the same numbers on Linux and macOS)

_in_worker = False
"""True in a command the server forked (it must not start another server)."""


# -- the client ---------------------------------------------------------------------------------------


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
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            return None  # closed: the socket would take its number and be passed as the stream
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    try:
        return _converse(sock, args, cwd)
    finally:
        sock.close()


def _forwardable(args: list[str]) -> bool:
    """Whether the arguments may run in the server: not ``dsv server ...``, not with ``-C`` (the
    server is the one of the repository around the current folder), not when asked not to."""
    env = os.environ
    if not args or env.get("DSV_NO_SERVER") == "1" or env.get("DSV_DEBUG") == "1":
        return False
    for a in args:
        if not a.startswith("-"):
            return a != "server"
        if a.startswith("-C") or a.startswith("--debug"):
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


def _request(kind: bytes, fields: list[bytes]) -> bytes:
    body = b"\0".join([PROTOCOL, kind, *fields])
    return len(body).to_bytes(8, "little") + body


def _converse(sock: _socket.socket, args: list[str], cwd: str) -> int | None:
    import _socket

    umask = os.umask(0o022)
    os.umask(umask)
    env = [k + b"=" + v for k, v in os.environb.items()]
    fields = [os.fsencode(sys.executable), os.fsencode(_package_dir()), os.fsencode(cwd), str(umask).encode(),
              str(len(args)).encode(), *(os.fsencode(a) for a in args), *env]
    data = _request(b"run", fields)
    fds = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in (0, 1, 2))
    try:
        sent = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        if sent < len(data):
            sock.sendall(data[sent:])
    except OSError:
        return None  # not sent: the command runs here
    reader = _Lines(sock)
    first = reader.next()
    if first is None or not first.startswith(b"pid "):
        return None  # refused (another interpreter, environment or dsv) or gone: run it here
    worker = int(first[4:])
    forwarded: list[int] = []

    def relay(signum: int, frame: object) -> None:
        forwarded.append(signum)
        try:
            os.kill(worker, signum)
        except OSError:
            pass

    import _signal

    for signum in FORWARDED_SIGNALS:
        _signal.signal(signum, relay)
    line = reader.next()
    if line is not None and line.startswith(b"exit "):
        return int(line[5:])
    # The command's process ended without an exit status: killed. Die the same way if we
    # passed it a signal (as an in-process command would have died), else say so.
    if forwarded:
        _signal.signal(forwarded[-1], _signal.SIG_DFL)
        os.kill(os.getpid(), forwarded[-1])
    sys.stderr.write("dsv: error: the command's process in the command server ended without an exit status "
                     "(it was killed; see .dsv/server/server.log, or run with DSV_NO_SERVER=1)\n")
    return 70


class _Lines:
    """Newline-ended replies from a socket."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def next(self) -> bytes | None:
        while b"\n" not in self.buf:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return None
            if not data:
                return None
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line


def _package_dir() -> str:
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
    """Start the server for the repository at ``root`` in the background (a no-op if one runs)."""
    import subprocess

    check_available(dsv_dir)
    folder = server_dir(dsv_dir)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    with open(os.path.join(folder, LOG), "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "dsv.cli.server", os.path.realpath(root)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True, cwd="/",
        )


def ensure_running(root: str, dsv_dir: str) -> None:
    """With ``core.server`` on: start the server if none listens (not waiting for it). Quiet on failure:
    the command runs in-process either way."""
    if _in_worker or os.environ.get("DSV_NO_SERVER") == "1":
        return
    if request(dsv_dir, b"ping", timeout=0.5) is not None:
        return
    try:
        start(root, dsv_dir)
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
        sock.sendall(_request(kind, []))
        line = _Lines(sock).next()
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


def wait_until_running(dsv_dir: str, timeout: float = 15.0) -> dict[str, object] | None:
    """Wait for a server to answer; its status, or ``None``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = request(dsv_dir, b"status", timeout=0.5)
        if reply is not None:
            return reply
        time.sleep(0.02)
    return None


def stop(dsv_dir: str) -> bool:
    """Ask the server to exit (commands it runs finish first, each in its own process); whether one did."""
    return request(dsv_dir, b"stop") is not None


# -- the server ---------------------------------------------------------------------------------------


def serve(root: str) -> int:
    """Run the server for the repository at ``root`` until stopped, idle, stale or orphaned."""
    import fcntl
    import gc
    import select
    import socket
    import time

    root = os.path.abspath(root)
    dsv_dir = os.path.join(root, ".dsv")
    folder = server_dir(dsv_dir)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    lock_fd = os.open(os.path.join(folder, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server serves this repository
    _preload()
    gc.collect()
    gc.freeze()  # the children's garbage collector (off anyway) leaves the shared pages alone
    code = _fingerprint()
    import_env = _import_time_env(os.environb)
    sock_path = os.path.join(folder, SOCKET)
    try:
        os.unlink(sock_path)
    except FileNotFoundError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        server.bind(sock_path)
    finally:
        os.umask(old_umask)
    server.listen(64)
    st = os.lstat(sock_path)
    sock_id = (st.st_dev, st.st_ino)
    state = _State(lock_fd, server, code, import_env, sys.executable, _package_dir())
    last_command = last_check = time.monotonic()
    print(f"dsv command server {os.getpid()} serving {root}", flush=True)
    pending = state.pending  # connected, request not readable yet
    try:
        while True:
            ready, _, _ = select.select([server, *pending], [], [], CHECK_EVERY_S)
            _reap()
            now = time.monotonic()
            if now - last_check >= CHECK_EVERY_S:
                last_check = now
                for conn, since in list(pending.items()):
                    if now - since > REQUEST_TIMEOUT_S:  # connected and said nothing
                        del pending[conn]
                        conn.close()
                why = _why_exit(sock_path, sock_id, dsv_dir, state, now - last_command)
                if why:
                    print(f"exiting: {why}", flush=True)
                    break
            outcome = None
            for conn in ready:
                if conn is server or conn not in pending:
                    continue
                del pending[conn]
                outcome = _handle(conn, state)
                if outcome == "ran":
                    last_command = time.monotonic()
                elif outcome in ("stop", "stale"):
                    break
            if outcome == "stop":
                print("exiting: asked to stop", flush=True)
                break
            if outcome == "stale":
                print("exiting: dsv's source files changed since the server started", flush=True)
                break
            if server in ready:
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                if len(pending) >= MAX_PENDING:
                    oldest = min(pending, key=pending.__getitem__)
                    del pending[oldest]
                    oldest.close()
                pending[conn] = time.monotonic()
    finally:
        for conn in pending:
            conn.close()
        server.close()
        try:
            st = os.lstat(sock_path)
            if (st.st_dev, st.st_ino) == sock_id:
                os.unlink(sock_path)  # ours: a newer server's socket is left alone
        except OSError:
            pass
    return 0


class _State:
    """What the server checks each request against, and counts."""

    def __init__(self, lock_fd: int, server: socket.socket, code: object, import_env: dict[bytes, bytes],
                 executable: str, package: str) -> None:
        import time

        self.lock_fd = lock_fd
        self.server = server
        self.code = code
        self.import_env = import_env
        self.executable = executable
        self.package = package
        self.started = time.time()
        self.commands = 0
        self.pending: dict[socket.socket, float] = {}
        """Connections whose request is not readable yet (a forked command closes its copies)."""

    def status(self) -> dict[str, object]:
        return {"pid": os.getpid(), "started": self.started, "commands": self.commands,
                "executable": self.executable, "package": self.package}


def _why_exit(sock_path: str, sock_id: tuple[int, int], dsv_dir: str, state: _State, idle: float) -> str | None:
    try:
        st = os.lstat(sock_path)
        if (st.st_dev, st.st_ino) != sock_id:
            return "its socket was replaced"
    except OSError:
        return "its socket was removed"
    if not os.path.isdir(dsv_dir):
        return "the repository is gone"
    if idle > IDLE_EXIT_S:
        return f"no command for {IDLE_EXIT_S:.0f} s"
    if _fingerprint() != state.code:
        return "dsv's source files changed since the server started"
    return None


def _handle(conn: socket.socket, state: _State) -> str:
    """Serve one connection: ``ran`` (a command was forked), ``stop``, ``stale`` or ``other``."""
    import json
    import socket
    import struct

    fds: list[int] = []
    try:
        conn.settimeout(READ_TIMEOUT_S)
        creds = conn.getsockopt(socket.SOL_SOCKET, getattr(socket, "SO_PEERCRED", 17), struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != os.getuid():
            return "other"
        data, fds = _receive(conn)
        parts = data.split(b"\0")
        if len(parts) < 2 or parts[0] != PROTOCOL:
            return "other"
        kind = parts[1]
        if kind in (b"status", b"ping"):
            conn.sendall(b"ok " + json.dumps(state.status()).encode() + b"\n")
            return "other"
        if kind == b"stop":
            conn.sendall(b"ok " + json.dumps({"stopped": True}).encode() + b"\n")
            return "stop"
        if kind != b"run" or len(fds) != 3:
            return "other"
        request = _parse_run(parts[2:])
        if request is None:
            return "other"
        executable, package, cwd, umask, args, env = request
        if os.fsdecode(executable) != state.executable or os.fsdecode(package) != state.package:
            conn.sendall(b"refuse another interpreter or dsv\n")
            return "other"
        if _import_time_env(env) != state.import_env:
            conn.sendall(b"refuse environment read at start-up differs\n")
            return "other"
        if _fingerprint() != state.code:
            conn.sendall(b"refuse stale\n")
            return "stale"
        pid = os.fork()
        if pid == 0:
            _work(conn, fds, cwd, umask, args, env, state)  # never returns
        state.commands += 1
        return "ran"
    except (OSError, ValueError):
        return "other"
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        conn.close()


def _receive(conn: socket.socket) -> tuple[bytes, list[int]]:
    """One request: its body and the descriptors passed with it."""
    import array
    import socket

    fds = array.array("i")
    msg, ancdata, _flags, _addr = conn.recvmsg(1 << 16, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, type_, cdata in ancdata:
        if level == socket.SOL_SOCKET and type_ == socket.SCM_RIGHTS:
            fds.frombytes(cdata[: len(cdata) - (len(cdata) % fds.itemsize)])
    received = list(fds)
    if len(msg) < 8:
        return b"", received
    size = int.from_bytes(msg[:8], "little")
    if size > 64 << 20:
        raise ValueError("request too large")
    chunks = [msg[8:]]
    have = len(msg) - 8
    while have < size:
        part = conn.recv(min(1 << 20, size - have))
        if not part:
            raise ValueError("request cut short")
        chunks.append(part)
        have += len(part)
    return b"".join(chunks), received


def _parse_run(fields: list[bytes]) -> tuple[bytes, bytes, bytes, int, list[str], dict[bytes, bytes]] | None:
    if len(fields) < 5:
        return None
    executable, package, cwd, umask, count = fields[:5]
    n = int(count)
    if n < 1 or len(fields) < 5 + n:
        return None
    args = [os.fsdecode(a) for a in fields[5:5 + n]]
    env: dict[bytes, bytes] = {}
    for entry in fields[5 + n:]:
        key, sep, value = entry.partition(b"=")
        if sep and key:
            env[key] = value
    return executable, package, cwd, int(umask), args, env


def _work(conn: socket.socket, fds: list[int], cwd: bytes, umask: int, args: list[str],
          env: dict[bytes, bytes], state: _State) -> None:
    """The forked child: become the client's process (streams, folder, environment, umask), run the command,
    send its exit code, exit. Never returns."""
    global _in_worker
    import signal
    import time

    code = 70
    try:
        try:
            _in_worker = True
            state.server.close()
            for other in state.pending:
                other.close()
            os.close(state.lock_fd)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for fd in fds:
                if fd > 2:
                    os.close(fd)
            fds.clear()
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            os.chdir(cwd)
            os.environb.clear()
            os.environb.update(env)
            time.tzset()
            os.umask(umask)
            sys.argv = ["dsv", *args]
            _fresh_streams()
            conn.settimeout(None)
            conn.sendall(f"pid {os.getpid()}\n".encode())
            from dsv.cli import execute

            code = execute(args)
        except KeyboardInterrupt:
            code = 130
        except BaseException as err:  # noqa: BLE001 - the server's child reports, never raises
            try:
                sys.stderr.write(f"dsv: internal error in the command server: {type(err).__name__}: {err}\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
        try:
            conn.sendall(f"exit {code}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(0)


def _fresh_streams() -> None:
    """New ``sys.stdin/stdout/stderr`` over descriptors 0-2, buffered as Python would for them (a
    terminal is line-buffered), in the server's encoding (the same locale: :data:`IMPORT_TIME_ENV`)."""
    import io

    template = sys.__stdout__ or sys.stdout
    encoding = getattr(template, "encoding", None) or "utf-8"
    streams = []
    for fd, mode, errors in ((0, "r", "strict"), (1, "w", "strict"), (2, "w", "backslashreplace")):
        try:
            tty = os.isatty(fd)
            stream = open(fd, mode, encoding=encoding, errors=errors, closefd=False)
            if mode == "w" and isinstance(stream, io.TextIOWrapper):
                stream.reconfigure(line_buffering=tty or fd == 2)
        except OSError:
            stream = open(os.devnull, mode)
        streams.append(stream)
    sys.stdin, sys.stdout, sys.stderr = streams


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _import_time_env(env: object) -> dict[bytes, bytes]:
    items = env.items() if hasattr(env, "items") else ()  # type: ignore[union-attr]
    return {k: v for k, v in items if k.startswith(IMPORT_TIME_ENV)}


def _fingerprint() -> object:
    """Name, size and mtime of every file of the dsv package: a change means an upgrade (or an edit)."""
    out = []
    base = _package_dir()
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                try:
                    st = os.stat(os.path.join(folder, name))
                except OSError:
                    continue
                out.append((folder, name, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _preload() -> None:
    """Import every dsv module (and so click and pyarrow) once, so the commands' children start warm.

    numpy and pandas stay unimportable, as in every dsv command (:func:`dsv.cli.execute`)."""
    import importlib
    import pkgutil

    import dsv
    from dsv.cli import block_unused_modules

    block_unused_modules()
    for info in pkgutil.walk_packages(dsv.__path__, "dsv."):
        if info.name in ("dsv.__main__", __name__) or info.name.endswith(".__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as err:  # noqa: BLE001 - an optional module (a missing extra) loads in the command
            print(f"not preloaded: {info.name}: {type(err).__name__}: {err}", flush=True)


def _detach() -> None:
    """Fork once more and let the parent exit: the server is nobody's child (no zombie for the caller)."""
    if os.fork() > 0:
        os._exit(0)


if __name__ == "__main__":  # pragma: no cover - the server's own process
    _detach()
    from dsv.cli import server as _module  # run as the importable module, not a second copy named __main__

    sys.exit(_module.serve(sys.argv[1]))
