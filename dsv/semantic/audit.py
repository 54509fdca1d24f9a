"""The audit engine: one version of a sample source as a DuckDB table, and every finding a group-by over it.

A source's samples are loaded once into a table with, per sample: the key
(tables), ``path``, ``content`` (what the sample *is*: the object id of its
file, or for a table without a ``file`` column a hash of the row's other
columns), ``lab`` (the label, or for multi-label sources the label set as one
comparable JSON text; NULL when missing), for multi-label sources ``labels``
(the sorted set, empty when missing), and the slices ``s0``, ``s1``... Conflicts, leakage, duplicates and coverage are
group-bys over that table (docs/audit.md defines each); the history check
keeps one small ``(version, content, labels)`` table per source across
versions. Examples are fetched only for the findings shown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsv.semantic.declaration import FolderSource, TableSource
from dsv.semantic.engine import folder_samples, q
from dsv.semantic.findings import (
    ClassCount,
    ClassErrorRate,
    Conflicts,
    ContentGroup,
    Coverage,
    Duplicates,
    FindingKind,
    Flip,
    HardSample,
    HardSamples,
    HistoryConflicts,
    LabelStep,
    Leakage,
    PairCount,
    SampleRef,
    SourceAudit,
    ValueCount,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

SAMPLES_PER_ITEM = 10
"""Samples listed per content group (a conflict, a leak, a duplicate group)."""


@dataclass(frozen=True)
class Samples:
    """One version of one source, loaded as the DuckDB table ``table``.

    Attributes:
        keys: key column names (tables; empty for folders, whose samples are their paths).
        key_types: DuckDB type of each key column as stored (``VARCHAR`` for CSV).
        slices: slice names, stored as ``s0``, ``s1``...
        multilabel: labels are sets of several classes.
        rows: number of samples.
    """

    table: str
    source: FolderSource | TableSource
    kind: str
    keys: tuple[str, ...]
    key_types: tuple[str, ...]
    slices: tuple[str, ...]
    multilabel: bool
    rows: int

    @property
    def name(self) -> str:
        """The source's name in reports."""
        return self.source.display_name

    def classes(self, alias: str = "") -> str:
        """SQL: each sample once per class (a sample without a label as class NULL); unnests for multi-label."""
        if self.multilabel:
            return f"unnest(CASE WHEN len({alias}labels) = 0 THEN [NULL::VARCHAR] ELSE {alias}labels END)"
        return f"{alias}lab"

    def unlabelled(self, alias: str = "") -> str:
        """SQL: the sample has no label (an empty set)."""
        return f"len({alias}labels) = 0" if self.multilabel else f"{alias}lab IS NULL"

    def has_class(self, alias: str, cls: str) -> str:
        """SQL: the sample's labels include ``cls``."""
        return f"list_contains({alias}labels, {cls})" if self.multilabel else f"{alias}lab = {cls}"

    def label_list(self, alias: str = "") -> str:
        """SQL: the label set as a list (single-label sources keep only ``lab``, no list column)."""
        return f"{alias}labels" if self.multilabel else f"(CASE WHEN {alias}lab IS NULL THEN []::VARCHAR[] ELSE [{alias}lab] END)"


# -- loading ---------------------------------------------------------------------------


