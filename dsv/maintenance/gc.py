"""``dsv gc``: prune what nothing reaches, after a grace period, never on doubt."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from dsv.base.errors import CorruptMetadataError, StorageError
from dsv.base.hashing import from_hex
from dsv.maintenance.reach import walk_reachable
from dsv.repository import Repository
from dsv.store.local import LoadedPack, damaged_what
from dsv.store.upkeep import chunks_reached, orphan_packs, recheck_quarantined, repack
from dsv.worktree.checkout import remove_leftovers, sweep_staging
from dsv.worktree.recycle import empty_recycle
from dsv.worktree.scan import find_leftovers


@dataclass
class GcReport:
    """What gc removed and kept."""

    objects_removed: int = 0
    bytes_removed: int = 0
    packs_rewritten: int = 0
    objects_kept: int = 0
    temp_files_removed: int = 0
    quarantined: int = 0
    """Copies found corrupt while repacking, set aside (not deleted)."""
    quarantine_dropped: int = 0
    """Saved corrupt copies deleted because a good copy exists or nothing needs the object."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


SMALL_PACK_BYTES = 64 * 1024 * 1024
"""Packs below this size are merged into one by gc (bigger ones are left: copying them costs as much as the data)."""


def gc(repo: Repository, grace_seconds: float) -> GcReport:
    """Delete objects unreachable from every ref and older than ``grace_seconds``; merge small packs.

    Runs under the repository write lock, so no commit is being written at the same
    time: a commit's objects become reachable (its ref moves) before it releases
    the lock. Pack files are rewritten without their dead objects; the new pack is
    published before the old one is deleted. Every commit writes a pack, and every
    command reads each pack's index (2,000 packs cost a no-op ``status`` ~30 ms), so
    the packs below :data:`SMALL_PACK_BYTES` that hold nothing to drop are merged
    into the same new pack (a young pack with dead objects is left for later, with
    its own mtime).
    """
    report = GcReport()
    store = repo.local_store
    with repo.write_lock():
        store.refresh()
        # A pack whose index was lost may hold the only copy of something: index it, never delete it.
        for orphan in orphan_packs(store):
            store.rebuild_index(orphan)
        recheck_quarantined(store)
        damaged = store.damaged_indexes()
        if damaged:
            raise CorruptMetadataError(
                damaged_what(damaged[0][0]), damaged[0][1], hint="gc stopped without deleting anything; run 'dsv fsck --repair' first"
            )
        reach = walk_reachable(repo)
        if reach.problems:
            first = reach.problems[0]
            raise CorruptMetadataError("repository", first.message, hint="gc stopped without deleting anything; run 'dsv fsck'")
        keep = {from_hex(o) for o in reach.objects}
        keep |= chunks_reached(store, keep)  # a big file's chunks live while any file uses them
        cutoff = time.time() - grace_seconds
        for c in list(store.loose_copies()):
            try:
                mtime = os.stat(c.location).st_mtime
            except FileNotFoundError:
                continue
            if from_hex(c.oid) in keep:
                report.objects_kept += 1
            elif mtime <= cutoff:
                store.remove_loose(c.oid)
                report.objects_removed += 1
                report.bytes_removed += c.size
        victims = []
        merged: list[LoadedPack] = []  # small packs with nothing to drop, merged into the new pack
        for pack in store.packs():
            # A quarantined copy is dead too: its bytes are saved under quarantine/.
            dead = [i for i, raw in enumerate(pack.index.ids) if raw not in keep or store.is_quarantined(pack, i)]
            try:
                st = os.stat(pack.pack_path)
            except FileNotFoundError:
                continue
            if dead and st.st_mtime <= cutoff:
                victims.append(pack)
                report.objects_removed += len(dead)
                report.bytes_removed += sum(pack.index.lengths[i] for i in dead)
            elif not dead and st.st_size < SMALL_PACK_BYTES:
                # Only packs with nothing to drop: a young pack holding dead objects keeps its
                # own mtime (a merged pack's would be now, and restart their grace period).
                merged.append(pack)
            report.objects_kept += len(pack.index) - len(dead)
        if len(merged) + len(victims) >= 2:
            victims += merged
        if victims:
            try:
                report.quarantined = repack(store, victims, keep)
            except OSError as err:
                raise StorageError("rewrite packs in", store.packs_dir, err) from err
            report.packs_rewritten = len(victims)
        for q in store.quarantined():
            try:
                old = os.stat(q.path).st_mtime <= cutoff
            except FileNotFoundError:
                continue
            if old and (q.oid not in reach.objects or store.has(q.oid)):
                store.drop_quarantined(q)
                report.quarantine_dropped += 1
        report.temp_files_removed = _sweep_temp(store.tmp_dir, cutoff) + _sweep_pack_temps(store.packs_dir, cutoff)
        # Checkout temp and staging files: under the write lock no checkout is live.
        report.temp_files_removed += remove_leftovers(repo.root, find_leftovers(repo.root)) + sweep_staging(repo.layout.dsv) + empty_recycle(repo.layout.dsv)
    return report


def _sweep_temp(tmp_dir: str, cutoff: float) -> int:
    removed = 0
    try:
        names = os.listdir(tmp_dir)
    except FileNotFoundError:
        return 0
    for n in names:
        p = os.path.join(tmp_dir, n)
        try:
            if os.stat(p).st_mtime <= cutoff:
                os.unlink(p)
                removed += 1
        except OSError:
            pass
    return removed


def _sweep_pack_temps(packs_dir: str, cutoff: float) -> int:
    removed = 0
    try:
        names = set(os.listdir(packs_dir))
    except FileNotFoundError:
        return 0
    for n in names:
        if ".tmp-" in n:
            p = os.path.join(packs_dir, n)
            try:
                if os.stat(p).st_mtime <= cutoff:
                    os.unlink(p)
                    removed += 1
            except OSError:
                pass
    return removed
