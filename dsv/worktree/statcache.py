"""The stat cache: HEAD's manifest mirrored with each file's last-seen ``lstat``.

``dsv status`` compares every file's ``(size, mtime_ns, ctime_ns, inode, mode)``
with the cache and re-hashes only files whose stat changed, so an unchanged tree
is checked without reading a byte or loading pyarrow.

Racy-git rule: a file modified within the same filesystem-clock tick as the
cache was written could change again without changing its stat. So an entry
whose mtime or ctime is not older than the cache file's own mtime is never
trusted; it is re-hashed until a later cache write settles it. Restoring an old
mtime with ``utime`` still changes ctime, which the comparison includes.

Binary layout, version 2 (little-endian; docs/format.md §10 is authoritative)::

    "DSVSTAT\\n" u32 version=2 u32 0
    u32 h, h bytes of header JSON {"commit": id|null, "manifest": id|null, "newest_ns": int}
    u64 count
    u64 m, m bytes: paths, UTF-8, joined by NUL (rows in any order)
    count x 16  object ids
    count x i64 file size (from the manifest)
    count x i32 mode (from the manifest)
    count x 40  stat keys: i64 st_size, i64 mtime_ns, i64 ctime_ns, u64 inode, i64 mode
                (40 zero bytes: "stat unknown", always re-hash)
    16-byte XXH3-128 of everything before

In memory the ids and keys stay packed (one buffer each), so loading creates no
object per row but the path strings.

A cache that is missing, corrupt or of another version is simply rebuilt from
HEAD (it is a cache, never the source of truth).
"""

from __future__ import annotations

import json
import os
import stat as stat_module
import struct
import sys
import time
from array import array


from dsv.base.fsio import atomic_write_bytes
from dsv.base.hashing import DIGEST_SIZE, Hasher, digest_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    import pyarrow as pa

MAGIC = b"DSVSTAT\n"
VERSION = 2
_HEAD = struct.Struct("<8sII")

KEY = struct.Struct("<qqqQq")
"""A stat key as stored and compared: size, mtime_ns, ctime_ns, inode, mode (40 bytes)."""

UNKNOWN_KEY = bytes(KEY.size)
"""Matches no real file (no file has inode 0): its row is always re-hashed."""

StatKey = bytes
"""A packed :data:`KEY`: comparing two is one ``bytes ==``."""

FileIdentity = tuple[int, int, int]
"""``(size, mtime_ns, inode)`` of a stat cache file: which file a monitor's state belongs to."""


def stat_key(st: os.stat_result, mode: int) -> StatKey:
    """The comparison key of an ``lstat`` result."""
    return KEY.pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, mode)


