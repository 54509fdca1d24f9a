"""Porcelain for ``dsv report A..B``: gather what a reviewer needs about a data change into one result.

The result holds the semantic diff, the audit at both ends and the findings
that appeared or went away, the drift, the metrics of both ends joined with the
per-class data changes, and sample images (raw bytes; the renderer makes the
thumbnails). Rendering lives above this layer (:mod:`dsv.report` for HTML, the
CLI for Markdown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsv.base.errors import DsvError, UsageError

if TYPE_CHECKING:
    from dsv.api.repo import Repo
    from dsv.metrics.compare import MetricsComparison
    from dsv.semantic.drift import DriftReport
    from dsv.semantic.findings import AuditReport, AuditStep
    from dsv.semantic.report import SemanticDiff

REPORT_FORMAT = 1
MAX_FILE_CHANGES = 100
"""File changes listed in the report's JSON (the page embeds it); the counts are always complete."""
IMAGE_EXTENSIONS = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp", ".bmp": "image/bmp"}
MAX_IMAGE_BYTES = 16 << 20
"""Larger files are not read for thumbnails."""


@dataclass(frozen=True)
class SampleImage:
    """A sample shown as a thumbnail: why it is shown, and its bytes (None when not an image or too large)."""

    kind: str  # relabeled | conflict | hard
    source: str
    path: str
    note: str
    mime: str | None = None
    data: bytes | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (without the bytes)."""
        return {"kind": self.kind, "source": self.source, "path": self.path, "note": self.note, "mime": self.mime, "bytes": None if self.data is None else len(self.data)}


@dataclass(frozen=True)
class CommitLine:
    """One commit of the range."""

    id: str
    message: str
    author: str
    date: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"id": self.id, "message": self.message, "author": self.author, "date": self.date}


@dataclass(frozen=True)
class ReportData:
    """Everything ``dsv report`` shows."""

    spec: str
    old: str
    new: str
    old_commit: str
    new_commit: str
    commits: tuple[CommitLine, ...]
    diff: "SemanticDiff"
    audit_old: "AuditReport | None"
    audit_new: "AuditReport | None"
    findings: "AuditStep | None"
    drift: "DriftReport | None"
    metrics: "MetricsComparison | None"
    images: tuple[SampleImage, ...] = ()
    warnings: tuple[str, ...] = ()

    def _diff_dict(self) -> dict[str, Any]:
        return _capped(self.diff.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """JSON form (docs/cli.md, ``dsv report``): the numbers every chart of the page shows."""
        return {
            "format": REPORT_FORMAT,
            "range": self.spec,
            "old": {"revision": self.old, "commit": self.old_commit},
            "new": {"revision": self.new, "commit": self.new_commit},
            "commits": [c.to_dict() for c in self.commits],
            "diff": self._diff_dict(),
            "audit": {
                "old": self.audit_old.to_dict() if self.audit_old else None,
                "new": self.audit_new.to_dict() if self.audit_new else None,
                "changes": self.findings.to_dict() if self.findings else None,
            },
            "drift": self.drift.to_dict() if self.drift else None,
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "images": [i.to_dict() for i in self.images],
            "warnings": list(self.warnings),
        }


def _capped(diff: dict[str, Any]) -> dict[str, Any]:
    """The diff's JSON with at most MAX_FILE_CHANGES file changes, and whether more were left out."""
    files = diff["files"]
    changes = files["changes"]
    return {**diff, "files": {**files, "changes": changes[:MAX_FILE_CHANGES], "changes_truncated": len(changes) > MAX_FILE_CHANGES}}


def parse_range(spec: str) -> tuple[str, str]:
    """``A..B`` -> (A, B); ``B`` alone -> (B~1, B)."""
    if ".." in spec:
        old, _, new = spec.partition("..")
        if not old:
            raise UsageError(f"report range {spec!r} needs a start", hint="dsv report A..B, e.g. v1..v2 or main~3..main")
        return old, new or "HEAD"
    return f"{spec}~1", spec


