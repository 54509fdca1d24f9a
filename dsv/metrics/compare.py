"""Metric deltas beside data changes: what ``dsv changelog --metrics`` joins.

Pure functions from two metrics records and a semantic diff to rows that put,
per class and per slice value, the data change of one sample source next to
each metric's value on both sides and its delta. A record is joined with one
source; several sources are shown apart, never summed (a folder and a table
often describe the same images). Classes or slice values that the metrics name
but the source lacks are kept and flagged (``in_data: false``).
"""

from __future__ import annotations

import decimal
import math
from dataclasses import dataclass, field
from typing import Any

from dsv.metrics.records import MetricsEntry
from dsv.semantic.report import SemanticDiff, SourceDiff


@dataclass(frozen=True)
class MetricDelta:
    """One metric on both sides."""

    metric: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        """``after - before`` when both exist, at full precision.

        Computed exactly on the decimal values as stored (each float's shortest
        round-trip form), then rounded once to a float: ``0.86 - 0.81`` is
        ``0.05``, not ``0.050000000000000044``, and a delta of ``2e-12`` stays
        ``2e-12`` (no fixed number of decimals).
        """
        if self.before is None or self.after is None:
            return None
        return exact_difference(self.after, self.before)

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
class SourceMetrics:
    """The metrics joined with the data changes of one sample source."""

    name: str | None  # None: the step has no sample source
    kind: str | None
    classes: tuple[ClassMetrics, ...] = ()
    slices: tuple[SliceMetrics, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "kind": self.kind, "classes": [c.to_dict() for c in self.classes], "slices": [s.to_dict() for s in self.slices]}


