"""Text and Markdown renderings of ``dsv diff --drift``."""

from __future__ import annotations

from typing import Any

from dsv.cli.diffrender import _md_table, _show, _text_table
from dsv.semantic.drift import ColumnDrift, DriftReport


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _cats(values: tuple[Any, ...], count: int) -> str:
    shown = ", ".join(_show(v) for v in values[:5])
    return "" if not count else shown + (f" +{count - min(count, 5)} more" if count > 5 else "")


def _row(c: ColumnDrift, with_slice: bool) -> list[Any]:
    missing = f"{c.missing_ref:.1%} -> {c.missing_cur:.1%}"
    row = [c.column, c.kind, f"{c.n_ref} -> {c.n_cur}", missing, _num(c.psi), _num(c.ks), _cats(c.new_categories, c.new_count), _cats(c.vanished_categories, c.vanished_count), "DRIFT" if c.flagged else ""]
    return ([f"{c.slice_column}={_show(c.slice_value)}"] if with_slice else []) + row


HEAD = ["column", "kind", "rows", "missing", "psi", "ks", "new", "vanished", ""]


def render_drift(report: DriftReport, *, markdown: bool) -> list[str]:
    """The drift section: per source a table of columns, then the flagged slice rows."""
    table = _md_table if markdown else _text_table
    th = report.thresholds
    out = ["", f"## Drift ({report.old} → {report.new})" if markdown else f"Drift ({report.old} -> {report.new})"]
    out.append(f"flagged when psi > {th.psi:g} or ks > {th.ks:g} ({th.bins} bins; slice values need {th.min_rows} rows on both sides)")
    for s in report.sources:
        out.append("")
        what = f"{s.reference} -> {s.current}" if s.kind == "pair" else "between versions"
        title = f"{s.name} ({what})"
        out.append(f"### {title}" if markdown else f"Source {title}")
        if not s.read:
            out.append(("" if markdown else "  ") + "not read (identical, or not on both sides)")
            continue
        if markdown:
            out.append("")
        out += table(HEAD, [_row(c, False) for c in s.columns])
        flagged = [c for c in s.slices if c.flagged]
        if s.slices:
            out.append("")
            out.append(f"{'' if markdown else '  '}Per slice value: {len(flagged)} of {len(s.slices)} drifted")
            if flagged:
                if markdown:
                    out.append("")
                out += table(["slice"] + HEAD, [_row(c, True) for c in flagged])
    out.append("")
    out.append(("**Drift flagged**" if markdown else "drift flagged") if report.flagged else "no drift past the thresholds")
    return out
