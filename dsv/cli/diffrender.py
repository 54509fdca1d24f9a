"""Text and Markdown renderings of a semantic diff (``dsv diff``, ``dsv changelog``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsv.semantic.report import SemanticDiff, SourceDiff

CLASS_HEAD = ["class", "before", "after", "added", "removed", "relabeled in", "relabeled out", "modified"]
SLICE_HEAD = ["value", "before", "after", "added", "removed", "moved in", "moved out", "relabeled", "modified"]


def _show(v: Any) -> str:
    # One table row per value: newlines and tabs inside values are shown escaped.
    return "(none)" if v is None else str(v).replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def _text_table(head: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> list[str]:
    cells = [list(map(str, head))] + [[_show(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    out = []
    for n, r in enumerate(cells):
        line = "  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
        out.append(indent + line.rstrip())
        if n == 0:
            out.append(indent + "  ".join("-" * w for w in widths))
    return out


def _md_table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def esc(v: Any) -> str:
        return _show(v).replace("|", "\\|")

    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return out


def md_safe(lines: Sequence[str]) -> list[str]:
    """Markdown lines with HTML neutralised outside code spans: ``&`` and ``<`` as entities.

    Class names, slice values, paths, metric names and commit messages come from
    the data; in a pull-request comment ``<!--`` would hide the rest of it and a
    tag would render. Without ``<`` no tag or comment can start; ``&`` is escaped
    so that a value like ``&lt;`` shows as written. Inside code spans (CommonMark:
    a run of n backticks up to the next run of exactly n) text is literal already
    and is left alone; an unmatched run is plain text.
    """
    return [_md_line(x) for x in "\n".join(lines).split("\n")]


def _md_line(line: str) -> str:
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch == "\\" and i + 1 < n:
            out.append(line[i : i + 2])  # a backslash escape: a literal character (no tag, entity or code span)
            i += 2
            continue
        if ch == "`":
            j = i
            while j < n and line[j] == "`":
                j += 1
            run = j - i
            k = j
            close = -1
            while k < n:
                if line[k] == "`":
                    m = k
                    while m < n and line[m] == "`":
                        m += 1
                    if m - k == run:
                        close = k
                        break
                    k = m
                else:
                    k += 1
            if close >= 0:
                out.append(line[i : close + run])
                i = close + run
            else:
                out.append(line[i:j])
                i = j
            continue
        out.append(_md_char(ch))
        i += 1
    return "".join(out)


def _md_char(ch: str) -> str:
    return "&amp;" if ch == "&" else "&lt;" if ch == "<" else ch


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _summary_line(s: SourceDiff) -> str:
    t = s.totals
    moved = f"{t.moved} moved between slices, " if s.slices or t.moved else ""
    return (
        f"samples {t.before} -> {t.after}: +{t.added} added, -{t.removed} removed, "
        f"{t.relabeled} relabeled, {moved}{t.modified} modified, {t.unchanged} unchanged"
    )


def source_blocks(s: SourceDiff, *, markdown: bool, heading: str = "") -> list[str]:
    """Lines describing one source."""
    table = _md_table if markdown else _text_table
    title = f"{s.name} ({s.kind})"
    lines = [f"{heading}### {title}" if markdown else f"Source {title}"]
    if not s.read:
        lines.append("unchanged (same content; not read)" if markdown else "  unchanged (same content; not read)")
        return lines
    ind = "" if markdown else "  "
    lines.append(ind + _summary_line(s))
    if markdown:
        lines.append("")
    if s.classes:
        lines += table(CLASS_HEAD, [[c.cls, c.before, c.after, c.added, c.removed, c.relabeled_in, c.relabeled_out, c.modified] for c in s.classes])
        if markdown:
            lines.append("")
        lines.append(f"{ind}class imbalance (largest / smallest class): {_ratio(s.imbalance_before)} -> {_ratio(s.imbalance_after)}")
    if s.relabels:
        lines.append("" if markdown else "")
        lines.append(f"{ind}Relabeled (from -> to):" if not markdown else "**Relabeled**")
        if markdown:
            lines.append("")
        lines += table(["from", "to", "count"], [[r.src, r.dst, r.count] for r in s.relabels])
    columns = list(dict.fromkeys(r.column for r in s.slices))
    for col in columns:
        lines.append("")
        lines.append(f"{ind}Slice {col}:" if not markdown else f"**Slice `{col}`**")
        if markdown:
            lines.append("")
        lines += table(
            SLICE_HEAD,
            [[r.value, r.before, r.after, r.added, r.removed, r.moved_in, r.moved_out, r.relabeled, r.modified] for r in s.slices if r.column == col],
        )
    by_cols = list(dict.fromkeys(r.column for r in s.by))
    for col in by_cols:
        lines.append("")
        lines.append(f"{ind}Per class within {col}:" if not markdown else f"**Per class within `{col}`**")
        if markdown:
            lines.append("")
        lines += table(
            [col] + CLASS_HEAD + ["moved in", "moved out"],
            [
                [r.value, r.row.cls, r.row.before, r.row.after, r.row.added, r.row.removed, r.row.relabeled_in, r.row.relabeled_out, r.row.modified, r.moved_in, r.moved_out]
                for r in s.by
                if r.column == col
            ],
        )
    if s.schema:
        lines.append("")
        lines.append(f"{ind}Schema changes:" if not markdown else "**Schema changes**")
        if markdown:
            lines.append("")
        lines += table(["column", "change", "old type", "new type"], [[c.column, c.change, c.old_type or "", c.new_type or ""] for c in s.schema])
    if s.cells:
        lines.append("")
        first = f" (first {len(s.cells)})" if s.cells_truncated else ""
        lines.append(f"{ind}Changed cells{first}:" if not markdown else f"**Changed cells{first}**")
        if markdown:
            lines.append("")
        lines += table(["key", "column", "old", "new"], [[", ".join(f"{k}={v}" for k, v in c.key.items()), c.column, c.old, c.new] for c in s.cells])
    return lines


def render_text(d: SemanticDiff, *, stat_only: bool) -> list[str]:
    """The terminal rendering."""
    from dsv.cli.render import quote_path

    lines: list[str] = []
    if not stat_only:
        marks = {"added": "A", "removed": "D", "modified": "M", "moved": "R"}
        for c in d.file_changes:
            if c.kind.value == "moved":
                lines.append(f"{marks['moved']}  {quote_path(c.old_path or '')} -> {quote_path(c.path)}")
            else:
                lines.append(f"{marks[c.kind.value]}  {quote_path(c.path)}")
    n = d.files
    lines.append(f"{sum(n.values())} file(s) changed: {n['added']} added, {n['removed']} removed, {n['modified']} modified, {n['moved']} moved")
    # Warnings go to stderr (the caller prints them), never into the report.
    for s in d.sources:
        lines.append("")
        lines += source_blocks(s, markdown=False)
    return lines


def render_markdown(d: SemanticDiff, *, title: str | None = None) -> list[str]:
    """Markdown ready to paste into a pull request."""
    n = d.files
    lines = [f"## {title or f'Dataset changes: {d.old} → {d.new}'}", ""]
    lines.append(f"**Files:** {sum(n.values())} changed ({n['added']} added, {n['removed']} removed, {n['modified']} modified, {n['moved']} moved)")
    lines += [f"\n> warning: {w}" for w in d.warnings]
    for s in d.sources:
        lines.append("")
        lines += source_blocks(s, markdown=True)
    return lines


PREFERRED_METRICS = ("f1", "precision", "recall", "accuracy", "auc", "loss")


def _fmt_delta(m: Any) -> str:
    from dsv.metrics.numbers import format_change

    return format_change(m.before, m.after, m.delta)


_SKLEARN_OVERALL_SUPPORT = frozenset(f"{avg}.support" for avg in ("macro_avg", "weighted_avg", "micro_avg", "samples_avg"))


def _sklearn(comp: Any) -> bool:
    """Whether either record of a comparison was read from a scikit-learn classification report."""
    return any(e is not None and e.record.source_format == "sklearn" for e in (comp.old, comp.new))


def hidden_metric(name: str, *, sklearn: bool, overall: bool) -> bool:
    """Whether a text table leaves a metric out: only scikit-learn's ``support``, a count of samples, not a score.

    That is ``support`` in a class or slice row and ``macro_avg.support`` (and the
    other averages') overall, of a record read from a classification report. A
    metric of any other record, or named otherwise (``data_support``), is shown;
    JSON keeps every one.
    """
    if not sklearn:
        return False
    return name in _SKLEARN_OVERALL_SUPPORT if overall else name == "support"


def _shown_metrics(rows: Sequence[Any], sklearn: bool, limit: int = 3) -> list[str]:
    names = sorted({m.metric for r in rows for m in r.metrics if not hidden_metric(m.metric, sklearn=sklearn, overall=False)})
    ordered = [n for n in PREFERRED_METRICS if n in names] + [n for n in names if n not in PREFERRED_METRICS]
    return ordered[:limit]


def metrics_blocks(comp: Any, *, markdown: bool) -> list[str]:
    """Lines putting per-class and per-slice data changes next to metric deltas, one table per joined source."""
    if comp.old is None and comp.new is None:
        return []
    table = _md_table if markdown else _text_table
    ind = "" if markdown else "  "
    old = f"{comp.old.record.name}" if comp.old else "(none)"
    new = f"{comp.new.record.name}" if comp.new else "(none)"
    lines = ["", f"**Metrics** ({old} → {new})" if markdown else f"{ind}Metrics ({old} -> {new}):"]
    if markdown:
        lines.append("")
    if comp.overall:
        from dsv.metrics.numbers import format_delta, format_value

        lines += table(
            ["metric", "before", "after", "delta"],
            [
                [m.metric, format_value(m.before), format_value(m.after), format_delta(m.delta)]
                for m in comp.overall
                if not hidden_metric(m.metric, sklearn=_sklearn(comp), overall=True)
            ],
        )
    for src in comp.sources:
        if not src.classes and not src.slices:
            continue
        where = "" if src.name is None else f"{src.name} ({src.kind})" if src.kind else src.name
        if where:
            lines.append("")
            lines.append(f"*Joined with {where}*" if markdown else f"{ind}Joined with {where}:")
        if src.classes:
            shown = _shown_metrics(src.classes, _sklearn(comp))
            lines.append("")
            rows = []
            for c in src.classes:
                by_name = {m.metric: m for m in c.metrics}
                samples = "not in data" if not c.in_data else f"{c.samples_before} -> {c.samples_after}"
                rows.append(
                    [c.cls, samples, f"+{c.added}/-{c.removed}", f"{c.relabeled_in}/{c.relabeled_out}"]
                    + [_fmt_delta(by_name[n]) if n in by_name else "-" for n in shown]
                )
            lines += table(["class", "samples", "added/removed", "relabeled in/out", *shown], rows)
        if src.slices:
            shown = _shown_metrics(src.slices, _sklearn(comp))
            lines.append("")
            rows = []
            for sl in src.slices:
                by_name = {m.metric: m for m in sl.metrics}
                samples = "not in data" if not sl.in_data else f"{sl.samples_before} -> {sl.samples_after}"
                rows.append([f"{sl.column}={sl.value}", samples] + [_fmt_delta(by_name[n]) if n in by_name else "-" for n in shown])
            lines += table(["slice", "samples", *shown], rows)
    return lines
