"""The object store in ``.dsv/objects``: packs for small objects, loose files for large.

Layout::

    objects/packs/pack-<name>.pack + .idx   small objects (< LOOSE_THRESHOLD)
    objects/loose/ab/<30 hex>               one file per large object
    objects/tmp/                            in-flight writes (garbage after a crash)

Small objects are appended to one pack per write transaction and made durable with
a single fsync; large objects are hashed while they are copied to a temp file,
fsynced, and renamed to their id. Every read re-hashes what it returns.
"""

from __future__ import annotations

import bisect
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from dsv.base.errors import CorruptObjectError, ObjectNotFoundError, StorageError
from dsv.base.fsio import atomic_write_bytes, fsync_dir, write_all
from dsv.base.hashing import Hasher, digest_bytes, from_hex, hash_bytes, is_object_id, to_hex
from dsv.store.base import CHUNK_SIZE
from dsv.store.pack import PACK_HEADER, PackIndex, PackWriter, check_pack_header, decode_index, pack_name

LOOSE_THRESHOLD = 8 * 1024 * 1024
"""Objects at least this large are stored as loose files rather than in packs."""

PACK_ROLLOVER = 1024 * 1024 * 1024
"""A transaction starts a new pack once the current one reaches this size."""


@dataclass
class LoadedPack:
    """One visible pack: its name, index, and a lazily opened file descriptor."""

    name: str
    pack_path: str
    idx_path: str
    index: PackIndex
    fd: int = -1


@dataclass(frozen=True)
class StoredCopy:
    """Where one object lives, for fsck and gc."""

    oid: str
    kind: str  # "pack" or "loose"
    location: str
    size: int


