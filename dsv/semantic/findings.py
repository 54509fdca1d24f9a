"""Result models of ``dsv audit``; ``to_dict()`` is the stable JSON schema (docs/audit.md, audit format 1).

Every finding is counted in full and illustrated by at most ``limit`` examples,
each naming its samples by key (tables) and path, so a labeling tool can take
the list as a queue. Models are frozen dataclasses, like the diff's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

AUDIT_FORMAT = 1
"""Version of the audit JSON (``format``); fields are only ever added within a version."""


class FindingKind(str, Enum):
    """The kinds of audit findings (names used by ``--fail-on`` and ``changelog --audit``)."""

    CONFLICTS = "conflicts"
    HISTORY_CONFLICTS = "history-conflicts"
    LEAKAGE = "leakage"
    DUPLICATES = "duplicates"
    SMALL_CLASSES = "small-classes"
    MISSING_LABELS = "missing-labels"
    UNKNOWN_LABELS = "unknown-labels"
    IMBALANCE = "imbalance"
    HARD_SAMPLES = "hard-samples"


@dataclass(frozen=True)
class SampleRef:
    """One sample, as a labeling tool finds it: key (tables), path, label, slices."""

    key: dict[str, Any] | None
    path: str | None
    label: Any  # str, None, or a list of str (multi-label)
    slices: dict[str, str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"key": self.key, "path": self.path, "label": self.label, "slices": dict(self.slices)}


@dataclass(frozen=True)
class ContentGroup:
    """Samples sharing one content hash (a conflict, a leak or a duplicate group)."""

    content: str
    values: tuple[Any, ...]  # labels (conflicts), slice values (leakage), or the one class/value (duplicates)
    count: int
    samples: tuple[SampleRef, ...]

    def to_dict(self, values_name: str) -> dict[str, Any]:
        """JSON form; ``values_name`` says what the values are (``labels``, ``values``, ``value``)."""
        vals: Any = list(self.values) if values_name != "value" else (self.values[0] if self.values else None)
        return {"content": self.content, values_name: vals, "count": self.count, "samples": [s.to_dict() for s in self.samples]}


@dataclass(frozen=True)
class Conflicts:
    """Same content, different labels, within one version."""

    contents: int = 0
    samples: int = 0
    items: tuple[ContentGroup, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"contents": self.contents, "samples": self.samples, "items": [i.to_dict("labels") for i in self.items]}


@dataclass(frozen=True)
class LabelStep:
    """The labels one content carried at one version of the history."""

    commit: str  # a commit id, or "working tree"
    labels: tuple[Any, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"commit": self.commit, "labels": list(self.labels)}


@dataclass(frozen=True)
class Flip:
    """A content whose labels went back and forth along the history."""

    content: str
    changes: int
    sequence: tuple[LabelStep, ...]
    samples: tuple[SampleRef, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"content": self.content, "changes": self.changes, "sequence": [s.to_dict() for s in self.sequence], "samples": [s.to_dict() for s in self.samples]}


@dataclass(frozen=True)
class HistoryConflicts:
    """Contents relabeled back and forth across the versions searched."""

    versions: int = 0
    contents: int = 0
    items: tuple[Flip, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"versions": self.versions, "contents": self.contents, "items": [i.to_dict() for i in self.items]}


@dataclass(frozen=True)
class PairCount:
    """Contents shared by two values of a split-like slice."""

    values: tuple[str, str]
    contents: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"values": list(self.values), "contents": self.contents}


@dataclass(frozen=True)
class Leakage:
    """The same content in two or more values of one split-like slice."""

    column: str
    contents: int = 0
    samples: int = 0
    pairs: tuple[PairCount, ...] = ()
    items: tuple[ContentGroup, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "column": self.column,
            "contents": self.contents,
            "samples": self.samples,
            "pairs": [p.to_dict() for p in self.pairs],
            "items": [i.to_dict("values") for i in self.items],
        }


@dataclass(frozen=True)
class ValueCount:
    """Duplicate groups and extra copies within one class or slice value."""

    value: str | None
    groups: int
    extra: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"value": self.value, "groups": self.groups, "extra": self.extra}


@dataclass(frozen=True)
class Duplicates:
    """Exact duplicates (same content) within one class (``column`` None) or one value of a split-like slice."""

    column: str | None
    groups: int = 0
    extra: int = 0
    by_value: tuple[ValueCount, ...] = ()
    items: tuple[ContentGroup, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "column": self.column,
            "groups": self.groups,
            "extra": self.extra,
            "by_value": [v.to_dict() for v in self.by_value],
            "items": [i.to_dict("value") for i in self.items],
        }


@dataclass(frozen=True)
class ClassCount:
    """Samples of one class (overall, or within a slice value)."""

    cls: str | None
    count: int
    column: str | None = None
    value: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {"class": self.cls, "count": self.count}
        if self.column is not None:
            out = {"column": self.column, "value": self.value, **out}
        return out


@dataclass(frozen=True)
class Coverage:
    """Class counts, imbalance, small classes, missing and unknown labels."""

    classes: tuple[ClassCount, ...] = ()
    imbalance: float | None = None
    min_samples: int = 0
    small_classes: tuple[ClassCount, ...] = ()
    small_in_slices: int = 0
    small_in_slices_items: tuple[ClassCount, ...] = ()
    missing_labels: int = 0
    missing_items: tuple[SampleRef, ...] = ()
    label_set: tuple[str, ...] | None = None
    unknown_labels: tuple[ClassCount, ...] = ()
    absent_labels: tuple[str, ...] = ()
    unknown_samples: int = 0  # samples with a class outside the label set (a multi-label sample counts once)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "classes": [c.to_dict() for c in self.classes],
            "imbalance": self.imbalance,
            "min_samples": self.min_samples,
            "small_classes": [c.to_dict() for c in self.small_classes],
            "small_in_slices": {"count": self.small_in_slices, "items": [c.to_dict() for c in self.small_in_slices_items]},
            "missing_labels": {"count": self.missing_labels, "items": [s.to_dict() for s in self.missing_items]},
            "label_set": None if self.label_set is None else list(self.label_set),
            "unknown_labels": [c.to_dict() for c in self.unknown_labels],
            "absent_labels": list(self.absent_labels),
        }


@dataclass(frozen=True)
class ClassErrorRate:
    """Confident-learning estimate for one given class."""

    cls: str | None
    samples: int  # samples of the class with a prediction
    likely_errors: int
    threshold: float | None  # the confidence threshold applied (docs/audit.md)

    @property
    def error_rate(self) -> float | None:
        """``likely_errors / samples``."""
        return self.likely_errors / self.samples if self.samples else None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"class": self.cls, "samples": self.samples, "likely_errors": self.likely_errors, "error_rate": self.error_rate, "threshold": self.threshold}


@dataclass(frozen=True)
class HardSample:
    """A sample whose given label disagrees with a confident prediction."""

    sample: SampleRef
    predicted: str
    confidence: float | None
    loss: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**self.sample.to_dict(), "predicted": self.predicted, "confidence": self.confidence, "loss": self.loss}


@dataclass(frozen=True)
class HardSamples:
    """Hard samples of one metrics record's predictions, with per-class error-rate estimates."""

    record: str
    commit: str
    score: str  # confidence | loss
    predictions: int
    matched: int
    likely_errors: int
    classes: tuple[ClassErrorRate, ...] = ()
    items: tuple[HardSample, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "record": self.record,
            "commit": self.commit,
            "score": self.score,
            "predictions": self.predictions,
            "matched": self.matched,
            "likely_errors": self.likely_errors,
            "classes": [c.to_dict() for c in self.classes],
            "items": [i.to_dict() for i in self.items],
        }