@dataclass(frozen=True)
class MetricsComparison:
    """Metrics of the old and new side of one changelog step, joined with its data changes.

    A record is joined with **one** sample source (``source``): the one asked for,
    the one the record names (its ``source`` metadata), or the step's only one.
    With several sources and none named, ``sources`` holds one table per source,
    shown apart: counts of different sources are never added up.
    """

    old: MetricsEntry | None
    new: MetricsEntry | None
    overall: tuple[MetricDelta, ...] = ()
    source: str | None = None
    sources: tuple[SourceMetrics, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = ()

    @property
    def classes(self) -> tuple[ClassMetrics, ...]:
        """The per-class rows when one source is joined (else empty: see ``sources``)."""
        return self.sources[0].classes if len(self.sources) == 1 else ()

    @property
    def slices(self) -> tuple[SliceMetrics, ...]:
        """The per-slice rows when one source is joined (else empty: see ``sources``)."""
        return self.sources[0].slices if len(self.sources) == 1 else ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form (docs/cli.md, ``dsv changelog``)."""
        return {
            "old": self.old.to_dict(values=False) if self.old else None,
            "new": self.new.to_dict(values=False) if self.new else None,
            "overall": [m.to_dict() for m in self.overall],
            "source": self.source,
            "classes": [c.to_dict() for c in self.classes],
            "slices": [s.to_dict() for s in self.slices],
            "sources": [t.to_dict() for t in self.sources],
            "warnings": list(self.warnings),
        }


def exact_difference(after: float, before: float) -> float:
    """``after - before`` on the decimal values the floats print as, rounded once to a float."""
    if not (math.isfinite(after) and math.isfinite(before)):
        return after - before
    with decimal.localcontext() as ctx:
        ctx.prec = 40  # exact for two 17-digit decimals within 20 orders of magnitude; else correctly rounded
        return float(decimal.Decimal(repr(after)) - decimal.Decimal(repr(before)))


SOURCE_META = "source"
"""The metadata key by which a metrics record names the sample source it was evaluated on."""


def _deltas(before: dict[str, float], after: dict[str, float]) -> tuple[MetricDelta, ...]:
    return tuple(MetricDelta(m, before.get(m), after.get(m)) for m in sorted(set(before) | set(after)))


def compare(old: MetricsEntry | None, new: MetricsEntry | None, diff: SemanticDiff, *, source: str | None = None) -> MetricsComparison:
    """Join two records' metrics with a step's per-class and per-slice data changes.

    ``source`` names the sample source to join (``--source``); without it, the
    source a record names in its ``source`` metadata (the new record's, else the
    old one's), else the step's only source; with several and none named, each
    source gets its own table.
    """
    o = old.record if old else None
    n = new.record if new else None
    overall = _deltas(o.overall if o else {}, n.overall if n else {})
    by_name = {s.name: s for s in diff.sources}
    warnings: list[str] = []
    wanted = source
    named = {rec.name: rec.meta[SOURCE_META] for rec in (o, n) if rec is not None and rec.meta.get(SOURCE_META)}
    if o is not None and n is not None and len(set(named.values())) == 2:
        joined = f"joined with {source!r} (--source)" if source is not None else f"joined with {named[n.name]!r}, the new record's"
        warnings.append(
            f"metrics records {o.name!r} and {n.name!r} name different sample sources "
            f"({named[o.name]!r} and {named[n.name]!r}): their deltas compare models evaluated on different data; {joined}"
        )
    if wanted is None:
        for rec in (n, o):
            if rec is not None and rec.meta.get(SOURCE_META):
                wanted = rec.meta[SOURCE_META]
                if wanted not in by_name:
                    warnings.append(
                        f"metrics record {rec.name!r} names the sample source {wanted!r}, which this step does not have "
                        f"(sources: {', '.join(by_name) or 'none'}); showing each source apart"
                    )
                    wanted = None
                break
    # A source absent at this step (a table added later) holds no samples to join.
    present = [s for s in diff.sources if s.read]
    tables: tuple[SourceMetrics, ...]
    if wanted is not None:
        tables = (_join(o, n, wanted, by_name.get(wanted)),)
    elif len(present) == 1:
        wanted = present[0].name
        tables = (_join(o, n, wanted, present[0]),)
    elif present:
        tables = tuple(_join(o, n, s.name, s) for s in present)
    else:
        tables = (_join(o, n, None, None),)
    return MetricsComparison(old, new, overall, wanted, tables, tuple(warnings))


def _join(o: Any, n: Any, name: str | None, data: SourceDiff | None) -> SourceMetrics:
    """One source's per-class and per-slice rows: its data counts beside each metric."""
    data_classes = {c.cls: c for c in (data.classes if data else ()) if c.cls is not None}
    classes = []
    for cls in sorted(set(o.classes if o else {}) | set(n.classes if n else {})):
        row = data_classes.get(cls)
        classes.append(
            ClassMetrics(
                cls,
                row is not None,
                row.before if row else None,
                row.after if row else None,
                row.added if row else 0,
                row.removed if row else 0,
                row.relabeled_in if row else 0,
                row.relabeled_out if row else 0,
                row.modified if row else 0,
                _deltas((o.classes if o else {}).get(cls, {}), (n.classes if n else {}).get(cls, {})),
            )
        )
    data_slices = {(s.column, s.value): s for s in (data.slices if data else ()) if s.value is not None}
    slice_keys = sorted(
        {(c, v) for c, vals in (o.slices if o else {}).items() for v in vals} | {(c, v) for c, vals in (n.slices if n else {}).items() for v in vals}
    )
    slices = []
    for col, value in slice_keys:
        srow = data_slices.get((col, value))
        slices.append(
            SliceMetrics(
                col,
                value,
                srow is not None,
                srow.before if srow else None,
                srow.after if srow else None,
                _deltas((o.slices if o else {}).get(col, {}).get(value, {}), (n.slices if n else {}).get(col, {}).get(value, {})),
            )
        )
    return SourceMetrics(name, data.kind if data else None, tuple(classes), tuple(slices))


def pick(entries: list[MetricsEntry], name: str | None) -> MetricsEntry | None:
    """The record named ``name``, or the newest one."""
    if name is not None:
        named = [e for e in entries if e.record.name == name]
        return named[-1] if named else None
    return entries[-1] if entries else None
