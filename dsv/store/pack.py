"""Pack files: many small objects appended to one file, with a sorted index.

Writing one file per small object costs a create, a rename and (for durability)
an fsync each; appending to a pack costs one write each and one fsync for the lot.
Layout (all integers little-endian; docs/format.md has the authoritative spec)::

    pack-<name>.pack   "DSVPACK\\n" u32 version u32 0, then per object:
                       16-byte id, u64 length, data
    pack-<name>.idx    "DSVIDX\\n\\0" u32 version u32 0 u64 count,
                       count x (16-byte id, u64 data offset, u64 length) sorted by id,
                       16-byte XXH3-128 of everything before it

A pack becomes visible when its ``.idx`` appears (renamed into place after the
pack was made durable); a pack without an index is garbage for ``dsv gc``.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from dataclasses import dataclass

from dsv.base.errors import CorruptMetadataError, FormatVersionError
from dsv.base.hashing import DIGEST_SIZE, digest_bytes

PACK_MAGIC = b"DSVPACK\n"
IDX_MAGIC = b"DSVIDX\n\0"
PACK_VERSION = 1
PACK_HEADER = struct.Struct("<8sII")
IDX_HEADER = struct.Struct("<8sIIQ")
RECORD = struct.Struct("<16sQQ")
OBJECT_HEADER = struct.Struct("<16sQ")


@dataclass(frozen=True)
class PackIndex:
    """The parsed index of one pack: parallel lists, sorted by id."""

    ids: list[bytes]
    offsets: list[int]
    lengths: list[int]

    def __len__(self) -> int:
        return len(self.ids)


def encode_index(entries: list[tuple[bytes, int, int]]) -> bytes:
    """Serialize ``(id, offset, length)`` entries (any order) as an ``.idx`` file."""
    entries = sorted(entries)
    parts = [IDX_HEADER.pack(IDX_MAGIC, PACK_VERSION, 0, len(entries))]
    parts.extend(RECORD.pack(oid, off, length) for oid, off, length in entries)
    body = b"".join(parts)
    return body + digest_bytes(body)


def decode_index(data: bytes, *, what: str) -> PackIndex:
    """Parse and verify an ``.idx`` file."""
    if len(data) < IDX_HEADER.size + DIGEST_SIZE:
        raise CorruptMetadataError(what, "truncated pack index")
    magic, version, _, count = IDX_HEADER.unpack_from(data)
    if magic != IDX_MAGIC:
        raise CorruptMetadataError(what, "not a dsv pack index")
    if version > PACK_VERSION:
        raise FormatVersionError(what, version, PACK_VERSION)
    body, trailer = data[:-DIGEST_SIZE], data[-DIGEST_SIZE:]
    if len(body) != IDX_HEADER.size + count * RECORD.size:
        raise CorruptMetadataError(what, "truncated pack index")
    if digest_bytes(body) != trailer:
        raise CorruptMetadataError(what, "pack index checksum mismatch")
    start = IDX_HEADER.size
    end = start + count * RECORD.size
    ids = [data[i : i + DIGEST_SIZE] for i in range(start, end, RECORD.size)]
    # Each record is 4 little-endian u64 words: two of id, then offset, then length.
    words = array("Q")
    words.frombytes(data[start:end])
    if sys.byteorder != "little":
        words.byteswap()
    return PackIndex(ids, words[2::4].tolist(), words[3::4].tolist())


def check_pack_header(header: bytes, *, what: str) -> None:
    """Refuse a pack file that is not a dsv pack of a known version."""
    if len(header) < PACK_HEADER.size:
        raise CorruptMetadataError(what, "truncated pack header")
    magic, version, _ = PACK_HEADER.unpack_from(header)
    if magic != PACK_MAGIC:
        raise CorruptMetadataError(what, "not a dsv pack file")
    if version > PACK_VERSION:
        raise FormatVersionError(what, version, PACK_VERSION)


class PackWriter:
    """Appends objects to a new pack file opened at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        self.entries: list[tuple[bytes, int, int]] = []
        self._buffer: list[bytes] = [PACK_HEADER.pack(PACK_MAGIC, PACK_VERSION, 0)]
        self._buffered = PACK_HEADER.size
        self.size = PACK_HEADER.size

    def append(self, raw_id: bytes, data: bytes) -> None:
        """Append one object (buffered; written in large batches)."""
        header = OBJECT_HEADER.pack(raw_id, len(data))
        self.entries.append((raw_id, self.size + OBJECT_HEADER.size, len(data)))
        self._buffer.append(header)
        self._buffer.append(data)
        n = OBJECT_HEADER.size + len(data)
        self.size += n
        self._buffered += n
        if self._buffered >= 8 * 1024 * 1024:
            self.flush()

    def flush(self) -> None:
        """Write buffered objects to the file."""
        if self._buffer:
            data = b"".join(self._buffer)
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
            self._buffer = []
            self._buffered = 0

    def finish(self) -> bytes:
        """Flush, fsync and close the pack; return its encoded index."""
        self.flush()
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        return encode_index(self.entries)

    def discard(self) -> None:
        """Close and delete the partial pack."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def pack_name(index_bytes: bytes) -> str:
    """A pack's name: the hex XXH3-128 of its index."""
    return digest_bytes(index_bytes).hex()
