"""``dsv fsck``: re-hash everything, check every reference, and (``--repair``) heal what can be healed.

Checking never stops at the first problem: a damaged pack index is reported and
its pack skipped, a corrupt copy is quarantined (set aside so it counts as
missing) and reported with every commit and path that needs it.

Repair, like git's and restic's, restores only from bytes that hash to the id:
damaged pack indexes are rebuilt from their packs (each record verified; the
index of a pack whose file is missing is set aside), and a
missing or corrupt file object is stored again from any working-tree file whose
content hashes to it. What cannot be restored is reported as lost, naming the
commits and paths that need it.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from typing import Any

from dsv.base.errors import DsvError
from dsv.base.progress import NullProgress, Progress
from dsv.maintenance.reach import Problem, walk_reachable
from dsv.repository import Repository
from dsv.store.repair import set_aside_index
from dsv.store.upkeep import chunk_owners, orphan_packs, recheck_quarantined, verify_copy
from dsv.worktree.content import hash_path, store_path
from dsv.worktree.scan import scan


@dataclass(frozen=True)
class Repaired:
    """One object restored by ``fsck --repair``, and where its good bytes came from."""

    oid: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"oid": self.oid, "source": self.source}


@dataclass
class FsckReport:
    """Everything fsck checked, found and (with repair) fixed."""

    objects_checked: int = 0
    bytes_checked: int = 0
    commits: int = 0
    problems: list[Problem] = field(default_factory=list)
    repaired: list[Repaired] = field(default_factory=list)
    indexes_rebuilt: list[str] = field(default_factory=list)
    indexes_set_aside: list[str] = field(default_factory=list)
    """Indexes of packs whose file is missing, moved to ``quarantine/packs/`` (with repair)."""
    quarantined: int = 0
    sizes: dict[str, int] = field(default_factory=dict, repr=False)
    """Sizes of the damaged file objects (from their manifests), for repair."""

    @property
    def ok(self) -> bool:
        """Whether no problem is left."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "objects_checked": self.objects_checked,
            "bytes_checked": self.bytes_checked,
            "commits": self.commits,
            "problems": [p.to_dict() for p in self.problems],
            "repaired": [r.to_dict() for r in self.repaired],
            "indexes_rebuilt": list(self.indexes_rebuilt),
            "indexes_set_aside": list(self.indexes_set_aside),
            "quarantined": self.quarantined,
        }


def fsck(repo: Repository, progress: Progress | None = None, *, repair: bool = False) -> FsckReport:
    """Check the whole repository; with ``repair``, rebuild indexes and restore objects first found bad.

    Repair holds the write lock (it writes objects); a plain check does not.
    """
    if repair:
        with repo.write_lock():
            repo.local_store.refresh()
            report = FsckReport()
            _rebuild_indexes(repo, report)
            checked = _check(repo, progress, report)
            _restore_from_worktree(repo, checked, report)
            _restore_manifest_chunks(repo, checked, report)
            final = _check(repo, progress, FsckReport(repaired=report.repaired, indexes_rebuilt=report.indexes_rebuilt, indexes_set_aside=report.indexes_set_aside))
            final.quarantined += checked.quarantined
            return final
    return _check(repo, progress, FsckReport())


def _rebuild_indexes(repo: Repository, report: FsckReport) -> None:
    """Rebuild damaged and lost pack indexes (and rescue packs whose header is damaged)."""
    store = repo.local_store
    _touch_every_pack(repo)
    targets = [path for path, _ in store.damaged_indexes()] + orphan_packs(store, )
    for path in targets:
        if path.endswith(".pack") and not os.path.exists(path):  # nothing left to rebuild from
            try:
                report.indexes_set_aside.append(set_aside_index(store, path))
            except DsvError as err:
                report.problems.append(Problem("bad-metadata", None, str(err), location=path))
            continue
        try:
            store.rebuild_index(path)
        except (DsvError, OSError) as err:
            report.problems.append(Problem("bad-metadata", None, f"cannot rebuild the index of {path}: {err}", location=path))
            continue
        report.indexes_rebuilt.append(path)


def _touch_every_pack(repo: Repository) -> None:
    """Open every pack once, so one whose header is damaged is found (and set aside) now."""
    repo.local_store.check_pack_headers()


