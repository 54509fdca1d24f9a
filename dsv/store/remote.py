"""The object store of a remote repository: dsv packs on any fsspec location.

Layout under the remote's root (docs/remotes.md has the full tree)::

    packs/pack-<h>.pack + .idx    objects (file contents, chunks), as pushed
    packs/meta-<h>.pack + .idx    manifests, commits, tags, metrics and chunk lists of a push

The bytes are exactly those of local packs (docs/format.md §3.2, §3.3): a
record's stored bytes travel as they are, so nothing is recompressed. A pack
is uploaded create-only under its final name (``<h>`` names its index's
content) and published by its ``.idx``, uploaded after it; so a reader never
sees a partial pack, and an interrupted upload leaves at most a ``.pack``
without index (garbage for remote gc). The indexes are the remote's *have*
summary: a client lists ``packs/`` (one request per 1,000 packs), downloads
the indexes it has not cached (immutable, verified by name), and then knows
every object the remote holds without asking per object.

Reads are batched: the records a transfer needs are grouped by pack, sorted
by offset and coalesced into few ranged requests, fetched in parallel, and
every record is verified against its id before anyone sees it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from dsv.base.errors import CorruptObjectError, DsvError, ObjectNotFoundError, RemoteCorruptError
from dsv.base.hashing import Hasher, digest_bytes, from_hex, is_object_id, to_hex
from dsv.store.base import CHUNK_SIZE, StoredRecord, verify_record
from dsv.store.chunking import CHUNKED_THRESHOLD, chunks_of_bytes, chunks_of_fd
from dsv.store.pack import (
    OBJECT_HEADER,
    PACK_HEADER,
    PACK_MAGIC,
    PACK_VERSION,
    TRAILER,
    Encoding,
    PackIndex,
    compress,
    decode_index,
    encode_chunk_list,
    encode_index,
    pack_name,
)
from dsv.store.remotefs import Entry, RemoteFS

log = logging.getLogger(__name__)

PACKS = "packs"
PACK_TARGET = 32 * 1024 * 1024
"""A remote writer seals and uploads a pack once it holds this many bytes."""
RANGE_GAP = 256 * 1024
"""Needed records closer than this are fetched in one ranged request (the gap is read and dropped)."""
RANGE_SPAN = 16 * 1024 * 1024
"""A ranged request covers at most this many bytes (larger ones are split, for parallelism)."""
WORKERS = 8
"""Parallel requests per transfer."""


@dataclass
class RemotePack:
    """One published pack on the remote: its base name (``pack-<h>`` or ``meta-<h>``) and index."""

    name: str
    index: PackIndex
    idx_bytes: bytes
    mtime: float = 0.0
    size: int = 0

    @property
    def is_meta(self) -> bool:
        """Whether the pack holds a push's metadata (manifests, commits, tags, metrics, chunk lists)."""
        return self.name.startswith("meta-")


