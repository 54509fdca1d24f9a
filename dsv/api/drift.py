"""Porcelain for ``dsv diff --drift``: which tables to compare, read from which side.

Between two versions every declared table source present on both sides is
compared column by column (the key and ``file`` columns left out); each
``[[drift.pairs]]`` entry compares a reference table with a current one at the
newer side. The statistics are :mod:`dsv.semantic.drift`'s.
"""

from __future__ import annotations

import math

import os
from typing import TYPE_CHECKING

from dsv.base.errors import SampleSourceError, UsageError
from dsv.semantic.declaration import Declaration, DriftPair, TableSource, table_format
from dsv.semantic.drift import Column, DriftReport, SourceDrift, Thresholds, compare

if TYPE_CHECKING:
    import duckdb

    from dsv.api.repo import Repo
    from dsv.api.semantic import Side

_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL")


def _reader(disk: str, dataset_path: str, fmt: str) -> str:
    """SQL reading a table file in its own types (CSV: DuckDB's sniffer over every row)."""
    from dsv.semantic.engine import lit

    gz = ", compression='gzip'" if dataset_path.lower().endswith(".gz") else ""
    if fmt == "parquet":
        return f"read_parquet({lit(disk)})"
    if fmt == "jsonl":
        return f"read_json({lit(disk)}, format='newline_delimited'{gz})"
    delim = "\\t" if dataset_path.lower().endswith((".tsv", ".tsv.gz")) else ","
    return f"read_csv({lit(disk)}, header=true, auto_detect=true, sample_size=-1, delim={lit(delim)}{gz})"


def _view(con: "duckdb.DuckDBPyConnection", name: str, side: "Side", path: str, fmt: str) -> dict[str, str]:
    """Expose ``path`` at ``side`` as view ``name``; return its column types."""
    import duckdb

    from dsv.semantic.engine import q

    disk = side.disk_path(path)
    if disk is None:
        raise SampleSourceError(f"{path} does not exist at {side.name}", hint="check [[drift.pairs]] in dsv.toml")
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {q(name)} AS SELECT * FROM {_reader(disk, path, fmt)}")
        return {r[0]: r[1] for r in con.execute(f"DESCRIBE {q(name)}").fetchall()}
    except duckdb.Error as err:
        detail = " ".join(str(err).replace(disk, path).split())[:300]
        raise SampleSourceError(f"cannot read {path} at {side.name}: {detail}") from err


def _columns(types_a: dict[str, str], types_b: dict[str, str], skip: set[str]) -> list[Column]:
    """Columns on both sides: numeric where both read as numbers, else categorical as canonical text."""
    from dsv.semantic.engine import q
    from dsv.semantic.column_types import canon

    out = []
    for c, tb in types_b.items():
        ta = types_a.get(c)
        if ta is None or c in skip:
            continue
        if ta.startswith(_NUMERIC) and tb.startswith(_NUMERIC):
            out.append(Column(c, f"a.{q(c)}", f"b.{q(c)}", True))
        else:
            out.append(Column(c, canon(f"a.{q(c)}", ta), canon(f"b.{q(c)}", tb), False))
    return out


def _slices(types_a: dict[str, str], types_b: dict[str, str], names: list[str]) -> list[tuple[str, str, str]]:
    from dsv.semantic.engine import q
    from dsv.semantic.column_types import canon

    return [(s, canon(f"a.{q(s)}", types_a[s]), canon(f"b.{q(s)}", types_b[s])) for s in names if s in types_a and s in types_b]


def drift_between(
    con: "duckdb.DuckDBPyConnection", a: "Side", b: "Side", table: TableSource, tag: str, th: Thresholds
) -> SourceDrift:
    """One table source from side ``a`` to side ``b``."""
    oid_a, oid_b = a.oid_of(table.path), b.oid_of(table.path)
    if oid_a is None or oid_b is None or oid_a == oid_b:
        # Identical (no drift), or absent on a side (nothing to compare with): not read.
        return SourceDrift(table.display_name, "version", a.name, b.name, read=False)
    fmt = table.resolved_format
    ta = _view(con, f"dra_{tag}", a, table.path, fmt)
    tb = _view(con, f"drb_{tag}", b, table.path, fmt)
    skip = {*table.key, *([table.file] if table.file else [])}
    overall, per_slice = compare(con, f"dra_{tag}", f"drb_{tag}", _columns(ta, tb, skip), _slices(ta, tb, table.slices), th)
    return SourceDrift(table.display_name, "version", a.name, b.name, True, tuple(overall), tuple(per_slice))


