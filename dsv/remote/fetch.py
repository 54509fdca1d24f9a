"""Fetch: bring what the remote's refs need into the local store, verified, then move local refs.

1. Read ``refs.json`` (one request). Tips already held locally need nothing:
   a no-op fetch ends after that request.
2. List the remote's pack indexes. A full fetch downloads each ``meta-*``
   pack it lacks whole (manifests, commits, tags, metrics records, chunk
   lists: small), so walking the history costs no round trip per commit. A
   partial fetch (``depth``, ``paths``) fetches level by level instead, only
   the commits, manifest chunks and files asked for.
3. Fetch the missing file contents by ranged requests, coalesced per pack and
   in parallel; a chunked file's list names the chunks still missing, fetched
   in a second round.
4. Store, verifying every record against its id (a chunk list against the
   hash of its chunks): file contents, chunks and manifests first, then chunk
   lists, commits, tags and metrics records. Only then move local refs:
   remote branches become ``refs/remotes/<remote>/<branch>``; tags and metrics
   records are created when absent (an existing tag is never clobbered).

A record that does not verify stops the fetch with the object and the remote
named; what was stored before it had verified, and nothing of it is kept.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from dsv.base.errors import CorruptMetadataError, CorruptObjectError, ObjectNotFoundError, RemoteCorruptError
from dsv.base.progress import NullProgress, Progress
from dsv.history.refs import RefStore
from dsv.remote.graph import Needs, peel, read_commit_doc, root_chunks, snapshot_needs
from dsv.remote.repo import RemoteRepo
from dsv.remote.results import FetchResult, RefStatus, RefUpdate, TransferStats
from dsv.store.base import ObjectStore, ObjectWriter, StoredRecord
from dsv.store.pack import Encoding, decode_payload

BATCH = 4096
CHECKPOINT_BYTES = 64 * 1024 * 1024
"""A fetch publishes what it has verified every this many bytes, so an interrupted fetch resumes there."""


class _Fetcher:
    """One fetch's state: records fetched but not yet stored, and counters."""

    def __init__(self, local: ObjectStore, remote: RemoteRepo, progress: Progress) -> None:
        self.local = local
        self.remote = remote
        self.store = remote.store
        self.progress = progress
        self.meta: dict[str, StoredRecord] = {}
        self.objects = 0
        self.bytes = 0

    def _count(self, n: int) -> None:
        self.bytes += n

    # -- metadata --------------------------------------------------------------------

    def prefetch_meta_packs(self) -> None:
        """Download whole every ``meta-*`` pack holding something not held locally."""
        packs = [p for p in self.store.packs().values() if p.is_meta]
        wanted = []
        for p in packs:
            missing = [i for i, raw in enumerate(p.index.ids) if not self.local.has(raw.hex())]
            if missing:
                wanted.append((p, missing))
        if not wanted:
            return
        bodies = self.store.pool().map(lambda item: self.store.fs.get(f"packs/{item[0].name}.pack"), wanted)
        for (pack, rows), body in zip(wanted, bodies):
            if body is None:
                continue  # deleted by a remote gc meanwhile: the walk fetches what it still needs by record
            self.bytes += len(body)
            for row in rows:
                raw = pack.index.ids[row]
                rec = self.store.record_from(pack.name, body, 0, pack.index.offsets[row], pack.index.lengths[row], raw)
                self.meta[rec.oid] = rec

    def need_meta(self, oids: Iterable[str]) -> None:
        """Fetch, in one batch, the metadata objects among ``oids`` not fetched or held yet."""
        missing = list(dict.fromkeys(o for o in oids if o not in self.meta and not self.local.has(o)))
        if not missing:
            return
        for rec in self._records(missing, "metadata"):
            self.meta[rec.oid] = rec

    def _records(self, oids: list[str], what: str) -> Iterable[StoredRecord]:
        try:
            yield from self.store.read_records(oids, on_bytes=self._count)
        except ObjectNotFoundError as err:
            raise RemoteCorruptError(self.remote.display, err.oid, f"is missing on the remote ({what} a ref needs)") from None

    def read(self, oid: str) -> bytes:
        """A metadata object's bytes: fetched (verified) or local."""
        rec = self.meta.get(oid)
        if rec is None:
            return self.local.read(oid)
        if rec.encoding == Encoding.CHUNKED:
            raise CorruptObjectError(oid, "<chunk list>", reason="a chunk list where a document or manifest was expected")
        return decode_payload(rec.stored, rec.size, rec.encoding)

    # -- storing ---------------------------------------------------------------------

    def add(self, writer: ObjectWriter, rec: StoredRecord) -> None:
        """Store one record, verified; a mismatch names the object and the remote."""
        try:
            if writer.add_record(rec):
                self.objects += 1
        except CorruptObjectError as err:
            detail = err.message.split(": ", 1)[-1]
            raise RemoteCorruptError(self.remote.display, rec.oid, f"does not verify ({detail})") from None
        except ObjectNotFoundError as err:
            raise RemoteCorruptError(self.remote.display, rec.oid, f"names chunk {err.oid}, which the remote lacks") from None

    def store_objects(self, files: list[str], meta: list[str], docs: list[str]) -> None:
        """Fetch and store ``files`` with their chunks and the ``meta`` objects; then chunk lists and ``docs``."""
        local = self.local
        first = local.begin_write()
        chunk_lists: list[StoredRecord] = []
        pending = 0

        def checkpoint(nbytes: int) -> None:
            # Verified objects no ref reaches yet are harmless (gc removes them if never used);
            # publishing them now means a fetch killed later does not download them again.
            nonlocal first, pending
            pending += nbytes
            if pending >= CHECKPOINT_BYTES:
                first.commit()
                first = local.begin_write()
                pending = 0

        try:
            from_meta = [f for f in files if f in self.meta]
            rest = [f for f in files if f not in self.meta]
            for f in from_meta:
                rec = self.meta[f]
                if rec.encoding == Encoding.CHUNKED:
                    chunk_lists.append(rec)
                else:
                    self.add(first, rec)
                self.progress.advance(1, rec.size)
            for i in range(0, len(rest), BATCH):
                for rec in self._records(rest[i : i + BATCH], "a file"):
                    if rec.encoding == Encoding.CHUNKED:
                        chunk_lists.append(rec)
                    else:
                        self.add(first, rec)
                        checkpoint(len(rec.stored))
                    self.progress.advance(1, rec.size)
            chunks: list[str] = []
            seen: set[str] = set()
            for rec in chunk_lists:
                try:
                    listed = rec.chunks()
                except ValueError:
                    raise RemoteCorruptError(self.remote.display, rec.oid, "has a malformed chunk list") from None
                for raw, _ in listed:
                    h = raw.hex()
                    if h not in seen:
                        seen.add(h)
                        chunks.append(h)
            chunks = [c for c in chunks if not local.has(c)]
            for i in range(0, len(chunks), BATCH):
                for rec in self._records(chunks[i : i + BATCH], "a chunk"):
                    self.add(first, rec)
                    checkpoint(len(rec.stored))
            for m in meta:
                if m in self.meta:
                    self.add(first, self.meta[m])
            first.commit()
        except BaseException:
            first.abort()
            raise
        second = local.begin_write()
        try:
            for rec in chunk_lists:
                self.add(second, rec)  # verified against the hash of its (now stored) chunks
            for d in docs:
                if d in self.meta:
                    self.add(second, self.meta[d])
            second.commit()
        except BaseException:
            second.abort()
            raise


