"""Pack files: many small objects appended to one file, with a sorted index.

Writing one file per small object costs a create, a rename and (for durability)
an fsync each; appending to a pack costs one write each and one fsync for the lot.
Layout (all integers little-endian; docs/format.md §3 has the authoritative spec)::

    pack-<name>.pack   "DSVPACK\\n" u32 version u32 0, then per object:
                       v1: 16-byte id, u64 length, data
                       v2: 16-byte id, u64 stored length, u64 size, u32 encoding, u32 0, data
    pack-<name>.idx    "DSVIDX\\n\\0" u32 version u32 0 u64 count,
                       count x (16-byte id, u64 data offset [v2: | encoding << 56],
                       u64 stored length) sorted by id,
                       16-byte XXH3-128 of everything before it

An object's id is always the hash of its bytes (``size`` of them); the *encoding*
says how they are stored: as they are, zstd-compressed, or as a list of chunks
(a big file cut at content-defined boundaries, each chunk an object of its own).
Compression and chunking are storage details that never change an id. A pack becomes visible when its ``.idx``
appears (renamed into place after the pack was made durable); a pack without an
index is garbage for ``dsv gc``. The records of a pack are self-describing, so a
damaged index can be rebuilt from its pack (:func:`scan_pack`).
"""

from __future__ import annotations

import bisect
import enum
import os
import struct
import sys
from array import array
from itertools import accumulate
from collections.abc import Iterator, Sequence

from dsv.base.errors import CorruptMetadataError, FormatVersionError
from dsv.base.fsio import writev_all
from dsv.base.hashing import DIGEST_SIZE, digest_bytes
from dsv.base.records import FrozenRecord, init_field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PACK_MAGIC = b"DSVPACK\n"
IDX_MAGIC = b"DSVIDX\n\0"
PACK_VERSION = 2
"""Version written; readers accept 1 and 2."""
PACK_HEADER = struct.Struct("<8sII")
IDX_HEADER = struct.Struct("<8sIIQ")
RECORD = struct.Struct("<16sQQ")
OBJECT_HEADER_V1 = struct.Struct("<16sQ")
OBJECT_HEADER = struct.Struct("<16sQQII")
"""v2 record header: id, stored length, size, encoding, reserved (40 bytes)."""
TRAILER = struct.Struct("<QII")
"""The last 16 bytes of a v2 record header (size, encoding, reserved), read with the data."""


class Encoding(enum.IntEnum):
    """How a packed object's bytes are stored."""

    RAW = 0
    """The object's bytes as they are."""
    ZSTD = 1
    """One zstd frame that decompresses to the object's ``size`` bytes."""
    CHUNKED = 2
    """A chunk list: the object is the concatenation of these chunk objects (see :func:`decode_chunk_list`)."""


OFFSET_BITS = 56
"""In a v2 index, an entry's offset holds the encoding in its top 8 bits."""
OFFSET_MASK = (1 << OFFSET_BITS) - 1
CHUNK_ENTRY = struct.Struct("<16sQ")


def encode_chunk_list(chunks: list[tuple[bytes, int]]) -> bytes:
    """The stored bytes of a chunked object: ``(chunk id, length)`` per chunk, in order."""
    return b"".join(CHUNK_ENTRY.pack(raw, n) for raw, n in chunks)


def decode_chunk_list(stored: bytes, size: int) -> list[tuple[bytes, int]]:
    """Parse a chunk list; ``ValueError`` unless its lengths add up to ``size``."""
    if len(stored) % CHUNK_ENTRY.size:
        raise ValueError("chunk list length is not a multiple of 24")
    out = [CHUNK_ENTRY.unpack_from(stored, i) for i in range(0, len(stored), CHUNK_ENTRY.size)]
    if sum(n for _, n in out) != size:
        raise ValueError("chunk lengths do not add up to the object's size")
    return out


