"""The diff engine: join two versions' samples in DuckDB and count what changed.

Every source is first turned into two relations ``a`` and ``b`` (one row per
sample) and a joined table with, per sample: ``in_a``, ``in_b``, ``label_a``,
``label_b``, each slice on both sides, ``relabeled`` and ``changed`` (content or
other columns differ). All summaries (classes, relabel matrix, slices, per
class within a slice) are group-bys over that one table, so the expensive join
happens once. DuckDB runs it vectorised and spills to disk when a table is
larger than memory.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from dsv.base.errors import SampleSourceError
from dsv.base.globs import translate
from dsv.semantic.declaration import FolderSource, TableSource
from dsv.semantic.report import CellChange, ClassRow, RelabelRow, SchemaChange, SliceClassRow, SliceRow, SourceDiff, Totals

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

DEFAULT_ROWS = 20


def q(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    """Quote an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def connect(temp_dir: str | None = None) -> "duckdb.DuckDBPyConnection":
    """A private in-memory DuckDB connection that may spill to ``temp_dir``."""
    import duckdb

    con = duckdb.connect(database=":memory:")
    if temp_dir:
        con.execute(f"SET temp_directory = {lit(temp_dir)}")
    # Tables larger than memory spill to temp_dir; DSV_DIFF_MEMORY_LIMIT (e.g. "2GB")
    # caps the engine's memory on shared machines (DuckDB's default: 80% of RAM).
    limit = os.environ.get("DSV_DIFF_MEMORY_LIMIT")
    if limit:
        try:
            con.execute(f"SET memory_limit = {lit(limit)}")
        except duckdb.Error as err:
            from dsv.base.errors import UsageError

            raise UsageError(f"DSV_DIFF_MEMORY_LIMIT={limit!r} is not a memory size", hint="use forms like 2GB or 500MB") from err
    con.execute("SET preserve_insertion_order = false")
    return con


# -- summaries over the joined table ---------------------------------------------------


