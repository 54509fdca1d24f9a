"""Metric deltas beside data changes: what ``dsv changelog --metrics`` joins.

Pure functions from two metrics records and a semantic diff to rows that put,
per class and per slice value, the data change next to each metric's value on
both sides and its delta. Classes or slice values that the metrics name but no
declared sample source has are kept and flagged (``in_data: false``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsv.metrics.records import MetricsEntry
from dsv.semantic.report import SemanticDiff


@dataclass(frozen=True)
class MetricDelta:
    """One metric on both sides."""

    metric: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        """``after - before`` when both exist."""
        return None if self.before is None or self.after is None else round(self.after - self.before, 10)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"metric": self.metric, "before": self.before, "after": self.after, "delta": self.delta}


@dataclass(frozen=True)
class ClassMetrics:
    """A class's data change and its metrics on both sides."""

    cls: str
    in_data: bool
    samples_before: int | None
    samples_after: int | None
    added: int
    removed: int
    relabeled_in: int
    relabeled_out: int
    modified: int
    metrics: tuple[MetricDelta, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "class": self.cls,
            "in_data": self.in_data,
            "samples_before": self.samples_before,
            "samples_after": self.samples_after,
            "added": self.added,
            "removed": self.removed,
            "relabeled_in": self.relabeled_in,
            "relabeled_out": self.relabeled_out,
            "modified": self.modified,
            "metrics": [m.to_dict() for m in self.metrics],
        }


@dataclass(frozen=True)
class SliceMetrics:
    """A slice value's data change and its metrics on both sides."""

    column: str
    value: str
    in_data: bool
    samples_before: int | None
    samples_after: int | None
    metrics: tuple[MetricDelta, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "column": self.column,
            "value": self.value,
            "in_data": self.in_data,
            "samples_before": self.samples_before,
            "samples_after": self.samples_after,
            "metrics": [m.to_dict() for m in self.metrics],
        }


@dataclass(frozen=True)
class MetricsComparison:
    """Metrics of the old and new side of one changelog step, joined with its data changes."""

    old: MetricsEntry | None
    new: MetricsEntry | None
    overall: tuple[MetricDelta, ...] = ()
    classes: tuple[ClassMetrics, ...] = ()
    slices: tuple[SliceMetrics, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (docs/metrics.md)."""
        return {
            "old": self.old.to_dict(values=False) if self.old else None,
            "new": self.new.to_dict(values=False) if self.new else None,
            "overall": [m.to_dict() for m in self.overall],
            "classes": [c.to_dict() for c in self.classes],
            "slices": [s.to_dict() for s in self.slices],
        }


def _deltas(before: dict[str, float], after: dict[str, float]) -> tuple[MetricDelta, ...]:
    return tuple(MetricDelta(m, before.get(m), after.get(m)) for m in sorted(set(before) | set(after)))


def compare(old: MetricsEntry | None, new: MetricsEntry | None, diff: SemanticDiff) -> MetricsComparison:
    """Join two records' metrics with a step's per-class and per-slice data changes."""
    o = old.record if old else None
    n = new.record if new else None
    overall = _deltas(o.overall if o else {}, n.overall if n else {})
    data_classes: dict[str, list[Any]] = {}
    for source in diff.sources:
        for c in source.classes:
            if c.cls is not None:
                data_classes.setdefault(c.cls, []).append(c)
    class_names = sorted(set(o.classes if o else {}) | set(n.classes if n else {}))
    classes = []
    for cls in class_names:
        rows = data_classes.get(cls, [])
        classes.append(
            ClassMetrics(
                cls,
                bool(rows),
                sum(r.before for r in rows) if rows else None,
                sum(r.after for r in rows) if rows else None,
                sum(r.added for r in rows),
                sum(r.removed for r in rows),
                sum(r.relabeled_in for r in rows),
                sum(r.relabeled_out for r in rows),
                sum(r.modified for r in rows),
                _deltas((o.classes if o else {}).get(cls, {}), (n.classes if n else {}).get(cls, {})),
            )
        )
    data_slices: dict[tuple[str, str], list[Any]] = {}
    for source in diff.sources:
        for s in source.slices:
            if s.value is not None:
                data_slices.setdefault((s.column, s.value), []).append(s)
    slice_keys = sorted(
        {(c, v) for c, vals in (o.slices if o else {}).items() for v in vals} | {(c, v) for c, vals in (n.slices if n else {}).items() for v in vals}
    )
    slices = []
    for col, value in slice_keys:
        rows = data_slices.get((col, value), [])
        slices.append(
            SliceMetrics(
                col,
                value,
                bool(rows),
                sum(r.before for r in rows) if rows else None,
                sum(r.after for r in rows) if rows else None,
                _deltas((o.slices if o else {}).get(col, {}).get(value, {}), (n.slices if n else {}).get(col, {}).get(value, {})),
            )
        )
    return MetricsComparison(old, new, overall, tuple(classes), tuple(slices))


def pick(entries: list[MetricsEntry], name: str | None) -> MetricsEntry | None:
    """The record named ``name``, or the newest one."""
    if name is not None:
        named = [e for e in entries if e.record.name == name]
        return named[-1] if named else None
    return entries[-1] if entries else None