class ChunkMap:
    """Where each chunk of a big file lies, from its stored chunk list, with no Python object per chunk.

    A 1 GiB file has ~5,000-15,000 chunks: :func:`decode_chunk_list` builds a tuple
    (and a caller a hex id) per chunk, ~5 ms before the first byte is read. A map
    keeps the list's bytes and one ``int`` offset per chunk (summed at C speed), and
    makes the hex id of a chunk only when a read touches it. ``ValueError`` as
    :func:`decode_chunk_list` (a list whose lengths do not add up to ``size``).
    """

    __slots__ = ("offsets", "_stored")

    def __init__(self, stored: bytes | memoryview, size: int) -> None:
        if len(stored) % CHUNK_ENTRY.size:
            raise ValueError("chunk list length is not a multiple of 24")
        words: Any
        if sys.byteorder == "little":
            words = memoryview(stored).cast("Q")
        else:
            words = array("Q")
            words.frombytes(stored)
            words.byteswap()
        offsets = list(accumulate(words[2::3], initial=0))
        if offsets[-1] != size:
            raise ValueError("chunk lengths do not add up to the object's size")
        self.offsets: list[int] = offsets
        """``offsets[i]`` is where chunk ``i`` starts; the last entry is the object's size."""
        self._stored = stored

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def span(self, start: int, end: int) -> tuple[int, int]:
        """``(first, last)`` chunk of the bytes ``[start, end)`` (``0 <= start < end <= size``)."""
        offsets = self.offsets
        return bisect.bisect_right(offsets, start) - 1, bisect.bisect_left(offsets, end) - 1

    def chunk_id(self, i: int) -> str:
        """The hex id of chunk ``i``."""
        at = i * CHUNK_ENTRY.size
        return self._stored[at : at + DIGEST_SIZE].hex()

    def pairs(self) -> list[tuple[str, int]]:
        """``(hex id, length)`` of every chunk (what ``chunk_list`` returns)."""
        o = self.offsets
        return [(self.chunk_id(i), o[i + 1] - o[i]) for i in range(len(self))]


class _IdView(Sequence[bytes]):
    """The ids of an index, sliced from its bytes on access (sorted: ``bisect`` works on it)."""

    __slots__ = ("_data", "_start", "_count")

    def __init__(self, data: bytes, start: int, count: int) -> None:
        self._data, self._start, self._count = data, start, count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._count))]
        if i < 0:
            i += self._count
        if not 0 <= i < self._count:
            raise IndexError("pack index id out of range")
        at = self._start + i * RECORD.size
        return self._data[at : at + DIGEST_SIZE]

    def find(self, raw: bytes) -> int:
        """The row of id ``raw``, or -1: a binary search over the bytes, with no call per step."""
        data, start, step = self._data, self._start, RECORD.size
        lo, hi = 0, self._count
        while lo < hi:
            mid = (lo + hi) >> 1
            at = start + mid * step
            if data[at : at + DIGEST_SIZE] < raw:
                lo = mid + 1
            else:
                hi = mid
        if lo < self._count:
            at = start + lo * step
            if data[at : at + DIGEST_SIZE] == raw:
                return lo
        return -1

    def __iter__(self) -> Iterator[bytes]:
        data, step = self._data, RECORD.size
        for at in range(self._start, self._start + self._count * step, step):
            yield data[at : at + DIGEST_SIZE]


class _WordView(Sequence[int]):
    """One word of every record (``offset & mask`` or ``offset >> 56``), computed on access."""

    __slots__ = ("_words", "_shift", "_mask")

    def __init__(self, words: Any, shift: int, mask: int) -> None:
        self._words, self._shift, self._mask = words, shift, mask

    def __len__(self) -> int:
        return len(self._words) // 4

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        return (self._words[4 * i + 2] >> self._shift) & self._mask

    def __iter__(self) -> Iterator[int]:
        shift, mask = self._shift, self._mask
        for w in self._words[2::4]:
            yield (w >> shift) & mask


KEYED_LOOKUPS = 64
"""A pack index searches an integer array of its ids' prefixes from this many lookups on (or 1 per 128 ids)."""