class RemoteObjectStore:
    """An :class:`~dsv.store.base.ObjectStore` over a :class:`RemoteFS`; ``cache_dir`` keeps downloaded indexes."""

    def __init__(self, fs: RemoteFS, *, cache_dir: str | None = None, workers: int = WORKERS) -> None:
        self.fs = fs
        self.cache_dir = cache_dir
        self.workers = workers
        self._packs: dict[str, RemotePack] | None = None
        self._parsed: dict[str, RemotePack] = {}
        self._where: dict[bytes, tuple[str, int]] = {}
        self._damaged: list[tuple[str, str]] = []
        self._lock = threading.RLock()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def location(self) -> str:
        """The remote's URL, credentials masked (for messages)."""
        return self.fs.display

    def pool(self) -> ThreadPoolExecutor:
        """The thread pool for parallel requests (created on first use)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="dsv-remote")
            return self._pool

    def close(self) -> None:
        """Stop the worker threads."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    # -- the have summary -------------------------------------------------------------

    def packs(self) -> dict[str, RemotePack]:
        """Every published pack, by base name (lists ``packs/`` and fetches new indexes on first use)."""
        with self._lock:
            if self._packs is None:
                self._load()
            assert self._packs is not None
            return dict(self._packs)

    def _load(self) -> None:
        entries = self.fs.list(PACKS)
        sizes = {e.name: e for e in entries}
        names = sorted(e.name[:-4] for e in entries if e.name.endswith(".idx") and e.name.startswith(("pack-", "meta-")))
        old = self._parsed
        packs: dict[str, RemotePack] = {}
        todo = []
        for n in names:
            if n in old:
                packs[n] = old[n]
                continue
            cached = self._cached(n)
            if cached is not None:
                packs[n] = cached
            else:
                todo.append(n)
        damaged: list[tuple[str, str]] = []
        if todo:
            for n, got in zip(todo, self.pool().map(self._fetch_index, todo)):
                if isinstance(got, RemotePack):
                    packs[n] = got
                else:
                    damaged.append((f"{self.location}/{PACKS}/{n}.idx", got))
        for n, p in packs.items():
            e = sizes.get(n + ".pack")
            p.mtime = e.mtime if e is not None else sizes[n + ".idx"].mtime
            p.size = e.size if e is not None else 0
        where: dict[bytes, tuple[str, int]] = {}
        for n in sorted(packs, key=lambda k: packs[k].mtime):
            for row, raw in enumerate(packs[n].index.ids):
                where[raw] = (n, row)
        self._packs = packs
        self._parsed.update(packs)
        self._where = where
        self._damaged = damaged

    def _cache_path(self, name: str) -> str | None:
        return None if self.cache_dir is None else os.path.join(self.cache_dir, name + ".idx")

    def _cached(self, name: str) -> RemotePack | None:
        path = self._cache_path(name)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                data = f.read()
            return self._parse_index(name, data)
        except (OSError, DsvError, ValueError):
            return None

    def _parse_index(self, name: str, data: bytes) -> RemotePack:
        # The name is the hash of the index: a cached or downloaded index that does not match it is not this pack's.
        if pack_name(data) != name.split("-", 1)[1]:
            raise ValueError("index does not match its name")
        return RemotePack(name, decode_index(data, what=f"pack index {name}"), data)

    def _fetch_index(self, name: str) -> RemotePack | str:
        data = self.fs.get(f"{PACKS}/{name}.idx")
        if data is None:
            return "vanished while listing"
        try:
            pack = self._parse_index(name, data)
        except (DsvError, ValueError) as err:
            return f"damaged index ({err})"
        path = self._cache_path(name)
        if path is not None:
            from dsv.base.fsio import atomic_write_bytes

            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                atomic_write_bytes(path, data, durable=False)
            except DsvError as err:
                log.debug("cannot cache %s: %s", name, err)
        return pack

    def _published(self, pack: RemotePack) -> None:
        """A pack this process uploaded: known at once, without listing again."""
        with self._lock:
            if self._packs is None:
                return
            self._packs[pack.name] = pack
            for row, raw in enumerate(pack.index.ids):
                self._where.setdefault(raw, (pack.name, row))
        path = self._cache_path(pack.name)
        if path is not None:
            from dsv.base.fsio import atomic_write_bytes

            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                atomic_write_bytes(path, pack.idx_bytes, durable=False)
            except DsvError:
                pass

    def refresh(self) -> None:
        """List ``packs/`` again on next use (parsed indexes are kept: they never change)."""
        with self._lock:
            self._packs = None

    def damaged_indexes(self) -> list[tuple[str, str]]:
        """Remote pack indexes that could not be read (their objects count as missing)."""
        self.packs()
        return list(self._damaged)

    # -- reads -----------------------------------------------------------------------

    def _locate(self, raw: bytes) -> tuple[str, int] | None:
        self.packs()
        return self._where.get(raw)

    def has(self, oid: str) -> bool:
        """Whether the remote holds ``oid`` (from the indexes; no request once they are loaded)."""
        return is_object_id(oid) and self._locate(from_hex(oid)) is not None

    def has_raw(self, raw: bytes) -> bool:
        """:meth:`has` for a binary id."""
        return self._locate(raw) is not None

    def has_many(self, oids: Iterable[str]) -> set[str]:
        """The subset of ``oids`` held."""
        self.packs()
        where = self._where
        return {o for o in oids if is_object_id(o) and from_hex(o) in where}

    def packs_holding(self, oids: Iterable[str]) -> set[str]:
        """Names of the packs holding ``oids`` (what a push relies on when it does not upload them)."""
        self.packs()
        out = set()
        for o in oids:
            loc = self._where.get(from_hex(o)) if is_object_id(o) else None
            if loc is not None:
                out.add(loc[0])
        return out

    def read_records(self, oids: Iterable[str], *, on_bytes: Callable[[int], None] | None = None) -> Iterator[StoredRecord]:
        """Fetch and verify the records of ``oids``: grouped by pack, coalesced into ranges, in parallel.

        Yields in completion order. Raises :class:`ObjectNotFoundError` for an
        id the remote does not hold and :class:`RemoteCorruptError` for a record
        that does not verify (nothing of it is returned).
        """
        packs = self.packs()
        by_pack: dict[str, list[tuple[int, int, bytes]]] = {}
        seen: set[bytes] = set()
        for oid in oids:
            raw = from_hex(oid) if is_object_id(oid) else None
            if raw is None:
                raise ObjectNotFoundError(oid)
            if raw in seen:
                continue
            seen.add(raw)
            loc = self._where.get(raw)
            if loc is None:
                raise ObjectNotFoundError(oid, context=f"remote {self.location}")
            pack = packs[loc[0]]
            by_pack.setdefault(loc[0], []).append((pack.index.offsets[loc[1]], pack.index.lengths[loc[1]], raw))
        ranges = _coalesce(by_pack)
        yield from self._fetch_ranges(ranges, on_bytes)

    def read_rows(self, name: str, rows: list[int]) -> Iterator[StoredRecord]:
        """Records of one pack by row (remote gc copies a pack's live objects), coalesced and verified."""
        pack = self.packs()[name]
        items = [(pack.index.offsets[i], pack.index.lengths[i], pack.index.ids[i]) for i in rows]
        yield from self._fetch_ranges(_coalesce({name: items}), None)

    def _fetch_ranges(self, ranges: list[tuple[str, int, int, list[tuple[int, int, bytes]]]], on_bytes: Callable[[int], None] | None) -> Iterator[StoredRecord]:
        pool = self.pool()
        window = self.workers * 2
        pending: dict[Future[bytes], tuple[str, int, int, list[tuple[int, int, bytes]]]] = {}
        it = iter(ranges)
        try:
            while True:
                while len(pending) < window:
                    nxt = next(it, None)
                    if nxt is None:
                        break
                    name, start, end, _ = nxt
                    pending[pool.submit(self.fs.get_range, f"{PACKS}/{name}.pack", start, end)] = nxt
                if not pending:
                    return
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    name, start, end, items = pending.pop(fut)
                    blob = fut.result()
                    if on_bytes is not None:
                        on_bytes(len(blob))
                    for off, length, raw in items:
                        yield self.record_from(name, blob, start, off, length, raw)
        finally:
            for fut in pending:
                fut.cancel()

    def record_from(self, name: str, blob: bytes, start: int, off: int, length: int, raw: bytes) -> StoredRecord:
        """The verified record at ``off`` of pack ``name``, cut from ``blob`` (bytes of the pack from ``start``)."""
        at = off - TRAILER.size - start
        if at < 0 or at + TRAILER.size + length > len(blob):
            raise RemoteCorruptError(self.location, to_hex(raw), f"is truncated in {PACKS}/{name}.pack")
        size, encoding, _ = TRAILER.unpack_from(blob, at)
        record = StoredRecord(raw, blob[at + TRAILER.size : at + TRAILER.size + length], size, encoding)
        try:
            verify_record(record, location=f"{self.location}/{PACKS}/{name}.pack")
        except CorruptObjectError as err:
            detail = err.message.split(": ", 1)[-1]
            raise RemoteCorruptError(self.location, to_hex(raw), f"in {PACKS}/{name}.pack does not verify: {detail}") from None
        return record

    def read_record(self, oid: str) -> StoredRecord:
        """One record (one ranged request)."""
        for rec in self.read_records([oid]):
            return rec
        raise ObjectNotFoundError(oid)

    def read(self, oid: str) -> bytes:
        """The verified bytes of ``oid`` (a chunked object is fetched chunk by chunk, then verified whole)."""
        return b"".join(self.iter_chunks(oid))

    def iter_chunks(self, oid: str) -> Iterator[bytes]:
        """Stream ``oid``; a chunked object's chunks are fetched in batches and the whole is verified at the end."""
        rec = self.read_record(oid)
        if rec.encoding != Encoding.CHUNKED:
            data = verify_record(rec)
            yield data if data is not None else b""
            return
        chunks = rec.chunks()
        hasher = Hasher()
        batch = 256
        for i in range(0, len(chunks), batch):
            part = chunks[i : i + batch]
            got = {r.raw_id: r for r in self.read_records([c.hex() for c, _ in part])}
            for c, n in part:
                data = verify_record(got[c])
                assert data is not None
                if len(data) != n:
                    raise RemoteCorruptError(self.location, oid, f"has a chunk {c.hex()} of the wrong length")
                hasher.update(data)
                yield data
        if hasher.digest() != rec.raw_id:
            raise RemoteCorruptError(self.location, oid, f"does not verify: its chunks hash to {hasher.hexdigest()}")

    def size(self, oid: str) -> int:
        """Size of ``oid`` (one small ranged request)."""
        return self.read_record(oid).size

    def chunk_list(self, oid: str) -> list[tuple[str, int]] | None:
        """The chunks of a chunked object, or ``None``."""
        rec = self.read_record(oid)
        if rec.encoding != Encoding.CHUNKED:
            return None
        return [(raw.hex(), n) for raw, n in rec.chunks()]

    def local_path(self, oid: str) -> str | None:
        """Remote objects have no local file."""
        return None

    def prefetch(self, oids: Iterable[str]) -> None:
        """Nothing to keep: reads are batched already."""

    def ids(self) -> Iterator[str]:
        """Every id the remote holds."""
        self.packs()
        return iter([raw.hex() for raw in self._where])

    def ids_with_prefix(self, prefix: str) -> list[str]:
        """Ids starting with ``prefix``."""
        return sorted(o for o in self.ids() if o.startswith(prefix))

    def begin_write(self, *, meta: bool = False, before_upload: Callable[[str], None] | None = None) -> "RemoteWriter":
        """A transaction that uploads packs (``meta``: name them ``meta-*``, for a push's metadata)."""
        return RemoteWriter(self, meta=meta, before_upload=before_upload)

    # -- maintenance (remote gc) ---------------------------------------------------------

    def hide_pack(self, name: str) -> None:
        """Delete a pack's index, so no new reader relies on it (its ``.pack`` stays until :meth:`drop_pack`)."""
        self.fs.delete(f"{PACKS}/{name}.idx")
        with self._lock:
            self._packs = None

    def restore_pack(self, pack: RemotePack) -> None:
        """Put a hidden pack's index back."""
        self.fs.put_immutable(f"{PACKS}/{pack.name}.idx", pack.idx_bytes)
        with self._lock:
            self._packs = None

    def drop_pack(self, name: str) -> None:
        """Delete a pack file (its index first, if still there)."""
        self.fs.delete(f"{PACKS}/{name}.idx")
        self.fs.delete(f"{PACKS}/{name}.pack")
        with self._lock:
            self._packs = None

    def orphan_packs(self) -> list[Entry]:
        """``.pack`` files without an index (an upload killed between the two)."""
        entries = self.fs.list(PACKS)
        names = {e.name for e in entries}
        return [e for e in entries if e.name.endswith(".pack") and e.name[:-5] + ".idx" not in names]


