"""Remotes: push, fetch, partial clones and remote gc over any fsspec location, with no server.

Services layer: imports store, manifest and history; imported by the api.
``docs/remotes.md`` describes the remote layout, the protocols (push,
fetch, refs compare-and-swap, leases and gc) and each backend's guarantees.
"""

from dsv.remote.fetch import fetch, fetch_objects
from dsv.remote.push import PushSpec, push
from dsv.remote.repo import RemoteRepo, open_remote
from dsv.remote.results import FetchResult, PushResult, RefStatus, RefUpdate, RemoteGcResult, TransferStats

__all__ = [
    "FetchResult",
    "PushResult",
    "PushSpec",
    "RefStatus",
    "RefUpdate",
    "RemoteGcResult",
    "RemoteRepo",
    "TransferStats",
    "fetch",
    "fetch_objects",
    "open_remote",
    "push",
]