def load_folder(con: "duckdb.DuckDBPyConnection", tag: str, entries: "pa.Table", source: FolderSource) -> Samples:
    """A folder source's samples from manifest entries (``path``, ``oid``): content is the file's object id."""
    table = folder_samples(entries, source)
    con.register(f"fs_{tag}", table)
    n = len(source.slices)
    slices = "".join(f", s{i}" for i in range(n))
    t = f"smp_{tag}"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {t} AS
            SELECT path, oid AS content, label AS lab{slices}
            FROM fs_{tag}"""
    )
    con.unregister(f"fs_{tag}")
    return Samples(t, source, "folder", (), (), tuple(source.slices), False, table.num_rows)


def load_table(
    con: "duckdb.DuckDBPyConnection", tag: str, disk_path: str, source: TableSource, side: str, files: "pa.Table | None"
) -> Samples:
    """A table source's samples at one version (``files``: that version's manifest ``path``, ``oid``, when ``file`` is declared).

    Keys, labels and slices read exactly as the diff reads them (one ``Reading``).
    Content is the object id of the file the row names (``NULL`` where it names
    none), or without ``file`` a 64-bit hash of the row's other columns (not
    key, label, slices), ``NULL`` when all of those are empty.
    """
    from dsv.semantic.column_types import Reading, has_json_arrays
    from dsv.semantic.table_files import load_table as load_version
    from dsv.semantic.tables import check_unique_keys

    view = f"tv_{tag}"
    version = load_version(con, view, disk_path, source, side)
    for c in [source.label, *source.slices]:
        if c not in version.types:
            from dsv.base.errors import SampleSourceError

            raise SampleSourceError(
                f"{source.path} at {side} has no column {c!r} (columns: {', '.join(version.types)})",
                hint="check label/slices in dsv.toml",
            )
    check_unique_keys(con, view, source, side)
    r = Reading(source, version, version)
    t = version.types.get(source.label, "VARCHAR")
    arrays = has_json_arrays(con, version, source.label)
    multilabel = not version.as_text and (t.endswith("[]") or arrays)
    if multilabel:
        labels = r.labels("a", source.label, arrays)
        lab = f"(CASE WHEN len({labels}) = 0 THEN NULL ELSE CAST(to_json({labels}) AS VARCHAR) END)"
    else:
        labels = None  # single-label: only ``lab`` (a list per row would cost memory and time for nothing)
        lab = r.text("a", source.label)
    keys = [r.key(k) for k in source.key]
    key_types = tuple("VARCHAR" if r.textual(k) else version.types[k] for k in source.key)
    key_cols = ", ".join(f"{k.a} AS __k{i}" for i, k in enumerate(keys))
    slices = "".join(f", {r.text('a', s)} AS s{i}" for i, s in enumerate(source.slices))
    join = ""
    if source.file and source.file in version.types and files is not None:
        con.register(f"ff_{tag}", files)
        path = r.raw("a", source.file)
        join = f" LEFT JOIN ff_{tag} f ON f.path = {path}"
        content = "f.oid"
    elif source.file:
        path = r.raw("a", source.file) if source.file in version.types else "NULL::VARCHAR"
        content = "NULL::BLOB"
    else:
        path = "NULL::VARCHAR"
        payload = [c for c in version.types if c not in {*source.key, source.label, *source.slices}]
        if payload:
            cols = ", ".join(f"a.{q(c)}" for c in payload)
            empty = " AND ".join(f"a.{q(c)} IS NULL" for c in payload)
            content = f"(CASE WHEN {empty} THEN NULL ELSE hash({cols}) END)"
        else:
            content = "NULL::UBIGINT"
    out = f"smp_{tag}"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {out} AS
            SELECT {key_cols}, {path} AS path, {content} AS content{f", {labels} AS labels" if labels else ""}, {lab} AS lab{slices}
            FROM {q(view)} a{join}"""
    )
    if join:
        con.unregister(f"ff_{tag}")
    return Samples(out, source, "table", tuple(source.key), key_types, tuple(source.slices), multilabel, version.rows)


# -- helpers ---------------------------------------------------------------------------------