def drift_pair(con: "duckdb.DuckDBPyConnection", side: "Side", pair: DriftPair, decl: Declaration, tag: str, th: Thresholds) -> SourceDrift:
    """A reference table against a current one, both at ``side``."""
    def resolve(what: str) -> tuple[str, str, TableSource | None]:
        for t in decl.tables:
            if what in (t.display_name, t.path):
                return t.path, t.resolved_format, t
        fmt = pair.format or table_format(what)
        if fmt is None:
            raise SampleSourceError(f"[[drift.pairs]] {what}: cannot tell the table format", hint="add format = 'csv' | 'parquet' | 'jsonl' to the pair")
        return what, fmt, None

    ref_path, ref_fmt, ref_src = resolve(pair.reference)
    cur_path, cur_fmt, cur_src = resolve(pair.current)
    ta = _view(con, f"dpa_{tag}", side, ref_path, ref_fmt)
    tb = _view(con, f"dpb_{tag}", side, cur_path, cur_fmt)
    skip: set[str] = set()
    slices: list[str] = []
    for src in (ref_src, cur_src):
        if src is not None:
            skip |= {*src.key, *([src.file] if src.file else [])}
            slices += [s for s in src.slices if s not in slices]
    overall, per_slice = compare(con, f"dpa_{tag}", f"dpb_{tag}", _columns(ta, tb, skip), _slices(ta, tb, slices), th)
    return SourceDrift(pair.display_name, "pair", ref_path, cur_path, True, tuple(overall), tuple(per_slice))


def run_drift(
    repo: "Repo",
    old: str | None,
    new: str | None,
    *,
    psi: float | None,
    ks: float | None,
    bins: int | None,
    declaration: Declaration | None,
) -> DriftReport:
    """Drift of every table source from ``old`` to ``new`` (sides as in ``dsv diff``) and of every declared pair at ``new``."""
    from dsv.api.semantic import declaration_of, empty_side, revision_side, worktree_side
    from dsv.manifest import read_manifest
    from dsv.semantic import engine

    # NaN passes a range check (every comparison with it is false) and would then flag nothing.
    for flag, value in (("--psi", psi), ("--ks", ks)):
        if value is not None and math.isnan(value):
            raise UsageError(f"{flag} must be a number, not {value}", hint="e.g. --psi 0.2 --ks 0.1")
    temp_files: list[str] = []

    def rev_side(rev: str) -> "Side":
        commit = repo.resolve(rev).commit
        return revision_side(repo, rev, temp_files, read_manifest(repo.repository.store, commit.manifest))

    try:
        if new is not None:
            a, b = rev_side(old or "HEAD"), rev_side(new)
        else:
            a = empty_side() if old is None and repo.repository.refs.head().commit is None else rev_side(old or "HEAD")
            b = worktree_side(repo)
        decl = declaration if declaration is not None else declaration_of(b)
        settings = decl.drift
        if declaration is not None:
            # Flags name the tables; thresholds and pairs still come from dsv.toml when it reads.
            from dsv.base.errors import DsvError
            from dsv.semantic.declaration import DriftSettings

            try:
                settings = declaration_of(b).drift
            except DsvError:
                settings = DriftSettings()
        th = Thresholds(
            psi=settings.psi if psi is None else psi,
            ks=settings.ks if ks is None else ks,
            bins=settings.bins if bins is None else bins,
        )
        if th.bins < 2:
            raise UsageError("--bins must be at least 2")
        sources: list[SourceDrift] = []
        warnings: list[str] = []
        con = engine.connect(repo.repository.scratch_dir)
        try:
            for i, table in enumerate(decl.tables):
                if a.oid_of(table.path) is None or b.oid_of(table.path) is None:
                    warnings.append(f"{table.display_name}: not at both {a.name} and {b.name}; no drift to measure")
                sources.append(drift_between(con, a, b, table, f"t{i}", th))
            for i, pair in enumerate(settings.pairs):
                sources.append(drift_pair(con, b, pair, decl, f"p{i}", th))
        finally:
            con.close()
        if not sources:
            warnings.append("no table source and no [[drift.pairs]]: drift compares table columns (folder sources have none)")
        return DriftReport(a.name, b.name, th, tuple(sources), tuple(warnings))
    finally:
        for t in temp_files:
            try:
                os.unlink(t)
            except OSError:
                pass
