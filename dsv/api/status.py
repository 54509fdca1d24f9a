"""``status``, and the stopped-checkout check that status, commit and checkout share.

Apart from :mod:`dsv.api.repo` so that ``dsv status``, the command run most,
imports only what it runs (:mod:`dsv.cli.quick`): opening a
:class:`~dsv.repository.Repository`, the stat cache, the fsmonitor client and
the tree scan, not every other command's module. :meth:`dsv.Repo.status`
delegates here.

Nothing on this path imports :mod:`typing` or :mod:`dataclasses` at run time
(docs/architecture.md, "Start-up of status"): :class:`StatusResult` is a
:class:`~dsv.base.records.FrozenRecord`, with the fields, equality and ``repr``
a frozen dataclass would give it.
"""

from __future__ import annotations

import os

from dsv.base.records import FrozenRecord, Record, init_field
from dsv.repository import Repository
from dsv.store.local import damaged_what
from dsv.worktree.status import worktree_status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from typing import Any

    from dsv.base.progress import Progress
    from dsv.base.tables import ResultTable
    from dsv.worktree.pending import CheckoutRecord


class StatusResult(FrozenRecord):
    """The working tree against HEAD."""

    __slots__ = ("branch", "head", "added", "removed", "modified", "moved", "warnings", "checkout_in_progress")

    branch: str | None
    head: str | None
    added: tuple[str, ...]
    removed: tuple[str, ...]
    modified: tuple[str, ...]
    moved: tuple[tuple[str, str], ...]
    warnings: tuple[str, ...]
    checkout_in_progress: str | None
    """The command that finishes a checkout that stopped part-way, if one did."""

    def __init__(
        self,
        branch: str | None,
        head: str | None,
        added: tuple[str, ...],
        removed: tuple[str, ...],
        modified: tuple[str, ...],
        moved: tuple[tuple[str, str], ...],
        warnings: tuple[str, ...] = (),
        checkout_in_progress: str | None = None,
    ) -> None:
        init_field(self, "branch", branch)
        init_field(self, "head", head)
        init_field(self, "added", added)
        init_field(self, "removed", removed)
        init_field(self, "modified", modified)
        init_field(self, "moved", moved)
        init_field(self, "warnings", warnings)
        init_field(self, "checkout_in_progress", checkout_in_progress)

    @property
    def clean(self) -> bool:
        """Whether nothing changed."""
        return not (self.added or self.removed or self.modified or self.moved)

    @property
    def table(self) -> "ResultTable":
        """One row per change: ``change`` (added, removed, modified, moved), ``path``, ``old_path``."""
        from dsv.base.tables import ResultTable

        rows = [{"change": "added", "path": p, "old_path": None} for p in self.added]
        rows += [{"change": "removed", "path": p, "old_path": None} for p in self.removed]
        rows += [{"change": "modified", "path": p, "old_path": None} for p in self.modified]
        rows += [{"change": "moved", "path": b, "old_path": a} for a, b in self.moved]
        return ResultTable(rows, [("change", "string"), ("path", "string"), ("old_path", "string")])

    def to_arrow(self) -> "Any":
        """:attr:`table` as an Arrow table."""
        return self.table.to_arrow()

    def to_pandas(self) -> "Any":
        """:attr:`table` as a pandas DataFrame (pandas is optional)."""
        return self.table.to_pandas()

    def to_dict(self) -> "dict[str, Any]":
        """JSON-ready form."""
        return {
            "branch": self.branch,
            "head": self.head,
            "checkout_in_progress": self.checkout_in_progress,
            "clean": self.clean,
            "added": list(self.added),
            "removed": list(self.removed),
            "modified": list(self.modified),
            "moved": [{"from": a, "to": b} for a, b in self.moved],
            "warnings": list(self.warnings),
        }


class Warnings(Record):
    """Collects warnings raised deep in a service, for the result."""

    __slots__ = ("items",)

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, items: list[str] | None = None) -> None:
        self.items: list[str] = [] if items is None else items

    def __call__(self, message: str) -> None:
        self.items.append(message)