@dataclass(frozen=True)
class SourceAudit:
    """Everything the audit found in one sample source."""

    name: str
    kind: str  # folder | table
    samples: int = 0
    without_content: int = 0
    multilabel: bool = False
    splits: tuple[str, ...] = ()
    conflicts: Conflicts = Conflicts()
    history: HistoryConflicts = HistoryConflicts()
    leakage: tuple[Leakage, ...] = ()
    duplicates: tuple[Duplicates, ...] = ()
    coverage: Coverage = Coverage()
    hard: HardSamples | None = None
    ids: dict[str, dict[str, str]] = field(default_factory=dict, compare=False, repr=False)
    """Per finding kind: subject -> short description, every finding (for ``changelog --audit``)."""

    def counts(self) -> dict[str, int]:
        """How many findings of each kind (the numbers ``--fail-on`` tests)."""
        return {
            FindingKind.CONFLICTS.value: self.conflicts.contents,
            FindingKind.HISTORY_CONFLICTS.value: self.history.contents,
            FindingKind.LEAKAGE.value: sum(x.contents for x in self.leakage),
            FindingKind.DUPLICATES.value: sum(d.extra for d in self.duplicates),
            FindingKind.SMALL_CLASSES.value: len(self.coverage.small_classes) + self.coverage.small_in_slices,
            FindingKind.MISSING_LABELS.value: self.coverage.missing_labels,
            FindingKind.UNKNOWN_LABELS.value: self.coverage.unknown_samples,
            FindingKind.HARD_SAMPLES.value: self.hard.likely_errors if self.hard else 0,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON form (docs/audit.md)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "samples": self.samples,
            "without_content": self.without_content,
            "multilabel": self.multilabel,
            "splits": list(self.splits),
            "counts": self.counts(),
            "conflicts": self.conflicts.to_dict(),
            "history_conflicts": self.history.to_dict(),
            "leakage": [x.to_dict() for x in self.leakage],
            "duplicates": [d.to_dict() for d in self.duplicates],
            "coverage": self.coverage.to_dict(),
            "hard_samples": self.hard.to_dict() if self.hard else None,
        }


