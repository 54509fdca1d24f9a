"""The command server's process (``python -m dsv.cli.serverprocess ROOT``): load dsv once, fork per command.

The client side, and what a served command is, are in :mod:`dsv.cli.server`; the
process a command runs in (forked, or prepared ahead) in :mod:`dsv.cli.servedchild`.
The server:

* takes ``.dsv/server/server.lock`` (one server per repository), imports every
  dsv module (and so click and pyarrow; numpy and pandas stay unimportable, as
  in every command), freezes the garbage collector's view of those objects, and
  listens on ``.dsv/server/sock`` (folder and socket 0700);
* for each connection: checks the caller is the same user (``SO_PEERCRED``),
  reads the request within :data:`READ_TIMEOUT_S` in total, and refuses (the
  client then runs the command itself) unless the client runs the same
  interpreter and dsv, with the same environment variables read at import
  time, limits the server can grant, and code unchanged since the server
  started (every loaded module's file, every dsv source file: an upgrade makes
  the server exit); then answers ``ready``, waits for ``go`` and hands the
  command to its *prepared* process, or forks one;
* keeps one process prepared while no command runs: forked ahead, it has
  already copied the pages a command would copy on first write
  (``MADV_POPULATE_WRITE``), so a command starts without the fork and without
  those page faults (:func:`_prepare`);
* in the child: becomes the client's process (its descriptors at their own
  numbers, folder, environment, umask, CPU affinity, niceness where allowed,
  resource limits, ignored signals), runs :func:`dsv.cli.execute` and sends the
  exit code;
* keeps each child's connection: a client that goes away (killed) gets its
  child killed, as its command would have died with it; a child that dies of
  a signal has the signal's number sent to its client, which dies of it too;
  both are logged in ``.dsv/server/server.log``;
* exits when asked, when its socket, its ``.dsv`` or its working tree is
  removed or replaced, when code changed, and after :data:`IDLE_EXIT_S`
  without a command.
"""

from __future__ import annotations

import os
import sys

from dsv.base.fsio import file_identity, unlink_if_same
from dsv.cli import server as client
from dsv.cli.servedchild import Request, prepared_main, work

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any

IDLE_EXIT_S = 3 * 3600.0
"""A server that ran no command for this long exits (a command with ``core.server`` on starts it again)."""
CHECK_EVERY_S = 1.0
"""How often the server checks its socket, its repository and its code."""
REQUEST_TIMEOUT_S = 5.0
"""How long a connection may stay open without its request being readable (others are served meanwhile)."""
READ_TIMEOUT_S = 1.0
"""How long the server spends, in total, reading one request once it is readable (and waiting for ``go``)."""
MAX_PENDING = 64
"""Connections waiting to send their request; beyond this the oldest is closed."""
IMPORT_TIME_ENV = (b"PYTHON", b"LC_", b"LANG", b"ARROW_", b"OMP_", b"MALLOC_", b"GLIBC_TUNABLES", b"JEMALLOC", b"MIMALLOC")
"""Prefixes of environment variables read while modules load: a command whose values differ runs in-process."""


PREPARE_IDLE_S = 0.5
"""A process is prepared once no command has run for this long: commands run back to back (a script)
are forked as before, and its page copies never overlap the command a user or script runs next."""
PREPARED_ANSWER_S = 0.2
"""How long the prepared process may take to say it is there before a command is handed to it."""
PREPARE_RETRY_S = 1.0
"""After a prepared process died unused, the next is forked this much later (never in a loop)."""

ORPHAN_GRACE_S = 0.5
"""A child whose client closed the connection and that has not ended this long after is killed
(a client closes once it has the exit code, while its child is still exiting: that one is left alone)."""


class Child:
    """A running command: its client's connection (``None`` once the client is gone) and what it runs."""

    def __init__(self, conn: socket.socket, args: list[str]) -> None:
        self.conn: socket.socket | None = conn
        self.args = args
        self.gone_at: float | None = None
        """When its client closed the connection."""
        self.orphaned = False
        """Killed because its client went away."""


class Prepared:
    """A process forked ahead for the next command: its pid, the server's end of its control socket."""

    def __init__(self, pid: int, ctl: socket.socket) -> None:
        self.pid = pid
        self.ctl = ctl
        self.ready = False
        """It has copied its pages and waits for a command."""


