"""What gc and fsck ask of a local store: re-verify copies, follow chunk lists, recheck the quarantine, repack.

Kept apart from :mod:`dsv.store.local` (reads and writes of a healthy store),
as :mod:`dsv.store.repair` is: only ``dsv gc`` and ``dsv fsck`` call these.
"""

from __future__ import annotations

import bisect
import os
import time

from dsv.base.errors import CorruptObjectError, DsvError, ObjectNotFoundError
from dsv.base.fsio import fsync_dir
from dsv.base.hashing import Hasher, digest_bytes, from_hex, hash_bytes
from dsv.store.base import CHUNK_SIZE
from dsv.store.local import LoadedPack, LocalObjectStore, StoredCopy
from dsv.store.pack import Encoding, PackWriter, decode_chunk_list, decode_payload


def verify_copy(store: LocalObjectStore, copy: StoredCopy) -> str:
    """Re-hash one stored copy; return the actual hex hash (``<truncated>``/``<undecodable>`` if unreadable)."""
    if copy.kind == "pack":
        pack = next(p for p in store._load_packs() if p.pack_path == copy.location)
        i = bisect.bisect_left(pack.index.ids, from_hex(copy.oid))
        if pack.encoding(i) == Encoding.CHUNKED:
            return _verify_chunked(store, copy.oid, pack, i)
        stored, size, encoding = store._stored_record(pack, i)
        if size < 0:
            return "<truncated>"
        try:
            return hash_bytes(decode_payload(stored, size, encoding))
        except ValueError:
            return "<undecodable>"
    hasher = Hasher()
    with open(copy.location, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            hasher.update(chunk)
    return hasher.hexdigest()


def _verify_chunked(store: LocalObjectStore, oid: str, pack: LoadedPack, row: int) -> str:
    stored, size, _ = store._stored_record(pack, row)
    try:
        chunks = decode_chunk_list(stored, size)
    except ValueError:
        return "<bad chunk list>"
    hasher = Hasher()
    for raw, n in chunks:
        try:
            data = store.read(raw.hex())
        except ObjectNotFoundError:
            return f"<missing chunk {raw.hex()}>"
        except CorruptObjectError:
            return f"<corrupt chunk {raw.hex()}>"
        if len(data) != n:
            return "<chunk of the wrong length>"
        hasher.update(data)
    return hasher.hexdigest()


def chunk_owners(store: LocalObjectStore, chunks: set[bytes]) -> dict[bytes, list[bytes]]:
    """For each of ``chunks``, the chunked objects that list it."""
    out: dict[bytes, list[bytes]] = {}
    for pack in store._load_packs():
        encodings = pack.index.encodings
        if encodings is None:
            continue
        for row, enc in enumerate(encodings):
            if enc == Encoding.CHUNKED:
                stored, size, _ = store._stored_record(pack, row)
                try:
                    listed = decode_chunk_list(stored, size)
                except ValueError:
                    continue
                for raw, _ in listed:
                    if raw in chunks:
                        out.setdefault(raw, []).append(pack.index.ids[row])
    return out


def chunks_reached(store: LocalObjectStore, raws: set[bytes]) -> set[bytes]:
    """Chunk ids of the chunked objects among ``raws`` (gc keeps them alive)."""
    out: set[bytes] = set()
    for pack in store._load_packs():
        encodings = pack.index.encodings
        if encodings is None:
            continue
        for row, enc in enumerate(encodings):
            if enc == Encoding.CHUNKED and pack.index.ids[row] in raws and not store.is_quarantined(pack, row):
                stored, size, _ = store._stored_record(pack, row)
                try:
                    out.update(raw for raw, _ in decode_chunk_list(stored, size))
                except ValueError:
                    continue
    return out


def recheck_quarantined(store: LocalObjectStore) -> int:
    """Re-verify every quarantined packed record; release those that now verify. Returns how many.

    A quarantine entry is a claim, not a verdict: a one-off bad read (or a stray
    file in ``quarantine/``) must never make gc drop the only copy of an object.
    """
    released = 0
    packs = {p.name: p for p in store._load_packs()}
    for q in store.quarantined():
        pack = packs.get(q.origin)
        if pack is None:
            continue
        raw = from_hex(q.oid)
        i = bisect.bisect_left(pack.index.ids, raw)
        if i >= len(pack.index.ids) or pack.index.ids[i] != raw:
            continue
        try:
            if pack.encoding(i) == Encoding.CHUNKED:
                stored, size, _ = store._stored_record(pack, i)
                decode_chunk_list(stored, size)
            else:
                stored, size, encoding = store._stored_record(pack, i)
                if size < 0 or digest_bytes(decode_payload(stored, size, encoding)) != raw:
                    continue
        except (ValueError, DsvError):
            continue
        store.drop_quarantined(q)
        released += 1
    return released


def orphan_packs(store: LocalObjectStore, *, older_than: float = 0.0) -> list[str]:
    """Pack files with no index (a lost index, or a commit that died while publishing)."""
    try:
        names = set(os.listdir(store.packs_dir))
    except FileNotFoundError:
        return []
    out = []
    for n in sorted(names):
        if n.startswith("pack-") and n.endswith(".pack") and n[:-5] + ".idx" not in names:
            path = os.path.join(store.packs_dir, n)
            try:
                if time.time() - os.stat(path).st_mtime >= older_than:
                    out.append(path)
            except FileNotFoundError:
                continue
    return out


def repack(store: LocalObjectStore, packs: list[LoadedPack], keep: set[bytes]) -> int:
    """Rewrite ``packs`` into one new pack holding only the ids in ``keep`` (gc only).

    Every kept object is verified while copied (stored bytes and encoding are
    copied as they are); a copy that fails is quarantined and left out. The new
    pack is published and made durable before the old ones are deleted.
    Returns the number of copies quarantined.
    """
    store._prepare_write()
    writer = PackWriter(os.path.join(store.tmp_dir, f"{os.getpid()}-{os.urandom(16).hex()}.pack"))
    copied: set[bytes] = set()
    bad = 0
    try:
        for pack in packs:
            for row, raw in enumerate(pack.index.ids):
                if raw not in keep or raw in copied or store.is_quarantined(pack, row):
                    continue
                stored, size, encoding = store._stored_record(pack, row)
                ok = size >= 0
                if ok:
                    try:
                        if encoding == Encoding.CHUNKED:
                            decode_chunk_list(stored, size)  # its chunks are objects, checked on their own
                        else:
                            ok = digest_bytes(decode_payload(stored, size, encoding)) == raw
                    except ValueError:
                        ok = False
                if not ok:
                    store._quarantine_packed(raw.hex(), pack, row)
                    bad += 1
                    continue
                writer.append(raw, stored, size, Encoding(encoding))
                copied.add(raw)
    except BaseException:
        writer.discard()
        raise
    if writer.entries:
        index_bytes = writer.finish()
        store._publish_pack(writer.path, index_bytes)
    else:
        writer.discard()
    fsync_dir(store.packs_dir)
    for pack in packs:
        store.remove_pack(pack)
    fsync_dir(store.packs_dir)
    return bad
