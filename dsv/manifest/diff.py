"""File-level diffs of two manifests: pure, vectorized functions over Arrow tables."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from dsv.manifest.tables import empty_entries

if TYPE_CHECKING:
    from dsv.manifest.tables import Manifest


class ChangeKind(enum.Enum):
    """What happened to one path between two snapshots."""

    ADDED = "added"
    REMOVED = "removed"
    MODIFIED = "modified"
    MOVED = "moved"


@dataclass(frozen=True)
class FileChange:
    """One file-level change. ``old_*`` is ``None`` for added files, ``new_*`` for removed."""

    kind: ChangeKind
    path: str
    old_path: str | None = None
    old_oid: str | None = None
    new_oid: str | None = None
    old_size: int | None = None
    new_size: int | None = None
    old_mode: int | None = None
    new_mode: int | None = None

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


@dataclass(frozen=True)
class FileDiff:
    """All file-level changes between two snapshots, sorted by kind then path."""

    changes: tuple[FileChange, ...]

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


def _rank_within(table: pa.Table, key: str) -> pa.Array:
    """Rank of each row within its run of equal ``key`` values (table sorted by key)."""
    n = table.num_rows
    if n == 0:
        return pa.array([], pa.int64())
    keys = table.column(key).combine_chunks()
    idx = pa.array(range(n), pa.int64())
    change = pc.not_equal(keys.slice(1), keys.slice(0, n - 1))
    starts_mask = pa.concat_arrays([pa.array([True]), change.combine_chunks() if isinstance(change, pa.ChunkedArray) else change])
    starts = pc.if_else(starts_mask, idx, pa.scalar(0, pa.int64()))
    group_start = pc.cumulative_max(starts)
    return pc.subtract(idx, group_start)


def diff_tables(old: pa.Table, new: pa.Table, *, detect_moves: bool = True) -> FileDiff:
    """Compare two manifest tables (pure, vectorized).

    A removed path and an added path with the same content id are paired into a
    move (one-to-one, in path order, when several copies moved).
    """
    joined = old.select(["path", "oid", "size", "mode"]).join(
        new.select(["path", "oid", "size", "mode"]), keys="path", join_type="full outer", left_suffix="_a", right_suffix="_b"
    )
    a_null = pc.is_null(joined.column("oid_a"))
    b_null = pc.is_null(joined.column("oid_b"))
    added = joined.filter(a_null)
    removed = joined.filter(b_null)
    both = joined.filter(pc.and_(pc.invert(a_null), pc.invert(b_null)))
    modified = both.filter(
        pc.or_(pc.not_equal(both.column("oid_a"), both.column("oid_b")), pc.not_equal(both.column("mode_a"), both.column("mode_b")))
    )
    moves: list[FileChange] = []
    if detect_moves and added.num_rows and removed.num_rows:
        rem = removed.select(["path", "oid_a", "size_a", "mode_a"]).rename_columns(["old_path", "oid", "old_size", "old_mode"])
        add = added.select(["path", "oid_b", "size_b", "mode_b"]).rename_columns(["path", "oid", "new_size", "new_mode"])
        rem = rem.sort_by([("oid", "ascending"), ("old_path", "ascending")])
        add = add.sort_by([("oid", "ascending"), ("path", "ascending")])
        rem = rem.append_column("rank", _rank_within(rem, "oid"))
        add = add.append_column("rank", _rank_within(add, "oid"))
        pairs = rem.join(add, keys=["oid", "rank"], join_type="inner")
        if pairs.num_rows:
            moved_old = set(pairs.column("old_path").to_pylist())
            moved_new = set(pairs.column("path").to_pylist())
            for r in pairs.to_pylist():
                moves.append(
                    FileChange(ChangeKind.MOVED, r["path"], r["old_path"], r["oid"].hex(), r["oid"].hex(), r["old_size"], r["new_size"], r["old_mode"], r["new_mode"])
                )
            added = added.filter(pc.invert(pc.is_in(added.column("path"), pa.array(list(moved_new), pa.string()))))
            removed = removed.filter(pc.invert(pc.is_in(removed.column("path"), pa.array(list(moved_old), pa.string()))))
    changes: list[FileChange] = []
    for r in added.sort_by("path").to_pylist():
        changes.append(FileChange(ChangeKind.ADDED, r["path"], None, None, _hex_or_none(r["oid_b"]), None, r["size_b"], None, r["mode_b"]))
    for r in removed.sort_by("path").to_pylist():
        changes.append(FileChange(ChangeKind.REMOVED, r["path"], None, _hex_or_none(r["oid_a"]), None, r["size_a"], None, r["mode_a"], None))
    for r in modified.sort_by("path").to_pylist():
        changes.append(
            FileChange(ChangeKind.MODIFIED, r["path"], None, _hex_or_none(r["oid_a"]), _hex_or_none(r["oid_b"]), r["size_a"], r["size_b"], r["mode_a"], r["mode_b"])
        )
    changes.extend(sorted(moves, key=lambda c: c.path))
    return FileDiff(tuple(changes))


def diff_manifests(old: Manifest | None, new: Manifest | None, *, detect_moves: bool = True) -> FileDiff:
    """Compare two stored manifests, reading only the chunks they do not share."""
    old_ids = old.chunk_ids() if old else []
    new_ids = new.chunk_ids() if new else []
    shared = set(old_ids) & set(new_ids)
    a = old.table(chunks=[c for c in old_ids if c not in shared]) if old else empty_entries()
    b = new.table(chunks=[c for c in new_ids if c not in shared]) if new else empty_entries()
    return diff_tables(a, b, detect_moves=detect_moves)
