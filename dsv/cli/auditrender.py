"""Text and Markdown renderings of ``dsv audit`` and ``dsv changelog --audit``."""

from __future__ import annotations

from typing import Any

from dsv.cli.diffrender import _md_table, _show, _text_table
from dsv.semantic.findings import AuditReport, AuditStep, ContentGroup, SampleRef, SourceAudit


def sample_name(s: SampleRef) -> str:
    """How a sample is named in text: its path, else its key."""
    if s.path:
        return s.path
    if s.key:
        return ", ".join(f"{k}={v}" for k, v in s.key.items())
    return "?"


def _label(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return _show(v)


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _examples(group: ContentGroup, n: int = 3) -> str:
    names = [sample_name(s) + (f" ({_label(s.label)})" if s.label is not None else "") for s in group.samples[:n]]
    more = group.count - len(names)
    return ", ".join(names) + (f" +{more} more" if more > 0 else "")


def source_lines(s: SourceAudit, *, markdown: bool) -> list[str]:
    """Lines describing one source's findings."""
    table = _md_table if markdown else _text_table
    ind = "" if markdown else "  "
    title = f"{s.name} ({s.kind}): {s.samples} samples" + (", multi-label" if s.multilabel else "")
    out = [f"### {title}" if markdown else f"Source {title}"]
    if markdown:
        out.append("")
    if s.without_content:
        out.append(f"{ind}{s.without_content} sample(s) without content to compare (excluded from conflicts, leakage and duplicates)")
    c = s.conflicts
    out.append(f"{ind}Label conflicts (same content, different labels): {c.contents} content(s), {c.samples} sample(s)")
    if c.items:
        out += _blank(markdown) + table(["content", "labels", "samples", "examples"], [[i.content[:12], ", ".join(_label(v) for v in i.values), i.count, _examples(i)] for i in c.items])
    h = s.history
    if h.versions > 1:
        out += _blank(markdown)
        out.append(f"{ind}Labels back and forth over {h.versions} versions: {h.contents} content(s)")
        if h.items:
            out += _blank(markdown) + table(
                ["content", "changes", "labels along history", "samples"],
                [[f.content[:12], f.changes, " -> ".join("/".join(_label(x) for x in st.labels) for st in f.sequence), ", ".join(sample_name(x) for x in f.samples[:3])] for f in h.items],
            )
    for lk in s.leakage:
        out += _blank(markdown)
        pairs = "; ".join(f"{a}/{b}: {n}" for (a, b), n in ((p.values, p.contents) for p in lk.pairs))
        out.append(f"{ind}Split leakage in {lk.column!r}: {lk.contents} content(s) in several values, {lk.samples} sample(s)" + (f" ({pairs})" if pairs else ""))
        if lk.items:
            out += _blank(markdown) + table(["content", "values", "samples", "examples"], [[i.content[:12], ", ".join(map(str, i.values)), i.count, _examples(i)] for i in lk.items])
    if not s.splits:
        out += _blank(markdown) + [f"{ind}Split leakage: no split-like slice (declare splits = [...] in dsv.toml)"]
    for d in s.duplicates:
        out += _blank(markdown)
        where = "a class" if d.column is None else f"a value of {d.column!r}"
        out.append(f"{ind}Exact duplicates within {where}: {d.groups} group(s), {d.extra} extra cop{'y' if d.extra == 1 else 'ies'}")
        if d.items:
            out += _blank(markdown) + table(["content", "class" if d.column is None else d.column, "copies", "examples"], [[i.content[:12], _show(i.values[0]), i.count, _examples(i)] for i in d.items])
    cov = s.coverage
    out += _blank(markdown)
    out.append(f"{ind}Coverage: {len([x for x in cov.classes if x.cls is not None])} class(es), imbalance (largest / smallest) {_ratio(cov.imbalance)}")
    if cov.classes:
        out += _blank(markdown) + table(["class", "samples"], [[x.cls, x.count] for x in cov.classes])
    if cov.small_classes:
        out += _blank(markdown) + [f"{ind}Classes under {cov.min_samples} samples: " + ", ".join(f"{x.cls} ({x.count})" for x in cov.small_classes)]
    if cov.small_in_slices:
        out += _blank(markdown) + [f"{ind}Class and slice value pairs under {cov.min_samples} samples: {cov.small_in_slices}"]
        out += _blank(markdown) + table(["slice", "value", "class", "samples"], [[x.column, x.value, x.cls, x.count] for x in cov.small_in_slices_items])
    if cov.missing_labels:
        out += _blank(markdown) + [f"{ind}Samples without a label: {cov.missing_labels}: " + ", ".join(sample_name(x) for x in cov.missing_items[:5])]
    if cov.label_set is not None:
        unknown = ", ".join(f"{x.cls} ({x.count})" for x in cov.unknown_labels) or "none"
        absent = ", ".join(cov.absent_labels) or "none"
        out += _blank(markdown) + [f"{ind}Labels outside the declared set: {unknown}; declared but absent: {absent}"]
    hs = s.hard
    if hs is not None:
        out += _blank(markdown)
        out.append(
            f"{ind}Hard samples (metrics {hs.record!r}, by {hs.score}): {hs.likely_errors} likely label error(s) "
            f"among {hs.matched} matched of {hs.predictions} prediction(s)"
        )
        if hs.classes:
            out += _blank(markdown) + table(
                ["class", "samples", "likely errors", "error rate", "threshold"],
                [[c.cls, c.samples, c.likely_errors, _ratio(c.error_rate), _ratio(c.threshold)] for c in hs.classes],
            )
        if hs.items:
            out += _blank(markdown) + table(
                ["sample", "label", "predicted", hs.score],
                [[sample_name(i.sample), _label(i.sample.label), i.predicted, _ratio(i.confidence if hs.score == "confidence" else i.loss)] for i in hs.items],
            )
    return out


def _blank(markdown: bool) -> list[str]:
    """A separating line (both renderings use one)."""
    return [""]


OVERALL_ORDER = ("conflicts", "history-conflicts", "leakage", "duplicates", "small-classes", "missing-labels", "unknown-labels", "hard-samples")


def render_audit(report: AuditReport, *, markdown: bool) -> list[str]:
    """The whole audit as text or Markdown."""
    where = report.revision + (f" ({report.commit[:10]})" if report.commit and report.commit[:10] != report.revision[:10] else "")
    out = [f"## Data audit: {where}" if markdown else f"Audit of {where}", ""]
    ov = report.overall()
    summary = ", ".join(f"{k} {ov[k]}" for k in OVERALL_ORDER) + f", largest imbalance {_ratio(ov['imbalance'])}"
    out.append(f"**Overall** ({ov['samples']} samples): {summary}" if markdown else f"Overall ({ov['samples']} samples): {summary}")
    for s in report.sources:
        out.append("")
        out += source_lines(s, markdown=markdown)
    if report.checks:
        out.append("")
        out.append("**Checks**" if markdown else "Checks:")
        for c in report.checks:
            v = "-" if c.value is None else f"{c.value:g}"
            out.append(f"{'- ' if markdown else '  '}{'FAILED' if c.failed else 'ok'}  {c.spec} (found {v})")
    return out


def render_audit_step(step: AuditStep, *, markdown: bool, indent: str = "  ") -> list[str]:
    """``changelog --audit``: findings that appeared and disappeared at one commit."""
    ind = "" if markdown else indent
    out = ["", "**Audit**" if markdown else f"{ind}Audit:"]
    if markdown:
        out.append("")
    if not step.changes:
        out.append(f"{ind}no finding appeared or disappeared")
    for c in step.changes:
        line = f"{ind}{'- ' if markdown else ''}{c.source}: {c.kind} +{c.appeared} -{c.disappeared}"
        out.append(line)
        for item in c.appeared_items:
            out.append(f"{ind}{'  - ' if markdown else '    + '}{'appeared: ' if markdown else ''}{item}")
        for item in c.disappeared_items:
            out.append(f"{ind}{'  - ' if markdown else '    - '}{'gone: ' if markdown else ''}{item}")
    for name, (a, b) in step.imbalance.items():
        if a != b:
            out.append(f"{ind}{'- ' if markdown else ''}{name}: imbalance {_ratio(a)} -> {_ratio(b)}")
    return out

