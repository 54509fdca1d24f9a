"""The refs of a remote repository: one small document, ``refs.json``, moved only by compare-and-swap.

git keeps a remote's refs in ``packed-refs`` for the same reasons dsv keeps
them in one object: an object store has no multi-key transaction, so one
document makes a push of several refs (``--all``) atomic, lets a client learn
every ref in one request (a no-op fetch or push costs one ``GET``), and gives
compare-and-swap one object to guard. Concurrent pushes to different branches
retry their swap; pushes to the same branch are decided per ref (the loser
is told to fetch first).

::

    {"format": 1, "type": "refs", "head": "main",
     "refs": {"refs/heads/main": "<id>", "refs/tags/v1": "<id>", "refs/metrics/<commit>/<name>": "<id>"}}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from dsv.base.errors import CorruptMetadataError, InvalidRefNameError, RemoteBusyError
from dsv.base.hashing import is_object_id
from dsv.base.ondisk import OnDiskModel
from dsv.history.refs import check_ref_name
from dsv.store.remotefs import RemoteFS

REFS_KEY = "refs.json"
_FORGED_HINT = "the remote's refs.json is damaged or forged; nothing was changed locally"
MAX_SWAPS = 200
"""Compare-and-swap retries before giving up (another writer keeps winning)."""


class RefsDocument(OnDiskModel):
    """``refs.json``: every ref of the remote, and its default branch."""

    type: Literal["refs"] = "refs"
    head: str = "main"
    """The branch a clone checks out by default."""
    refs: dict[str, str] = {}
    """Full ref name -> object id."""


def _valid_name(name: str) -> bool:
    """Whether ``name`` is a ref a local repository may hold: it becomes a path under ``.dsv/refs``.

    A forged ``refs/heads/../../x`` would otherwise be written outside the
    repository by the fetch that mirrors it as ``refs/remotes/<remote>/...``.
    """
    try:
        if name.startswith(("refs/heads/", "refs/tags/")):
            check_ref_name(name.split("/", 2)[2])
            return True
        if name.startswith("refs/metrics/"):
            commit, _, record = name[len("refs/metrics/") :].partition("/")
            return is_object_id(commit) and bool(record) and check_ref_name(record) == record
    except InvalidRefNameError:
        return False
    return False


def _valid(doc: RefsDocument, what: str) -> RefsDocument:
    for name, oid in doc.refs.items():
        if not _valid_name(name) or not is_object_id(oid):
            raise CorruptMetadataError(what, f"holds an invalid ref {name!r}", hint=_FORGED_HINT)
    try:
        check_ref_name(doc.head)
    except InvalidRefNameError:
        raise CorruptMetadataError(what, f"names an invalid default branch {doc.head!r}", hint=_FORGED_HINT) from None
    return doc


class RemoteRefs:
    """Read and compare-and-swap ``refs.json`` on one remote."""

    def __init__(self, fs: RemoteFS) -> None:
        self.fs = fs

    def read(self) -> tuple[RefsDocument, str | None]:
        """The refs and their version token (``None`` when the remote has no refs yet); one request."""
        data, token = self.fs.get_versioned(REFS_KEY)
        if data is None:
            return RefsDocument(), None
        what = f"refs of remote {self.fs.display}"
        try:
            doc = RefsDocument.from_json_bytes(data, what=what)
        except CorruptMetadataError as err:
            raise CorruptMetadataError(what, err.detail, hint=_FORGED_HINT) from None
        return _valid(doc, what), token

    def update(self, change: Callable[[RefsDocument], RefsDocument | None]) -> RefsDocument | None:
        """Apply ``change`` by compare-and-swap, re-reading and retrying when another writer won.

        ``change`` sees the current document and returns the new one, or
        ``None`` to write nothing (for example when every ref it wanted to move
        has moved under it). Returns what was written, or ``None``.
        """
        for _ in range(MAX_SWAPS):
            doc, token = self.read()
            new = change(doc)
            if new is None:
                return None
            if self.fs.put_if(REFS_KEY, new.to_json_bytes(), token):
                return new
        raise RemoteBusyError(self.fs.display, f"{REFS_KEY} kept changing under {MAX_SWAPS} attempts")