def content_text(value: Any) -> str | None:
    """A content value as shown: an object id in hex, a row hash as 16 hex digits."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return f"{int(value):016x}"


def _label_value(smp: Samples, lab: Any) -> Any:
    """A ``lab`` value as shown: the class, or for multi-label sources the list of classes."""
    if lab is None or not smp.multilabel:
        return lab
    return json.loads(lab)


def _ref_columns(smp: Samples) -> str:
    keys = "".join(f", CAST(to_json(s.__k{i}) AS VARCHAR)" for i in range(len(smp.keys)))
    slices = "".join(f", s.s{i}" for i in range(len(smp.slices)))
    return f"s.path, s.lab{keys}{slices}"


def _ref(smp: Samples, row: tuple[Any, ...]) -> SampleRef:
    path, lab = row[0], row[1]
    nk = len(smp.keys)
    key = {k: json.loads(v) if v is not None else None for k, v in zip(smp.keys, row[2 : 2 + nk])} if smp.keys else None
    slices = dict(zip(smp.slices, row[2 + nk :]))
    return SampleRef(key, path, _label_value(smp, lab), slices)


def _order(smp: Samples) -> str:
    keys = ", ".join(f"s.__k{i}" for i in range(len(smp.keys)))
    return f"s.path NULLS LAST{', ' + keys if keys else ''}"


def sample_refs(con: "duckdb.DuckDBPyConnection", smp: Samples, where: str, limit: int | None) -> list[SampleRef]:
    """Samples matching an SQL condition over alias ``s``, in path/key order."""
    cap = "" if limit is None else f" LIMIT {int(limit)}"
    rows = con.execute(f"SELECT {_ref_columns(smp)} FROM {smp.table} s WHERE {where} ORDER BY {_order(smp)}{cap}").fetchall()
    return [_ref(smp, r) for r in rows]


def _group_samples(con: "duckdb.DuckDBPyConnection", smp: Samples, groups: str, extra: str = "true") -> dict[Any, list[SampleRef]]:
    """Samples of the contents in temp table ``groups`` (column ``content``), at most SAMPLES_PER_ITEM each."""
    rows = con.execute(
        f"""SELECT * EXCLUDE (rn) FROM (
                SELECT s.content, {_ref_columns(smp)}, row_number() OVER (PARTITION BY s.content ORDER BY {_order(smp)}) AS rn
                FROM {smp.table} s JOIN {groups} g ON g.content = s.content WHERE {extra})
            WHERE rn <= {SAMPLES_PER_ITEM}"""
    ).fetchall()
    out: dict[Any, list[SampleRef]] = {}
    for r in sorted(rows, key=lambda r: (str(r[1]), json.dumps(r[3:], default=str))):
        out.setdefault(_hashable(r[0]), []).append(_ref(smp, r[1:]))
    return out


def _hashable(v: Any) -> Any:
    return bytes(v) if isinstance(v, (bytearray, memoryview)) else v


# -- findings ------------------------------------------------------------------------------


def conflicts(con: "duckdb.DuckDBPyConnection", smp: Samples, limit: int, want_ids: bool = True) -> tuple[Conflicts, dict[str, str]]:
    """Contents carrying more than one label (set) in this version, those with the most samples first."""
    g = f"cf_{smp.table}"
    # One pass: a content conflicts when its smallest and largest label differ (cheaper than
    # counting distinct labels); n counts all its samples, labelled or not.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {g} AS
            SELECT content, count(*) AS n FROM {smp.table} WHERE content IS NOT NULL GROUP BY content HAVING min(lab) <> max(lab)"""
    )
    contents, samples = con.execute(f"SELECT count(*), coalesce(sum(n), 0) FROM {g}").fetchall()[0]
    top = f"cft_{smp.table}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {top} AS SELECT * FROM {g} ORDER BY n DESC, content LIMIT {int(limit)}")
    listed = f"(SELECT content FROM {g})" if want_ids else f"(SELECT content FROM {top})"
    labs = {
        _hashable(c): ls
        for c, ls in con.execute(
            f"SELECT content, list_sort(list(DISTINCT lab)) FROM {smp.table} WHERE lab IS NOT NULL AND content IN {listed} GROUP BY content"
        ).fetchall()
    }
    ids = {content_text(c) or "": f"{(content_text(c) or '')[:12]} labeled {', '.join(_show_lab(smp, x) for x in ls)}" for c, ls in labs.items()} if want_ids else {}
    refs = _group_samples(con, smp, top)
    items = [
        ContentGroup(content_text(c) or "", tuple(_label_value(smp, x) for x in labs.get(_hashable(c), [])), int(n), tuple(refs.get(_hashable(c), ())))
        for c, n in con.execute(f"SELECT content, n FROM {top} ORDER BY n DESC, content").fetchall()
    ]
    return Conflicts(int(contents), int(samples), tuple(items)), ids


def _show_lab(smp: Samples, lab: Any) -> str:
    return _show(_label_value(smp, lab))


def leakage(con: "duckdb.DuckDBPyConnection", smp: Samples, split: str, limit: int, want_ids: bool = True) -> tuple[Leakage, dict[str, str]]:
    """Contents present under two or more values of one split-like slice, those with the most samples first."""
    i = smp.slices.index(split)
    g = f"lk{i}_{smp.table}"
    # One pass: a content leaks when its smallest and largest value differ; they are the pair
    # itself unless the content has 3+ samples, the only ones that can sit in 3+ values.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {g} AS
            SELECT content, count(s{i}) AS n, min(s{i}) AS lo, max(s{i}) AS hi
            FROM {smp.table} WHERE content IS NOT NULL GROUP BY content HAVING min(s{i}) <> max(s{i})"""
    )
    contents, samples = con.execute(f"SELECT count(*), coalesce(sum(n), 0) FROM {g}").fetchall()[0]
    many = f"{g}_m"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {many} AS
            SELECT content, list_sort(list(DISTINCT s{i})) AS vals FROM {smp.table}
            WHERE s{i} IS NOT NULL AND content IN (SELECT content FROM {g} WHERE n > 2) GROUP BY content HAVING count(DISTINCT s{i}) > 2"""
    )
    pairs = con.execute(
        f"""SELECT lo, hi, count(*) FROM (
                SELECT lo, hi FROM {g} WHERE content NOT IN (SELECT content FROM {many})
                UNION ALL SELECT x.v, y.v FROM (SELECT content, unnest(vals) AS v FROM {many}) x
                    JOIN (SELECT content, unnest(vals) AS v FROM {many}) y ON x.content = y.content AND x.v < y.v)
            GROUP BY lo, hi ORDER BY count(*) DESC, lo, hi"""
    ).fetchall()
    top = f"lkt{i}_{smp.table}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {top} AS SELECT * FROM {g} ORDER BY n DESC, content LIMIT {int(limit)}")
    where = "" if want_ids else f" WHERE g.content IN (SELECT content FROM {top})"
    vals = {
        _hashable(c): vs
        for c, vs in con.execute(f"SELECT g.content, coalesce(m.vals, [g.lo, g.hi]) FROM {g} g LEFT JOIN {many} m USING (content){where}").fetchall()
    }
    ids = {f"{split}:{content_text(c)}": f"{(content_text(c) or '')[:12]} in {split} = {', '.join(vs)}" for c, vs in vals.items()} if want_ids else {}
    refs = _group_samples(con, smp, top, f"s.s{i} IS NOT NULL")
    items = [
        ContentGroup(content_text(c) or "", tuple(vals.get(_hashable(c), [])), int(n), tuple(refs.get(_hashable(c), ())))
        for c, n in con.execute(f"SELECT content, n FROM {top} ORDER BY n DESC, content").fetchall()
    ]
    return Leakage(split, int(contents), int(samples), tuple(PairCount((a, b), int(n)) for a, b, n in pairs), tuple(items)), ids


