"""Content-defined chunking of big files (FastCDC 2020, from the compiled ``pyfastcdc``).

A file of :data:`CHUNKED_THRESHOLD` bytes or more is stored as chunks whose
boundaries depend on the content around them, not on offsets: an edit, an
insertion or a truncation changes only the chunks it touches, so a 1% edit of a
big file stores about 1% (plus a chunk list). pyfastcdc cuts at several GB/s
with the GIL released; each chunk is then hashed and stored as an ordinary
(packed) object, so chunks are shared between files and versions for free.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

CHUNKED_THRESHOLD = 8 * 1024 * 1024
"""Objects at least this large are stored as chunks."""

MIN_CHUNK = 16 * 1024
AVG_CHUNK = 64 * 1024
MAX_CHUNK = 256 * 1024
"""FastCDC parameters (the output average is about ``AVG_CHUNK + MIN_CHUNK``, ~80 KiB)."""

READ_SIZE = 8 * 1024 * 1024


def _cutter() -> Any:
    from pyfastcdc import FastCDC  # compiled; imported only when a big file is cut

    # Seed 0: the reference gear table, so boundaries are the same on every machine and version.
    return FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK, normalized_chunking=1, seed=0)


class _FdReader:
    """``readinto`` over a file descriptor that also counts and keeps what it read first."""

    def __init__(self, fd: int, head: bytes) -> None:
        self.fd = fd
        self.head = memoryview(head)

    def readinto(self, buf: memoryview) -> int:
        if self.head:
            n = min(len(buf), len(self.head))
            buf[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        return os.readv(self.fd, [buf])


def chunks_of_fd(fd: int, head: bytes = b"") -> Iterator[bytes]:
    """Cut everything readable from ``fd`` (after the already-read ``head``) into chunks.

    Each chunk is returned as its own ``bytes`` (pyfastcdc reuses its buffer).
    """
    for c in _cutter().cut_stream(_FdReader(fd, head)):
        yield bytes(c.data)


def chunks_of_bytes(data: bytes | memoryview) -> Iterator[memoryview]:
    """Cut a buffer into chunks (views into ``data``)."""
    view = memoryview(data)
    for c in _cutter().cut_buf(view):
        yield view[c.offset : c.offset + c.length]
