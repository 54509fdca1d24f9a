"""Deciding what a checkout writes, removes, and refuses (pure planning, no writes).

Git's rules. Switching versions: a local change blocks the checkout only where
the target differs from HEAD (or where an untracked file would be overwritten);
other local changes are carried over; ``force`` discards the blocking changes.
Restoring paths (``checkout [REV] -- PATH``): those paths are restored whatever
their local changes, and the plan names what that overwrites.
"""

from __future__ import annotations

import errno
import os
import stat as statmod
from typing import TYPE_CHECKING

from dsv.base.errors import WorktreeError
from dsv.base.records import Record
from dsv.manifest import ChangeKind, Manifest, diff_manifests, diff_tables
from dsv.worktree.checkout import NOTHING_CHANGED, FileWrite
from dsv.worktree.content import hash_path
from dsv.worktree.paths import check_manifest_path
from dsv.worktree.scan import dsv_mode
from dsv.worktree.status import WorktreeStatus
from dsv.worktree.statcache import StatCache, StatKey, stat_key

if TYPE_CHECKING:
    import pyarrow as pa

    from dsv.worktree.ignore import IgnoreRules


class CheckoutPlan(Record):
    """Files to write and remove, conflicts, and what the new stat cache keeps."""

    __slots__ = ("writes", "removals", "conflicts", "target_rows", "kept_keys", "same_as_head", "overwritten", "base", "carried")
    __hash__ = None  # type: ignore[assignment]

    writes: list[FileWrite]
    removals: list[str]
    conflicts: set[str]
    target_rows: tuple[list[str], list[bytes], list[int], list[int]]
    kept_keys: dict[str, StatKey | None]
    same_as_head: set[str]
    overwritten: set[str]
    base: StatCache | None
    """When set, the new cache is this (HEAD's) cache patched with the switch, not rebuilt."""
    carried: dict[str, tuple[bytes, int, int, StatKey | None]]
    """Rows whose file already held the target's version (not written): target id, unknown key."""

    def __init__(
        self,
        writes: list[FileWrite] | None = None,
        removals: list[str] | None = None,
        conflicts: set[str] | None = None,
        target_rows: tuple[list[str], list[bytes], list[int], list[int]] = ([], [], [], []),
        kept_keys: dict[str, StatKey | None] | None = None,
        same_as_head: set[str] | None = None,
        overwritten: set[str] | None = None,
        base: StatCache | None = None,
        carried: dict[str, tuple[bytes, int, int, StatKey | None]] | None = None,
    ) -> None:
        self.writes = [] if writes is None else writes
        self.removals = [] if removals is None else removals
        self.conflicts = set() if conflicts is None else conflicts
        self.target_rows = target_rows
        self.kept_keys = {} if kept_keys is None else kept_keys
        self.same_as_head = set() if same_as_head is None else same_as_head
        self.overwritten = set() if overwritten is None else overwritten
        self.base = base
        self.carried = {} if carried is None else carried

    def new_cache(self, written: dict[str, StatKey], commit: str, manifest: str) -> StatCache:
        """The stat cache mirroring the target after a full checkout."""
        if self.base is not None:
            return self._patched(self.base, written, commit, manifest)
        paths, oids, sizes, modes = self.target_rows
        keys = [written.get(p, self.kept_keys.get(p)) for p in paths]
        return StatCache(commit, manifest, paths, oids, sizes, modes, keys)

    def _patched(self, base: StatCache, written: dict[str, StatKey], commit: str, manifest: str) -> StatCache:
        index = base.index
        removed = {index[p] for p in self.removals if p in index}
        changed: dict[int, tuple[bytes, int, int, StatKey | None]] = {}
        added: list[tuple[str, bytes, int, int, StatKey | None]] = []
        for w in self.writes:
            row = index.get(w.path)
            entry = (bytes.fromhex(w.oid), w.size, w.mode, written.get(w.path))
            if row is None:
                added.append((w.path, *entry))
            else:
                changed[row] = entry
        for path, entry in self.carried.items():
            row = index.get(path)
            if row is not None:
                changed[row] = entry
            else:
                added.append((path, *entry))
        return base.patched(commit, manifest, removed, changed, added)

    def refresh_cache(self, cache: StatCache, written: dict[str, StatKey]) -> None:
        """After a path checkout: files restored to HEAD's content get fresh stat keys."""
        for p, key in written.items():
            row = cache.index.get(p)
            if row is not None and p in self.same_as_head:
                cache.set_key(row, key)


