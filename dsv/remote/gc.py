"""Remote gc: delete the remote's packs that no remote ref reaches, safely against concurrent pushes.

A push relies on objects it finds already present and does not upload, so gc
must never delete those while the push is in flight. The protocol
(docs/remotes.md, "Remote gc"):

Push (:mod:`dsv.remote.push`)
  P1. create ``inflight/<id>.json`` (its modification time is the push's start);
  P2. list and read the pack indexes;
  P3. write ``inflight/<id>.packs``: the packs holding objects it will not upload;
  P4. upload its packs, swap ``refs.json``, delete both lease objects.

Gc
  G1. take ``gc.lock`` (create-only); its modification time is "now" on the
      server's clock (no client clock is trusted);
  G2. read ``refs.json``, then list the packs (pushes publish packs before
      refs, so the listing holds all the refs reach), and walk everything it
      reaches (any problem: stop, delete nothing);
  G3. candidates: packs holding unreachable objects, older than the grace
      period, older than every live lease (a pack a push uploads is newer than
      its lease), and listed in no live lease's ``.packs``; a live lease
      without ``.packs`` yet protects every pack (the push is between P1 and P3);
  G4. a candidate with reachable objects is rewritten first: a new pack with
      only those is uploaded and published;
  G5. *hide* every candidate (delete its ``.idx``: no new reader relies on it);
  G6. list the leases again: a live lease that appeared meanwhile and names a
      hidden pack, or has no ``.packs`` yet, gets the pack's index put back;
  G7. read ``refs.json`` again: if it changed since G2, every hidden pack is
      put back (a push finished during G5, on indexes read before some were
      hidden; the walk of G2 does not know what it reaches);
  G8. delete the remaining hidden ``.pack`` files.

Why it is safe: a push still running at G6 is protected by its lease; a push
that finished before G6 but after G2 moved the refs, which G7 sees; a push
whose lease came after G6 started P2 after G5, so it never saw the hidden
packs and uploads its own copies. Leases older than their time-to-live
(default 1 day; a push taking longer loses its protection) are deleted as
left by crashed pushes.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass

from dsv.base.errors import CorruptMetadataError, DsvError, RemoteBusyError
from dsv.remote.graph import Needs, ancestors, peel, snapshot_needs
from dsv.remote.repo import INFLIGHT, RemoteRepo
from dsv.remote.results import RemoteGcResult
from dsv.store.pack import Encoding, decode_payload
from dsv.store.remote import RemotePack
from dsv.store.remotefs import Entry

LEASE_TTL = 24 * 3600.0
"""A push lease older than this is taken as left by a crash."""
GC_LOCK = "gc.lock"
CLOCK_SLACK = 5.0
"""Seconds of slack when comparing times of objects written by different requests."""


@dataclass
class _Leases:
    live: list[Entry]
    expired: list[Entry]
    relied: set[str]
    unknown: bool
    """A live lease has not said yet which packs it relies on: protect everything."""

    @property
    def oldest(self) -> float | None:
        return min((e.mtime for e in self.live), default=None)


def _leases(remote: RemoteRepo, now: float, ttl: float) -> _Leases:
    entries = remote.fs.list(INFLIGHT)
    starts = {e.name[: -len(".json")]: e for e in entries if e.name.endswith(".json")}
    packs = {e.name[: -len(".packs")] for e in entries if e.name.endswith(".packs")}
    live = [e for e in starts.values() if e.mtime > now - ttl]
    expired = [e for e in starts.values() if e.mtime <= now - ttl]
    relied: set[str] = set()
    unknown = False
    for lease_id, entry in starts.items():
        if entry not in live:
            continue
        if lease_id not in packs:
            unknown = True
            continue
        data = remote.fs.get(f"{INFLIGHT}/{lease_id}.packs")
        try:
            relied.update(json.loads(data or b"{}").get("packs", []))
        except (ValueError, AttributeError):
            unknown = True
    return _Leases(live, expired, relied, unknown)


def _take_lock(remote: RemoteRepo) -> float:
    """Create ``gc.lock``; return the server's "now" (its modification time)."""
    body = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}).encode()
    for _ in range(2):
        if remote.fs.put_immutable(GC_LOCK, body):
            break
        held = [e for e in remote.fs.list("") if e.name == GC_LOCK]
        if held and held[0].mtime < time.time() - LEASE_TTL:
            remote.fs.delete(GC_LOCK)  # left by a crashed gc a day ago
            continue
        raise RemoteBusyError(remote.display, f"another gc holds {GC_LOCK}", hint=f"wait for it; if it crashed, delete {GC_LOCK} on the remote")
    else:
        raise RemoteBusyError(remote.display, f"cannot take {GC_LOCK}")
    mine = [e for e in remote.fs.list("") if e.name == GC_LOCK]
    return mine[0].mtime if mine and mine[0].mtime else time.time()


def gc_remote(remote: RemoteRepo, grace_seconds: float, *, lease_ttl: float = LEASE_TTL) -> RemoteGcResult:
    """Run the protocol of the module docstring on ``remote``."""
    remote.check_is_repository()
    now = _take_lock(remote)
    try:
        return _gc(remote, grace_seconds, lease_ttl, now)
    finally:
        remote.fs.delete(GC_LOCK)


