"""Repairing a pack: an index rebuilt from the pack's own records, damaged records dropped (``dsv fsck --repair``).

Kept apart from :mod:`dsv.store.local` (reads and writes of a healthy store):
only ``fsck --repair`` and ``gc`` (for packs left without an index) run it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from dsv.base.errors import CorruptMetadataError, StorageError
from dsv.base.fsio import atomic_write_bytes, fsync_dir
from dsv.base.hashing import digest_bytes
from dsv.store.local import LocalObjectStore
from dsv.store.pack import (
    PACK_HEADER,
    Encoding,
    PackWriter,
    ScannedRecord,
    check_pack_header,
    decode_chunk_list,
    decode_payload,
    encode_index,
    pack_name,
    scan_pack,
)


def rebuild_index(store: LocalObjectStore, path: str) -> tuple[int, int]:
    """Rebuild the index of a pack (given its ``.idx`` or ``.pack`` path); return ``(objects kept, records dropped)``.

    Every record is verified against its id. When all records are good the
    rebuilt index is identical to the original and is written in place;
    otherwise (or when the pack's header is damaged) the good objects move to
    a new pack (published first) and the damaged pack goes to
    ``quarantine/packs/``. A pack whose header is damaged is walked as each
    pack version, keeping the walk whose records verify.
    """
    store._prepare_write()
    base = os.path.basename(path).rsplit(".", 1)[0]
    idx_path = os.path.join(store.packs_dir, base + ".idx")
    pack_path = os.path.join(store.packs_dir, base + ".pack")
    try:
        fd = os.open(pack_path, os.O_RDONLY)
    except OSError as err:
        raise StorageError("open", pack_path, err) from err
    try:
        file_size = os.fstat(fd).st_size
        try:
            check_pack_header(os.pread(fd, PACK_HEADER.size, 0), what=f"pack {pack_path}")
            header_ok = True
            candidates: list[int | None] = [None]
        except CorruptMetadataError:
            header_ok = False
            candidates = [2, 1]
        best: tuple[int, list[tuple[bytes, int, int, int]], list[tuple[bytes, bytes, int, int]], int] | None = None
        for version_guess in candidates:
            version, records = scan_pack(fd, file_size, what=f"pack {pack_path}", version=version_guess)
            good, payloads, dropped = _verified_records(fd, records)
            if best is None or len(good) > len(best[1]):
                best = (version, good, payloads, dropped)
    finally:
        os.close(fd)
    assert best is not None
    version, good, payloads, dropped = best
    index_bytes = encode_index(good, version)
    if header_ok and not dropped and pack_name(index_bytes) == base[len("pack-") :]:
        atomic_write_bytes(idx_path, index_bytes, mode=0o444)
    else:
        writer = PackWriter(os.path.join(store.tmp_dir, f"{os.getpid()}-{os.urandom(16).hex()}.pack"))
        try:
            for raw, stored, size, encoding in payloads:
                writer.append(raw, stored, size, Encoding(encoding))
        except BaseException:
            writer.discard()
            raise
        new_base = None
        if writer.entries:
            new_base = store._publish_pack(writer.path, writer.finish())
        else:
            writer.discard()
        if new_base != base:
            # (The same name means the same records at the same offsets: the good pack
            # has just replaced the damaged file, and its index is in place.)
            try:
                os.unlink(idx_path)
            except FileNotFoundError:
                pass
            fsync_dir(store.packs_dir)
            # Keep the damaged pack's bytes for inspection instead of deleting them.
            damaged_dir = os.path.join(store.quarantine_dir, "packs")
            os.makedirs(damaged_dir, exist_ok=True)
            os.replace(pack_path, os.path.join(damaged_dir, base + ".pack"))
        fsync_dir(store.packs_dir)
    store.refresh()
    return len(good), dropped

def _verified_records(fd: int, records: Iterator[ScannedRecord]) -> tuple[list[tuple[bytes, int, int, int]], list[tuple[bytes, bytes, int, int]], int]:
    good: list[tuple[bytes, int, int, int]] = []
    payloads: list[tuple[bytes, bytes, int, int]] = []
    dropped = 0
    for rec in records:
        stored = os.pread(fd, rec.stored_length, rec.offset)
        try:
            if rec.encoding == Encoding.CHUNKED:
                decode_chunk_list(stored, rec.size)
            elif digest_bytes(decode_payload(stored, rec.size, rec.encoding)) != rec.raw_id:
                raise ValueError("hash mismatch")
        except ValueError:
            dropped += 1
            continue
        good.append((rec.raw_id, rec.offset, rec.stored_length, rec.encoding))
        payloads.append((rec.raw_id, stored, rec.size, rec.encoding))
    return good, payloads, dropped


def set_aside_index(store: LocalObjectStore, path: str) -> str:
    """Move the index of a pack whose file is missing to ``quarantine/packs/`` and return where it went.

    Nothing can be rebuilt from a pack that is gone; its objects count as missing
    (fsck lists who needs them), and the index is kept as the record of what was lost.
    """
    store._prepare_write()
    base = os.path.basename(path).rsplit(".", 1)[0]
    idx_path = os.path.join(store.packs_dir, base + ".idx")
    damaged_dir = os.path.join(store.quarantine_dir, "packs")
    target = os.path.join(damaged_dir, base + ".idx")
    try:
        os.makedirs(damaged_dir, exist_ok=True)
        os.replace(idx_path, target)
        fsync_dir(store.packs_dir)
        fsync_dir(damaged_dir)
    except OSError as err:
        raise StorageError("move", idx_path, err) from err
    store.refresh()
    return target
