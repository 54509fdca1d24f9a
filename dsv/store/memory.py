"""An in-memory object store: the reference implementation of the protocol, for tests."""

from __future__ import annotations

from collections.abc import Iterator

from dsv.base.errors import CorruptObjectError, ObjectNotFoundError
from dsv.base.hashing import hash_bytes
from dsv.store.base import CHUNK_SIZE


class MemoryObjectStore:
    """Objects kept in a dict; each instance is independent."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def has(self, oid: str) -> bool:
        """Whether ``oid`` is held."""
        return oid in self.objects

    def read(self, oid: str) -> bytes:
        """Verified bytes of ``oid``."""
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
        try:
            return len(self.objects[oid])
        except KeyError:
            raise ObjectNotFoundError(oid) from None

    def iter_chunks(self, oid: str) -> Iterator[bytes]:
        """Stream ``oid`` in chunks."""
        data = self.read(oid)
        for i in range(0, len(data), CHUNK_SIZE):
            yield data[i : i + CHUNK_SIZE]
        if not data:
            yield b""

    def ids(self) -> Iterator[str]:
        """Every id held."""
        return iter(list(self.objects))

    def ids_with_prefix(self, prefix: str) -> list[str]:
        """Ids starting with ``prefix``."""
        return sorted(o for o in self.objects if o.startswith(prefix))

    def begin_write(self) -> "MemoryWriter":
        """Start a transaction."""
        return MemoryWriter(self)


class MemoryWriter:
    """Buffers objects until :meth:`commit`."""

    def __init__(self, store: MemoryObjectStore) -> None:
        self.store = store
        self.pending: dict[str, bytes] = {}

    def add_bytes(self, data: bytes, *, compress: bool = False) -> str:
        """Add ``data``; return its id (``compress`` is a storage hint; memory ignores it)."""
        oid = hash_bytes(data)
        self.pending.setdefault(oid, bytes(data))
        return oid

    def add_raw(self, data: bytes, *, compress: bool = False) -> bytes:
        """Add ``data``; return its binary id."""
        return bytes.fromhex(self.add_bytes(data))

    def add_fd(self, fd: int) -> tuple[str, int]:
        """Add everything readable from ``fd``."""
        import os

        parts = []
        while c := os.read(fd, CHUNK_SIZE):
            parts.append(c)
        data = b"".join(parts)
        return self.add_bytes(data), len(data)

    def commit(self) -> None:
        """Make the pending objects visible."""
        self.store.objects.update(self.pending)
        self.pending.clear()

    def abort(self) -> None:
        """Drop pending objects."""
        self.pending.clear()
