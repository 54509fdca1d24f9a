"""Table sources: read two versions of an annotation table and join them by key.

How a column reads is decided once, from both versions, so that a value added
in one version never changes how the other values read (docs/diff-format.md,
"Column types"):

* **CSV** is read as the file writes it (every cell as text). Keys, labels and
  slice values are that text (``T`` stays ``T``, ``1.0`` stays ``1.0``). Other
  cells compare as values of the type that reads the column in *both* versions
  (DuckDB's sniffer type when both sides agree, a number when both are numbers,
  text otherwise): ``0.5`` equals ``0.50`` in a numeric column, and a column
  holding text in either version compares as written. Numbers and keys are read
  exactly from their digits (:func:`exact_number`), never through a double.
* **Parquet and JSONL** carry their types. A column of the same type on both
  sides compares natively; numbers of different types compare as numbers;
  anything else, and every key, label and slice value of a mixed column,
  compares as canonical text (strings unquoted, whole floats as integers).
* ``types = { col = "..." }`` in ``dsv.toml`` pins a column's type (``integer``
  reads ``1.0`` as 1 and never rounds ``1.5``; a value that does not read as its
  type keeps its text and is warned about).

The joined table has one row per sample: ``in_a``, ``in_b``, the key, ``label_a``,
``label_b``, each slice on both sides, ``relabeled`` and ``changed`` (content:
other columns, and the bytes of the file a row names); the summaries in
:mod:`dsv.semantic.engine` are group-bys over it, and count a slice that differs
as a move, apart from ``changed``.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from dsv.base.errors import SampleSourceError
from dsv.semantic.column_types import KeyColumn, Reading, declared_text, file_path, has_json_arrays, json_text
from dsv.semantic.declaration import TableSource
from dsv.semantic.detail import nested_detail
from dsv.semantic.engine import lit, q, summarize
from dsv.semantic.report import CellChange, SchemaChange, SourceDiff
from dsv.semantic.table_files import Version, empty_like, load_table

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


# -- keys --------------------------------------------------------------------------------


def _check_keys_in_join(
    con: "duckdb.DuckDBPyConnection", j: str, a: Version, b: Version, source: TableSource, sides: tuple[str, str]
) -> None:
    """Prove both sides' keys unique from the join, without a group-by over every row.

    If side A repeats key k: when B has k, the join repeats B's row, so B's rows
    in the join outnumber B's rows; when B lacks k, k repeats among the removed
    rows, a small set to group. Symmetrically for B. Only on failure are the full
    tables grouped, to name the repeated keys.
    """
    n = len(source.key)
    keys = ", ".join(f"__k{i}" for i in range(n))
    any_null = " OR ".join(f"__k{i} IS NULL" for i in range(n))
    (nulls,) = con.execute(f"SELECT count(*) FROM {q(j)} WHERE {any_null}").fetchall()[0]
    if nulls:
        raise SampleSourceError(
            f"{source.path}: {nulls} row(s) have an empty key ({', '.join(source.key)})", hint="every sample needs a key value to be matched across versions"
        )
    in_a, in_b, dup_removed, dup_added = con.execute(
        f"""SELECT count(*) FILTER (in_a), count(*) FILTER (in_b),
                   (SELECT count(*) FROM (SELECT {keys} FROM {q(j)} WHERE in_a AND NOT in_b GROUP BY ALL HAVING count(*) > 1)),
                   (SELECT count(*) FROM (SELECT {keys} FROM {q(j)} WHERE in_b AND NOT in_a GROUP BY ALL HAVING count(*) > 1))
            FROM {q(j)}"""
    ).fetchall()[0]
    if in_b != b.rows or dup_removed:
        check_unique_keys(con, a.view, source, sides[0])
    if in_a != a.rows or dup_added:
        check_unique_keys(con, b.view, source, sides[1])
    if in_a != a.rows or in_b != b.rows or dup_removed or dup_added:
        # Reached when two keys differ natively but read as the same text (a JSONL id 1 and "1").
        raise SampleSourceError(f"{source.path}: key {', '.join(source.key)} is not unique", hint="a key must identify one sample")


def check_unique_keys(con: "duckdb.DuckDBPyConnection", view: str, source: TableSource, side: str) -> None:
    """Refuse a table whose key repeats, naming a few repeated keys."""
    keys = ", ".join(q(k) for k in source.key)
    dups = con.execute(f"SELECT {keys}, count(*) AS n FROM {q(view)} GROUP BY ALL HAVING count(*) > 1 ORDER BY n DESC LIMIT 5").fetchall()
    if dups:
        shown = "; ".join(", ".join(str(v) for v in d[:-1]) + f" (x{d[-1]})" for d in dups)
        raise SampleSourceError(f"{source.path} at {side}: key {', '.join(source.key)} is not unique: {shown}", hint="a key must identify one sample")


_INTEGER_TYPES = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"})


def shown_types(source: TableSource, types: dict[str, str]) -> dict[str, str]:
    """Column types as the schema section and type warnings name them: a CSV or JSONL integer
    column is ``BIGINT`` whatever width DuckDB inferred (text declares none: a JSONL column mixing
    signs reads as ``HUGEINT``), Parquet's declared types as they are. (Comparisons use the
    types DuckDB read: see :mod:`dsv.semantic.column_types`.)"""
    if source.resolved_format == "parquet":
        return types
    return {c: "BIGINT" if t in _INTEGER_TYPES else t for c, t in types.items()}


def schema_changes(cols_a: dict[str, str], cols_b: dict[str, str]) -> list[SchemaChange]:
    """Columns added, removed and retyped between two versions."""
    out = [SchemaChange(c, "removed", t, None) for c, t in cols_a.items() if c not in cols_b]
    out += [SchemaChange(c, "added", None, t) for c, t in cols_b.items() if c not in cols_a]
    out += [SchemaChange(c, "type_changed", cols_a[c], t) for c, t in cols_b.items() if c in cols_a and cols_a[c] != t]
    return out


# -- the diff ----------------------------------------------------------------------------


def diff_table(
    con: "duckdb.DuckDBPyConnection",
    path_a: str | None,
    path_b: str | None,
    source: TableSource,
    *,
    side_a: str,
    side_b: str,
    file_oids: tuple["pa.Table", "pa.Table"] | None,
    by: list[str],
    rows: int | None,
    tag: str,
) -> SourceDiff:
    """Diff two versions of an annotation table (``None`` for a side where the file does not exist)."""
    # An empty file holds no samples (and no schema): treat it like a missing file.
    path_a = path_a if path_a and os.path.getsize(path_a) > 0 else None
    path_b = path_b if path_b and os.path.getsize(path_b) > 0 else None
    if path_a is None and path_b is None:
        return SourceDiff(source.display_name, "table", read=True)
    va, vb = f"ta_{tag}", f"tb_{tag}"
    a = load_table(con, va, path_a, source, side_a) if path_a else None
    b = load_table(con, vb, path_b, source, side_b) if path_b else None
    if a is None:
        assert b is not None
        a = empty_like(con, va, b)
    if b is None:
        b = empty_like(con, vb, a)
    schema = schema_changes(shown_types(source, a.types), shown_types(source, b.types)) if path_a and path_b else []
    for c in [source.label, *source.slices, *([source.file] if source.file else [])]:
        if c not in a.types and c not in b.types:
            raise SampleSourceError(
                f"{source.path} has no column {c!r} at {side_a} or {side_b} (columns: {', '.join(b.types or a.types)})",
                hint="check label/slices/file in dsv.toml, or the --label/--slice/--file flags",
            )
    r = Reading(source, a, b)
    warnings = _type_warnings(source, a, b, side_a, side_b) + _declared_type_warnings(con, r, side_a, side_b)

    ta, tb = a.types.get(source.label), b.types.get(source.label)
    arrays = (has_json_arrays(con, a, source.label), has_json_arrays(con, b, source.label))
    multilabel = not a.as_text and ((ta or "").endswith("[]") or (tb or "").endswith("[]") or any(arrays))
    if multilabel:
        label_a, label_b = r.labels("a", source.label, arrays[0]), r.labels("b", source.label, arrays[1])
    else:
        label_a, label_b = r.text("a", source.label), r.text("b", source.label)

    keys = [r.key(k) for k in source.key]
    join_on = " AND ".join(f"{k.a} = {k.b}" for k in keys)
    # Content: every other column present on both sides, and the content of the file a
    # row names. Label (relabeled) and slices (moved) are counted apart.
    file_col = source.file if source.file and file_oids is not None else None
    special = {*source.key, source.label, *source.slices, *([file_col] if file_col else [])}
    payload = [c for c in b.types if c in a.types and c not in special]
    diffs = [f"NOT {r.cell(c)[0]}" for c in payload]
    file_join = ""
    if file_col and file_oids is not None:
        con.register(f"fo_a_{tag}", file_oids[0])
        con.register(f"fo_b_{tag}", file_oids[1])
        oid_a = oid_b = "NULL"
        path_a, path_b = file_path(r.raw("a", file_col)), file_path(r.raw("b", file_col))
        if file_col in a.types:
            file_join += f" LEFT JOIN fo_a_{tag} foa ON foa.path = {path_a}"
            oid_a = "foa.oid"
        if file_col in b.types:
            file_join += f" LEFT JOIN fo_b_{tag} fob ON fob.path = {path_b}"
            oid_b = "fob.oid"
        # Same bytes at a new path (the image moved with its row) is no change of content;
        # where a path names no file, the paths themselves are compared.
        diffs.append(
            f"(CASE WHEN {oid_a} IS NOT NULL AND {oid_b} IS NOT NULL THEN {oid_a} <> {oid_b} "
            f"ELSE {path_a} IS DISTINCT FROM {path_b} END)"
        )
    changed = " OR ".join(diffs) if diffs else "false"
    slices = ", ".join(f"{r.text('a', s)} AS s_a_{i}, {r.text('b', s)} AS s_b_{i}" for i, s in enumerate(source.slices))
    keys_out = ", ".join(f"coalesce({k.a}, {k.b}) AS __k{i}" for i, k in enumerate(keys))
    j = f"j_{tag}"
    con.execute(
        f"""CREATE TEMP TABLE {j} AS
            SELECT a.__present IS NOT NULL AS in_a, b.__present IS NOT NULL AS in_b, {keys_out},
                   {label_a} AS label_a, {label_b} AS label_b, {slices + ',' if slices else ''}
                   (a.__present IS NOT NULL AND b.__present IS NOT NULL AND {label_a} IS DISTINCT FROM {label_b}) AS relabeled,
                   (a.__present IS NOT NULL AND b.__present IS NOT NULL AND ({changed})) AS changed
            FROM (SELECT *, true AS __present FROM {q(va)}) a
            FULL OUTER JOIN (SELECT *, true AS __present FROM {q(vb)}) b ON {join_on}{file_join}"""
    )
    _check_keys_in_join(con, j, a, b, source, (side_a, side_b))
    result = summarize(con, j, source.slices, multilabel=multilabel, by=by, name=source.display_name, kind="table")
    cells: list[CellChange] = []
    truncated = False
    if rows != 0:
        # Every cell that differs: content, file path, label and slices (the counts classify them).
        # A label, slice or file column that one version lacks is NULL there, as the
        # counts have it: its cells show NULL -> value.
        shown: list[tuple[str, tuple[str, str, str]]] = [(c, r.cell(c)) for c in payload]
        if file_col:
            if file_col in a.types and file_col in b.types:
                shown.append((file_col, r.cell(file_col)))
            else:
                fa, fb = r.raw("a", file_col), r.raw("b", file_col)
                shown.append((file_col, (f"({fa} IS NOT DISTINCT FROM {fb})", json_text(fa), json_text(fb))))
        # Listed exactly when the sample is relabeled; a label list shows as written.
        same_label = f"({label_a} IS NOT DISTINCT FROM {label_b})"
        if multilabel:
            as_written = [json_text(f"{side}.{q(source.label)}") if source.label in v.types else "NULL" for side, v in (("a", a), ("b", b))]
            shown.append((source.label, (same_label, as_written[0], as_written[1])))
        else:
            shown.append((source.label, (same_label, json_text(label_a), json_text(label_b))))
        for s in source.slices:
            sa, sb = r.text("a", s), r.text("b", s)
            shown.append((s, (f"({sa} IS NOT DISTINCT FROM {sb})", json_text(sa), json_text(sb))))
        cells, truncated = _cell_changes(con, va, vb, keys, join_on, shown, rows)
    return result.replace(schema=tuple(schema), cells=tuple(cells), cells_truncated=truncated, warnings=tuple(warnings))


def _type_warnings(source: TableSource, a: Version, b: Version, side_a: str, side_b: str) -> list[str]:
    """A type change of a label or slice column: said once, since it often means a stray value."""
    out = []
    roles = [(source.label, "label")] + [(s, "slice") for s in source.slices]
    types_a, types_b = shown_types(source, a.types), shown_types(source, b.types)
    for col, role in roles:
        ta, tb = types_a.get(col), types_b.get(col)
        if ta is None or tb is None or ta == tb or col in source.types:
            continue
        how = "as the file writes them" if a.as_text else "as text"
        out.append(
            f"{source.path}: {role} column {col!r} reads as {ta} at {side_a} and as {tb} at {side_b}; "
            f"its values are compared {how} (pin a type with types = {{ {col} = \"...\" }} in dsv.toml)"
        )
    return out


def _declared_type_warnings(con: "duckdb.DuckDBPyConnection", r: Reading, side_a: str, side_b: str) -> list[str]:
    """Values that do not read as their column's declared type (``1.5`` in an ``integer`` column): said, never rounded."""
    pinned = {c: t for c, t in r.source.types.items() if t != "string"}
    out = []
    for side, version, name in (("a", r.a, side_a), ("b", r.b, side_b)):
        cols = [c for c in pinned if c in version.types]
        if not cols or not version.rows:
            continue
        exprs = []
        for c in cols:
            raw = r.raw(side, c)
            bad = f"{raw} IS NOT NULL AND {declared_text(raw, pinned[c])} IS NULL"
            exprs.append(f"count(*) FILTER (WHERE {bad}), min({raw}) FILTER (WHERE {bad})")
        found = con.execute(f"SELECT {', '.join(exprs)} FROM {q(version.view)} {side}").fetchall()[0]
        for i, c in enumerate(cols):
            n, first = found[2 * i], found[2 * i + 1]
            if n:
                an = "an" if pinned[c] == "integer" else "a"
                out.append(
                    f"{r.source.path}: column {c!r} is declared {pinned[c]}, but {n} value{'' if n == 1 else 's'} at {name} "
                    f"{'does' if n == 1 else 'do'} not read as {an} {pinned[c]} (first: {first!r}); "
                    f"{'it compares' if n == 1 else 'they compare'} as written, never rounded"
                )
    return out


