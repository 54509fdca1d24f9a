"""CSV (and JSONL) columns mixing booleans, integers, floats and text across versions, against independent models.

The model reads both versions with pandas as text (``dtype=str``: every cell as
written) and applies the documented rules (docs/diff-format.md, "Column types")
in plain Python: keys, labels and slice values are the text as written; any other
cell compares as a value of the type that reads its column in both versions (the
same type on both sides, a number when both sides hold numbers, else text). The
old per-version type guessing fails these examples: one new value changed how
every old value of its column read.

The files are RFC 4180 (Python's ``csv`` writer: quotes doubled), with values
holding single quotes, backslashes, double quotes and commas, and lines ending
LF, CRLF or a mix of both within a file: the dialect is fixed (never sniffed per
version), so ``'a'`` stays ``'a'`` whatever another version holds. Numbers
compare exactly (``9007199254740993`` is not ``9007199254740992``), and keys show
as written: a JSON integer where the key column holds integers in both versions,
else the text.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsv
from dsv.semantic.declaration import Declaration, TableSource
from dsv.semantic.report import SourceDiff

from conftest import write_tree

COLUMNS = ["id", "label", "split", "p", "q"]
PAYLOAD = ["p", "q"]

# Pools a column draws its values from; a version may draw from another pool than the other.
POOLS = {
    "bool": ["True", "False", "true", "false", "T", "F", ""],
    "int": ["0", "1", "2", "10", "007", "9007199254740993", "9007199254740992", ""],
    "float": ["1", "1.0", "0.50", "0.5", "2.5", "10", "9007199254740993", "9007199254740992.0", ""],
    "text": ["unknown", "n/a", "x", "1.0", "T", ""],
    "mixed": ["True", "T", "1", "1.0", "0.50", "unknown", "n/a", ""],
    # What a sniffer would take for another dialect: single quotes, backslash escapes, quoted quotes.
    "quoted": ["'a'", "a", '"c"', 'p"q', "x\\y", 'x\\"y', "'", "a,b", "two\nlines", ""],
}
# Ids: small integers, integers beyond a double's precision, or (added rows only) decimals.
ID_STYLES = ("small", "big", "decimal")
NEWLINES = ("\n", "\r\n", "mixed")

BOOL_WORDS = {"true": True, "false": False, "t": True, "f": False}
SLICE_FIELDS = ("before", "after", "added", "removed", "relabeled", "modified", "moved_in", "moved_out")


@dataclass
class Scenario:
    a: list[dict[str, str]]
    b: list[dict[str, str]]
    newlines: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))


def _id(i: int, style: str, added: bool) -> str:
    if style == "big":
        return str(9007199254740990 + i)
    return f"{i}.5" if style == "decimal" and added else str(i)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    pools_a = {c: draw(st.sampled_from(sorted(POOLS))) for c in COLUMNS[1:]}
    pools_b = {c: draw(st.sampled_from([pools_a[c]] + sorted(POOLS))) for c in COLUMNS[1:]}
    style = draw(st.sampled_from(ID_STYLES))
    n = draw(st.integers(1, 12))
    a = [{"id": _id(i, style, False), **{c: draw(st.sampled_from(POOLS[pools_a[c]])) for c in COLUMNS[1:]}} for i in range(1, n + 1)]
    b = []
    for row in a:
        if draw(st.integers(0, 4)) == 0:
            continue  # removed
        new = dict(row)
        for c in COLUMNS[1:]:
            if draw(st.integers(0, 2)) == 0:
                new[c] = draw(st.sampled_from(POOLS[pools_b[c]]))
        b.append(new)
    for i in range(n + 1, n + 1 + draw(st.integers(0, 4))):
        b.append({"id": _id(i, style, True), **{c: draw(st.sampled_from(POOLS[pools_b[c]])) for c in COLUMNS[1:]}})
    b = list(draw(st.permutations(b)))

    def line_ends(rows: int) -> list[str]:
        how = draw(st.sampled_from(NEWLINES))
        if how != "mixed":
            return [how] * (rows + 1)
        return [draw(st.sampled_from(["\n", "\r\n"])) for _ in range(rows + 1)]

    return Scenario(a, b, (line_ends(len(a)), line_ends(len(b))))


def to_csv(rows: list[dict[str, str]], newlines: list[str] | None = None) -> bytes:
    """RFC 4180 as Python writes it (a quote inside a value doubled); line ``i`` ends with ``newlines[i]``."""
    out = []
    for i, values in enumerate([COLUMNS] + [[r[c] for c in COLUMNS] for r in rows]):
        buf = io.StringIO()
        csv.writer(buf, lineterminator=(newlines or [])[i] if newlines else "\n").writerow(values)
        out.append(buf.getvalue())
    return "".join(out).encode()


# -- the model ---------------------------------------------------------------------------


def read_as_text(data: bytes) -> dict[str, dict[str, str | None]]:
    """pandas, every cell as written; an empty cell is missing."""
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""])
    out: dict[str, dict[str, str | None]] = {}
    for rec in frame.to_dict("records"):
        out[rec["id"]] = {c: (None if pd.isna(rec[c]) else rec[c]) for c in COLUMNS[1:]}
    return out


def column_type(values: list[str | None]) -> str:
    """The type a CSV column reads as on its own."""
    present = [v for v in values if v is not None]
    if not present:
        return "text"
    if all(v.lower() in BOOL_WORDS for v in present):
        return "bool"
    if all(re.fullmatch(r"-?[0-9]+", v) and not (len(v) > 1 and v.startswith("0")) for v in present):
        return "int"
    if all(re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", v) and not re.fullmatch(r"0[0-9]+", v) for v in present):
        return "number"
    return "text"


def common(ta: str, tb: str) -> str:
    if ta == tb:
        return ta
    if {ta, tb} <= {"int", "number"}:
        return "number"
    return "text"


def same(x: str | None, y: str | None, typ: str) -> bool:
    if x == y:
        return True
    if x is None or y is None or typ == "text":
        return False
    if typ == "bool":
        return BOOL_WORDS[x.lower()] == BOOL_WORDS[y.lower()]
    return Decimal(x) == Decimal(y)  # exactly: never through a double


def shown_key(k: str, key_type: str) -> int | str:
    """A key in changed cells: an integer where the column holds integers in both versions, else as written."""
    return int(k) if key_type == "int" else k


def expected(a: dict[str, dict], b: dict[str, dict]) -> dict[str, Any]:
    types = {c: common(column_type([r[c] for r in a.values()]), column_type([r[c] for r in b.values()])) for c in PAYLOAD}
    key_type = common(column_type(list(a)), column_type(list(b)))
    both = [k for k in a if k in b]
    relabeled = {k for k in both if a[k]["label"] != b[k]["label"]}
    payload_changed = {k for k in both if any(not same(a[k][c], b[k][c], types[c]) for c in PAYLOAD)}
    moved = {k for k in both if a[k]["split"] != b[k]["split"]}  # a slice move, not a modification
    modified = payload_changed
    totals = {
        "before": len(a),
        "after": len(b),
        "added": sum(1 for k in b if k not in a),
        "removed": sum(1 for k in a if k not in b),
        "relabeled": len(relabeled),
        "modified": len(modified),
        "unchanged": sum(1 for k in both if k not in relabeled and k not in modified and k not in moved),
        "moved": len(moved),
    }
    classes: dict[Any, Counter[str]] = defaultdict(Counter)
    slices: dict[Any, Counter[str]] = defaultdict(Counter)
    for k, r in a.items():
        classes[r["label"]]["before"] += 1
        slices[r["split"]]["before"] += 1
        if k not in b:
            classes[r["label"]]["removed"] += 1
            slices[r["split"]]["removed"] += 1
        else:
            if k in relabeled:
                classes[r["label"]]["relabeled_out"] += 1
            if k in moved:
                slices[r["split"]]["moved_out"] += 1
    for k, r in b.items():
        classes[r["label"]]["after"] += 1
        slices[r["split"]]["after"] += 1
        if k not in a:
            classes[r["label"]]["added"] += 1
            slices[r["split"]]["added"] += 1
            continue
        if k in relabeled:
            classes[r["label"]]["relabeled_in"] += 1
            slices[r["split"]]["relabeled"] += 1
        if k in modified:
            classes[r["label"]]["modified"] += 1
            slices[r["split"]]["modified"] += 1
        if k in moved:
            slices[r["split"]]["moved_in"] += 1
    cells = {(shown_key(k, key_type), c) for k in both for c in PAYLOAD if not same(a[k][c], b[k][c], types[c])}
    cells |= {(shown_key(k, key_type), c) for k in both for c in ("label", "split") if a[k][c] != b[k][c]}
    fields = ("before", "after", "added", "removed", "relabeled_in", "relabeled_out", "modified")
    return {
        "totals": totals,
        "classes": {c: tuple(v[f] for f in fields) for c, v in classes.items()},
        "relabels": dict(Counter((a[k]["label"], b[k]["label"]) for k in relabeled)),
        "slices": {s: tuple(v[f] for f in SLICE_FIELDS) for s, v in slices.items()},
        "cells": cells,
    }


def observed(src: SourceDiff) -> dict[str, Any]:
    return {
        "totals": src.totals.to_dict(),
        "classes": {c.cls: (c.before, c.after, c.added, c.removed, c.relabeled_in, c.relabeled_out, c.modified) for c in src.classes},
        "relabels": {(r.src, r.dst): r.count for r in src.relabels},
        "slices": {s.value: tuple(getattr(s, f) for f in SLICE_FIELDS) for s in src.slices},
        "cells": {(c.key["id"], c.column) for c in src.cells},
    }


def test_model_reads_like_the_reported_cases() -> None:
    """The model itself on issue 8's examples: nothing but the added row changes."""
    a = read_as_text(b"id,label,split,p,q\n1,T,1.0,0.50,x\n2,F,2.0,1,y\n")
    b = read_as_text(b"id,label,split,p,q\n1,T,1.0,0.50,x\n2,F,2.0,1,y\n3,unknown,holdout,n/a,z\n")
    exp = expected(a, b)
    assert exp["totals"] == {"before": 2, "after": 3, "added": 1, "removed": 0, "relabeled": 0, "modified": 0, "unchanged": 2, "moved": 0}
    assert set(exp["classes"]) == {"T", "F", "unknown"} and set(exp["slices"]) == {"1.0", "2.0", "holdout"}
    assert not same("0.5", "0.50", common("number", "text")) and same("0.5", "0.50", common("number", "int"))
    # The dialect is RFC 4180 for every version: 'a' is written with its quotes, "p""q" is p"q.
    rows = read_as_text(to_csv([{"id": "1", "label": "'a'", "split": 'p"q', "p": "x\\y", "q": "two\nlines"}], ["\r\n", "\n"]))
    assert rows == {"1": {"label": "'a'", "split": 'p"q', "p": "x\\y", "q": "two\nlines"}}
    assert not same("9007199254740993", "9007199254740992.0", "number")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=scenarios())