def duplicates(
    con: "duckdb.DuckDBPyConnection", smp: Samples, column: str | None, limit: int, want_ids: bool = True
) -> tuple[Duplicates, dict[str, str]]:
    """Groups of two or more samples with the same content within one class (``column`` None) or one value of a split slice."""
    if column is None:
        src = f"SELECT content, {smp.classes()} AS v FROM {smp.table} WHERE content IS NOT NULL"
        what = "class"
    else:
        i = smp.slices.index(column)
        src = f"SELECT content, s{i} AS v FROM {smp.table} WHERE content IS NOT NULL AND s{i} IS NOT NULL"
        what = column
    g = f"dp{'' if column is None else smp.slices.index(column)}_{smp.table}"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {g} AS
            SELECT content, v, count(*) AS n FROM ({src}) WHERE v IS NOT NULL GROUP BY content, v HAVING count(*) > 1"""
    )
    groups, extra = con.execute(f"SELECT count(*), coalesce(sum(n - 1), 0) FROM {g}").fetchall()[0]
    by_value = [
        ValueCount(v, int(ng), int(ne))
        for v, ng, ne in con.execute(f"SELECT v, count(*), sum(n - 1) FROM {g} GROUP BY v ORDER BY sum(n - 1) DESC, v").fetchall()
    ]
    ids = (
        {
            f"{what}={v}:{content_text(c)}": f"{(content_text(c) or '')[:12]} x{n} in {what} {v}"
            for c, v, n in con.execute(f"SELECT content, v, n FROM {g}").fetchall()
        }
        if want_ids
        else {}
    )
    top = f"{g}_t"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {top} AS SELECT * FROM {g} ORDER BY n DESC, v, content LIMIT {int(limit)}")
    if column is None:
        cond = smp.has_class("s.", "g.v")
    else:
        cond = f"s.s{smp.slices.index(column)} = g.v"
    rows = con.execute(
        f"""SELECT * EXCLUDE (rn) FROM (
                SELECT g.content, g.v, {_ref_columns(smp)}, row_number() OVER (PARTITION BY g.content, g.v ORDER BY {_order(smp)}) AS rn
                FROM {smp.table} s JOIN {top} g ON g.content = s.content AND {cond})
            WHERE rn <= {SAMPLES_PER_ITEM}"""
    ).fetchall()
    refs: dict[tuple[Any, Any], list[SampleRef]] = {}
    for r in sorted(rows, key=lambda r: (str(r[2]), json.dumps(r[4:], default=str))):
        refs.setdefault((_hashable(r[0]), r[1]), []).append(_ref(smp, r[2:]))
    items = [
        ContentGroup(content_text(c) or "", (v,), int(n), tuple(refs.get((_hashable(c), v), ())))
        for c, v, n in con.execute(f"SELECT content, v, n FROM {top} ORDER BY n DESC, v, content").fetchall()
    ]
    return Duplicates(column, int(groups), int(extra), tuple(by_value), tuple(items)), ids


def coverage(
    con: "duckdb.DuckDBPyConnection", smp: Samples, *, min_samples: int, label_set: list[str] | None, limit: int, want_ids: bool = True
) -> tuple[Coverage, dict[str, dict[str, str]]]:
    """Class counts, imbalance, small classes (overall and per slice value), missing and unknown labels."""
    counts = con.execute(
        f"SELECT c, count(*) FROM (SELECT {smp.classes()} AS c FROM {smp.table}) GROUP BY c ORDER BY c NULLS LAST"
    ).fetchall()
    classes = [ClassCount(c, int(n)) for c, n in counts]
    labelled = [c.count for c in classes if c.cls is not None and c.count > 0]
    imbalance = max(labelled) / min(labelled) if labelled else None
    universe = sorted({c.cls for c in classes if c.cls is not None} | set(label_set or []))
    observed = {c.cls: c.count for c in classes}
    small = [ClassCount(c, observed.get(c, 0)) for c in universe if observed.get(c, 0) < min_samples]
    small.sort(key=lambda c: (c.count, c.cls or ""))
    ids: dict[str, dict[str, str]] = {FindingKind.SMALL_CLASSES.value: {c.cls or "": f"class {c.cls}: {c.count} sample(s)" for c in small}}
    # Per slice value: every class of the universe, including those absent from the value (count 0).
    small_slices: list[ClassCount] = []
    n_small_slices = 0
    if universe and min_samples > 0:
        con.execute(f"CREATE OR REPLACE TEMP TABLE cu_{smp.table} AS SELECT unnest(?::VARCHAR[]) AS c", [universe])
        for i, col in enumerate(smp.slices):
            rows = con.execute(
                f"""WITH cnt AS (SELECT s{i} AS v, c, count(*) AS n FROM (SELECT s{i}, {smp.classes()} AS c FROM {smp.table}) GROUP BY ALL),
                         vals AS (SELECT DISTINCT s{i} AS v FROM {smp.table})
                    SELECT vals.v, u.c, coalesce(cnt.n, 0) AS n FROM vals CROSS JOIN cu_{smp.table} u
                    LEFT JOIN cnt ON cnt.v IS NOT DISTINCT FROM vals.v AND cnt.c = u.c
                    WHERE coalesce(cnt.n, 0) < {int(min_samples)}
                    ORDER BY n, vals.v NULLS LAST, u.c"""
            ).fetchall()
            n_small_slices += len(rows)
            for v, c, n in rows:
                ids[FindingKind.SMALL_CLASSES.value][f"{col}={v}:{c}"] = f"class {c} in {col} = {v}: {n} sample(s)"
            small_slices.extend(ClassCount(c, int(n), col, v) for v, c, n in rows)
    small_slices.sort(key=lambda c: (c.count, c.column or "", str(c.value), c.cls or ""))
    (missing,) = con.execute(f"SELECT count(*) FROM {smp.table} WHERE {smp.unlabelled()}").fetchall()[0]
    missing_items = sample_refs(con, smp, smp.unlabelled("s."), limit)
    ids[FindingKind.MISSING_LABELS.value] = {}
    if missing and want_ids:
        for r in sample_refs(con, smp, smp.unlabelled("s."), None):
            sid = r.path if r.key is None else json.dumps(r.key, sort_keys=True)
            ids[FindingKind.MISSING_LABELS.value][sid or ""] = f"no label: {sid}"
    unknown: list[ClassCount] = []
    absent: list[str] = []
    unknown_samples = 0
    if label_set is not None:
        allowed = set(label_set)
        unknown = [c for c in classes if c.cls is not None and c.cls not in allowed]
        unknown.sort(key=lambda c: (-c.count, c.cls or ""))
        absent = sorted(c for c in label_set if observed.get(c, 0) == 0)
        if smp.multilabel:
            (unknown_samples,) = con.execute(
                f"SELECT count(*) FROM {smp.table} WHERE len(list_filter(labels, lambda x: NOT list_contains(?::VARCHAR[], x))) > 0", [sorted(allowed)]
            ).fetchall()[0]
        else:
            unknown_samples = sum(c.count for c in unknown)
    ids[FindingKind.UNKNOWN_LABELS.value] = {c.cls or "": f"label {c.cls!r} not in the declared set ({c.count})" for c in unknown}
    cov = Coverage(
        tuple(classes),
        imbalance,
        min_samples,
        tuple(small),
        n_small_slices,
        tuple(small_slices[:limit]),
        int(missing),
        tuple(missing_items),
        None if label_set is None else tuple(label_set),
        tuple(unknown),
        tuple(absent),
        int(unknown_samples),
    )
    return cov, ids


# -- history ---------------------------------------------------------------------------------


def content_type(source: FolderSource | TableSource) -> str:
    """The SQL type of ``content``: an object id (BLOB), or a row hash (UBIGINT) for a table without ``file``."""
    return "UBIGINT" if isinstance(source, TableSource) and not source.file else "BLOB"


def history_table(con: "duckdb.DuckDBPyConnection", name: str, source: FolderSource | TableSource) -> str:
    """Create (empty) the tables that collect one source's labels across versions.

    ``hist_<name>`` holds the ``(content, label)`` of every sample of each *load*
    (a version actually read); ``hist_<name>_v`` maps each version to the load
    that holds its samples, so a version whose files did not change costs one row.
    """
    t = f"hist_{name}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {t} (load INTEGER, content {content_type(source)}, lab VARCHAR)")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {t}_v (v INTEGER, load INTEGER)")
    return t


def add_history(con: "duckdb.DuckDBPyConnection", hist: str, v: int, smp: Samples) -> None:
    """Record the samples of version ``v`` (as load ``v``)."""
    con.execute(f"INSERT INTO {hist} SELECT {int(v)}, content, lab FROM {smp.table} WHERE content IS NOT NULL AND lab IS NOT NULL")
    con.execute(f"INSERT INTO {hist}_v VALUES ({int(v)}, {int(v)})")


def copy_history(con: "duckdb.DuckDBPyConnection", hist: str, v: int, previous: int) -> None:
    """Version ``v`` holds exactly the samples of version ``previous`` (its files did not change)."""
    con.execute(f"INSERT INTO {hist}_v SELECT {int(v)}, load FROM {hist}_v WHERE v = {int(previous)}")


def history_flips(
    con: "duckdb.DuckDBPyConnection", hist: str, commits: list[str], smp: Samples, limit: int
) -> tuple[HistoryConflicts, dict[str, str]]:
    """Contents whose labels went back and forth: along the versions that hold them, a label set reappears after another.

    ``commits[v]`` names version ``v`` (oldest first); ``smp`` (the newest version)
    gives the example samples. A content whose samples carry one label in every
    version cannot flip, so label sets per version are built only for the others
    (one ``min``/``max`` pass finds them).
    """
    g = f"hf_{smp.table}"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {g} AS
            WITH cand AS (SELECT content FROM {hist} GROUP BY content HAVING min(lab) <> max(lab)),
                 s AS (SELECT m.v, h.content, list_sort(list(DISTINCT h.lab)) AS labs
                       FROM {hist} h JOIN {hist}_v m ON m.load = h.load
                       WHERE h.content IN (SELECT content FROM cand) GROUP BY m.v, h.content),
                 t AS (SELECT content, v, labs, lag(labs) OVER (PARTITION BY content ORDER BY v) AS prev FROM s),
                 runs AS (SELECT content, v, labs FROM t WHERE prev IS NULL OR labs <> prev)
            SELECT content, count(*) - 1 AS changes, list(v ORDER BY v) AS vs, list(labs ORDER BY v) AS labss
            FROM runs GROUP BY content HAVING count(*) > count(DISTINCT labs)"""
    )
    rows = con.execute(f"SELECT content, changes, vs, labss FROM {g} ORDER BY changes DESC, content").fetchall()
    top = f"{g}_t"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {top} AS SELECT content FROM {g} ORDER BY changes DESC, content LIMIT {int(limit)}")
    refs = _group_samples(con, smp, top)
    ids: dict[str, str] = {}
    items: list[Flip] = []
    for c, changes, vs, labs in rows:
        shown = content_text(c) or ""
        seq = tuple(LabelStep(commits[v], tuple(_label_value(smp, x) for x in lab)) for v, lab in zip(vs, labs))
        ids[shown] = f"{shown[:12]} relabeled " + " -> ".join("/".join(_show(x) for x in s.labels) for s in seq)
        if len(items) < limit:
            items.append(Flip(shown, int(changes), seq, tuple(refs.get(_hashable(c), ()))))
    return HistoryConflicts(len(commits), len(rows), tuple(items)), ids


