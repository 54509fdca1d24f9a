"""Crash-safe file publication and inter-process locks.

Every file dsv publishes goes through :func:`atomic_write_bytes` (or the same
temp-file, fsync, rename, fsync-directory sequence done by hand for streams): a
reader sees the old file or the new one, never a torn one. fsspec's local
filesystem gives no such guarantee, so this module uses ``os`` directly.
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Sequence

from dsv.base.errors import LockError, StorageError


def hostname() -> str:
    """This machine's name, as ``socket.gethostname()`` gives it (without importing socket on POSIX)."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a directory's entries (creations, renames, deletions) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path: str | os.PathLike[str]) -> str:
    """A unique temporary name in the same directory as ``path`` (so rename is atomic)."""
    p = os.fspath(path)
    head, tail = os.path.split(p)
    return os.path.join(head, f".{tail}.tmp-{os.getpid()}-{os.urandom(4).hex()}")


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write every byte of ``data`` to ``fd`` (os.write may write less)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


WRITEV_PARTS_MAX = 256
"""Parts per ``writev`` call (the system takes at most IOV_MAX, often 1024)."""


def writev_all(fd: int, parts: "Sequence[bytes | bytearray | memoryview]") -> None:
    """Write every part, in order: one ``writev`` per :data:`WRITEV_PARTS_MAX` parts, no joined copy.

    ``writev`` may write less than asked (a signal, a full pipe): the rest of
    each batch is written part by part.
    """
    views = [memoryview(p) for p in parts if len(p)]
    for start in range(0, len(views), WRITEV_PARTS_MAX):
        batch = views[start : start + WRITEV_PARTS_MAX]
        done = os.writev(fd, batch)
        for view in batch:
            if done >= len(view):
                done -= len(view)
                continue
            write_all(fd, view[done:])
            done = 0


def atomic_write_bytes(path: str | os.PathLike[str], data: "bytes | Sequence[bytes | bytearray | memoryview]", *, durable: bool = True, mode: int = 0o644) -> None:
    """Publish ``data`` (bytes, or a list of parts written one after the other) at ``path`` atomically.

    Writes a temp file in the same directory, fsyncs it, renames it over ``path``
    and fsyncs the directory (when ``durable``). A failure before the rename
    leaves ``path`` untouched; a failure after it (the directory sync) leaves the
    new content in place. Either way the ``OSError`` becomes a
    :class:`StorageError` whose ``published`` attribute tells which.
    """
    tmp = temp_name(path)
    replaced = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                write_all(fd, data)
            else:
                writev_all(fd, data)  # large files (the stat cache) are not joined into one more copy
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        replaced = True
        if durable:
            fsync_dir(os.path.dirname(os.fspath(path)) or ".")
    except OSError as err:
        if not replaced:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        failure = StorageError("write", os.fspath(path), err)
        # The new content is visible but may not survive a crash: callers that
        # must not report failure while the change stands (refs) undo it.
        failure.published = replaced
        raise failure from err


def file_identity(path: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of ``path`` itself (not followed), or ``None`` if it is not there."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def unlink_if_same(path: str, identity: tuple[int, int] | None) -> None:
    """Remove ``path`` if it is still the file ``identity`` names (a daemon's socket: a newer
    daemon's socket at the same path is left alone)."""
    if identity is not None and file_identity(path) == identity:
        try:
            os.unlink(path)
        except OSError:
            pass


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """Read a whole (small) file."""
    with open(path, "rb") as f:
        return f.read()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FileLock:
    """An exclusive lock held by creating ``path`` with ``O_EXCL``.

    The lock file records the holder's pid, host and start time. A lock whose holder
    ran on this host and is no longer alive is stale and is broken automatically;
    any other held lock makes :meth:`acquire` wait up to ``timeout`` seconds, then
    raise :class:`LockError` naming the holder.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 0.0, poll: float = 0.05) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self.poll = poll
        self._held = False

    def _describe_holder(self) -> tuple[str, bool]:
        """Return (description, stale) of the current holder."""
        try:
            raw = read_bytes(self.path)
            info = json.loads(raw)
            pid = int(info["pid"])
            host = str(info["host"])
        except FileNotFoundError:
            return "nobody", True
        except (OSError, ValueError, KeyError, TypeError):
            # A half-written lock file: its writer is mid-way or crashed; judge by age.
            try:
                age = time.time() - os.stat(self.path).st_mtime
            except FileNotFoundError:
                return "nobody", True
            return "an unknown process", age > 10
        stale = host == hostname() and not _pid_alive(pid)
        return f"pid {pid} on {host}", stale

    def acquire(self) -> "FileLock":
        """Take the lock, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        payload = json.dumps({"pid": os.getpid(), "host": hostname(), "time": time.time()}).encode()
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder, stale = self._describe_holder()
                if stale:
                    self._break_stale()
                    continue
                if time.monotonic() >= deadline:
                    raise LockError(self.path, holder) from None
                time.sleep(self.poll)
                continue
            except OSError as err:
                raise StorageError("create lock", self.path, err) from err
            try:
                write_all(fd, payload)
            except OSError as err:
                # Never leave an empty lock behind: it would block every writer.
                os.close(fd)
                try:
                    os.unlink(self.path)
                except OSError:
                    pass
                raise StorageError("write lock", self.path, err) from err
            os.close(fd)
            self._held = True
            return self

    def _break_stale(self) -> None:
        # Rename first so that two processes breaking the same stale lock cannot
        # both delete a lock the other has just taken.
        grave = f"{self.path}.stale-{os.getpid()}-{os.urandom(3).hex()}"
        try:
            os.rename(self.path, grave)
        except FileNotFoundError:
            return
        holder_ok = False
        try:
            info = json.loads(read_bytes(grave))
            holder_ok = info.get("host") == hostname() and _pid_alive(int(info["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if holder_ok:
            # We raced with a live holder that took the lock in between: put it back.
            try:
                os.link(grave, self.path)
            except OSError:
                pass
        try:
            os.unlink(grave)
        except OSError:
            pass

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        if self._held:
            self._held = False
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_disk_full(err: OSError) -> bool:
    """Whether an OSError means the disk (or a quota or size limit) is full."""
    return err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
