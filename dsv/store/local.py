"""The object store in ``.dsv/objects``: packs for small objects, loose files for large.

Layout::

    objects/packs/pack-<name>.pack + .idx   every object: small ones whole, big files as chunks
    objects/loose/ab/<30 hex>               one file per large object (format 1; still read)
    objects/quarantine/<id>.<where>         copies found corrupt, set aside
    objects/tmp/                            in-flight writes (garbage after a crash)

Objects are appended to one pack per write transaction (:mod:`dsv.store.writer`)
and made durable with a single fsync. A file of 8 MiB or more is cut into content-defined chunks
(:mod:`dsv.store.chunking`), each stored as an object, plus a *chunk list*
stored under the file's own id; so an edit stores about what it changed. Every
read re-hashes what it returns (each chunk, and the whole file at the end).

The store heals itself: a copy that a read finds corrupt is *quarantined* (its
bytes moved or copied to ``quarantine/``) and from then on counts as missing, so
the next commit of the same bytes stores a good copy and ``dsv fsck --repair``
can restore it. A pack index that cannot be read is reported
(:meth:`LocalObjectStore.damaged_indexes`) and skipped, never fatal: the rest of
the store keeps working and ``fsck --repair`` rebuilds the index from its pack.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Callable, Iterable, Iterator

from dsv.base.errors import CorruptMetadataError, CorruptObjectError, DsvError, ObjectNotFoundError, PackGoneError, StorageError
from dsv.base.fsio import atomic_write_bytes, fsync_dir
from dsv.base.log import logger
from dsv.base.records import FrozenRecord, Record, init_field
from dsv.base.hashing import Hasher, from_hex, hash_bytes, is_object_id, to_hex
from dsv.store.base import CHUNK_SIZE, StoredRecord, verify_record
from dsv.store.chunking import CHUNKED_THRESHOLD
from dsv.store.pack import (
    PACK_HEADER,
    ChunkMap,
    TRAILER,
    Encoding,
    decode_chunk_list,
    PackIndex,
    check_pack_header,
    decode_index,
    decode_payload,
    pack_name,
)


TYPE_CHECKING = False  # (typing itself is not imported: status starts without it)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    _T = TypeVar("_T")

LOOSE_THRESHOLD = CHUNKED_THRESHOLD
"""Objects at least this large are stored as chunks (format 1 stored them as loose files)."""

# How many ids found by search a store remembers before it stops adding (the dict over
# every pack, built once lookups are many, takes over well before).
_FOUND_MAX = 4096
QUARANTINE_HINT = "the damaged copy was set aside: commit a file with these bytes again, or run 'dsv fsck --repair'"
MISSING_PACK = "its pack file is missing, deleted or lost; its objects count as missing"


class LoadedPack(Record):
    """One visible pack: its name, index, and a lazily opened file descriptor."""

    __slots__ = ("name", "pack_path", "idx_path", "index", "fd")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, name: str, pack_path: str, idx_path: str, index: PackIndex, fd: int = -1) -> None:
        self.name = name
        self.pack_path = pack_path
        self.idx_path = idx_path
        self.index = index
        self.fd = fd

    @property
    def version(self) -> int:
        """The pack format version (that of its index)."""
        return self.index.version

    def encoding(self, row: int) -> int:
        """How entry ``row`` is stored (:class:`Encoding`)."""
        encodings = self.index.encodings
        return 0 if encodings is None else encodings[row]


class StoredCopy(FrozenRecord):
    """Where one object lives, for fsck and gc: ``kind`` is ``pack`` or ``loose``, ``size`` the
    stored length, ``encoding`` how the copy is stored (:class:`dsv.store.pack.Encoding`)."""

    __slots__ = ("oid", "kind", "location", "size", "encoding")

    oid: str
    kind: str
    location: str
    size: int
    encoding: int

    def __init__(self, oid: str, kind: str, location: str, size: int, encoding: int = 0) -> None:
        init_field(self, "oid", oid)
        init_field(self, "kind", kind)
        init_field(self, "location", location)
        init_field(self, "size", size)
        init_field(self, "encoding", encoding)


class QuarantinedCopy(FrozenRecord):
    """A copy set aside as corrupt: the object it claimed to be, where it was (a pack's base
    name, or ``loose``), and its saved bytes."""

    __slots__ = ("oid", "origin", "path")

    oid: str
    origin: str
    path: str

    def __init__(self, oid: str, origin: str, path: str) -> None:
        init_field(self, "oid", oid)
        init_field(self, "origin", origin)
        init_field(self, "path", path)


def damaged_what(path: str) -> str:
    """``pack`` or ``pack index`` and the file's name, for a path :meth:`LocalObjectStore.damaged_indexes` lists."""
    return f"{'pack' if path.endswith('.pack') else 'pack index'} {os.path.basename(path)}"