def _check(repo: Repository, progress: Progress | None, report: FsckReport) -> FsckReport:
    """Verify every stored copy, then walk everything the refs reach."""
    progress = progress or NullProgress()
    store = repo.local_store
    recheck_quarantined(store)
    _touch_every_pack(repo)
    for path, problem in store.damaged_indexes():
        what = "pack index" if path.endswith(".idx") else "pack"
        report.problems.append(Problem("bad-metadata", None, f"{what} {os.path.basename(path)}: {problem}", location=path))
    for path in orphan_packs(store, older_than=60):
        report.problems.append(
            Problem("bad-metadata", None, f"pack {os.path.basename(path)} has no index: its objects are invisible (run 'dsv fsck --repair')", location=path)
        )
    copies = list(store.copies())
    good: set[str] = set()
    bad: dict[str, Problem] = {}
    progress.start("verifying", len(copies), sum(c.size for c in copies))
    for c in copies:
        try:
            actual = verify_copy(store, c)
        except OSError as err:
            bad.setdefault(c.oid, Problem("corrupt-object", c.oid, f"cannot read object {c.oid}: {err.strerror}", location=c.location))
            continue
        except DsvError as err:  # e.g. a pack whose header is damaged
            bad.setdefault(c.oid, Problem("corrupt-object", c.oid, str(err), expected=c.oid, actual="<unreadable>", location=c.location))
            continue
        report.objects_checked += 1
        report.bytes_checked += c.size
        progress.advance(1, c.size)
        if actual == c.oid:
            good.add(c.oid)
        elif actual.startswith(("<missing chunk ", "<corrupt chunk ")):
            # The chunk list is sound; one of its chunks is not (reported on its own too).
            kind = "missing-object" if actual.startswith("<missing") else "corrupt-object"
            chunk = actual.split()[-1].rstrip(">")
            bad.setdefault(c.oid, Problem(kind, c.oid, f"object {c.oid} is damaged: its chunk {chunk} is {kind.split('-')[0]}", location=c.location))
        else:
            # Set aside, so that it counts as missing and a good copy can replace it.
            store.quarantine(c)
            report.quarantined += 1
            bad.setdefault(c.oid, Problem("corrupt-object", c.oid, f"object {c.oid} is corrupt", expected=c.oid, actual=actual, location=c.location))
    progress.finish()
    for oid in good:
        bad.pop(oid, None)  # another copy is intact
    set_aside = {q.oid: q for q in store.quarantined() if q.oid not in good}
    reach = walk_reachable(repo, check_paths=True)
    missing = {o for o in reach.objects if o not in good and o not in bad and not repo.store.has(o)}
    watch = set(bad) | missing
    if watch:
        # Second walk only when something is wrong: who needs each damaged object, and its size.
        reach = walk_reachable(repo, check_paths=True, watch=watch)
    report.commits = reach.commits
    report.sizes = reach.sizes
    owners = chunk_owners(store, {bytes.fromhex(o) for o in bad if o not in reach.watched_users})
    for oid, prob in bad.items():
        users = reach.watched_users.get(oid) or tuple(f"chunk of {o.hex()}" for o in owners.get(bytes.fromhex(oid), [])) or ("unreachable",)
        report.problems.append(Problem(prob.kind, oid, prob.message, prob.expected, prob.actual, prob.location, users))
    for p in reach.problems:
        if p.oid in bad or p.oid in missing:
            continue
        q = set_aside.get(p.oid) if p.oid else None
        if p.kind == "missing-object" and q is not None:
            # Missing because a read set its corrupt copy aside: say so.
            p = Problem("corrupt-object", p.oid, f"object {p.oid} is corrupt (its copy was set aside)", expected=p.oid, location=q.path, used_by=p.used_by)
        report.problems.append(p)
    for oid in sorted(missing):
        users = reach.watched_users.get(oid) or (reach.used_by.get(oid, "?"),)
        q = set_aside.get(oid)
        if q is not None:
            report.problems.append(
                Problem("corrupt-object", oid, f"object {oid} is corrupt (its copy was set aside)", expected=oid, location=q.path, used_by=users)
            )
        else:
            report.problems.append(Problem("missing-object", oid, f"object {oid} is missing", used_by=users))
    return report