class PackIndex:
    """The verified index of one pack, sorted by id.

    Loading does no per-entry work: ``ids``, ``offsets``, ``encodings`` and
    ``lengths`` read the index's bytes on access, so opening a store of a
    million objects to read one costs a checksum and a copy, not a million
    Python objects (a bisect touches ~20 entries).
    """

    __slots__ = ("ids", "offsets", "lengths", "version", "_words", "_records", "_keys", "_lookups")

    def __init__(self, data: bytes, start: int, count: int, version: int) -> None:
        # Each record is 4 little-endian u64 words: two of id, then offset, then length.
        raw = memoryview(data)[start : start + count * RECORD.size]
        self._records = raw
        self._keys: array[int] | None = None
        self._lookups = 0
        words: Any
        if sys.byteorder == "little":
            words = raw.cast("Q")  # a view: no copy of a multi-megabyte index
        else:
            words = array("Q")
            words.frombytes(raw)
            words.byteswap()
        self._words = words
        self.version = version
        self.ids = _IdView(data, start, count)
        self.offsets: Sequence[int] = _WordView(words, 0, OFFSET_MASK)
        self.lengths: Sequence[int] = words[3::4]

    @property
    def encodings(self) -> Sequence[int] | None:
        """Encoding of each entry (v2); ``None`` in a v1 index, where every entry is raw."""
        return _WordView(self._words, OFFSET_BITS, 0xFF) if self.version >= 2 else None

    def find(self, raw: bytes) -> int:
        """The row of id ``raw``, or -1.

        A binary search over the bytes (~4 us in Python for 100,000 ids) until
        lookups are many (a read of 10,000 small files); then over an array of
        each id's first 8 bytes as an integer (``bisect`` in C, ~1.5 us), built
        once from the index's bytes (~2 ms for 100,000 ids).
        """
        keys = self._keys
        if keys is None:
            self._lookups += 1
            if self._lookups < max(KEYED_LOOKUPS, len(self.ids) // 128):
                return self.ids.find(raw)
            keys = self._keys = self._key_array()
        k = int.from_bytes(raw[:8], "big")
        i = bisect.bisect_left(keys, k)
        ids, n = self.ids, len(keys)
        while i < n and keys[i] == k:  # ids sharing their first 8 bytes are adjacent
            if ids[i] == raw:
                return i
            i += 1
        return -1

    def _key_array(self) -> "array[int]":
        """The first 8 bytes of every id, read as a big-endian integer: sorted as the ids are."""
        keys = array("Q")
        keys.frombytes(self._records.cast("Q")[0::4].tobytes())  # a byte gather in C, whatever the byte order
        if sys.byteorder == "little":
            keys.byteswap()
        return keys

    def __len__(self) -> int:
        return len(self.ids)


def encode_index(entries: list[tuple[bytes, int, int, int]] | list[tuple[bytes, int, int]], version: int = PACK_VERSION) -> bytes:
    """Serialize ``(id, offset, stored length[, encoding])`` entries (any order) as an ``.idx`` file."""
    ordered = sorted(entries)
    parts = [IDX_HEADER.pack(IDX_MAGIC, version, 0, len(ordered))]
    for e in ordered:
        raw, offset, length = bytes(e[0]), int(e[1]), int(e[2])
        encoding = int(e[3]) if len(e) > 3 and version >= 2 else 0  # type: ignore[misc]
        parts.append(RECORD.pack(raw, offset | (encoding << OFFSET_BITS), length))
    body = b"".join(parts)
    return body + digest_bytes(body)


def encode_packed_index(records: bytes | bytearray) -> bytes:
    """:func:`encode_index` of packed version-2 :data:`RECORD` records (any order).

    A record starts with its id, so sorting whole records sorts by id.
    """
    size = RECORD.size
    ordered = [bytes(records[i : i + size]) for i in range(0, len(records), size)]
    ordered.sort()
    body = IDX_HEADER.pack(IDX_MAGIC, PACK_VERSION, 0, len(ordered)) + b"".join(ordered)
    del ordered
    return body + digest_bytes(body)


def decode_index(data: bytes, *, what: str) -> PackIndex:
    """Parse and verify an ``.idx`` file."""
    if len(data) < IDX_HEADER.size + DIGEST_SIZE:
        raise CorruptMetadataError(what, "truncated pack index", hint="run 'dsv fsck --repair' to rebuild it from its pack")
    magic, version, _, count = IDX_HEADER.unpack_from(data)
    if magic != IDX_MAGIC:
        raise CorruptMetadataError(what, "not a dsv pack index", hint="run 'dsv fsck --repair' to rebuild it from its pack")
    if version > PACK_VERSION:
        raise FormatVersionError(what, version, PACK_VERSION)
    # A view, not a slice: a multi-megabyte index is hashed in place, not copied first.
    body, trailer = memoryview(data)[:-DIGEST_SIZE], data[-DIGEST_SIZE:]
    if len(body) != IDX_HEADER.size + count * RECORD.size:
        raise CorruptMetadataError(what, "truncated pack index", hint="run 'dsv fsck --repair' to rebuild it from its pack")
    if digest_bytes(body) != trailer:
        raise CorruptMetadataError(what, "pack index checksum mismatch", hint="run 'dsv fsck --repair' to rebuild it from its pack")
    return PackIndex(data, IDX_HEADER.size, count, version)


def check_pack_header(header: bytes, *, what: str) -> int:
    """Refuse a pack file that is not a dsv pack of a known version; return its version."""
    if len(header) < PACK_HEADER.size:
        raise CorruptMetadataError(what, "truncated pack header")
    magic, version, _ = PACK_HEADER.unpack_from(header)
    if magic != PACK_MAGIC:
        raise CorruptMetadataError(what, "not a dsv pack file")
    if version > PACK_VERSION:
        raise FormatVersionError(what, version, PACK_VERSION)
    if version < 1:
        raise CorruptMetadataError(what, f"pack version {version} does not exist")
    return version


def compress(data: bytes) -> bytes:
    """zstd-compress ``data`` (pyarrow's codec, imported only when needed)."""
    import pyarrow as pa

    return pa.compress(data, codec="zstd", asbytes=True)


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def zstd_content_size(frame: bytes) -> int | None:
    """The content size a zstd frame header declares (RFC 8878 §3.1.1.1), or ``None`` if it declares none.

    ``ValueError`` if ``frame`` does not start with a zstd frame header.
    """
    if len(frame) < 5 or frame[:4] != _ZSTD_MAGIC:
        raise ValueError("not a zstd frame")
    descriptor = frame[4]
    fcs_flag, single_segment, dict_flag = descriptor >> 6, (descriptor >> 5) & 1, descriptor & 3
    at = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dict_flag]
    width = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
    if width == 0:
        return None
    if len(frame) < at + width:
        raise ValueError("truncated zstd frame header")
    value = int.from_bytes(frame[at : at + width], "little")
    return value + 256 if width == 2 else value


