"""A read-only view of a remote: its refs, and objects fetched on demand into a local store.

``dsv://REV@s3://bucket/penguins/...`` reads a version straight from a
remote, without a clone. The view reads ``refs.json`` once, resolves
revisions against it with the usual grammar (``v2``, ``main~1``, an id
prefix), and reads objects through a :class:`~dsv.remote.promisor.PromisorStore`:
an object is fetched from the remote the first time it is read, verified
against its id, and kept in a local store, so it is fetched once per cache,
not once per read. The local store is a repository's own store (a clone of
the same remote shares its objects) or a cache folder of the same format.

A big file (a chunk list) is read by range: the view reads its chunk list
from the remote and fetches only the chunks a read touches, each verified
against its id. The chunk list itself can be checked only against the whole
file's hash; it is stored locally (and so verified) once all its chunks have
arrived.
"""

from __future__ import annotations

import threading

from dsv.base.errors import CorruptObjectError, ObjectNotFoundError, RemoteCorruptError
from dsv.history.refs import HEADS, Head
from dsv.history.revisions import History
from dsv.remote.promisor import PromisorStore
from dsv.remote.refs import RefsDocument
from dsv.remote.repo import RemoteRepo
from dsv.store.local import LocalObjectStore
from dsv.store.pack import ChunkMap, Encoding


class RefsSnapshot:
    """The refs of a remote as read once, with the read-only interface :class:`History` needs."""

    def __init__(self, doc: RefsDocument) -> None:
        self.doc = doc

    def read(self, ref: str) -> str | None:
        """The id a full ref name points at, or ``None``."""
        return self.doc.refs.get(ref)

    def head(self) -> Head:
        """The remote's default branch (``head`` of ``refs.json``)."""
        return Head(self.doc.head, self.doc.refs.get(f"{HEADS}/{self.doc.head}"))


class RemoteView:
    """One remote read through a local store ``local``: refs read once, objects fetched on first read."""

    def __init__(self, remote: RemoteRepo, local: LocalObjectStore) -> None:
        self.remote = remote
        self.local = local
        doc, token = remote.refs.read()
        if token is None:
            remote.check_is_repository()
        self.refs = RefsSnapshot(doc)
        self.store = PromisorStore(local, lambda: remote)
        self.history = History(self.store, self.refs)  # type: ignore[arg-type]
        self._lists: dict[str, ChunkMap | None] = {}
        self._lock = threading.Lock()

    @property
    def display(self) -> str:
        """The remote's URL, credentials masked."""
        return self.remote.display

    @property
    def fetched(self) -> int:
        """Objects fetched from the remote through this view so far."""
        return self.store.fetched

    @property
    def requests(self) -> int:
        """Requests made to the remote so far."""
        return self.remote.requests

    def chunk_list(self, oid: str) -> list[tuple[str, int]] | None:
        """``[(chunk id, size)...]`` of a big file, or ``None`` for an ordinary object (see :meth:`chunk_map`)."""
        listed = self.chunk_map(oid)
        return None if listed is None else listed.pairs()

    def chunk_map(self, oid: str) -> ChunkMap | None:
        """Where the chunks of a big file lie, or ``None`` for an ordinary object.

        Held locally: the verified local list. Otherwise the list is read from
        the remote (one ranged request) without fetching its chunks.
        """
        with self._lock:
            if oid in self._lists:
                return self._lists[oid]
        listed = None
        held = self.local.has(oid)
        if held:
            try:
                listed = self.local.chunk_map(oid)
            except CorruptObjectError:
                if self.local.has(oid):
                    raise
                held = False  # the damaged local copy was set aside: read the remote's
        if not held:
            try:
                rec = self.remote.store.read_record(oid)
            except ObjectNotFoundError:
                raise ObjectNotFoundError(oid, context=f"the remote {self.display} does not have it") from None
            if rec.encoding != Encoding.CHUNKED:
                listed = None
            else:
                try:
                    listed = ChunkMap(rec.stored, rec.size)
                except ValueError as err:
                    raise RemoteCorruptError(self.display, oid, f"has a malformed chunk list ({err})") from None
        with self._lock:
            self._lists[oid] = listed
        return listed

    def fetch_chunks(self, oid: str, chunk_ids: list[str]) -> None:
        """Fetch (verified, in one batch) the chunks of big file ``oid`` among ``chunk_ids`` not held locally.

        Once every chunk of the file is held, its chunk list is stored too, so
        later reads (and checkouts) of the file are local.
        """
        missing = [c for c in chunk_ids if not self.local.has(c)]
        if missing:
            self.store.prefetch(missing)
            self._store_list_when_complete(oid)

    def _store_list_when_complete(self, oid: str) -> None:
        listed = self._lists.get(oid)
        if not listed or self.local.has(oid) or not all(self.local.has(listed.chunk_id(i)) for i in range(len(listed))):
            return
        self.store.prefetch([oid])  # the list, verified against its (now held) chunks

    def close(self) -> None:
        """Stop the remote's worker threads."""
        self.remote.close()
