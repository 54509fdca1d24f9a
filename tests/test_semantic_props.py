"""Semantic diff: properties against an independent model, format quirks and error paths.

The property tests generate an annotation table, apply a random edit log
(remove, add, relabel, modify, any overlap of relabel and modify), and check
that ``Repo.semantic_diff`` recovers exactly the counts computed in plain
Python from that log.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsv
from dsv.base.errors import DsvError
from dsv.semantic.declaration import Declaration, FolderSource, TableSource
from dsv.semantic.report import SourceDiff

from conftest import run_dsv, write_tree

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

LABELS = ["cat", "dog", "bird", None]
SPLITS = ["train", "val", "test", None]
COLS = ["id", "label", "split", "payload"]

# -- model --------------------------------------------------------------------------------

Row = tuple[Any, Any, Any]  # (label, split, payload)


@dataclass
class Scenario:
    """Version A, the edit log, and version B derived from it."""

    str_ids: bool
    payload_kind: str  # int | num (ints and halves: int columns widen to double) | text
    a: dict[Any, Row]
    removed: set[Any]
    added: dict[Any, Row]
    relabeled: dict[Any, Any]  # id -> new label
    modified: dict[Any, tuple[Any, Any]]  # id -> (new payload, new split)
    order_b: list[Any]
    against_worktree: bool

    @property
    def b(self) -> dict[Any, Row]:
        out: dict[Any, Row] = {}
        for k in self.order_b:
            if k in self.added:
                out[k] = self.added[k]
                continue
            label, split, payload = self.a[k]
            if k in self.relabeled:
                label = self.relabeled[k]
            if k in self.modified:
                payload, split = self.modified[k]
            out[k] = (label, split, payload)
        return out


def _payload(kind: str) -> st.SearchStrategy[Any]:
    if kind == "int":
        return st.one_of(st.none(), st.integers(-1000, 1000))
    if kind == "num":
        return st.one_of(st.none(), st.integers(-1000, 1000), st.integers(-1000, 1000).map(lambda i: i + 0.5))
    # Text with commas, both quote kinds and inner spaces; wrapped so it never looks like a number/date/bool.
    return st.one_of(st.none(), st.text(alphabet='ab ,"\'xyz', max_size=8).map(lambda s: f"p{s}q"))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    str_ids = draw(st.booleans())
    kind = draw(st.sampled_from(["int", "num", "text"]))
    n = draw(st.integers(1, 20))
    pool = draw(st.lists(st.integers(0, 100_000), min_size=n, max_size=n + 10, unique=True))
    mk = (lambda i: f"s{i}") if str_ids else (lambda i: i)
    ids_a = [mk(i) for i in pool[:n]]
    fresh = [mk(i) for i in pool[n:]]
    row = st.tuples(st.sampled_from(LABELS), st.sampled_from(SPLITS), _payload(kind))
    a = {k: draw(row) for k in ids_a}
    removed = {k for k in ids_a if draw(st.booleans())} if draw(st.booleans()) else set()
    survivors = [k for k in ids_a if k not in removed]
    relabeled: dict[Any, Any] = {}
    modified: dict[Any, tuple[Any, Any]] = {}
    for k in survivors:
        label, split, payload = a[k]
        if draw(st.integers(0, 3)) == 0:
            relabeled[k] = draw(st.sampled_from([x for x in LABELS if x != label]))
        if draw(st.integers(0, 3)) == 0:
            new_payload = draw(_payload(kind).filter(lambda v, old=payload: v != old))
            new_split = draw(st.sampled_from(SPLITS)) if draw(st.booleans()) else split
            modified[k] = (new_payload, new_split)
    added = {k: draw(row) for k in fresh if draw(st.booleans())}
    order_b = draw(st.permutations(survivors + list(added)))
    return Scenario(str_ids, kind, a, removed, added, relabeled, modified, list(order_b), draw(st.booleans()))


def expected(sc: Scenario) -> dict[str, Any]:
    """Every count of the diff, from the edit log alone."""
    b = sc.b
    both = [k for k in sc.a if k not in sc.removed]
    # A new split is a slice move, not a modification (the payload edit is).
    moved = {k for k in both if b[k][1] != sc.a[k][1]}
    totals = {
        "before": len(sc.a),
        "after": len(b),
        "added": len(sc.added),
        "removed": len(sc.removed),
        "relabeled": len(sc.relabeled),
        "modified": len(sc.modified),
        "unchanged": sum(1 for k in both if k not in sc.relabeled and k not in sc.modified and k not in moved),
        "moved": len(moved),
    }
    fields = ("before", "after", "added", "removed", "relabeled_in", "relabeled_out", "modified")
    classes: dict[Any, Counter[str]] = defaultdict(Counter)
    slices: dict[Any, Counter[str]] = defaultdict(Counter)
    for k, (label, split, _) in sc.a.items():
        classes[label]["before"] += 1
        slices[split]["before"] += 1
        if k in sc.removed:
            classes[label]["removed"] += 1
            slices[split]["removed"] += 1
        else:
            if k in sc.relabeled:
                classes[label]["relabeled_out"] += 1
            if k in moved:
                slices[split]["moved_out"] += 1
    for k, (label, split, _) in b.items():
        classes[label]["after"] += 1
        slices[split]["after"] += 1
        if k in sc.added:
            classes[label]["added"] += 1
            slices[split]["added"] += 1
            continue
        if k in sc.relabeled:
            classes[label]["relabeled_in"] += 1
            slices[split]["relabeled"] += 1
        if k in sc.modified:
            classes[label]["modified"] += 1
            slices[split]["modified"] += 1
        if k in moved:
            slices[split]["moved_in"] += 1
    relabels = Counter((sc.a[k][0], new) for k, new in sc.relabeled.items())
    return {
        "totals": totals,
        "classes": {c: tuple(v[f] for f in fields) for c, v in classes.items()},
        "relabels": dict(relabels),
        "slices": {
            s: tuple(v[f] for f in ("before", "after", "added", "removed", "relabeled", "modified", "moved_in", "moved_out")) for s, v in slices.items()
        },
    }


def observed(src: SourceDiff) -> dict[str, Any]:
    """The same shape as :func:`expected`, from a diff result (duplicates would show as a length mismatch)."""
    classes = {c.cls: (c.before, c.after, c.added, c.removed, c.relabeled_in, c.relabeled_out, c.modified) for c in src.classes}
    relabels = {(r.src, r.dst): r.count for r in src.relabels}
    assert all(s.column == "split" for s in src.slices)
    slices = {s.value: (s.before, s.after, s.added, s.removed, s.relabeled, s.modified, s.moved_in, s.moved_out) for s in src.slices}
    assert len(classes) == len(src.classes) and len(relabels) == len(src.relabels) and len(slices) == len(src.slices)
    return {"totals": src.totals.to_dict(), "classes": classes, "relabels": relabels, "slices": slices}


# -- writers ------------------------------------------------------------------------------


def to_csv(rows: dict[Any, Row]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLS)
    for k, (label, split, payload) in rows.items():
        w.writerow([k, label, split, payload])  # None -> empty cell
    return buf.getvalue().encode()


def to_jsonl(rows: dict[Any, Row]) -> bytes:
    return "".join(json.dumps(dict(zip(COLS, (k, *r)))) + "\n" for k, r in rows.items()).encode()


def to_parquet(rows: dict[Any, Row], *, str_ids: bool, payload_kind: str) -> bytes:
    payloads = [r[2] for r in rows.values() if r[2] is not None]
    if payload_kind == "text":
        ptype = pa.string()
    elif all(isinstance(v, int) for v in payloads):
        ptype = pa.int64()  # a "num" column is int until a half appears, as CSV/JSON inference would have it
    else:
        ptype = pa.float64()
    schema = pa.schema(
        [("id", pa.string() if str_ids else pa.int64()), ("label", pa.string()), ("split", pa.string()), ("payload", ptype)]
    )
    cols = list(zip(*[(k, *r) for k, r in rows.items()])) or [[] for _ in COLS]
    table = pa.table({c: list(v) for c, v in zip(COLS, cols)}, schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def encode(fmt: str, rows: dict[Any, Row], sc: Scenario) -> bytes:
    if fmt == "csv":
        return to_csv(rows)
    if fmt == "jsonl":
        return to_jsonl(rows)
    return to_parquet(rows, str_ids=sc.str_ids, payload_kind=sc.payload_kind)


def check_scenario(sc: Scenario, fmt: str) -> None:
    path = f"ann/labels.{fmt}"
    decl = Declaration(tables=[TableSource(path=path, key=["id"], label="label", slices=["split"])])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        root.mkdir()
        repo = dsv.Repo.init(root)
        write_tree(root, {path: encode(fmt, sc.a, sc), "other.txt": "x"})
        repo.commit("A")
        write_tree(root, {path: encode(fmt, sc.b, sc)})
        if sc.against_worktree:
            d = repo.semantic_diff("HEAD", None, declaration=decl, rows=0)
        else:
            repo.commit("B", allow_empty=True)
            d = repo.semantic_diff("HEAD~1", "HEAD", declaration=decl, rows=0)
    assert len(d.sources) == 1
    src = d.sources[0]
    exp = expected(sc)
    if exp["totals"]["before"] == exp["totals"]["after"] == exp["totals"]["unchanged"] and not src.read:
        return  # identical bytes are legitimately not read
    assert src.read and src.kind == "table"
    assert observed(src) == exp
    assert src.changed == any(exp["totals"][k] for k in ("added", "removed", "relabeled", "modified")) or bool(src.schema)


PROP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@PROP
@given(sc=scenarios())
def test_property_csv(sc: Scenario) -> None:
    check_scenario(sc, "csv")


@PROP
@given(sc=scenarios())
def test_property_parquet(sc: Scenario) -> None:
    check_scenario(sc, "parquet")


@PROP
@given(sc=scenarios())
def test_property_jsonl(sc: Scenario) -> None:
    if not sc.b:
        return  # an empty JSONL file: see test_jsonl_all_rows_removed
    check_scenario(sc, "jsonl")


def test_model_sanity() -> None:
    """The expected-value model itself on a hand-checked case (relabel+modify on one row)."""
    sc = Scenario(
        str_ids=False,
        payload_kind="int",
        a={1: ("cat", "train", 1), 2: ("dog", "val", 2), 3: ("cat", "val", None)},
        removed={2},
        added={9: ("bird", "test", 5)},
        relabeled={1: "dog"},
        modified={1: (7, "val"), 3: (3, "val")},
        order_b=[1, 3, 9],
        against_worktree=False,
    )
    exp = expected(sc)
    assert exp["totals"] == {"before": 3, "after": 3, "added": 1, "removed": 1, "relabeled": 1, "modified": 2, "unchanged": 0, "moved": 1}
    assert exp["classes"]["dog"] == (1, 1, 0, 1, 1, 0, 1)
    assert exp["classes"]["cat"] == (2, 1, 0, 0, 0, 1, 1)
    assert exp["slices"]["val"] == (2, 2, 0, 1, 1, 2, 1, 0)
    assert exp["slices"]["train"] == (1, 0, 0, 0, 0, 0, 0, 1)
    assert exp["relabels"] == {("cat", "dog"): 1}


# -- helpers for the example tests ---------------------------------------------------------


def two_versions(repo: dsv.Repo, root: Path, a: dict[str, bytes | str], b: dict[str, bytes | str], remove: tuple[str, ...] = ()) -> None:
    write_tree(root, a)
    repo.commit("A")
    for p in remove:
        (root / p).unlink()
    write_tree(root, b)
    repo.commit("B")


def table_decl(path: str, *, label: str = "label", key: str = "id", slices: tuple[str, ...] = ()) -> Declaration:
    return Declaration(tables=[TableSource(path=path, key=[key], label=label, slices=list(slices))])


def one(repo: dsv.Repo, decl: Declaration, rows: int | None = None) -> SourceDiff:
    d = repo.semantic_diff("HEAD~1", "HEAD", declaration=decl, rows=rows)
    assert len(d.sources) == 1
    return d.sources[0]


def cells(src: SourceDiff) -> dict[tuple[Any, str], tuple[Any, Any]]:
    return {(c.key["id"], c.column): (c.old, c.new) for c in src.cells}


def assert_one_line_error(proc: Any, *needles: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode not in (0, 1), (proc.returncode, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dsv: error:"), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# -- 2. CSV quirks -------------------------------------------------------------------------


def test_csv_quoted_fields_and_missing_values(repo: dsv.Repo, repo_dir: Path) -> None:
    a = 'id,label,note\n1,cat,"a, ""quoted"" note"\n2,,\n3,dog,"x,y"\n4,,\n'
    b = 'id,label,note\n1,cat,"a, ""quoted"" note!"\n2,,\n3,dog,"x,y"\n4,cat,\n'
    two_versions(repo, repo_dir, {"t.csv": a}, {"t.csv": b})
    src = one(repo, table_decl("t.csv"), rows=0)
    # row 2: null label and null note on both sides -> unchanged; row 4: null -> cat relabel only.
    assert src.totals.to_dict() == {"before": 4, "after": 4, "added": 0, "removed": 0, "relabeled": 1, "modified": 1, "unchanged": 2, "moved": 0}
    classes = {c.cls: c for c in src.classes}
    assert set(classes) == {"cat", "dog", None}
    assert (classes[None].before, classes[None].after, classes[None].relabeled_out) == (2, 1, 1)
    assert (classes["cat"].before, classes["cat"].after, classes["cat"].relabeled_in, classes["cat"].modified) == (1, 2, 1, 1)
    assert [(r.src, r.dst, r.count) for r in src.relabels] == [(None, "cat", 1)]
    assert src.schema == ()


def test_csv_quoted_cell_values(repo: dsv.Repo, repo_dir: Path) -> None:
    a = 'id,label,note\n1,cat,"a, ""quoted"" note"\n2,dog,plain\n'
    b = 'id,label,note\n1,cat,"a, ""quoted"" note!"\n2,dog,plain\n'
    two_versions(repo, repo_dir, {"t.csv": a}, {"t.csv": b})
    src = one(repo, table_decl("t.csv"), rows=None)
    assert cells(src) == {(1, "note"): ('a, "quoted" note', 'a, "quoted" note!')}


def test_csv_null_to_value_cell(repo: dsv.Repo, repo_dir: Path) -> None:
    two_versions(repo, repo_dir, {"t.csv": "id,label,note\n1,cat,\n2,dog,x\n"}, {"t.csv": "id,label,note\n1,cat,y\n2,,x\n"})
    src = one(repo, table_decl("t.csv"), rows=None)
    assert cells(src) == {(1, "note"): (None, "y"), (2, "label"): ("dog", None)}


def test_csv_renamed_column(repo: dsv.Repo, repo_dir: Path) -> None:
    a = "id,label,note,score\n1,cat,n1,5\n2,dog,n2,6\n"
    b = "id,label,comment,score\n1,cat,n1,5\n2,dog,n2,7\n"
    two_versions(repo, repo_dir, {"t.csv": a}, {"t.csv": b})
    src = one(repo, table_decl("t.csv"))
    schema = sorted((s.column, s.change, s.old_type, s.new_type) for s in src.schema)
    assert schema == [("comment", "added", None, "VARCHAR"), ("note", "removed", "VARCHAR", None)]
    # A renamed column is no cell change; only the real edit in a common column counts.
    assert src.totals.to_dict() == {"before": 2, "after": 2, "added": 0, "removed": 0, "relabeled": 0, "modified": 1, "unchanged": 1, "moved": 0}
    assert cells(src) == {(2, "score"): (6, 7)}
    assert src.changed


def test_csv_type_change_compares_as_text(repo: dsv.Repo, repo_dir: Path) -> None:
    a = "id,label,score\n1,cat,5\n2,dog,6\n3,dog,7\n"
    b = "id,label,score\n1,cat,5\n2,dog,n/a\n3,dog,7\n"
    two_versions(repo, repo_dir, {"t.csv": a}, {"t.csv": b})
    src = one(repo, table_decl("t.csv"))
    assert [(s.column, s.change, s.old_type, s.new_type) for s in src.schema] == [("score", "type_changed", "BIGINT", "VARCHAR")]
    assert src.totals.modified == 1 and src.totals.unchanged == 2
    assert cells(src) == {(2, "score"): ("6", "n/a")}


def test_csv_int_to_double_is_not_a_change_everywhere(repo: dsv.Repo, repo_dir: Path) -> None:
    two_versions(repo, repo_dir, {"t.csv": "id,label,s\n1,a,5\n2,b,6\n"}, {"t.csv": "id,label,s\n1,a,5\n2,b,6.5\n"})
    src = one(repo, table_decl("t.csv"), rows=None)
    assert [(c.column, c.change, c.old_type, c.new_type) for c in src.schema] == [("s", "type_changed", "BIGINT", "DOUBLE")]
    assert src.totals.modified == 1 and src.totals.unchanged == 1
    assert cells(src) == {(2, "s"): (6, 6.5)}


# -- 3. duplicate keys ---------------------------------------------------------------------

DUPS = "id,label\n1,cat\n2,dog\n2,dog\n3,cat\n3,bird\n3,cat\n4,cat\n"


def test_duplicate_keys_api(repo: dsv.Repo, repo_dir: Path) -> None:
    two_versions(repo, repo_dir, {"ann/t.csv": "id,label\n1,cat\n"}, {"ann/t.csv": DUPS})
    with pytest.raises(DsvError) as ei:
        repo.semantic_diff("HEAD~1", "HEAD", declaration=table_decl("ann/t.csv"))
    msg = ei.value.message
    assert "ann/t.csv" in msg and "HEAD" in msg
    assert "3 (x3)" in msg and "2 (x2)" in msg
    assert "1 (x" not in msg and "4 (x" not in msg
    assert "\n" not in msg


def test_duplicate_keys_cli(repo: dsv.Repo, repo_dir: Path) -> None:
    two_versions(repo, repo_dir, {"ann/t.csv": DUPS}, {"ann/t.csv": "id,label\n1,cat\n"})
    proc = run_dsv("diff", "HEAD~1", "HEAD", "--table", "ann/t.csv", "--key", "id", "--label", "label", cwd=repo_dir)
    line = assert_one_line_error(proc, "ann/t.csv", "not unique")
    assert "3 (x3)" in line and "2 (x2)" in line
    assert proc.stdout == b""


# -- 4. key column type change -------------------------------------------------------------


def test_key_type_change_csv(repo: dsv.Repo, repo_dir: Path) -> None:
    a = "id,label\n1,cat\n2,dog\n3,dog\n"
    b = "id,label\n1,cat\n2,cat\n3,dog\nx9,bird\n"  # id becomes VARCHAR because of x9
    two_versions(repo, repo_dir, {"t.csv": a}, {"t.csv": b})
    src = one(repo, table_decl("t.csv"))
    assert ("id", "type_changed", "BIGINT", "VARCHAR") in [(s.column, s.change, s.old_type, s.new_type) for s in src.schema]
    assert src.totals.to_dict() == {"before": 3, "after": 4, "added": 1, "removed": 0, "relabeled": 1, "modified": 0, "unchanged": 2, "moved": 0}
    assert [(r.src, r.dst, r.count) for r in src.relabels] == [("dog", "cat", 1)]


def test_key_type_change_parquet(repo: dsv.Repo, repo_dir: Path) -> None:
    def pqbytes(t: Any) -> bytes:
        sink = io.BytesIO()
        pq.write_table(t, sink)
        return sink.getvalue()

    a = pqbytes(pa.table({"id": pa.array([1, 2, 3], pa.int64()), "label": ["cat", "dog", "dog"]}))
    b = pqbytes(pa.table({"id": pa.array(["1", "2", "3"], pa.string()), "label": ["cat", "dog", "cat"]}))
    two_versions(repo, repo_dir, {"t.parquet": a}, {"t.parquet": b})
    src = one(repo, table_decl("t.parquet"))
    assert [(s.column, s.change) for s in src.schema] == [("id", "type_changed")]
    assert src.totals.to_dict() == {"before": 3, "after": 3, "added": 0, "removed": 0, "relabeled": 1, "modified": 0, "unchanged": 2, "moved": 0}


# -- 5. unparseable files ------------------------------------------------------------------


def test_garbage_parquet(repo: dsv.Repo, repo_dir: Path) -> None:
    two_versions(repo, repo_dir, {"t.parquet": b"PAR1 this is not parquet at all PAR1 padding padding"}, {"t.parquet": b"garbage"})
    with pytest.raises(DsvError) as ei:
        repo.semantic_diff("HEAD~1", "HEAD", declaration=table_decl("t.parquet"))
    assert "t.parquet" in ei.value.message and "\n" not in ei.value.message
    proc = run_dsv("diff", "HEAD~1", "HEAD", "--table", "t.parquet", "--key", "id", "--label", "label", cwd=repo_dir)
    assert_one_line_error(proc, "t.parquet")


BROKEN = {
    "t.jsonl": '{"id": 1, "label": "cat"}\n{"id": 2, "label": \n',
    "t.parquet": b"garbage",
    "t.csv": b"id,label\n1,cat\n\xff\xfe,dog\n",
}


@pytest.mark.parametrize(
    "name",
    ["t.csv", "t.jsonl", "t.parquet"],
)
def test_read_error_names_the_table_not_internals(repo: dsv.Repo, repo_dir: Path, name: str) -> None:
    """The message speaks of the dataset path and side, not of dsv's temporary object files or its SQL."""
    two_versions(repo, repo_dir, {"keep.txt": "k"}, {name: BROKEN[name]})
    with pytest.raises(DsvError) as ei:
        repo.semantic_diff("HEAD~1", "HEAD", declaration=table_decl(name))
    msg = ei.value.message
    assert msg.startswith(f"cannot read {name} at HEAD:"), msg
    assert str(repo_dir)[:15] not in msg and "/.dsv/" not in msg and "semantic-" not in msg, msg
    assert "CREATE TEMP VIEW" not in msg and "LINE 1:" not in msg, msg