def fetch_objects(local: ObjectStore, remote: RemoteRepo, oids: Iterable[str], *, progress: Progress | None = None) -> TransferStats:
    """Fetch objects by id (a promisor store filling a partial clone): files with their chunks, verified."""
    started = time.monotonic()
    r0 = remote.requests
    f = _Fetcher(local, remote, progress or NullProgress())
    wanted = [o for o in dict.fromkeys(oids) if not local.has(o)]
    present = remote.store.has_many(wanted)
    if len(present) < len(wanted):
        missing = next(o for o in wanted if o not in present)
        raise ObjectNotFoundError(missing, context=f"partial clone; the remote {remote.display} does not have it either")
    f.store_objects(wanted, [], [])
    return TransferStats(f.objects, f.bytes, 0, remote.requests - r0, time.monotonic() - started)


def fetch(
    local: ObjectStore,
    refs: RefStore,
    remote: RemoteRepo,
    *,
    only: list[str] | None = None,
    depth: int | None = None,
    paths: list[str] | None = None,
    progress: Progress | None = None,
) -> FetchResult:
    """Fetch the remote's refs (``only``: these full ref names) and what they need (see the module docstring).

    ``depth`` limits history to that many commits per tip; ``paths`` limits the
    files fetched to those at or below the given paths (a partial clone: the
    rest is fetched on demand later).
    """
    started = time.monotonic()
    r0 = remote.requests
    progress = progress or NullProgress()
    doc, token = remote.refs.read()
    if token is None:
        remote.check_is_repository()
    selected = {n: v for n, v in doc.refs.items() if only is None or n in only}
    tips = [v for v in dict.fromkeys(selected.values()) if not local.has(v)]
    f = _Fetcher(local, remote, progress)
    if tips:
        remote.store.refresh()
        if depth is None and paths is None:
            f.prefetch_meta_packs()
        try:
            _walk_and_store(f, tips, depth, paths)
        except CorruptMetadataError as err:
            # What a remote's refs name did not parse: the remote is damaged or forged, not this repository.
            kind, _, oid = err.what.rpartition(" ")
            raise RemoteCorruptError(remote.display, oid, f"is not a valid {kind or 'object'}: {err.detail}") from None
    updates, warnings = _update_local_refs(refs, remote.name, selected)
    stats = TransferStats(f.objects, f.bytes, 0, remote.requests - r0, time.monotonic() - started)
    return FetchResult(remote.name, remote.display, tuple(updates), stats, tuple(warnings))