class StatCache:
    """Paths of HEAD's manifest with ids, sizes, modes and stat keys.

    Rows are parallel columns: ``paths`` a list, sizes and modes arrays, ids and
    stat keys packed in one buffer each (16 and 40 bytes per row), so loading a
    million-row cache creates no per-row object but the path strings. A key of
    40 zero bytes (:data:`UNKNOWN_KEY`) means "stat unknown: re-hash".
    """

    def __init__(
        self,
        commit: str | None,
        manifest: str | None,
        paths: list[str] | None = None,
        oids: list[bytes] | None = None,
        sizes: "list[int] | array[int] | None" = None,
        modes: "list[int] | array[int] | None" = None,
        keys: list[StatKey | None] | None = None,
        *,
        oid_blob: bytes | None = None,
        key_blob: bytearray | None = None,
    ) -> None:
        self.commit = commit
        self.manifest = manifest
        self._paths = paths if paths is not None else []
        self._path_blob: str | None = None
        self._count: int | None = None
        self.oid_blob = oid_blob if oid_blob is not None else b"".join(oids or [])
        self._oids: list[bytes] | None = list(oids) if oids is not None else None
        self.sizes = sizes if isinstance(sizes, array) else array("q", sizes or [])
        self.modes = modes if isinstance(modes, array) else array("i", modes or [])
        if key_blob is not None:
            self.key_blob = key_blob
        else:
            self.key_blob = bytearray(b"".join(UNKNOWN_KEY if k is None else k for k in (keys or [])))
        self._index: dict[str, int] | None = None
        self.identity: FileIdentity | None = None
        """``(size, mtime_ns, inode)`` of the file it was loaded from (``None``: not from a file)."""
        self.opened_ns = time.time_ns()
        """When it was made or loaded: every key it records later was taken after this (see :func:`save`)."""

    def __len__(self) -> int:
        return self._count if self._path_blob is not None and self._count is not None else len(self._paths)

    @property
    def paths(self) -> list[str]:
        """Row paths (split from the file's path blob on first use: a monitored no-op status never needs them)."""
        if self._path_blob is not None:
            self._paths = self._path_blob.split("\0") if self._count else []
            self._path_blob = None
        return self._paths

    @classmethod
    def with_path_blob(cls, commit: str | None, manifest: str | None, blob: str, count: int, **columns: object) -> "StatCache":
        """A cache whose paths stay one NUL-joined string until used (split on first use)."""
        cache = cls(commit, manifest, None, None, **columns)  # type: ignore[arg-type]
        cache._path_blob = blob
        cache._count = count
        return cache

    @property
    def oids(self) -> list[bytes]:
        """16-byte object ids, one per row (decoded on first use)."""
        if self._oids is None:
            blob = self.oid_blob
            self._oids = [blob[i : i + 16] for i in range(0, len(blob), 16)]
        return self._oids

    def oid(self, row: int) -> bytes:
        """The 16-byte id of one row."""
        if self._oids is not None:
            return self._oids[row]
        return self.oid_blob[16 * row : 16 * row + 16]

    def key(self, row: int) -> StatKey:
        """The stat key of one row (:data:`UNKNOWN_KEY` when unknown)."""
        return bytes(self.key_blob[KEY.size * row : KEY.size * (row + 1)])

    def set_key(self, row: int, key: StatKey | None) -> None:
        """Record a row's stat key (``None``: unknown, re-hash next time)."""
        self.key_blob[KEY.size * row : KEY.size * (row + 1)] = UNKNOWN_KEY if key is None else key

    def rows_of(self, paths: "list[str]") -> "dict[str, int]":
        """``{path: row}`` for those of ``paths`` in the cache.

        A few paths are looked up in the unsplit path text (two C-speed scans
        each), so a monitored status with one changed file builds no index of a
        million rows; many paths use :attr:`index`.
        """
        text = self._path_blob
        if text is None or self._index is not None or len(paths) > 16:
            index = self.index
            return {p: index[p] for p in paths if p in index}
        out: dict[str, int] = {}
        if not self._count:
            return out
        framed = "\0" + text + "\0"
        for p in paths:
            if not p or "\0" in p:
                continue
            at = framed.find("\0" + p + "\0")
            if at != -1:
                out[p] = framed.count("\0", 0, at + 1) - 1
        return out

    @property
    def index(self) -> dict[str, int]:
        """``{path: row}``."""
        if self._index is None:
            self._index = dict(zip(self.paths, range(len(self.paths))))
        return self._index

    def patched(
        self, commit: str | None, manifest: str | None, removed: "set[int]", changed: dict[int, tuple[bytes, int, int, StatKey | None]],
        added: "list[tuple[str, bytes, int, int, StatKey | None]] | NewRows",
    ) -> "StatCache":
        """A new cache: these rows dropped, those rows' id/size/mode/key replaced, new rows appended.

        Costs one pass over the rows only when some are removed; rows may be in
        any order (readers index them by path).
        """
        oid_blob = bytearray(self.oid_blob)
        sizes = array("q", self.sizes)
        modes = array("i", self.modes)
        keys = bytearray(self.key_blob)
        for row, (oid, size, mode, key) in changed.items():
            oid_blob[16 * row : 16 * row + 16] = oid
            sizes[row] = size
            modes[row] = mode
            keys[KEY.size * row : KEY.size * (row + 1)] = UNKNOWN_KEY if key is None else key
        paths = list(self.paths)
        if removed:
            # Copy the runs of rows between removed ones (a handful of slices, not one per row).
            ks = KEY.size
            spans = []
            start = 0
            for r in sorted(removed):
                if r > start:
                    spans.append((start, r))
                start = r + 1
            if start < len(paths):
                spans.append((start, len(paths)))
            kept_paths: list[str] = []
            for a, b in spans:
                kept_paths += paths[a:b]
            paths = kept_paths
            oid_blob = bytearray(b"".join(oid_blob[16 * a : 16 * b] for a, b in spans))
            kept_sizes, kept_modes = array("q"), array("i")
            for a, b in spans:
                kept_sizes += sizes[a:b]
                kept_modes += modes[a:b]
            sizes, modes = kept_sizes, kept_modes
            keys = bytearray(b"".join(keys[ks * a : ks * b] for a, b in spans))
        if isinstance(added, NewRows):
            paths += added.paths
            oid_blob += added.oid_blob
            sizes += added.sizes
            modes += added.modes
            keys += added.key_blob
        else:
            for path, oid, size, mode, key in added:
                paths.append(path)
                oid_blob += oid
                sizes.append(size)
                modes.append(mode)
                keys += UNKNOWN_KEY if key is None else key
        patched = StatCache(commit, manifest, paths, None, sizes, modes, None, oid_blob=bytes(oid_blob), key_blob=keys)
        patched.opened_ns = self.opened_ns  # the keys added were taken since this cache was opened
        return patched


