"""Helper processes that cut and hash the segments of one big file, on every core.

A big file is cut as independent segments (:data:`dsv.store.chunking.SEGMENT_SIZE`),
so segments can be cut anywhere. While a commit stores one, N helper processes
(N = usable cores) each take segments from the parent, map them from the file
themselves (the inherited descriptor), cut them, hash each chunk and send back
the segment's chunk list: ids and lengths, nothing else. The parent reads the
file once, in order: it hashes the whole file (its id), checks each returned
list against *its* bytes (each chunk's id re-hashed) and appends the chunks the
store lacks from its own buffer to its own pack. So the object stored is
exactly the bytes hashed even if the file changes under the commit (a segment
whose list does not match is cut by the parent), a commit writes one pack
however many big files and cores it has, and a helper writes nothing: killing
one loses only its work, which the parent redoes.

Why processes, not threads: the cutter returns a Python object per ~80 KiB
chunk and needs the GIL for each, so a second thread slowed cutting tenfold
(docs/benchmarks.md). Why ``exec``'d interpreters, not forks: the parent stores
big files on a thread pool, and forking a process with threads is unsafe (see
:mod:`dsv.base.forkjob`). Helpers run only when the program allowed helper
processes (:func:`dsv.base.forkjob.helper_slots`), and anything that goes
wrong with one (it dies, it is killed, it cannot start) makes the parent kill
the others and cut the file itself, in-process.

The helpers write no pack because, on two cores, the parent has time to spare
for the writes while the helpers cut: their packs (one per helper per file)
would have made a commit of many big files publish hundreds of packs, which
every later command lists.

Protocol (pipes, little-endian): the parent sends a length-prefixed ``marshal``
header ``(version, fd, package folder)`` (a helper that imported another copy
of dsv exits 2), then one ``<qQQ`` request ``(segment, offset,
length)`` per segment and ``(-1, 0, 0)`` to finish. A helper answers each
request with a length-prefixed ``marshal`` ``("s", segment, bytes read, chunk
list)`` and exits 0 after the last.
"""

from __future__ import annotations

import marshal
import mmap
import os
import selectors
import struct
import subprocess
import sys
import threading
import time
from typing import Any, BinaryIO

from dsv.base.forkjob import helper_slots

PROTOCOL = 2
REQUEST = struct.Struct("<qQQ")
LENGTH = struct.Struct("<Q")

QUEUE_DEPTH = 3
"""Segments sent ahead to each helper, so none waits for the parent between two."""

MIN_SEGMENTS = 2
"""Files of fewer segments are cut in-process: starting helpers costs ~0.1 s."""

WORKERS: int | None = None
"""Helpers to start (``None``: one per usable core). Tests set it."""

STALL_SECONDS = 60.0
"""A helper that answers nothing for this long while it has work (stopped, swapping, stuck)
is given up: the parent cuts the file itself. Cutting one segment takes well under a second."""

LOCK = threading.Lock()
"""One big file at a time is cut by helpers (they use every core already)."""


class HelperFailed(Exception):
    """A helper died, could not start or answered nonsense: the file is stored in-process instead."""


