"""The diff engine: join two versions' samples in DuckDB and count what changed.

Every source is first turned into two relations ``a`` and ``b`` (one row per
sample) and a joined table with, per sample: ``in_a``, ``in_b``, ``label_a``,
``label_b``, each slice on both sides, ``relabeled`` and ``changed`` (content
differs; a slice value that differs is a move, counted from the slice columns).
All summaries (classes, relabel matrix, slices, per class within a slice) are
group-bys over that one table, so the expensive join happens once. DuckDB runs
it vectorised and spills to disk when a table is larger than memory.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from dsv.base.globs import translate
from dsv.semantic.declaration import FolderSource
from dsv.semantic.report import ClassRow, RelabelRow, SliceClassRow, SliceRow, SourceDiff, Totals

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
    # A sample on both sides whose slice value changed in any slice column has moved.
    moved = " OR ".join(f"s_a_{i} IS DISTINCT FROM s_b_{i}" for i in range(len(slices))) or "false"
    (before, after, added, removed, relabeled, modified, unchanged, n_moved) = _fetch(
        con,
        f"""SELECT count(*) FILTER (in_a), count(*) FILTER (in_b),
                   count(*) FILTER (in_b AND NOT in_a), count(*) FILTER (in_a AND NOT in_b),
                   count(*) FILTER (in_a AND in_b AND relabeled), count(*) FILTER (in_a AND in_b AND changed),
                   count(*) FILTER (in_a AND in_b AND NOT relabeled AND NOT changed AND NOT ({moved})),
                   count(*) FILTER (in_a AND in_b AND ({moved}))
            FROM {t}""",
    )[0]
    totals = Totals(before, after, added, removed, relabeled, modified, unchanged, n_moved)
    classes = _class_rows(con, t, multilabel=multilabel)
    relabels = _relabel_rows(con, t, multilabel=multilabel)
    slice_rows: list[SliceRow] = []
    for i, s in enumerate(slices):
        # The old side's value counts before, removed and moved out; the new side's counts
        # after, added, moved in, relabeled and modified.
        mv = f"(in_a AND in_b AND s_a_{i} IS DISTINCT FROM s_b_{i})::INT"
        rows = _fetch(
            con,
            f"""SELECT value, sum(b0)::BIGINT, sum(b1)::BIGINT, sum(ad)::BIGINT, sum(rm)::BIGINT, sum(rl)::BIGINT, sum(md)::BIGINT,
                       sum(mi)::BIGINT, sum(mo)::BIGINT FROM (
                    SELECT s_a_{i} AS value, 1 AS b0, 0 AS b1, 0 AS ad, (NOT in_b)::INT AS rm, 0 AS rl, 0 AS md, 0 AS mi, {mv} AS mo
                      FROM {t} WHERE in_a
                    UNION ALL
                    SELECT s_b_{i}, 0, 1, (NOT in_a)::INT, 0, (in_a AND relabeled)::INT, (in_a AND changed)::INT, {mv}, 0 FROM {t} WHERE in_b
                ) GROUP BY value ORDER BY value NULLS LAST""",
        )
        slice_rows.extend(SliceRow(s, v, *map(int, r)) for v, *r in rows)
    by_rows: list[SliceClassRow] = []
    for col in by:
        if col not in slices:
            continue  # another source may have it; the caller checks that one does
        i = slices.index(col)
        for value, row, moved_in, moved_out in _class_rows(con, t, multilabel=multilabel, slice_index=i):
            by_rows.append(SliceClassRow(col, value, row, moved_in, moved_out))
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
        # Full precision: renderers round (text shows 2 decimals).
        imbalance_before=max(counts_b) / min(counts_b) if counts_b else None,
        imbalance_after=max(counts_a) / min(counts_a) if counts_a else None,
    )


def _class_rows(con: "duckdb.DuckDBPyConnection", t: str, *, multilabel: bool, slice_index: int | None = None) -> Any:
    """Per-class counts; with ``slice_index``, per (slice value, class) with moves in and out of the value.

    Rows of the old side (before, removed, relabeled out, moved out) count under
    the old slice value and class; rows of the new side (after, added, relabeled
    in, modified, moved in) under the new ones.
    """
    sa = f"s_a_{slice_index}" if slice_index is not None else "NULL"
    sb = f"s_b_{slice_index}" if slice_index is not None else "NULL"
    mv = f"(in_a AND in_b AND s_a_{slice_index} IS DISTINCT FROM s_b_{slice_index})::INT" if slice_index is not None else "0"
    if multilabel:
        # A sample counts once for each of its classes (an empty set as class NULL); a class
        # leaving its label set is "relabeled out", joining it "relabeled in".
        def member(c: str, labels: str) -> str:
            return f"(CASE WHEN {c} IS NULL THEN len({labels}) = 0 ELSE list_contains({labels}, {c}) END)"

        src = f"""
            SELECT {sa} AS sv, c AS cls, 1 AS b0, 0 AS b1, 0 AS ad, (NOT in_b)::INT AS rm, 0 AS ri,
                   (in_b AND NOT {member("c", "label_b")})::INT AS ro, 0 AS md, 0 AS mi, {mv} AS mo
              FROM (SELECT *, unnest(CASE WHEN len(label_a) = 0 THEN [NULL::VARCHAR] ELSE label_a END) AS c FROM {t} WHERE in_a)
            UNION ALL
            SELECT {sb}, c, 0, 1, (NOT in_a)::INT, 0, (in_a AND NOT {member("c", "label_a")})::INT, 0, (in_a AND changed)::INT, {mv}, 0
              FROM (SELECT *, unnest(CASE WHEN len(label_b) = 0 THEN [NULL::VARCHAR] ELSE label_b END) AS c FROM {t} WHERE in_b)"""
    else:
        src = f"""
            SELECT {sa} AS sv, label_a AS cls, 1 AS b0, 0 AS b1, 0 AS ad, (NOT in_b)::INT AS rm, 0 AS ri,
                   (in_b AND relabeled)::INT AS ro, 0 AS md, 0 AS mi, {mv} AS mo FROM {t} WHERE in_a
            UNION ALL
            SELECT {sb}, label_b, 0, 1, (NOT in_a)::INT, 0, (in_a AND relabeled)::INT, 0, (in_a AND changed)::INT, {mv}, 0 FROM {t} WHERE in_b"""
    rows = _fetch(
        con,
        f"""SELECT sv, cls, sum(b0)::BIGINT, sum(b1)::BIGINT, sum(ad)::BIGINT, sum(rm)::BIGINT, sum(ri)::BIGINT, sum(ro)::BIGINT, sum(md)::BIGINT,
                   sum(mi)::BIGINT, sum(mo)::BIGINT
            FROM ({src}) GROUP BY sv, cls ORDER BY sv NULLS LAST, cls NULLS LAST""",
    )
    out = [(sv, ClassRow(cls, *map(int, r[:7])), int(r[7]), int(r[8])) for sv, cls, *r in rows]
    if slice_index is None:
        return [c for _, c, _, _ in out]
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
    con: "duckdb.DuckDBPyConnection", a: "pa.Table", b: "pa.Table", source: FolderSource, *, by: list[str], tag: str, moves: "pa.Table"
) -> SourceDiff:
    """Diff two folder-source sample tables (from :func:`folder_samples`).

    ``moves`` (``old_path``, ``new_path``) are the file diff's moves: a sample that
    left one path and appeared at another is the same sample exactly when the file
    diff paired those two files (:func:`dsv.base.moves.pair_moves`), so both agree.
    """
    con.register(f"fa_{tag}", a)
    con.register(f"fb_{tag}", b)
    con.register(f"mv_{tag}", moves)
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
    # Files the file diff paired as moves are the same sample at a new path.
    con.execute(
        f"""CREATE TEMP TABLE j_{tag} AS
            WITH r AS (SELECT * FROM {j0} WHERE kb IS NULL),
                 d AS (SELECT * FROM {j0} WHERE ka IS NULL),
                 m AS (SELECT r.ka, d.kb, r.label_a, d.label_b, {move_slices} r.oid_a, d.oid_b, r.path_a, d.path_b
                       FROM mv_{tag} mv JOIN r ON r.path_a = mv.old_path JOIN d ON d.path_b = mv.new_path),
                 rest AS (SELECT * FROM {j0}
                          WHERE NOT (kb IS NULL AND path_a IN (SELECT path_a FROM m))
                            AND NOT (ka IS NULL AND path_b IN (SELECT path_b FROM m)))
            SELECT ka IS NOT NULL AS in_a, kb IS NOT NULL AS in_b, label_a, label_b, {plain_slices}
                   (ka IS NOT NULL AND kb IS NOT NULL AND label_a IS DISTINCT FROM label_b) AS relabeled,
                   (ka IS NOT NULL AND kb IS NOT NULL AND oid_a IS DISTINCT FROM oid_b) AS changed
            FROM (SELECT * FROM rest UNION ALL BY NAME SELECT * FROM m)"""
    )
    return summarize(con, f"j_{tag}", source.slices, multilabel=False, by=by, name=source.display_name, kind="folder")