def _locations(pack: LoadedPack) -> "Iterator[tuple[bytes, tuple[LoadedPack, int]]]":
    """``(id, (pack, row))`` for every row of ``pack``, to fill a store's dict of locations."""
    return zip(pack.index.ids, zip([pack] * len(pack.index), range(len(pack.index))))


def _same_file(pack: LoadedPack) -> bool:
    """Whether a loaded pack's open file (if any) is still the one at its path (repair may replace it)."""
    if pack.fd < 0:
        return True
    try:
        st, now = os.fstat(pack.fd), os.stat(pack.pack_path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino)


class LocalObjectStore:
    """Object store on a local filesystem rooted at ``root`` (``.dsv/objects``)."""

    def __init__(self, root: str, *, before_write: Callable[[], None] | None = None) -> None:
        self.root = root
        self._before_write = before_write
        self.packs_dir = os.path.join(root, "packs")
        self.loose_dir = os.path.join(root, "loose")
        self.tmp_dir = os.path.join(root, "tmp")
        self.quarantine_dir = os.path.join(root, "quarantine")
        # The packs, as an immutable snapshot: a new list replaces it, so a thread holding the
        # old one (or a (pack, row) from it) stays consistent while another lists them again.
        self._packs: list[LoadedPack] | None = None
        # Loaded packs kept across a refresh (their index and open file are still right: packs
        # are named by content), and packs dropped from the list while open: a thread may be
        # reading them, so their files are closed only by close().
        self._reusable: dict[str, LoadedPack] = {}
        self._retired: list[LoadedPack] = []
        self._damaged: list[tuple[str, str]] = []
        self._quarantined: set[tuple[str, bytes]] = set()
        # id -> (pack, row), built only once lookups are many (see _locate).
        self._where: dict[bytes, tuple[LoadedPack, int]] | None = None
        # Until then, the ids already found: a checkout asks for each file it writes
        # (has) and reads it (iter_chunks, read): one search, not three (_find_packed).
        self._found: dict[bytes, tuple[LoadedPack, int]] = {}
        self._lookups = 0
        self._total_ids: int | None = None
        self._lock = threading.RLock()

    # -- setup -------------------------------------------------------------------

    @classmethod
    def create(cls, root: str) -> "LocalObjectStore":
        """Create the directory structure of an empty store."""
        for d in (root, os.path.join(root, "packs"), os.path.join(root, "loose"), os.path.join(root, "tmp")):
            os.makedirs(d, exist_ok=True)
        return cls(root)

    # -- index -------------------------------------------------------------------

    def _load_packs(self) -> list[LoadedPack]:
        with self._lock:
            if self._packs is None:
                reuse, self._reusable = self._reusable, {}
                self._list_packs_locked(reuse, [])
                assert self._packs is not None
            return self._packs

    def _list_packs_locked(self, reuse: dict[str, LoadedPack], damaged: list[tuple[str, str]]) -> None:
        """List the packs on disk: those named in ``reuse`` keep their loaded index and open file,
        ``damaged`` are known bad (skipped and reported while their index is there)."""
        packs: list[LoadedPack] = []
        found: list[tuple[str, str]] = []
        known_bad = {os.path.basename(path).rsplit(".", 1)[0]: (path, problem) for path, problem in damaged}
        try:
            names = sorted(n for n in os.listdir(self.packs_dir) if n.endswith(".idx") and n.startswith("pack-"))
        except FileNotFoundError:
            names = []
        for n in names:
            base = n[:-4]
            old = reuse.get(base)
            if base in known_bad:
                found.append(known_bad[base])
            elif old is not None and _same_file(old):
                packs.append(reuse.pop(base))
            else:
                try:
                    packs.append(self._read_pack(base))
                except DsvError as err:
                    # One damaged index must not stop the store: its objects count as missing.
                    found.append((os.path.join(self.packs_dir, n), err.message))
                    logger(__name__).warning("skipping %s: %s", n, err.message)
        # What is left of reuse is no longer listed (or was replaced by repair): a thread may be
        # reading an open one.
        self._retired.extend(p for p in reuse.values() if p.fd >= 0)
        self._packs = packs
        self._damaged = found
        self._quarantined = self._load_quarantine()
        self._forget_locations()
        self._lookups = 0
        self._total_ids = None

    def _pack_vanished(self, pack: LoadedPack) -> None:
        """``pack``'s file is gone: list the packs again (gc in another process moved its objects
        to a new one), keeping every other loaded pack and its open file."""
        with self._lock:
            if self._packs is None or not any(p is pack for p in self._packs):
                return  # another thread listed them again already
            reuse = {p.name: p for p in self._packs if p is not pack}
            damaged = [(path, problem) for path, problem in self._damaged if path.endswith(".pack")]
            if os.path.exists(pack.idx_path):  # its index is still there: deleted by hand, or lost
                damaged.append((pack.pack_path, MISSING_PACK))
            self._list_packs_locked(reuse, damaged)

    def _load_quarantine(self) -> set[tuple[str, bytes]]:
        out: set[tuple[str, bytes]] = set()
        for q in self.quarantined():
            if q.origin != "loose":
                out.add((q.origin, from_hex(q.oid)))
        return out

    def damaged_indexes(self) -> list[tuple[str, str]]:
        """``(index or pack path, problem)`` of every pack index that could not be read, and of
        every pack whose file is missing (one ``stat`` per pack not opened yet)."""
        for pack in self._load_packs():
            if pack.fd < 0 and not os.path.exists(pack.pack_path):
                self._pack_vanished(pack)
        return list(self._damaged)

    def is_quarantined(self, pack: LoadedPack, row: int) -> bool:
        """Whether one packed copy has been set aside as corrupt."""
        return bool(self._quarantined) and (pack.name, pack.index.ids[row]) in self._quarantined

    def _locate(self, raw: bytes) -> tuple[LoadedPack, int] | None:
        """``(pack, row)`` of a good packed copy of an id, or ``None``.

        A few lookups (a small commit, a checkout of some files) binary-search each
        pack's sorted index; past a couple of thousand lookups, or with many packs,
        one dict over every pack pays for itself. Quarantined copies are skipped.
        """
        packs = self._load_packs()
        where = self._where
        if where is None:
            self._lookups += 1
            # A dict over every id costs ~1 us per id to build; a binary search ~4 us per
            # lookup: build it only once lookups reach a quarter of the ids (or packs are many).
            total = self._total_ids if self._total_ids is not None else sum(len(p.index) for p in packs)
            self._total_ids = total
            if len(packs) > 8 or self._lookups > max(2048, total // 4):
                with self._lock:
                    if self._where is None and packs is self._packs:
                        built: dict[bytes, tuple[LoadedPack, int]] = {}
                        for pack in packs:
                            built.update(_locations(pack))
                        for name, qraw in self._quarantined:
                            hit = built.get(qraw)
                            if hit is not None and hit[0].name == name:
                                del built[qraw]
                                alt = self._search(packs, qraw)
                                if alt is not None:
                                    built[qraw] = alt
                        self._where = built
                    where = self._where
                if where is None:  # the packs were listed again meanwhile: this lookup searches
                    return self._search(packs, raw)
            else:
                return self._search(packs, raw)
        return where.get(raw)

    def _forget_locations(self) -> None:
        """Drop every remembered ``(pack, row)``: packs were listed again or removed, or a copy quarantined."""
        self._where = None
        self._found = {}

    def _search(self, packs: list[LoadedPack], raw: bytes) -> tuple[LoadedPack, int] | None:
        for pack in reversed(packs):
            i = pack.index.find(raw)
            if i >= 0 and not self.is_quarantined(pack, i):
                return pack, i
        return None

    def _read_pack(self, base: str) -> LoadedPack:
        idx_path = os.path.join(self.packs_dir, base + ".idx")
        try:
            with open(idx_path, "rb") as f:
                data = f.read()
        except OSError as err:
            raise StorageError("read", idx_path, err) from err
        index = decode_index(data, what=f"pack index {idx_path}")
        return LoadedPack(base, os.path.join(self.packs_dir, base + ".pack"), idx_path, index)

    def refresh(self) -> None:
        """List the packs again on next use (other processes may have added or removed some).

        Packs still listed keep their loaded index and open file; those gone are
        retired, not closed: another thread may be reading them (closing a file
        under a reader made it read whatever file got the descriptor next).
        """
        with self._lock:
            if self._packs is not None:
                self._reusable.update((p.name, p) for p in self._packs)
            self._packs = None
            self._forget_locations()

    def close(self) -> None:
        """Close every pack file this store opened (call it once no thread reads through it)."""
        with self._lock:
            packs = [*(self._packs or []), *self._reusable.values(), *self._retired]
            self._packs, self._reusable, self._retired = None, {}, []
            self._forget_locations()
        for p in packs:
            if p.fd >= 0:
                os.close(p.fd)
                p.fd = -1

    def _loose_path(self, oid: str) -> str:
        return os.path.join(self.loose_dir, oid[:2], oid[2:])

    def _find_packed(self, raw: bytes) -> tuple[LoadedPack, int] | None:
        """The pack and row of a good copy of ``raw``, or None.

        Remembered as ``(pack, row)`` (a pack's rows never move), and trusted again
        only while that pack is still loaded and the copy not quarantined: a hit
        stored by a thread that raced a quarantine or a reload is checked, not believed.
        """
        memo = self._found
        hit = memo.get(raw)
        if hit is not None:
            pack, _row = hit
            if any(p is pack for p in self._packs or ()) and not (self._quarantined and (pack.name, raw) in self._quarantined):
                return hit
        found = self._locate(raw)
        if found is None:
            return None
        if self._where is None and len(memo) < _FOUND_MAX:
            memo[raw] = found  # the dict of this generation: one dropped meanwhile takes the entry with it
        return found

    def _on_packed_copy(self, raw: bytes, use: Callable[[LoadedPack, int], _T]) -> _T | None:
        """``use(pack, row)`` on a good packed copy of ``raw``, or ``None`` if none is packed.

        If the pack has gone meanwhile (gc in another process), the store lists the
        packs again and finds the copy where gc moved it.
        """
        while True:
            found = self._find_packed(raw)
            if found is None:
                return None
            try:
                return use(*found)
            except PackGoneError:
                continue  # the pack list was read again: look where the copy is now

    def _pack_fd(self, pack: LoadedPack) -> int:
        if pack.fd < 0:
            try:
                fd = os.open(pack.pack_path, os.O_RDONLY)
            except FileNotFoundError as err:
                self._pack_vanished(pack)
                raise PackGoneError(pack.pack_path, err) from err
            except OSError as err:
                raise StorageError("open", pack.pack_path, err) from err
            try:
                check_pack_header(os.pread(fd, PACK_HEADER.size, 0), what=f"pack {pack.pack_path}")
            except CorruptMetadataError as err:
                os.close(fd)
                self._mark_broken(pack, err.detail)
                raise
            except BaseException:
                os.close(fd)
                raise
            pack.fd = fd
        return pack.fd

    def check_pack_headers(self) -> None:
        """Open every pack once, so one whose header is damaged is found (and set aside) now (fsck)."""
        for pack in self.packs():
            try:
                self._pack_fd(pack)
            except DsvError:
                continue

    def _mark_broken(self, pack: LoadedPack, problem: str) -> None:
        """Stop using a pack whose file is damaged (its objects count as missing; fsck --repair rescues them)."""
        with self._lock:
            if self._packs is not None and any(p is pack for p in self._packs):
                self._packs = [p for p in self._packs if p is not pack]  # a new list: see __init__
                self._forget_locations()
            if all(path != pack.pack_path for path, _ in self._damaged):
                self._damaged.append((pack.pack_path, problem))

    # -- reads -------------------------------------------------------------------

    def has(self, oid: str) -> bool:
        """Whether the store holds a copy of ``oid`` not known to be corrupt."""
        return self.has_raw(from_hex(oid))

    def has_raw(self, raw: bytes, size: int | None = None) -> bool:
        """:meth:`has` for a 16-byte binary id.

        With ``size`` known and below :data:`LOOSE_THRESHOLD` only packs are
        searched: small objects are never written loose, so the hot path of a
        commit costs no ``stat`` per object.
        """
        if self._find_packed(raw) is not None:
            return True
        if size is not None and size < LOOSE_THRESHOLD:
            return False
        return os.path.exists(self._loose_path(raw.hex()))

    def _stored_record(self, pack: LoadedPack, row: int, *, view: bool = False) -> tuple[bytes, int, int]:
        """``(stored bytes, size, encoding)`` of one packed record, read in one ``pread``.

        ``view``: the stored bytes as a view of what was read (no copy; the type is then memoryview).
        """
        off, length = pack.index.offsets[row], pack.index.lengths[row]
        fd = self._pack_fd(pack)
        try:
            if pack.version == 1:
                data = os.pread(fd, length, off)
                size, encoding = length, int(Encoding.RAW)
            else:
                blob = os.pread(fd, length + TRAILER.size, off - TRAILER.size)
                if len(blob) < TRAILER.size:
                    return b"", -1, int(Encoding.RAW)
                size, encoding, _ = TRAILER.unpack_from(blob)
                data = memoryview(blob)[TRAILER.size :] if view else blob[TRAILER.size :]  # type: ignore[assignment]
        except OSError as err:
            raise StorageError("read", pack.pack_path, err) from err
        if len(data) != length:
            return data, -1, encoding  # truncated pack
        return data, size, encoding

    def _decoded(self, oid: str, pack: LoadedPack, row: int) -> bytes:
        """The verified bytes of one packed copy, or :class:`CorruptObjectError`."""
        stored, size, encoding = self._stored_record(pack, row)
        if size < 0:
            raise CorruptObjectError(oid, "<truncated>", location=pack.pack_path)
        try:
            data = decode_payload(stored, size, encoding)
        except ValueError:
            raise CorruptObjectError(oid, "<undecodable>", location=pack.pack_path) from None
        actual = hash_bytes(data)
        if actual != oid:
            raise CorruptObjectError(oid, actual, location=pack.pack_path)
        return data

    def read(self, oid: str) -> bytes:
        """Return the verified bytes of ``oid``; a corrupt copy is quarantined and another one tried."""
        if not is_object_id(oid):
            raise ObjectNotFoundError(oid)
        raw = from_hex(oid)
        refreshed = False
        while True:
            found = self._find_packed(raw)
            if found is not None:
                pack, row = found
                if pack.encoding(row) == Encoding.CHUNKED:
                    return b"".join(self.iter_chunks(oid))
                try:
                    return self._decoded(oid, pack, row)
                except (CorruptMetadataError, PackGoneError):
                    continue  # the pack's header is damaged (set aside) or the pack has gone: look elsewhere
                except CorruptObjectError as err:
                    self._quarantine_packed(oid, pack, row)
                    if self._find_packed(raw) is None and not os.path.exists(self._loose_path(oid)):
                        err.hint = QUARANTINE_HINT
                        raise
                    continue
            path = self._loose_path(oid)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                if refreshed:
                    missing = ObjectNotFoundError(oid)
                    if self._damaged:
                        missing.hint = f"{damaged_what(self._damaged[0][0])} is damaged or missing; run 'dsv fsck --repair'"
                    raise missing from None
                self.refresh()  # another process may have published a pack meanwhile
                refreshed = True
                continue
            except OSError as err:
                raise StorageError("read", path, err) from err
            actual = hash_bytes(data)
            if actual != oid:
                self._quarantine_loose(oid)
                raise CorruptObjectError(oid, actual, location=path).with_hint(QUARANTINE_HINT)
            return data

    def read_into(self, oid: str, buffer: bytearray) -> memoryview | None:
        """The verified bytes of ``oid`` read into ``buffer``, as a view of its start, when they can be.

        For a reader that needs only part of an object (a range of a chunk): reading
        into a buffer it reuses costs no fresh memory per object, and fresh memory is
        what a read mostly pays for (its pages are faulted in and zeroed: ~3x the copy).
        ``None`` unless ``oid`` is a good packed copy stored as it is that fits in
        ``buffer``, or if its bytes do not hash to ``oid``: :meth:`read` then reads
        (and, for a corrupt copy, quarantines and reports) as usual. The view is valid
        until ``buffer`` is written again.
        """
        if not is_object_id(oid):
            return None
        found = self._find_packed(from_hex(oid))
        if found is None:
            return None
        pack, row = found
        if pack.version < 2 or pack.encoding(row) != Encoding.RAW:
            return None
        off, length = pack.index.offsets[row], pack.index.lengths[row]
        if length > len(buffer):
            return None
        view = memoryview(buffer)[:length]
        try:
            got = os.preadv(self._pack_fd(pack), [view], off)
        except (OSError, DsvError):
            view.release()
            return None
        if got != length or hash_bytes(view) != oid:
            view.release()
            return None
        return view

    def size(self, oid: str) -> int:
        """Size of ``oid`` without reading (or, for a compressed copy, decompressing) it."""

        def packed_size(pack: LoadedPack, row: int) -> int:
            if pack.version == 1:
                return pack.index.lengths[row]
            try:
                blob = os.pread(self._pack_fd(pack), TRAILER.size, pack.index.offsets[row] - TRAILER.size)
            except OSError as err:
                raise StorageError("read", pack.pack_path, err) from err
            if len(blob) < TRAILER.size:
                raise CorruptObjectError(oid, "<truncated>", location=pack.pack_path)
            return int(TRAILER.unpack(blob)[0])

        size = self._on_packed_copy(from_hex(oid), packed_size)
        if size is not None:
            return size
        try:
            return os.stat(self._loose_path(oid)).st_size
        except FileNotFoundError:
            raise ObjectNotFoundError(oid) from None

    def chunk_list(self, oid: str) -> list[tuple[str, int]] | None:
        """``(chunk id, length)`` of a chunked object, in order; ``None`` if ``oid`` is stored whole."""

        def listed(pack: LoadedPack, row: int) -> list[tuple[str, int]] | None:
            if pack.encoding(row) != Encoding.CHUNKED:
                return None
            return [(raw.hex(), n) for raw, n in self._chunks_of(oid, pack, row)]

        return self._on_packed_copy(from_hex(oid), listed)

    def chunk_map(self, oid: str) -> ChunkMap | None:
        """:meth:`chunk_list` as a :class:`ChunkMap` (no Python object per chunk: random access to a big file)."""

        def mapped(pack: LoadedPack, row: int) -> ChunkMap | None:
            if pack.encoding(row) != Encoding.CHUNKED:
                return None
            # A view of what was read, kept by the map: no copy of a ~300 KB list.
            return self._chunk_list_record(oid, pack, row, ChunkMap, view=True)

        return self._on_packed_copy(from_hex(oid), mapped)

    def has_many(self, oids: Iterable[str]) -> set[str]:
        """The subset of ``oids`` held."""
        return {o for o in oids if self.has(o)}

    def read_record(self, oid: str) -> StoredRecord:
        """The stored form of ``oid`` (as its pack holds it), verified; a loose object reads as a raw record."""
        if not is_object_id(oid):
            raise ObjectNotFoundError(oid)
        raw = from_hex(oid)
        for _ in range(3):
            found = self._find_packed(raw)
            if found is None:
                break
            pack, row = found
            try:
                stored, size, encoding = self._stored_record(pack, row)
            except (CorruptMetadataError, PackGoneError):
                continue  # the pack's header is damaged (set aside) or the pack has gone: look elsewhere
            record = StoredRecord(raw, stored, size, encoding)
            try:
                if size < 0:
                    raise CorruptObjectError(oid, "<truncated>", location=pack.pack_path)
                verify_record(record, location=pack.pack_path)
            except CorruptObjectError as err:
                self._quarantine_packed(oid, pack, row)
                if self._find_packed(raw) is None and not os.path.exists(self._loose_path(oid)):
                    err.hint = QUARANTINE_HINT
                    raise
                continue
            return record
        data = self.read(oid)  # loose (format 1), or missing: read() raises
        return StoredRecord(raw, data, len(data), int(Encoding.RAW))

    def read_records(self, oids: Iterable[str]) -> Iterator[StoredRecord]:
        """:meth:`read_record` for each id (local reads need no batching)."""
        for oid in oids:
            yield self.read_record(oid)

    def local_path(self, oid: str) -> str | None:
        """The loose file of ``oid`` (format 1 big files), verified once by streaming it; else ``None``."""
        path = self._loose_path(oid)
        if not os.path.exists(path):
            return None
        for _ in self.iter_chunks(oid):
            pass
        return path

    def prefetch(self, oids: Iterable[str]) -> None:
        """Nothing to do: a local store is complete."""

    def _chunks_of(self, oid: str, pack: LoadedPack, row: int) -> list[tuple[bytes, int]]:
        return self._chunk_list_record(oid, pack, row, decode_chunk_list)

    def _chunk_list_record(self, oid: str, pack: LoadedPack, row: int, decode: "Callable[[Any, int], _T]", *, view: bool = False) -> "_T":
        """``decode(stored bytes, size)`` of the chunk list at ``row`` of ``pack``; one that does
        not decode (``ValueError``) is quarantined and reported corrupt."""
        stored, size, _ = self._stored_record(pack, row, view=view)
        try:
            if size < 0:
                raise ValueError("truncated")
            return decode(stored, size)
        except ValueError:
            self._quarantine_packed(oid, pack, row)
            raise CorruptObjectError(oid, "<bad chunk list>", location=pack.pack_path).with_hint(QUARANTINE_HINT) from None

    def _stream_chunked(self, oid: str, pack: LoadedPack, row: int, chunks: list[tuple[bytes, int]]) -> Iterator[bytes]:
        """Each of ``chunks`` (``oid``'s list, stored at ``row`` of ``pack``) verified as it is
        read, then the whole object's id at the end."""
        hasher = Hasher()
        for raw, n in chunks:
            try:
                data = self.read(raw.hex())
            except ObjectNotFoundError:
                raise CorruptObjectError(oid, "<missing chunk>", reason=f"its chunk {raw.hex()} is missing").with_hint(QUARANTINE_HINT) from None
            except CorruptObjectError:
                raise CorruptObjectError(oid, "<corrupt chunk>", reason=f"its chunk {raw.hex()} is corrupt (set aside)").with_hint(QUARANTINE_HINT) from None
            if len(data) != n:
                raise CorruptObjectError(oid, "<chunk of the wrong length>", location=pack.pack_path)
            hasher.update(data)
            yield data
        actual = hasher.hexdigest()
        if actual != oid:
            self._quarantine_packed(oid, pack, row)
            raise CorruptObjectError(oid, actual, location=pack.pack_path).with_hint(QUARANTINE_HINT)

    def iter_chunks(self, oid: str) -> Iterator[bytes]:
        """Stream ``oid``; raises :class:`CorruptObjectError` at the end if it does not verify."""
        def located(pack: LoadedPack, row: int) -> tuple[LoadedPack, int, list[tuple[bytes, int]] | None]:
            return pack, row, (self._chunks_of(oid, pack, row) if pack.encoding(row) == Encoding.CHUNKED else None)

        found = self._on_packed_copy(from_hex(oid), located)
        if found is not None:
            pack, row, chunks = found
            if chunks is None:
                yield self.read(oid)
            else:
                yield from self._stream_chunked(oid, pack, row, chunks)
            return
        path = self._loose_path(oid)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            yield self.read(oid)  # perhaps packed by another process meanwhile
            return
        except OSError as err:
            raise StorageError("open", path, err) from err
        hasher = Hasher()
        try:
            while True:
                chunk = os.read(fd, CHUNK_SIZE)
                if not chunk:
                    break
                hasher.update(chunk)
                yield chunk
        finally:
            os.close(fd)
        actual = hasher.hexdigest()
        if actual != oid:
            self._quarantine_loose(oid)
            raise CorruptObjectError(oid, actual, location=path).with_hint(QUARANTINE_HINT)

    def ids(self) -> Iterator[str]:
        """Every object id held (packed first, then loose)."""
        for copy in self.copies():
            yield copy.oid

    def ids_with_prefix(self, prefix: str) -> list[str]:
        """Ids starting with the hex ``prefix`` (binary search in each pack index)."""
        prefix = prefix.lower()
        out: set[str] = set()
        lo_hex = prefix + "0" * (32 - len(prefix))
        lo = bytes.fromhex(lo_hex if len(lo_hex) % 2 == 0 else lo_hex + "0")[:16]
        for pack in self._load_packs():
            ids = pack.index.ids
            i = bisect.bisect_left(ids, lo)
            while i < len(ids) and ids[i].hex().startswith(prefix):
                out.add(ids[i].hex())
                i += 1
        shard = os.path.join(self.loose_dir, prefix[:2])
        if len(prefix) >= 2 and os.path.isdir(shard):
            for name in os.listdir(shard):
                if (prefix[:2] + name).startswith(prefix) and is_object_id(prefix[:2] + name):
                    out.add(prefix[:2] + name)
        elif len(prefix) < 2:
            out.update(c.oid for c in self.loose_copies() if c.oid.startswith(prefix))
        return sorted(out)

    def copies(self) -> Iterator[StoredCopy]:
        """Every stored copy of every object, with its location (quarantined copies excluded)."""
        packs = self._load_packs()
        for pack in packs:
            for row, (raw, length) in enumerate(zip(pack.index.ids, pack.index.lengths)):
                if self._quarantined and self.is_quarantined(pack, row):
                    continue
                yield StoredCopy(raw.hex(), "pack", pack.pack_path, length, pack.encoding(row))
        yield from self.loose_copies()

    def loose_copies(self) -> Iterator[StoredCopy]:
        """Every loose object."""
        try:
            shards = sorted(os.listdir(self.loose_dir))
        except FileNotFoundError:
            return
        for shard in shards:
            d = os.path.join(self.loose_dir, shard)
            try:
                names = sorted(os.listdir(d))
            except NotADirectoryError:
                continue
            for name in names:
                oid = shard + name
                if is_object_id(oid):
                    p = os.path.join(d, name)
                    try:
                        yield StoredCopy(oid, "loose", p, os.stat(p).st_size)
                    except FileNotFoundError:
                        continue

    def packs(self) -> list[LoadedPack]:
        """The visible packs."""
        return list(self._load_packs())

    # -- quarantine ----------------------------------------------------------------

    def quarantined(self) -> list[QuarantinedCopy]:
        """Every copy set aside as corrupt."""
        try:
            with os.scandir(self.quarantine_dir) as it:
                names = sorted(e.name for e in it if e.is_file(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []
        out = []
        for n in names:
            oid, _, origin = n.partition(".")
            if is_object_id(oid) and origin and ".tmp-" not in n:
                out.append(QuarantinedCopy(oid, origin, os.path.join(self.quarantine_dir, n)))
        return out

    def quarantine(self, copy: StoredCopy) -> None:
        """Set one stored copy aside as corrupt (fsck calls this for what it finds)."""
        if copy.kind == "loose":
            self._quarantine_loose(copy.oid)
            return
        raw = from_hex(copy.oid)
        for pack in self._load_packs():
            if pack.pack_path == copy.location:
                i = bisect.bisect_left(pack.index.ids, raw)
                if i < len(pack.index.ids) and pack.index.ids[i] == raw:
                    self._quarantine_packed(copy.oid, pack, i)
                return

    def _quarantine_packed(self, oid: str, pack: LoadedPack, row: int) -> None:
        """Save a corrupt packed copy's bytes under ``quarantine/`` and stop using that copy.

        Best effort: a read-only store still reports the corruption, it just cannot
        remember it.
        """
        raw = from_hex(oid)
        with self._lock:
            key = (pack.name, raw)
            if key in self._quarantined:
                self._forget_locations()
                return
            try:
                stored, _, _ = self._stored_record(pack, row)
                os.makedirs(self.quarantine_dir, exist_ok=True)
                atomic_write_bytes(os.path.join(self.quarantine_dir, f"{oid}.{pack.name}"), stored, mode=0o444)
            except (OSError, DsvError) as err:
                logger(__name__).warning("cannot quarantine %s in %s: %s", oid, pack.name, err)
            self._quarantined.add(key)
            self._forget_locations()

    def _quarantine_loose(self, oid: str) -> None:
        path = self._loose_path(oid)
        try:
            os.makedirs(self.quarantine_dir, exist_ok=True)
            os.replace(path, os.path.join(self.quarantine_dir, f"{oid}.loose"))
            fsync_dir(self.quarantine_dir)
        except OSError as err:
            logger(__name__).warning("cannot quarantine loose %s: %s", oid, err)

    def drop_quarantined(self, q: QuarantinedCopy) -> None:
        """Delete a quarantined copy's saved bytes (gc, once it is no longer needed)."""
        try:
            os.unlink(q.path)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise StorageError("delete", q.path, err) from err
        with self._lock:
            self._quarantined.discard((q.origin, from_hex(q.oid)))
            self._forget_locations()

    # -- repair --------------------------------------------------------------------

    def rebuild_index(self, path: str) -> tuple[int, int]:
        """Rebuild the index of a pack from its records (:func:`dsv.store.repair.rebuild_index`)."""
        from dsv.store.repair import rebuild_index

        return rebuild_index(self, path)

    # -- writes ------------------------------------------------------------------

    def begin_write(self) -> "LocalWriter":
        """Start a write transaction."""
        self._prepare_write()
        return LocalWriter(self)

    def _prepare_write(self) -> None:
        """Run the owner's hook (the repository format upgrade) before anything is written."""
        if self._before_write is not None:
            self._before_write()

    def has_good_copy(self, raw: bytes, size: int) -> bool:
        """Whether a verified copy of a small object is stored (a corrupt one is quarantined).

        Called when a commit is about to skip storing bytes it holds because the
        id is already known: re-reading the stored copy costs one ``pread``, and
        a damaged copy is never trusted again while a good one was in hand.
        """
        found = self._find_packed(raw)
        if found is None:
            return False
        pack, row = found
        if pack.encoding(row) == Encoding.CHUNKED:
            return True  # its chunks are verified when read; re-reading a big file on every commit would cost its size
        try:
            self._decoded(raw.hex(), pack, row)
            return True
        except (CorruptMetadataError, PackGoneError):
            return self.has_good_copy(raw, size)  # that pack was set aside or has gone; another copy may exist
        except CorruptObjectError:
            self._quarantine_packed(raw.hex(), pack, row)
            return self._find_packed(raw) is not None and self.has_good_copy(raw, size)

    def _published_pack(self, base: str) -> None:
        with self._lock:
            if self._packs is not None:
                pack = self._read_pack(base)
                self._packs = [*self._packs, pack]  # a new list: see __init__
                if self._where is not None:
                    self._where.update(_locations(pack))
                self._total_ids = None

    def _publish_pack(self, tmp: str, index_bytes: bytes) -> str:
        """Move a finished (fsynced) pack into place, then its index; return its base name.

        The caller fsyncs the packs directory afterwards.
        """
        base = "pack-" + pack_name(index_bytes)
        os.replace(tmp, os.path.join(self.packs_dir, base + ".pack"))
        # The pack's name must be durable before an index makes it visible.
        fsync_dir(self.packs_dir)
        atomic_write_bytes(os.path.join(self.packs_dir, base + ".idx"), index_bytes, mode=0o444)
        return base

    def remove_loose(self, oid: str) -> None:
        """Delete a loose object (gc only)."""
        os.unlink(self._loose_path(oid))

    def remove_pack(self, pack: LoadedPack) -> None:
        """Delete a pack: index first, so no reader sees an index without its pack (gc only)."""
        os.unlink(pack.idx_path)
        try:
            os.unlink(pack.pack_path)
        except FileNotFoundError:
            pass
        self.refresh()  # (an open file of it is retired: its space is freed when the store closes)


# The write transaction lives in its own module; imported here last (it needs this one) and re-exported.
from dsv.store.writer import LocalWriter  # noqa: E402

__all__ = ["LOOSE_THRESHOLD", "LocalObjectStore", "LocalWriter", "QuarantinedCopy", "StoredCopy", "to_hex"]
