"""``dsv status``: the working tree against HEAD, through the stat cache.

Pure Python on purpose: an unchanged tree is checked with one walk and no
pyarrow import, which keeps ``dsv status`` near ``git status`` in wall time.
"""

from __future__ import annotations

import os

from dsv.base.moves import pair_moves
from dsv.base.progress import NullProgress, Progress
from dsv.base.records import Record
from dsv.worktree.content import hash_path
from dsv.worktree.ignore import IgnoreRules
from dsv.worktree.scan import Warn, scan
from dsv.worktree.statcache import StatCache, stat_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any


class WorktreeStatus(Record):
    """Paths changed in the working tree relative to HEAD."""

    __slots__ = ("added", "removed", "modified", "moved", "changed_while_reading", "refreshed", "leftovers", "skipped")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, *, leftovers: list[str] | None = None, skipped: list[str] | None = None) -> None:
        self.added: list[str] = []
        self.removed: list[str] = []
        self.modified: list[str] = []
        self.moved: list[tuple[str, str]] = []
        self.changed_while_reading: list[str] = []
        self.refreshed = 0
        self.leftovers: list[str] = [] if leftovers is None else leftovers
        """Checkout temp files a killed process left (never tracked; the caller removes them)."""
        self.skipped: list[str] = [] if skipped is None else skipped
        """Paths left out with a warning (FIFOs, names that are not UTF-8...)."""

    @property
    def clean(self) -> bool:
        """Whether nothing changed."""
        return not (self.added or self.removed or self.modified or self.moved)

    def changed_paths(self) -> set[str]:
        """Every path touched by a change (both ends of moves)."""
        out = set(self.added) | set(self.removed) | set(self.modified)
        for old, new in self.moved:
            out.add(old)
            out.add(new)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "clean": self.clean,
            "added": self.added,
            "removed": self.removed,
            "modified": self.modified,
            "moved": [{"from": a, "to": b} for a, b in self.moved],
        }


def _abs(root: str, path: str) -> str:
    return os.path.join(root, *path.split("/"))


def worktree_status(
    root: str, cache: StatCache, ignore: IgnoreRules | None, warn: Warn, progress: Progress | None = None, *, under: str = "",
    changed: "Iterable[str] | None" = None,
) -> WorktreeStatus:
    """Compare the working tree with the cache; refresh stat keys of files found unchanged.

    Mutates the cache's stat keys for refreshed rows (``status.refreshed`` counts them) so
    the caller can save the cache and skip the re-hash next time.
    """
    progress = progress or NullProgress()
    res = scan(root, cache, ignore, warn, under=under, changed=changed)
    out = WorktreeStatus(leftovers=res.leftovers, skipped=res.skipped)
    progress.start("checking", len(res.suspect), sum(st.st_size for _, st, _ in res.suspect))
    for row, st, mode in res.suspect:
        path = cache.paths[row]
        h = hash_path(_abs(root, path), st, mode)
        progress.advance(1, h.size)
        if h.vanished:
            out.removed.append(path)
            continue
        if h.raw_oid == cache.oid(row) and mode == cache.modes[row]:
            if not h.changed:
                cache.set_key(row, stat_key(st, mode))
                out.refreshed += 1
        else:
            out.modified.append(path)
        if h.changed:
            out.changed_while_reading.append(path)
    progress.finish()
    removed_rows = list(res.missing)
    added = [p for p, _, _ in res.new]
    if removed_rows and res.new:
        # Only a new file of the same size as a removed one can be its move: hash just those.
        sizes = {cache.sizes[r] for r in removed_rows}
        candidates = []
        for p, st, mode in res.new:
            if st.st_size in sizes:
                h = hash_path(_abs(root, p), st, mode)
                if not h.vanished:
                    candidates.append((p, h.raw_oid))
        pairs = pair_moves([(cache.paths[r], cache.oid(r)) for r in removed_rows], candidates)
        out.moved = pairs
        moved_old = {a for a, _ in pairs}
        moved_new = {b for _, b in pairs}
        added = [p for p in added if p not in moved_new]
        removed_rows = [r for r in removed_rows if cache.paths[r] not in moved_old]
    out.added = sorted(added)
    out.removed = sorted(out.removed + [cache.paths[r] for r in removed_rows])
    out.modified.sort()
    return out
