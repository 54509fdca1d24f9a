"""Result models of a semantic diff; ``to_dict()`` is the stable JSON schema (docs/diff-format.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsv.base.tables import ResultTable


@dataclass(frozen=True)
class ClassRow:
    """One class: counts on both sides and what moved."""

    cls: str | None
    before: int
    after: int
    added: int
    removed: int
    relabeled_in: int
    relabeled_out: int
    modified: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "class": self.cls,
            "before": self.before,
            "after": self.after,
            "added": self.added,
            "removed": self.removed,
            "relabeled_in": self.relabeled_in,
            "relabeled_out": self.relabeled_out,
            "modified": self.modified,
        }


@dataclass(frozen=True)
class RelabelRow:
    """How many samples moved from one class to another."""

    src: str | None
    dst: str | None
    count: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"from": self.src, "to": self.dst, "count": self.count}


@dataclass(frozen=True)
class SliceRow:
    """One value of one slice column."""

    column: str
    value: str | None
    before: int
    after: int
    added: int
    removed: int
    relabeled: int
    modified: int
    moved_in: int = 0  # on both sides; had another value of this column before
    moved_out: int = 0  # on both sides; has another value of this column now

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "column": self.column,
            "value": self.value,
            "before": self.before,
            "after": self.after,
            "added": self.added,
            "removed": self.removed,
            "relabeled": self.relabeled,
            "modified": self.modified,
            "moved_in": self.moved_in,
            "moved_out": self.moved_out,
        }


@dataclass(frozen=True)
class SliceClassRow:
    """Per class within one slice value (``--by``)."""

    column: str
    value: str | None
    row: ClassRow
    moved_in: int = 0  # samples of the class that came from another value of the column
    moved_out: int = 0  # samples of the class that left for another value

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"column": self.column, "value": self.value, **self.row.to_dict(), "moved_in": self.moved_in, "moved_out": self.moved_out}


@dataclass(frozen=True)
class SchemaChange:
    """A column added, removed or whose type changed."""

    column: str
    change: str  # added | removed | type_changed
    old_type: str | None = None
    new_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"column": self.column, "change": self.change, "old_type": self.old_type, "new_type": self.new_type}


@dataclass(frozen=True)
class CellChange:
    """One changed cell of a sample present on both sides."""

    key: dict[str, Any]
    column: str
    old: Any
    new: Any
    detail: list[dict[str, Any]] | None = None  # changes inside nested values (dsv.semantic.detail)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"key": self.key, "column": self.column, "old": self.old, "new": self.new, "detail": self.detail}


@dataclass(frozen=True)
class Totals:
    """Sample counts of one source."""

    before: int = 0
    after: int = 0
    added: int = 0
    removed: int = 0
    relabeled: int = 0
    modified: int = 0
    unchanged: int = 0
    moved: int = 0  # on both sides, a slice value changed (split folder, slice column)

    def to_dict(self) -> dict[str, int]:
        """JSON form."""
        return dict(self.__dict__)

    @property
    def changed(self) -> bool:
        """Whether any sample changed."""
        return bool(self.added or self.removed or self.relabeled or self.modified or self.moved)


@dataclass(frozen=True)
class SourceDiff:
    """Everything the diff found for one declared source."""

    name: str
    kind: str  # folder | table
    read: bool  # False when the source's content was identical and not read
    totals: Totals = Totals()
    classes: tuple[ClassRow, ...] = ()
    relabels: tuple[RelabelRow, ...] = ()
    slices: tuple[SliceRow, ...] = ()
    by: tuple[SliceClassRow, ...] = ()
    imbalance_before: float | None = None
    imbalance_after: float | None = None
    schema: tuple[SchemaChange, ...] = ()
    cells: tuple[CellChange, ...] = ()
    cells_truncated: bool = False
    warnings: tuple[str, ...] = ()  # reported in SemanticDiff.warnings, not in the source's JSON

    @property
    def changed(self) -> bool:
        """Whether anything changed in this source."""
        return self.totals.changed or bool(self.schema)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "read": self.read,
            "totals": self.totals.to_dict(),
            "imbalance": {"before": self.imbalance_before, "after": self.imbalance_after},
            "classes": [c.to_dict() for c in self.classes],
            "relabels": [r.to_dict() for r in self.relabels],
            "slices": [s.to_dict() for s in self.slices],
            "by": [b.to_dict() for b in self.by],
            "schema": [s.to_dict() for s in self.schema],
            "rows": {"cells": [c.to_dict() for c in self.cells], "truncated": self.cells_truncated},
        }


@dataclass(frozen=True)
class SemanticDiff:
    """A semantic diff between two sides (revisions or the working tree)."""

    old: str
    new: str
    files: dict[str, int]
    sources: tuple[SourceDiff, ...] = field(default_factory=tuple)
    file_changes: tuple[Any, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether anything at all differs."""
        return any(self.files.values()) or any(s.changed for s in self.sources)

    # -- the same content as tables (pandas and Arrow), for notebooks -----------------

    def __bool__(self) -> bool:
        return self.changed

    def counts(self) -> dict[str, int]:
        """File changes per kind (added, removed, modified, moved)."""
        return dict(self.files)

    @property
    def changes(self) -> tuple[Any, ...]:
        """The file-level changes (:class:`dsv.manifest.FileChange`)."""
        return self.file_changes

    @property
    def file_table(self) -> ResultTable:
        """One row per changed file: kind, path, old_path, ids, sizes and modes."""
        return ResultTable([c.to_dict() for c in self.file_changes], FILE_COLUMNS)

    @property
    def totals(self) -> ResultTable:
        """One row per source: samples before and after, added, removed, relabeled, moved, modified."""
        rows = [{"source": s.name, "kind": s.kind, "read": s.read, **s.totals.to_dict(),
                 "imbalance_before": s.imbalance_before, "imbalance_after": s.imbalance_after} for s in self.sources]
        return ResultTable(rows, TOTALS_COLUMNS)

    @property
    def classes(self) -> ResultTable:
        """One row per source and class: counts before and after and what moved."""
        return ResultTable([{"source": s.name, **c.to_dict()} for s in self.sources for c in s.classes], CLASS_COLUMNS)

    @property
    def relabels(self) -> ResultTable:
        """The relabel matrix in long form: source, from, to, count."""
        return ResultTable([{"source": s.name, **r.to_dict()} for s in self.sources for r in s.relabels], RELABEL_COLUMNS)

    @property
    def slices(self) -> ResultTable:
        """One row per source, slice column and value."""
        return ResultTable([{"source": s.name, **r.to_dict()} for s in self.sources for r in s.slices], SLICE_COLUMNS)

    @property
    def cells(self) -> ResultTable:
        """Changed cells of table sources (as many as the diff was asked for): key as JSON text."""
        import json

        rows = [
            {"source": s.name, "key": json.dumps(c.key, sort_keys=True, default=str), "column": c.column, "old": _text(c.old), "new": _text(c.new)}
            for s in self.sources
            for c in s.cells
        ]
        return ResultTable(rows, CELL_COLUMNS)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (docs/diff-format.md)."""
        return {
            "format": 1,
            "old": self.old,
            "new": self.new,
            "files": {"counts": self.files, "changes": [c.to_dict() for c in self.file_changes]},
            "sources": [s.to_dict() for s in self.sources],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class SourceCheck:
    """What ``dsv check`` found for one declared source."""

    name: str
    kind: str  # folder | table
    samples: int | None = None
    classes: int | None = None
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """No problem (warnings allowed)."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON form (docs/cli.md, ``dsv check``)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "ok": self.ok,
            "samples": self.samples,
            "classes": self.classes,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class DeclarationCheck:
    """``dsv check``: the ``dsv.toml`` of a revision (or the working tree) validated against its files."""

    revision: str
    declaration: str | None  # the file checked, None when there is none
    sources: tuple[SourceCheck, ...] = ()
    problems: tuple[str, ...] = ()  # about the declaration as a whole

    @property
    def ok(self) -> bool:
        """No problem anywhere."""
        return not self.problems and all(s.ok for s in self.sources)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (docs/cli.md, ``dsv check``)."""
        return {
            "ok": self.ok,
            "revision": self.revision,
            "declaration": self.declaration,
            "problems": list(self.problems),
            "sources": [s.to_dict() for s in self.sources],
        }


def _text(value: Any) -> str | None:
    """A cell value as text for a table column (JSON for nested values)."""
    import json

    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


FILE_COLUMNS = [("kind", "string"), ("path", "string"), ("old_path", "string"), ("old_oid", "string"), ("new_oid", "string"),
                ("old_size", "int64"), ("new_size", "int64"), ("old_mode", "string"), ("new_mode", "string")]
TOTALS_COLUMNS = [("source", "string"), ("kind", "string"), ("read", "bool"), ("before", "int64"), ("after", "int64"), ("added", "int64"),
                  ("removed", "int64"), ("relabeled", "int64"), ("moved", "int64"), ("modified", "int64"), ("unchanged", "int64"),
                  ("imbalance_before", "float64"), ("imbalance_after", "float64")]
CLASS_COLUMNS = [("source", "string"), ("class", "string"), ("before", "int64"), ("after", "int64"), ("added", "int64"), ("removed", "int64"),
                 ("relabeled_in", "int64"), ("relabeled_out", "int64"), ("modified", "int64")]
RELABEL_COLUMNS = [("source", "string"), ("from", "string"), ("to", "string"), ("count", "int64")]
SLICE_COLUMNS = [("source", "string"), ("column", "string"), ("value", "string"), ("before", "int64"), ("after", "int64"), ("added", "int64"),
                 ("removed", "int64"), ("relabeled", "int64"), ("modified", "int64"), ("moved_in", "int64"), ("moved_out", "int64")]
CELL_COLUMNS = [("source", "string"), ("key", "string"), ("column", "string"), ("old", "string"), ("new", "string")]