class LocalObjectStore:
    """Object store on a local filesystem rooted at ``root`` (``.dsv/objects``)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.packs_dir = os.path.join(root, "packs")
        self.loose_dir = os.path.join(root, "loose")
        self.tmp_dir = os.path.join(root, "tmp")
        self._packs: list[LoadedPack] | None = None
        # id -> (pack slot, row), built only once lookups are many (see _locate).
        self._where: dict[bytes, tuple[int, int]] | None = None
        self._lookups = 0
        self._lock = threading.Lock()

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
                packs: list[LoadedPack] = []
                try:
                    names = sorted(n for n in os.listdir(self.packs_dir) if n.endswith(".idx") and n.startswith("pack-"))
                except FileNotFoundError:
                    names = []
                for n in names:
                    self._add_pack_locked(packs, None, n[:-4])
                self._packs = packs
                self._where = None
                self._lookups = 0
            return self._packs

    def _locate(self, raw: bytes) -> tuple[int, int] | None:
        """``(pack slot, row)`` of a packed id, or ``None``.

        A few lookups (a small commit, a checkout of some files) binary-search each
        pack's sorted index; past a couple of thousand lookups, or with many packs,
        one dict over every pack pays for itself.
        """
        packs = self._load_packs()
        where = self._where
        if where is None:
            self._lookups += 1
            if len(packs) > 8 or self._lookups > 2048:
                with self._lock:
                    if self._where is None:
                        built: dict[bytes, tuple[int, int]] = {}
                        for slot, pack in enumerate(packs):
                            built.update(zip(pack.index.ids, zip([slot] * len(pack.index), range(len(pack.index)))))
                        self._where = built
                    where = self._where
            else:
                for slot in range(len(packs) - 1, -1, -1):
                    ids = packs[slot].index.ids
                    i = bisect.bisect_left(ids, raw)
                    if i < len(ids) and ids[i] == raw:
                        return slot, i
                return None
        return where.get(raw)

    def _add_pack_locked(self, packs: list[LoadedPack], where: dict[bytes, tuple[int, int]] | None, base: str) -> None:
        idx_path = os.path.join(self.packs_dir, base + ".idx")
        try:
            with open(idx_path, "rb") as f:
                data = f.read()
        except OSError as err:
            raise StorageError("read", idx_path, err) from err
        index = decode_index(data, what=f"pack index {idx_path}")
        slot = len(packs)
        packs.append(LoadedPack(base, os.path.join(self.packs_dir, base + ".pack"), idx_path, index))
        if where is not None:
            for i, raw in enumerate(index.ids):
                where[raw] = (slot, i)

    def refresh(self) -> None:
        """Forget the cached pack index (other processes may have added packs)."""
        with self._lock:
            for p in self._packs or []:
                if p.fd >= 0:
                    os.close(p.fd)
            self._packs = None
            self._where = None

    def close(self) -> None:
        """Close open pack files."""
        self.refresh()

    def _loose_path(self, oid: str) -> str:
        return os.path.join(self.loose_dir, oid[:2], oid[2:])

    def _find_packed(self, raw: bytes) -> tuple[LoadedPack, int, int] | None:
        hit = self._locate(raw)
        packs = self._load_packs()
        if hit is None:
            return None
        pack = packs[hit[0]]
        return pack, pack.index.offsets[hit[1]], pack.index.lengths[hit[1]]

    def _pack_fd(self, pack: LoadedPack) -> int:
        if pack.fd < 0:
            try:
                fd = os.open(pack.pack_path, os.O_RDONLY)
            except OSError as err:
                raise StorageError("open", pack.pack_path, err) from err
            try:
                check_pack_header(os.pread(fd, PACK_HEADER.size, 0), what=f"pack {pack.pack_path}")
            except BaseException:
                os.close(fd)
                raise
            pack.fd = fd
        return pack.fd

    # -- reads -------------------------------------------------------------------

    def has(self, oid: str) -> bool:
        """Whether the store holds ``oid`` (in a pack or loose)."""
        return self.has_raw(from_hex(oid))

    def has_raw(self, raw: bytes, size: int | None = None) -> bool:
        """:meth:`has` for a 16-byte binary id.

        With ``size`` known and below :data:`LOOSE_THRESHOLD` only packs are
        searched: small objects are never written loose, so the hot path of a
        commit costs no ``stat`` per object.
        """
        if self._locate(raw) is not None:
            return True
        if size is not None and size < LOOSE_THRESHOLD:
            return False
        return os.path.exists(self._loose_path(raw.hex()))

    def _packed_bytes(self, oid: str, pack: LoadedPack, off: int, length: int) -> bytes:
        try:
            data = os.pread(self._pack_fd(pack), length, off)
        except OSError as err:
            raise StorageError("read", pack.pack_path, err) from err
        if len(data) != length:
            raise CorruptObjectError(oid, "<truncated>", location=pack.pack_path)
        return data

    def read(self, oid: str) -> bytes:
        """Return the verified bytes of ``oid``."""
        if not is_object_id(oid):
            raise ObjectNotFoundError(oid)
        raw = from_hex(oid)
        found = self._find_packed(raw)
        if found is None:
            path = self._loose_path(oid)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                self.refresh()
                found = self._find_packed(raw)
                if found is None:
                    raise ObjectNotFoundError(oid) from None
                data = self._packed_bytes(oid, *found)
                location = found[0].pack_path
            except OSError as err:
                raise StorageError("read", path, err) from err
            else:
                location = path
        else:
            data = self._packed_bytes(oid, *found)
            location = found[0].pack_path
        actual = hash_bytes(data)
        if actual != oid:
            raise CorruptObjectError(oid, actual, location=location)
        return data

    def size(self, oid: str) -> int:
        """Size of ``oid`` without reading it."""
        found = self._find_packed(from_hex(oid))
        if found is not None:
            return found[2]
        try:
            return os.stat(self._loose_path(oid)).st_size
        except FileNotFoundError:
            raise ObjectNotFoundError(oid) from None

    def iter_chunks(self, oid: str) -> Iterator[bytes]:
        """Stream ``oid``; raises :class:`CorruptObjectError` at the end if it does not verify."""
        found = self._find_packed(from_hex(oid))
        if found is not None:
            yield self.read(oid)
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
            raise CorruptObjectError(oid, actual, location=path)

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
        """Every stored copy of every object, with its location."""
        for pack in self._load_packs():
            for raw, length in zip(pack.index.ids, pack.index.lengths):
                yield StoredCopy(raw.hex(), "pack", pack.pack_path, length)
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
                    yield StoredCopy(oid, "loose", p, os.stat(p).st_size)

    def verify_copy(self, copy: StoredCopy) -> str:
        """Re-hash one stored copy; return the actual hex hash (``<truncated>`` if short)."""
        if copy.kind == "pack":
            pack = next(p for p in self._load_packs() if p.pack_path == copy.location)
            slot = self._locate(from_hex(copy.oid))
            if slot is None or self._packs is None or self._packs[slot[0]] is not pack:
                # The same id may also sit in another pack; look it up in this one.
                i = pack.index.ids.index(from_hex(copy.oid))
            else:
                i = slot[1]
            data = os.pread(self._pack_fd(pack), pack.index.lengths[i], pack.index.offsets[i])
            if len(data) != pack.index.lengths[i]:
                return "<truncated>"
            return hash_bytes(data)
        hasher = Hasher()
        with open(copy.location, "rb") as f:
            while chunk := f.read(CHUNK_SIZE):
                hasher.update(chunk)
        return hasher.hexdigest()

    def packs(self) -> list[LoadedPack]:
        """The visible packs."""
        return list(self._load_packs())

    # -- writes ------------------------------------------------------------------

    def begin_write(self) -> "LocalWriter":
        """Start a write transaction."""
        return LocalWriter(self)

    def _published_pack(self, base: str) -> None:
        with self._lock:
            if self._packs is not None:
                self._add_pack_locked(self._packs, self._where, base)

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

    def repack(self, packs: list[LoadedPack], keep: set[bytes]) -> None:
        """Rewrite ``packs`` into one new pack holding only the ids in ``keep`` (gc only).

        Every kept object is verified while copied; the new pack is published and
        made durable before the old ones are deleted.
        """
        writer = PackWriter(os.path.join(self.tmp_dir, f"{os.getpid()}-{uuid.uuid4().hex}.pack"))
        copied: set[bytes] = set()
        try:
            for pack in packs:
                fd = self._pack_fd(pack)
                for raw, off, length in zip(pack.index.ids, pack.index.offsets, pack.index.lengths):
                    if raw not in keep or raw in copied:
                        continue
                    data = os.pread(fd, length, off)
                    if digest_bytes(data) != raw:
                        raise CorruptObjectError(raw.hex(), hash_bytes(data), location=pack.pack_path)
                    writer.append(raw, data)
                    copied.add(raw)
        except BaseException:
            writer.discard()
            raise
        if writer.entries:
            index_bytes = writer.finish()
            self._publish_pack(writer.path, index_bytes)
        else:
            writer.discard()
        fsync_dir(self.packs_dir)
        for pack in packs:
            self.remove_pack(pack)
        fsync_dir(self.packs_dir)

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
        self.refresh()


class LocalWriter:
    """A write transaction on a :class:`LocalObjectStore`; thread-safe."""

    def __init__(self, store: LocalObjectStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._pack: PackWriter | None = None
        self._finished_packs: list[tuple[str, bytes]] = []  # (tmp pack path, index bytes)
        self._added: set[bytes] = set()
        self._loose: dict[str, str] = {}  # oid -> fsynced temp path
        self.bytes_written = 0
        self.objects_written = 0

    def _tmp(self, suffix: str) -> str:
        return os.path.join(self.store.tmp_dir, f"{os.getpid()}-{uuid.uuid4().hex}{suffix}")

    def add_bytes(self, data: bytes) -> str:
        """Store ``data`` and return its hex id (a no-op if already stored)."""
        return self.add_raw(data).hex()

    def add_raw(self, data: bytes) -> bytes:
        """Store ``data`` and return its 16-byte binary id (the commit hot path)."""
        try:
            return self._add_raw(data)
        except OSError as err:
            raise StorageError("write objects to", self.store.root, err) from err

    def _add_raw(self, data: bytes) -> bytes:
        raw = digest_bytes(data)
        n = len(data)
        if n >= LOOSE_THRESHOLD:
            oid = raw.hex()
            with self._lock:
                if raw in self._added or self.store.has_raw(raw):
                    return raw
                self._added.add(raw)
            tmp = self._tmp(".obj")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            with self._lock:
                self._loose[oid] = tmp
                self.bytes_written += n
                self.objects_written += 1
            return raw
        with self._lock:
            if raw in self._added or self.store.has_raw(raw, n):
                return raw
            self._added.add(raw)
            if self._pack is None or self._pack.size >= PACK_ROLLOVER:
                self._roll_pack()
            self._pack.append(raw, data)  # type: ignore[union-attr]
            self.bytes_written += n
            self.objects_written += 1
        return raw

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
        chunks: list[bytes] = []
        total = 0
        large = False
        while True:
            c = os.read(fd, CHUNK_SIZE)
            if not c:
                break
            chunks.append(c)
            total += len(c)
            if total >= LOOSE_THRESHOLD:
                large = True
                break
        if not large:
            data = b"".join(chunks)
            return self._add_raw(data).hex(), len(data)
        # Large: stream to a temp file, hashing exactly the bytes written.
        tmp = self._tmp(".obj")
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        hasher = Hasher()
        try:
            for c in chunks:
                hasher.update(c)
                write_all(out, c)
            del chunks
            # One reused buffer: no fresh multi-MB allocation (and page faults) per chunk.
            buf = bytearray(CHUNK_SIZE)
            view = memoryview(buf)
            while True:
                k = os.readv(fd, [buf])
                if not k:
                    break
                part = view[:k]
                hasher.update(part)
                write_all(out, part)
                total += k
            os.fsync(out)
        except BaseException:
            os.close(out)
            os.unlink(tmp)
            raise
        os.close(out)
        raw = hasher.digest()
        oid = raw.hex()
        with self._lock:
            if raw in self._added or self.store.has_raw(raw):
                os.unlink(tmp)
                return oid, total
            self._added.add(raw)
            self._loose[oid] = tmp
            self.bytes_written += total
            self.objects_written += 1
        return oid, total

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
            dirs: set[str] = set()
            for oid, tmp in self._loose.items():
                shard = os.path.join(self.store.loose_dir, oid[:2])
                os.makedirs(shard, exist_ok=True)
                os.replace(tmp, os.path.join(shard, oid[2:]))
                dirs.add(shard)
            self._loose.clear()
            self._close_pack_locked()
            published = [self.store._publish_pack(tmp, index_bytes) for tmp, index_bytes in self._finished_packs]
            self._finished_packs.clear()
            if published:
                dirs.add(self.store.packs_dir)
            for d in dirs:
                fsync_dir(d)
            if dirs:
                fsync_dir(self.store.loose_dir)
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
            for tmp in self._loose.values():
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
            self._loose.clear()


__all__ = ["LOOSE_THRESHOLD", "LocalObjectStore", "LocalWriter", "StoredCopy", "to_hex"]