class NewRows:
    """Rows to append to a cache, kept as columns: a first commit of a million files adds a
    million rows, and a tuple per row (path, id, size, mode, key) cost ~200 bytes each."""

    __slots__ = ("paths", "oid_blob", "sizes", "modes", "key_blob")

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.oid_blob = bytearray()
        self.sizes = array("q")
        self.modes = array("i")
        self.key_blob = bytearray()

    def add(self, path: str, oid: bytes, size: int, mode: int, key: StatKey | None) -> None:
        """Append one row (``key`` ``None``: unknown, re-hash next time)."""
        self.paths.append(path)
        self.oid_blob += oid
        self.sizes.append(size)
        self.modes.append(mode)
        self.key_blob += UNKNOWN_KEY if key is None else key

    def __len__(self) -> int:
        return len(self.paths)

    def path_oids(self) -> "list[tuple[str, bytes]]":
        """``(path, 16-byte id)`` of every row."""
        blob = self.oid_blob
        return [(p, bytes(blob[16 * i : 16 * i + 16])) for i, p in enumerate(self.paths)]


def _le(a: array) -> bytes:  # type: ignore[type-arg]
    """Little-endian bytes of an array, whatever the host byte order."""
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def _newest_ns(keys: bytes | bytearray) -> int:
    """The newest mtime or ctime among packed stat keys (read in place: no copy of the keys)."""
    if sys.byteorder == "little":
        words = memoryview(keys).cast("q")
        try:
            return max(max(words[1::5]), max(words[2::5]))
        finally:
            words.release()
    swapped = array("q", bytes(keys))
    swapped.byteswap()
    return max(max(swapped[1::5]), max(swapped[2::5]))


def encode(cache: StatCache) -> bytes:
    """Serialize a cache (rows in the order given: readers index by path, not position)."""
    return b"".join(encode_parts(cache))


def encode_parts(cache: StatCache) -> list[bytes | bytearray | memoryview]:
    """:func:`encode` as parts written one after the other (no copy of the whole file is made)."""
    n = len(cache)
    newest = _newest_ns(cache.key_blob) if n else 0
    header = json.dumps({"commit": cache.commit, "manifest": cache.manifest, "newest_ns": newest}).encode()
    text = cache._path_blob if cache._path_blob is not None else "\0".join(cache.paths)
    blob = text.encode("utf-8")
    parts: list[bytes | bytearray | memoryview] = [
        _HEAD.pack(MAGIC, VERSION, 0),
        struct.pack("<I", len(header)),
        header,
        struct.pack("<Q", n),
        struct.pack("<Q", len(blob)),
        blob,
        cache.oid_blob,
        _le(array("q", cache.sizes)),
        _le(array("i", cache.modes)),
        cache.key_blob,
    ]
    hasher = Hasher()
    for part in parts:
        hasher.update(part)
    parts.append(hasher.digest())
    return parts


