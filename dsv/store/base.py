"""The narrow protocol every object store implements.

Writes happen in a transaction (:class:`ObjectWriter`): objects added to it become
visible, durably, only when :meth:`ObjectWriter.commit` returns, all at once. A
caller moves a ref only after that, which gives dsv its write order
(objects, then manifests, then commits, all in one durable batch, then refs).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

CHUNK_SIZE = 4 * 1024 * 1024
"""Buffer size for streaming large objects."""


@runtime_checkable
class ObjectWriter(Protocol):
    """A write transaction on a store."""

    def add_bytes(self, data: bytes, *, compress: bool = False) -> str:
        """Store ``data``; return its id. Adding an object that exists is a no-op.

        ``compress`` asks the store to keep the bytes compressed (a storage detail:
        the id is the hash of ``data`` either way).
        """
        ...

    def add_raw(self, data: bytes, *, compress: bool = False) -> bytes:
        """:meth:`add_bytes` returning the 16-byte binary id."""
        ...

    def add_fd(self, fd: int) -> tuple[str, int]:
        """Store everything readable from ``fd`` (hashing while copying, one pass).

        Returns the id and the number of bytes stored: exactly the bytes hashed.
        """
        ...

    def commit(self) -> None:
        """Make every added object durable and visible."""
        ...

    def abort(self) -> None:
        """Drop everything added; the store is as before."""
        ...


@runtime_checkable
class ObjectStore(Protocol):
    """Content-addressed storage of immutable byte strings keyed by XXH3-128."""

    def has(self, oid: str) -> bool:
        """Whether the store holds ``oid``."""
        ...

    def read(self, oid: str) -> bytes:
        """Return the bytes of ``oid``, verified against the id."""
        ...

    def size(self, oid: str) -> int:
        """Size in bytes of ``oid``."""
        ...

    def iter_chunks(self, oid: str) -> Iterator[bytes]:
        """Stream the bytes of ``oid``; the hash is verified when the stream ends."""
        ...

    def ids(self) -> Iterator[str]:
        """Every object id held."""
        ...

    def ids_with_prefix(self, prefix: str) -> list[str]:
        """Ids that start with the hex ``prefix``, sorted."""
        ...

    def begin_write(self) -> ObjectWriter:
        """Start a write transaction."""
        ...