def _show(v: Any) -> str:
    return "[" + ", ".join(v) + "]" if isinstance(v, list) else str(v)


# -- hard samples ------------------------------------------------------------------------------


def load_predictions(con: "duckdb.DuckDBPyConnection", tag: str, disk_path: str, fmt: str) -> dict[str, str]:
    """Expose a predictions table as view ``pr_<tag>``; return its column types."""
    from dsv.semantic.engine import lit

    reader = f"read_parquet({lit(disk_path)})" if fmt == "parquet" else f"read_csv({lit(disk_path)}, header=true, auto_detect=true, sample_size=-1)"
    con.execute(f"CREATE OR REPLACE TEMP VIEW pr_{tag} AS SELECT * FROM {reader}")
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE pr_{tag}").fetchall()}


def prediction_keys(smp: Samples, columns: dict[str, str]) -> list[str] | None:
    """The predictions columns that match the source's keys (folders: ``path`` or ``key``), or None."""
    if smp.kind == "folder":
        for c in ("path", "key"):
            if c in columns:
                return [c]
        return None
    if all(k in columns for k in smp.keys):
        return list(smp.keys)
    if len(smp.keys) == 1 and "key" in columns:
        return ["key"]
    return None


def unknown_predicted(con: "duckdb.DuckDBPyConnection", tag: str) -> tuple[int, int, list[str]]:
    """After :func:`hard_samples`: matched rows, those whose predicted class is no class of the source, and a few of those classes."""
    (n, unknown, examples) = con.execute(
        f"""SELECT count(*), count(*) FILTER (predicted NOT IN (SELECT c FROM hc_{tag})),
                   (list(DISTINCT predicted ORDER BY predicted) FILTER (predicted NOT IN (SELECT c FROM hc_{tag})))[1:3]
            FROM hm_{tag}"""
    ).fetchall()[0]
    return int(n), int(unknown), list(examples or [])


