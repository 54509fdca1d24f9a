"""Reading file contents from the working tree, safely and in one pass.

Files are opened with ``O_NOFOLLOW`` (a file swapped for a symlink after the walk
is refused, not followed) and re-``fstat``-ed after reading: if size or mtime
moved since the walk, the file changed during the operation, and the caller is
told so. What is hashed and stored is always exactly the bytes read.
"""

from __future__ import annotations

import os

from dsv.base.errors import StorageError
from dsv.base.hashing import Hasher, digest_bytes
from dsv.base.records import Record
from dsv.store.base import CHUNK_SIZE
from dsv.store.chunking import CHUNKED_THRESHOLD as LOOSE_THRESHOLD
from dsv.base.filemodes import MODE_LINK

_O_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class ReadResult(Record):
    """A file's stored or hashed content id, size and whether it changed while read."""

    __slots__ = ("raw_oid", "size", "changed", "vanished")
    __hash__ = None  # type: ignore[assignment]  # mutable (one is built per file read: a plain __init__ is 5x cheaper); never modified

    def __init__(self, raw_oid: bytes, size: int, changed: bool, vanished: bool = False) -> None:
        self.raw_oid = raw_oid
        self.size = size
        self.changed = changed
        self.vanished = vanished


VANISHED = ReadResult(b"", 0, True, vanished=True)
"""The result for a file that disappeared before it could be read."""


def _changed(before: os.stat_result, after: os.stat_result, nread: int) -> bool:
    return after.st_size != before.st_size or after.st_mtime_ns != before.st_mtime_ns or nread != after.st_size


def _read_all(fd: int, hint: int) -> bytes:
    want = hint + 1
    data = os.read(fd, want)
    if len(data) < want:
        return data
    parts = [data]
    while c := os.read(fd, CHUNK_SIZE):
        parts.append(c)
    return b"".join(parts)


def is_large(st: os.stat_result) -> bool:
    """Whether a file is big enough to be streamed rather than read whole."""
    return st.st_size >= LOOSE_THRESHOLD


def read_link(abs_path: str) -> bytes:
    """A symlink's target as bytes (its stored content)."""
    try:
        return os.fsencode(os.readlink(abs_path))
    except OSError as err:
        raise StorageError("read link", abs_path, err) from err


def _open(abs_path: str) -> int | None:
    try:
        return os.open(abs_path, _O_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StorageError("read", abs_path, err) from err


def hash_path(abs_path: str, st: os.stat_result, mode: int) -> ReadResult:
    """Hash a file (or symlink target) without storing it."""
    if mode == MODE_LINK:
        data = read_link(abs_path)
        return ReadResult(digest_bytes(data), len(data), False)
    fd = _open(abs_path)
    if fd is None:
        return ReadResult(b"", 0, True, vanished=True)
    try:
        if not is_large(st):
            data = _read_all(fd, st.st_size)
            after = os.fstat(fd)
            return ReadResult(digest_bytes(data), len(data), _changed(st, after, len(data)))
        hasher = Hasher()
        n = 0
        buf = bytearray(CHUNK_SIZE)
        view = memoryview(buf)
        while True:
            k = os.readv(fd, [buf])
            if not k:
                break
            hasher.update(view[:k])
            n += k
        after = os.fstat(fd)
        return ReadResult(hasher.digest(), n, _changed(st, after, n))
    except OSError as err:
        raise StorageError("read", abs_path, err) from err
    finally:
        os.close(fd)


def store_path(writer: object, abs_path: str, st: os.stat_result, mode: int) -> ReadResult:
    """Copy a file (or symlink target) into ``writer``, hashing the same bytes once."""
    if mode == MODE_LINK:
        data = read_link(abs_path)
        return ReadResult(writer.add_raw(data), len(data), False)  # type: ignore[attr-defined]
    fd = _open(abs_path)
    if fd is None:
        return VANISHED
    try:
        if not is_large(st):
            data = _read_all(fd, st.st_size)
            after = os.fstat(fd)
        else:
            oid, n = writer.add_fd(fd)  # type: ignore[attr-defined]
            after = os.fstat(fd)
            return ReadResult(bytes.fromhex(oid), n, _changed(st, after, n))
    except OSError as err:
        raise StorageError("read", abs_path, err) from err
    finally:
        os.close(fd)
    # Stored after the file is closed: a failure to write is not a failure to read.
    return ReadResult(writer.add_raw(data), len(data), _changed(st, after, len(data)))  # type: ignore[attr-defined]
