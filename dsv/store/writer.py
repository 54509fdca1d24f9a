"""A write transaction on the local object store (:class:`LocalWriter`).

Objects are appended to one pack per transaction (rolled over past
``PACK_ROLLOVER``) and published, durably, by :meth:`LocalWriter.commit`. Big
files are stored as content-defined chunks, segment by segment
(:mod:`dsv.store.chunking`), cut by helper processes where the program allows
them (:mod:`dsv.store.cutters`): only bytes this process read and hashed are
ever stored.
"""

from __future__ import annotations

import itertools
import mmap
import os
import stat
import threading

from dsv.base.errors import CorruptObjectError, StorageError
from dsv.base.fsio import fsync_dir
from dsv.base.log import logger
from dsv.base.hashing import Hasher, digest_bytes
from dsv.store import chunking
from dsv.store.base import CHUNK_SIZE, StoredRecord, verify_record
from dsv.store.chunking import CHUNKED_THRESHOLD, FdReader, cut_points
from dsv.store.pack import CHUNK_ENTRY, Encoding, PackWriter, compress, decode_payload

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dsv.store.local import LocalObjectStore

PACK_ROLLOVER = 1024 * 1024 * 1024
"""A transaction starts a new pack once the current one reaches this size."""


READ_PIECE = 1024 * 1024
"""A big file is read in pieces of this size and hashed as they arrive, while they are still in the CPU cache
(reading a whole segment first, then hashing it twice from memory, cost twice the user time)."""


def _read_segment(reader: FdReader, buf: "bytearray | mmap.mmap", listing: bytes | None, hasher: Hasher) -> tuple[memoryview, bool]:
    """Read the next segment into ``buf`` (short only at the end), adding it to ``hasher``.

    Returns a view of what was read and whether ``listing`` (a chunk list, or
    ``None``) describes exactly those bytes, each chunk's id re-hashed as its
    last byte arrives.
    """
    view = memoryview(buf)
    entries = iter(()) if listing is None else CHUNK_ENTRY.iter_unpack(listing)
    nxt = next(entries, None)
    ok = listing is not None
    got = hashed = 0
    while got < len(buf):
        n = reader.readinto(view[got : got + READ_PIECE])
        if not n:
            break
        got += n
        while ok and nxt is not None and hashed + nxt[1] <= got:
            c = view[hashed : hashed + nxt[1]]
            hasher.update(c)
            ok = digest_bytes(c) == nxt[0]
            hashed += nxt[1]
            nxt = next(entries, None)
        if not ok:
            hasher.update(view[hashed:got])
            hashed = got
    if hashed < got:
        hasher.update(view[hashed:got])
    return view[:got], ok and nxt is None and hashed == got


