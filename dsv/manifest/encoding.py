"""Bytes of manifest chunks and roots: the canonical v2 encoding, and v1 Arrow IPC for old repositories.

Object ids are hashes of bytes, so the bytes of a manifest must depend only on
its rows, never on a library version. Version 2 (written by this dsv) is dsv's
own little-endian columnar layout, which is also Arrow's in-memory layout, so
decoding is zero-copy::

    header   "DSVMANI\\n" u32 version=2 u32 kind (1 chunk, 2 root) u64 rows n
    chunk    u32 path offsets[n+1] | path bytes | 16-byte oids[n] | i64 sizes[n] | i32 modes[n]
    root     16-byte chunk ids[n] | u32 first offsets[n+1] | first bytes
             | u32 last offsets[n+1] | last bytes | i64 files[n] | i64 bytes[n]

Every column starts at a multiple of 8 bytes from the start (zero padding).
Compression is left to the store (it never changes an id). Version 1 manifests
(Arrow IPC streams with zstd buffers, whose bytes depended on the Arrow and zstd
builds) are still read.
"""

from __future__ import annotations

import struct
import sys
from array import array

import pyarrow as pa

from dsv.base.compute import subtract
from dsv.base.errors import CorruptMetadataError, FormatVersionError

MAGIC = b"DSVMANI\n"
VERSION = 2
HEADER = struct.Struct("<8sIIQ")
KIND_CHUNK = 1
KIND_ROOT = 2
V1_VERSION = 1

ENTRY_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("oid", pa.binary(16), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("mode", pa.int32(), nullable=False),
    ]
)
"""A manifest chunk in memory: one row per file, sorted by ``path`` (UTF-8 bytes)."""

