"""File-level diffs of two manifests: pure, vectorized functions over Arrow tables."""

from __future__ import annotations

import bisect
import enum
import itertools
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dsv.base import compute as pc
from dsv.base.moves import pair_moves
from dsv.base.records import FrozenRecord, init_field
from dsv.manifest.tables import empty_entries

if TYPE_CHECKING:
    from dsv.manifest.tables import Manifest


class ChangeKind(enum.Enum):
    """What happened to one path between two snapshots."""

    ADDED = "added"
    REMOVED = "removed"
    MODIFIED = "modified"
    MOVED = "moved"


class FileChange(FrozenRecord):
    """One file-level change. ``old_*`` is ``None`` for added files, ``new_*`` for removed."""

    __slots__ = ("kind", "path", "old_path", "old_oid", "new_oid", "old_size", "new_size", "old_mode", "new_mode")

    kind: ChangeKind
    path: str
    old_path: str | None
    old_oid: str | None
    new_oid: str | None
    old_size: int | None
    new_size: int | None
    old_mode: int | None
    new_mode: int | None

    def __init__(
        self,
        kind: ChangeKind,
        path: str,
        old_path: str | None = None,
        old_oid: str | None = None,
        new_oid: str | None = None,
        old_size: int | None = None,
        new_size: int | None = None,
        old_mode: int | None = None,
        new_mode: int | None = None,
    ) -> None:
        init_field(self, "kind", kind)
        init_field(self, "path", path)
        init_field(self, "old_path", old_path)
        init_field(self, "old_oid", old_oid)
        init_field(self, "new_oid", new_oid)
        init_field(self, "old_size", old_size)
        init_field(self, "new_size", new_size)
        init_field(self, "old_mode", old_mode)
        init_field(self, "new_mode", new_mode)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the shape documented in docs/cli.md)."""
        return {
            "kind": self.kind.value,
            "path": self.path,
            "old_path": self.old_path,
            "old_oid": self.old_oid,
            "new_oid": self.new_oid,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_mode": None if self.old_mode is None else f"{self.old_mode:o}",
            "new_mode": None if self.new_mode is None else f"{self.new_mode:o}",
        }


class FileDiff(FrozenRecord):
    """All file-level changes between two snapshots, sorted by kind then path."""

    __slots__ = ("changes",)

    changes: tuple[FileChange, ...]

    def __init__(self, changes: tuple[FileChange, ...]) -> None:
        init_field(self, "changes", changes)

    def of_kind(self, kind: ChangeKind) -> list[FileChange]:
        """Changes of one kind."""
        return [c for c in self.changes if c.kind is kind]

    def counts(self) -> dict[str, int]:
        """Number of changes per kind."""
        out = {k.value: 0 for k in ChangeKind}
        for c in self.changes:
            out[c.kind.value] += 1
        return out

    def __bool__(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"counts": self.counts(), "changes": [c.to_dict() for c in self.changes]}


def _hex_or_none(raw: bytes | None) -> str | None:
    return None if raw is None else raw.hex()


def _diff_aligned(old: pa.Table, new: pa.Table) -> FileDiff:
    """Two tables with the same paths row by row: only modifications, found without a join."""
    differ = pc.or_(pc.not_equal(old.column("oid"), new.column("oid")), pc.not_equal(old.column("mode"), new.column("mode")))
    a, b = pc.filter_rows(old, differ), pc.filter_rows(new, differ)
    changes = [
        FileChange(ChangeKind.MODIFIED, p, None, oa.hex(), ob.hex(), sa, sb, ma, mb)
        for p, oa, ob, sa, sb, ma, mb in zip(
            a.column("path").to_pylist(), a.column("oid").to_pylist(), b.column("oid").to_pylist(), a.column("size").to_pylist(),
            b.column("size").to_pylist(), a.column("mode").to_pylist(), b.column("mode").to_pylist(),
        )
    ]
    return FileDiff(tuple(changes))


def _plain(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def diff_tables(old: pa.Table, new: pa.Table, *, detect_moves: bool = True) -> FileDiff:
    """Compare two manifest tables (pure, vectorized).

    Rows are matched by path with hash lookups (``index_in``/``is_in``), not a
    join: a join loads Arrow's query engine, which costs a short command more
    than the comparison. A removed path and an added path with the same content
    id are paired into a move by the one rule every command uses
    (:func:`dsv.base.moves.pair_moves`).
    """
    if old.num_rows == new.num_rows and old.num_rows and pc.all_true(pc.equal(old.column("path"), new.column("path"))):
        return _diff_aligned(old, new)  # the same paths in the same order: no lookup needed
    old_paths, new_paths = _plain(old.column("path")), _plain(new.column("path"))
    where = pc.index_in(new_paths, old_paths)  # each new row's row in old, or null
    in_old = pc.is_valid(where)
    added = pc.filter_rows(new, pc.invert(in_old))
    removed = pc.filter_rows(old, pc.invert(pc.is_in(old_paths, new_paths)))
    both_new = pc.filter_rows(new, in_old)
    both_old = pc.take_rows(old, pc.drop_null(where))
    differ = pc.or_(pc.not_equal(both_old.column("oid"), both_new.column("oid")), pc.not_equal(both_old.column("mode"), both_new.column("mode")))
    mod_old, mod_new = pc.filter_rows(both_old, differ), pc.filter_rows(both_new, differ)
    moves: list[FileChange] = []
    if detect_moves and added.num_rows and removed.num_rows:
        r_paths, r_oids = removed.column("path").to_pylist(), removed.column("oid").to_pylist()
        a_paths, a_oids = added.column("path").to_pylist(), added.column("oid").to_pylist()
        pairs = pair_moves(zip(r_paths, r_oids), zip(a_paths, a_oids))
        if pairs:
            old_rows = {p: i for i, p in enumerate(r_paths)}
            new_rows = {p: i for i, p in enumerate(a_paths)}
            r_sizes, r_modes = removed.column("size").to_pylist(), removed.column("mode").to_pylist()
            a_sizes, a_modes = added.column("size").to_pylist(), added.column("mode").to_pylist()
            for old_path, new_path in pairs:
                i, j = old_rows[old_path], new_rows[new_path]
                oid = r_oids[i].hex()
                moves.append(FileChange(ChangeKind.MOVED, new_path, old_path, oid, oid, r_sizes[i], a_sizes[j], r_modes[i], a_modes[j]))
            moved_old = pa.array([o for o, _ in pairs], pa.string())
            moved_new = pa.array([n for _, n in pairs], pa.string())
            added = pc.filter_rows(added, pc.invert(pc.is_in(added.column("path"), moved_new)))
            removed = pc.filter_rows(removed, pc.invert(pc.is_in(removed.column("path"), moved_old)))
    changes: list[FileChange] = []
    for r in pc.sort_by(added, "path").to_pylist():
        changes.append(FileChange(ChangeKind.ADDED, r["path"], None, None, _hex_or_none(r["oid"]), None, r["size"], None, r["mode"]))
    for r in pc.sort_by(removed, "path").to_pylist():
        changes.append(FileChange(ChangeKind.REMOVED, r["path"], None, _hex_or_none(r["oid"]), None, r["size"], None, r["mode"], None))
    if mod_new.num_rows:
        order = pc.sort_indices(mod_new.column("path"))
        a, b = pc.take_rows(mod_old, order), pc.take_rows(mod_new, order)
        for p, oa, ob, sa, sb, ma, mb in zip(
            b.column("path").to_pylist(), a.column("oid").to_pylist(), b.column("oid").to_pylist(), a.column("size").to_pylist(),
            b.column("size").to_pylist(), a.column("mode").to_pylist(), b.column("mode").to_pylist(),
        ):
            changes.append(FileChange(ChangeKind.MODIFIED, p, None, _hex_or_none(oa), _hex_or_none(ob), sa, sb, ma, mb))
    changes.extend(sorted(moves, key=lambda c: c.path))
    return FileDiff(tuple(changes))


def diff_manifests(old: Manifest | None, new: Manifest | None, *, detect_moves: bool = True) -> FileDiff:
    """Compare two stored manifests, reading only the chunks they do not share.

    Chunks end at content-defined paths, so an edit that adds or removes no file
    leaves its chunk's first and last path and row count as they were: such pairs
    are compared row by row (:func:`_diff_aligned`, no hash lookups) once their
    paths are checked equal; only the rest goes through :func:`diff_tables`.
    """
    old_ids = old.chunk_ids() if old else []
    new_ids = new.chunk_ids() if new else []
    shared = set(old_ids) & set(new_ids)
    pairs = _same_bounds(old, new, shared) if old and new else []
    modified: tuple[FileChange, ...] = ()
    if pairs and old and new:
        # The row counts the chunks really hold (a forged root may record others).
        pairs = [(o, n, rows) for o, n, rows in pairs if old.load_chunk(o).num_rows == new.load_chunk(n).num_rows == rows]
        a = old.table(chunks=[o for o, _, _ in pairs])
        b = new.table(chunks=[n for _, n, _ in pairs])
        same = pc.equal(a.column("path"), b.column("path"))
        if not pc.all_true(same):
            # Some pairs gained as many paths as they lost: those go the general way.
            ends = list(itertools.accumulate(rows for _, _, rows in pairs))
            off = {bisect.bisect_right(ends, i) for i in pc.indices_nonzero(pc.invert(same)).to_pylist()}
            pairs = [p for i, p in enumerate(pairs) if i not in off]
            a = old.table(chunks=[o for o, _, _ in pairs])
            b = new.table(chunks=[n for _, n, _ in pairs])
        if pairs:
            modified = _diff_aligned(a, b).changes
            shared |= {o for o, _, _ in pairs} | {n for _, n, _ in pairs}
    a = old.table(chunks=[c for c in old_ids if c not in shared]) if old else empty_entries()
    b = new.table(chunks=[c for c in new_ids if c not in shared]) if new else empty_entries()
    rest = diff_tables(a, b, detect_moves=detect_moves)
    if not modified:
        return rest
    # The order diff_tables gives: added, removed, modified (by path), moved.
    kinds = (ChangeKind.ADDED, ChangeKind.REMOVED)
    mods = sorted([c for c in rest.changes if c.kind is ChangeKind.MODIFIED] + list(modified), key=lambda c: c.path)
    return FileDiff(
        tuple([c for c in rest.changes if c.kind in kinds] + mods + [c for c in rest.changes if c.kind is ChangeKind.MOVED])
    )


def _same_bounds(old: Manifest, new: Manifest, shared: set[str]) -> list[tuple[str, str, int]]:
    """``(old chunk, new chunk, rows)``, neither shared, that start and end at the same paths with as many rows, in path order."""
    def keyed(m: Manifest) -> dict[tuple[str, str, int], str]:
        root = m.root
        return {
            (f, last, n): c
            for c, f, last, n in zip(m.chunk_ids(), root.column("first").to_pylist(), root.column("last").to_pylist(), root.column("files").to_pylist())
            if c not in shared
        }

    theirs = keyed(new)
    return [(c, theirs[k], k[2]) for k, c in keyed(old).items() if k in theirs]