def decode(data: bytes, racy_after_ns: int) -> StatCache | None:
    """Parse a cache; ``None`` if it is not a valid cache of this version.

    Entries whose mtime or ctime is at or after ``racy_after_ns`` (the cache file's
    mtime) get the unknown key, so they are re-hashed.
    """
    try:
        if len(data) < _HEAD.size + DIGEST_SIZE or digest_bytes(memoryview(data)[:-DIGEST_SIZE]) != data[-DIGEST_SIZE:]:
            return None
        magic, version, _ = _HEAD.unpack_from(data)
        if magic != MAGIC or version != VERSION:
            return None
        pos = _HEAD.size
        (hlen,) = struct.unpack_from("<I", data, pos)
        pos += 4
        header = json.loads(data[pos : pos + hlen])
        pos += hlen
        (n, blen) = struct.unpack_from("<QQ", data, pos)
        pos += 16
        path_text = data[pos : pos + blen].decode("utf-8")
        if n and path_text.count("\0") != n - 1:
            return None
        pos += blen
        oid_blob = data[pos : pos + 16 * n]
        pos += 16 * n
        sizes = array("q")
        sizes.frombytes(data[pos : pos + 8 * n])
        pos += 8 * n
        modes = array("i")
        modes.frombytes(data[pos : pos + 4 * n])
        pos += 4 * n
        ksize = KEY.size
        key_blob = bytearray(data[pos : pos + ksize * n])
        pos += ksize * n
        if pos != len(data) - DIGEST_SIZE or len(oid_blob) != 16 * n:
            return None
        if sys.byteorder != "little":
            for a in (sizes, modes):
                a.byteswap()
        # Racy-git: rows not older than the cache itself are never trusted. The header
        # records the newest mtime/ctime, so a settled cache needs no pass over its rows.
        newest = header.get("newest_ns")
        if n and (not isinstance(newest, int) or newest >= racy_after_ns):
            _forget_keys_since(key_blob, n, racy_after_ns)
        return StatCache.with_path_blob(
            header.get("commit"), header.get("manifest"), path_text, n, sizes=sizes, modes=modes, oid_blob=oid_blob, key_blob=key_blob
        )
    except (ValueError, struct.error, UnicodeDecodeError, KeyError, AttributeError):
        return None


def _expected_size(head: bytes) -> int | None:
    """The size a cache file must have, from its first bytes (``None``: not a cache of this version)."""
    try:
        magic, version, _ = _HEAD.unpack_from(head)
        if magic != MAGIC or version != VERSION:
            return None
        (hlen,) = struct.unpack_from("<I", head, _HEAD.size)
        n, blen = struct.unpack_from("<QQ", head, _HEAD.size + 4 + hlen)
    except struct.error:
        return None
    return _HEAD.size + 4 + hlen + 16 + blen + n * (16 + 8 + 4 + KEY.size) + DIGEST_SIZE


_ahead: tuple[tuple[int, int, int, int], StatCache] | None = None
"""A cache read by :func:`load_ahead`, keyed by its file's device, inode, size and mtime."""


def load_ahead(path: str) -> None:
    """Read the cache at ``path`` now (and index it), for the next :func:`load`.

    For the command server's prepared process (docs/server.md): its command then
    starts with the cache in memory, if the file is still the one read (same
    device, inode, size and modification time; a save always makes a new file).
    """
    global _ahead
    _ahead = None
    cache = load(path)
    if cache is None or cache.identity is None:
        return
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return
    if (st.st_size, st.st_mtime_ns, st.st_ino) == cache.identity:
        cache.index  # noqa: B018 - built now, not in the command
        _ahead = ((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns), cache)


def _read_ahead(path: str) -> StatCache | None:
    """The cache :func:`load_ahead` read, if ``path`` is still that file (given once)."""
    global _ahead
    ahead, _ahead = _ahead, None
    if ahead is None:
        return None
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    if not stat_module.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != ahead[0]:
        return None
    return ahead[1]


def load(path: str) -> StatCache | None:
    """Read the cache file at ``path``; ``None`` when missing or invalid.

    Whatever else is found there (a FIFO, a device, a symlink, a folder, a file
    whose header does not match its size) is never read: it counts as no
    cache, which costs a re-hash, and :func:`save` replaces it.
    """
    ready = _read_ahead(path)
    if ready is not None:
        return ready
    try:
        # Not following a symlink, not waiting on a FIFO's writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat_module.S_ISREG(st.st_mode):
            return None
        # The header first: a file whose size is not the one it announces is not read
        # (a sparse file of terabytes would be, for ever).
        head = os.read(fd, 65536)
        if _expected_size(head) != st.st_size:
            return None
        # Then the rest in one read (a larger request would allocate, and fault in, a
        # buffer that large), and one to see the end.
        chunks = [head, os.read(fd, st.st_size - len(head))]
        while c := os.read(fd, 1 << 20):
            chunks.append(c)
    except (OSError, MemoryError):
        return None
    finally:
        os.close(fd)
    cache = decode(b"".join(chunks), st.st_mtime_ns)
    if cache is not None:
        cache.identity = (st.st_size, st.st_mtime_ns, st.st_ino)
    return cache


