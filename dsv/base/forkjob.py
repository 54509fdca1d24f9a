"""Run part of a job in a forked child process, for a second core on pure-Python hot loops.

Threads do not help the per-file Python work of a scan or a commit (the GIL
serialises it, and on two cores threads make small reads slower); a forked child
does. The child inherits everything copy-on-write, runs one function, and sends
back its (``marshal``-able) result through a pipe.

Forking is a decision of the program, never of the library: a notebook or a
training script that calls ``dsv.Repo(...).commit()`` may run native threads
(pyarrow's allocator, DuckDB, CUDA) that a fork would copy mid-way, and a forked
child can then deadlock on a lock one of them held. So :func:`fork_available`
is false until the program opts in with :func:`allow_fork` (the ``dsv``
command does, first thing), and even then only while the process runs exactly
one thread, counted by the kernel (``/proc/self/task``), not by ``threading``:
importing pyarrow alone starts a native thread that ``threading`` never sees.
"""

from __future__ import annotations

import marshal
import os
import sys
from collections.abc import Callable

from dsv.base.errors import DsvError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_allowed = False

SCAN_MIN_FILES = 20_000
"""A walk of fewer cached files stays in one process: below this, forking costs more
than half the per-file ``lstat`` and compare work it saves (measured; docs/benchmarks.md)."""

STORE_MIN_FILES = 4_000
"""A commit storing fewer small files stays in one process: each file costs a read, a
hash and a copy, so the fork pays for itself at a lower count than a walk's."""


def allow_fork(enabled: bool = True) -> None:
    """Let this process fork helpers (called by the ``dsv`` command; libraries must not)."""
    global _allowed
    _allowed = enabled


def os_thread_count() -> int | None:
    """Threads of this process as the kernel counts them (``None`` where unknown)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def fork_available() -> bool:
    """Whether a forked helper is allowed and safe: opted in, two cores, one thread."""
    if not _allowed or not hasattr(os, "fork") or (os.cpu_count() or 1) < 2:
        return False
    threads = os_thread_count()
    if threads is None:
        # No kernel count: trust threading only when no library known to start native threads is loaded.
        import threading

        return threading.active_count() == 1 and not any(m in sys.modules for m in ("pyarrow", "duckdb"))
    return threads == 1


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask where known, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def helper_slots() -> int:
    """How many helper *processes* (started fresh with ``exec``, not forked) the program allows: 0 or the usable cores.

    A fresh interpreter copies no thread of this one, so unlike :func:`fork_available`
    it is safe from any thread; it is still the program's decision
    (:func:`allow_fork`), and pointless on one core.
    """
    if not _allowed:
        return 0
    cores = usable_cores()
    return cores if cores >= 2 else 0


class ChildFailed(Exception):
    """The child died without a result (killed, out of memory...): redo its work here."""


class ForkJob:
    """``fn()`` running in a child process; :meth:`result` waits for its return value."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 0
            try:
                os.close(rfd)
                try:
                    payload = b"o" + marshal.dumps(fn())
                except DsvError as err:
                    # pickle keeps the error's type and fields (DsvError.__reduce__).
                    import pickle

                    payload = b"e" + pickle.dumps(err)
                view = memoryview(payload)
                while view:
                    view = view[os.write(wfd, view) :]
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(wfd)
        self._pid = pid
        self._rfd = rfd
        self._done = False

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._pid

    def result(self) -> Any:
        """The child's return value; re-raises its :class:`DsvError` with its type and fields."""
        chunks = []
        with os.fdopen(self._rfd, "rb") as f:
            while c := f.read(1 << 20):
                chunks.append(c)
        _, status = os.waitpid(self._pid, 0)
        self._done = True
        if status != 0 or not chunks:
            raise ChildFailed(f"child {self._pid} exited with status {status}")
        data = b"".join(chunks)
        if data[:1] == b"e":
            import pickle

            err = pickle.loads(data[1:])
            if isinstance(err, DsvError):
                raise err
            raise ChildFailed(f"child {self._pid} sent an unexpected error")
        return marshal.loads(data[1:])

    def cancel(self) -> None:
        """Stop waiting for the child and reap it (used on the error path)."""
        if not self._done:
            try:
                os.kill(self._pid, 9)
            except ProcessLookupError:
                pass
            try:
                os.close(self._rfd)
            except OSError:
                pass
            os.waitpid(self._pid, 0)
            self._done = True
