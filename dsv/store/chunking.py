"""Content-defined chunking of big files (FastCDC 2020, from the compiled ``pyfastcdc``).

A file of :data:`CHUNKED_THRESHOLD` bytes or more is stored as chunks whose
boundaries depend on the content around them: an edit, an insertion or a
truncation changes only the chunks it touches, so a 1% edit of a big file
stores about 1% (plus a chunk list). Each chunk is hashed and stored as an
ordinary (packed) object, so chunks are shared between files and versions for
free.

Every multiple of :data:`SEGMENT_SIZE` is also a boundary: a file is cut as
independent 64 MiB *segments*, so segments can be cut by several processes at
once and still give the same chunks as one process (docs/format.md §"chunk
list"). The rule depends only on offsets and content, never on how many
processes cut.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CHUNKED_THRESHOLD = 8 * 1024 * 1024
"""Objects at least this large are stored as chunks."""

MIN_CHUNK = 16 * 1024
AVG_CHUNK = 64 * 1024
MAX_CHUNK = 256 * 1024
"""FastCDC parameters (the output average is about ``AVG_CHUNK + MIN_CHUNK``, ~80 KiB)."""

SEGMENT_SIZE = 64 * 1024 * 1024
"""Every multiple of this offset is a chunk boundary: segments are cut independently.

Part of the chunking rule (changing it moves boundaries, which costs dedup
against chunks stored before, never correctness). Tests patch it smaller.
"""


def _cutter() -> Any:
    from pyfastcdc import FastCDC  # compiled; imported only when a big file is cut

    # Seed 0: the reference gear table, so boundaries are the same on every machine and version.
    return FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK, normalized_chunking=1, seed=0)


class FdReader:
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


def read_segment(reader: FdReader, buf: "bytearray | mmap.mmap") -> memoryview:
    """Fill ``buf`` from ``reader`` (short only at the end of the stream); a view of what was read."""
    view = memoryview(buf)
    got = 0
    while got < len(buf):
        n = reader.readinto(view[got:])
        if not n:
            break
        got += n
    return view[:got]


def segment_buffer(size: int) -> "mmap.mmap":
    """A writable buffer of ``size`` bytes whose pages cost nothing until written.

    An anonymous mapping, not ``bytearray(size)``: that zero-fills every byte
    (64 MiB, ~30 ms holding the GIL) even for a file of 9 MiB, and each thread
    storing big files holds one.
    """
    return mmap.mmap(-1, size)


def segments_of_fd(fd: int, head: bytes = b"") -> Iterator[memoryview]:
    """Everything readable from ``fd`` (after the already-read ``head``), one segment at a time.

    Each segment is a view into one reused buffer, valid until the next is read.
    """
    size = SEGMENT_SIZE
    reader = FdReader(fd, head)
    buf = segment_buffer(size)
    while True:
        view = read_segment(reader, buf)
        if not view:
            return
        yield view
        if len(view) < size:
            return


def cut_points(segment: bytes | bytearray | memoryview) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of each chunk of one segment (at most :data:`SEGMENT_SIZE` bytes)."""
    for c in _cutter().cut_buf(segment):
        yield c.offset, c.length


def chunks_of_fd(fd: int, head: bytes = b"") -> Iterator[bytes]:
    """Cut everything readable from ``fd`` (after the already-read ``head``) into chunks.

    Each chunk is returned as its own ``bytes`` (the segment buffer is reused).
    """
    for view in segments_of_fd(fd, head):
        for off, n in cut_points(view):
            yield bytes(view[off : off + n])


def chunks_of_bytes(data: bytes | memoryview) -> Iterator[memoryview]:
    """Cut a buffer into chunks (views into ``data``), segment by segment."""
    view = memoryview(data)
    size = SEGMENT_SIZE
    for start in range(0, len(view), size):
        segment = view[start : start + size]
        for off, n in cut_points(segment):
            yield segment[off : off + n]