def decompress(stored: bytes, size: int) -> bytes:
    """Undo :func:`compress`; ``size`` is the object's length. Raises ``ValueError`` on damage.

    The frame's own content size is checked against ``size`` first: a damaged
    ``size`` must not become an allocation of that many bytes.
    """
    import pyarrow as pa

    declared = zstd_content_size(bytes(stored[:18]))
    if declared is not None and declared != size:
        raise ValueError(f"the record says {size} bytes, its zstd frame {declared}")
    try:
        out = pa.decompress(stored, decompressed_size=size, codec="zstd", asbytes=True)
    except (pa.ArrowException, OSError) as err:
        raise ValueError(f"not a valid zstd frame ({err})") from err
    except MemoryError as err:  # a frame that declares no size, with a damaged record size
        raise ValueError(f"the record's size ({size} bytes) cannot be decompressed here") from err
    if len(out) != size:
        raise ValueError("zstd frame has the wrong length")
    return out


def decode_payload(stored: bytes, size: int, encoding: int) -> bytes:
    """The object's bytes from a record's stored bytes; ``ValueError`` if they cannot be decoded."""
    if encoding == Encoding.RAW:
        return stored
    if encoding == Encoding.ZSTD:
        return decompress(stored, size)
    if encoding == Encoding.CHUNKED:
        raise ValueError("a chunked object is read chunk by chunk")
    raise ValueError(f"unknown encoding {encoding}")


FLUSH_BYTES = 1024 * 1024
"""A pack writer writes when this much is buffered. Measured on a 2 GiB commit: 8 MiB writes cost
~1.5 s more system time than 1 MiB ones (large ``write`` calls are slow on the VMs measured)."""
WRITEBACK_BYTES = 32 * 1024 * 1024
"""A pack writer asks the kernel to start writing back every this many bytes written.

Without it nothing reaches the disk before the final fsync (a machine with GBs
of RAM holds a whole 2 GiB commit dirty), so the fsync waits for every byte;
started early, the disk writes while the commit cuts and hashes, and the fsync
finds almost nothing left (measured: 2 GiB written, fsync 0.9 s -> 0.02 s)."""

