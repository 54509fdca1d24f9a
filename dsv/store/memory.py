"""An in-memory object store: the reference implementation of the protocol, for tests.

It keeps objects the way every store does (docs/format.md §3.2): small ones
whole, big ones (:data:`~dsv.store.chunking.CHUNKED_THRESHOLD` and more) as a
chunk list over chunk objects, so transfers and the conformance suite see the
same shapes from every backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from dsv.base.errors import CorruptObjectError, ObjectNotFoundError
from dsv.base.hashing import Hasher, from_hex, hash_bytes, is_object_id
from dsv.store.base import CHUNK_SIZE, StoredRecord, verify_record
from dsv.store.chunking import CHUNKED_THRESHOLD, chunks_of_bytes
from dsv.store.pack import Encoding, encode_chunk_list


class MemoryObjectStore:
    """Objects kept in dicts; each instance is independent."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        """Objects stored whole: id -> bytes."""
        self.chunked: dict[str, list[tuple[bytes, int]]] = {}
        """Objects stored as chunks: id -> ``(chunk raw id, length)``."""

    def has(self, oid: str) -> bool:
        """Whether ``oid`` is held."""
        return oid in self.objects or oid in self.chunked

    def has_many(self, oids: Iterable[str]) -> set[str]:
        """The subset of ``oids`` held."""
        return {o for o in oids if self.has(o)}

    def read(self, oid: str) -> bytes:
        """Verified bytes of ``oid``."""
        if oid in self.chunked:
            return b"".join(self.iter_chunks(oid))
        try:
            data = self.objects[oid]
        except KeyError:
            raise ObjectNotFoundError(oid) from None
        actual = hash_bytes(data)
        if actual != oid:
            raise CorruptObjectError(oid, actual, location="memory")
        return data

    def size(self, oid: str) -> int:
        """Size of ``oid``."""
        if oid in self.chunked:
            return sum(n for _, n in self.chunked[oid])
        try:
            return len(self.objects[oid])
        except KeyError:
            raise ObjectNotFoundError(oid) from None

    def iter_chunks(self, oid: str) -> Iterator[bytes]:
        """Stream ``oid`` in chunks, verified at the end."""
        if oid in self.chunked:
            hasher = Hasher()
            for raw, _ in self.chunked[oid]:
                data = self.read(raw.hex())
                hasher.update(data)
                yield data
            if hasher.hexdigest() != oid:
                raise CorruptObjectError(oid, hasher.hexdigest(), location="memory")
            return
        data = self.read(oid)
        for i in range(0, len(data), CHUNK_SIZE):
            yield data[i : i + CHUNK_SIZE]
        if not data:
            yield b""

    def chunk_list(self, oid: str) -> list[tuple[str, int]] | None:
        """The chunks of a chunked object, or ``None``."""
        if oid in self.chunked:
            return [(raw.hex(), n) for raw, n in self.chunked[oid]]
        if oid not in self.objects:
            raise ObjectNotFoundError(oid)
        return None

    def read_record(self, oid: str) -> StoredRecord:
        """The stored form of ``oid``, verified."""
        raw = from_hex(oid) if is_object_id(oid) else b""
        if oid in self.chunked:
            chunks = self.chunked[oid]
            return StoredRecord(raw, encode_chunk_list(chunks), sum(n for _, n in chunks), int(Encoding.CHUNKED))
        data = self.read(oid)
        return StoredRecord(raw, data, len(data), int(Encoding.RAW))

    def read_records(self, oids: Iterable[str]) -> Iterator[StoredRecord]:
        """:meth:`read_record` for each id."""
        for oid in oids:
            yield self.read_record(oid)

    def local_path(self, oid: str) -> str | None:
        """No files: always ``None``."""
        return None

    def prefetch(self, oids: Iterable[str]) -> None:
        """Nothing to do."""

    def refresh(self) -> None:
        """Nothing cached."""

    def damaged_indexes(self) -> list[tuple[str, str]]:
        """No indexes to damage."""
        return []

    def ids(self) -> Iterator[str]:
        """Every id held."""
        return iter(list(self.objects) + list(self.chunked))

    def ids_with_prefix(self, prefix: str) -> list[str]:
        """Ids starting with ``prefix``."""
        return sorted(o for o in list(self.objects) + list(self.chunked) if o.startswith(prefix))

    def begin_write(self) -> "MemoryWriter":
        """Start a transaction."""
        return MemoryWriter(self)


class MemoryWriter:
    """Buffers objects until :meth:`commit`."""

    supports_fork = False

    def __init__(self, store: MemoryObjectStore) -> None:
        self.store = store
        self.pending: dict[str, bytes] = {}
        self.pending_chunked: dict[str, list[tuple[bytes, int]]] = {}

    def add_bytes(self, data: bytes, *, compress: bool = False) -> str:
        """Add ``data``; return its id (``compress`` is a storage hint; memory ignores it)."""
        oid = hash_bytes(data)
        if len(data) >= CHUNKED_THRESHOLD:
            if oid not in self.pending_chunked and not self.store.has(oid):
                chunks = []
                for c in chunks_of_bytes(data):
                    cid = self.add_bytes(bytes(c))
                    chunks.append((from_hex(cid), len(c)))
                self.pending_chunked[oid] = chunks
            return oid
        self.pending.setdefault(oid, bytes(data))
        return oid

    def add_raw(self, data: bytes, *, compress: bool = False) -> bytes:
        """Add ``data``; return its binary id."""
        return from_hex(self.add_bytes(data))

    def add_fd(self, fd: int) -> tuple[str, int]:
        """Add everything readable from ``fd``."""
        parts = []
        while c := os.read(fd, CHUNK_SIZE):
            parts.append(c)
        data = b"".join(parts)
        return self.add_bytes(data), len(data)

    def add_record(self, record: StoredRecord) -> bool:
        """Add a record from another store after verifying it."""
        oid = record.oid
        if self.store.has(oid) or oid in self.pending or oid in self.pending_chunked:
            verify_record(record)
            return False
        data = verify_record(record)
        if data is not None:
            self.pending[oid] = data
            return True
        hasher = Hasher()
        chunks = record.chunks()
        for raw, n in chunks:
            part = self.store.read(raw.hex())
            if len(part) != n:
                raise CorruptObjectError(oid, "<chunk of the wrong length>", reason=f"its chunk {raw.hex()} has {len(part)} bytes")
            hasher.update(part)
        if hasher.digest() != record.raw_id:
            raise CorruptObjectError(oid, hasher.hexdigest(), reason=f"its chunks hash to {hasher.hexdigest()}")
        self.pending_chunked[oid] = chunks
        return True

    def commit(self) -> None:
        """Make the pending objects visible."""
        self.store.objects.update(self.pending)
        self.store.chunked.update(self.pending_chunked)
        self.pending.clear()
        self.pending_chunked.clear()

    def abort(self) -> None:
        """Drop pending objects."""
        self.pending.clear()
        self.pending_chunked.clear()


__all__ = ["MemoryObjectStore", "MemoryWriter"]