def _coalesce(by_pack: dict[str, list[tuple[int, int, bytes]]]) -> list[tuple[str, int, int, list[tuple[int, int, bytes]]]]:
    """Group records of each pack into ranged requests: close ones together, none over :data:`RANGE_SPAN`."""
    ranges: list[tuple[str, int, int, list[tuple[int, int, bytes]]]] = []
    for name, items in by_pack.items():
        items.sort()
        cur: list[tuple[int, int, bytes]] = []
        start = end = 0
        for off, length, raw in items:
            rec_start, rec_end = off - TRAILER.size, off + length
            if cur and (rec_start - end > RANGE_GAP or rec_end - start > RANGE_SPAN):
                ranges.append((name, start, end, cur))
                cur = []
            if not cur:
                start, end = rec_start, rec_end
            cur.append((off, length, raw))
            end = max(end, rec_end)
        if cur:
            ranges.append((name, start, end, cur))
    return ranges


class RemoteWriter:
    """Builds packs in memory and uploads each, create-only, once full; :meth:`commit` waits for all.

    A record is verified before it is packed (:func:`verify_record`); a chunk
    list is accepted once every chunk it names is on the remote or in this
    transaction. Packs are published as they complete, so an interrupted push
    keeps what it uploaded and a retry sends only the rest.
    """

    supports_fork = False

    def __init__(self, store: RemoteObjectStore, *, meta: bool = False, before_upload: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.prefix = "meta" if meta else "pack"
        self.before_upload = before_upload
        self._lock = threading.Lock()
        self._added: set[bytes] = set()
        self._records: list[tuple[bytes, bytes, int, int]] = []
        self._bytes = 0
        self._futures: list[Future[RemotePack]] = []
        self._slots = threading.Semaphore(4)
        self.published: list[str] = []
        self.bytes_sent = 0
        self.objects_sent = 0
        self.on_progress: Callable[[int, int], None] | None = None

    # -- adding --------------------------------------------------------------------------

    def _append(self, raw: bytes, stored: bytes, size: int, encoding: int) -> bool:
        with self._lock:
            if raw in self._added:
                return False
            self._added.add(raw)
            self._records.append((raw, stored, size, encoding))
            self._bytes += len(stored) + OBJECT_HEADER.size
            full = self._bytes >= PACK_TARGET
        if full:
            self._seal()
        return True

    def add_raw(self, data: bytes, *, compress: bool = False) -> bytes:
        """Store ``data``; return its binary id."""
        raw = digest_bytes(data)
        if raw in self._added or self.store.has_raw(raw):
            return raw
        if len(data) >= CHUNKED_THRESHOLD:
            chunks = []
            for c in chunks_of_bytes(data):
                cb = bytes(c)
                chunks.append((self.add_raw(cb), len(cb)))
            self._append(raw, encode_chunk_list(chunks), len(data), int(Encoding.CHUNKED))
            return raw
        stored, encoding = data, int(Encoding.RAW)
        if compress and len(data) >= 64:
            packed = _compress(data)
            if len(packed) < len(data):
                stored, encoding = packed, int(Encoding.ZSTD)
        self._append(raw, stored, len(data), encoding)
        return raw

    def add_bytes(self, data: bytes, *, compress: bool = False) -> str:
        """Store ``data``; return its hex id."""
        return self.add_raw(data, compress=compress).hex()

    def add_fd(self, fd: int) -> tuple[str, int]:
        """Store everything readable from ``fd`` (a big file as content-defined chunks)."""
        head = b""
        parts = []
        total = 0
        while total < CHUNKED_THRESHOLD:
            c = os.read(fd, CHUNK_SIZE)
            if not c:
                break
            parts.append(c)
            total += len(c)
        head = b"".join(parts)
        if total < CHUNKED_THRESHOLD:
            return self.add_bytes(head), total
        hasher = Hasher()
        chunks = []
        total = 0
        for chunk in chunks_of_fd(fd, head):
            hasher.update(chunk)
            chunks.append((self.add_raw(chunk), len(chunk)))
            total += len(chunk)
        raw = hasher.digest()
        if raw not in self._added and not self.store.has_raw(raw):
            self._append(raw, encode_chunk_list(chunks), total, int(Encoding.CHUNKED))
        return raw.hex(), total

    def add_record(self, record: StoredRecord) -> bool:
        """Pack a record from another store, verified first (a chunk list: its chunks must be here already)."""
        if record.raw_id in self._added or self.store.has_raw(record.raw_id):
            return False
        verify_record(record, location="the record to upload")
        if record.encoding == Encoding.CHUNKED:
            for raw, _ in record.chunks():
                if raw not in self._added and not self.store.has_raw(raw):
                    raise ObjectNotFoundError(raw.hex(), context=f"chunk list {record.oid}")
        return self._append(record.raw_id, record.stored, record.size, record.encoding)

    def copy_record(self, record: StoredRecord) -> None:
        """Pack a verified record even though the remote holds it already (gc rewriting a pack)."""
        verify_record(record, location="the record to copy")
        self._append(record.raw_id, record.stored, record.size, record.encoding)

    # -- packing and uploading -------------------------------------------------------------

    def _seal(self) -> None:
        with self._lock:
            records, self._records, self._bytes = self._records, [], 0
        if not records:
            return
        self._slots.acquire()  # at most 4 packs in memory waiting for upload
        fut = self.store.pool().submit(self._build_and_upload, records)
        fut.add_done_callback(lambda _f: self._slots.release())
        self._futures.append(fut)

    def _build_and_upload(self, records: list[tuple[bytes, bytes, int, int]]) -> RemotePack:
        parts = [PACK_HEADER.pack(PACK_MAGIC, PACK_VERSION, 0)]
        pos = PACK_HEADER.size
        entries = []
        nbytes = 0
        for raw, stored, size, encoding in records:
            parts.append(OBJECT_HEADER.pack(raw, len(stored), size, encoding, 0))
            parts.append(stored)
            entries.append((raw, pos + OBJECT_HEADER.size, len(stored), encoding))
            pos += OBJECT_HEADER.size + len(stored)
            nbytes += len(stored)
        idx = encode_index(entries)
        name = f"{self.prefix}-{pack_name(idx)}"
        if self.before_upload is not None:
            self.before_upload(name)
        body = b"".join(parts)
        del parts
        self.store.fs.put_immutable(f"{PACKS}/{name}.pack", body)
        # The index publishes the pack, so it goes second.
        self.store.fs.put_immutable(f"{PACKS}/{name}.idx", idx)
        pack = RemotePack(name, decode_index(idx, what=name), idx, size=len(body))
        with self._lock:
            self.bytes_sent += len(body)
            self.objects_sent += len(records)
            self.published.append(name)
        if self.on_progress is not None:
            self.on_progress(len(records), len(body))
        return pack

    def commit(self) -> None:
        """Upload what is left and wait for every upload; the first failure is raised."""
        self._seal()
        first: BaseException | None = None
        for fut in self._futures:
            try:
                pack = fut.result()
            except BaseException as err:  # noqa: BLE001 - re-raised below after every upload settled
                first = first or err
                continue
            self.store._published(pack)
        self._futures.clear()
        if first is not None:
            raise first

    def abort(self) -> None:
        """Drop what is not uploaded yet (uploaded packs stay: garbage for remote gc)."""
        with self._lock:
            self._records = []
            self._bytes = 0
        for fut in self._futures:
            fut.cancel()
        for fut in self._futures:
            try:
                fut.result()
            except BaseException:  # noqa: BLE001 - aborting anyway
                pass
        self._futures.clear()


def _compress(data: bytes) -> bytes:
    return compress(data)