_sync_file_range: Any = None


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a file range back to disk without waiting (Linux ``sync_file_range``; elsewhere nothing).

    Only a head start for a later fsync, which remains the durability point.
    """
    global _sync_file_range
    if _sync_file_range is None:
        _sync_file_range = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                fn = ctypes.CDLL(None, use_errno=True).sync_file_range
                fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
                fn.restype = ctypes.c_int
                _sync_file_range = fn
            except (OSError, AttributeError):
                pass
    if _sync_file_range:
        _sync_file_range(fd, offset, length, 2)  # SYNC_FILE_RANGE_WRITE; a failure only loses the head start


class PackWriter:
    """Appends objects to a new (version 2) pack file opened at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        self.entries = bytearray()
        """The index records (:data:`RECORD`) of the objects appended, packed: a tuple per object
        cost ~180 bytes, and a first commit of a million files appends a million."""
        self.count = 0
        self._buffer: list[bytes | memoryview] = [PACK_HEADER.pack(PACK_MAGIC, PACK_VERSION, 0)]
        self._buffered = PACK_HEADER.size
        self.size = PACK_HEADER.size
        self._kicked = 0
        """Bytes up to here have had their writeback started (:func:`start_writeback`)."""

    def append(self, raw_id: bytes, stored: bytes | memoryview, size: int, encoding: Encoding = Encoding.RAW) -> None:
        """Append one object (buffered; written in large batches).

        ``stored`` may be a view into a buffer the caller reuses: it must then
        :meth:`flush` before changing that buffer.
        """
        header = OBJECT_HEADER.pack(raw_id, len(stored), size, int(encoding), 0)
        self.entries += RECORD.pack(raw_id, (self.size + OBJECT_HEADER.size) | (int(encoding) << OFFSET_BITS), len(stored))
        self.count += 1
        self._buffer.append(header)
        self._buffer.append(stored)
        n = OBJECT_HEADER.size + len(stored)
        self.size += n
        self._buffered += n
        if self._buffered >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write buffered objects to the file (``writev`` of the buffers as they are, no joined copy)."""
        buffers = self._buffer
        if not buffers:
            return
        writev_all(self.fd, buffers)
        self._buffer = []
        self._buffered = 0
        written = self.size
        if written - self._kicked >= WRITEBACK_BYTES:
            start_writeback(self.fd, self._kicked, written - self._kicked)
            self._kicked = written

    def finish(self) -> bytes:
        """Flush, fsync and close the pack; return its encoded index."""
        self.flush()
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        return encode_packed_index(self.entries)

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


class ScannedRecord(FrozenRecord):
    """One record found by :func:`scan_pack`: where its stored bytes are and how to read them."""

    __slots__ = ("raw_id", "offset", "stored_length", "size", "encoding")

    raw_id: bytes
    offset: int
    stored_length: int
    size: int
    encoding: int

    def __init__(self, raw_id: bytes, offset: int, stored_length: int, size: int, encoding: int) -> None:
        init_field(self, "raw_id", raw_id)
        init_field(self, "offset", offset)
        init_field(self, "stored_length", stored_length)
        init_field(self, "size", size)
        init_field(self, "encoding", encoding)


def scan_pack(fd: int, file_size: int, *, what: str, version: int | None = None) -> tuple[int, Iterator[ScannedRecord]]:
    """Walk a pack's records in order (to rebuild a lost index); returns its version and the records.

    ``version`` overrides the header (for a pack whose header is damaged: callers
    try each version and keep the walk whose records verify). The walk stops at
    the first record that does not fit in the file (a truncated pack keeps the
    records before it). Callers verify each record's bytes.
    """
    if version is None:
        version = check_pack_header(os.pread(fd, PACK_HEADER.size, 0), what=what)
    head = OBJECT_HEADER if version >= 2 else OBJECT_HEADER_V1

    def records() -> Iterator[ScannedRecord]:
        pos = PACK_HEADER.size
        while pos + head.size <= file_size:
            fields = head.unpack(os.pread(fd, head.size, pos))
            if version >= 2:
                raw, length, size, encoding, _ = fields
            else:
                raw, length = fields
                size, encoding = length, Encoding.RAW
            data_at = pos + head.size
            if data_at + length > file_size:
                return
            yield ScannedRecord(raw, data_at, length, size, encoding)
            pos = data_at + length

    return version, records()
