"""The stat cache: HEAD's manifest mirrored with each file's last-seen ``lstat``.

``dsv status`` compares every file's ``(size, mtime_ns, ctime_ns, inode, mode)``
with the cache and re-hashes only files whose stat changed, so an unchanged tree
is checked without reading a byte or loading pyarrow.

Racy-git rule: a file modified within the same filesystem-clock tick as the
cache was written could change again without changing its stat. So an entry
whose mtime or ctime is not older than the cache file's own mtime is never
trusted; it is re-hashed until a later cache write settles it. Restoring an old
mtime with ``utime`` still changes ctime, which the comparison includes.

Binary layout (little-endian; docs/format.md)::

    "DSVSTAT\\n" u32 version u32 0
    u32 n, n bytes of header JSON {"commit": id|null, "manifest": id|null, "newest_ns": int}
    u64 count
    u64 m, m bytes: paths, UTF-8, separated by NUL (rows in any order)
    count x 16  object ids
    count x i64 file size (from the manifest)
    count x i64 stat size | count x i64 mtime_ns | count x i64 ctime_ns | count x u64 inode
    count x i32 mode
    (-1 in the stat size marks "stat unknown": always re-hash)
    16-byte XXH3-128 of everything before

A cache that is missing, corrupt or of another version is simply rebuilt from
HEAD (it is a cache, never the source of truth).
"""

from __future__ import annotations

import json
import os
import struct
import sys
from array import array

from dsv.base.fsio import atomic_write_bytes
from dsv.base.hashing import DIGEST_SIZE, digest_bytes

MAGIC = b"DSVSTAT\n"
VERSION = 2
_HEAD = struct.Struct("<8sII")

KEY = struct.Struct("<qqqQq")
"""A stat key as stored and compared: size, mtime_ns, ctime_ns, inode, mode (40 bytes)."""

UNKNOWN_KEY = bytes(KEY.size)
"""Matches no real file (no file has inode 0): its row is always re-hashed."""

StatKey = bytes
"""A packed :data:`KEY`: comparing two is one ``bytes ==``."""


def stat_key(st: os.stat_result, mode: int) -> StatKey:
    """The comparison key of an ``lstat`` result."""
    return KEY.pack(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, mode)


class StatCache:
    """Paths of HEAD's manifest with ids, sizes, modes and stat keys (``None`` = unknown).

    Rows are parallel lists. Object ids are decoded lazily: checking an unchanged
    tree never needs them.
    """

    def __init__(
        self,
        commit: str | None,
        manifest: str | None,
        paths: list[str] | None = None,
        oids: list[bytes] | None = None,
        sizes: list[int] | None = None,
        modes: list[int] | None = None,
        keys: list[StatKey | None] | None = None,
        *,
        oid_blob: bytes | None = None,
    ) -> None:
        self.commit = commit
        self.manifest = manifest
        self.paths = paths if paths is not None else []
        self._oids = oids if oids is not None or oid_blob is not None else []
        self._oid_blob = oid_blob
        self.sizes = sizes if sizes is not None else []
        self.modes = modes if modes is not None else []
        self.keys = keys if keys is not None else []
        self._index: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def oids(self) -> list[bytes]:
        """16-byte object ids, one per row."""
        if self._oids is None:
            blob = self._oid_blob or b""
            self._oids = [blob[i : i + 16] for i in range(0, len(blob), 16)]
            self._oid_blob = None
        return self._oids

    @property
    def index(self) -> dict[str, int]:
        """``{path: row}``."""
        if self._index is None:
            self._index = dict(zip(self.paths, range(len(self.paths))))
        return self._index


def _le(a: array) -> bytes:  # type: ignore[type-arg]
    """Little-endian bytes of an array, whatever the host byte order."""
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def encode(cache: StatCache) -> bytes:
    """Serialize a cache (rows in the order given: readers index by path, not position)."""
    newest = 0
    for k in cache.keys:
        if k is not None:
            _, m, c, _, _ = KEY.unpack(k)
            newest = max(newest, m, c)
    header = json.dumps({"commit": cache.commit, "manifest": cache.manifest, "newest_ns": newest}).encode()
    n = len(cache.paths)
    blob = "\0".join(cache.paths).encode("utf-8")
    body = b"".join(
        [
            _HEAD.pack(MAGIC, VERSION, 0),
            struct.pack("<I", len(header)),
            header,
            struct.pack("<Q", n),
            struct.pack("<Q", len(blob)),
            blob,
            b"".join(cache.oids),
            _le(array("q", cache.sizes)),
            _le(array("i", cache.modes)),
            b"".join(UNKNOWN_KEY if k is None else k for k in cache.keys),
        ]
    )
    return body + digest_bytes(body)


def decode(data: bytes, racy_after_ns: int) -> StatCache | None:
    """Parse a cache; ``None`` if it is not a valid cache of this version.

    Entries whose mtime or ctime is at or after ``racy_after_ns`` (the cache file's
    mtime) get the unknown key, so they are re-hashed.
    """
    try:
        if len(data) < _HEAD.size + DIGEST_SIZE or digest_bytes(data[:-DIGEST_SIZE]) != data[-DIGEST_SIZE:]:
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
        paths = data[pos : pos + blen].decode("utf-8").split("\0") if n else []
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
        key_block = data[pos : pos + ksize * n]
        pos += ksize * n
        if len(paths) != n or pos != len(data) - DIGEST_SIZE:
            return None
        keys: list[StatKey | None] = [key_block[i : i + ksize] for i in range(0, ksize * n, ksize)]
        if sys.byteorder != "little":
            for a in (sizes, modes):
                a.byteswap()
        # Racy-git: rows not older than the cache itself are never trusted. The header
        # records the newest mtime/ctime, so a settled cache needs no pass over its rows.
        newest = header.get("newest_ns")
        if n and (not isinstance(newest, int) or newest >= racy_after_ns):
            words = array("q")
            words.frombytes(key_block)
            if sys.byteorder != "little":
                words.byteswap()
            mt, ct = words[1::5], words[2::5]
            for i in range(n):
                if mt[i] >= racy_after_ns or ct[i] >= racy_after_ns:
                    keys[i] = None
        return StatCache(header.get("commit"), header.get("manifest"), paths, None, sizes, modes, keys, oid_blob=oid_blob)
    except (ValueError, struct.error, UnicodeDecodeError, KeyError, AttributeError):
        return None


def load(path: str) -> StatCache | None:
    """Read the cache file at ``path``; ``None`` when missing or invalid."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        chunks = []
        while c := os.read(fd, 1 << 24):
            chunks.append(c)
    except OSError:
        return None
    finally:
        os.close(fd)
    return decode(b"".join(chunks), st.st_mtime_ns)


def save(path: str, cache: StatCache) -> None:
    """Write the cache atomically (not fsynced: losing it costs a re-hash, never data)."""
    atomic_write_bytes(path, encode(cache), durable=False)
