"""The process a served command runs in (:mod:`dsv.cli.serverprocess` forks it, or prepares it ahead).

It becomes the client's process (the client's descriptors at their own numbers,
its folder, environment, umask, CPU affinity, limits, ignored signals and fresh
standard streams), runs :func:`dsv.cli.execute` and sends the exit code. A
*prepared* process (docs/server.md) first copies the pages it shares with the
server, then waits for the server to hand it a command.

Nothing here imports the server loop: the server imports this module.
"""

from __future__ import annotations

import os
import sys

from dsv.cli import server as client

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any

    from dsv.cli.serverprocess import State

HIGH_FD = 1024
"""Where the child parks its own descriptors while it installs the client's at their numbers."""

RESERVE_MIN = 16 << 20
RESERVE_MAX = 64 << 20
"""Heap a prepared process faults in ahead (:func:`_reserve_heap`): 4x the stat cache's size plus
:data:`RESERVE_MIN`, at most this."""
_RESERVE_BLOCK = 16 << 20  # under glibc's largest mmap threshold (32 MiB): taken from the heap
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt(3)


class Request:
    """A parsed ``run`` request."""

    def __init__(self, fields: list[bytes]) -> None:
        (self.executable, self.package, self.cwd, umask, ignored, fdnums, affinity, limits, count) = fields[:9]
        self.umask = int(umask)
        self.ignored = [int(s) for s in ignored.split(b",") if s]
        self.fdnums = [int(s) for s in fdnums.split(b",") if s]
        self.affinity = {int(s) for s in affinity.split(b",") if s}
        self.limits: list[tuple[int, int, int]] = []
        """``(resource, soft, hard)`` for each ``RLIMIT_*`` the client has."""
        for item in limits.split(b","):
            if item:
                res, soft, hard = (int(x) for x in item.split(b":"))
                self.limits.append((res, soft, hard))
        n = int(count)
        if n < 1 or len(fields) < 9 + n or len(self.fdnums) < 3 or self.fdnums[:3] != [0, 1, 2]:
            raise ValueError("malformed request")
        self.args = [os.fsdecode(a) for a in fields[9:9 + n]]
        self.env: dict[bytes, bytes] = {}
        for entry in fields[9 + n:]:
            key, sep, value = entry.partition(b"=")
            if sep and key:
                self.env[key] = value