def build_report(repo: "Repo", spec: str, *, metrics_name: str | None = None, thumbnails: int = 6) -> ReportData:
    """Diff, audits, findings, drift, metrics and images for the change ``spec``."""
    from dsv.api.audit import AuditOptions, run_audit
    from dsv.metrics.compare import compare, pick
    from dsv.semantic.findings import diff_findings

    old, new = parse_range(spec)
    a, b = repo.resolve(old), repo.resolve(new)
    if metrics_name is not None and not any(e.record.name == metrics_name for c in (a.commit_id, b.commit_id) for e in repo.metrics(c)):
        # As dsv audit does: a page without the metrics asked for would look complete.
        raise UsageError(
            f"--metrics-name {metrics_name}: no metrics record of that name on {a.commit_id[:10]} or {b.commit_id[:10]}",
            hint=f"see 'dsv metrics list {b.commit_id[:10]}'",
        )
    warnings: list[str] = []
    diff = repo.semantic_diff(old, new, rows=0, force_read=True)
    warnings += diff.warnings
    stop = {oid for oid, _ in repo.repository.history.walk(a.commit_id)}
    commits = tuple(
        CommitLine(oid, c.message.splitlines()[0] if c.message else "", c.author, c.time.date().isoformat())
        for oid, c in repo.repository.history.walk(b.commit_id)
        if oid not in stop
    )

    def audit(commit: str) -> "AuditReport | None":
        try:
            return run_audit(repo, commit, AuditOptions(metrics_name=metrics_name if commit == b.commit_id else None, with_ids=True))
        except UsageError as err:
            if "no sample source" not in err.message:
                warnings.append(f"audit at {commit[:10]}: {err}")
            return None
        except DsvError as err:
            warnings.append(f"audit at {commit[:10]}: {err}")
            return None

    audit_new = audit(b.commit_id)
    audit_old = audit(a.commit_id)
    findings = diff_findings(audit_old.sources if audit_old else (), audit_new.sources, limit=10) if audit_new else None
    for rep in (audit_old, audit_new):
        if rep is not None:
            warnings += [w for w in rep.warnings if w not in warnings]
    drift = None
    try:
        drift = repo.drift(old, new)
    except DsvError as err:
        warnings.append(f"drift: {err}")
    old_rec = pick(repo.metrics(a.commit_id), metrics_name)
    new_rec = pick(repo.metrics(b.commit_id), metrics_name)
    metrics = compare(old_rec, new_rec, diff) if (old_rec or new_rec) else None
    images = tuple(sample_images(repo, b.commit_id, diff, audit_new, thumbnails)) if thumbnails else ()
    return ReportData(
        spec,
        old,
        new,
        a.commit_id,
        b.commit_id,
        commits,
        diff,
        _without_ids(audit_old),
        _without_ids(audit_new),
        findings,
        drift,
        metrics,
        images,
        tuple(warnings),
    )


def _without_ids(report: "AuditReport | None") -> "AuditReport | None":
    """The audit as reported: the full finding sets were only needed to compare both ends."""
    import dataclasses

    if report is None:
        return None
    return dataclasses.replace(report, sources=tuple(dataclasses.replace(s, ids={}) for s in report.sources))


def sample_images(repo: "Repo", commit: str, diff: "SemanticDiff", audit: "AuditReport | None", n: int) -> list[SampleImage]:
    """The top relabeled, conflicting and hard samples of each folder source, with their bytes when they are images."""
    from dsv.api.semantic import declaration_of, revision_side
    from dsv.manifest import read_manifest
    from dsv.semantic.engine import folder_regex

    temp: list[str] = []
    side = revision_side(repo, commit[:10], temp, read_manifest(repo.repository.store, repo.repository.history.commit(commit).manifest))
    decl = declaration_of(side)
    out: list[SampleImage] = []
    for folder in decl.folders:
        regex, _ = folder_regex(folder.pattern)
        rx = re.compile(regex)
        # Relabeled: the file diff's moves whose {label} component changed.
        relabeled = []
        for c in diff.file_changes:
            if c.kind.value != "moved" or not c.old_path:
                continue
            ma, mb = rx.match(c.old_path), rx.match(c.path)
            if ma and mb and ma.group("label") != mb.group("label"):
                relabeled.append(SampleImage("relabeled", folder.display_name, c.path, f"{ma.group('label')} → {mb.group('label')}"))
        out += relabeled[:n]
        src = next((s for s in audit.sources if s.name == folder.display_name), None) if audit else None
        if src is not None:
            shown = 0
            for item in src.conflicts.items:
                for s in item.samples:
                    if shown >= n:
                        break
                    others = ", ".join(str(v) for v in item.values)
                    out.append(SampleImage("conflict", folder.display_name, s.path or "", f"{s.label} (same bytes labeled {others})"))
                    shown += 1
            if src.hard is not None:
                for h in src.hard.items[:n]:
                    score = f"{h.confidence:.2f}" if h.confidence is not None else f"loss {h.loss:.2f}"
                    out.append(SampleImage("hard", folder.display_name, h.sample.path or "", f"{h.sample.label}, predicted {h.predicted} ({score})"))
    return [_with_bytes(repo, side, img) for img in out]


def _with_bytes(repo: "Repo", side: Any, img: SampleImage) -> SampleImage:
    import dataclasses
    import os

    ext = os.path.splitext(img.path)[1].lower()
    mime = IMAGE_EXTENSIONS.get(ext)
    oid = side.oid_of(img.path)
    if mime is None or oid is None:
        return img
    store = repo.repository.store
    if store.size(oid.hex()) > MAX_IMAGE_BYTES:
        return dataclasses.replace(img, mime=mime)
    return dataclasses.replace(img, mime=mime, data=store.read(oid.hex()))
