"""Push: send a remote what its refs will need, then move the refs by compare-and-swap.

1. Read the remote's ``refs.json`` (one request). Refs already at the local
   value are done; a no-op push ends here, whatever the repository's size.
2. Refuse what is not a fast-forward (unless forced): the remote tip must be a
   local commit and an ancestor of the new one, else "fetch first".
3. Take a lease (``inflight/``), list the remote's pack indexes (its *have*
   summary), and walk the local history from the new tips, stopping at commits
   the remote refs already reach. Chunks of the remote tips' manifests are
   skipped unread: everything they name is there.
4. Upload what the remote lacks: file contents and chunks in ``pack-*`` packs,
   then chunk lists, manifests, commits, tags and metrics records in
   ``meta-*`` packs. Packs are ~32 MiB, uploaded in parallel, each create-only
   and published by its index, so an interrupted push resumes where it stopped.
5. Swap ``refs.json``: each ref moves only if the remote still holds the value
   this push was based on; a lost race is reported as rejected (fetch first).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dsv.base.errors import ObjectNotFoundError
from dsv.base.progress import NullProgress, Progress
from dsv.remote.graph import Needs, ancestors, chunks_of_roots, is_ancestor, peel, reachable_commits, read_commit_doc, snapshot_needs
from dsv.remote.refs import RefsDocument
from dsv.remote.repo import RemoteRepo
from dsv.remote.results import PushResult, RefStatus, RefUpdate, TransferStats
from dsv.store.base import ObjectStore
from dsv.store.chunking import CHUNKED_THRESHOLD
from dsv.store.pack import Encoding

_UNSET = object()
BATCH = 2048
"""Records read from the local store per batch."""


@dataclass(frozen=True)
class PushSpec:
    """One ref to push: the remote ref, the local value (``None`` deletes), and how forcefully.

    ``lease`` is the value the remote ref must still hold (``--force-with-lease``:
    the remote-tracking ref); ``force`` skips the fast-forward check. Even a
    forced push swaps against the value it read, so a concurrent push is never
    silently overwritten.
    """

    ref: str
    new: str | None
    force: bool = False
    lease: object = _UNSET

    @property
    def has_lease(self) -> bool:
        """Whether an expected remote value was given."""
        return self.lease is not _UNSET


def push(local: ObjectStore, remote: RemoteRepo, specs: list[PushSpec], *, progress: Progress | None = None) -> PushResult:
    """Push ``specs`` to ``remote`` (see the module docstring for the protocol)."""
    started = time.monotonic()
    requests0 = remote.requests
    progress = progress or NullProgress()
    doc, _ = remote.refs.read()
    results: dict[str, RefUpdate] = {}
    todo: list[tuple[PushSpec, str | None]] = []
    for spec in specs:
        current = doc.refs.get(spec.ref)
        verdict = _check(local, spec, current)
        if verdict is not None:
            results[spec.ref] = verdict
        else:
            todo.append((spec, current))
    stats = TransferStats()
    if todo:
        stats = _send_and_swap(local, remote, doc, todo, results, progress)
    ordered = tuple(results[s.ref] for s in specs)
    return PushResult(
        remote.name,
        remote.display,
        ordered,
        TransferStats(stats.objects, stats.bytes, stats.packs, remote.requests - requests0, time.monotonic() - started),
    )


def _check(local: ObjectStore, spec: PushSpec, current: str | None) -> RefUpdate | None:
    """A ref's verdict before anything is sent (``None``: it needs sending)."""
    if current == spec.new:
        return RefUpdate(spec.ref, current, spec.new, RefStatus.UP_TO_DATE)
    if spec.has_lease:
        if current != spec.lease:
            return RefUpdate(spec.ref, current, spec.new, RefStatus.REJECTED, "stale info: the remote ref moved since you last fetched")
        return None
    if spec.force or current is None:
        return None
    if spec.new is None:
        return RefUpdate(spec.ref, current, None, RefStatus.REJECTED, "deleting a remote ref needs --force")
    if spec.ref.startswith(("refs/tags/", "refs/metrics/")):
        return RefUpdate(spec.ref, current, spec.new, RefStatus.REJECTED, "already exists")
    if not local.has(current):
        return RefUpdate(spec.ref, current, spec.new, RefStatus.REJECTED, "fetch first: the remote has commits you do not have")
    try:
        new_commit, _ = peel(local.read, spec.new)
    except ObjectNotFoundError:
        return RefUpdate(spec.ref, current, spec.new, RefStatus.REJECTED, "the local value is missing")
    if not is_ancestor(local.read, current, new_commit):
        return RefUpdate(spec.ref, current, spec.new, RefStatus.REJECTED, "non-fast-forward: the remote tip is not an ancestor of yours")
    return None