def test_csv_error_suggests_no_duckdb_options(repo: dsv.Repo, repo_dir: Path) -> None:
    two_versions(repo, repo_dir, {"keep.txt": "k"}, {"t.csv": BROKEN["t.csv"]})
    with pytest.raises(DsvError) as ei:
        repo.semantic_diff("HEAD~1", "HEAD", declaration=table_decl("t.csv"))
    assert "ignore_errors" not in ei.value.message and "Possible Solution" not in ei.value.message


def test_broken_jsonl_line(repo: dsv.Repo, repo_dir: Path) -> None:
    good = '{"id": 1, "label": "cat"}\n{"id": 2, "label": "dog"}\n'
    bad = '{"id": 1, "label": "cat"}\n{"id": 2, "label": \n{"id": 3, "label": "dog"}\n'
    two_versions(repo, repo_dir, {"t.jsonl": good}, {"t.jsonl": bad})
    proc = run_dsv("diff", "HEAD~1", "HEAD", "--table", "t.jsonl", "--key", "id", "--label", "label", cwd=repo_dir)
    line = assert_one_line_error(proc, "t.jsonl", "HEAD")
    assert "line" in line.lower()


def test_bad_csv_encoding_has_line_detail(repo: dsv.Repo, repo_dir: Path) -> None:
    two_versions(repo, repo_dir, {"t.csv": "id,label\n1,cat\n"}, {"t.csv": b"id,label\n1,cat\n\xff\xfe,dog\n"})
    proc = run_dsv("diff", "HEAD~1", "HEAD", "--table", "t.csv", "--key", "id", "--label", "label", cwd=repo_dir)
    line = assert_one_line_error(proc, "t.csv")
    assert "line 3:" in line


