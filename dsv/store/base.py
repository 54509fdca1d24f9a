"""The narrow protocol every object store implements.

Writes happen in a transaction (:class:`ObjectWriter`): objects added to it become
visible, durably, no later than :meth:`ObjectWriter.commit` returns. A caller
moves a ref only after that, which gives dsv its write order (objects, then
manifests, then commits, then refs). A local store publishes the whole
transaction at once; a remote store publishes each pack as soon as it is
complete, so that an interrupted transfer resumes without re-sending it
(objects no ref reaches are garbage either way).

Everything commit, status, diff, checkout, fsck and the transfer to and from a
remote need from a store is here: callers never reach into a backend's files.
A store keeps an object either whole (raw or zstd-compressed) or, for a big
file, as a *chunk list* naming chunk objects (docs/format.md §3.2); the
:class:`StoredRecord` is that stored form, which is what travels between
stores, so a 1% edit of a big file moves about 1% of it.
"""

from __future__ import annotations

from dsv.base.errors import CorruptObjectError
from dsv.base.hashing import digest_bytes, to_hex
from dsv.base.records import Record
from dsv.store.pack import Encoding, decode_chunk_list, decode_payload

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Protocol
else:
    Protocol = object  # protocols for type checkers; at run time plain classes, so `status` never imports typing

CHUNK_SIZE = 4 * 1024 * 1024
"""Buffer size for streaming large objects."""


class StoredRecord(Record):
    """One object in its stored form: what a pack record holds (docs/format.md §3.2).

    ``stored`` is the object's bytes (``RAW``), one zstd frame (``ZSTD``) or a
    chunk list (``CHUNKED``); ``size`` is always the object's own length.
    """

    __slots__ = ("raw_id", "stored", "size", "encoding")
    __hash__ = None  # type: ignore[assignment]  # mutable (one is built per object read: a plain __init__ is 5x cheaper); never modified

    def __init__(self, raw_id: bytes, stored: bytes, size: int, encoding: int) -> None:
        self.raw_id = raw_id
        self.stored = stored
        self.size = size
        self.encoding = encoding

    @property
    def oid(self) -> str:
        """The hex id."""
        return to_hex(self.raw_id)

    def chunks(self) -> list[tuple[bytes, int]]:
        """``(chunk raw id, length)`` of a chunked record (``ValueError`` if malformed or not chunked)."""
        if self.encoding != Encoding.CHUNKED:
            raise ValueError("not a chunked record")
        return decode_chunk_list(self.stored, self.size)


def verify_record(record: StoredRecord, *, location: str | None = None) -> bytes | None:
    """Check a record against its id; return the object's bytes (``None`` for a chunk list).

    A whole record is decoded and hashed; a chunk list is checked for shape only
    (lengths adding up to the size): its chunks are objects verified on their
    own, and the concatenation is verified by whoever holds them all
    (:meth:`ObjectWriter.add_record`). Raises :class:`CorruptObjectError`.
    """
    if record.encoding == Encoding.CHUNKED:
        try:
            record.chunks()
        except ValueError as err:
            raise CorruptObjectError(record.oid, "<bad chunk list>", location=location, reason=f"its chunk list is malformed ({err})") from None
        return None
    try:
        data = decode_payload(record.stored, record.size, record.encoding)
    except ValueError as err:
        raise CorruptObjectError(record.oid, "<undecodable>", location=location, reason=f"its stored bytes cannot be decoded ({err})") from None
    if len(data) != record.size:
        raise CorruptObjectError(record.oid, "<wrong size>", location=location, reason=f"it holds {len(data)} bytes, its record says {record.size}")
    actual = digest_bytes(data)
    if actual != record.raw_id:
        raise CorruptObjectError(record.oid, to_hex(actual), location=location)
    return data


class ObjectWriter(Protocol):
    """A write transaction on a store."""

    supports_fork: bool
    """Whether a forked helper process may store objects through :meth:`sibling` (local stores only)."""

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
        A big file is cut into content-defined chunks (:mod:`dsv.store.chunking`).
        """
        ...

    def add_record(self, record: StoredRecord) -> bool:
        """Store an object given in its stored form (a transfer from another store).

        The record is verified against its id first, whatever its source: a whole
        record is decoded and hashed; a chunk list is accepted only when every
        chunk is already stored (committed) and their concatenation hashes to the
        id. Raises :class:`CorruptObjectError` and stores nothing on a mismatch.
        Returns whether the object was new.
        """
        ...

    def commit(self) -> None:
        """Make every added object durable and visible."""
        ...

    def abort(self) -> None:
        """Drop everything added that is not yet published; the store is as before."""
        ...


class ObjectStore(Protocol):
    """Content-addressed storage of immutable byte strings keyed by XXH3-128."""

    def has(self, oid: str) -> bool:
        """Whether the store holds ``oid``."""
        ...

    def has_many(self, oids: Iterable[str]) -> set[str]:
        """The subset of ``oids`` the store holds (one round trip for a remote)."""
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

    def chunk_list(self, oid: str) -> list[tuple[str, int]] | None:
        """``(chunk id, length)`` of an object stored as chunks, in order; ``None`` if it is stored whole."""
        ...

    def read_records(self, oids: Iterable[str]) -> Iterator[StoredRecord]:
        """The stored form of each of ``oids``, verified (:func:`verify_record`), in any order.

        Batched: a remote store fetches many records in few requests. Raises
        :class:`~dsv.base.errors.ObjectNotFoundError` for an id it does not hold.
        """
        ...

    def local_path(self, oid: str) -> str | None:
        """A local file holding exactly the bytes of ``oid`` (verified), or ``None``.

        Lets a table engine read a big file in place instead of a copy.
        """
        ...

    def prefetch(self, oids: Iterable[str]) -> None:
        """Make ``oids`` readable without further round trips where that matters (a partial clone).

        A complete store does nothing.
        """
        ...

    def refresh(self) -> None:
        """Forget cached listings (another process may have published objects)."""
        ...

    def damaged_indexes(self) -> list[tuple[str, str]]:
        """``(location, problem)`` of every pack index that could not be read."""
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