def _send_and_swap(
    local: ObjectStore, remote: RemoteRepo, doc: RefsDocument, todo: list[tuple[PushSpec, str | None]], results: dict[str, RefUpdate], progress: Progress
) -> TransferStats:
    store = remote.store
    remote.ensure_initialized()
    with remote.lease() as lease:
        store.refresh()
        store.packs()  # the have summary: one listing, plus the indexes not cached yet
        # Commits the remote refs reach and we hold: their closure is complete on the remote.
        remote_tips = [v for v in doc.refs.values() if local.has(v)]
        known_tips = []
        for v in remote_tips:
            try:
                known_tips.append(peel(local.read, v)[0])
            except ObjectNotFoundError:
                continue
        known = reachable_commits(local.read, known_tips)
        skip_chunks = chunks_of_roots(local.read, [read_commit_doc(local.read, c).manifest for c in known_tips if c in known])
        needs = Needs()
        commit_tips = []
        for spec, _ in todo:
            if spec.new is None:
                continue
            commit, docs = peel(local.read, spec.new)
            for d in docs:
                needs.add_meta(d)
            commit_tips.append(commit)
        commits = list(ancestors(local.read, commit_tips, stop=known))
        for _cid, commit_doc in commits:
            snapshot_needs(local.read, commit_doc.manifest, needs, skip_chunks=skip_chunks)
        for cid, _ in commits:
            needs.add_meta(cid)
        # Documents go last: tags and metrics records named by the refs were added first; move them after the commits.
        docs_first = [m for m in needs.meta if m not in {c for c, _ in commits} and _is_doc(local, m)]
        meta = [m for m in needs.meta if m not in docs_first] + docs_first
        present = store.has_many(list(needs.files) + meta)
        # The chunks of big files count too: those found present are relied on as much as whole
        # files are, so their packs go in the one .packs a remote gc honours (docs/remotes.md §7).
        chunks = _chunks_of(local, [f for f, size in needs.files.items() if size >= CHUNKED_THRESHOLD])
        chunks_present = store.has_many(chunks)
        lease.rely_on(store.packs_holding(present | chunks_present))
        files = [f for f in needs.files if f not in present]
        meta = [m for m in meta if m not in present]
        total_bytes = sum(needs.files[f] for f in files)
        progress.start("pushing", len(files) + len(meta), total_bytes)
        sent = _upload(local, remote, files, meta, progress, chunks_present)
        progress.finish()

        applied: dict[str, RefUpdate] = {}

        def change(current: RefsDocument) -> RefsDocument | None:
            applied.clear()
            refs = dict(current.refs)
            for spec, base in todo:
                now = refs.get(spec.ref)
                if now != base:
                    applied[spec.ref] = RefUpdate(spec.ref, now, spec.new, RefStatus.REJECTED, "fetch first: another push moved it meanwhile")
                    continue
                if spec.new is None:
                    refs.pop(spec.ref, None)
                    status = RefStatus.DELETED
                else:
                    refs[spec.ref] = spec.new
                    if base is None:
                        status = RefStatus.CREATED
                    elif spec.force or spec.has_lease:
                        status = RefStatus.FORCED if not is_ancestor(local.read, base, peel(local.read, spec.new)[0]) else RefStatus.FAST_FORWARD
                    else:
                        status = RefStatus.FAST_FORWARD
                applied[spec.ref] = RefUpdate(spec.ref, base, spec.new, status)
            if all(u.status == RefStatus.REJECTED for u in applied.values()):
                return None
            head = current.head if current.refs else _first_branch(todo, current.head)
            return current.model_copy(update={"refs": dict(sorted(refs.items())), "head": head})

        remote.refs.update(change)
        results.update(applied)
    return sent


def _first_branch(todo: list[tuple[PushSpec, str | None]], default: str) -> str:
    for spec, _ in todo:
        if spec.ref.startswith("refs/heads/"):
            return spec.ref[len("refs/heads/") :]
    return default


def _is_doc(local: ObjectStore, oid: str) -> bool:
    """Whether ``oid`` is a tag or metrics record (small documents read cheaply)."""
    from dsv.history.documents import document_type

    try:
        if local.size(oid) > 1 << 20:
            return False
        return document_type(local.read(oid)) in ("tag", "metrics")
    except ObjectNotFoundError:
        return False


def _chunks_of(local: ObjectStore, big: list[str]) -> list[str]:
    """The chunk ids of the chunked files among ``big`` (read from their local chunk lists)."""
    out: dict[str, None] = {}
    for i in range(0, len(big), BATCH):
        for rec in local.read_records(big[i : i + BATCH]):
            if rec.encoding == Encoding.CHUNKED:
                for raw, _ in rec.chunks():
                    out[raw.hex()] = None
    return list(out)


def _upload(local: ObjectStore, remote: RemoteRepo, files: list[str], meta: list[str], progress: Progress, have: set[str]) -> TransferStats:
    """Objects, then chunks, into data packs; then chunk lists and metadata into meta packs (write order)."""
    store = remote.store
    data = store.begin_write()
    data.on_progress = lambda n, b: progress.advance(n, b)
    chunk_lists = []
    try:
        for i in range(0, len(files), BATCH):
            for rec in local.read_records(files[i : i + BATCH]):
                if rec.encoding == Encoding.CHUNKED:
                    chunk_lists.append(rec)
                else:
                    data.add_record(rec)
        wanted: list[str] = []
        seen: set[str] = set()
        for rec in chunk_lists:
            for raw, _ in rec.chunks():
                h = raw.hex()
                if h not in seen:
                    seen.add(h)
                    wanted.append(h)
        wanted = [c for c in wanted if c not in have]  # ``have``: found present (and relied on) before the upload
        for i in range(0, len(wanted), BATCH):
            for rec in local.read_records(wanted[i : i + BATCH]):
                data.add_record(rec)
        data.commit()
    except BaseException:
        data.abort()
        raise
    docs = store.begin_write(meta=True)
    docs.on_progress = lambda n, b: progress.advance(n, b)
    try:
        for rec in chunk_lists:
            docs.add_record(rec)
        for i in range(0, len(meta), BATCH):
            for rec in local.read_records(meta[i : i + BATCH]):
                docs.add_record(rec)
        docs.commit()
    except BaseException:
        docs.abort()
        raise
    return TransferStats(data.objects_sent + docs.objects_sent, data.bytes_sent + docs.bytes_sent, len(data.published) + len(docs.published))


__all__ = ["PushSpec", "push"]