class State:
    """The server's state: what it checks requests against, its connections and children."""

    def __init__(self, root: str, dsv_dir: str, lock_fd: int) -> None:
        import time

        self.root = root
        self.dsv_dir = dsv_dir
        self.lock_fd = lock_fd
        self.listener: socket.socket | None = None
        self.wake: tuple[int, int] = (-1, -1)
        self.executable = sys.executable
        self.package = client.package_dir()
        self.import_env = _import_time_env(os.environb)
        self.code_files = _code_files()
        self.code = _fingerprint(self.code_files)
        self.identity = (file_identity(root), file_identity(dsv_dir))
        self.started = time.time()
        self.commands = 0
        self.refused = 0
        self.last_refusal: str | None = None
        self.pending: dict[socket.socket, float] = {}
        self.children: dict[int, Child] = {}
        self.prepared: Prepared | None = None
        self.prepare_after = time.monotonic() + PREPARE_IDLE_S
        """Not before this (monotonic) time: set when a prepared process died unused."""

    def status(self) -> dict[str, object]:
        return {"pid": os.getpid(), "started": self.started, "commands": self.commands, "running": len(self.children),
                "refused": self.refused, "last_refusal": self.last_refusal,
                "prepared": self.prepared is not None and self.prepared.ready,
                "prepared_pid": self.prepared.pid if self.prepared is not None else None,
                "arrow_pool": _arrow_pool(),
                "executable": self.executable, "package": self.package}

    def drop_prepared(self) -> None:
        """Kill the prepared process (the server stops, or it stopped answering); it is reaped as any child."""
        import signal

        if self.prepared is not None:
            try:
                os.kill(self.prepared.pid, signal.SIGKILL)
            except OSError:
                pass
            self.prepared.ctl.close()
            self.prepared = None



    def refusal(self, req: Request) -> str | None:
        """Why this request must run in the client's own process, if it must."""
        if os.fsdecode(req.executable) != self.executable or os.fsdecode(req.package) != self.package:
            return "another Python or dsv installation than the server's"
        if _import_time_env(req.env) != self.import_env:
            keys = sorted({*_import_time_env(req.env).items()} ^ {*self.import_env.items()})
            names = ", ".join(sorted({k.decode(errors="replace") for k, _ in keys}))
            return f"environment read at start-up differs from the server's ({names})"
        try:
            import resource
        except ImportError:
            resource = None  # type: ignore[assignment]
        if resource is not None:
            for res, _soft, hard in req.limits:
                try:
                    _, own_hard = resource.getrlimit(res)
                except (OSError, ValueError):
                    return "a resource limit the server does not know"
                if own_hard != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > own_hard):
                    return "resource limits above the server's"
        if _fingerprint(self.code_files) != self.code:
            return "stale"
        return None


