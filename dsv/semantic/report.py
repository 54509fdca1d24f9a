"""Result models of a semantic diff; ``to_dict()`` is the stable JSON schema (docs/diff-format.md).

Immutable :class:`~dsv.base.records.FrozenRecord`\\ s rather than frozen dataclasses:
every ``dsv diff`` defines these eleven classes, which as dataclasses cost it
~12 ms of start-up (docs/architecture.md, "Start-up of status").
"""

from __future__ import annotations

from dsv.base.records import FrozenRecord, init_field
from dsv.base.tables import ResultTable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class ClassRow(FrozenRecord):
    """One class: counts on both sides and what moved."""

    __slots__ = ("cls", "before", "after", "added", "removed", "relabeled_in", "relabeled_out", "modified")

    cls: str | None
    before: int
    after: int
    added: int
    removed: int
    relabeled_in: int
    relabeled_out: int
    modified: int

    def __init__(
        self,
        cls: str | None,
        before: int,
        after: int,
        added: int,
        removed: int,
        relabeled_in: int,
        relabeled_out: int,
        modified: int,
    ) -> None:
        init_field(self, "cls", cls)
        init_field(self, "before", before)
        init_field(self, "after", after)
        init_field(self, "added", added)
        init_field(self, "removed", removed)
        init_field(self, "relabeled_in", relabeled_in)
        init_field(self, "relabeled_out", relabeled_out)
        init_field(self, "modified", modified)

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


class RelabelRow(FrozenRecord):
    """How many samples moved from one class to another."""

    __slots__ = ("src", "dst", "count")

    src: str | None
    dst: str | None
    count: int

    def __init__(self, src: str | None, dst: str | None, count: int) -> None:
        init_field(self, "src", src)
        init_field(self, "dst", dst)
        init_field(self, "count", count)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"from": self.src, "to": self.dst, "count": self.count}


class SliceRow(FrozenRecord):
    """One value of one slice column."""

    __slots__ = ("column", "value", "before", "after", "added", "removed", "relabeled", "modified", "moved_in", "moved_out")

    column: str
    value: str | None
    before: int
    after: int
    added: int
    removed: int
    relabeled: int
    modified: int
    moved_in: int
    """On both sides; had another value of this column before."""
    moved_out: int
    """On both sides; has another value of this column now."""

    def __init__(
        self,
        column: str,
        value: str | None,
        before: int,
        after: int,
        added: int,
        removed: int,
        relabeled: int,
        modified: int,
        moved_in: int = 0,
        moved_out: int = 0,
    ) -> None:
        init_field(self, "column", column)
        init_field(self, "value", value)
        init_field(self, "before", before)
        init_field(self, "after", after)
        init_field(self, "added", added)
        init_field(self, "removed", removed)
        init_field(self, "relabeled", relabeled)
        init_field(self, "modified", modified)
        init_field(self, "moved_in", moved_in)
        init_field(self, "moved_out", moved_out)

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


class SliceClassRow(FrozenRecord):
    """Per class within one slice value (``--by``)."""

    __slots__ = ("column", "value", "row", "moved_in", "moved_out")

    column: str
    value: str | None
    row: ClassRow
    moved_in: int
    """Samples of the class that came from another value of the column."""
    moved_out: int
    """Samples of the class that left for another value."""

    def __init__(self, column: str, value: str | None, row: ClassRow, moved_in: int = 0, moved_out: int = 0) -> None:
        init_field(self, "column", column)
        init_field(self, "value", value)
        init_field(self, "row", row)
        init_field(self, "moved_in", moved_in)
        init_field(self, "moved_out", moved_out)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"column": self.column, "value": self.value, **self.row.to_dict(), "moved_in": self.moved_in, "moved_out": self.moved_out}


class SchemaChange(FrozenRecord):
    """A column added, removed or whose type changed."""

    __slots__ = ("column", "change", "old_type", "new_type")

    column: str
    change: str
    """``added``, ``removed`` or ``type_changed``."""
    old_type: str | None
    new_type: str | None

    def __init__(self, column: str, change: str, old_type: str | None = None, new_type: str | None = None) -> None:
        init_field(self, "column", column)
        init_field(self, "change", change)
        init_field(self, "old_type", old_type)
        init_field(self, "new_type", new_type)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"column": self.column, "change": self.change, "old_type": self.old_type, "new_type": self.new_type}


class CellChange(FrozenRecord):
    """One changed cell of a sample present on both sides."""

    __slots__ = ("key", "column", "old", "new", "detail")

    key: dict[str, Any]
    column: str
    old: Any
    new: Any
    detail: list[dict[str, Any]] | None
    """Changes inside nested values (:mod:`dsv.semantic.detail`)."""

    def __init__(self, key: dict[str, Any], column: str, old: Any, new: Any, detail: list[dict[str, Any]] | None = None) -> None:
        init_field(self, "key", key)
        init_field(self, "column", column)
        init_field(self, "old", old)
        init_field(self, "new", new)
        init_field(self, "detail", detail)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"key": self.key, "column": self.column, "old": self.old, "new": self.new, "detail": self.detail}