def _cell_changes(
    con: "duckdb.DuckDBPyConnection",
    va: str,
    vb: str,
    keys: list[KeyColumn],
    join_on: str,
    columns: list[tuple[str, tuple[str, str, str]]],
    limit: int | None,
) -> tuple[list[CellChange], bool]:
    """Changed cells of samples present on both sides, in key order, at most ``limit``."""
    n = len(keys)
    key_cols = ", ".join(f"{k.shown} AS __s{i}" for i, k in enumerate(keys))
    order_cols = ", ".join(f"{o} AS __o{i}_{j}" for i, k in enumerate(keys) for j, o in enumerate(k.order))
    order = ", ".join(f"__o{i}_{j}" for i, k in enumerate(keys) for j, _ in enumerate(k.order))
    parts = []
    for c, (same, shown_a, shown_b) in columns:
        parts.append(
            f"SELECT {key_cols}, {lit(c)} AS __col, {shown_a} AS __old, {shown_b} AS __new, {order_cols} "
            f"FROM {q(va)} a JOIN {q(vb)} b ON {join_on} WHERE NOT {same}"
        )
    if not parts:
        return [], False
    cap = "" if limit is None else f" LIMIT {int(limit) + 1}"
    rows = con.execute(f"SELECT * FROM ({' UNION ALL '.join(parts)}) ORDER BY {order}, __col{cap}").fetchall()
    truncated = limit is not None and len(rows) > limit
    rows = rows[:limit] if limit is not None else rows
    out = []
    for row in rows:
        key = {k.name: None if v is None else _finite(json.loads(v)) for k, v in zip(keys, row[:n])}
        col, old, new = row[n : n + 3]
        old_v = _finite(None if old is None else json.loads(old))
        new_v = _finite(None if new is None else json.loads(new))
        out.append(CellChange(key, col, old_v, new_v, nested_detail(old_v, new_v)))
    return out, truncated


def _finite(v: Any) -> Any:
    """Non-finite floats as the strings "NaN", "Infinity", "-Infinity": JSON has no such numbers."""
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, list):
        return [_finite(x) for x in v]
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    return v
