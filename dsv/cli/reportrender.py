"""``dsv report --format md``: the content of the HTML page as Markdown for a pull-request comment.

Each part reuses the renderer of the command that owns it (diff, changelog
--metrics, audit, diff --drift), so numbers are written one way everywhere.
"""

from __future__ import annotations

from dsv.cli.auditrender import render_audit_step
from dsv.cli.diffrender import _md_table, metrics_blocks, source_blocks
from dsv.cli.driftrender import render_drift

KINDS = ("conflicts", "history-conflicts", "leakage", "duplicates", "small-classes", "missing-labels", "unknown-labels", "hard-samples")


def render_report_markdown(data) -> list[str]:  # type: ignore[no-untyped-def]
    """The report as Markdown (``data``: :class:`dsv.api.reporting.ReportData`)."""
    d = data.diff
    n = d.files
    out = [f"## Data change: {data.old} → {data.new}", ""]
    out.append(f"`{data.old_commit[:10]}` → `{data.new_commit[:10]}`, {len(data.commits)} commit(s); "
               f"**files:** {sum(n.values())} changed ({n['added']} added, {n['removed']} removed, {n['modified']} modified, {n['moved']} moved)")
    if data.commits:
        out.append("")
        out += [f"- `{c.id[:10]}` {c.message} ({c.author}, {c.date})" for c in data.commits[:20]]
    if data.metrics is not None:
        out += metrics_blocks(data.metrics, markdown=True)
    for s in d.sources:
        if s.read:
            out.append("")
            out += source_blocks(s, markdown=True)
    if data.audit_new is not None:
        out += ["", "### Audit findings", ""]
        old = {s.name: s.counts() for s in data.audit_old.sources} if data.audit_old else {}
        rows = []
        for s in data.audit_new.sources:
            counts = s.counts()
            for k in KINDS:
                a = old.get(s.name, {}).get(k)
                rows.append([s.name, k, "-" if a is None else a, counts[k], "-" if a is None else f"{counts[k] - a:+d}"])
        out += _md_table(["source", "finding", data.old, data.new, "change"], rows)
        if data.findings is not None:
            out += render_audit_step(data.findings, markdown=True)
    if data.drift is not None and data.drift.sources:
        out += render_drift(data.drift, markdown=True)
    if data.images:
        out += ["", "### Samples to look at", ""]
        out += [f"- {i.kind}: `{i.path}` ({i.note})" for i in data.images]
    return out