def _worktree_oid(root: str, path: str) -> bytes | None:
    full = os.path.join(root, *path.split("/"))
    try:
        st = os.lstat(full)
    except (FileNotFoundError, NotADirectoryError):
        return None
    mode = dsv_mode(st.st_mode)
    if mode is None:
        return None
    h = hash_path(full, st, mode)
    return None if h.vanished else h.raw_oid


def _untracked(status: WorktreeStatus) -> set[str]:
    return set(status.added) | {new for _, new in status.moved}


def _blocked_folders(writes: list[FileWrite], untracked: set[str]) -> set[str]:
    """Untracked files sitting where a written file needs a folder."""
    blocked = set()
    for w in writes:
        parts = w.path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d in untracked:
                blocked.add(d)
    return blocked


def _switched(root: str, head: Manifest | None, pending: Manifest) -> tuple[dict[str, int], set[str]]:
    """Paths an interrupted checkout to ``pending`` already switched: their row in ``pending`` (or -1: removed).

    A path the interrupted switch touches holds either HEAD's version or the
    pending target's; the ones holding the pending version are not local changes.
    """
    d = diff_manifests(head, pending, detect_moves=False)
    table = pending.table()
    index = {p: i for i, p in enumerate(table.column("path").to_pylist())}
    switched: dict[str, int] = {}
    touched: set[str] = set()
    for c in d.changes:
        touched.add(c.path)
        current = _worktree_oid(root, c.path)
        if c.new_oid is None:
            if current is None:
                switched[c.path] = -1
        elif current == bytes.fromhex(c.new_oid):
            switched[c.path] = index[c.path]
    return switched, touched


def _virtual_head(head: Manifest | None, pending: Manifest, switched: dict[str, int]) -> "pa.Table":
    """HEAD's rows, with the switched paths as the interrupted checkout left them."""
    import pyarrow as pa

    from dsv.base import compute as pc
    from dsv.manifest import empty_entries

    base = head.table() if head is not None else empty_entries()
    names = pa.array(sorted(switched), pa.string())
    kept = pc.filter_rows(base, pc.invert(pc.is_in(base.column("path"), names)))
    rows = [i for i in switched.values() if i >= 0]
    added = pc.take_rows(pending.table(), pa.array(sorted(rows), pa.int64())) if rows else empty_entries()
    return pc.sort_by(pa.concat_tables([kept, added]), "path")


def _ignored_in_the_way(root: str, paths: list[str], ignore: "IgnoreRules | None") -> set[str]:
    """Ignored (so unlisted) files already sitting where the checkout would write a new file."""
    if ignore is None:
        return set()
    out = set()
    for p in paths:
        parts = p.split("/")
        hidden = any(ignore.ignores_dir("/".join(parts[: i + 1])) for i in range(len(parts) - 1)) or ignore.ignores_file(p)
        if hidden and os.path.lexists(os.path.join(root, *parts)):
            out.add(p)
    return out