def test_ragged_csv_row_names_the_line(repo: dsv.Repo, repo_dir: Path) -> None:
    two_versions(repo, repo_dir, {"t.csv": "id,label\n1,cat\n"}, {"t.csv": "id,label\n1,cat\n2,dog,extra\n3,cat\n"})
    proc = run_dsv("diff", "HEAD~1", "HEAD", "--table", "t.csv", "--key", "id", "--label", "label", cwd=repo_dir)
    line = assert_one_line_error(proc, "t.csv", "HEAD")
    assert "line 3:" in line and "2,dog,extra" in line and "has no column" not in line


def test_jsonl_all_rows_removed(repo: dsv.Repo, repo_dir: Path) -> None:
    two_versions(repo, repo_dir, {"t.jsonl": '{"id": 1, "label": "cat"}\n{"id": 2, "label": "dog"}\n'}, {"t.jsonl": b""})
    src = one(repo, table_decl("t.jsonl"))
    assert (src.totals.before, src.totals.after, src.totals.removed) == (2, 0, 2)


# -- 6. multi-label ------------------------------------------------------------------------


def _ml(ids: list[int], tags: list[list[str] | None], p: list[int]) -> bytes:
    t = pa.table({"id": pa.array(ids, pa.int64()), "tags": pa.array(tags, pa.list_(pa.string())), "p": pa.array(p, pa.int64())})
    sink = io.BytesIO()
    pq.write_table(t, sink)
    return sink.getvalue()