def test_csv_columns_mixing_types_across_versions(sc: Scenario) -> None:
    data_a, data_b = to_csv(sc.a, sc.newlines[0]), to_csv(sc.b, sc.newlines[1])
    decl = Declaration(tables=[TableSource(path="t.csv", key=["id"], label="label", slices=["split"])])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "d"
        root.mkdir()
        repo = dsv.Repo.init(root)
        write_tree(root, {"t.csv": data_a, "keep": "k"})
        repo.commit("a")
        write_tree(root, {"t.csv": data_b})
        repo.commit("b", allow_empty=True)
        d = repo.semantic_diff("HEAD~1", "HEAD", declaration=decl, rows=None)
    src = d.sources[0]
    if data_a == data_b:
        assert not src.read
        return
    assert observed(src) == expected(read_as_text(data_a), read_as_text(data_b))


# -- JSONL: explicit JSON types, columns mixing them across versions ------------------------

JSON_POOLS: dict[str, list[Any]] = {
    "int": [0, 1, 2, 10, None],
    "float": [1.0, 0.5, 2.5, 3, None],
    "bool": [True, False, None],
    "text": ["unknown", "n/a", "x", "1", "T", None],
    "mixed": [1, 1.0, 0.5, True, "x", "1", None],
}


@dataclass
class JsonScenario:
    a: list[dict[str, Any]]
    b: list[dict[str, Any]]


