"""A remote repository: its location, object store, refs, and the leases pushes hold.

Layout under the remote's root (docs/remotes.md)::

    dsv-remote.json                 {"format": 1, "type": "dsv-remote"}: created by the first push
    refs.json                       every ref (:mod:`dsv.remote.refs`), compare-and-swap
    packs/pack-<h>.pack, .idx       objects, uploaded create-only; the .idx publishes the pack
    packs/meta-<h>.pack, .idx       a push's manifests, commits, tags, metrics records, chunk lists
    inflight/<lease>.json           a push in flight (written before it reads the indexes)
    inflight/<lease>.packs          the packs that push relies on (objects it found present)
    gc.lock                         held (create-only) while a remote gc runs
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from dsv.base.errors import RemoteNotFoundError
from dsv.base.formats import REMOTE_MARKER
from dsv.store.remote import RemoteObjectStore
from dsv.store.remotefs import RemoteFS
from dsv.remote.refs import REFS_KEY, RemoteRefs

MARKER = REMOTE_MARKER
INFLIGHT = "inflight"
MARKER_BYTES = b'{"format":1,"type":"dsv-remote"}'


class Lease:
    """A push in flight: remote gc never deletes a pack it relies on, nor any pack newer than it."""

    def __init__(self, remote: "RemoteRepo", lease_id: str) -> None:
        self.remote = remote
        self.id = lease_id

    def rely_on(self, packs: Iterable[str]) -> None:
        """Record the packs holding objects this push found present and will not upload."""
        body = json.dumps({"format": 1, "type": "lease-packs", "packs": sorted(set(packs))}).encode()
        self.remote.fs.put(f"{INFLIGHT}/{self.id}.packs", body)


class RemoteRepo:
    """One remote: ``name`` (or the URL when unnamed), an fsspec URL and its options."""

    def __init__(self, name: str, url: str, options: dict[str, Any] | None = None, *, cache_dir: str | None = None, cas: str | None = None) -> None:
        self.name = name
        self.url = url
        self.fs = RemoteFS(url, options or {}, cas=cas)
        self.store = RemoteObjectStore(self.fs, cache_dir=cache_dir)
        self.refs = RemoteRefs(self.fs)

    @property
    def display(self) -> str:
        """The URL with credentials masked."""
        return self.fs.display

    @property
    def requests(self) -> int:
        """Requests made so far."""
        return self.fs.requests

    def close(self) -> None:
        """Stop worker threads."""
        self.store.close()

    def ensure_initialized(self) -> None:
        """Create the marker that makes this location a dsv remote (a push's first write)."""
        self.fs.put_immutable(MARKER, MARKER_BYTES)

    def check_is_repository(self) -> None:
        """Raise unless the location holds a dsv remote (refs or the marker)."""
        if self.fs.get(MARKER) is None and self.fs.get(REFS_KEY) is None:
            raise RemoteNotFoundError(self.display, "holds no dsv repository", hint="check the URL; a push creates the repository")

    @contextmanager
    def lease(self) -> Iterator[Lease]:
        """Hold a push lease for the duration of the block (written before anything is read or uploaded)."""
        lease_id = f"{int(time.time())}-{uuid.uuid4().hex[:12]}"
        body = json.dumps({"format": 1, "type": "lease", "host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}).encode()
        self.fs.put_immutable(f"{INFLIGHT}/{lease_id}.json", body)
        try:
            yield Lease(self, lease_id)
        finally:
            self.fs.delete(f"{INFLIGHT}/{lease_id}.packs")
            self.fs.delete(f"{INFLIGHT}/{lease_id}.json")


def open_remote(repository: Any, name: str) -> RemoteRepo:
    """The remote ``name`` configured in ``repository`` (its indexes cached under ``.dsv/remotes/<name>``)."""
    from dsv.base.errors import UnknownRemoteError

    cfg = repository.config.remotes.get(name)
    if cfg is None:
        raise UnknownRemoteError(name)
    cache = os.path.join(repository.layout.dsv, "remotes", name, "packs")
    return RemoteRepo(name, cfg.url, dict(cfg.options), cache_dir=cache)