def helper_count(size: int, segment_size: int) -> int:
    """How many helpers to start for a file of ``size`` bytes (0: cut in-process)."""
    segments = -(-size // segment_size)
    if segments < MIN_SEGMENTS:
        return 0
    n = helper_slots() if WORKERS is None else (WORKERS if helper_slots() else 0)
    return min(n, segments)


def _package_root() -> str:
    """The folder this copy of the ``dsv`` package is in."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _interpreter_flags() -> list[str]:
    """The flags this interpreter runs with (``-I``, ``-E``, ``-s``...), for helpers to run the same way."""
    try:
        return list(subprocess._args_from_interpreter_flags())  # type: ignore[attr-defined]  # what multiprocessing uses
    except AttributeError:  # pragma: no cover - a Python without it
        return []


def _write_message(out: BinaryIO, payload: Any) -> None:
    data = marshal.dumps(payload)
    out.write(LENGTH.pack(len(data)) + data)
    out.flush()


def _read_exact(inp: BinaryIO, n: int) -> bytes:
    data = inp.read(n)
    if data is None or len(data) != n:
        raise EOFError
    return data


def _read_message(inp: BinaryIO) -> Any:
    (n,) = LENGTH.unpack(_read_exact(inp, LENGTH.size))
    return marshal.loads(_read_exact(inp, n))


class _Helper:
    """One helper process and what the parent knows of it."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.inbox = bytearray()  # bytes read from its stdout, not yet parsed
        self.pending: list[int] = []  # segments sent, not answered
        self.eof = False


class Cutters:
    """Helpers cutting the segments of one file (``fd``, ``size`` bytes at the start).

    Use :meth:`result` for each segment in order, then :meth:`finish`; on any
    exception, :meth:`abort`. Raises :class:`HelperFailed` when a helper is lost.
    ``cwd`` is where helpers run (never the dataset folder: a ``dsv`` folder
    there must not shadow the package).
    """

    def __init__(self, n: int, fd: int, size: int, segment_size: int, cwd: str) -> None:
        self.fd = fd
        self.segment_size = segment_size
        self.cwd = cwd
        self.segments = -(-size // segment_size)
        self.next_segment = 0
        self.finishing = False
        self.results: dict[int, tuple[int, bytes]] = {}
        self.owner: dict[int, _Helper] = {}
        self.helpers: list[_Helper] = []
        self.selector = selectors.DefaultSelector()
        header = marshal.dumps((PROTOCOL, fd, _package_root()))
        try:
            for _ in range(n):
                self._start(header)
            for h in self.helpers:
                for _ in range(QUEUE_DEPTH):
                    self._send_next(h)
        except BaseException as err:
            self.abort()  # every helper started so far, its pipes and the selector
            if isinstance(err, (OSError, ValueError)):
                raise HelperFailed(f"could not start a helper: {err}") from err
            raise

    def _start(self, header: bytes) -> None:
        # This copy of dsv, found last: after the interpreter's own path, so nothing of the standard
        # library is shadowed; the helper checks that it imported this copy (another installed dsv
        # would come first) and refuses otherwise.
        code = f"import sys; sys.path.append({_package_root()!r}); from dsv.store.cutters import main; main()"
        proc = subprocess.Popen(
            [sys.executable, *_interpreter_flags(), "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # a dying helper must not print a traceback: the parent redoes its work
            pass_fds=(self.fd,),
            cwd=self.cwd,
        )
        h = _Helper(proc)
        self.helpers.append(h)  # before any write to it: a failure below still kills it (abort)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(LENGTH.pack(len(header)) + header)
        proc.stdin.flush()
        os.set_blocking(proc.stdout.fileno(), False)
        self.selector.register(proc.stdout.fileno(), selectors.EVENT_READ, h)

    def _send_next(self, h: _Helper) -> None:
        if self.finishing or self.next_segment >= self.segments:
            return
        k = self.next_segment
        self.next_segment += 1
        assert h.proc.stdin is not None
        try:
            h.proc.stdin.write(REQUEST.pack(k, k * self.segment_size, self.segment_size))
            h.proc.stdin.flush()
        except OSError as err:
            raise HelperFailed(f"helper {h.proc.pid} stopped reading: {err}") from err
        h.pending.append(k)
        self.owner[k] = h

    def _pump(self) -> None:
        """Wait for at least one helper to say something; parse, record and refill.

        Raises :class:`HelperFailed` when helpers with work say nothing for :data:`STALL_SECONDS`.
        """
        deadline = time.monotonic() + STALL_SECONDS
        while not (events := self.selector.select(timeout=min(1.0, STALL_SECONDS))):
            if time.monotonic() >= deadline:
                raise HelperFailed(f"no helper answered for {STALL_SECONDS:.0f} s")
        for key, _ in events:
            h: _Helper = key.data
            try:
                data = os.read(key.fd, 1 << 20)
            except BlockingIOError:
                continue
            if not data:
                h.eof = True
                self.selector.unregister(key.fd)
                if h.pending or not self.finishing:
                    raise HelperFailed(f"helper {h.proc.pid} exited without finishing (status {h.proc.poll()})")
                continue
            h.inbox += data
            self._parse(h)

    def _parse(self, h: _Helper) -> None:
        while len(h.inbox) >= LENGTH.size:
            (n,) = LENGTH.unpack_from(h.inbox)
            if len(h.inbox) < LENGTH.size + n:
                return
            try:
                msg = marshal.loads(bytes(h.inbox[LENGTH.size : LENGTH.size + n]))
            except (EOFError, ValueError, TypeError) as err:
                raise HelperFailed(f"helper {h.proc.pid} sent an unreadable message") from err
            del h.inbox[: LENGTH.size + n]
            if msg[0] == "s" and h.pending and msg[1] == h.pending[0]:
                h.pending.pop(0)
                self.results[msg[1]] = (msg[2], msg[3])
                self._send_next(h)
            else:
                raise HelperFailed(f"helper {h.proc.pid} sent an unexpected message")

    def result(self, k: int) -> tuple[int, bytes] | None:
        """``(bytes read, chunk list)`` of segment ``k``, or ``None`` if no helper cut it (past the size seen at the start)."""
        if k >= self.segments:
            return None
        while k not in self.results:
            self._pump()
        return self.results.pop(k)

    def finish(self) -> None:
        """Stop the helpers (each has answered every segment it was sent)."""
        self.finishing = True
        for h in self.helpers:
            assert h.proc.stdin is not None
            try:
                h.proc.stdin.write(REQUEST.pack(-1, 0, 0))
                h.proc.stdin.close()
            except OSError as err:
                raise HelperFailed(f"helper {h.proc.pid} stopped reading: {err}") from err
        while any(not h.eof for h in self.helpers):
            self._pump()
        for h in self.helpers:
            status = h.proc.wait()
            if status != 0:
                raise HelperFailed(f"helper {h.proc.pid} exited with status {status}")
        self._close()

    def abort(self) -> None:
        """Kill the helpers (they wrote nothing, so nothing is left to delete)."""
        for h in self.helpers:
            try:
                h.proc.kill()
            except OSError:
                pass
        for h in self.helpers:
            h.proc.wait()
        self._close()
        self.helpers = []

    def _close(self) -> None:
        for h in self.helpers:
            for f in (h.proc.stdin, h.proc.stdout):
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass
        self.selector.close()


def main() -> None:
    """A helper's program: cut and hash the segments it is sent (see the module docstring)."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    try:
        version, fd, root = _read_message(inp)
        if version != PROTOCOL or _package_root() != root:
            raise SystemExit(2)  # another dsv than the parent's: the parent cuts the file itself
        while True:
            k, offset, length = REQUEST.unpack(_read_exact(inp, REQUEST.size))
            if k < 0:
                break
            got, listing = _cut_mapped(fd, offset, length)
            _write_message(out, ("s", k, got, listing))
    except BaseException:
        # The parent sees the exit status and cuts the file itself (the same error, if any, reaches the user from there).
        os._exit(1)
    os._exit(0)


def _cut_mapped(fd: int, offset: int, length: int) -> tuple[int, bytes]:
    """The chunk list of the segment at ``offset``, cut through a read-only mapping (no copy of its bytes here).

    Reading it into a buffer cost as much system time as cutting. A helper can
    afford a mapping where the parent cannot: if the file is truncated under
    it, the ``SIGBUS`` kills only the helper, and the parent cuts the file
    itself.
    """
    from dsv.base.hashing import digest_bytes
    from dsv.store.chunking import cut_points
    from dsv.store.pack import CHUNK_ENTRY

    size = os.fstat(fd).st_size
    got = max(0, min(length, size - offset))
    if not got:
        return 0, b""
    mm = mmap.mmap(fd, got, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0), prot=mmap.PROT_READ, offset=offset)
    try:
        view = memoryview(mm)
        try:
            entry = CHUNK_ENTRY.pack
            return got, b"".join(entry(digest_bytes(view[off : off + n]), n) for off, n in cut_points(view))
        finally:
            view.release()
    finally:
        mm.close()


__all__ = ["Cutters", "HelperFailed", "helper_count", "main"]