def _walk_and_store(f: _Fetcher, tips: list[str], depth: int | None, paths: list[str] | None) -> None:
    local = f.local
    f.need_meta(tips)
    docs: list[str] = []
    commit_tips: list[str] = []
    for t in tips:
        commit, via = peel(f.read, t)
        docs.extend(via)
        commit_tips.append(commit)
    commits: list[str] = []
    manifests: list[str] = []
    seen: set[str] = set()
    level = [c for c in dict.fromkeys(commit_tips) if not local.has(c)]
    n = 1
    while level:
        f.need_meta(level)
        nxt: list[str] = []
        for cid in level:
            if cid in seen:
                continue
            seen.add(cid)
            commit_doc = read_commit_doc(f.read, cid)
            commits.append(cid)
            manifests.append(commit_doc.manifest)
            if depth is None or n < depth:
                nxt.extend(p for p in commit_doc.parents if p not in seen and not local.has(p))
        level = nxt
        n += 1
    # A commit held locally but reached again (a shallow clone deepened) needs nothing more.
    f.need_meta(manifests)
    from dsv.manifest import decode_root

    chunk_ids: list[str] = []
    for m in dict.fromkeys(manifests):
        chunk_ids.extend(root_chunks(decode_root(f.read(m), what=f"manifest {m}"), paths))
    f.need_meta(chunk_ids)
    needs = Needs()
    for m in dict.fromkeys(manifests):
        snapshot_needs(f.read, m, needs, paths=paths)
    files = [o for o in needs.files if not local.has(o)]
    meta = [m for m in needs.meta if not local.has(m)]
    f.progress.start("fetching", len(files), sum(needs.files[o] for o in files))
    try:
        f.store_objects(files, meta, commits[::-1] + docs)
    finally:
        f.progress.finish()


def _update_local_refs(refs: RefStore, remote: str, selected: dict[str, str]) -> tuple[list[RefUpdate], list[str]]:
    """Remote branches to ``refs/remotes/<remote>/``; tags and metrics records created when absent."""
    updates: list[RefUpdate] = []
    warnings: list[str] = []
    for name, oid in sorted(selected.items()):
        if name.startswith("refs/heads/"):
            local_name = f"refs/remotes/{remote}/{name[len('refs/heads/'):]}"
            old = refs.read(local_name)
            if old == oid:
                continue
            refs.update(local_name, oid, expected=old, check=False)
            updates.append(RefUpdate(local_name, old, oid, RefStatus.CREATED if old is None else RefStatus.FAST_FORWARD))
            continue
        old = refs.read(name)
        if old == oid:
            continue
        if old is not None:
            updates.append(RefUpdate(name, old, oid, RefStatus.REJECTED, "would clobber an existing local ref"))
            warnings.append(f"{name} differs on {remote}; kept the local one")
            continue
        refs.update(name, oid, expected=None)
        updates.append(RefUpdate(name, None, oid, RefStatus.CREATED))
    return updates, warnings
