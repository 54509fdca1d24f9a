"""Distribution drift of a table's columns between a reference and a current side, overall and per slice value.

Numeric columns: the population stability index over the reference's quantile
bins (plus a bin for missing values) and the two-sample Kolmogorov-Smirnov
statistic (the largest gap between the two empirical distribution functions,
missing values left out). Categorical columns: PSI over the categories (missing
is a category) and the categories that are new or vanished. Every number is an
aggregate computed by DuckDB over the two views; the definitions and default
thresholds are in docs/audit.md ("Drift").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsv.semantic.engine import q

if TYPE_CHECKING:
    import duckdb

DRIFT_FORMAT = 1
EPSILON = 1e-4
"""Share given to a bin or category that is empty on one side, so PSI stays finite."""
MAX_CATEGORIES = 200
"""A categorical column with more distinct reference values is reported, not scored (free text, ids)."""
LISTED = 20
"""New or vanished categories listed per column (all are counted)."""


@dataclass(frozen=True)
class Thresholds:
    """When a column counts as drifted; slice rows need ``min_rows`` on both sides to be flagged."""

    psi: float = 0.2
    ks: float = 0.1
    bins: int = 10
    min_rows: int = 30

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"psi": self.psi, "ks": self.ks, "bins": self.bins, "min_rows": self.min_rows}


@dataclass(frozen=True)
class Column:
    """A column to compare: SQL for its value on each side (alias-free, over the side's view) and its kind."""

    name: str
    ref: str
    cur: str
    numeric: bool


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column, overall (``slice_column`` None) or within one slice value."""

    column: str
    kind: str  # numeric | categorical | high-cardinality
    n_ref: int
    n_cur: int
    missing_ref: float
    missing_cur: float
    psi: float | None = None
    ks: float | None = None
    new_categories: tuple[str | None, ...] = ()
    vanished_categories: tuple[str | None, ...] = ()
    new_count: int = 0
    vanished_count: int = 0
    flagged: bool = False
    reasons: tuple[str, ...] = ()
    slice_column: str | None = None
    slice_value: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {
            "column": self.column,
            "kind": self.kind,
            "n_ref": self.n_ref,
            "n_cur": self.n_cur,
            "missing_ref": self.missing_ref,
            "missing_cur": self.missing_cur,
            "psi": self.psi,
            "ks": self.ks,
            "new_categories": {"count": self.new_count, "values": list(self.new_categories)},
            "vanished_categories": {"count": self.vanished_count, "values": list(self.vanished_categories)},
            "flagged": self.flagged,
            "reasons": list(self.reasons),
        }
        if self.slice_column is not None:
            out = {"slice": self.slice_column, "value": self.slice_value, **out}
        return out


@dataclass(frozen=True)
class SourceDrift:
    """Drift of one table (between two versions) or of one reference/current pair."""

    name: str
    kind: str  # version | pair
    reference: str
    current: str
    read: bool = True
    columns: tuple[ColumnDrift, ...] = ()
    slices: tuple[ColumnDrift, ...] = ()

    @property
    def flagged(self) -> bool:
        """Whether any column (overall or in a slice) exceeded a threshold."""
        return any(c.flagged for c in (*self.columns, *self.slices))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "reference": self.reference,
            "current": self.current,
            "read": self.read,
            "flagged": self.flagged,
            "columns": [c.to_dict() for c in self.columns],
            "slices": [c.to_dict() for c in self.slices],
        }


@dataclass(frozen=True)
class DriftReport:
    """``dsv diff --drift``: every table source between two versions, and every declared pair."""

    old: str
    new: str
    thresholds: Thresholds
    sources: tuple[SourceDrift, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def flagged(self) -> bool:
        """Whether anything drifted past a threshold (``--exit-code``)."""
        return any(s.flagged for s in self.sources)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (docs/audit.md, "Drift")."""
        return {
            "format": DRIFT_FORMAT,
            "old": self.old,
            "new": self.new,
            "thresholds": self.thresholds.to_dict(),
            "flagged": self.flagged,
            "sources": [s.to_dict() for s in self.sources],
            "warnings": list(self.warnings),
        }


# -- the statistics ------------------------------------------------------------------------------


def psi(ref: list[float], cur: list[float]) -> float:
    """PSI of two share vectors over the same bins: sum((c - r) * ln(c / r)), empty shares set to EPSILON."""
    total = 0.0
    for r, c in zip(ref, cur):
        r, c = max(r, EPSILON), max(c, EPSILON)
        total += (c - r) * math.log(c / r)
    return total


def compare(
    con: "duckdb.DuckDBPyConnection",
    ref_view: str,
    cur_view: str,
    columns: list[Column],
    slices: list[tuple[str, str, str]],
    thresholds: Thresholds,
) -> tuple[list[ColumnDrift], list[ColumnDrift]]:
    """Drift of each column overall and within each value of each slice (``(name, ref_sql, cur_sql)``)."""
    overall: list[ColumnDrift] = []
    per_slice: list[ColumnDrift] = []
    for col in columns:
        overall.extend(_column(con, ref_view, cur_view, col, None, thresholds))
        for name, sr, sc in slices:
            if name == col.name:
                continue
            per_slice.extend(_column(con, ref_view, cur_view, col, (name, sr, sc), thresholds))
    return overall, per_slice


def _column(
    con: "duckdb.DuckDBPyConnection", rv: str, cv: str, col: Column, sl: tuple[str, str, str] | None, th: Thresholds
) -> list[ColumnDrift]:
    g_ref = sl[1] if sl else "NULL::VARCHAR"
    g_cur = sl[2] if sl else "NULL::VARCHAR"
    typ = "DOUBLE" if col.numeric else "VARCHAR"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE dv AS
            SELECT 0 AS side, {g_ref} AS g, CAST({col.ref} AS {typ}) AS x FROM {q(rv)} a
            UNION ALL SELECT 1, {g_cur}, CAST({col.cur} AS {typ}) FROM {q(cv)} b"""
    )
    if col.numeric:
        # Non-finite numbers count as missing: they fall in no bin and have no place in a CDF.
        con.execute("UPDATE dv SET x = NULL WHERE NOT isfinite(x)")
    sizes = {
        (g, side): (int(n), int(nn))
        for g, side, n, nn in con.execute("SELECT g, side, count(*), count(*) FILTER (x IS NULL) FROM dv GROUP BY g, side").fetchall()
    }
    groups = sorted({g for g, _ in sizes}, key=lambda v: (v is None, v or ""))
    out = []
    if col.numeric:
        stats = _numeric(con, th.bins)
    else:
        stats = _categorical(con)
    for g in groups:
        n_ref, null_ref = sizes.get((g, 0), (0, 0))
        n_cur, null_cur = sizes.get((g, 1), (0, 0))
        st = stats.get(g, {})
        kind = "numeric" if col.numeric else ("high-cardinality" if st.get("high") else "categorical")
        reasons = []
        big_enough = sl is None or (n_ref >= th.min_rows and n_cur >= th.min_rows)
        p, k = st.get("psi"), st.get("ks")
        if n_ref and n_cur and big_enough:
            if p is not None and p > th.psi:
                reasons.append(f"psi {p:.3f} > {th.psi:g}")
            if k is not None and k > th.ks:
                reasons.append(f"ks {k:.3f} > {th.ks:g}")
        out.append(
            ColumnDrift(
                col.name,
                kind,
                n_ref,
                n_cur,
                null_ref / n_ref if n_ref else 0.0,
                null_cur / n_cur if n_cur else 0.0,
                p if n_ref and n_cur else None,
                k if n_ref and n_cur else None,
                tuple(st.get("new", ())),
                tuple(st.get("gone", ())),
                int(st.get("n_new", 0)),
                int(st.get("n_gone", 0)),
                bool(reasons),
                tuple(reasons),
                sl[0] if sl else None,
                g,
            )
        )
    return out


def _numeric(con: "duckdb.DuckDBPyConnection", bins: int) -> dict[Any, dict[str, Any]]:
    """Per group: PSI over the reference's quantile bins (+ missing) and the KS statistic."""
    edges = _quantile_edges(con, bins)
    out: dict[Any, dict[str, Any]] = {}
    con.execute("CREATE OR REPLACE TEMP TABLE dv_e (g VARCHAR, edges DOUBLE[])")
    if edges:
        con.executemany("INSERT INTO dv_e VALUES (?, ?)", [(g, e) for g, e in edges.items()])
    # A value's bin is how many reference edges lie below it; missing values get bin -1.
    rows = con.execute(
        """SELECT d.g, side, CASE WHEN x IS NULL THEN -1 ELSE len(list_filter(coalesce(e.edges, []), lambda t: x > t)) END AS b, count(*)
           FROM dv d LEFT JOIN dv_e e ON e.g IS NOT DISTINCT FROM d.g GROUP BY ALL"""
    ).fetchall()
    counts: dict[Any, dict[tuple[int, int], int]] = {}
    for g, side, b, n in rows:
        counts.setdefault(g, {})[(side, b)] = int(n)
    for g, c in counts.items():
        n_ref = sum(v for (s, _), v in c.items() if s == 0)
        n_cur = sum(v for (s, _), v in c.items() if s == 1)
        keys = sorted({b for _, b in c})
        if n_ref and n_cur:
            out[g] = {"psi": psi([c.get((0, b), 0) / n_ref for b in keys], [c.get((1, b), 0) / n_cur for b in keys])}
    for g, k in con.execute(
        """WITH t AS (SELECT g, side, x, count(*) AS n FROM dv WHERE x IS NOT NULL GROUP BY ALL),
                tot AS (SELECT g, count(*) FILTER (side = 0) AS a, count(*) FILTER (side = 1) AS b FROM dv WHERE x IS NOT NULL GROUP BY g),
                v AS (SELECT g, x, sum(n) FILTER (side = 0) AS na, sum(n) FILTER (side = 1) AS nb FROM t GROUP BY g, x),
                c AS (SELECT v.g, sum(coalesce(na, 0)) OVER w / tot.a AS fa, sum(coalesce(nb, 0)) OVER w / tot.b AS fb
                      FROM v JOIN tot ON tot.g IS NOT DISTINCT FROM v.g WHERE tot.a > 0 AND tot.b > 0
                      WINDOW w AS (PARTITION BY v.g ORDER BY v.x ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))
           SELECT g, max(abs(fa - fb)) FROM c GROUP BY g"""
    ).fetchall():
        out.setdefault(g, {})["ks"] = float(k)
    return out


def _quantile_edges(con: "duckdb.DuckDBPyConnection", bins: int) -> dict[Any, list[float]]:
    """Per group, the reference's quantiles at 1/bins .. (bins-1)/bins (numpy's 'linear' rule), distinct and sorted.

    The two order statistics around each quantile are read from the sorted
    column and interpolated here as numpy does: DuckDB's list form of
    ``quantile_cont`` put an edge between two values of 13.5 at
    13.499999999999998, which split equal values into two bins.
    """
    sizes = dict(con.execute("SELECT g, count(*) FROM dv WHERE side = 0 AND x IS NOT NULL GROUP BY g").fetchall())
    positions: dict[Any, list[tuple[int, int, float]]] = {}
    for g, n in sizes.items():
        for i in range(1, bins):
            h = (n - 1) * (i / bins)
            lo = math.floor(h)
            positions.setdefault(g, []).append((lo, min(lo + 1, n - 1), h - lo))
    con.execute("CREATE OR REPLACE TEMP TABLE dv_p (g VARCHAR, i BIGINT)")
    wanted = list({(g, i) for g, ps in positions.items() for lo, hi, _ in ps for i in (lo, hi)})
    if wanted:
        con.executemany("INSERT INTO dv_p VALUES (?, ?)", wanted)
    values = {
        (g, int(i)): float(x)
        for g, i, x in con.execute(
            """SELECT r.g, r.i, r.x FROM (
                   SELECT g, x, row_number() OVER (PARTITION BY g ORDER BY x) - 1 AS i FROM dv WHERE side = 0 AND x IS NOT NULL
               ) r JOIN dv_p p ON p.g IS NOT DISTINCT FROM r.g AND p.i = r.i"""
        ).fetchall()
    }
    return {g: sorted({_lerp(values[(g, lo)], values[(g, hi)], t) for lo, hi, t in ps}) for g, ps in positions.items()}


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's interpolation between neighbours (exact at both ends, and ``a`` when ``a == b``)."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def _categorical(con: "duckdb.DuckDBPyConnection") -> dict[Any, dict[str, Any]]:
    """Per group: PSI over the categories (missing included), new and vanished categories; all in SQL."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE dv_c AS SELECT g, x, count(*) FILTER (side = 0) AS a, count(*) FILTER (side = 1) AS b FROM dv GROUP BY g, x"
    )
    out: dict[Any, dict[str, Any]] = {}
    for g, n_cats, n_new, n_gone, new, gone in con.execute(
        # Missing is a bin of the PSI but not a category: it has its own share (missing_ref/_cur).
        f"""SELECT g, count(*) FILTER (a > 0 AND x IS NOT NULL), count(*) FILTER (a = 0 AND x IS NOT NULL),
                   count(*) FILTER (b = 0 AND x IS NOT NULL),
                   (list(x ORDER BY b DESC, x) FILTER (a = 0 AND x IS NOT NULL))[1:{LISTED}],
                   (list(x ORDER BY a DESC, x) FILTER (b = 0 AND x IS NOT NULL))[1:{LISTED}]
            FROM dv_c GROUP BY g"""
    ).fetchall():
        out[g] = {"n_new": n_new, "n_gone": n_gone, "new": new or [], "gone": gone or [], "high": n_cats > MAX_CATEGORIES}
    for g, value in con.execute(
        f"""WITH t AS (SELECT g, sum(a) AS na, sum(b) AS nb FROM dv_c GROUP BY g),
                 p AS (SELECT c.g, greatest(a / na, {EPSILON}) AS r, greatest(b / nb, {EPSILON}) AS c
                       FROM dv_c c JOIN t ON t.g IS NOT DISTINCT FROM c.g WHERE na > 0 AND nb > 0)
            SELECT g, sum((c - r) * ln(c / r)) FROM p GROUP BY g"""
    ).fetchall():
        if not out[g]["high"]:
            out[g]["psi"] = float(value)
    return out
