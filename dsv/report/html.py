"""``dsv report`` as one self-contained HTML page.

Hand-written inline SVG (no chart library, no script, no network): every bar,
heatmap cell and table cell that shows a number carries it in ``data-*``
attributes as well as in its text, so a test can read the page back and compare
it with the JSON embedded in ``<script type="application/json" id="dsv-report-data">``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from dsv.report.thumbs import thumbnail

if TYPE_CHECKING:
    from dsv.api.reporting import ReportData
    from dsv.semantic.drift import DriftReport
    from dsv.semantic.report import SourceDiff

BEFORE = "#9aa5b1"
AFTER = "#2f6fed"
BAD = "#d64545"
GOOD = "#2f9e44"

CSS = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --card:#fff; --blue:#2f6fed; --red:#d64545; --green:#2f9e44; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; color:var(--fg); background:var(--bg); }
header { background:#102a43; color:#fff; padding:24px 32px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header .sub { color:#bcccdc; font-size:13px; }
main { max-width:1100px; margin:0 auto; padding:24px 32px 48px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:18px 22px; margin:0 0 20px; }
h2 { font-size:18px; margin:0 0 12px; }
h3 { font-size:15px; margin:18px 0 8px; color:#334e68; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(150px,1fr)); gap:12px; margin-bottom:20px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.card .n { font-size:24px; font-weight:600; }
.card .l { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card.warn .n { color:var(--red); }
table { border-collapse:collapse; width:100%; margin:6px 0 10px; font-size:13px; }
th, td { padding:5px 8px; border-bottom:1px solid var(--line); text-align:right; vertical-align:middle; }
th:first-child, td:first-child { text-align:left; }
th { color:var(--muted); font-weight:600; font-size:12px; }
td.txt, th.txt { text-align:left; }
.up { color:var(--green); } .down { color:var(--red); } .flag { color:var(--red); font-weight:600; }
tr.flagged td { background:#fff5f5; }
.muted { color:var(--muted); }
.legend { font-size:12px; color:var(--muted); margin:4px 0 8px; }
.legend span { display:inline-block; width:10px; height:10px; border-radius:2px; margin:0 4px 0 10px; vertical-align:-1px; }
svg text { font:12px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif; fill:#1f2933; }
.gallery { display:grid; grid-template-columns:repeat(auto-fill,minmax(170px,1fr)); gap:12px; }
.gallery figure { margin:0; border:1px solid var(--line); border-radius:6px; padding:8px; background:#fafbfc; }
.gallery img { display:block; max-width:100%; height:auto; margin:0 auto 6px; image-rendering:auto; }
.gallery figcaption { font-size:12px; word-break:break-all; }
td, th, li, p, h2, h3, figcaption { overflow-wrap:anywhere; }
.tag { display:inline-block; font-size:11px; padding:1px 6px; border-radius:10px; background:#e3ebff; color:#1f4bb8; margin-right:4px; }
.tag.conflict { background:#ffe3e3; color:#a61e1e; } .tag.hard { background:#fff3bf; color:#7c5e00; }
ul.items { margin:4px 0 8px 18px; padding:0; font-size:13px; }
details summary { cursor:pointer; }
code { font:12px ui-monospace,SFMono-Regular,Menlo,monospace; background:#f0f4f8; padding:1px 4px; border-radius:3px; }
"""


def e(value: Any) -> str:
    """HTML-escape anything (None as an em dash)."""
    return "—" if value is None else html.escape(str(value), quote=True)


def _fit(name: str, n: int = 20) -> str:
    """An SVG axis label that fits its margin: cut to ``n`` characters with an ellipsis, the full name as a tooltip.

    SVG text does not wrap: a long class name ran off the chart's left edge
    and a very long one widened the page by thousands of pixels.
    """
    if len(name) <= n:
        return e(name)
    return f"<title>{e(name)}</title>{e(name[: n - 1])}…"


def _attrs(**kw: Any) -> str:
    return " ".join(f'data-{k.replace("_", "-")}="{e("" if v is None else v)}"' for k, v in kw.items())