def _restore_from_worktree(repo: Repository, checked: FsckReport, report: FsckReport) -> None:
    """Store again every missing or corrupt file object that a working-tree file hashes to."""
    needed = {p.oid: checked.sizes[p.oid] for p in checked.problems if p.kind in ("missing-object", "corrupt-object") and p.oid in checked.sizes}
    if not needed:
        return
    by_size: dict[int, set[bytes]] = {}
    for oid, size in needed.items():
        by_size.setdefault(size, set()).add(bytes.fromhex(oid))
    head = repo.refs.head().commit
    cache = repo.load_statcache(head)
    found: dict[bytes, tuple[str, os.stat_result, int]] = {}
    notes: list[str] = []
    res = scan(repo.root, cache, repo.ignore_rules(), notes.append)
    prefix = repo.root.rstrip(os.sep) + os.sep
    candidates: list[tuple[str, os.stat_result, int]] = [(cache.paths[r], st, m) for r, st, m in res.suspect]
    candidates += res.new
    for row in res.clean:
        # Unchanged since the cache was written: the cached id is the content's id.
        if cache.sizes[row] in by_size and cache.oids[row] in by_size[cache.sizes[row]] and cache.oids[row] not in found:
            path = cache.paths[row]
            try:
                st = os.lstat(prefix + path)
            except OSError:
                continue
            found[cache.oids[row]] = (path, st, cache.modes[row])
    for path, st, mode in candidates:
        want = by_size.get(st.st_size)
        if not want:
            continue
        h = hash_path(prefix + path, st, mode)
        if not h.vanished and not h.changed and h.raw_oid in want and h.raw_oid not in found:
            found[h.raw_oid] = (path, st, mode)
    if not found:
        return
    writer = repo.store.begin_write()
    try:
        stored: list[Repaired] = []
        for raw, (path, st, mode) in sorted(found.items()):
            r = store_path(writer, prefix + path, st, mode)
            if r.raw_oid == raw and not r.changed:
                stored.append(Repaired(raw.hex(), path))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    report.repaired.extend(stored)


def _restore_manifest_chunks(repo: Repository, checked: FsckReport, report: FsckReport) -> None:
    """Store again every missing or corrupt manifest chunk of HEAD whose rows the stat cache holds.

    The stat cache mirrors HEAD's manifest (path, id, size, mode per file): the rows
    between a chunk's bounds, encoded again, are the chunk's bytes, which is checked
    by their hash before anything is stored. (A chunk of an older commit, or one the
    cache no longer mirrors, stays reported.)
    """
    lost = {p.oid for p in checked.problems if p.kind in ("missing-object", "corrupt-object") and p.oid}
    head = repo.refs.head().commit
    if not lost or head is None:
        return
    from dsv.base.hashing import hash_bytes
    from dsv.manifest import entries_table, read_manifest
    from dsv.manifest.encoding import encode_chunk
    from dsv.worktree import statcache

    try:
        manifest = read_manifest(repo.store, repo.history.commit(head).manifest)
    except DsvError:
        return
    wanted = [(i, c) for i, c in enumerate(manifest.chunk_ids()) if c in lost]
    cache = statcache.load(repo.layout.statcache) if wanted else None
    if cache is None or cache.manifest != manifest.oid:
        return
    order = sorted(range(len(cache)), key=cache.paths.__getitem__)
    paths = [cache.paths[r] for r in order]
    firsts, lasts = manifest.root.column("first").to_pylist(), manifest.root.column("last").to_pylist()
    found: list[tuple[str, bytes]] = []
    for i, chunk in wanted:
        lo, hi = bisect.bisect_left(paths, firsts[i]), bisect.bisect_right(paths, lasts[i])
        rows = order[lo:hi]
        table = entries_table([cache.paths[r] for r in rows], [cache.oid(r) for r in rows], [cache.sizes[r] for r in rows], [cache.modes[r] for r in rows])
        data = encode_chunk(table)
        if hash_bytes(data) == chunk:
            found.append((chunk, data))
    if not found:
        return
    writer = repo.store.begin_write()
    try:
        for _, data in found:
            writer.add_bytes(data, compress=True)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    report.repaired.extend(Repaired(chunk, "the stat cache (HEAD's manifest rows)") for chunk, _ in found)