class LocalWriter:
    """A write transaction on a :class:`LocalObjectStore`; thread-safe."""

    supports_fork = True
    """A forked helper may store small files through :meth:`sibling` and hand its packs back."""

    def __init__(self, store: LocalObjectStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._pack: PackWriter | None = None
        self._finished_packs: list[tuple[str, bytes]] = []  # (tmp pack path, index bytes)
        self._added: set[bytes] = set()
        self.bytes_written = 0
        self.objects_written = 0

    def _tmp(self, suffix: str) -> str:
        return os.path.join(self.store.tmp_dir, f"{os.getpid()}-{os.urandom(16).hex()}{suffix}")

    def add_bytes(self, data: bytes, *, compress: bool = False) -> str:
        """Store ``data`` and return its hex id (a no-op if a good copy is stored).

        ``compress`` asks for zstd storage (manifests); the id is the same either way.
        """
        return self.add_raw(data, compress=compress).hex()

    def add_raw(self, data: bytes, *, compress: bool = False) -> bytes:
        """Store ``data`` and return its 16-byte binary id (the commit hot path)."""
        try:
            return self._add_raw(data, compress)
        except OSError as err:
            raise StorageError("write objects to", self.store.root, err) from err

    def _add_raw(self, data: bytes, want_compression: bool = False) -> bytes:
        raw = digest_bytes(data)
        n = len(data)
        if n >= CHUNKED_THRESHOLD:
            if raw not in self._added and not self.store.has_raw(raw):
                # Segment by segment, as add_fd stores a file (the chunks are views of data: no copy).
                view, size, listing = memoryview(data), chunking.SEGMENT_SIZE, bytearray()
                for start in range(0, n, size):
                    listing += self._store_segment(view[start : start + size])
                self._add_listing(raw, listing, n)
            return raw
        with self._lock:
            if raw in self._added:
                return raw
        if self.store.has_good_copy(raw, n):
            return raw
        stored, encoding = data, Encoding.RAW
        if want_compression and n >= 64:
            packed = compress(data)
            if len(packed) < n:
                stored, encoding = packed, Encoding.ZSTD
        self._append(raw, stored, n, encoding)
        return raw

    def _append(self, raw: bytes, stored: bytes | memoryview, size: int, encoding: Encoding) -> bool:
        """Append one record unless this transaction already has it; return whether it did."""
        with self._lock:
            if raw in self._added:
                return False
            self._added.add(raw)
            if self._pack is None or self._pack.size >= PACK_ROLLOVER:
                self._roll_pack()
            self._pack.append(raw, stored, size, encoding)  # type: ignore[union-attr]
            self.bytes_written += len(stored)
            self.objects_written += 1
            return True

    def add_record(self, record: StoredRecord) -> bool:
        """Store a record from another store after verifying it (see :meth:`dsv.store.base.ObjectWriter.add_record`)."""
        try:
            return self._add_record(record)
        except OSError as err:
            raise StorageError("write objects to", self.store.root, err) from err

    def _add_record(self, record: StoredRecord) -> bool:
        raw = record.raw_id
        with self._lock:
            if raw in self._added:
                return False
        if record.encoding == Encoding.CHUNKED:
            verify_record(record)
            if self.store.has_raw(raw):
                return False
            hasher = Hasher()
            for chunk, n in record.chunks():
                data = self.store.read(chunk.hex())  # verified; missing raises ObjectNotFoundError
                if len(data) != n:
                    raise CorruptObjectError(record.oid, "<chunk of the wrong length>", reason=f"its chunk {chunk.hex()} has {len(data)} bytes, the list says {n}")
                hasher.update(data)
            if hasher.digest() != raw:
                raise CorruptObjectError(record.oid, hasher.hexdigest(), reason=f"its chunks hash to {hasher.hexdigest()}")
            return self._append(raw, record.stored, record.size, Encoding.CHUNKED)
        verify_record(record)
        if record.size < CHUNKED_THRESHOLD and self.store.has_good_copy(raw, record.size):
            return False
        if record.size >= CHUNKED_THRESHOLD:
            # A big object arriving whole (from a format-1 loose file): store it the way this store keeps big files.
            self._add_raw(decode_payload(record.stored, record.size, record.encoding))
            return True
        return self._append(raw, record.stored, record.size, Encoding(record.encoding))

    def _roll_pack(self) -> None:
        self._close_pack_locked()
        self._pack = PackWriter(self._tmp(".pack"))

    def _close_pack_locked(self) -> None:
        """Finish (fsync) the pack being written, or drop it if empty."""
        if self._pack is not None:
            if self._pack.entries:
                self._finished_packs.append((self._pack.path, self._pack.finish()))
            else:
                self._pack.discard()
            self._pack = None

    def add_fd(self, fd: int) -> tuple[str, int]:
        """Copy everything readable from ``fd`` into the store, hashing in the same pass."""
        try:
            return self._add_fd(fd)
        except OSError as err:
            raise StorageError("write objects to", self.store.root, err) from err

    def _add_fd(self, fd: int) -> tuple[str, int]:
        head = b""
        parts: list[bytes] = []
        total = 0
        while total < CHUNKED_THRESHOLD:
            c = os.read(fd, CHUNK_SIZE)
            if not c:
                break
            parts.append(c)
            total += len(c)
        head = b"".join(parts)
        del parts
        if total < CHUNKED_THRESHOLD:
            return self._add_raw(head).hex(), total
        return self._add_big(fd, head)

    def _add_big(self, fd: int, head: bytes) -> tuple[str, int]:
        """Store a big file as chunks, cut by helper processes where allowed (:mod:`dsv.store.cutters`)."""
        from dsv.store import cutters

        segment = chunking.SEGMENT_SIZE
        st = os.fstat(fd)
        # Helpers read the file by offset: only for a regular file read from its start.
        if stat.S_ISREG(st.st_mode) and os.lseek(fd, 0, os.SEEK_CUR) == len(head):
            n = cutters.helper_count(st.st_size, segment)
            if n:
                with cutters.LOCK:
                    try:
                        return self._add_big_with_helpers(fd, head, n, st.st_size, segment)
                    except cutters.HelperFailed as err:
                        logger(__name__).warning("cutting in one process: %s", err)
                os.lseek(fd, 0, os.SEEK_SET)
                head = b""
        # One pass: cut each segment while hashing the whole stream.
        hasher = Hasher()
        listing = bytearray()
        total = 0
        reader, buf = FdReader(fd, head), chunking.segment_buffer(segment)
        while True:
            view, _ = _read_segment(reader, buf, None, hasher)
            if not view:
                break
            listing += self._store_segment(view)
            total += len(view)
            if len(view) < segment:
                break
        return self._add_listing(hasher.digest(), listing, total)

    def _add_big_with_helpers(self, fd: int, head: bytes, n: int, size: int, segment: int) -> tuple[str, int]:
        """Helpers cut the segments; this process hashes the whole file, checks each chunk list against its own bytes
        and stores the new chunks from them."""
        from dsv.store import cutters

        helpers = cutters.Cutters(n, fd, size, segment, self.store.tmp_dir)
        try:
            hasher = Hasher()
            listing = bytearray()
            total = 0
            reader, buf = FdReader(fd, head), chunking.segment_buffer(segment)
            for k in itertools.count():
                got = helpers.result(k)
                view, ok = _read_segment(reader, buf, None if got is None else got[1], hasher)
                if not view:
                    break
                if ok:
                    assert got is not None
                    listing += self._store_listed(view, got[1])
                else:
                    # Past the size seen at the start, or the file changed under the helper: store what was hashed.
                    listing += self._store_segment(view)
                total += len(view)
                if len(view) < segment:
                    break
            helpers.finish()
        except BaseException:
            helpers.abort()
            raise
        return self._add_listing(hasher.digest(), listing, total)

    def _add_listing(self, raw: bytes, listing: bytearray, total: int) -> tuple[str, int]:
        """Store a big file's chunk list under its id (the chunks are stored already)."""
        if raw not in self._added and not self.store.has_raw(raw):
            self._append(raw, bytes(listing), total, Encoding.CHUNKED)
        return raw.hex(), total

    def _store_segment(self, segment: memoryview) -> bytes:
        """Cut one segment of a big file and store its new chunks; return the segment's chunk list.

        Chunks are appended as views of ``segment`` (no copy) and the pack is
        flushed before returning, so the caller may then reuse the buffer.
        """
        entry = CHUNK_ENTRY.pack
        listing = b"".join(entry(digest_bytes(segment[off : off + n]), n) for off, n in cut_points(segment))
        return self._store_listed(segment, listing)

    def _store_listed(self, segment: memoryview, listing: bytes) -> bytes:
        """Store the chunks of ``segment`` that ``listing`` (its chunk list, ids checked) names and the store lacks.

        Chunks are appended as views of ``segment`` (no copy) and the pack is
        flushed before returning, so the caller may then reuse the buffer.
        """
        added, has_raw = self._added, self.store.has_raw
        off = 0
        try:
            for raw, n in CHUNK_ENTRY.iter_unpack(listing):
                if raw not in added and not has_raw(raw, n):
                    self._append(raw, segment[off : off + n], n, Encoding.RAW)
                off += n
        finally:
            with self._lock:
                if self._pack is not None:
                    self._pack.flush()
        return listing

    def sibling(self) -> "LocalWriter":
        """A new transaction on the same store, for a helper process (see :meth:`detach`)."""
        return LocalWriter(self.store)

    def detach(self) -> list[tuple[str, bytes]]:
        """Finish (fsync) this transaction's packs without publishing them.

        Returns ``(temp pack path, index bytes)`` pairs for another writer to
        :meth:`adopt`. Only packs: used by helper processes that store small files.
        """
        try:
            with self._lock:
                self._close_pack_locked()
                out = list(self._finished_packs)
                self._finished_packs.clear()
                return out
        except OSError as err:
            self.abort()
            raise StorageError("write objects to", self.store.root, err) from err

    def adopt(self, packs: list[tuple[str, bytes]]) -> None:
        """Take over finished packs of a sibling writer; they publish with :meth:`commit`."""
        with self._lock:
            self._finished_packs.extend((p, bytes(i)) for p, i in packs)

    def commit(self) -> None:
        """Publish everything added, durably: loose objects, then packs, then directory syncs."""
        try:
            self._commit()
        except OSError as err:
            raise StorageError("publish objects in", self.store.root, err) from err

    def _commit(self) -> None:
        with self._lock:
            self._close_pack_locked()
            published = [self.store._publish_pack(tmp, index_bytes) for tmp, index_bytes in self._finished_packs]
            self._finished_packs.clear()
            if published:
                fsync_dir(self.store.packs_dir)
            for base in published:
                self.store._published_pack(base)

    def abort(self) -> None:
        """Delete everything written by this transaction."""
        with self._lock:
            if self._pack is not None:
                self._pack.discard()
                self._pack = None
            for tmp, _ in self._finished_packs:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
            self._finished_packs.clear()