class DuplicatePredictions(Exception):
    """A predictions table gives several rows for some samples (``count`` of them, e.g. ``example``)."""

    def __init__(self, count: int, example: str) -> None:
        super().__init__(f"{count} sample(s) with several predictions, e.g. {example}")
        self.count = count
        self.example = example


def hard_samples(
    con: "duckdb.DuckDBPyConnection", smp: Samples, tag: str, columns: dict[str, str], *, record: str, commit: str, limit: int
) -> HardSamples | None:
    """Samples whose given label disagrees with a confident prediction, and per-class label-error rates.

    Confident learning adapted to one predicted class per sample (docs/audit.md):
    with ``confidence``, a sample labelled *i* and predicted *j != i* is a likely
    label error when its confidence reaches *t_j*, the mean confidence of the
    samples labelled *j* and predicted *j*; with ``loss`` only, when its
    self-confidence ``exp(-loss)`` in the given label is below *t_i*, the mean
    self-confidence of class *i*. A class's error rate is its likely errors over
    its samples with a prediction.
    """
    from dsv.semantic.engine import lit
    from dsv.semantic.column_types import canon

    keys = prediction_keys(smp, columns)
    if keys is None:
        return None
    score = "confidence" if "confidence" in columns else "loss"
    if smp.kind == "folder":
        on = f"CAST(p.{q(keys[0])} AS VARCHAR) = s.path"
    else:
        on = " AND ".join(
            f"{canon(f'p.{q(pk)}', columns[pk])} = {canon(f's.__k{i}', smp.key_types[i])}" for i, pk in enumerate(keys)
        )
    # The predicted class as the dataset writes its classes: the text as it reads, else its
    # canonical form (a float 2.0 for the integer class 2), as keys are matched.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE hc_{tag} AS SELECT DISTINCT c FROM (SELECT {smp.classes()} AS c FROM {smp.table}) WHERE c IS NOT NULL"
    )
    raw, canonical = "CAST(p.predicted AS VARCHAR)", canon("p.predicted", columns.get("predicted", "VARCHAR"))
    predicted = (
        f"(CASE WHEN {raw} IN (SELECT c FROM hc_{tag}) THEN {raw} "
        f"WHEN {canonical} IN (SELECT c FROM hc_{tag}) THEN {canonical} ELSE {raw} END)"
    )
    loss = "CAST(p.loss AS DOUBLE)" if "loss" in columns else "NULL::DOUBLE"
    conf = "CAST(p.confidence AS DOUBLE)" if "confidence" in columns else "NULL::DOUBLE"
    m = f"hm_{tag}"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {m} AS
            SELECT s.* EXCLUDE ({"labels" if smp.multilabel else "lab"}), {smp.label_list("s.")} AS labels, {"" if smp.multilabel else "s.lab, "}
                   {predicted} AS predicted, {conf} AS confidence, {loss} AS loss,
                   list_contains({smp.label_list("s.")}, {predicted}) AS agrees
            FROM {smp.table} s JOIN pr_{tag} p ON {on}
            WHERE p.predicted IS NOT NULL AND NOT ({smp.unlabelled("s.")})"""
    )
    # One row per evaluated sample (docs/metrics.md): a sample with two predictions would count
    # twice in every number below, and which of them is right cannot be known.
    if smp.kind == "folder":
        group_by, name = "path", "path"
    else:
        group_by = ", ".join(f"__k{i}" for i in range(len(smp.keys)))
        name = "concat_ws(', ', " + ", ".join(f"{lit(k + '=')} || CAST(__k{i} AS VARCHAR)" for i, k in enumerate(smp.keys)) + ")"
    n_dup, example = con.execute(f"SELECT count(*), min(name) FROM (SELECT {name} AS name FROM {m} GROUP BY {group_by} HAVING count(*) > 1)").fetchall()[0]
    if n_dup:
        raise DuplicatePredictions(int(n_dup), str(example))
    (n_pred,) = con.execute(f"SELECT count(*) FROM pr_{tag}").fetchall()[0]
    (matched,) = con.execute(f"SELECT count(*) FROM {m}").fetchall()[0]
    e = f"he_{tag}"
    if score == "confidence":
        # t_j: mean confidence of samples labelled j that the model also predicts as j.
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE th_{tag} AS
                SELECT predicted AS c, avg(confidence) AS t FROM {m} WHERE agrees AND confidence IS NOT NULL GROUP BY predicted"""
        )
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {e} AS
                SELECT m.* FROM {m} m JOIN th_{tag} th ON th.c = m.predicted
                WHERE NOT m.agrees AND m.confidence >= th.t"""
        )
        thresholds = dict(con.execute(f"SELECT c, t FROM th_{tag}").fetchall())
        rank = "confidence DESC"
    else:
        # t_i: mean self-confidence exp(-loss) of the samples of given class i.
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE th_{tag} AS
                SELECT c, avg(exp(-loss)) AS t FROM (SELECT unnest(labels) AS c, loss FROM {m} WHERE loss IS NOT NULL) GROUP BY c"""
        )
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {e} AS
                SELECT DISTINCT m.* EXCLUDE (__c) FROM (SELECT *, unnest(labels) AS __c FROM {m}) m JOIN th_{tag} th ON th.c = m.__c
                WHERE NOT m.agrees AND m.loss IS NOT NULL AND exp(-m.loss) < th.t"""
        )
        thresholds = dict(con.execute(f"SELECT c, t FROM th_{tag}").fetchall())
        rank = "loss DESC"
    per_class = con.execute(
        f"""WITH n AS (SELECT c, count(*) AS n FROM (SELECT unnest(labels) AS c FROM {m}) GROUP BY c),
                 x AS (SELECT c, count(*) AS x FROM (SELECT unnest(labels) AS c FROM {e}) GROUP BY c)
            SELECT n.c, n.n, coalesce(x.x, 0) FROM n LEFT JOIN x USING (c) ORDER BY n.c"""
    ).fetchall()
    classes = []
    for c, n, x in per_class:
        t = thresholds.get(c) if score == "loss" else None
        if score == "confidence":
            # The thresholds that can flag this class's samples are those of the other classes;
            # report the class's own t (what flags samples predicted as it).
            t = thresholds.get(c)
        classes.append(ClassErrorRate(c, int(n), int(x), None if t is None else float(t)))
    (n_err,) = con.execute(f"SELECT count(*) FROM {e}").fetchall()[0]
    rows = con.execute(
        f"""SELECT * EXCLUDE (rn) FROM (
                SELECT s.__c AS cls, {_ref_columns(smp)}, s.predicted, s.confidence, s.loss,
                       row_number() OVER (PARTITION BY s.__c ORDER BY s.{rank}, {_order(smp)}) AS rn
                FROM (SELECT *, unnest(labels) AS __c FROM {e}) s)
            WHERE rn <= {int(limit)} ORDER BY cls, rn"""
    ).fetchall()
    items = []
    seen: set[tuple[Any, ...]] = set()
    for r in rows:
        ref = _ref(smp, r[1:-3])
        ident = (ref.path, json.dumps(ref.key, sort_keys=True, default=str))
        if ident in seen:
            continue  # a multi-label sample listed under one of its classes only
        seen.add(ident)
        items.append(HardSample(ref, r[-3], r[-2], r[-1]))
    return HardSamples(record, commit, score, int(n_pred), int(matched), int(n_err), tuple(classes), tuple(items))


# -- one source -----------------------------------------------------------------------------------


def audit_source(
    con: "duckdb.DuckDBPyConnection",
    smp: Samples,
    *,
    min_samples: int,
    limit: int,
    history: tuple[HistoryConflicts, dict[str, str]] | None = None,
    hard: HardSamples | None = None,
    want_ids: bool = True,
) -> SourceAudit:
    """Every finding of one source at one version; ``want_ids`` also lists every finding's subject (``ids``)."""
    source = smp.source
    splits = [s for s in source.split_slices if s in smp.slices]
    conf, conf_ids = conflicts(con, smp, limit, want_ids)
    leaks = [leakage(con, smp, s, limit, want_ids) for s in splits]
    dups = [duplicates(con, smp, None, limit, want_ids)] + [duplicates(con, smp, s, limit, want_ids) for s in splits]
    cov, cov_ids = coverage(con, smp, min_samples=min_samples, label_set=source.labels, limit=limit, want_ids=want_ids)
    (without,) = con.execute(f"SELECT count(*) FROM {smp.table} WHERE content IS NULL").fetchall()[0]
    ids: dict[str, dict[str, str]] = {FindingKind.CONFLICTS.value: conf_ids}
    ids[FindingKind.LEAKAGE.value] = {k: v for _, i in leaks for k, v in i.items()}
    ids[FindingKind.DUPLICATES.value] = {k: v for _, i in dups for k, v in i.items()}
    ids.update(cov_ids)
    return SourceAudit(
        name=source.display_name,
        kind=smp.kind,
        samples=smp.rows,
        without_content=int(without),
        multilabel=smp.multilabel,
        splits=tuple(splits),
        conflicts=conf,
        history=history[0] if history else HistoryConflicts(),
        leakage=tuple(x for x, _ in leaks),
        duplicates=tuple(d for d, _ in dups),
        coverage=cov,
        hard=hard,
        ids=ids,
    )
