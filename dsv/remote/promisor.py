"""The store of a partial clone: the local store, plus objects promised by the remote recorded at clone.

A partial clone (``clone --depth``, ``clone -- PATH...``) holds only what those
revisions and paths needed. Every object it lacks locally but the *promisor*
remote holds counts as present (:meth:`PromisorStore.has`), and reading it
fetches it, verified, into the local store first (git's promisor remotes). A
caller that asks :meth:`~PromisorStore.has` about many objects before reading
them (a checkout plans every file first) gets them in one batch: the first
read fetches every promised object asked about so far.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dsv.base.errors import CorruptObjectError, ObjectNotFoundError
from dsv.store.base import StoredRecord

log = logging.getLogger(__name__)


class PromisorStore:
    """``local`` (an :class:`~dsv.store.local.LocalObjectStore`) backed by a remote opened on first need."""

    def __init__(self, local: Any, open_remote: Callable[[], Any]) -> None:
        self.local = local
        self._open_remote = open_remote
        self._remote: Any = None
        self._asked: set[str] = set()
        self._lock = threading.RLock()
        self.fetched = 0

    def remote(self) -> Any:
        """The promisor remote (a :class:`~dsv.remote.repo.RemoteRepo`), opened once."""
        with self._lock:
            if self._remote is None:
                self._remote = self._open_remote()
            return self._remote

    def __getattr__(self, name: str) -> Any:
        # Maintenance methods (fsck, gc) work on the local store.
        return getattr(self.local, name)

    def _promised(self, oid: str) -> bool:
        try:
            return self.remote().store.has(oid)
        except ObjectNotFoundError:
            return False

    def has(self, oid: str) -> bool:
        """Held locally, or promised by the remote (then queued for the next batch)."""
        if self.local.has(oid):
            return True
        if self._promised(oid):
            with self._lock:
                self._asked.add(oid)
            return True
        return False

    def has_many(self, oids: Iterable[str]) -> set[str]:
        """The subset held or promised."""
        return {o for o in oids if self.has(o)}

    def _fill(self, oids: Iterable[str]) -> None:
        from dsv.remote.fetch import fetch_objects

        with self._lock:
            wanted = [o for o in dict.fromkeys(list(oids) + sorted(self._asked)) if not self.local.has(o)]
            self._asked.clear()
        if not wanted:
            return
        log.info("fetching %d object(s) from the promisor remote", len(wanted))
        stats = fetch_objects(self.local, self.remote(), wanted)
        with self._lock:
            self.fetched += stats.objects
        # No refresh: the local writer adds the packs it publishes to the loaded index
        # (a refresh would re-read every index, quadratic over many small fetches).

    def prefetch(self, oids: Iterable[str]) -> None:
        """Fetch every one of ``oids`` not held locally, in one batch."""
        self._fill(oids)

    def read(self, oid: str) -> bytes:
        """Local bytes, fetched first if only promised (or if the local copy proves corrupt)."""
        if not self.local.has(oid):
            self._fill([oid])
        try:
            return self.local.read(oid)
        except CorruptObjectError:
            # The damaged local copy was set aside; the remote still promises a good one.
            if self.local.has(oid) or not self._promised(oid):
                raise
            log.warning("object %s was corrupt locally: fetching it again from the promisor remote", oid)
            self._fill([oid])
            return self.local.read(oid)

    def size(self, oid: str) -> int:
        """Size (fetches the object if it is only promised)."""
        if not self.local.has(oid):
            self._fill([oid])
        return self.local.size(oid)

    def iter_chunks(self, oid: str) -> Iterator[bytes]:
        """Stream ``oid`` (fetched first if only promised)."""
        if not self.local.has(oid):
            self._fill([oid])
        return self.local.iter_chunks(oid)

    def chunk_list(self, oid: str) -> list[tuple[str, int]] | None:
        """Chunks of ``oid`` (fetched first if only promised)."""
        if not self.local.has(oid):
            self._fill([oid])
        return self.local.chunk_list(oid)

    def read_records(self, oids: Iterable[str]) -> Iterator[StoredRecord]:
        """Records, with everything missing fetched in one batch first."""
        oids = list(oids)
        self._fill([o for o in oids if not self.local.has(o)])
        return self.local.read_records(oids)

    def local_path(self, oid: str) -> str | None:
        """The local file of ``oid``, if any."""
        return self.local.local_path(oid)

    def refresh(self) -> None:
        """Forget cached listings, locally and of the remote."""
        self.local.refresh()
        if self._remote is not None:
            self._remote.store.refresh()

    def damaged_indexes(self) -> list[tuple[str, str]]:
        """Damaged local indexes."""
        return self.local.damaged_indexes()

    def ids(self) -> Iterator[str]:
        """Ids held locally."""
        return self.local.ids()

    def ids_with_prefix(self, prefix: str) -> list[str]:
        """Ids with ``prefix``, held locally or promised (an abbreviated id of a commit not fetched yet)."""
        found = set(self.local.ids_with_prefix(prefix))
        try:
            found.update(self.remote().store.ids_with_prefix(prefix))
        except ObjectNotFoundError:
            pass
        return sorted(found)

    def begin_write(self) -> Any:
        """Writes go to the local store."""
        return self.local.begin_write()
