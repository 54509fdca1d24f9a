"""Metrics records: a model's scores on one dataset version, attached after the fact.

A record is a JSON document stored as an object; the ref
``refs/metrics/<commit id>/<name>`` points at it, like git notes: the commit id
does not change when metrics are attached, a commit can carry several records
(models, runs), and records travel with the refs. A metrics ref keeps its record
and the commit alive for gc.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import model_validator

from dsv.base.tables import ResultList
from dsv.base.errors import MetricsExistsError
from dsv.base.ondisk import OnDiskModel, canonical_json
from dsv.history.objects import AwareDatetime, ObjectIdStr
from dsv.history.refs import RefStore, check_ref_name
from dsv.metrics.formats import MetricSet
from dsv.metrics.predictions import PredictionsRef

if TYPE_CHECKING:
    from dsv.store.base import ObjectStore

METRICS = "refs/metrics"


class MetricsRecord(OnDiskModel):
    """One metrics record (canonical JSON, docs/format.md).

    Format 1 records carry metrics only. A record with per-sample predictions is
    written as format 2 (``predictions`` names the stored table), so a dsv that
    predates predictions refuses it with "upgrade dsv" rather than misreading it;
    a record without predictions stays format 1, byte for byte as before.
    """

    max_format: ClassVar[int] = 2
    format: Literal[1, 2] = 1  # type: ignore[assignment]
    type: Literal["metrics"] = "metrics"
    commit: ObjectIdStr
    name: str
    author: str
    email: str = ""
    time: AwareDatetime
    meta: dict[str, str] = {}
    source_format: Literal["sklearn", "flat", "dsv"]
    overall: dict[str, float] = {}
    classes: dict[str, dict[str, float]] = {}
    slices: dict[str, dict[str, dict[str, float]]] = {}
    predictions: PredictionsRef | None = None

    @model_validator(mode="after")
    def _format_fits(self) -> "MetricsRecord":
        if (self.predictions is not None) != (self.format == 2):
            raise ValueError("a metrics record is format 2 exactly when it carries predictions")
        return self

    def to_json_bytes(self) -> bytes:
        """Canonical JSON; without predictions exactly the format-1 document (no ``predictions`` key)."""
        data = self.model_dump(mode="json")
        if self.predictions is None:
            data.pop("predictions")
        return canonical_json(data)

    def summary(self, limit: int = 4) -> str:
        """A few headline overall metrics, e.g. ``accuracy=0.912 macro_avg.f1=0.887`` (numbers as :mod:`dsv.metrics.numbers` writes them)."""
        from dsv.metrics.numbers import format_value

        preferred = ["accuracy", "macro_avg.f1", "f1", "weighted_avg.f1", "loss"]
        keys = [k for k in preferred if k in self.overall] + sorted(k for k in self.overall if k not in preferred)
        return " ".join(f"{k}={format_value(self.overall[k])}" for k in keys[:limit])


@dataclass(frozen=True)
class MetricsEntry:
    """A stored record and where it lives."""

    oid: str
    record: MetricsRecord

    def to_dict(self, *, values: bool = True) -> dict[str, Any]:
        """JSON form (docs/cli.md, ``dsv metrics``)."""
        r = self.record
        out: dict[str, Any] = {
            "id": self.oid,
            "commit": r.commit,
            "name": r.name,
            "author": r.author,
            "time": r.time.isoformat(),
            "meta": dict(r.meta),
            "source_format": r.source_format,
            "predictions": r.predictions.model_dump() if r.predictions else None,
        }
        if values:
            out.update(overall=dict(r.overall), classes={k: dict(v) for k, v in r.classes.items()}, slices=r.model_dump()["slices"])
        return out


class MetricsResult(ResultList):
    """Metrics records; as a table, one row per value (long form)."""

    columns = [
        ("commit", "string"), ("record", "string"), ("time", "timestamp"), ("scope", "string"), ("class", "string"),
        ("slice", "string"), ("value_of", "string"), ("metric", "string"), ("value", "float64"),
    ]

    def to_dict(self, *, values: bool = True) -> list[dict[str, Any]]:  # type: ignore[override]
        """The ``dsv metrics show --json`` document (``values=False``: ``dsv metrics list --json``)."""
        return [e.to_dict(values=values) for e in self]

    def rows_of(self, item: MetricsEntry) -> list[dict[str, Any]]:
        """Every value of one record."""
        import datetime as dt

        r = item.record
        base = {"commit": r.commit, "record": r.name, "time": r.time.astimezone(dt.timezone.utc)}
        rows = [{**base, "scope": "overall", "class": None, "slice": None, "value_of": None, "metric": m, "value": v} for m, v in r.overall.items()]
        rows += [
            {**base, "scope": "class", "class": c, "slice": None, "value_of": None, "metric": m, "value": v} for c, ms in r.classes.items() for m, v in ms.items()
        ]
        rows += [
            {**base, "scope": "slice", "class": None, "slice": col, "value_of": val, "metric": m, "value": v}
            for col, values in r.slices.items()
            for val, ms in values.items()
            for m, v in ms.items()
        ]
        return rows


def record_ref(commit: str, name: str) -> str:
    """The ref holding the record ``name`` of ``commit`` (record names follow the ref-name rules)."""
    check_ref_name(name)
    return f"{METRICS}/{commit}/{name}"


def make_record(
    commit: str,
    name: str,
    metrics: MetricSet,
    *,
    author: str,
    email: str,
    meta: dict[str, str],
    time: dt.datetime,
    predictions: PredictionsRef | None = None,
) -> MetricsRecord:
    """A record for ``commit`` from parsed metrics (and the reference to its stored predictions)."""
    return MetricsRecord(
        format=2 if predictions is not None else 1,
        predictions=predictions,
        commit=commit,
        name=name,
        author=author,
        email=email,
        time=time,
        meta=dict(meta),
        source_format=metrics.source_format,
        overall=dict(metrics.overall),
        classes={k: dict(v) for k, v in metrics.classes.items()},
        slices={c: {v: dict(m) for v, m in vals.items()} for c, vals in metrics.slices.items()},
    )


def attach(store: "ObjectStore", refs: RefStore, record: MetricsRecord, *, force: bool, predictions: bytes | None = None) -> str:
    """Store ``record`` (after its predictions' bytes, in one transaction) and point its ref at it.

    An existing name is refused unless ``force``.
    """
    ref = record_ref(record.commit, record.name)
    current = refs.read(ref)
    if current is not None and not force:
        raise MetricsExistsError(record.name, record.commit)
    writer = store.begin_write()
    try:
        if record.predictions is not None:
            assert predictions is not None
            # Data before the document that names it (docs/format.md, write order).
            stored = writer.add_bytes(predictions, compress=record.predictions.format == "csv")
            assert stored == record.predictions.oid
        oid = writer.add_bytes(record.to_json_bytes())
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    refs.update(ref, oid, expected=current)
    return oid


def read_record(store: "ObjectStore", oid: str) -> MetricsRecord:
    """Read and validate one record."""
    return MetricsRecord.from_json_bytes(store.read(oid), what=f"metrics record {oid}")


def iter_records(store: "ObjectStore", refs: RefStore, commit: str | None = None) -> Iterator[MetricsEntry]:
    """Records of ``commit`` (or of every commit), oldest first.

    For one commit only its own refs (``refs/metrics/<commit>/``) are listed and
    read, so a changelog costs one small listing per commit, not one of the
    whole repository's records.
    """
    namespace = METRICS if commit is None else f"{METRICS}/{commit}"
    entries = [MetricsEntry(oid, read_record(store, oid)) for oid in refs.list(namespace).values()]
    entries.sort(key=lambda e: (e.record.time, e.record.name))
    return iter(entries)