def test_multilabel_counts(repo: dsv.Repo, repo_dir: Path) -> None:
    a = _ml([1, 2, 3, 4, 6], [["cat"], ["cat", "dog"], ["cat"], ["bird"], ["cat", "dog"]], [1, 2, 3, 4, 5])
    b = _ml([1, 2, 3, 5, 6], [["dog", "cat"], ["bird"], ["cat"], ["dog"], ["dog", "cat"]], [1, 2, 3, 4, 9])
    two_versions(repo, repo_dir, {"t.parquet": a}, {"t.parquet": b})
    src = one(repo, table_decl("t.parquet", label="tags"), rows=0)
    # 1: +dog (relabel), 2: {cat,dog}->{bird} (relabel), 3: same, 4 removed, 5 added, 6: same set reordered + payload change.
    assert src.totals.to_dict() == {"before": 5, "after": 5, "added": 1, "removed": 1, "relabeled": 2, "modified": 1, "unchanged": 1, "moved": 0}
    classes = {c.cls: (c.before, c.after, c.added, c.removed, c.relabeled_in, c.relabeled_out, c.modified) for c in src.classes}
    assert classes == {
        "cat": (4, 3, 0, 0, 0, 1, 1),
        "dog": (2, 3, 1, 0, 1, 1, 1),
        "bird": (1, 1, 0, 1, 1, 0, 0),
    }
    assert {(r.src, r.dst): r.count for r in src.relabels} == {(None, "dog"): 1, ("cat", "bird"): 1, ("dog", "bird"): 1}