def _gc(remote: RemoteRepo, grace: float, ttl: float, now: float) -> RemoteGcResult:
    store = remote.store
    # Refs before packs: a push publishes its packs before its refs, so every object the refs
    # read here reach is in the listing that follows (a listing taken first could miss them).
    refs_seen = remote.refs.read()[0].refs
    store.refresh()
    packs = store.packs()
    damaged = store.damaged_indexes()
    if damaged:
        raise CorruptMetadataError(f"remote pack index {damaged[0][0]}", damaged[0][1], hint="remote gc stopped without deleting anything")
    keep = _reachable(remote, packs, refs_seen)
    leases = _leases(remote, now, ttl)
    for e in leases.expired:
        remote.fs.delete(f"{INFLIGHT}/{e.name[:-5]}.packs")
        remote.fs.delete(f"{INFLIGHT}/{e.name}")
    oldest = leases.oldest
    skipped: list[str] = []
    candidates: list[tuple[RemotePack, list[int]]] = []
    kept = 0
    for name, pack in sorted(packs.items()):
        live_rows = [i for i, raw in enumerate(pack.index.ids) if raw in keep]
        if len(live_rows) == len(pack.index.ids):
            kept += 1
            continue
        if pack.mtime > now - grace:
            kept += 1
            continue
        if leases.unknown or name in leases.relied or (oldest is not None and pack.mtime >= oldest - CLOCK_SLACK):
            skipped.append(f"{name}: a push in flight may rely on it")
            kept += 1
            continue
        candidates.append((pack, live_rows))
    removed_objects = removed_bytes = rewritten = 0
    for pack, live_rows in candidates:
        live = set(live_rows)
        removed_objects += len(pack.index.ids) - len(live)
        removed_bytes += sum(n for i, n in enumerate(pack.index.lengths) if i not in live)
        if live_rows:
            _rewrite(remote, pack, live_rows)
            rewritten += 1
    for pack, _ in candidates:
        store.hide_pack(pack.name)
    # G6: a push that started meanwhile may have read an index before it was hidden.
    again = _leases(remote, now, ttl)
    restore = {p.name for p, _ in candidates} if again.unknown else {p.name for p, _ in candidates if p.name in again.relied}
    # G6': a push that started while packs were being hidden, and finished before the leases were listed,
    # moved refs.json: what it reached was decided on a stale walk, so everything hidden comes back.
    if candidates and remote.refs.read()[0].refs != refs_seen:
        restore = {p.name for p, _ in candidates}
    deleted = 0
    for pack, _ in candidates:
        if pack.name in restore:
            store.restore_pack(pack)
            skipped.append(f"{pack.name}: a push started during gc relies on it")
            continue
        store.drop_pack(pack.name)
        deleted += 1
    # .pack files whose upload died before the index: garbage once older than grace and every live lease.
    latest = _leases(remote, now, ttl).oldest
    for e in store.orphan_packs():
        if e.mtime <= now - grace and (latest is None or e.mtime < latest - CLOCK_SLACK):
            remote.fs.delete(f"packs/{e.name}")
    store.refresh()
    return RemoteGcResult(
        remote.name,
        remote.display,
        packs_deleted=deleted,
        packs_rewritten=rewritten,
        objects_removed=removed_objects if not restore else 0,
        bytes_removed=removed_bytes if not restore else 0,
        packs_kept=kept + len(restore),
        leases_seen=len(leases.live),
        leases_expired=len(leases.expired),
        skipped=tuple(skipped),
    )


def _reachable(remote: RemoteRepo, packs: dict[str, RemotePack], refs: dict[str, str]) -> set[bytes]:
    """Raw ids of everything ``refs`` reach on the remote (metadata read from whole meta packs)."""
    store = remote.store
    records: dict[str, bytes] = {}
    chunked: dict[str, list[bytes]] = {}
    metas = [p for p in packs.values() if p.is_meta]
    bodies = store.pool().map(lambda p: remote.fs.get(f"packs/{p.name}.pack"), metas)
    for pack, body in zip(metas, bodies):
        if body is None:
            continue
        for row, raw in enumerate(pack.index.ids):
            rec = store.record_from(pack.name, body, 0, pack.index.offsets[row], pack.index.lengths[row], raw)
            if rec.encoding == Encoding.CHUNKED:
                chunked[rec.oid] = [c for c, _ in rec.chunks()]
            else:
                records[rec.oid] = decode_payload(rec.stored, rec.size, rec.encoding)

    def read(oid: str) -> bytes:
        got = records.get(oid)
        return got if got is not None else store.read(oid)

    keep: set[str] = set()
    tips = []
    try:
        for value in refs.values():
            commit, docs = peel(read, value)
            keep.update(docs)
            tips.append(commit)
        needs = Needs()
        for cid, commit_doc in ancestors(read, tips):
            keep.add(cid)
            snapshot_needs(read, commit_doc.manifest, needs)
    except DsvError as err:
        raise CorruptMetadataError(f"remote {remote.display}", str(err), hint="remote gc stopped without deleting anything") from None
    keep.update(needs.meta)
    keep.update(needs.files)
    out = {bytes.fromhex(o) for o in keep}
    for oid in needs.files:
        listed = chunked.get(oid)
        if listed is None and store.has(oid) and oid not in records:
            cl = store.chunk_list(oid)
            listed = [bytes.fromhex(c) for c, _ in cl] if cl else None
        if listed:
            out.update(listed)
    return out


def _rewrite(remote: RemoteRepo, pack: RemotePack, rows: list[int]) -> None:
    """Upload a new pack holding only ``rows`` of ``pack`` (verified while copied), published before the old one goes."""
    store = remote.store
    writer = store.begin_write(meta=pack.is_meta)
    try:
        for rec in store.read_rows(pack.name, rows):
            writer.copy_record(rec)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
