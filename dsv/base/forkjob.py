"""Run part of a job in a forked child process, for a second core on pure-Python hot loops.

Threads do not help the per-file Python work of a scan or a commit (the GIL
serialises it, and on two cores threads make small reads slower); a forked child
does. The child inherits everything copy-on-write, runs one function, and sends
back its (``marshal``-able) result through a pipe. Only use it when this process
runs no other thread: forking a threaded process can deadlock the child.
"""

from __future__ import annotations

import marshal
import os
import threading
from collections.abc import Callable
from typing import Any

from dsv.base.errors import DsvError


def fork_available() -> bool:
    """Whether a second process can help: two cores, ``fork``, and no other thread."""
    return hasattr(os, "fork") and (os.cpu_count() or 1) >= 2 and threading.active_count() == 1


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
                    payload = marshal.dumps(("ok", fn()))
                except DsvError as err:
                    payload = marshal.dumps(("err", err.message, err.hint, err.exit_code))
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

    def result(self) -> Any:
        """The child's return value; re-raises its :class:`DsvError` as a ``DsvError``."""
        chunks = []
        with os.fdopen(self._rfd, "rb") as f:
            while c := f.read(1 << 20):
                chunks.append(c)
        _, status = os.waitpid(self._pid, 0)
        self._done = True
        if status != 0 or not chunks:
            raise ChildFailed(f"child {self._pid} exited with status {status}")
        msg = marshal.loads(b"".join(chunks))
        if msg[0] == "err":
            err = DsvError(msg[1], hint=msg[2])
            err.exit_code = msg[3]
            raise err
        return msg[1]

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