def work(conn: socket.socket, fds: list[int], req: Request, state: State) -> None:
    """The forked child: become the client's process, run the command, send its exit code. Never returns."""
    import fcntl
    import signal
    import socket
    import time

    code = 70
    started = False
    try:
        try:
            client.in_worker = True
            signal.set_wakeup_fd(-1)
            let_go(state)
            # Park our connection and the received descriptors high, then put each received one at
            # the number it had in the client (0-2 and any other: /dev/fd/N works as in-process).
            own = fcntl.fcntl(conn.fileno(), fcntl.F_DUPFD_CLOEXEC, HIGH_FD)
            conn.close()
            conn = socket.socket(fileno=own)
            parked = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, HIGH_FD) for fd in fds]
            for fd in fds:
                os.close(fd)
            fds.clear()
            for number, fd in zip(req.fdnums, parked):
                os.dup2(fd, number)
                os.close(fd)
            _signals(req.ignored)
            os.chdir(req.cwd)
            os.environb.clear()
            os.environb.update(req.env)
            time.tzset()
            os.umask(req.umask)
            _limits(req)
            sys.argv = ["dsv", *req.args]
            _fresh_streams()
        except BaseException as err:  # noqa: BLE001 - nothing ran yet: the client runs the command itself
            try:
                conn.sendall(f"refuse cannot take over: {type(err).__name__}\n".encode())
            except OSError:
                pass
            return
        try:
            conn.sendall(f"pid {os.getpid()}\n".encode())
            started = True
            from dsv.cli import execute

            code = execute(req.args)
        except KeyboardInterrupt:
            code = 130
        except BaseException as err:  # noqa: BLE001 - the server's child reports, never raises
            try:
                sys.stderr.write(f"dsv: internal error in the command server: {type(err).__name__}: {err}\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
        if started:
            try:
                conn.sendall(f"exit {code}\n".encode())
            except OSError:
                pass
    finally:
        os._exit(0)


def let_go(state: State) -> None:
    """In a child: close what is the server's (its lock, signal pipe, socket, other connections)."""
    for fd in (state.lock_fd, *state.wake):
        if fd >= 0:
            os.close(fd)
    state.lock_fd, state.wake = -1, (-1, -1)
    if state.listener is not None:
        state.listener.close()
        state.listener = None
    for other in state.pending:
        other.close()
    state.pending = {}
    for child in state.children.values():
        if child.conn is not None:
            child.conn.close()
    state.children = {}
    if state.prepared is not None:
        state.prepared.ctl.close()
        state.prepared = None


def prepared_main(ctl: socket.socket, state: State) -> None:
    """The prepared process: copy the pages now, wait for a command, run it as a forked child would. Never returns."""
    import signal
    import socket

    try:
        try:
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            let_go(state)  # first: a stopping server's lock must not outlive it here
            _copy_pages()
            cache_path = os.path.join(state.dsv_dir, "statcache")
            cache_size = _size_of(cache_path)
            _reserve_heap(cache_size)
            if cache_size <= READ_AHEAD_MAX:
                _read_ahead(cache_path)
            ctl.sendall(b"R")
            while True:  # "?" (still there?) until "C" comes with a command
                head, fds, _flags, _addr = socket.recv_fds(ctl, 9, client.MAX_FDS + 1)
                if head != b"?" or fds:
                    break
                ctl.sendall(b"!")
            while 0 < len(head) < 9:
                more = ctl.recv(9 - len(head))
                if not more:
                    break
                head += more
            if len(head) < 9 or head[:1] != b"C" or not fds:
                return  # the server is gone or dropped us
            size = int.from_bytes(head[1:9], "little")
            chunks = []
            while size > 0:
                part = ctl.recv(min(size, 1 << 20))
                if not part:
                    return
                chunks.append(part)
                size -= len(part)
            ctl.close()
            conn = socket.socket(fileno=fds[0])
            req = Request(b"".join(chunks).split(b"\0")[2:])
            if len(fds) - 1 != len(req.fdnums):
                return  # descriptors lost on the way: the client runs the command itself
        except BaseException:  # noqa: BLE001 - nothing ran: the server forks the next command itself
            return
        work(conn, fds[1:], req, state)  # never returns
    finally:
        os._exit(0)


def _copy_pages() -> None:
    """Copy now the pages that commands write to (best effort, Linux 5.14+): every private writable
    mapping that is mostly resident is written through ``madvise(MADV_POPULATE_WRITE)``, which
    breaks its copy-on-write sharing with the server in one call; a command then starts without
    those page faults (1,300-5,700 of them, ~3.6 us each here). Mappings mostly not resident
    (reserved address space) are left alone: populating them would only allocate memory."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        with open("/proc/self/smaps", "rb") as f:
            smaps = f.read().split(b"\n")
    except (OSError, AttributeError, ImportError):
        return
    regions: list[tuple[int, int, bool]] = []
    for line in smaps:
        fields = line.split()
        if len(fields) >= 5 and b"-" in fields[0] and len(fields[1]) == 4:
            lo, hi = (int(x, 16) for x in fields[0].split(b"-"))
            name = fields[5] if len(fields) > 5 else b""
            private_writable = fields[1][:2] == b"rw" and fields[1][3:4] == b"p"
            regions.append((lo, hi, private_writable and not (name.startswith(b"[") and name != b"[heap]")))
        elif fields[:1] == [b"Rss:"] and regions:
            lo, hi, wanted = regions[-1]
            if wanted and int(fields[1]) * 1024 * 2 >= hi - lo:
                if madvise(lo, hi - lo, 23) != 0:  # MADV_POPULATE_WRITE; EINVAL: an older kernel
                    return


def _size_of(path: str) -> int:
    """The size of the file at ``path`` (not followed), 0 when there is none."""
    try:
        return os.stat(path, follow_symlinks=False).st_size
    except OSError:
        return 0


def _reserve_heap(cache_size: int) -> None:
    """Fault in now heap memory the command will allocate (best effort, glibc).

    A fresh process pays a page fault (~3.8 us in this VM) for every page of
    memory it touches first: a checkout of 20,000 files took ~3,250 of them,
    1,500 in reading the stat cache alone (~12 ms of ~80). glibc serves blocks of
    128 KiB and more with fresh ``mmap`` until one is freed (its threshold then
    rises, up to 32 MiB), and gives freed heap back. Here the thresholds are
    set to where a warm process ends up (blocks up to 32 MiB from the heap,
    freed heap kept) and blocks sized by the stat cache are allocated, written
    and freed, so the command's allocations reuse pages already there (~600
    faults left: Python's small-object arenas and Arrow's pool map their own).
    Left alone when the user tunes malloc (``MALLOC_*``, ``GLIBC_TUNABLES``).
    """
    if "GLIBC_TUNABLES" in os.environ or any(k.startswith("MALLOC_") for k in os.environ):
        return
    want = min(RESERVE_MAX, 4 * cache_size + RESERVE_MIN)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        mallopt, malloc, free = libc.mallopt, libc.malloc, libc.free
    except (OSError, AttributeError, ImportError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    malloc.restype = ctypes.c_void_p
    malloc.argtypes = [ctypes.c_size_t]
    free.argtypes = [ctypes.c_void_p]
    if mallopt(_M_MMAP_THRESHOLD, 32 << 20) != 1 or mallopt(_M_TRIM_THRESHOLD, 2 * RESERVE_MAX) != 1:
        return
    blocks = []
    try:
        while want > 0:
            n = min(want, _RESERVE_BLOCK)
            block = malloc(n)
            if not block:
                break
            blocks.append(block)
            ctypes.memset(block, 0, n)
            want -= n
    finally:
        for block in blocks:
            free(block)


READ_AHEAD_MAX = 32 << 20
"""A stat cache larger than this (~400,000 files) is not read ahead: the waiting process would hold it."""


def _read_ahead(path: str) -> None:
    """Read the repository's stat cache now, so the command starts with it (best effort;
    :func:`dsv.worktree.statcache.load_ahead` hands it over only if the file is unchanged)."""
    try:
        from dsv.worktree import statcache

        statcache.load_ahead(path)
    except Exception:  # noqa: BLE001 - nothing read ahead: the command reads it itself
        return


def _signals(ignored: list[int]) -> None:
    """The client's dispositions: what it ignores stays ignored (nohup, ``trap ''``); Ctrl-C is
    KeyboardInterrupt as in any Python program; everything else the default."""
    import signal

    handler: Any
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        if sig in ignored:
            handler = signal.SIG_IGN
        elif sig == signal.SIGINT:
            handler = signal.default_int_handler
        else:
            handler = signal.SIG_DFL
        try:
            signal.signal(sig, handler)
        except (OSError, ValueError):
            pass


def _limits(req: Request) -> None:
    """The client's CPU affinity, resource limits (checked grantable before the fork) and niceness (if allowed)."""
    if req.affinity and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, req.affinity)
        except OSError:
            pass
    try:
        import resource
    except ImportError:
        return
    for res, soft, hard in req.limits:
        try:
            resource.setrlimit(res, (soft, hard))
        except (OSError, ValueError):
            pass


def _fresh_streams() -> None:
    """New ``sys.stdin/stdout/stderr`` over descriptors 0-2, buffered as Python would for them (a
    terminal is line-buffered), in the server's encoding (the same locale: :data:`IMPORT_TIME_ENV`)."""
    import io

    template = sys.__stdout__ or sys.stdout
    encoding = getattr(template, "encoding", None) or "utf-8"
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    streams = []
    for fd, mode, errors in ((0, "r", "strict"), (1, "w", "strict"), (2, "w", "backslashreplace")):
        stream: Any
        try:
            tty = os.isatty(fd)
            if mode == "w" and unbuffered:
                # As python -u: no buffer under the text layer, every write goes straight out.
                stream = io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding=encoding, errors=errors,
                                          line_buffering=tty or fd == 2, write_through=True)
            else:
                stream = open(fd, mode, encoding=encoding, errors=errors, closefd=False)
                if mode == "w" and isinstance(stream, io.TextIOWrapper):
                    stream.reconfigure(line_buffering=tty or fd == 2)
        except OSError:
            stream = open(os.devnull, mode)
        streams.append(stream)
    sys.stdin, sys.stdout, sys.stderr = streams