def test_multilabel_empty_and_null_sets(repo: dsv.Repo, repo_dir: Path) -> None:
    a = _ml([1, 2, 3], [["cat"], [], None], [1, 2, 3])
    b = _ml([1, 2, 3], [["cat"], [], None], [1, 2, 4])
    two_versions(repo, repo_dir, {"t.parquet": a}, {"t.parquet": b})
    src = one(repo, table_decl("t.parquet", label="tags"), rows=0)
    assert src.totals.relabeled == 0 and src.totals.modified == 1 and src.totals.unchanged == 2
    assert sum(c.before for c in src.classes) == 3 and sum(c.after for c in src.classes) == 3
    assert all(c.relabeled_in == c.relabeled_out == 0 for c in src.classes)
    assert sum(c.modified for c in src.classes) == 1


# -- 7. unchanged source is not read --------------------------------------------------------


def test_unchanged_table_is_not_read(repo: dsv.Repo, repo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dsv.semantic import tables

    two_versions(repo, repo_dir, {"t.csv": "id,label\n1,cat\n", "img/a.jpg": "a"}, {"img/a.jpg": "b"})

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("load_table called for an unchanged table")

    monkeypatch.setattr(tables, "load_table", boom)
    d = repo.semantic_diff("HEAD~1", "HEAD", declaration=table_decl("t.csv"))
    src = d.sources[0]
    assert src.read is False and not src.changed
    assert d.files["modified"] == 1 and d.changed
    # Working tree side too.
    d2 = repo.semantic_diff("HEAD", None, declaration=table_decl("t.csv"))
    assert d2.sources[0].read is False
    # And a changed table does hit the reader (the patch is effective).
    (repo_dir / "t.csv").write_text("id,label\n1,dog\n")
    with pytest.raises(AssertionError, match="load_table called"):
        repo.semantic_diff("HEAD", None, declaration=table_decl("t.csv"))


# -- 8. folder sources ---------------------------------------------------------------------


def test_folder_move_is_relabel_and_same_name_stays_distinct(repo: dsv.Repo, repo_dir: Path) -> None:
    a = {"img/cat/a.jpg": "AAA", "img/cat/1.jpg": "cat one", "img/dog/b.jpg": "BBB"}
    b = {"img/dog/a.jpg": "AAA", "img/dog/1.jpg": "dog one"}
    two_versions(repo, repo_dir, a, b, remove=("img/cat/a.jpg",))
    d = repo.semantic_diff("HEAD~1", "HEAD", declaration=Declaration(folders=[FolderSource(pattern="img/{label}/*")]))
    src = d.sources[0]
    assert src.kind == "folder" and src.read
    assert src.totals.to_dict() == {"before": 3, "after": 4, "added": 1, "removed": 0, "relabeled": 1, "modified": 0, "unchanged": 2, "moved": 0}
    assert [(r.src, r.dst, r.count) for r in src.relabels] == [("cat", "dog", 1)]
    classes = {c.cls: (c.before, c.after, c.added, c.removed, c.relabeled_in, c.relabeled_out, c.modified) for c in src.classes}
    assert classes == {"cat": (2, 1, 0, 0, 0, 1, 0), "dog": (1, 3, 1, 0, 1, 0, 0)}


def test_folder_move_between_splits(repo: dsv.Repo, repo_dir: Path) -> None:
    a = {"train/cat/x.jpg": "XX", "train/cat/y.jpg": "YY", "val/dog/z.jpg": "ZZ"}
    two_versions(repo, repo_dir, a, {"val/cat/x.jpg": "XX"}, remove=("train/cat/x.jpg",))
    d = repo.semantic_diff("HEAD~1", "HEAD", declaration=Declaration(folders=[FolderSource(pattern="{split}/{label}/*")]))
    src = d.sources[0]
    t = src.totals
    # The same sample, moved to another split: a slice move, neither modified nor unchanged.
    assert (t.added, t.removed, t.relabeled, t.modified, t.moved, t.unchanged) == (0, 0, 0, 0, 1, 2)
    slices = {(s.column, s.value): (s.before, s.after, s.added, s.removed, s.moved_in, s.moved_out) for s in src.slices}
    assert slices == {("split", "train"): (2, 1, 0, 0, 0, 1), ("split", "val"): (1, 2, 0, 0, 1, 0)}
    assert src.relabels == ()


def test_folder_from_dsv_toml_worktree(repo: dsv.Repo, repo_dir: Path) -> None:
    """The declaration comes from dsv.toml on the newer side (here the working tree)."""
    write_tree(repo_dir, {"dsv.toml": '[[folders]]\npattern = "img/{label}/*"\n', "img/cat/a.jpg": "A"})
    repo.commit("A")
    (repo_dir / "img/cat/a.jpg").rename(repo_dir / "img/cat/b.jpg")
    write_tree(repo_dir, {"img/dog/c.jpg": "C"})
    d = repo.semantic_diff()
    t = d.sources[0].totals
    # A rename inside a class: same sample moved, not removed + added.
    assert (t.before, t.after, t.added, t.removed, t.relabeled, t.unchanged) == (1, 2, 1, 0, 0, 1)


# -- 9. --exit-code -------------------------------------------------------------------------


def test_exit_code(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"t.csv": "id,label,note\n1,cat,a\n2,dog,b\n"})
    repo.commit("A")
    repo.commit("same", allow_empty=True)
    write_tree(repo_dir, {"t.csv": "id,label,note\n1,cat,a\n2,dog,c\n"})
    repo.commit("cell")
    flags = ("--table", "t.csv", "--key", "id", "--label", "label")
    same = run_dsv("diff", "HEAD~2", "HEAD~1", "--exit-code", *flags, cwd=repo_dir)
    assert same.returncode == 0, same.stderr
    changed = run_dsv("diff", "HEAD~1", "HEAD", "--exit-code", *flags, "--format", "json", cwd=repo_dir)
    assert changed.returncode == 1, changed.stderr
    doc = json.loads(changed.stdout)
    assert doc["sources"][0]["totals"]["modified"] == 1 and doc["sources"][0]["totals"]["relabeled"] == 0
    # Without --exit-code a difference is still success.
    assert run_dsv("diff", "HEAD~1", "HEAD", *flags, cwd=repo_dir).returncode == 0
    # Clean working tree against HEAD.
    assert run_dsv("diff", "--exit-code", *flags, cwd=repo_dir).returncode == 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