ROOT_SCHEMA = pa.schema(
    [
        pa.field("chunk", pa.binary(16), nullable=False),
        pa.field("first", pa.string(), nullable=False),
        pa.field("last", pa.string(), nullable=False),
        pa.field("files", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
    ]
)
"""A manifest root in memory: one row per chunk, in path order."""

_V1_META = {b"dsv.manifest.version": b"1"}
V1_ENTRY_SCHEMA = ENTRY_SCHEMA.with_metadata({**_V1_META, b"dsv.kind": b"chunk"})
V1_ROOT_SCHEMA = ROOT_SCHEMA.with_metadata({**_V1_META, b"dsv.kind": b"root"})
_V1_WRITE_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")

_LITTLE = sys.byteorder == "little"


def _pad(n: int) -> bytes:
    return bytes(-n % 8)


def _le(buf: memoryview, typecode: str) -> bytes | memoryview:
    """A native buffer as little-endian bytes."""
    if _LITTLE:
        return buf
    a = array(typecode)
    a.frombytes(bytes(buf))
    a.byteswap()
    return a.tobytes()


def _fixed(arr: pa.Array, width: int, typecode: str | None) -> bytes | memoryview:
    view = memoryview(arr.buffers()[1])[arr.offset * width : (arr.offset + len(arr)) * width]  # type: ignore[arg-type]
    return view if typecode is None else _le(view, typecode)


def _strings(arr: pa.Array) -> list[bytes | memoryview]:
    """Offsets (rebased to 0) and data of a string column, each padded to 8 bytes."""
    n = len(arr)
    if n == 0:
        return [bytes(8)]  # one zero offset, padded
    bufs = arr.buffers()
    offsets = pa.Array.from_buffers(pa.int32(), n + 1, [None, bufs[1]], offset=arr.offset)
    first = offsets[0].as_py() if n else 0
    last = offsets[n].as_py() if n else 0
    rebased = subtract(offsets, pa.scalar(first, pa.int32())) if first else offsets
    off_bytes = _fixed(rebased, 4, "i")
    data = memoryview(bufs[2])[first:last] if bufs[2] is not None else memoryview(b"")  # type: ignore[arg-type]
    return [off_bytes, _pad(4 * (n + 1)), data, _pad(last - first)]


def _column(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        raise ValueError(f"manifest column {name} holds nulls")
    return arr


def encode_chunk(table: pa.Table) -> bytes:
    """Canonical bytes of a chunk table (``path, oid, size, mode``, sorted by path)."""
    n = table.num_rows
    parts: list[bytes | memoryview] = [HEADER.pack(MAGIC, VERSION, KIND_CHUNK, n)]
    parts += _strings(_column(table, "path"))
    parts.append(_fixed(_column(table, "oid"), 16, None))
    parts.append(_fixed(_column(table, "size"), 8, "q"))
    parts.append(_fixed(_column(table, "mode"), 4, "i"))
    parts.append(_pad(4 * n))
    return b"".join(parts)


def encode_root(table: pa.Table) -> bytes:
    """Canonical bytes of a root table (``chunk, first, last, files, bytes``)."""
    n = table.num_rows
    parts: list[bytes | memoryview] = [HEADER.pack(MAGIC, VERSION, KIND_ROOT, n)]
    parts.append(_fixed(_column(table, "chunk"), 16, None))
    parts += _strings(_column(table, "first"))
    parts += _strings(_column(table, "last"))
    parts.append(_fixed(_column(table, "files"), 8, "q"))
    parts.append(_fixed(_column(table, "bytes"), 8, "q"))
    return b"".join(parts)


class _Reader:
    """Slices a v2 body into Arrow buffers, checking every length."""

    def __init__(self, data: bytes, what: str) -> None:
        self.buf = pa.py_buffer(data)
        self.size = len(data)
        self.pos = HEADER.size
        self.what = what

    def take(self, nbytes: int) -> pa.Buffer:
        end = self.pos + nbytes
        if end > self.size:
            raise CorruptMetadataError(self.what, "truncated manifest")
        out = self.buf.slice(self.pos, nbytes)
        self.pos = end + (-nbytes % 8)
        if self.pos > self.size:
            raise CorruptMetadataError(self.what, "truncated manifest")
        return out

    def native(self, nbytes: int, typecode: str) -> pa.Buffer:
        b = self.take(nbytes)
        if _LITTLE:
            return b
        a = array(typecode)
        a.frombytes(b.to_pybytes())
        a.byteswap()
        return pa.py_buffer(a.tobytes())

    def strings(self, n: int) -> pa.Array:
        offsets = self.native(4 * (n + 1), "i")
        end = int.from_bytes(offsets.to_pybytes()[4 * n : 4 * n + 4], "little" if _LITTLE else "big", signed=True)
        if end < 0:
            raise CorruptMetadataError(self.what, "bad string offsets")
        data = self.take(end)
        return pa.Array.from_buffers(pa.string(), n, [None, offsets, data])

    def fixed(self, n: int, width: int, typ: pa.DataType, typecode: str | None) -> pa.Array:
        buf = self.take(n * width) if typecode is None else self.native(n * width, typecode)
        return pa.Array.from_buffers(typ, n, [None, buf])

    def done(self) -> None:
        if self.pos != self.size:
            raise CorruptMetadataError(self.what, "trailing bytes after the manifest")


def _decode_v2(data: bytes, kind: int, what: str) -> pa.Table:
    magic, version, found_kind, n = HEADER.unpack_from(data)
    if version > VERSION:
        raise FormatVersionError(what, version, VERSION)
    if version != VERSION:
        raise CorruptMetadataError(what, f"unknown manifest version {version}")
    if found_kind != kind:
        raise CorruptMetadataError(what, f"is a manifest {'root' if found_kind == KIND_ROOT else 'chunk'}, not a {'root' if kind == KIND_ROOT else 'chunk'}")
    if n > (len(data) // 8):
        raise CorruptMetadataError(what, "row count larger than the object")
    r = _Reader(data, what)
    if kind == KIND_CHUNK:
        cols = [r.strings(n), r.fixed(n, 16, pa.binary(16), None), r.fixed(n, 8, pa.int64(), "q"), r.fixed(n, 4, pa.int32(), "i")]
        schema = ENTRY_SCHEMA
    else:
        cols = [r.fixed(n, 16, pa.binary(16), None), r.strings(n), r.strings(n), r.fixed(n, 8, pa.int64(), "q"), r.fixed(n, 8, pa.int64(), "q")]
        schema = ROOT_SCHEMA
    r.done()
    try:
        for c in cols:
            c.validate(full=True)  # offsets in range and increasing, UTF-8 valid
    except (pa.ArrowInvalid, pa.ArrowException) as err:
        raise CorruptMetadataError(what, f"invalid column ({err})") from err
    return pa.Table.from_arrays(cols, schema=schema)


def _decode_v1(data: bytes, schema: pa.Schema, what: str) -> pa.Table:
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as err:
        raise CorruptMetadataError(what, f"not a readable manifest ({err})") from err
    meta = table.schema.metadata or {}
    version = meta.get(b"dsv.manifest.version", b"?").decode(errors="replace")
    if version != str(V1_VERSION):
        if version.isdigit() and int(version) > VERSION:
            raise FormatVersionError(what, version, VERSION)
        raise CorruptMetadataError(what, f"unknown manifest version {version!r}")
    if not table.schema.equals(schema, check_metadata=True):
        raise CorruptMetadataError(what, f"unexpected schema {table.schema.names}")
    return table.replace_schema_metadata(None)


def decode_chunk(data: bytes, *, what: str) -> pa.Table:
    """A chunk table from its bytes (v2, or v1 Arrow IPC)."""
    if data[:8] == MAGIC and len(data) >= HEADER.size:
        return _decode_v2(data, KIND_CHUNK, what)
    return _decode_v1(data, V1_ENTRY_SCHEMA, what)


def decode_root(data: bytes, *, what: str) -> pa.Table:
    """A root table from its bytes (v2, or v1 Arrow IPC)."""
    if data[:8] == MAGIC and len(data) >= HEADER.size:
        return _decode_v2(data, KIND_ROOT, what)
    return _decode_v1(data, V1_ROOT_SCHEMA, what)


def encode_v1(table: pa.Table, schema: pa.Schema) -> bytes:
    """Version 1 bytes (Arrow IPC, zstd), for tests of the v1 reader only: dsv never writes v1."""
    table = table.combine_chunks().cast(schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema, options=_V1_WRITE_OPTIONS) as writer:
        writer.write_table(table, max_chunksize=max(1, table.num_rows))
    return sink.getvalue().to_pybytes()