def _num(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _signed(n: int | float, *, up_is_good: bool = True) -> str:
    """A signed change, green when it is an improvement and red when not (metrics: up; findings: down)."""
    from dsv.metrics.numbers import format_delta

    good = n > 0 if up_is_good else n < 0
    cls = "muted" if n == 0 else "up" if good else "down"
    text = f"{n:+d}" if isinstance(n, int) else format_delta(n)
    return f'<span class="{cls}">{text}</span>'


def _metric(v: float | None) -> str:
    """A metric value, written as every dsv output writes metrics (docs/cli.md, "Metric numbers")."""
    from dsv.metrics.numbers import format_value

    return "—" if v is None else format_value(v)


def _sample(x: Any) -> str:
    """A sample as a reviewer finds it: its path, else key=value."""
    if x.path:
        return str(x.path)
    return ", ".join(f"{k}={v}" for k, v in (x.key or {}).items())


# -- charts ----------------------------------------------------------------------------------------


def class_bars(source: "SourceDiff") -> str:
    """Grouped horizontal bars: each class's samples before and after."""
    rows = [c for c in source.classes]
    if not rows:
        return '<p class="muted">No samples.</p>'
    top = max(max(c.before, c.after) for c in rows) or 1
    label_w, bar_w, row_h = 150, 420, 34
    height = row_h * len(rows) + 8
    parts = [f'<svg role="img" aria-label="Samples per class, before and after" width="{label_w + bar_w + 70}" height="{height}" data-chart="classes" {_attrs(source=source.name)}>']
    for i, c in enumerate(rows):
        y = 4 + i * row_h
        name = "(no label)" if c.cls is None else c.cls
        parts.append(f'<text x="{label_w - 8}" y="{y + 18}" text-anchor="end">{_fit(name)}</text>')
        for j, (side, value, color) in enumerate((("before", c.before, BEFORE), ("after", c.after, AFTER))):
            w = max(1.0, bar_w * value / top) if value else 0
            by = y + j * 14
            parts.append(
                f'<rect x="{label_w}" y="{by}" width="{w:.1f}" height="12" rx="2" fill="{color}" {_attrs(cls=c.cls, side=side, value=value)}>'
                f"<title>{e(name)} {side}: {value}</title></rect>"
            )
            parts.append(f'<text x="{label_w + w + 6:.1f}" y="{by + 10}" class="v" {_attrs(cls=c.cls, side=side)}>{value}</text>')
    parts.append("</svg>")
    legend = f'<div class="legend"><span style="background:{BEFORE}"></span>before<span style="background:{AFTER}"></span>after</div>'
    return legend + "".join(parts)


def relabel_heatmap(source: "SourceDiff") -> str:
    """The relabel matrix as a heatmap: rows are the old class, columns the new one."""
    if not source.relabels:
        return '<p class="muted">No sample was relabeled.</p>'
    def key(v: str | None) -> tuple[bool, str]:
        return (v is None, v or "")

    froms = sorted({r.src for r in source.relabels}, key=key)
    tos = sorted({r.dst for r in source.relabels}, key=key)
    counts = {(r.src, r.dst): r.count for r in source.relabels}
    top = max(counts.values())
    cell, left, head = 46, 140, 64
    width, height = left + cell * len(tos) + 10, head + cell * len(froms) + 10
    parts = [f'<svg role="img" aria-label="Relabel matrix" width="{width}" height="{height}" data-chart="relabels" {_attrs(source=source.name)}>']
    for j, t in enumerate(tos):
        x = left + j * cell + cell / 2
        parts.append(f'<text x="{x:.1f}" y="{head - 8}" text-anchor="start" transform="rotate(-40 {x:.1f} {head - 8})">{_fit("(none)" if t is None else t, 9)}</text>')
    for i, f in enumerate(froms):
        y = head + i * cell
        parts.append(f'<text x="{left - 8}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">{_fit("(none)" if f is None else f, 18)}</text>')
        for j, t in enumerate(tos):
            n = counts.get((f, t), 0)
            alpha = 0.08 + 0.92 * n / top if n else 0.0
            fill = f"rgba(47,111,237,{alpha:.3f})" if n else "#f5f7fa"
            x = left + j * cell
            parts.append(f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" rx="3" fill="{fill}" {_attrs(src=f, dst=t, value=n)}><title>{e(f)} → {e(t)}: {n}</title></rect>')
            if n:
                color = "#fff" if alpha > 0.55 else "#1f2933"
                parts.append(f'<text x="{x + (cell - 2) / 2:.1f}" y="{y + cell / 2 + 3:.1f}" text-anchor="middle" style="fill:{color}" {_attrs(src=f, dst=t)}>{n}</text>')
    parts.append("</svg>")
    return '<div class="legend">rows: label before · columns: label after</div>' + "".join(parts)


def _bar(value: float | None, limit: float, scale: float, attrs: str) -> str:
    """A small horizontal bar with a threshold mark (drift)."""
    if value is None:
        return "—"
    w = 120
    x = min(w, w * value / scale) if scale else 0
    mark = min(w, w * limit / scale) if scale else 0
    color = BAD if value > limit else AFTER
    return (
        f'<svg width="{w + 4}" height="14" role="img" aria-label="{value:.3f}" {attrs}><rect x="0" y="3" width="{w}" height="8" fill="#eef1f4" rx="2"/>'
        f'<rect x="0" y="3" width="{x:.1f}" height="8" fill="{color}" rx="2"/><line x1="{mark:.1f}" x2="{mark:.1f}" y1="0" y2="14" stroke="#334e68" stroke-width="1.5"/></svg> '
        f"{value:.3f}"
    )


# -- sections ---------------------------------------------------------------------------------------


def _table(head: Sequence[str], rows: Iterable[str], *, text_cols: int = 1) -> str:
    ths = "".join(f'<th class="{"txt" if i < text_cols else ""}">{e(h)}</th>' for i, h in enumerate(head))
    return f"<table><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def summary_cards(data: "ReportData") -> str:
    d = data.diff
    totals = {k: sum(getattr(s.totals, k) for s in d.sources) for k in ("added", "removed", "relabeled", "modified", "moved")}
    files = sum(d.files.values())
    new_findings = sum(c.appeared for c in data.findings.changes) if data.findings else 0
    gone = sum(c.disappeared for c in data.findings.changes) if data.findings else 0
    drifted = sum(1 for s in data.drift.sources for c in s.columns if c.flagged) if data.drift else 0
    cards = [
        ("files changed", files, False, "files"),
        ("samples added", totals["added"], False, "added"),
        ("samples removed", totals["removed"], False, "removed"),
        ("relabeled", totals["relabeled"], False, "relabeled"),
        ("modified", totals["modified"], False, "modified"),
        ("new findings", new_findings, new_findings > 0, "new-findings"),
        ("resolved findings", gone, False, "resolved-findings"),
        ("drifted columns", drifted, drifted > 0, "drifted-columns"),
    ]
    out = ['<div class="cards">']
    for label, n, warn, key in cards:
        out.append(f'<div class="card{" warn" if warn else ""}" {_attrs(card=key, value=n)}><div class="n">{n}</div><div class="l">{e(label)}</div></div>')
    out.append("</div>")
    return "".join(out)


def source_section(s: "SourceDiff", data: "ReportData") -> str:
    t = s.totals
    out = [f'<section {_attrs(section="source", source=s.name)}><h2>{e(s.name)} <span class="muted">({e(s.kind)})</span></h2>']
    out.append(
        f"<p>Samples {t.before} → {t.after}: <b>+{t.added}</b> added, <b>−{t.removed}</b> removed, <b>{t.relabeled}</b> relabeled, "
        f"<b>{t.moved}</b> moved between slices, <b>{t.modified}</b> modified, {t.unchanged} unchanged. "
        f"Class imbalance (largest / smallest) {_num(s.imbalance_before, 2)} → {_num(s.imbalance_after, 2)}.</p>"
    )
    out.append("<h3>Samples per class</h3>" + class_bars(s))
    out.append("<h3>Relabeled (from → to)</h3>" + relabel_heatmap(s))
    columns = list(dict.fromkeys(r.column for r in s.slices))
    for col in columns:
        rows = []
        for r in (x for x in s.slices if x.column == col):
            net = r.after - r.before
            rows.append(
                f'<tr {_attrs(chart="slices", source=s.name, column=col, value=r.value, before=r.before, after=r.after)}>'
                f"<td>{e('(none)' if r.value is None else r.value)}</td><td>{r.before}</td><td>{r.after}</td><td>{_signed(net)}</td>"
                f"<td>{r.added}</td><td>{r.removed}</td><td>{r.moved_in}</td><td>{r.moved_out}</td><td>{r.relabeled}</td><td>{r.modified}</td></tr>"
            )
        out.append(f"<h3>Slice <code>{e(col)}</code></h3>" + _table(["value", "before", "after", "change", "added", "removed", "moved in", "moved out", "relabeled", "modified"], rows))
    out.append(metrics_table(s, data))
    out.append("</section>")
    return "".join(out)


def metrics_table(s: "SourceDiff", data: "ReportData") -> str:
    """Per class: the data change beside each metric's change (records of both ends)."""
    comp = data.metrics
    if comp is None:
        return ""
    joined = next((src for src in comp.sources if src.name == s.name), None)
    if joined is None or not joined.classes:
        return ""
    names = sorted({m.metric for c in joined.classes for m in c.metrics if m.metric != "support"})
    preferred = [n for n in ("f1", "precision", "recall", "accuracy") if n in names] + [n for n in names if n not in ("f1", "precision", "recall", "accuracy")]
    shown = preferred[:3]
    rows = []
    for c in joined.classes:
        by = {m.metric: m for m in c.metrics}
        samples = "not in data" if not c.in_data else f"{c.samples_before} → {c.samples_after}"
        delta = _signed((c.samples_after or 0) - (c.samples_before or 0)) if c.in_data else "—"
        cells = []
        for n in shown:
            m = by.get(n)
            if m is None:
                cells.append("<td>—</td>")
                continue
            d = "" if m.delta is None else f" ({_signed(m.delta)})"
            cells.append(f'<td {_attrs(metric=n, before=m.before, after=m.after, delta=m.delta)}>{_metric(m.before)} → {_metric(m.after)}{d}</td>')
        rows.append(
            f'<tr {_attrs(chart="metrics", source=s.name, cls=c.cls)}><td>{e(c.cls)}</td><td>{samples}</td><td>{delta}</td>'
            f"<td>+{c.added} / −{c.removed}</td><td>{c.relabeled_in} / {c.relabeled_out}</td>{''.join(cells)}</tr>"
        )
    old = comp.old.record.name if comp.old else "(none)"
    new = comp.new.record.name if comp.new else "(none)"
    return f"<h3>Metrics beside the data, per class <span class=\"muted\">({e(old)} → {e(new)})</span></h3>" + _table(
        ["class", "samples", "change", "added / removed", "relabeled in / out", *shown], rows
    )


def overall_metrics(data: "ReportData") -> str:
    comp = data.metrics
    if comp is None or not comp.overall:
        return ""
    rows = [
        f'<tr {_attrs(chart="overall-metrics", metric=m.metric, before=m.before, after=m.after)}><td>{e(m.metric)}</td><td>{_metric(m.before)}</td><td>{_metric(m.after)}</td>'
        f"<td>{'—' if m.delta is None else _signed(m.delta)}</td></tr>"
        for m in comp.overall
        if not m.metric.endswith("support")
    ]
    return '<section><h2>Metrics</h2>' + _table(["metric", "before", "after", "delta"], rows) + "</section>"


KIND_NAMES = {
    "conflicts": "label conflicts",
    "history-conflicts": "labels back and forth",
    "leakage": "split leakage",
    "duplicates": "exact duplicates",
    "small-classes": "small classes",
    "missing-labels": "missing labels",
    "unknown-labels": "unknown labels",
    "hard-samples": "hard samples",
}


def audit_section(data: "ReportData") -> str:
    new = data.audit_new
    if new is None:
        return ""
    old_counts = {s.name: s.counts() for s in data.audit_old.sources} if data.audit_old else {}
    out = [f'<section {_attrs(section="audit")}><h2>Audit findings</h2><p class="muted">Definitions: docs/audit.md. Counts at {e(data.old)} and {e(data.new)}.</p>']
    for s in new.sources:
        counts = s.counts()
        before = old_counts.get(s.name, {})
        rows = []
        for kind, label in KIND_NAMES.items():
            a, b = before.get(kind), counts[kind]
            change = "—" if a is None else _signed(b - a, up_is_good=False)
            warn = ' class="flagged"' if b and (a is None or b > a) else ""
            rows.append(f'<tr{warn} {_attrs(chart="audit", source=s.name, kind=kind, before=a, after=b)}><td>{e(label)}</td><td>{e(a)}</td><td>{b}</td><td>{change}</td></tr>')
        out.append(f"<h3>{e(s.name)}</h3>" + _table(["finding", data.old, data.new, "change"], rows))
        if s.conflicts.items:
            items = "".join(
                f"<li><code>{e(i.content[:12])}</code> labeled {e(', '.join(str(v) for v in i.values))}: "
                f"{e(', '.join(_sample(x) for x in i.samples[:4]))}</li>"
                for i in s.conflicts.items[:8]
            )
            out.append(f"<p><b>Conflicting labels</b></p><ul class=\"items\">{items}</ul>")
        for lk in s.leakage:
            if lk.items:
                items = "".join(f"<li><code>{e(i.content[:12])}</code> in {e(', '.join(map(str, i.values)))}: {e(', '.join(_sample(x) for x in i.samples[:4]))}</li>" for i in lk.items[:8])
                out.append(f"<p><b>Leakage across <code>{e(lk.column)}</code></b></p><ul class=\"items\">{items}</ul>")
        if s.hard is not None and s.hard.classes:
            rows = [
                f'<tr {_attrs(chart="error-rate", source=s.name, cls=c.cls, rate=c.error_rate)}><td>{e(c.cls)}</td><td>{c.samples}</td><td>{c.likely_errors}</td>'
                f"<td>{_bar(c.error_rate, 0.1, 1.0, _attrs(bar='error-rate'))}</td></tr>"
                for c in s.hard.classes
            ]
            out.append(f"<p><b>Estimated label error rate per class</b> <span class=\"muted\">(confident learning over {e(s.hard.record)}'s predictions)</span></p>")
            out.append(_table(["class", "samples", "likely errors", "rate"], rows))
    if data.findings and data.findings.changes:
        changes: list[str] = []
        for c in data.findings.changes:
            ex = "".join(f"<li class=\"down\">+ {e(x)}</li>" for x in c.appeared_items[:5]) + "".join(f"<li class=\"up\">− {e(x)}</li>" for x in c.disappeared_items[:5])
            changes.append(
                f'<li {_attrs(chart="finding-change", source=c.source, kind=c.kind, appeared=c.appeared, disappeared=c.disappeared)}><details><summary><b>{e(c.source)}</b>: '
                f"{e(KIND_NAMES.get(c.kind, c.kind))} <span class=\"down\">+{c.appeared}</span> / <span class=\"up\">−{c.disappeared}</span></summary>"
                f"<ul class=\"items\">{ex}</ul></details></li>"
            )
        out.append(f"<h3>What appeared and went away</h3><ul class=\"items\">{''.join(changes)}</ul>")
    out.append("</section>")
    return "".join(out)


def drift_section(drift: "DriftReport | None") -> str:
    if drift is None or not drift.sources:
        return ""
    th = drift.thresholds
    out = [
        f'<section {_attrs(section="drift")}><h2>Drift per column</h2><p class="muted">Flagged when PSI &gt; {th.psi:g} or KS &gt; {th.ks:g} '
        f"(marks on the bars); {th.bins} quantile bins for numeric PSI.</p>"
    ]
    for s in drift.sources:
        title = f"{s.reference} → {s.current}" if s.kind == "pair" else f"{drift.old} → {drift.new}"
        out.append(f"<h3>{e(s.name)} <span class=\"muted\">({e(title)})</span></h3>")
        if not s.read:
            out.append('<p class="muted">Identical on both sides (or not on both): nothing drifted.</p>')
            continue
        # Bars span three thresholds (the mark sits at a third); larger values fill the bar.
        scale_psi, scale_ks = th.psi * 3 or 1.0, min(1.0, th.ks * 3) or 1.0
        rows = []
        for c in s.columns:
            cats = ""
            if c.new_count or c.vanished_count:
                cats = f"new {c.new_count}: {e(', '.join(map(str, c.new_categories[:4])))}; vanished {c.vanished_count}: {e(', '.join(map(str, c.vanished_categories[:4])))}"
            rows.append(
                f'<tr class="{"flagged" if c.flagged else ""}" {_attrs(chart="drift", source=s.name, column=c.column, psi=c.psi, ks=c.ks, flagged=str(c.flagged).lower())}>'
                f"<td>{e(c.column)}</td><td class=\"txt\">{e(c.kind)}</td><td>{c.n_ref} → {c.n_cur}</td><td>{c.missing_ref:.1%} → {c.missing_cur:.1%}</td>"
                f"<td>{_bar(c.psi, th.psi, scale_psi, _attrs(bar='psi'))}</td><td>{_bar(c.ks, th.ks, scale_ks, _attrs(bar='ks'))}</td>"
                f"<td class=\"txt\">{cats}</td><td class=\"flag\">{'drift' if c.flagged else ''}</td></tr>"
            )
        out.append(_table(["column", "kind", "rows", "missing", "PSI", "KS", "categories", ""], rows, text_cols=2))
        flagged = [c for c in s.slices if c.flagged]
        if s.slices:
            out.append(f"<p class=\"muted\">Per slice value: {len(flagged)} of {len(s.slices)} column/value pairs drifted.</p>")
        if flagged:
            rows = [
                f'<tr class="flagged" {_attrs(chart="drift-slice", source=s.name, slice=c.slice_column, value=c.slice_value, column=c.column, psi=c.psi, ks=c.ks)}>'
                f"<td>{e(c.slice_column)} = {e(c.slice_value)}</td><td class=\"txt\">{e(c.column)}</td><td>{_num(c.psi)}</td><td>{_num(c.ks)}</td><td class=\"txt\">{e('; '.join(c.reasons))}</td></tr>"
                for c in flagged[:30]
            ]
            out.append(_table(["slice value", "column", "PSI", "KS", "why"], rows, text_cols=2))
    out.append("</section>")
    return "".join(out)


def gallery_section(data: "ReportData") -> str:
    if not data.images:
        return ""
    figures = []
    for img in data.images:
        uri = thumbnail(img.data, img.mime or "application/octet-stream") if img.data is not None and img.mime else None
        pic = f'<img src="{uri}" alt="{e(img.path)}">' if uri else '<div class="muted">(no preview)</div>'
        figures.append(
            f'<figure {_attrs(kind=img.kind, path=img.path)}>{pic}<figcaption><span class="tag {e(img.kind)}">{e(img.kind)}</span>'
            f"{e(img.note)}<br><code>{e(img.path)}</code></figcaption></figure>"
        )
    return f'<section {_attrs(section="samples")}><h2>Samples to look at</h2><div class="gallery">{"".join(figures)}</div></section>'


def _script_json(obj: Any) -> str:
    """JSON safe inside ``<script>``: ``<``, ``>`` and ``&`` as ``\\u`` escapes (JSON.parse reads them back).

    Escaping only ``</`` is not enough: ``<!--<script>`` in a label puts the HTML
    tokenizer in its "script data double escaped" state, where the closing
    ``</script>`` no longer ends the block and the rest of the page joins the JSON.
    """
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render_html(data: "ReportData") -> str:
    """The whole page."""
    payload = _script_json(data.to_dict())
    commits = "".join(f"<li><code>{e(c.id[:10])}</code> {e(c.message)} <span class=\"muted\">— {e(c.author)}, {e(c.date)}</span></li>" for c in data.commits[:20])
    more = f"<li class=\"muted\">and {len(data.commits) - 20} more</li>" if len(data.commits) > 20 else ""
    warnings = "".join(f"<li>{e(w)}</li>" for w in data.warnings)
    body = [
        f"<header><h1>Data change: {e(data.old)} → {e(data.new)}</h1>"
        f"<div class=\"sub\">{e(data.old_commit[:10])} → {e(data.new_commit[:10])} · {len(data.commits)} commit(s) · generated by dsv report</div></header>",
        "<main>",
        summary_cards(data),
        f"<section><h2>Commits</h2><ul class=\"items\">{commits}{more}</ul></section>" if commits else "",
        overall_metrics(data),
        *[source_section(s, data) for s in data.diff.sources if s.read],
        audit_section(data),
        drift_section(data.drift),
        gallery_section(data),
        f"<section><h2>Warnings</h2><ul class=\"items\">{warnings}</ul></section>" if warnings else "",
        "</main>",
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
        f"<title>dsv report {e(data.spec)}</title><style>{CSS}</style></head><body>"
        + "".join(body)
        + f'<script type="application/json" id="dsv-report-data">{payload}</script></body></html>\n'
    )