def plan_full(
    root: str,
    cache: StatCache,
    status: WorktreeStatus,
    head: Manifest | None,
    target: Manifest,
    *,
    force: bool,
    pending: Manifest | None = None,
    ignore: "IgnoreRules | None" = None,
) -> CheckoutPlan:
    """Plan a checkout that moves HEAD from ``head`` to ``target``.

    ``pending`` is the target of a checkout that stopped part-way: paths it
    already switched count as its version (not as local changes), so re-running
    it finishes it and a forced checkout elsewhere removes what it left.
    """
    plan = CheckoutPlan()
    switched: dict[str, int] = {}
    if pending is not None:
        switched, _ = _switched(root, head, pending)
    if switched:
        diff = diff_tables(_virtual_head(head, pending, switched), target.table(), detect_moves=False)  # type: ignore[arg-type]
    else:
        diff = diff_manifests(head, target, detect_moves=False)
    to_write: dict[str, FileWrite] = {}
    to_remove: set[str] = set()
    added: list[str] = []
    for c in diff.changes:
        if c.kind in (ChangeKind.ADDED, ChangeKind.MODIFIED):
            to_write[c.path] = FileWrite(c.path, c.new_oid or "", c.new_size or 0, c.new_mode or 0)
            if c.kind is ChangeKind.ADDED:
                added.append(c.path)
        elif c.kind is ChangeKind.REMOVED:
            to_remove.add(c.path)
    local = status.changed_paths() - set(switched)
    untracked = _untracked(status) - set(switched)
    table = target.table()
    t_paths = table.column("path").to_pylist()
    t_oids = table.column("oid").to_pylist()
    t_sizes = table.column("size").to_pylist()
    t_modes = table.column("mode").to_pylist()
    plan.target_rows = (t_paths, t_oids, t_sizes, t_modes)
    deleted = (set(status.removed) | {old for old, _ in status.moved}) - set(switched)
    # Ignored files are not in the status, yet a new file of the target may land on one.
    local |= _ignored_in_the_way(root, [p for p in added if p not in local], ignore)
    for p in local:
        if p in to_write:
            current = _worktree_oid(root, p)
            if current == bytes.fromhex(to_write[p].oid):
                del to_write[p]  # already what the target wants
            elif not force and not (p in deleted and current is None):
                plan.conflicts.add(p)  # a locally deleted file has nothing to lose
        elif p in to_remove:
            full = os.path.join(root, *p.split("/"))
            if not os.path.lexists(full) or (os.path.isdir(full) and not os.path.islink(full)):
                to_remove.discard(p)  # already gone (a folder now stands there: its files are planned on their own)
            elif not force:
                plan.conflicts.add(p)
    if force:
        # Restore every locally changed tracked file the target has.
        target_index = {p: i for i, p in enumerate(t_paths)} if local else {}
        for p in local - untracked:
            i = target_index.get(p)
            if i is not None and p not in to_write:
                to_write[p] = FileWrite(p, t_oids[i].hex(), t_sizes[i], t_modes[i])
    else:
        plan.conflicts |= _blocked_folders(list(to_write.values()), untracked)
    plan.writes = sorted(to_write.values(), key=lambda w: w.path)
    plan.removals = sorted(to_remove)
    changed = set(to_write) | to_remove | local | set(switched)
    for row, p in enumerate(cache.paths):
        if p not in changed:
            plan.kept_keys[p] = cache.key(row)
    return plan


def plan_switch(root: str, cache: StatCache, head: Manifest | None, target: Manifest) -> CheckoutPlan:
    """Plan moving HEAD to ``target`` looking only at the paths that differ (no walk of the tree).

    Git's rule needs local changes only where HEAD and the target differ, and
    untracked (or ignored) files only where the target adds a file: each such
    path costs one ``lstat`` (and a hash when its stat changed). Every other
    path keeps its stat-cache row, so the new cache is HEAD's patched.
    """
    plan = CheckoutPlan(base=cache)
    diff = diff_manifests(head, target, detect_moves=False)
    for c in diff.changes:
        check_manifest_path(c.path)  # before any filesystem call, even an lstat
    index = cache.index
    for c in diff.changes:
        path = c.path
        full = os.path.join(root, *path.split("/"))
        row = index.get(path)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        except OSError as err:
            if err.errno != errno.ENAMETOOLONG:
                raise
            verb = "remove" if c.kind is ChangeKind.REMOVED else "write"
            raise WorktreeError(
                f"cannot {verb} {path}: its path is longer than this system allows", hint=f"check it out in a shallower folder; {NOTHING_CHANGED}"
            ) from None
        if c.kind is ChangeKind.REMOVED:
            if st is None:
                plan.removals.append(path)  # deleted here already: its stat-cache row goes too
                continue
            if statmod.S_ISDIR(st.st_mode):
                continue  # a folder in its place: left alone
            if row is not None and not _locally_changed(full, st, cache, row):
                plan.removals.append(path)
            else:
                plan.conflicts.add(path)
            continue
        write = FileWrite(path, c.new_oid or "", c.new_size or 0, c.new_mode or 0)
        if st is None:
            plan.writes.append(write)  # missing (or deleted locally): nothing to lose
            continue
        if statmod.S_ISDIR(st.st_mode):
            plan.writes.append(write)  # a folder in the way: checked (and cleared if empty) by prepare
            continue
        if row is not None and not _locally_changed(full, st, cache, row):
            plan.writes.append(write)
            continue
        mode = dsv_mode(st.st_mode)
        current = hash_path(full, st, mode).raw_oid if mode is not None else None
        if current == bytes.fromhex(write.oid) and mode == write.mode:
            plan.carried[path] = (current, write.size, write.mode, None)  # already the target's
        else:
            plan.conflicts.add(path)  # a local change, or an untracked or ignored file in the way
    plan.writes.sort(key=lambda w: w.path)
    plan.removals.sort()
    return plan