def repository_status(repo: Repository, progress: "Progress | None" = None) -> StatusResult:
    """The working tree of ``repo`` against HEAD (:meth:`dsv.Repo.status`)."""
    head = repo.refs.head()
    cache = repo.load_statcache(head.commit)
    warn = Warnings()
    monitor = repo.monitor_session(cache)
    st = worktree_status(repo.root, cache, repo.ignore_rules(), warn, progress, changed=monitor.changed if monitor else None)
    if st.leftovers:
        _remove_leftovers(repo, st.leftovers)
    if st.refreshed or cache.commit != head.commit or not os.path.exists(repo.layout.statcache):
        if head.commit is not None:
            repo.save_statcache(cache)
    if monitor is not None and head.commit is not None:
        # What differs from HEAD stays to be looked at next time (its cached key is stale).
        monitor.record(cache.identity, st.changed_paths() | set(st.changed_while_reading) | set(st.skipped))
    for p in st.changed_while_reading:
        warn(f"{p} changed while it was being read")
    for path, problem in repo.store.damaged_indexes():
        warn(f"{damaged_what(path)} is damaged: {problem}; run 'dsv fsck --repair'")
    pending = pending_checkout(repo)
    return StatusResult(
        head.branch,
        head.commit,
        tuple(st.added),
        tuple(st.removed),
        tuple(st.modified),
        tuple(st.moved),
        tuple(warn.items),
        pending.command() if pending else None,
    )


def _remove_leftovers(repo: Repository, paths: "Sequence[str]") -> None:
    """Delete checkout temp files a killed dsv left, unless a writer is running (its files are live)."""
    from dsv.base.errors import LockError
    from dsv.worktree.checkout import remove_leftovers

    try:
        lock = repo.write_lock(wait=False).acquire()
    except LockError:
        return
    try:
        remove_leftovers(repo.root, paths)
    finally:
        lock.release()


def pending_checkout(repo: Repository, *, locked: bool = False) -> "CheckoutRecord | None":
    """The checkout that stopped part-way, if any (cheap: one failed open in the usual case).

    A record whose checkout in fact finished (killed between moving HEAD and
    deleting the record) is deleted here, when no other dsv process is writing
    (``locked``: the caller holds the write lock already).
    """
    if not os.path.exists(os.path.join(repo.layout.dsv, "CHECKOUT")):
        return None
    from dsv.base.errors import LockError
    from dsv.worktree.pending import clear_record, read_record

    record = read_record(repo.layout.dsv)
    if record is None or record.paths is not None or repo.refs.head().commit != record.commit:
        return record
    if locked:
        if _switch_is_complete(repo, record):
            clear_record(repo.layout.dsv)
            return None
        return record
    lock = repo.write_lock(wait=False)
    try:
        lock.acquire()
    except LockError:
        return record  # a checkout may be running right now
    try:
        return pending_checkout(repo, locked=True)
    finally:
        lock.release()


def _switch_is_complete(repo: Repository, record: "CheckoutRecord") -> bool:
    """Whether every path the recorded checkout changes already holds the target's version."""
    from dsv.manifest import ChangeKind, diff_manifests, read_manifest
    from dsv.worktree.content import hash_path
    from dsv.worktree.scan import dsv_mode

    history = repo.history
    source = read_manifest(repo.store, history.commit(record.source).manifest) if record.source else None
    target = read_manifest(repo.store, history.commit(record.commit).manifest)
    for c in diff_manifests(source, target, detect_moves=False).changes:
        full = os.path.join(repo.root, *c.path.split("/"))
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if c.kind is ChangeKind.REMOVED:
            if st is not None and not os.path.isdir(full):
                return False
            continue
        mode = dsv_mode(st.st_mode) if st is not None else None
        if mode is None or mode != c.new_mode or hash_path(full, st, mode).raw_oid.hex() != c.new_oid:  # type: ignore[arg-type]
            return False
    return True