@dataclass(frozen=True)
class FailCheck:
    """One ``--fail-on`` condition and whether it failed."""

    spec: str
    value: float | None
    failed: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"check": self.spec, "value": self.value, "failed": self.failed}


@dataclass(frozen=True)
class AuditReport:
    """``dsv audit``: findings per source and overall at one version."""

    revision: str
    commit: str | None
    sources: tuple[SourceAudit, ...] = ()
    checks: tuple[FailCheck, ...] = ()
    warnings: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Whether any ``--fail-on`` condition failed."""
        return any(c.failed for c in self.checks)

    def overall(self) -> dict[str, Any]:
        """Findings summed over sources (a sample two sources describe counts in each), and the largest imbalance."""
        out: dict[str, Any] = {k.value: 0 for k in FindingKind if k is not FindingKind.IMBALANCE}
        for s in self.sources:
            for k, v in s.counts().items():
                out[k] += v
        ratios = [s.coverage.imbalance for s in self.sources if s.coverage.imbalance is not None]
        out["imbalance"] = max(ratios) if ratios else None
        out["samples"] = sum(s.samples for s in self.sources)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON form (docs/audit.md)."""
        return {
            "format": AUDIT_FORMAT,
            "revision": self.revision,
            "commit": self.commit,
            "settings": dict(self.settings),
            "overall": self.overall(),
            "sources": [s.to_dict() for s in self.sources],
            "checks": [c.to_dict() for c in self.checks],
            "failed": self.failed,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class FindingChange:
    """Findings of one kind that appeared or disappeared at one changelog step."""

    source: str
    kind: str
    appeared: int
    disappeared: int
    appeared_items: tuple[str, ...] = ()
    disappeared_items: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "source": self.source,
            "kind": self.kind,
            "appeared": self.appeared,
            "disappeared": self.disappeared,
            "appeared_items": list(self.appeared_items),
            "disappeared_items": list(self.disappeared_items),
        }


@dataclass(frozen=True)
class AuditStep:
    """``changelog --audit``: how one commit changed the audit findings against its parent."""

    changes: tuple[FindingChange, ...] = ()
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> kind -> count at the commit
    imbalance: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "changes": [c.to_dict() for c in self.changes],
            "counts": {k: dict(v) for k, v in self.counts.items()},
            "imbalance": {k: {"before": a, "after": b} for k, (a, b) in self.imbalance.items()},
            "warnings": list(self.warnings),
        }


def diff_findings(old: tuple[SourceAudit, ...], new: tuple[SourceAudit, ...], *, limit: int) -> AuditStep:
    """Findings that appear and disappear from ``old`` to ``new`` (per source, per kind)."""
    olds = {s.name: s for s in old}
    changes: list[FindingChange] = []
    for s in new:
        before = olds.get(s.name)
        for kind in s.ids.keys() | (before.ids.keys() if before else set()):
            a = before.ids.get(kind, {}) if before else {}
            b = s.ids.get(kind, {})
            came = sorted(set(b) - set(a))
            went = sorted(set(a) - set(b))
            if came or went:
                changes.append(
                    FindingChange(s.name, kind, len(came), len(went), tuple(b[k] for k in came[:limit]), tuple(a[k] for k in went[:limit]))
                )
    names = {s.name for s in new}
    for s in old:
        if s.name not in names:
            for kind, ids in s.ids.items():
                if ids:
                    went = sorted(ids)
                    changes.append(FindingChange(s.name, kind, 0, len(went), (), tuple(ids[k] for k in went[:limit])))
    order = [k.value for k in FindingKind]
    changes.sort(key=lambda c: (c.source, order.index(c.kind) if c.kind in order else 99))
    return AuditStep(
        tuple(changes),
        {s.name: s.counts() for s in new},
        {s.name: (olds[s.name].coverage.imbalance if s.name in olds else None, s.coverage.imbalance) for s in new},
    )