class Totals(FrozenRecord):
    """Sample counts of one source."""

    __slots__ = ("before", "after", "added", "removed", "relabeled", "modified", "unchanged", "moved")

    before: int
    after: int
    added: int
    removed: int
    relabeled: int
    modified: int
    unchanged: int
    moved: int
    """On both sides, a slice value changed (split folder, slice column)."""

    def __init__(
        self,
        before: int = 0,
        after: int = 0,
        added: int = 0,
        removed: int = 0,
        relabeled: int = 0,
        modified: int = 0,
        unchanged: int = 0,
        moved: int = 0,
    ) -> None:
        init_field(self, "before", before)
        init_field(self, "after", after)
        init_field(self, "added", added)
        init_field(self, "removed", removed)
        init_field(self, "relabeled", relabeled)
        init_field(self, "modified", modified)
        init_field(self, "unchanged", unchanged)
        init_field(self, "moved", moved)

    def to_dict(self) -> dict[str, int]:
        """JSON form."""
        return {name: getattr(self, name) for name in self.__slots__}

    @property
    def changed(self) -> bool:
        """Whether any sample changed."""
        return bool(self.added or self.removed or self.relabeled or self.modified or self.moved)


_NO_TOTALS = Totals()


class SourceDiff(FrozenRecord):
    """Everything the diff found for one declared source."""

    __slots__ = ("name", "kind", "read", "totals", "classes", "relabels", "slices", "by", "imbalance_before", "imbalance_after", "schema", "cells", "cells_truncated", "warnings")

    name: str
    kind: str
    """``folder`` or ``table``."""
    read: bool
    """False when the source's content was identical and not read."""
    totals: Totals
    classes: tuple[ClassRow, ...]
    relabels: tuple[RelabelRow, ...]
    slices: tuple[SliceRow, ...]
    by: tuple[SliceClassRow, ...]
    imbalance_before: float | None
    imbalance_after: float | None
    schema: tuple[SchemaChange, ...]
    cells: tuple[CellChange, ...]
    cells_truncated: bool
    warnings: tuple[str, ...]
    """Reported in :attr:`SemanticDiff.warnings`, not in the source's JSON."""

    def __init__(
        self,
        name: str,
        kind: str,
        read: bool,
        totals: Totals = _NO_TOTALS,
        classes: tuple[ClassRow, ...] = (),
        relabels: tuple[RelabelRow, ...] = (),
        slices: tuple[SliceRow, ...] = (),
        by: tuple[SliceClassRow, ...] = (),
        imbalance_before: float | None = None,
        imbalance_after: float | None = None,
        schema: tuple[SchemaChange, ...] = (),
        cells: tuple[CellChange, ...] = (),
        cells_truncated: bool = False,
        warnings: tuple[str, ...] = (),
    ) -> None:
        init_field(self, "name", name)
        init_field(self, "kind", kind)
        init_field(self, "read", read)
        init_field(self, "totals", totals)
        init_field(self, "classes", classes)
        init_field(self, "relabels", relabels)
        init_field(self, "slices", slices)
        init_field(self, "by", by)
        init_field(self, "imbalance_before", imbalance_before)
        init_field(self, "imbalance_after", imbalance_after)
        init_field(self, "schema", schema)
        init_field(self, "cells", cells)
        init_field(self, "cells_truncated", cells_truncated)
        init_field(self, "warnings", warnings)

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


class SemanticDiff(FrozenRecord):
    """A semantic diff between two sides (revisions or the working tree)."""

    __slots__ = ("old", "new", "files", "sources", "file_changes", "warnings")

    old: str
    new: str
    files: dict[str, int]
    sources: tuple[SourceDiff, ...]
    file_changes: tuple[Any, ...]
    warnings: tuple[str, ...]

    def __init__(
        self,
        old: str,
        new: str,
        files: dict[str, int],
        sources: tuple[SourceDiff, ...] = (),
        file_changes: tuple[Any, ...] = (),
        warnings: tuple[str, ...] = (),
    ) -> None:
        init_field(self, "old", old)
        init_field(self, "new", new)
        init_field(self, "files", files)
        init_field(self, "sources", sources)
        init_field(self, "file_changes", file_changes)
        init_field(self, "warnings", warnings)

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


class SourceCheck(FrozenRecord):
    """What ``dsv check`` found for one declared source."""

    __slots__ = ("name", "kind", "samples", "classes", "problems", "warnings")

    name: str
    kind: str
    """``folder`` or ``table``."""
    samples: int | None
    classes: int | None
    problems: tuple[str, ...]
    warnings: tuple[str, ...]

    def __init__(
        self,
        name: str,
        kind: str,
        samples: int | None = None,
        classes: int | None = None,
        problems: tuple[str, ...] = (),
        warnings: tuple[str, ...] = (),
    ) -> None:
        init_field(self, "name", name)
        init_field(self, "kind", kind)
        init_field(self, "samples", samples)
        init_field(self, "classes", classes)
        init_field(self, "problems", problems)
        init_field(self, "warnings", warnings)

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


class DeclarationCheck(FrozenRecord):
    """``dsv check``: the ``dsv.toml`` of a revision (or the working tree) validated against its files."""

    __slots__ = ("revision", "declaration", "sources", "problems")

    revision: str
    declaration: str | None
    """The file checked, None when there is none."""
    sources: tuple[SourceCheck, ...]
    problems: tuple[str, ...]
    """About the declaration as a whole."""

    def __init__(self, revision: str, declaration: str | None, sources: tuple[SourceCheck, ...] = (), problems: tuple[str, ...] = ()) -> None:
        init_field(self, "revision", revision)
        init_field(self, "declaration", declaration)
        init_field(self, "sources", sources)
        init_field(self, "problems", problems)

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