@st.composite
def json_scenarios(draw: st.DrawFn) -> JsonScenario:
    pools_a = {c: draw(st.sampled_from(sorted(JSON_POOLS))) for c in COLUMNS[1:]}
    pools_b = {c: draw(st.sampled_from([pools_a[c]] + sorted(JSON_POOLS))) for c in COLUMNS[1:]}
    n = draw(st.integers(1, 10))
    a = [{"id": i, **{c: draw(st.sampled_from(JSON_POOLS[pools_a[c]])) for c in COLUMNS[1:]}} for i in range(1, n + 1)]
    b = []
    for row in a:
        if draw(st.integers(0, 4)) == 0:
            continue
        new = dict(row)
        for c in COLUMNS[1:]:
            if draw(st.integers(0, 2)) == 0:
                new[c] = draw(st.sampled_from(JSON_POOLS[pools_b[c]]))
        b.append(new)
    for i in range(n + 1, n + 1 + draw(st.integers(1, 3))):
        b.append({"id": i, **{c: draw(st.sampled_from(JSON_POOLS[pools_b[c]])) for c in COLUMNS[1:]}})
    return JsonScenario(a, b)


def json_type(values: list[Any]) -> str:
    """The type DuckDB's JSON reader gives a column (checked against it for these pools)."""
    present = [v for v in values if v is not None]
    if not present:
        return "null"
    if all(isinstance(v, bool) for v in present):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "number"
    if all(isinstance(v, str) for v in present):
        return "text"
    return "json"


