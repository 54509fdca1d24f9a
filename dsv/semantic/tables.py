"""Table sources: read two versions of an annotation table and join them by key.

How a column reads is decided once, from both versions, so that a value added
in one version never changes how the other values read (docs/diff-format.md,
"Column types"):

* **CSV** is read as the file writes it (every cell as text). Keys, labels and
  slice values are that text (``T`` stays ``T``, ``1.0`` stays ``1.0``). Other
  cells compare as values of the type that reads the column in *both* versions
  (DuckDB's sniffer type when both sides agree, a number when both are numbers,
  text otherwise): ``0.5`` equals ``0.50`` in a numeric column, and a column
  holding text in either version compares as written.
* **Parquet and JSONL** carry their types. A column of the same type on both
  sides compares natively; numbers of different types compare as numbers;
  anything else, and every key, label and slice value of a mixed column,
  compares as canonical text (strings unquoted, whole floats as integers).
* ``types = { col = "..." }`` in ``dsv.toml`` pins a column's type.

The joined table has one row per sample: ``in_a``, ``in_b``, the key, ``label_a``,
``label_b``, each slice on both sides, ``relabeled`` and ``changed`` (content:
other columns, and the bytes of the file a row names); the summaries in
:mod:`dsv.semantic.engine` are group-bys over it, and count a slice that differs
as a move, apart from ``changed``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsv.base.errors import SampleSourceError
from dsv.semantic.declaration import TableSource
from dsv.semantic.detail import nested_detail
from dsv.semantic.engine import lit, q, summarize
from dsv.semantic.report import CellChange, SchemaChange, SourceDiff

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT")
_FLOATS = ("FLOAT", "DOUBLE", "DECIMAL")
PINNED_TYPES = {"string": "VARCHAR", "integer": "HUGEINT", "number": "DOUBLE", "boolean": "BOOLEAN"}
"""The DuckDB type behind each type a ``dsv.toml`` may pin."""


@dataclass(frozen=True)
class Version:
    """One version of a table, exposed as a view.

    Attributes:
        view: the view's name.
        types: column -> type as the file reads on its own (CSV: DuckDB's sniffer),
            for the schema section.
        rows: number of rows.
        as_text: the view holds every cell as the text the file writes (CSV).
    """

    view: str
    types: dict[str, str]
    rows: int
    as_text: bool


# -- reading -------------------------------------------------------------------------


def _reader(path: str, source: TableSource, *, as_text: bool = False) -> str:
    fmt = source.resolved_format
    if fmt == "parquet":
        return f"read_parquet({lit(path)})"
    # Stored objects have no file extension: compression comes from the dataset path.
    gz = ", compression='gzip'" if source.path.lower().endswith(".gz") else ""
    if fmt == "jsonl":
        return f"read_json({lit(path)}, format='newline_delimited'{gz})"
    # The delimiter is fixed by the extension: a ragged row is then an error naming its
    # line, rather than a reason for the sniffer to guess a one-column dialect.
    delim = "\\t" if source.path.lower().endswith((".tsv", ".tsv.gz")) else ","
    text = ", all_varchar=true" if as_text else ""
    return f"read_csv({lit(path)}, header=true, auto_detect=true, sample_size=-1, delim={lit(delim)}{gz}{text})"


def load_table(con: "duckdb.DuckDBPyConnection", view: str, disk_path: str, source: TableSource, side: str) -> Version:
    """Expose one version of a table source as a view.

    A CSV file is sniffed over every row for the types it reads as on its own (the
    schema section), and exposed as text, as written. Parse errors become one line
    naming the file and DuckDB's row/column detail.
    """
    import duckdb

    as_text = source.resolved_format == "csv"
    try:
        if as_text:
            types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {_reader(disk_path, source)}").fetchall()}
        con.execute(f"CREATE TEMP VIEW {q(view)} AS SELECT * FROM {_reader(disk_path, source, as_text=as_text)}")
        cols = {r[0]: r[1] for r in con.execute(f"DESCRIBE {q(view)}").fetchall()}
        if not as_text:
            types = cols
        # Surfaces parse errors now, with their line; free for Parquet (metadata), and the
        # row count lets the key check run inside the join (see diff_table).
        (rows,) = con.execute(f"SELECT count(*) FROM {q(view)}").fetchall()[0]
    except duckdb.Error as err:
        message = str(err)
        if source.resolved_format == "csv" and "sniff" in message.lower():
            message = _csv_diagnosis(con, disk_path, source) or message
        detail = _clean_duckdb_message(message, disk_path, f"{source.path}@{side}")
        raise SampleSourceError(f"cannot read {source.path} at {side}: {detail}", hint="fix the file, or the [[tables]] entry in dsv.toml") from err
    if list(types) != list(cols):  # pragma: no cover - both reads share the header
        types = {c: types.get(c, "VARCHAR") for c in cols}
    # Only the key must exist on every side; a label, slice or file column added in a
    # later version is NULL on the versions without it.
    missing = [c for c in source.key if c not in cols]
    if missing:
        raise SampleSourceError(
            f"{source.path} at {side} has no column {', '.join(repr(m) for m in missing)} (columns: {', '.join(cols)})",
            hint="check key/label/slices/file in dsv.toml, or the --key/--label/--slice flags",
        )
    return Version(view, types, int(rows), as_text)


def _empty_like(con: "duckdb.DuckDBPyConnection", view: str, other: Version) -> Version:
    """A version with ``other``'s columns and no rows (a side where the table does not exist)."""
    con.execute(f"CREATE TEMP VIEW {q(view)} AS SELECT * FROM {q(other.view)} LIMIT 0")
    return Version(view, dict(other.types), 0, other.as_text)


_DUCKDB_NOISE = ("LINE 1:", "Possible fixes", "Possible Solution", "file = ")


def _clean_duckdb_message(message: str, disk_path: str, name: str) -> str:
    """DuckDB's error as one line about the user's file: no SQL excerpt, temp paths or reader options."""
    message = message.replace(disk_path, name)
    cut = min((i for i in (message.find(n) for n in _DUCKDB_NOISE) if i >= 0), default=len(message))
    return " ".join(message[:cut].split())[:400].rstrip(" .:") or "unreadable"


def _csv_diagnosis(con: "duckdb.DuckDBPyConnection", disk_path: str, source: TableSource) -> str | None:
    """When DuckDB cannot even sniff a CSV, re-read it as plain text columns to find the bad line."""
    import csv

    import duckdb

    try:
        with open(disk_path, newline="", encoding="utf-8", errors="replace") as f:
            header = next(csv.reader(f), None)
    except OSError:
        return None
    if not header:
        return None
    columns = "{" + ", ".join(f"{lit(h)}: 'VARCHAR'" for h in header) + "}"
    try:
        con.execute(f"SELECT count(*) FROM read_csv({lit(disk_path)}, header=true, auto_detect=false, columns={columns}, delim=',')").fetchall()
    except duckdb.Error as err:
        return str(err)
    return None


# -- how a column reads ----------------------------------------------------------------


def _numeric(t: str | None) -> bool:
    return t is not None and t.startswith(_INTEGERS + _FLOATS)


def _integer(t: str | None) -> bool:
    return t in _INTEGERS


def _nested(t: str) -> bool:
    """Structs, maps, unions and lists (``VARCHAR[]``, ``INTEGER[3]``): compared as their JSON text when retyped."""
    return t.startswith(("STRUCT(", "MAP(", "UNION(")) or t.endswith("]")


def common_type(ta: str | None, tb: str | None) -> str:
    """The type that reads a column's values in both versions: the same type, a number, or text."""
    if ta is None or tb is None:
        return ta or tb or "VARCHAR"
    if ta == tb:
        return ta
    if _integer(ta) and _integer(tb):
        return "HUGEINT"
    if _numeric(ta) and _numeric(tb):
        return "DOUBLE"
    return "VARCHAR"


def _float_text(x: str) -> str:
    """A float as text; whole numbers as integers (1.0 -> "1"), so int columns widened to float keep their values."""
    return (
        f"(CASE WHEN isfinite({x}) AND {x} = floor({x}) AND abs({x}) < 1e18 THEN CAST(CAST({x} AS BIGINT) AS VARCHAR) "
        f"ELSE CAST({x} AS VARCHAR) END)"
    )


def canon(x: str, typ: str) -> str:
    """SQL: a typed value as canonical text (strings as they are, whole floats as integers, JSON unquoted)."""
    if typ == "VARCHAR":
        return x
    if typ == "JSON":
        # A column mixing JSON types: each value by its own type, so "cat" reads as cat and 1.0 as 1;
        # objects and arrays as minified JSON, as nested types below.
        return (
            f"(CASE json_type({x}) WHEN 'VARCHAR' THEN json_extract_string({x}, '$') "
            f"WHEN 'DOUBLE' THEN {_float_text(f'CAST({x} AS DOUBLE)')} WHEN 'NULL' THEN NULL "
            f"WHEN 'OBJECT' THEN CAST(json({x}) AS VARCHAR) WHEN 'ARRAY' THEN CAST(json({x}) AS VARCHAR) "
            f"ELSE CAST({x} AS VARCHAR) END)"
        )
    if _nested(typ):
        return f"CAST(to_json({x}) AS VARCHAR)"
    if typ.startswith(_FLOATS):
        return _float_text(f"CAST({x} AS DOUBLE)")
    return f"CAST({x} AS VARCHAR)"


def cast_text(text: str, typ: str) -> str:
    """SQL: text read as ``typ``, NULL where it does not read as one (integers never round: 1.5 is no integer)."""
    if typ == "VARCHAR":
        return text
    if _integer(typ):
        return f"(CASE WHEN regexp_full_match(trim({text}), '[+-]?[0-9]+') THEN TRY_CAST(trim({text}) AS {typ}) END)"
    return f"TRY_CAST({text} AS {typ})"


def _json(x: str) -> str:
    return f"CAST(to_json({x}) AS VARCHAR)"


def _json_either(value: str, text: str) -> str:
    return f"(CASE WHEN {value} IS NOT NULL THEN {_json(value)} ELSE {_json(text)} END)"


@dataclass(frozen=True)
class KeyColumn:
    """A key column: join expressions on both sides, its JSON in changed cells, its sort order."""

    name: str
    a: str
    b: str
    shown: str
    order: tuple[str, ...]


@dataclass(frozen=True)
class Reading:
    """How the columns of one table source read on both sides (SQL over the aliases ``a`` and ``b``)."""

    source: TableSource
    a: Version
    b: Version

    def raw(self, side: str, col: str) -> str:
        """The cell as text: CSV as written, other formats as canonical text; NULL where the column is absent."""
        version = self.a if side == "a" else self.b
        t = version.types.get(col)
        if t is None:
            return "NULL::VARCHAR"
        x = f"{side}.{q(col)}"
        return x if version.as_text else canon(x, t)

    def text(self, side: str, col: str) -> str:
        """A key, label or slice value: the raw text, or the canonical form of its declared type."""
        raw = self.raw(side, col)
        pinned = self.source.types.get(col)
        if pinned is None or pinned == "string":
            return raw
        typ = PINNED_TYPES[pinned]
        return f"coalesce({canon(cast_text(raw, typ), typ)}, {raw})"

    def compare_type(self, col: str) -> str:
        """The type a column's cells compare as (CSV and declared types)."""
        pinned = self.source.types.get(col)
        if pinned is not None:
            return PINNED_TYPES[pinned]
        return common_type(self.a.types.get(col), self.b.types.get(col))

    def textual(self, col: str) -> bool:
        """Whether the column compares through text (CSV, or a declared type)."""
        return self.a.as_text or col in self.source.types

    def key(self, col: str) -> "KeyColumn":
        """How a key column matches rows, shows in changed cells and orders them."""
        ta, tb = self.a.types.get(col), self.b.types.get(col)
        if self.textual(col):
            # Matched as written (or in its declared type's canonical form); shown and
            # ordered as a number where the column holds numbers on both sides.
            typ = self.compare_type(col)
            ka, kb = self.text("a", col), self.text("b", col)
            if typ == "VARCHAR":
                return KeyColumn(col, ka, kb, _json(ka), (ka,))
            return KeyColumn(col, ka, kb, _json_either(cast_text(ka, typ), ka), (cast_text(ka, typ), ka))
        x = f"a.{q(col)}"
        if ta == tb and ta != "JSON":
            return KeyColumn(col, x, f"b.{q(col)}", _json(x), (x,))
        return KeyColumn(col, self.raw("a", col), self.raw("b", col), _json(x), (self.raw("a", col),))

    def cell(self, col: str) -> tuple[str, str, str]:
        """``(same, shown_a, shown_b)`` for a column on both sides: whether the cells hold the same value, and their JSON."""
        xa, xb = f"a.{q(col)}", f"b.{q(col)}"
        if self.textual(col):
            typ = self.compare_type(col)
            ra, rb = self.raw("a", col), self.raw("b", col)
            if typ == "VARCHAR":
                return f"({ra} IS NOT DISTINCT FROM {rb})", _json(ra), _json(rb)
            ca, cb = cast_text(ra, typ), cast_text(rb, typ)
            # Written the same, or the same value of the column's type (0.5 and 0.50 in a numeric column).
            same = f"({ra} IS NOT DISTINCT FROM {rb} OR coalesce({ca} = {cb}, false))"
            return same, _json_either(ca, ra), _json_either(cb, rb)
        ta, tb = self.a.types[col], self.b.types[col]
        if ta == tb and ta != "JSON":
            return f"({xa} IS NOT DISTINCT FROM {xb})", _json(xa), _json(xb)
        if _numeric(ta) and _numeric(tb):
            return f"(CAST({xa} AS DOUBLE) IS NOT DISTINCT FROM CAST({xb} AS DOUBLE))", _json(xa), _json(xb)
        return f"({canon(xa, ta)} IS NOT DISTINCT FROM {canon(xb, tb)})", _json(xa), _json(xb)

    def labels(self, side: str, col: str, json_arrays: bool) -> str:
        """A label set: sorted, without repeats; a scalar label is a one-class set; missing is empty."""
        version = self.a if side == "a" else self.b
        t = version.types.get(col)
        if t is None:
            return "[]::VARCHAR[]"
        x = f"{side}.{q(col)}"
        if t.endswith("[]") and not version.as_text:
            elem = canon("e", t[:-2])
            return f"coalesce(list_sort(list_distinct(list_transform({x}, lambda e: {elem}))), []::VARCHAR[])"
        if t == "JSON" and json_arrays:
            arr = f"list_sort(list_distinct(list_transform(CAST({x} AS JSON[]), lambda e: {canon('e', 'JSON')})))"
            return (
                f"(CASE WHEN {x} IS NULL OR json_type({x}) = 'NULL' THEN []::VARCHAR[] "
                f"WHEN json_type({x}) = 'ARRAY' THEN {arr} ELSE [{canon(x, 'JSON')}] END)"
            )
        text = self.text(side, col)
        return f"(CASE WHEN {text} IS NULL THEN []::VARCHAR[] ELSE [{text}] END)"


def _json_arrays(con: "duckdb.DuckDBPyConnection", version: Version, col: str) -> bool:
    """Whether a JSON-typed column (a JSONL column mixing types) holds any array."""
    if version.types.get(col) != "JSON":
        return False
    (found,) = con.execute(f"SELECT bool_or(json_type({q(col)}) = 'ARRAY') FROM {q(version.view)}").fetchall()[0]
    return bool(found)


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
        a = _empty_like(con, va, b)
    if b is None:
        b = _empty_like(con, vb, a)
    schema = schema_changes(a.types, b.types) if path_a and path_b else []
    for c in [source.label, *source.slices, *([source.file] if source.file else [])]:
        if c not in a.types and c not in b.types:
            raise SampleSourceError(
                f"{source.path} has no column {c!r} at {side_a} or {side_b} (columns: {', '.join(b.types or a.types)})",
                hint="check label/slices/file in dsv.toml, or the --label/--slice/--file flags",
            )
    r = Reading(source, a, b)
    warnings = _type_warnings(source, a, b, side_a, side_b)

    ta, tb = a.types.get(source.label), b.types.get(source.label)
    arrays = (_json_arrays(con, a, source.label), _json_arrays(con, b, source.label))
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
        path_a, path_b = r.raw("a", file_col), r.raw("b", file_col)
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
        listed = payload + ([file_col] if file_col and file_col in a.types and file_col in b.types else [])
        shown: list[tuple[str, tuple[str, str, str]]] = [(c, r.cell(c)) for c in listed]
        if source.label in a.types and source.label in b.types:
            # Listed exactly when the sample is relabeled; a label list shows as written.
            same_label = f"({label_a} IS NOT DISTINCT FROM {label_b})"
            if multilabel:
                shown.append((source.label, (same_label, _json(f"a.{q(source.label)}"), _json(f"b.{q(source.label)}"))))
            else:
                shown.append((source.label, (same_label, _json(label_a), _json(label_b))))
        for s in source.slices:
            if s in a.types and s in b.types:
                sa, sb = r.text("a", s), r.text("b", s)
                shown.append((s, (f"({sa} IS NOT DISTINCT FROM {sb})", _json(sa), _json(sb))))
        cells, truncated = _cell_changes(con, va, vb, keys, join_on, shown, rows)
    return SourceDiff(
        **{**result.__dict__, "schema": tuple(schema), "cells": tuple(cells), "cells_truncated": truncated, "warnings": tuple(warnings)}
    )


def _type_warnings(source: TableSource, a: Version, b: Version, side_a: str, side_b: str) -> list[str]:
    """A type change of a label or slice column: said once, since it often means a stray value."""
    out = []
    roles = [(source.label, "label")] + [(s, "slice") for s in source.slices]
    for col, role in roles:
        ta, tb = a.types.get(col), b.types.get(col)
        if ta is None or tb is None or ta == tb or col in source.types:
            continue
        how = "as the file writes them" if a.as_text else "as text"
        out.append(
            f"{source.path}: {role} column {col!r} reads as {ta} at {side_a} and as {tb} at {side_b}; "
            f"its values are compared {how} (pin a type with types = {{ {col} = \"...\" }} in dsv.toml)"
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
