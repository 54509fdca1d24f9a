"""An opt-in file-system monitor (Linux inotify): ``status`` and ``commit`` look only at what changed.

Without it, every ``status`` lstat()s every file of the tree (git's default too).
With ``core.fsmonitor`` set, a small daemon per working tree watches every
folder with inotify and keeps, for each path that changed, the sequence number
of the change. A command asks "what changed since token T?" and ``lstat``s only
those paths (plus the ones its last run left undecided, see
:mod:`dsv.worktree.scan`), so a no-op status costs the same at 10,000 or
1,000,000 files. The idea is git's fsmonitor (``core.fsmonitor``); the daemon
is this module, run as ``python -m dsv.worktree.fsmonitor ROOT``.

Correctness rests on three rules, each covered by a test:

* **Cookies.** inotify delivers events in order on one queue, but the daemon
  reads them later. Before answering, the client creates a cookie file in
  ``.dsv/fsmonitor/`` and the daemon answers only once it has read the
  cookie's own event, so every change finished before the question is in the
  answer (git's cookie files).
* **When in doubt, everything.** The answer is "full" (walk the whole tree)
  when the token comes from another daemon (restarted, or none yet), when the
  kernel's queue overflowed (``IN_Q_OVERFLOW``), when the daemon could not
  watch a folder (the ``max_user_watches`` limit), or when more than
  :data:`MAX_CHANGED` paths changed.
* **New folders are walked.** A folder created or moved into the tree is
  reported as a folder (``a/b/``), and the client walks it: files created in
  it before its watch was added are found that way.

Not seen by inotify, as for git's monitor: writes through ``mmap``, changes
made on another machine (NFS, SMB), and writes through a hard link outside the
tree. The monitor is therefore off unless asked for; ``dsv fsmonitor stop``
or ``core.fsmonitor false`` returns to the full walk.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import sys
import time

from dsv.base.records import FrozenRecord, Record, init_field
from dsv.worktree.ignore import ALWAYS_IGNORED

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket
    import socket
    from collections.abc import Iterable

# inotify(7)
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = 0o2000000

COALESCE_S = 0.005
"""While events keep coming, the daemon reads them at most this often (a question's answer
waits for its cookie event, so this is also the most it adds to an answer in a busy tree)."""

WATCH_MASK = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
    | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK
)
_EVENT = struct.Struct("iIII")

FOLDER = "fsmonitor"
"""``.dsv/fsmonitor/``: the daemon's socket, lock, log and the clients' cookies."""
SOCKET = "sock"
LOCK = "daemon.lock"
LOG = "daemon.log"
COOKIE_PREFIX = "cookie-"

MAX_CHANGED = 100_000
"""More changed paths than this since a token: the answer is "full" (a walk is as cheap)."""

IDLE_EXIT_S = 24 * 3600.0
"""A daemon nobody asked anything for this long exits (it is started again on demand)."""

ANSWER_TIMEOUT_S = 2.0
"""How long a client waits for an answer; a daemon that takes longer is treated as absent (walk)."""
COOKIE_WAIT_S = 1.5
"""How long the daemon waits for a cookie's event before answering "walk everything"."""
STARTUP_WAIT_S = 2.0
"""How long a command that started the daemon waits for it before walking without it."""
CHECK_EVERY_S = 1.0
"""How often the daemon checks that its tree, ``.dsv`` and socket are still the ones it serves."""


class MonitorUnavailable(OSError):
    """inotify cannot be used here (not Linux, no libc symbol, a path too long for a socket)."""


class Answer(FrozenRecord):
    """What changed since a token: ``paths`` (folders end with ``/``), or ``None`` for "everything"."""

    __slots__ = ("token", "paths")

    token: str
    paths: frozenset[str] | None

    def __init__(self, token: str, paths: frozenset[str] | None) -> None:
        init_field(self, "token", token)
        init_field(self, "paths", paths)


def monitor_dir(dsv_dir: str) -> str:
    """The daemon's folder inside ``.dsv``."""
    return os.path.join(dsv_dir, FOLDER)


# -- the client ------------------------------------------------------------------------------------------


class NoDaemon(Exception):
    """No daemon listens (none started, or it died): one may be started."""