def canonical(v: Any) -> str | None:
    """A JSON value as text: strings as they are, booleans true/false, whole numbers as integers."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v == int(v):
        return str(int(v))
    return str(v)


def json_same(x: Any, y: Any, ta: str, tb: str) -> bool:
    if ta == tb and ta != "json" or {ta, tb} <= {"int", "number"}:
        return x == y  # natively (numbers as numbers)
    return canonical(x) == canonical(y)


def json_expected(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> dict[str, Any]:
    ra, rb = {r["id"]: r for r in a}, {r["id"]: r for r in b}
    types = {c: (json_type([r[c] for r in a]), json_type([r[c] for r in b])) for c in PAYLOAD}
    both = [k for k in ra if k in rb]
    relabeled = {k for k in both if canonical(ra[k]["label"]) != canonical(rb[k]["label"])}
    moved = {k for k in both if canonical(ra[k]["split"]) != canonical(rb[k]["split"])}
    modified = {k for k in both if any(not json_same(ra[k][c], rb[k][c], *types[c]) for c in PAYLOAD)}
    classes: dict[Any, Counter[str]] = defaultdict(Counter)
    for r in a:
        classes[canonical(r["label"])]["before"] += 1
    for r in b:
        classes[canonical(r["label"])]["after"] += 1
    slices: dict[Any, Counter[str]] = defaultdict(Counter)
    for k, r in ra.items():
        slices[canonical(r["split"])]["before"] += 1
        if k in moved:
            slices[canonical(r["split"])]["moved_out"] += 1
    for k, r in rb.items():
        slices[canonical(r["split"])]["after"] += 1
        if k in moved:
            slices[canonical(r["split"])]["moved_in"] += 1
    return {
        "totals": (len(relabeled), len(moved), len(modified), sum(1 for k in both if k not in relabeled | moved | modified)),
        "classes": {c: (v["before"], v["after"]) for c, v in classes.items()},
        "slices": {s: (v["before"], v["after"], v["moved_in"], v["moved_out"]) for s, v in slices.items()},
    }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc=json_scenarios())
def test_jsonl_columns_mixing_types_across_versions(sc: JsonScenario) -> None:
    import json

    def encode(rows: list[dict[str, Any]]) -> bytes:
        return "".join(json.dumps(r) + "\n" for r in rows).encode()

    decl = Declaration(tables=[TableSource(path="t.jsonl", key=["id"], label="label", slices=["split"])])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "d"
        root.mkdir()
        repo = dsv.Repo.init(root)
        write_tree(root, {"t.jsonl": encode(sc.a), "keep": "k"})
        repo.commit("a")
        write_tree(root, {"t.jsonl": encode(sc.b)})
        repo.commit("b", allow_empty=True)
        src = repo.semantic_diff("HEAD~1", "HEAD", declaration=decl, rows=0).sources[0]
    t = src.totals
    got = {
        "totals": (t.relabeled, t.moved, t.modified, t.unchanged),
        "classes": {c.cls: (c.before, c.after) for c in src.classes},
        "slices": {s.value: (s.before, s.after, s.moved_in, s.moved_out) for s in src.slices},
    }
    assert got == json_expected(sc.a, sc.b)