def serve(root: str) -> int:
    """Run the server for the repository at ``root`` until stopped, idle, stale or orphaned."""
    import fcntl
    import gc
    import signal

    root = os.path.abspath(root)
    dsv_dir = os.path.join(root, ".dsv")
    folder = client.server_dir(dsv_dir)
    try:
        os.mkdir(folder, 0o700)  # never .dsv itself: a repository moved away stays gone
    except FileExistsError:
        pass
    except OSError as err:
        print(f"exiting: cannot use {folder}: {err.strerror}", flush=True)
        return 1
    try:
        lock_fd = os.open(os.path.join(folder, client.LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server serves this repository
    os.ftruncate(lock_fd, 0)
    os.pwrite(lock_fd, f"{os.getpid()}\n".encode(), 0)  # who holds it: 'dsv server off' may need to signal it
    _preload()
    _system_memory_pool()
    gc.collect()
    gc.freeze()  # the children's garbage collector (off anyway) leaves the shared pages alone
    state = State(root, dsv_dir, lock_fd)
    sock_path = os.path.join(folder, client.SOCKET)
    try:
        state.listener = _listen(sock_path)
    except OSError as err:
        print(f"exiting: cannot listen on {sock_path}: {err.strerror or err}", flush=True)
        return 1
    sock_id = file_identity(sock_path)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    state.wake = (wake_r, wake_w)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the select (set_wakeup_fd)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"dsv command server {os.getpid()} serving {root}", flush=True)
    try:
        why = _loop(state, sock_path, sock_id)
        print(f"exiting: {why}", flush=True)
    except KeyboardInterrupt:
        print("exiting: terminated", flush=True)
    finally:
        state.drop_prepared()
        for conn in state.pending:
            conn.close()
        state.pending.clear()
        state.listener.close()
        unlink_if_same(sock_path, sock_id)
        os.close(lock_fd)  # a new server may start now
    try:
        _drain(state)
    except KeyboardInterrupt:
        pass
    return 0


def _drain(state: State) -> None:
    """After the server stopped listening: keep watching the commands still running until they end,
    so that a client killed meanwhile still takes its command with it (a second SIGTERM ends this)."""
    import select
    import time

    if state.children:
        print(f"waiting for {len(state.children)} running command(s) to finish", flush=True)
    while state.children:
        watched: list[Any] = [state.wake[0], *(c.conn for c in state.children.values() if c.conn is not None)]
        ready, _, _ = select.select(watched, [], [], 0.05)
        _after_wake(state, ready, time.monotonic())


def _listen(sock_path: str) -> socket.socket:
    import socket

    try:
        os.unlink(sock_path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        listener.bind(sock_path)
    except OSError:
        listener.close()
        raise
    finally:
        os.umask(old_umask)
    listener.listen(64)
    return listener


def _loop(state: State, sock_path: str, sock_id: tuple[int, int] | None) -> str:
    """Serve until a reason to exit; that reason."""
    import select
    import time

    assert state.listener is not None
    listener = state.listener
    last_command = last_check = time.monotonic()
    while True:
        timeout = 0.05 if any(c.gone_at is not None for c in state.children.values()) else CHECK_EVERY_S
        if state.prepared is None and not state.children:
            wait = state.prepare_after - time.monotonic()
            if wait <= 0:
                _prepare(state)  # idle for a while: its page copies compete with nothing of ours
            else:
                timeout = min(timeout, wait)
        watched: list[Any] = [listener, state.wake[0], *state.pending]
        watched += [c.conn for c in state.children.values() if c.conn is not None]
        if state.prepared is not None and not state.prepared.ready:
            watched.append(state.prepared.ctl)
        ready, _, _ = select.select(watched, [], [], timeout)
        now = time.monotonic()
        _after_wake(state, ready, now)
        if state.prepared is not None and state.prepared.ctl in ready:
            _prepared_answered(state)
        if now - last_check >= CHECK_EVERY_S:
            last_check = now
            for conn, since in list(state.pending.items()):
                if now - since > REQUEST_TIMEOUT_S:  # connected and said nothing
                    del state.pending[conn]
                    conn.close()
            why = _why_exit(sock_path, sock_id, state, now - last_command)
            if why:
                return why
        for conn in ready:
            if conn in state.pending:
                del state.pending[conn]
                outcome = _handle(conn, state)
                if outcome == "ran":
                    last_command = time.monotonic()
                elif outcome == "stop":
                    return "asked to stop"
                elif outcome == "stale":
                    return "code changed since the server started (an upgrade?)"
        if listener in ready:
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            if len(state.pending) >= MAX_PENDING:
                oldest = min(state.pending, key=state.pending.__getitem__)
                del state.pending[oldest]
                oldest.close()
            state.pending[conn] = time.monotonic()


def _after_wake(state: State, ready: list[Any], now: float) -> None:
    """What every wake-up does: empty the signal pipe, reap ended children, watch the others' clients."""
    if state.wake[0] in ready:
        try:
            while os.read(state.wake[0], 512):
                pass
        except BlockingIOError:
            pass
    _reap(state)
    _watch_children(state, ready, now)


def _watch_children(state: State, ready: list[Any], now: float) -> None:
    """Note clients that closed their connection; kill the commands of clients gone for good."""
    for pid, child in list(state.children.items()):
        if child.conn is not None and child.conn in ready:
            _client_closed(child, now)
        if child.gone_at is not None and not child.orphaned and now - child.gone_at > ORPHAN_GRACE_S:
            _orphaned(pid, child)


def _client_closed(child: Child, now: float) -> None:
    """The client closed its connection: it has its exit code, or it died (see :data:`ORPHAN_GRACE_S`)."""
    assert child.conn is not None
    try:
        data = child.conn.recv(64)
    except OSError:
        data = b""
    if data:
        return  # a client says nothing after "go"; stray bytes are ignored
    child.conn.close()
    child.conn = None
    child.gone_at = now


def _orphaned(pid: int, child: Child) -> None:
    """Its client died while the command ran: the command dies too, as it would have in the client's process."""
    import signal

    child.orphaned = True
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _reap(state: State) -> None:
    import time

    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        child = state.children.pop(pid, None)
        if child is None:
            if state.prepared is not None and state.prepared.pid == pid:
                state.prepared.ctl.close()  # it died before it was used: another is prepared later
                state.prepared = None
                state.prepare_after = time.monotonic() + PREPARE_RETRY_S
            continue
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            why = "its client went away" if child.orphaned else "killed"
            print(f"command {pid} (dsv {' '.join(child.args)[:200]}) ended by signal {sig} ({why})", flush=True)
            if child.conn is not None:
                try:
                    child.conn.sendall(f"signal {sig}\n".encode())
                except OSError:
                    pass
        if child.conn is not None:
            child.conn.close()
        if not state.children:
            state.prepare_after = max(state.prepare_after, time.monotonic() + PREPARE_IDLE_S)


def _why_exit(sock_path: str, sock_id: tuple[int, int] | None, state: State, idle: float) -> str | None:
    current = file_identity(sock_path)
    if current is None:
        return "its socket was removed"
    if current != sock_id:
        return "its socket was replaced"
    if (file_identity(state.root), file_identity(state.dsv_dir)) != state.identity:
        return "the repository was moved or removed"
    if idle > IDLE_EXIT_S and not state.children:
        return f"no command for {IDLE_EXIT_S:.0f} s"
    if _fingerprint(state.code_files) != state.code:
        return "code changed since the server started (an upgrade?)"
    return None


def _handle(conn: socket.socket, state: State) -> str:
    """Serve one connection: ``ran`` (a command was forked), ``stop``, ``stale`` or ``other``."""
    import json
    import socket
    import struct
    import time

    fds: list[int] = []
    kept = False
    deadline = time.monotonic() + READ_TIMEOUT_S
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, getattr(socket, "SO_PEERCRED", 17), struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != os.getuid():
            return "other"
        data = _receive(conn, deadline)
        parts = data.split(b"\0")
        if len(parts) < 2 or parts[0] != client.PROTOCOL:
            return "other"
        kind = parts[1]
        if kind in (b"status", b"ping"):
            conn.sendall(b"ok " + json.dumps(state.status()).encode() + b"\n")
            return "other"
        if kind == b"stop":
            conn.sendall(b"ok " + json.dumps({"stopped": True}).encode() + b"\n")
            return "stop"
        if kind != b"run" or len(parts) < 11:
            return "other"
        req = Request(parts[2:])
        why = state.refusal(req)
        if why is not None:
            state.refused += 1
            state.last_refusal = why
            conn.sendall(f"refuse {why}\n".encode())
            return "stale" if why == "stale" else "other"
        conn.sendall(b"ready\n")
        go, fds = _receive_go(conn, deadline)
        if go != b"go\n" or len(fds) != len(req.fdnums):
            return "other"  # the client gave up (timed out, interrupted): nothing runs
        pid = _hand_over(state, data, conn, fds)
        if pid is None:
            pid = os.fork()
            if pid == 0:
                work(conn, fds, req, state)  # never returns
        state.children[pid] = Child(conn, req.args)
        state.commands += 1
        state.prepare_after = max(state.prepare_after, time.monotonic() + PREPARE_IDLE_S)
        kept = True
        return "ran"
    except (OSError, ValueError):
        return "other"
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        if not kept:
            conn.close()


def _receive(conn: socket.socket, deadline: float) -> bytes:
    """One request's body, read by ``deadline``."""
    import time

    conn.settimeout(max(0.001, deadline - time.monotonic()))
    msg = conn.recv(1 << 16)
    if len(msg) < 8:
        return b""
    size = int.from_bytes(msg[:8], "little")
    if size > 64 << 20:
        raise ValueError("request too large")
    chunks = [msg[8:]]
    have = len(msg) - 8
    while have < size:
        conn.settimeout(max(0.001, deadline - time.monotonic()))
        part = conn.recv(min(1 << 20, size - have))
        if not part:
            raise ValueError("request cut short")
        chunks.append(part)
        have += len(part)
    return b"".join(chunks)


def _receive_go(conn: socket.socket, deadline: float) -> tuple[bytes, list[int]]:
    """The client's ``go`` and the descriptors that come with it."""
    import array
    import socket
    import time

    fds = array.array("i")
    conn.settimeout(max(0.001, deadline - time.monotonic()))
    msg, ancdata, _flags, _addr = conn.recvmsg(16, socket.CMSG_SPACE(client.MAX_FDS * fds.itemsize))
    for level, type_, cdata in ancdata:
        if level == socket.SOL_SOCKET and type_ == socket.SCM_RIGHTS:
            fds.frombytes(cdata[: len(cdata) - (len(cdata) % fds.itemsize)])
    return msg, list(fds)


def _prepare(state: State) -> None:
    """Fork the process the next command runs in; it copies its pages, says ``R`` and waits."""
    import socket
    import time

    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError:
        return
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        state.prepare_after = time.monotonic() + PREPARE_RETRY_S
        return
    if pid == 0:
        ours.close()
        prepared_main(theirs, state)  # never returns
    theirs.close()
    state.prepared = Prepared(pid, ours)


def _prepared_answered(state: State) -> None:
    import time

    assert state.prepared is not None
    try:
        answer = state.prepared.ctl.recv(1)
    except OSError:
        answer = b""
    if answer == b"R":
        state.prepared.ready = True
    else:
        state.drop_prepared()
        state.prepare_after = time.monotonic() + PREPARE_RETRY_S


def _hand_over(state: State, request: bytes, conn: socket.socket, fds: list[int]) -> int | None:
    """Give a command to the prepared process (its connection, the client's descriptors, the request); its pid.

    None when there is none ready or it cannot take it: the caller forks.
    """
    import socket

    prepared = state.prepared
    if prepared is None or not prepared.ready:
        return None
    try:
        # Is it still there and able to run? (Stopped, frozen or traced, it would hold the
        # command forever: it is dropped and the command forked instead.)
        prepared.ctl.settimeout(PREPARED_ANSWER_S)
        prepared.ctl.sendall(b"?")
        if prepared.ctl.recv(1) != b"!":
            raise OSError("no answer")
        socket.send_fds(prepared.ctl, [b"C" + len(request).to_bytes(8, "little")], [conn.fileno(), *fds])
        prepared.ctl.sendall(request)
    except OSError:
        state.drop_prepared()
        return None
    state.prepared = None
    prepared.ctl.close()
    return prepared.pid


def _arrow_pool() -> str | None:
    pa = sys.modules.get("pyarrow")
    return pa.default_memory_pool().backend_name if pa is not None else None


def _import_time_env(env: object) -> dict[bytes, bytes]:
    items = env.items() if hasattr(env, "items") else ()  # type: ignore[union-attr]
    return {k: v for k, v in items if k.startswith(IMPORT_TIME_ENV)}


def _code_files() -> list[str]:
    """Every file the server's code came from: each loaded module's, the interpreter, and every
    folder of the dsv package (a new module changes its folder)."""
    files = {sys.executable}
    for module in list(sys.modules.values()):
        f = getattr(module, "__file__", None)
        if isinstance(f, str):
            files.add(f)
    for folder, dirs, _ in os.walk(client.package_dir() + "/dsv"):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        files.add(folder)
    return sorted(files)


def _fingerprint(files: list[str]) -> tuple[tuple[int, int, int], ...]:
    """Size, mtime and inode of each of ``files``: any change means an upgrade (or an edit)."""
    out = []
    for path in files:
        try:
            st = os.stat(path)
        except OSError:
            out.append((-1, -1, -1))
            continue
        out.append((st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


def _preload() -> None:
    """Import every dsv module (and so click and pyarrow) once, so the commands' children start warm."""
    import importlib
    import pkgutil

    import dsv
    from dsv.cli import block_unused_modules

    block_unused_modules()
    for info in pkgutil.walk_packages(dsv.__path__, "dsv."):
        if info.name.endswith(".__main__") or info.name == __name__:
            continue
        try:
            importlib.import_module(info.name)
        except Exception as err:  # noqa: BLE001 - an optional module (a missing extra) loads in the command
            print(f"not preloaded: {info.name}: {type(err).__name__}: {err}", flush=True)


def _system_memory_pool() -> None:
    """Arrow allocates from the C library's malloc in the commands' children, unless the user chose a pool.

    Measured on the benchmark machine: with pyarrow's default pool (mimalloc), a
    forked child's manifest diff (``index_in``, ``take``, ``filter``) took 36-62 ms
    in a third to a half of the checkouts against 9-18 ms every time with the
    system allocator or jemalloc: the variation in checkout time was this.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


def _detach() -> None:
    """Fork once more and let the parent exit: the server is nobody's child (no zombie for the caller)."""
    if os.fork() > 0:
        os._exit(0)


if __name__ == "__main__":  # pragma: no cover - the server's own process
    _detach()
    from dsv.cli import serverprocess as _module  # run as the importable module, not a second copy named __main__

    sys.exit(_module.serve(sys.argv[1]))