def query(dsv_dir: str, token: str | None, *, timeout: float = ANSWER_TIMEOUT_S) -> Answer | None:
    """Ask the running daemon what changed since ``token``; ``None`` if it does not answer in time.

    Raises :class:`NoDaemon` when nothing listens (so the caller may start one).
    """
    folder = monitor_dir(dsv_dir)
    cookie = f"{COOKIE_PREFIX}{os.getpid()}-{time.monotonic_ns()}"
    try:
        sock = _connect(folder, timeout)
    except (FileNotFoundError, ConnectionRefusedError) as err:
        raise NoDaemon() from err
    except OSError:
        return None
    cookie_path = os.path.join(folder, cookie)
    try:
        try:
            # The cookie is created after connecting (a daemon exists) and before asking.
            fd = os.open(cookie_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            os.close(fd)
            sock.sendall(json.dumps({"op": "query", "token": token, "cookie": cookie}).encode() + b"\n")
            reply = _read_reply(sock)
        finally:
            sock.close()
    except _Closed as err:
        raise NoDaemon() from err  # it closed without answering: it was exiting
    except (OSError, ValueError):
        return None
    finally:
        try:
            os.unlink(cookie_path)
        except OSError:
            pass
    if not isinstance(reply, dict) or not isinstance(reply.get("token"), str):
        return None
    paths = reply.get("paths")
    if reply.get("full") or not isinstance(paths, list):
        return Answer(reply["token"], None)
    return Answer(reply["token"], frozenset(p for p in paths if isinstance(p, str)))


def request(dsv_dir: str, op: str, *, timeout: float = 2.0) -> dict[str, object] | None:
    """Send ``op`` (``status`` or ``stop``) to the daemon; its reply, or ``None`` if none runs."""
    try:
        sock = _connect(monitor_dir(dsv_dir), timeout)
    except OSError:
        return None
    try:
        try:
            sock.sendall(json.dumps({"op": op}).encode() + b"\n")
            reply = _read_reply(sock)
        finally:
            sock.close()
    except (OSError, ValueError, _Closed):
        return None
    return reply if isinstance(reply, dict) else None


def _connect(folder: str, timeout: float) -> _socket.socket:
    # The client uses ``_socket``, the C module that ``socket`` wraps: every command asks the
    # daemon, and ``socket``'s enum conversions and ``selectors`` cost ~3 ms of start-up there.
    import _socket

    path = os.path.join(folder, SOCKET)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(_socket_address(path))
    except BaseException:
        sock.close()
        raise
    return sock


def _socket_address(path: str) -> str:
    if len(os.fsencode(path)) >= 100:  # sun_path holds 108 bytes with its NUL, fewer on some systems
        raise MonitorUnavailable(f"the repository's path is too long for the monitor's socket ({path})")
    return path


class _Closed(Exception):
    """The daemon closed the connection without a word."""


def _read_reply(sock: _socket.socket) -> object:
    chunks = []
    while True:
        data = sock.recv(1 << 20)
        if not data:
            break
        chunks.append(data)
    if not chunks:
        raise _Closed()
    return json.loads(b"".join(chunks))


def local_problem(root: str, dsv_dir: str, *, ignore_file: str) -> str | None:
    """Why commands here walk the whole tree whatever the daemon says, if they do (for ``dsv fsmonitor status``)."""
    if not sys.platform.startswith("linux"):
        return "the file-system monitor uses inotify, which only Linux has"
    try:
        _socket_address(os.path.join(monitor_dir(dsv_dir), SOCKET))
    except MonitorUnavailable as err:
        return str(err)
    if os.path.islink(os.path.join(root, ignore_file)):
        return f"{ignore_file} is a symlink, so every command walks the tree (its target can change with no event on its name)"
    return None


def start(root: str, dsv_dir: str) -> None:
    """Start the daemon for the working tree at ``root`` in the background (no-op if one runs)."""
    import subprocess

    if not sys.platform.startswith("linux"):
        raise MonitorUnavailable("the file-system monitor uses inotify, which only Linux has")
    folder = monitor_dir(dsv_dir)
    os.makedirs(folder, exist_ok=True)
    _socket_address(os.path.join(folder, SOCKET))
    if request(dsv_dir, "status", timeout=0.5) is not None:
        return  # one runs (a second would wait for its lock, and outlive it)
    with open(os.path.join(folder, LOG), "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "dsv.worktree.fsmonitor", os.path.realpath(root)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True, cwd="/",
        )


def wait_until_running(dsv_dir: str, timeout: float = 10.0) -> bool:
    """Wait for a daemon to answer ``status``; whether one did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if request(dsv_dir, "status", timeout=0.5) is not None:
            return True
        time.sleep(0.02)
    return False


STATE = "state.json"
"""``.dsv/fsmonitor/state.json``: the token the stat cache is settled at, and the paths still undecided."""


class Session(Record):
    """One command's use of the monitor: which paths to check, and what to record after.

    The state file ties a token to one stat cache file (its identity): every
    cached row not reported since the token, and not listed as pending, has a
    key that was right when the token was handed out. A command that checks the
    reported paths records the new token with the paths it found changed (they
    stay pending until a commit settles them); anything unsure means ``changed``
    is ``None``: walk the whole tree.
    """

    __slots__ = ("dsv_dir", "token", "changed")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, dsv_dir: str, token: str | None = None, changed: frozenset[str] | None = None) -> None:
        self.dsv_dir = dsv_dir
        self.token = token
        self.changed = changed

    def record(self, identity: tuple[int, int, int] | None, pending: "Iterable[str]") -> None:
        """Write the state after the command (``identity``: of the stat cache file now on disk)."""
        if self.token is None or identity is None:
            return
        from dsv.base.fsio import atomic_write_bytes

        doc = {"statcache": list(identity), "token": self.token, "pending": sorted(set(pending))}
        try:
            atomic_write_bytes(os.path.join(monitor_dir(self.dsv_dir), STATE), json.dumps(doc).encode(), durable=False)
        except Exception:  # noqa: BLE001 - a state that is not written only costs a full walk next time
            pass


def begin(root: str, dsv_dir: str, identity: tuple[int, int, int] | None, *, ignore_file: str) -> Session:
    """Ask the daemon what changed since the stat cache ``identity`` was settled; start one if none runs."""
    token = None
    pending: list[str] = []
    try:
        with open(os.path.join(monitor_dir(dsv_dir), STATE), "rb") as f:
            state = json.loads(f.read())
        if identity is not None and isinstance(state, dict) and state.get("statcache") == list(identity) and isinstance(state.get("token"), str):
            raw = state.get("pending", [])
            if isinstance(raw, list) and all(isinstance(p, str) for p in raw):
                token, pending = state["token"], raw
    except (OSError, ValueError):
        pass
    try:
        answer = query(dsv_dir, token)
    except NoDaemon:
        try:
            start(root, dsv_dir)
        except OSError:
            return Session(dsv_dir)
        # Wait (briefly) for it, so that this command's walk already settles at a token of
        # the new daemon: otherwise the next command would walk the whole tree again.
        if not wait_until_running(dsv_dir, timeout=STARTUP_WAIT_S):
            return Session(dsv_dir)
        try:
            answer = query(dsv_dir, None)
        except NoDaemon:
            return Session(dsv_dir)
        return Session(dsv_dir, answer.token, None) if answer is not None else Session(dsv_dir)
    if answer is None:
        return Session(dsv_dir)  # a daemon that does not answer in time: walk, start no other
    try:
        ignore_is_link = os.path.islink(os.path.join(root, ignore_file))
    except OSError:
        ignore_is_link = True
    if answer.paths is None or token is None or ignore_file in answer.paths or ignore_is_link:
        # Walk everything, and settle at the new token. (A symlinked .dsvignore can change
        # through its target with no event on its own name.)
        return Session(dsv_dir, answer.token, None)
    return Session(dsv_dir, answer.token, answer.paths.union(pending))


# -- the daemon ------------------------------------------------------------------------------------------


class _Inotify:
    """The three inotify calls, through libc (no dependency)."""

    def __init__(self) -> None:
        import ctypes
        import ctypes.util

        self._ctypes = ctypes
        name = ctypes.util.find_library("c") or "libc.so.6"
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            self._init1 = libc.inotify_init1
            self._add = libc.inotify_add_watch
            self._rm = libc.inotify_rm_watch
        except (OSError, AttributeError) as err:
            raise MonitorUnavailable(f"inotify is not available ({err})") from None
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._rm.argtypes = [ctypes.c_int, ctypes.c_int]
        fd = self._init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            e = self._ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        self.fd = fd

    def add(self, path: str, mask: int) -> int:
        wd = self._add(self.fd, os.fsencode(path), mask)
        if wd < 0:
            e = self._ctypes.get_errno()
            raise OSError(e, os.strerror(e), path)
        return int(wd)

    def remove(self, wd: int) -> None:
        self._rm(self.fd, wd)

    def read(self) -> list[tuple[int, int, bytes]]:
        """Pending events as ``(wd, mask, name)``; empty when none is queued."""
        try:
            data = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return []
        out = []
        pos = 0
        while pos + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
            pos += _EVENT.size
            name = data[pos : pos + length].split(b"\0", 1)[0]
            pos += length
            out.append((wd, mask, name))
        return out


class Monitor:
    """The daemon's state: watches, and the sequence number of each changed path.

    Paths are relative to the root with ``/``; folders end with ``/``. An event
    marks its path with the current sequence number; a query returns the paths
    marked after its token's number, then advances the number, so later events
    are newer than the token it hands out.
    """

    def __init__(self, root: str, dsv_dir: str) -> None:
        # The physical path: inotify watches are added without following symlinks.
        self.root = os.path.realpath(root)
        self.dsv_dir = dsv_dir
        self.cookie_dir = monitor_dir(dsv_dir)
        self.ident = f"{os.getpid()}.{time.time_ns()}"
        self.seq = 1
        self.changed: dict[str, int] = {}
        self.full_before = 1
        """Tokens with a number below this get "full" (overflow, lost watches, pruning)."""
        self.problem: str | None = None
        self.cookies: dict[str, float] = {}
        """Cookie names seen, with when (names of clients that gave up are pruned)."""
        self.released: set[int] = set()
        """Watches of folders moved away, removed after the batch unless a move brought them back."""
        self.ino = _Inotify()
        self.wd_dir: dict[int, str] = {}
        self.dir_wd: dict[str, int] = {}
        self.root_wd = -1
        self.cookie_wd = self.ino.add(self.cookie_dir, IN_CREATE | IN_ONLYDIR | IN_DONT_FOLLOW)
        self.stopped = False
        self.watch_tree("")
        self.root_wd = self.dir_wd.get("", -1)
        if self.root_wd < 0:
            self.problem = f"cannot watch the working tree {self.root}"
        st = os.stat(self.root)
        self.root_id = (st.st_dev, st.st_ino)

    # watches

    def watch_tree(self, rel: str) -> None:
        """Watch folder ``rel`` (``""`` or ``a/b/``) and every folder below it."""
        stack = [rel]
        while stack:
            d = stack.pop()
            full = os.path.join(self.root, *d.split("/")) if d else self.root
            try:
                wd = self.ino.add(full, WATCH_MASK)
            except OSError as err:
                if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    continue  # gone again, or a symlink: nothing to watch
                # ENOSPC: the max_user_watches limit. Without a watch, changes there go unseen.
                self.problem = f"cannot watch {d or '.'}: {os.strerror(err.errno or 0)} (see docs/fsmonitor.md)"
                self.full_before = self.seq + 1
                continue
            old = self.wd_dir.get(wd)
            if old is not None and old != d:
                self.dir_wd.pop(old, None)
            self.wd_dir[wd] = d
            self.dir_wd[d] = wd
            try:
                with os.scandir(full) as it:
                    for e in it:
                        if e.name.lower() in ALWAYS_IGNORED:
                            continue
                        try:
                            if e.is_dir(follow_symlinks=False):
                                stack.append(d + e.name + "/")
                        except OSError:
                            continue
            except OSError:
                continue

    def unwatch_tree(self, rel: str) -> None:
        """Forget the paths of folder ``rel`` and below (moved away or deleted).

        The kernel watches are removed only after the batch of events: a folder
        moved within the tree (or swapped with another, ``RENAME_EXCHANGE``)
        keeps its watch, which the move's other half maps to the new path.
        """
        for d in [d for d in self.dir_wd if d.startswith(rel)]:
            wd = self.dir_wd.pop(d)
            if self.wd_dir.get(wd) == d:
                del self.wd_dir[wd]
            self.released.add(wd)

    def rewatch(self) -> None:
        """Drop every watch and watch the whole tree again (after events were lost)."""
        for wd in list(self.wd_dir):
            self.ino.remove(wd)
        self.wd_dir.clear()
        self.dir_wd.clear()
        self.released.clear()
        self.watch_tree("")
        self.root_wd = self.dir_wd.get("", -1)

    # events

    def mark(self, path: str) -> None:
        self.changed[path] = self.seq
        if len(self.changed) > MAX_CHANGED:
            self.changed.clear()
            self.full_before = self.seq + 1

    def pump(self) -> int:
        """Apply every queued event; return how many there were."""
        events = self.ino.read()
        overflow = False
        moved: list[str] = []
        for wd, mask, raw in events:
            if mask & IN_Q_OVERFLOW:
                overflow = True
                continue
            if wd == self.cookie_wd:
                if mask & IN_CREATE and raw.startswith(COOKIE_PREFIX.encode()):
                    self.cookies[os.fsdecode(raw)] = time.monotonic()
                elif mask & IN_IGNORED:
                    self.stopped = True  # .dsv/fsmonitor was removed
                continue
            d = self.wd_dir.get(wd)
            if d is None:
                continue
            if mask & IN_IGNORED:
                self.wd_dir.pop(wd, None)
                if self.dir_wd.get(d) == wd:
                    del self.dir_wd[d]
                if wd == self.root_wd:
                    self.stopped = True
                continue
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
                if wd == self.root_wd:
                    self.stopped = True  # the working tree itself went away
                continue
            name = os.fsdecode(raw)
            if not name:
                continue
            if mask & IN_ISDIR:
                if name.lower() in ALWAYS_IGNORED:
                    continue
                sub = d + name + "/"
                if mask & (IN_MOVED_FROM | IN_DELETE):
                    self.unwatch_tree(sub)
                    self.mark(sub)
                elif mask & (IN_CREATE | IN_MOVED_TO):
                    self.watch_tree(sub)
                    self.mark(sub)
                if mask & (IN_MOVED_FROM | IN_MOVED_TO):
                    moved.append(sub)
                continue
            if d == "" and name == ".dsv":
                continue
            self.mark(d + name)
        # Both ends of every folder move are watched again as they are now: a swap of two
        # folders (RENAME_EXCHANGE) reports each name twice, and only the end state counts.
        for sub in moved:
            self.watch_tree(sub)
        for wd in self.released:
            if wd not in self.wd_dir:
                self.ino.remove(wd)
        self.released.clear()
        if overflow:
            # Events were lost, folder creations among them: every older token means "walk
            # everything", and the watches are rebuilt so new folders are watched too.
            self.full_before = self.seq + 1
            self.rewatch()
        return len(events)

    # questions

    def answer(self, token: object) -> dict[str, object]:
        """The paths changed since ``token``; then later events are newer than the new token."""
        full = True
        paths: list[str] = []
        if isinstance(token, str):
            ident, _, number = token.rpartition(":")
            if ident == self.ident and number.isdigit() and self.full_before <= int(number) < self.seq and not self.problem:
                since = int(number)
                full = False
                paths = [p for p, s in self.changed.items() if s > since]
        reply: dict[str, object] = {"token": f"{self.ident}:{self.seq}", "full": full}
        if not full:
            reply["paths"] = paths
        self.seq += 1
        return reply

    def healthy(self, sock_path: str, sock_id: tuple[int, int]) -> bool:
        """Whether the tree, its ``.dsv`` and this daemon's socket are still the ones it serves."""
        try:
            st = os.stat(self.root)
            sock = os.lstat(sock_path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.root_id and (sock.st_dev, sock.st_ino) == sock_id and os.path.isdir(self.dsv_dir)

    def prune_cookies(self) -> None:
        """Forget cookies of clients that gave up long ago."""
        old = time.monotonic() - 60.0
        for name in [n for n, t in self.cookies.items() if t < old]:
            del self.cookies[name]

    def status(self) -> dict[str, object]:
        return {"pid": os.getpid(), "root": self.root, "watches": len(self.dir_wd), "changed": len(self.changed), "problem": self.problem}


def serve(root: str) -> int:
    """Run the daemon for ``root`` until stopped; return the exit code."""
    root = os.path.abspath(root)
    dsv_dir = os.path.join(root, ".dsv")
    folder = monitor_dir(dsv_dir)
    os.makedirs(folder, exist_ok=True)
    import fcntl
    import select
    import socket  # the daemon's imports: the clients in every command use ``_socket`` (_connect)

    from dsv.base.fsio import unlink_if_same

    lock_fd = os.open(os.path.join(folder, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + 3 * CHECK_EVERY_S
    waited = False
    while True:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            # Another daemon serves this tree, or one that lost its socket is about to exit
            # (it checks every CHECK_EVERY_S): wait a little for the second case.
            if time.monotonic() > deadline:
                return 0
            waited = True
            time.sleep(0.1)
    if waited and not _wanted(root):
        return 0  # the daemon before was stopped by 'off' ('on' sets the setting before starting one)
    sock_path = os.path.join(folder, SOCKET)
    for name in os.listdir(folder):
        if name.startswith(COOKIE_PREFIX):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass
    try:
        os.unlink(sock_path)
    except FileNotFoundError:
        pass
    monitor = Monitor(root, dsv_dir)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    try:
        server.bind(_socket_address(sock_path))
    finally:
        os.umask(old_umask)
    server.listen(16)
    server.setblocking(False)
    st = os.lstat(sock_path)
    sock_id = (st.st_dev, st.st_ino)
    last_question = last_check = time.monotonic()
    last_pump = 0.0
    try:
        while not monitor.stopped:
            now = time.monotonic()
            if now - last_check >= CHECK_EVERY_S:
                # Checked on a clock, not only when idle: a busy tree must not keep a daemon
                # alive whose tree moved away or whose socket was deleted (nobody could stop it).
                last_check = now
                if not monitor.healthy(sock_path, sock_id) or now - last_question > IDLE_EXIT_S:
                    break
                monitor.prune_cookies()
            ready, _, _ = select.select([monitor.ino.fd, server], [], [], CHECK_EVERY_S)
            if monitor.ino.fd in ready:
                if time.monotonic() - last_pump < COALESCE_S:
                    # Events are streaming in (a checkout, a copy): let a few milliseconds'
                    # worth queue up, so each wake-up handles hundreds instead of a handful.
                    time.sleep(COALESCE_S)
                monitor.pump()
                last_pump = time.monotonic()
            if server in ready:
                try:
                    conn, _ = server.accept()
                except BlockingIOError:
                    conn = None
                if conn is not None:
                    last_question = time.monotonic()
                    with conn:
                        if _handle(monitor, conn):
                            break
    finally:
        server.close()
        unlink_if_same(sock_path, sock_id)  # ours: a newer daemon's socket is left alone
    return 0


def _wanted(root: str) -> bool:
    """Whether ``core.fsmonitor`` is on; True when the config cannot be read (the commands will say why)."""
    from dsv.base.errors import DsvError
    from dsv.base.layout import RepoLayout
    from dsv.settings import read_settings

    path = RepoLayout(root).config
    try:
        with open(path, "rb") as f:
            return read_settings(f.read(), what=f"config {path}").fsmonitor
    except (OSError, DsvError):
        return True


def _handle(monitor: Monitor, conn: socket.socket) -> bool:
    """Answer one client; ``True`` when it asked the daemon to stop."""
    import select

    conn.setblocking(True)
    conn.settimeout(0.5)  # a client that connects and says nothing must not stall the event reading
    try:
        data = b""
        while not data.endswith(b"\n"):
            part = conn.recv(65536)
            if not part:
                return False
            data += part
        req = json.loads(data)
        op = req.get("op") if isinstance(req, dict) else None
        if op == "stop":
            conn.sendall(json.dumps({"stopped": True}).encode())
            return True
        if op == "status":
            conn.sendall(json.dumps(monitor.status()).encode())
            return False
        if op != "query":
            return False
        cookie = req.get("cookie")
        deadline = time.monotonic() + COOKIE_WAIT_S
        # Every event queued before the cookie's creation is read before the answer.
        while cookie not in monitor.cookies and time.monotonic() < deadline:
            if not monitor.pump():
                select.select([monitor.ino.fd], [], [], 0.05)
        seen = monitor.cookies.pop(cookie, None) is not None if isinstance(cookie, str) else False
        reply = monitor.answer(req.get("token") if seen else None)
        conn.sendall(json.dumps(reply).encode())
    except (OSError, ValueError):
        pass
    return False


def _detach() -> None:
    """Fork once more and let the parent exit: the daemon is nobody's child (no zombie for the caller)."""
    if os.fork() > 0:
        os._exit(0)


if __name__ == "__main__":  # pragma: no cover - the daemon's own process
    _detach()
    sys.exit(serve(sys.argv[1]))