def _fetch(con: "duckdb.DuckDBPyConnection", sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()


def summarize(
    con: "duckdb.DuckDBPyConnection",
    joined: str,
    slices: list[str],
    *,
    multilabel: bool,
    by: list[str],
    name: str,
    kind: str,
) -> SourceDiff:
    """Totals, classes, relabel matrix, slices and per-slice classes of a joined table."""
    t = q(joined)
    (before, after, added, removed, relabeled, modified, unchanged) = _fetch(
        con,
        f"""SELECT count(*) FILTER (in_a), count(*) FILTER (in_b),
                   count(*) FILTER (in_b AND NOT in_a), count(*) FILTER (in_a AND NOT in_b),
                   count(*) FILTER (in_a AND in_b AND relabeled), count(*) FILTER (in_a AND in_b AND changed),
                   count(*) FILTER (in_a AND in_b AND NOT relabeled AND NOT changed)
            FROM {t}""",
    )[0]
    totals = Totals(before, after, added, removed, relabeled, modified, unchanged)
    classes = _class_rows(con, t, multilabel=multilabel)
    relabels = _relabel_rows(con, t, multilabel=multilabel)
    slice_rows: list[SliceRow] = []
    for i, s in enumerate(slices):
        rows = _fetch(
            con,
            f"""SELECT value, sum(b0)::BIGINT, sum(b1)::BIGINT, sum(ad)::BIGINT, sum(rm)::BIGINT, sum(rl)::BIGINT, sum(md)::BIGINT FROM (
                    SELECT s_a_{i} AS value, 1 AS b0, 0 AS b1, 0 AS ad, (NOT in_b)::INT AS rm, 0 AS rl, 0 AS md FROM {t} WHERE in_a
                    UNION ALL
                    SELECT s_b_{i}, 0, 1, (NOT in_a)::INT, 0, (in_a AND relabeled)::INT, (in_a AND changed)::INT FROM {t} WHERE in_b
                ) GROUP BY value ORDER BY value NULLS LAST""",
        )
        slice_rows.extend(SliceRow(s, v, *map(int, r)) for v, *r in rows)
    by_rows: list[SliceClassRow] = []
    for col in by:
        if col not in slices:
            continue  # another source may have it; the caller checks that one does
        i = slices.index(col)
        for value, row in _class_rows(con, t, multilabel=multilabel, slice_index=i):
            by_rows.append(SliceClassRow(col, value, row))
    counts_b = [c.before for c in classes if c.before > 0 and c.cls is not None]
    counts_a = [c.after for c in classes if c.after > 0 and c.cls is not None]
    return SourceDiff(
        name=name,
        kind=kind,
        read=True,
        totals=totals,
        classes=tuple(classes),
        relabels=tuple(relabels),
        slices=tuple(slice_rows),
        by=tuple(by_rows),
        imbalance_before=round(max(counts_b) / min(counts_b), 4) if counts_b else None,
        imbalance_after=round(max(counts_a) / min(counts_a), 4) if counts_a else None,
    )


def _class_rows(con: "duckdb.DuckDBPyConnection", t: str, *, multilabel: bool, slice_index: int | None = None) -> Any:
    """Per-class counts; with ``slice_index``, per (slice value, class)."""
    sa = f"s_a_{slice_index}" if slice_index is not None else "NULL"
    sb = f"s_b_{slice_index}" if slice_index is not None else "NULL"
    if multilabel:
        # A sample counts once for each of its classes (an empty set as class NULL); a class
        # leaving its label set is "relabeled out", joining it "relabeled in".
        def member(c: str, labels: str) -> str:
            return f"(CASE WHEN {c} IS NULL THEN len({labels}) = 0 ELSE list_contains({labels}, {c}) END)"

        src = f"""
            SELECT {sa} AS sv, c AS cls, 1 AS b0, 0 AS b1, 0 AS ad, (NOT in_b)::INT AS rm, 0 AS ri,
                   (in_b AND NOT {member("c", "label_b")})::INT AS ro, 0 AS md
              FROM (SELECT *, unnest(CASE WHEN len(label_a) = 0 THEN [NULL::VARCHAR] ELSE label_a END) AS c FROM {t} WHERE in_a)
            UNION ALL
            SELECT {sb}, c, 0, 1, (NOT in_a)::INT, 0, (in_a AND NOT {member("c", "label_a")})::INT, 0, (in_a AND changed)::INT
              FROM (SELECT *, unnest(CASE WHEN len(label_b) = 0 THEN [NULL::VARCHAR] ELSE label_b END) AS c FROM {t} WHERE in_b)"""
    else:
        src = f"""
            SELECT {sa} AS sv, label_a AS cls, 1 AS b0, 0 AS b1, 0 AS ad, (NOT in_b)::INT AS rm, 0 AS ri,
                   (in_b AND relabeled)::INT AS ro, 0 AS md FROM {t} WHERE in_a
            UNION ALL
            SELECT {sb}, label_b, 0, 1, (NOT in_a)::INT, 0, (in_a AND relabeled)::INT, 0, (in_a AND changed)::INT FROM {t} WHERE in_b"""
    rows = _fetch(
        con,
        f"""SELECT sv, cls, sum(b0)::BIGINT, sum(b1)::BIGINT, sum(ad)::BIGINT, sum(rm)::BIGINT, sum(ri)::BIGINT, sum(ro)::BIGINT, sum(md)::BIGINT
            FROM ({src}) GROUP BY sv, cls ORDER BY sv NULLS LAST, cls NULLS LAST""",
    )
    out = [(sv, ClassRow(cls, *map(int, r))) for sv, cls, *r in rows]
    if slice_index is None:
        return [c for _, c in out]
    return out


def _relabel_rows(con: "duckdb.DuckDBPyConnection", t: str, *, multilabel: bool) -> list[RelabelRow]:
    if multilabel:
        # Each class that left a sample's label set is paired with each class that joined it.
        sql = f"""
            WITH d AS (
                SELECT list_filter(label_a, lambda x: NOT list_contains(label_b, x)) AS gone,
                       list_filter(label_b, lambda x: NOT list_contains(label_a, x)) AS came
                FROM {t} WHERE in_a AND in_b AND relabeled),
            g AS (SELECT unnest(CASE WHEN len(gone) = 0 THEN [NULL::VARCHAR] ELSE gone END) AS f, came FROM d),
            p AS (SELECT f, unnest(CASE WHEN len(came) = 0 THEN [NULL::VARCHAR] ELSE came END) AS tt FROM g)
            SELECT f, tt, count(*) FROM p GROUP BY f, tt ORDER BY count(*) DESC, f NULLS LAST, tt NULLS LAST"""
    else:
        sql = f"""SELECT label_a, label_b, count(*) FROM {t} WHERE in_a AND in_b AND relabeled
                  GROUP BY label_a, label_b ORDER BY count(*) DESC, label_a NULLS LAST, label_b NULLS LAST"""
    return [RelabelRow(f, to, int(n)) for f, to, n in _fetch(con, sql)]


# -- folder sources ---------------------------------------------------------------------


def folder_regex(pattern: str) -> tuple[str, list[str]]:
    """A regex for a folder pattern, and its placeholder names in order.

    The glob syntax is that of ``.dsvignore`` (one translator, :mod:`dsv.base.globs`);
    each ``{name}`` becomes a named group matching one path component.
    """
    groups: list[str] = []

    def group(name: str) -> str:
        groups.append(name)
        return f"(?P<{name}>[^/]+)"

    # (?s): a file name may hold a newline; '*' and '**' still match it, as in .dsvignore.
    return "(?s)^" + translate(pattern, group) + "$", groups


def folder_samples(manifest: "pa.Table", source: FolderSource) -> "pa.Table":
    """Samples of a folder source: ``k`` (the path), ``label``, slices, ``oid``, ``path``.

    A sample keeps its identity at the same path; a file that disappears from one
    path and appears at another with the same bytes is the same sample moved
    (:func:`diff_folder` pairs those), so ``cat/x.jpg`` -> ``dog/x.jpg`` is a
    relabel, not a removal plus an addition. Names alone never pair files:
    ``cat/1.jpg`` and ``dog/1.jpg`` are usually different images.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    regex, groups = folder_regex(source.pattern)
    paths = manifest.column("path")
    ext = pc.extract_regex(paths, regex)
    mask = pc.is_valid(ext)
    matched = manifest.filter(mask)
    ext = ext.filter(mask) if isinstance(ext, pa.ChunkedArray) else pa.chunked_array([ext]).filter(mask)
    parts = {g: pc.struct_field(ext, g) for g in groups}
    cols = {"k": matched.column("path"), "label": parts["label"]}
    for i, s in enumerate(source.slices):
        cols[f"s{i}"] = parts[s]
    cols["oid"] = matched.column("oid")
    cols["path"] = matched.column("path")
    return pa.table(cols)


def diff_folder(
    con: "duckdb.DuckDBPyConnection", a: "pa.Table", b: "pa.Table", source: FolderSource, *, by: list[str], tag: str
) -> SourceDiff:
    """Diff two folder-source sample tables (from :func:`folder_samples`)."""
    con.register(f"fa_{tag}", a)
    con.register(f"fb_{tag}", b)
    n = len(source.slices)
    sa = ", ".join(f"a.s{i} AS s_a_{i}" for i in range(n))
    sb = ", ".join(f"b.s{i} AS s_b_{i}" for i in range(n))
    sel_slices = (sa + ", " + sb + ",") if n else ""
    j0 = f"j0_{tag}"
    con.execute(
        f"""CREATE TEMP TABLE {j0} AS
            SELECT a.k AS ka, b.k AS kb, a.label AS label_a, b.label AS label_b, {sel_slices}
                   a.oid AS oid_a, b.oid AS oid_b, a.path AS path_a, b.path AS path_b
            FROM fa_{tag} a FULL OUTER JOIN fb_{tag} b ON a.k = b.k"""
    )
    slice_cols_a = ", ".join(f"r.s_a_{i}" for i in range(n))
    slice_cols_b = ", ".join(f"d.s_b_{i}" for i in range(n))
    move_slices = (slice_cols_a + ", " + slice_cols_b + ",") if n else ""
    plain_a = ", ".join(f"s_a_{i}" for i in range(n))
    plain_b = ", ".join(f"s_b_{i}" for i in range(n))
    plain_slices = (plain_a + ", " + plain_b + ",") if n else ""
    # Files that left one identity and appeared at another with the same bytes are moves:
    # paired one to one by content id, in path order.
    con.execute(
        f"""CREATE TEMP TABLE j_{tag} AS
            WITH r AS (SELECT *, row_number() OVER (PARTITION BY oid_a ORDER BY path_a) AS rn FROM {j0} WHERE kb IS NULL),
                 d AS (SELECT *, row_number() OVER (PARTITION BY oid_b ORDER BY path_b) AS rn FROM {j0} WHERE ka IS NULL),
                 m AS (SELECT r.ka, d.kb, r.label_a, d.label_b, {move_slices} r.oid_a, d.oid_b, r.path_a, d.path_b
                       FROM r JOIN d ON r.oid_a = d.oid_b AND r.rn = d.rn),
                 rest AS (SELECT * FROM {j0}
                          WHERE NOT (kb IS NULL AND path_a IN (SELECT path_a FROM m))
                            AND NOT (ka IS NULL AND path_b IN (SELECT path_b FROM m)))
            SELECT ka IS NOT NULL AS in_a, kb IS NOT NULL AS in_b, label_a, label_b, {plain_slices}
                   (ka IS NOT NULL AND kb IS NOT NULL AND label_a IS DISTINCT FROM label_b) AS relabeled,
                   (ka IS NOT NULL AND kb IS NOT NULL AND oid_a IS DISTINCT FROM oid_b) AS changed
            FROM (SELECT * FROM rest UNION ALL BY NAME SELECT * FROM m)"""
    )
    return summarize(con, f"j_{tag}", source.slices, multilabel=False, by=by, name=source.display_name, kind="folder")


# -- table sources ----------------------------------------------------------------------


def _reader(path: str, source: TableSource) -> str:
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
    return f"read_csv({lit(path)}, header=true, auto_detect=true, sample_size=-1, delim={lit(delim)}{gz})"


def load_table(con: "duckdb.DuckDBPyConnection", view: str, disk_path: str, source: TableSource, side: str) -> tuple[dict[str, str], int]:
    """Expose one version of a table source as a view; return its ``{column: type}``.

    Parse errors become one line naming the file and DuckDB's row/column detail.
    """
    import duckdb

    try:
        con.execute(f"CREATE TEMP VIEW {q(view)} AS SELECT * FROM {_reader(disk_path, source)}")
        cols = {r[0]: r[1] for r in con.execute(f"DESCRIBE {q(view)}").fetchall()}
        # Surfaces parse errors now, with their line; free for Parquet (metadata), and the
        # row count lets the key check run inside the join (see diff_table).
        (rows,) = con.execute(f"SELECT count(*) FROM {q(view)}").fetchall()[0]
    except duckdb.Error as err:
        message = str(err)
        if source.resolved_format == "csv" and "sniff" in message.lower():
            message = _csv_diagnosis(con, disk_path, source) or message
        detail = _clean_duckdb_message(message, disk_path, f"{source.path}@{side}")
        raise SampleSourceError(f"cannot read {source.path} at {side}: {detail}", hint="fix the file, or the [[tables]] entry in dsv.toml") from err
    # Only the key must exist on every side; a label, slice or file column added in a
    # later version is NULL on the versions without it.
    missing = [c for c in source.key if c not in cols]
    if missing:
        raise SampleSourceError(
            f"{source.path} at {side} has no column {', '.join(repr(m) for m in missing)} (columns: {', '.join(cols)})",
            hint="check key/label/slices/file in dsv.toml, or the --key/--label/--slice flags",
        )
    return cols, int(rows)


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


def _check_keys_in_join(
    con: "duckdb.DuckDBPyConnection", j: str, va: str, vb: str, source: TableSource, rows: tuple[int, int], sides: tuple[str, str]
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
    if in_b != rows[1] or dup_removed:
        check_unique_keys(con, va, source, sides[0])
    if in_a != rows[0] or dup_added:
        check_unique_keys(con, vb, source, sides[1])
    if in_a != rows[0] or in_b != rows[1] or dup_removed or dup_added:
        # Should be unreachable: the checks above name the repeated keys.
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


_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")


def _numeric(t: str | None) -> bool:
    return t is not None and t.startswith(_NUMERIC)


def _cmp(col: str, ta: str | None, tb: str | None) -> tuple[str, str]:
    """SQL expressions comparing one column on both sides.

    Same types compare natively; numbers of different types (an int column widened
    to double) compare as numbers, so 5 equals 5.0; any other type change compares
    as text.
    """
    if ta == tb:
        return f"a.{q(col)}", f"b.{q(col)}"
    if _numeric(ta) and _numeric(tb):
        return f"CAST(a.{q(col)} AS DOUBLE)", f"CAST(b.{q(col)} AS DOUBLE)"
    return f"CAST(a.{q(col)} AS VARCHAR)", f"CAST(b.{q(col)} AS VARCHAR)"


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
    va, vb = f"ta_{tag}", f"tb_{tag}"
    # An empty file holds no samples (and no schema): treat it like a missing file.
    path_a = path_a if path_a and os.path.getsize(path_a) > 0 else None
    path_b = path_b if path_b and os.path.getsize(path_b) > 0 else None
    if path_a is None and path_b is None:
        return SourceDiff(source.display_name, "table", read=True)
    empty_cols: dict[str, str] = {}
    cols_a, rows_a = load_table(con, va, path_a, source, side_a) if path_a else (empty_cols, 0)
    cols_b, rows_b = load_table(con, vb, path_b, source, side_b) if path_b else (empty_cols, 0)
    if not path_a:
        _empty_like(con, va, vb, cols_b)
        cols_a = dict(cols_b)
    if not path_b:
        _empty_like(con, vb, va, cols_a)
        cols_b = dict(cols_a)
    schema = schema_changes(cols_a, cols_b) if path_a and path_b else []
    for c in [source.label, *source.slices, *([source.file] if source.file else [])]:
        if c not in cols_a and c not in cols_b:
            raise SampleSourceError(
                f"{source.path} has no column {c!r} at {side_a} or {side_b} (columns: {', '.join(cols_b or cols_a)})",
                hint="check label/slices/file in dsv.toml, or the --label/--slice/--file flags",
            )
    ta, tb = cols_a.get(source.label), cols_b.get(source.label)
    multilabel = (ta or "").endswith("[]") or (tb or "").endswith("[]")
    join_on = " AND ".join(f"{_cmp(k, cols_a.get(k), cols_b.get(k))[0]} = {_cmp(k, cols_a.get(k), cols_b.get(k))[1]}" for k in source.key)
    special = {*source.key, source.label}
    payload = [c for c in cols_b if c in cols_a and c not in special]
    diffs = [f"{x} IS DISTINCT FROM {y}" for x, y in (_cmp(c, cols_a[c], cols_b[c]) for c in payload)]
    if multilabel:
        label_a, label_b = _labels("a", source.label, ta), _labels("b", source.label, tb)
    else:
        label_a, label_b = _text("a", source.label, ta), _text("b", source.label, tb)
    file_join = ""
    if source.file and file_oids is not None:
        con.register(f"fo_a_{tag}", file_oids[0])
        con.register(f"fo_b_{tag}", file_oids[1])
        oid_a = oid_b = "NULL"
        if source.file in cols_a:
            file_join += f" LEFT JOIN fo_a_{tag} foa ON foa.path = CAST(a.{q(source.file)} AS VARCHAR)"
            oid_a = "foa.oid"
        if source.file in cols_b:
            file_join += f" LEFT JOIN fo_b_{tag} fob ON fob.path = CAST(b.{q(source.file)} AS VARCHAR)"
            oid_b = "fob.oid"
        diffs.append(f"{oid_a} IS DISTINCT FROM {oid_b}")
    changed = " OR ".join(diffs) if diffs else "false"
    slices = ", ".join(
        f"{_text('a', s, cols_a.get(s))} AS s_a_{i}, {_text('b', s, cols_b.get(s))} AS s_b_{i}" for i, s in enumerate(source.slices)
    )
    keys_out = ", ".join(f"coalesce({_cmp(k, cols_a.get(k), cols_b.get(k))[0]}, {_cmp(k, cols_a.get(k), cols_b.get(k))[1]}) AS __k{i}" for i, k in enumerate(source.key))
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
    _check_keys_in_join(con, j, va, vb, source, (rows_a, rows_b), (side_a, side_b))
    result = summarize(con, j, source.slices, multilabel=multilabel, by=by, name=source.display_name, kind="table")
    cells: list[CellChange] = []
    truncated = False
    if rows != 0:
        shown = payload + ([source.label] if source.label in cols_a and source.label in cols_b else [])
        cells, truncated = _cell_changes(con, va, vb, source, cols_a, cols_b, join_on, shown, rows)
    return SourceDiff(**{**result.__dict__, "schema": tuple(schema), "cells": tuple(cells), "cells_truncated": truncated})


_FLOATS = ("FLOAT", "DOUBLE", "DECIMAL")


def _text(side: str, col: str, typ: str | None) -> str:
    """A class or slice value as text; NULL when the column is absent on that side.

    Whole floats print as integers, so an int label column that pandas turned into
    floats (1 -> 1.0) keeps its classes ("1"), and matches metrics keyed "1".
    """
    if typ is None:
        return "NULL::VARCHAR"
    x = f"{side}.{q(col)}"
    if typ.startswith(_FLOATS):
        return (
            f"(CASE WHEN {x} = floor({x}) AND abs({x}) < 1e18 THEN CAST(CAST({x} AS BIGINT) AS VARCHAR) "
            f"ELSE CAST({x} AS VARCHAR) END)"
        )
    return f"CAST({x} AS VARCHAR)"


def _labels(side: str, col: str, typ: str | None) -> str:
    """A label set: sorted, without repeats; a scalar label is a one-class set; missing is empty."""
    if typ is None:
        return "[]::VARCHAR[]"
    x = f"{side}.{q(col)}"
    if typ.endswith("[]"):
        return f"coalesce(list_sort(list_distinct(CAST({x} AS VARCHAR[]))), []::VARCHAR[])"
    return f"(CASE WHEN {x} IS NULL THEN []::VARCHAR[] ELSE [{_text(side, col, typ)}] END)"


def _empty_like(con: "duckdb.DuckDBPyConnection", view: str, other: str, cols: dict[str, str]) -> None:
    """A view with ``other``'s columns and no rows (a side where the table does not exist)."""
    con.execute(f"CREATE TEMP VIEW {q(view)} AS SELECT * FROM {q(other)} LIMIT 0")


def _cell_changes(
    con: "duckdb.DuckDBPyConnection",
    va: str,
    vb: str,
    source: TableSource,
    cols_a: dict[str, str],
    cols_b: dict[str, str],
    join_on: str,
    columns: list[str],
    limit: int | None,
) -> tuple[list[CellChange], bool]:
    """Changed cells of samples present on both sides, in key order, at most ``limit``."""
    parts = []
    keys = ", ".join(f"a.{q(k)} AS {q('k_' + k)}" for k in source.key)
    for c in columns:
        x, y = _cmp(c, cols_a[c], cols_b[c])
        parts.append(
            f"SELECT {keys}, {lit(c)} AS col, CAST(to_json({x}) AS VARCHAR) AS old, CAST(to_json({y}) AS VARCHAR) AS new "
            f"FROM {q(va)} a JOIN {q(vb)} b ON {join_on} WHERE {x} IS DISTINCT FROM {y}"
        )
    if not parts:
        return [], False
    order = ", ".join(q("k_" + k) for k in source.key)
    cap = "" if limit is None else f" LIMIT {int(limit) + 1}"
    rows = con.execute(f"SELECT * FROM ({' UNION ALL '.join(parts)}) ORDER BY {order}, col{cap}").fetchall()
    truncated = limit is not None and len(rows) > limit
    rows = rows[: limit] if limit is not None else rows
    import json

    out = []
    for r in rows:
        key = dict(zip(source.key, r[: len(source.key)]))
        col, old, new = r[len(source.key) :]
        old_v = _finite(None if old is None else json.loads(old))
        new_v = _finite(None if new is None else json.loads(new))
        out.append(CellChange({k: _jsonable(v) for k, v in key.items()}, col, old_v, new_v, _nested_detail(old_v, new_v)))
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


def _jsonable(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool)) or v is None else str(v)


def _nested_detail(old: Any, new: Any) -> dict[str, Any] | None:
    """For nested values (structs, lists, maps), what changed inside them (deepdiff)."""
    if not isinstance(old, (dict, list)) or not isinstance(new, (dict, list)):
        return None
    from deepdiff import DeepDiff

    return json_safe(DeepDiff(old, new, verbose_level=2).to_dict())


def json_safe(value: Any) -> Any:
    """A deepdiff result made of JSON types only."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)