def _locally_changed(full: str, st: os.stat_result, cache: StatCache, row: int) -> bool:
    """Whether a tracked file differs from HEAD (its stat key first; the hash only if that moved)."""
    mode = dsv_mode(st.st_mode)
    if mode is None:
        return True
    if stat_key(st, mode) == cache.key(row):
        return False
    h = hash_path(full, st, mode)
    return h.vanished or h.raw_oid != cache.oid(row) or mode != cache.modes[row]


def plan_paths(root: str, cache: StatCache, status: WorktreeStatus, target: Manifest, paths: list[str]) -> CheckoutPlan:
    """Plan restoring only ``paths`` (files or folders) to ``target``; HEAD does not move.

    As ``git checkout REV -- PATH``: local changes to those paths are discarded
    (listed in ``overwritten``); untracked files beside them are kept.
    """
    plan = CheckoutPlan()
    wanted: dict[str, FileWrite] = {}
    tracked: set[str] = set()
    for rel in paths:
        part = target.under(rel)
        for p, o, s, m in zip(part.column("path").to_pylist(), part.column("oid").to_pylist(), part.column("size").to_pylist(), part.column("mode").to_pylist()):
            wanted[p] = FileWrite(p, o.hex(), s, m)
        prefix = rel + "/" if rel else ""
        here = {p for p in cache.paths if not rel or p == rel or p.startswith(prefix)}
        if part.num_rows == 0 and not here:
            raise WorktreeError(f"path '{rel or '.'}' matches no file in that revision or in HEAD")
        tracked |= here
    local = status.changed_paths()
    for p, w in list(wanted.items()):
        row = cache.index.get(p)
        same_as_head = row is not None and cache.oid(row).hex() == w.oid and cache.modes[row] == w.mode
        if same_as_head:
            plan.same_as_head.add(p)
        if same_as_head and p not in local:
            del wanted[p]  # the working tree already has it
            continue
        if p in local or (row is None and os.path.lexists(os.path.join(root, *p.split("/")))):
            current = _worktree_oid(root, p)
            if current == bytes.fromhex(w.oid):
                del wanted[p]
                continue
            if current is not None:
                plan.overwritten.add(p)
    in_target = target.holding(tracked)  # the snapshot was checked (manifest_problems) before planning
    for p in sorted(tracked - in_target):
        if p in local and os.path.lexists(os.path.join(root, *p.split("/"))):
            plan.overwritten.add(p)
        plan.removals.append(p)
    plan.writes = sorted(wanted.values(), key=lambda w: w.path)
    return plan


def file_folder_clashes(target: Manifest, writes: list[FileWrite]) -> tuple[str, str] | None:
    """A written path with a folder above it that ``target`` also holds as a file: ``(file, path)``.

    A malformed (forged) manifest can hold both ``a`` and ``a/x``; writing it
    would put one through the other. Checked against the whole target, before
    any change, once :func:`dsv.manifest.manifest_problems` found its chunks
    within the bounds its root records: only the chunks that could hold those
    folders are read (:meth:`Manifest.holding`).
    """
    above: dict[str, str] = {}
    for w in writes:
        parts = w.path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            above.setdefault("/".join(parts[:i]), w.path)
    if not above:
        return None
    clash = sorted(target.holding(above))
    return (clash[0], above[clash[0]]) if clash else None