COARSE_CLOCK_NS = 2_000_000_000
"""The coarsest file timestamp granularity dsv allows for: 2 s (FAT); ext4 with small inodes, HFS+ and some network filesystems have 1 s."""


def save(path: str, cache: StatCache) -> FileIdentity | None:
    """Write the cache atomically (not fsynced: losing it costs a re-hash, never data); return the file's identity.

    An empty folder in its place (the rename cannot replace it) is removed first.

    On a filesystem whose timestamps are whole seconds, a row whose mtime or ctime
    is not older than the granule in which the cache was opened is written as
    unknown (re-hashed next time): its key may have been taken in the second the
    file was written, and an edit later in that second would leave size, times
    and inode as they were. (With finer timestamps the window is a clock tick, and
    the rows newer than the cache file itself are re-hashed when it is loaded, as
    git does for its index.)
    """
    if os.path.isdir(path) and not os.path.islink(path):
        try:
            os.rmdir(path)
        except OSError:
            pass
    if len(cache) and _coarse_timestamps(os.path.dirname(path) or "."):
        _forget_recent_keys(cache, cache.opened_ns - cache.opened_ns % COARSE_CLOCK_NS)
    atomic_write_bytes(path, encode_parts(cache), durable=False)
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _coarse_timestamps(folder: str) -> bool:
    """Whether the filesystem holding ``folder`` (``.dsv``, changed by every save) keeps whole seconds only."""
    try:
        st = os.stat(folder)
    except OSError:
        return False
    return st.st_mtime_ns % 1_000_000_000 == 0 and st.st_ctime_ns % 1_000_000_000 == 0


def _forget_recent_keys(cache: StatCache, since_ns: int) -> None:
    """Make unknown the keys of rows whose mtime or ctime is at or after ``since_ns``."""
    if len(cache) and _newest_ns(cache.key_blob) >= since_ns:
        _forget_keys_since(cache.key_blob, len(cache), since_ns)


def _forget_keys_since(blob: bytearray, n: int, since_ns: int) -> None:
    """In ``n`` packed keys, make unknown those whose mtime or ctime is at or after ``since_ns``."""
    words = array("q")
    words.frombytes(bytes(blob))
    if sys.byteorder != "little":
        words.byteswap()
    size = KEY.size
    mt, ct = words[1::5], words[2::5]
    for i in range(n):
        if mt[i] >= since_ns or ct[i] >= since_ns:
            blob[size * i : size * (i + 1)] = UNKNOWN_KEY


def cache_from_table(commit: str | None, manifest: str | None, table: "pa.Table") -> StatCache:
    """A cache mirroring a manifest table, every stat key unknown (rebuilt from HEAD)."""
    n = table.num_rows
    if n == 0:
        return StatCache(commit, manifest)
    oid_col = table.column("oid").combine_chunks()
    oid_blob = oid_col.buffers()[1].to_pybytes()[oid_col.offset * 16 : (oid_col.offset + n) * 16]
    sizes = array("q", table.column("size").to_pylist())
    modes = array("i", table.column("mode").to_pylist())
    return StatCache(commit, manifest, table.column("path").to_pylist(), None, sizes, modes, None, oid_blob=oid_blob, key_blob=bytearray(KEY.size * n))


def cache_table(cache: StatCache) -> "pa.Table":
    """The cache's rows as a sorted manifest table (for a first commit)."""
    import pyarrow as pa

    from dsv.manifest import ENTRY_SCHEMA

    n = len(cache)
    table = pa.table(
        [
            pa.array(cache.paths, pa.string()),
            pa.Array.from_buffers(pa.binary(16), n, [None, pa.py_buffer(cache.oid_blob)]),
            pa.array(cache.sizes, pa.int64()),
            pa.array(cache.modes, pa.int32()),
        ],
        schema=ENTRY_SCHEMA,
    )
    return table.sort_by("path") if n > 1 else table
