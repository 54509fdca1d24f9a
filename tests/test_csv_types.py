"""Column types across versions: one value never changes how other values read (issue 8, item 1).

Each example is one of the reported cases or a generalisation of it: a value added
in one version must not turn unchanged rows into relabels, modifications or slice
moves; labels and slice values read as the file writes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dsv
from dsv.semantic.declaration import Declaration, TableSource
from dsv.semantic.report import SourceDiff

from conftest import run_dsv, write_tree


def _two(repo: dsv.Repo, root: Path, a: dict, b: dict) -> None:
    write_tree(root, a)
    repo.commit("a")
    write_tree(root, b)
    repo.commit("b")


def _diff(repo: dsv.Repo, path: str, *, label: str = "label", slices: tuple[str, ...] = (), types: dict | None = None, rows: int | None = None) -> SourceDiff:
    decl = Declaration(tables=[TableSource(path=path, key=["id"], label=label, slices=list(slices), types=types or {})])
    d = repo.semantic_diff("HEAD~1", "HEAD", declaration=decl, rows=rows)
    return d.sources[0]


def _classes(src: SourceDiff) -> dict:
    return {c.cls: (c.before, c.after) for c in src.classes}


def _totals(src: SourceDiff) -> tuple:
    t = src.totals
    return (t.added, t.removed, t.relabeled, t.modified, t.unchanged)


# -- the four reported cases ------------------------------------------------------------


def test_bool_labels_stay_as_written_when_a_new_value_appears(repo: dsv.Repo, repo_dir: Path) -> None:
    a = "id,is_fraud\n1,True\n2,False\n3,True\n"
    _two(repo, repo_dir, {"t.csv": a}, {"t.csv": a + "4,unknown\n"})
    src = _diff(repo, "t.csv", label="is_fraud")
    assert _totals(src) == (1, 0, 0, 0, 3)
    assert src.relabels == ()
    assert _classes(src) == {"False": (1, 1), "True": (2, 2), "unknown": (0, 1)}


def test_float_labels_stay_as_written_when_a_new_value_appears(repo: dsv.Repo, repo_dir: Path) -> None:
    a = "id,label\n1,1.0\n2,2.0\n3,3.0\n"
    _two(repo, repo_dir, {"t.csv": a}, {"t.csv": a + "4,unknown\n"})
    src = _diff(repo, "t.csv")
    assert _totals(src) == (1, 0, 0, 0, 3)
    assert _classes(src) == {"1.0": (1, 1), "2.0": (1, 1), "3.0": (1, 1), "unknown": (0, 1)}


def test_flag_slice_and_score_keep_their_reading(repo: dsv.Repo, repo_dir: Path) -> None:
    a = "id,label,flag,score\n1,cat,T,0.50\n2,dog,F,0.25\n3,cat,T,1.00\n"
    _two(repo, repo_dir, {"t.csv": a}, {"t.csv": a + "4,dog,unknown,n/a\n"})
    src = _diff(repo, "t.csv", slices=("flag",), rows=None)
    assert _totals(src) == (1, 0, 0, 0, 3)
    assert src.cells == ()  # 0.50 is still 0.50, T still T
    assert {(s.value, s.before, s.after) for s in src.slices} == {("T", 2, 2), ("F", 1, 1), ("unknown", 0, 1)}
    # The type change is still reported in the schema section.
    schema = {(c.column, c.change, c.old_type, c.new_type) for c in src.schema}
    assert schema == {("flag", "type_changed", "BOOLEAN", "VARCHAR"), ("score", "type_changed", "DOUBLE", "VARCHAR")}


def test_cell_comparison_and_slice_grouping_agree(repo: dsv.Repo, repo_dir: Path) -> None:
    a = "id,label,fold\n1,cat,1.0\n2,dog,2.0\n3,cat,3.0\n"
    _two(repo, repo_dir, {"t.csv": a}, {"t.csv": a + "4,dog,holdout\n"})
    src = _diff(repo, "t.csv", slices=("fold",), rows=None)
    assert _totals(src) == (1, 0, 0, 0, 3)
    slices = {s.value: (s.before, s.after) for s in src.slices}
    assert slices == {"1.0": (1, 1), "2.0": (1, 1), "3.0": (1, 1), "holdout": (0, 1)}


# -- generalisations --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["T", "True", "true", "1.0", "0.50", "007", "1e3", "yes", "2020-01-01"])
def test_labels_and_slices_read_as_written(repo: dsv.Repo, repo_dir: Path, value: str) -> None:
    """From nothing to one version: every label and slice value is the file's text."""
    write_tree(repo_dir, {"keep": "k"})
    repo.commit("empty")
    write_tree(repo_dir, {"t.csv": f"id,label,split\n1,{value},{value}\n"})
    repo.commit("one row")
    src = _diff(repo, "t.csv", slices=("split",))
    assert [c.cls for c in src.classes] == [value]
    assert [s.value for s in src.slices] == [value]


def test_numbers_written_differently_are_equal_when_the_column_is_numeric(repo: dsv.Repo, repo_dir: Path) -> None:
    """A column that holds numbers in both versions compares as numbers: 0.5 == 0.50, 5 == 5.0."""
    _two(repo, repo_dir, {"t.csv": "id,label,s,n\n1,a,0.5,5\n2,b,1.5,6\n"}, {"t.csv": "id,label,s,n\n1,a,0.50,5.0\n2,b,1.25,6\n"})
    src = _diff(repo, "t.csv", rows=None)
    assert _totals(src) == (0, 0, 0, 1, 1)
    assert [(c.key, c.column, c.old, c.new) for c in src.cells] == [({"id": 2}, "s", 1.5, 1.25)]


def test_a_column_holding_text_in_either_version_compares_as_written(repo: dsv.Repo, repo_dir: Path) -> None:
    a = "id,label,s\n1,a,0.5\n2,b,6\n3,c,7\n"
    b = "id,label,s\n1,a,0.50\n2,b,n/a\n3,c,7\n"
    _two(repo, repo_dir, {"t.csv": a}, {"t.csv": b})
    src = _diff(repo, "t.csv", rows=None)
    # Row 3 (written 7 both times) is unchanged whatever the other rows hold.
    assert {(c.key["id"], c.old, c.new) for c in src.cells} == {(1, "0.5", "0.50"), (2, "6", "n/a")}
    assert _totals(src) == (0, 0, 0, 2, 1)


def test_bool_columns_compare_as_booleans_only_when_boolean_on_both_sides(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"t.csv": "id,label,f\n1,a,T\n2,b,F\n"}, {"t.csv": "id,label,f\n1,a,true\n2,b,true\n"})
    src = _diff(repo, "t.csv", rows=None)
    assert [(c.key["id"], c.old, c.new) for c in src.cells] == [(2, False, True)]


def test_keys_match_as_written(repo: dsv.Repo, repo_dir: Path) -> None:
    """An id column that gains a non-number still matches the old rows; cells show ints where both sides are ints."""
    _two(repo, repo_dir, {"t.csv": "id,label\n1,a\n2,b\n"}, {"t.csv": "id,label\n1,a\n2,c\nx9,d\n"})
    src = _diff(repo, "t.csv", rows=None)
    assert _totals(src) == (1, 0, 1, 0, 1)
    assert [c.key for c in src.cells] == [{"id": "2"}]
    _two(repo, repo_dir, {"t.csv": "id,label\n1,a\n2,b\n"}, {"t.csv": "id,label\n1,a\n2,c\n"})
    assert [c.key for c in _diff(repo, "t.csv", rows=None).cells] == [{"id": 2}]


def test_tsv_and_gzip_read_the_same_way(repo: dsv.Repo, repo_dir: Path) -> None:
    import gzip

    a = "id\tlabel\tscore\n1\tT\t0.50\n2\tF\t1\n"
    b = a + "3\tunknown\tn/a\n"
    _two(repo, repo_dir, {"t.tsv.gz": gzip.compress(a.encode())}, {"t.tsv.gz": gzip.compress(b.encode())})
    src = _diff(repo, "t.tsv.gz")
    assert _totals(src) == (1, 0, 0, 0, 2)
    assert _classes(src) == {"F": (1, 1), "T": (1, 1), "unknown": (0, 1)}


# -- JSONL: types are explicit, and still one reading across versions -------------------


def test_jsonl_numbers_keep_their_reading_when_a_string_appears(repo: dsv.Repo, repo_dir: Path) -> None:
    a = '{"id": 1, "label": 1.0, "s": 0.5, "fold": 2.0}\n{"id": 2, "label": 2.0, "s": 1, "fold": 1.0}\n'
    b = a + '{"id": 3, "label": "unknown", "s": "n/a", "fold": "holdout"}\n'
    _two(repo, repo_dir, {"t.jsonl": a}, {"t.jsonl": b})
    src = _diff(repo, "t.jsonl", slices=("fold",), rows=None)
    assert _totals(src) == (1, 0, 0, 0, 2)
    assert src.cells == ()
    # A JSON number is a number: whole floats print as integers, as for Parquet.
    assert _classes(src) == {"1": (1, 1), "2": (1, 1), "unknown": (0, 1)}
    assert {s.value: (s.before, s.after) for s in src.slices} == {"1": (1, 1), "2": (1, 1), "holdout": (0, 1)}


def test_jsonl_strings_are_not_quoted_when_the_column_mixes_types(repo: dsv.Repo, repo_dir: Path) -> None:
    a = '{"id": 1, "label": "cat"}\n{"id": 2, "label": "dog"}\n'
    b = '{"id": 1, "label": "cat"}\n{"id": 2, "label": 7}\n'
    _two(repo, repo_dir, {"t.jsonl": a}, {"t.jsonl": b})
    src = _diff(repo, "t.jsonl")
    assert [(r.src, r.dst) for r in src.relabels] == [("dog", "7")]
    assert _classes(src) == {"7": (0, 1), "cat": (1, 1), "dog": (1, 0)}


def test_jsonl_multilabel_in_a_mixed_column(repo: dsv.Repo, repo_dir: Path) -> None:
    a = '{"id": 1, "tags": ["cat"]}\n{"id": 2, "tags": ["dog", "cat"]}\n'
    b = '{"id": 1, "tags": "cat"}\n{"id": 2, "tags": ["cat", "dog"]}\n{"id": 3, "tags": null}\n'
    _two(repo, repo_dir, {"t.jsonl": a}, {"t.jsonl": b})
    src = _diff(repo, "t.jsonl", label="tags")
    assert _totals(src) == (1, 0, 0, 0, 2)
    assert _classes(src) == {"cat": (2, 2), "dog": (1, 1), None: (0, 1)}


# -- declared types ---------------------------------------------------------------------


def test_declared_number_type_makes_1_and_1_0_one_class(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"t.csv": "id,label\n1,1\n2,2\n"}, {"t.csv": "id,label\n1,1.0\n2,2.0\n3,\n"})
    src = _diff(repo, "t.csv", types={"label": "number"})
    assert _totals(src) == (1, 0, 0, 0, 2)
    assert _classes(src) == {"1": (1, 1), "2": (1, 1), None: (0, 1)}
    # Without the declaration the file's text decides: 1 -> 1.0 is a relabel.
    assert _diff(repo, "t.csv").totals.relabeled == 2


def test_declared_string_type_compares_numbers_as_written(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"t.csv": "id,label,s\n1,a,0.5\n2,b,6\n"}, {"t.csv": "id,label,s\n1,a,0.50\n2,b,6\n"})
    assert _diff(repo, "t.csv").totals.modified == 0
    src = _diff(repo, "t.csv", types={"s": "string"}, rows=None)
    assert src.totals.modified == 1 and [(c.old, c.new) for c in src.cells] == [("0.5", "0.50")]


def test_declared_integer_type_does_not_round(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"t.csv": "id,label,n\n1,a,2\n2,b,01\n"}, {"t.csv": "id,label,n\n1,a,1.5\n2,b,1\n"})
    src = _diff(repo, "t.csv", types={"n": "integer"}, rows=None)
    # 1.5 is no integer: compared as written (a change); 01 and 1 are the same integer.
    assert [(c.key["id"], c.old, c.new) for c in src.cells] == [(1, 2, "1.5")]


def test_types_in_dsv_toml(repo: dsv.Repo, repo_dir: Path) -> None:
    toml = '[[tables]]\npath = "t.csv"\nkey = "id"\nlabel = "label"\ntypes = { label = "number" }\n'
    _two(repo, repo_dir, {"t.csv": "id,label\n1,1\n", "dsv.toml": toml}, {"t.csv": "id,label\n1,1.0\n"})
    d = repo.semantic_diff("HEAD~1", "HEAD")
    assert d.sources[0].totals.relabeled == 0
    bad = toml.replace('"number"', '"float"')
    write_tree(repo_dir, {"dsv.toml": bad})
    proc = run_dsv("diff", cwd=repo_dir)
    err = proc.stderr.decode()
    assert proc.returncode == 3 and "tables.0.types.label" in err and "string, integer, number, boolean" in err, err
    assert "Input should be" not in err and "Value error" not in err


# -- warnings ---------------------------------------------------------------------------


def test_type_change_of_a_label_or_slice_column_warns_on_stderr(repo: dsv.Repo, repo_dir: Path) -> None:
    a = "id,label,flag,score\n1,1.0,T,0.5\n2,2.0,F,0.25\n"
    _two(repo, repo_dir, {"t.csv": a}, {"t.csv": a + "3,unknown,unknown,n/a\n"})
    proc = run_dsv("diff", "HEAD~1", "HEAD", "--table", "t.csv", "--key", "id", "--label", "label", "--slice", "flag", cwd=repo_dir, check=True)
    err = proc.stderr.decode().splitlines()
    assert all(line.startswith("dsv: warning: ") for line in err), err
    assert any("'label'" in line and "DOUBLE" in line and "VARCHAR" in line for line in err), err
    assert any("'flag'" in line and "BOOLEAN" in line for line in err), err
    assert not any("'score'" in line for line in err), err  # a payload column: the schema section says it
    assert "warning" not in proc.stdout.decode()
    js = json.loads(run_dsv("diff", "HEAD~1", "HEAD", "--table", "t.csv", "--key", "id", "--label", "label", "--slice", "flag", "--json", cwd=repo_dir, check=True).stdout)
    assert len(js["warnings"]) == 2


def test_jsonl_objects_keep_their_reading_when_the_column_mixes_types(repo: dsv.Repo, repo_dir: Path) -> None:
    a = '{"id": 1, "label": "a", "m": {"x": 1, "y": [1, 2]}}\n{"id": 2, "label": "b", "m": {"x": 1, "y": []}}\n'
    b = '{"id": 1, "label": "a", "m": {"x": 1, "y": [1, 2]}}\n{"id": 2, "label": "b", "m": "none"}\n'
    _two(repo, repo_dir, {"t.jsonl": a}, {"t.jsonl": b})
    src = _diff(repo, "t.jsonl", rows=None)
    assert _totals(src) == (0, 0, 0, 1, 1)
    assert [(c.key["id"], c.old, c.new) for c in src.cells] == [(2, {"x": 1, "y": []}, "none")]


# -- keys: exact, and shown as written (issue 8b, item 3) ---------------------------------


def test_keys_show_as_written_when_one_version_has_decimals(repo: dsv.Repo, repo_dir: Path) -> None:
    """A has ids 1, 2; B has 1 and 2.5: the id reads DOUBLE there, but key 1 is shown 1, never 1.0."""
    _two(repo, repo_dir, {"t.csv": "id,label\n1,a\n2,a\n"}, {"t.csv": "id,label\n1,b\n2.5,a\n"})
    src = _diff(repo, "t.csv", rows=None)
    assert _totals(src) == (1, 1, 1, 0, 0)
    assert [(c.key, c.old, c.new) for c in src.cells] == [({"id": "1"}, "a", "b")]
    out = run_dsv("diff", "HEAD~1", "HEAD", "--table", "t.csv", "--key", "id", "--label", "label", "--rows", cwd=repo_dir).stdout.decode()
    assert "id=1 " in out and "id=1.0" not in out, out


def test_large_keys_never_go_through_a_double(repo: dsv.Repo, repo_dir: Path) -> None:
    """9007199254740993 and ...992 are one double: as keys they stay two samples, shown exactly."""
    a = "id,label\n9007199254740993,a\n9007199254740992,a\n2,a\n"
    _two(repo, repo_dir, {"t.csv": a}, {"t.csv": "id,label\n9007199254740993,b\n9007199254740992,c\n2.5,a\n"})
    src = _diff(repo, "t.csv", rows=None)
    assert [(c.key, c.new) for c in src.cells] == [({"id": "9007199254740992"}, "c"), ({"id": "9007199254740993"}, "b")]
    # Integers in both versions: JSON integers, exact, in numeric order.
    _two(repo, repo_dir, {"t.csv": a}, {"t.csv": "id,label\n9007199254740993,b\n9007199254740992,c\n10,a\n"})
    src = _diff(repo, "t.csv", rows=None)
    assert [(c.key, c.new) for c in src.cells] == [({"id": 9007199254740992}, "c"), ({"id": 9007199254740993}, "b")]
    js = json.loads(run_dsv("diff", "HEAD~1", "HEAD", "--table", "t.csv", "--key", "id", "--label", "label", "--rows", "--json", cwd=repo_dir).stdout)
    assert [c["key"]["id"] for c in js["sources"][0]["rows"]["cells"]] == [9007199254740992, 9007199254740993]


def test_numbers_compare_exactly(repo: dsv.Repo, repo_dir: Path) -> None:
    """A numeric payload column compares written decimals exactly: ...993 is not ...992.0."""
    a = "id,label,n\n1,a,9007199254740993\n2,a,0.1\n3,a,5\n"
    b = "id,label,n\n1,a,9007199254740992.0\n2,a,0.10\n3,a,5.00\n"
    _two(repo, repo_dir, {"t.csv": a}, {"t.csv": b})
    src = _diff(repo, "t.csv", rows=None)
    assert [(c.key, c.old, c.new) for c in src.cells] == [({"id": 1}, 9007199254740993, 9007199254740992)]


def test_declared_number_keys_match_exactly(repo: dsv.Repo, repo_dir: Path) -> None:
    """Declared number: 2, 2.0 and +2.00 are one key; 9007199254740993 and ...992 stay two."""
    a = "id,label\n2,a\n0.5,a\n9007199254740993,a\n9007199254740992,a\n"
    b = "id,label\n+2.00,b\n0.50,a\n9007199254740993.0,c\n9007199254740992,a\n"
    _two(repo, repo_dir, {"t.csv": a}, {"t.csv": b})
    src = _diff(repo, "t.csv", types={"id": "number"}, rows=None)
    assert _totals(src) == (0, 0, 2, 0, 2)
    assert [(c.key, c.new) for c in src.cells] == [({"id": "2"}, "b"), ({"id": "9007199254740993"}, "c")]
    # Undeclared, keys match as written: 2 and +2.00 are two samples.
    assert _diff(repo, "t.csv").totals.added == 3


# -- a declared integer reads integer-valued decimals (issue 8b, item 4) -------------------


def test_declared_integer_reads_whole_decimals_as_integers(repo: dsv.Repo, repo_dir: Path) -> None:
    """types = { label = "integer" }: 1.0 and 2.00 are 1 and 2 for labels, slices and keys."""
    a = "id,label,fold\n1,1,1\n2,2,2\n3,3,3\n"
    b = "id,label,fold\n1.0,1.0,1.0\n2,2.00,3\n3.00,3,3\n"
    _two(repo, repo_dir, {"t.csv": a}, {"t.csv": b})
    src = _diff(repo, "t.csv", slices=("fold",), types={"id": "integer", "label": "integer", "fold": "integer"}, rows=None)
    assert _totals(src) == (0, 0, 0, 0, 2)
    assert src.relabels == ()
    assert _classes(src) == {"1": (1, 1), "2": (1, 1), "3": (1, 1)}
    assert [(c.key, c.column, c.old, c.new) for c in src.cells] == [({"id": 2}, "fold", "2", "3")]
    assert src.warnings == ()


def test_declared_integer_warns_about_a_value_that_is_no_integer(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"t.csv": "id,label\n1,1\n2,2\n"}, {"t.csv": "id,label\n1,1.0\n2,1.5\n"})
    src = _diff(repo, "t.csv", types={"label": "integer"})
    assert [(r.src, r.dst) for r in src.relabels] == [("2", "1.5")]
    assert len(src.warnings) == 1 and "'label'" in src.warnings[0] and "1.5" in src.warnings[0] and "integer" in src.warnings[0], src.warnings
    proc = run_dsv("diff", "HEAD~1", "HEAD", cwd=repo_dir)  # no dsv.toml: no declared type, no warning
    assert "integer" not in proc.stderr.decode()


# -- --rows lists the cells of a label or slice column that one version lacks (issue 8b, item 5)


def test_rows_list_a_slice_column_new_in_b_as_null_to_value(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"t.csv": "id,label\n1,a\n2,b\n"}, {"t.csv": "id,label,split\n1,a,train\n2,b,val\n"})
    src = _diff(repo, "t.csv", slices=("split",), rows=None)
    assert src.totals.moved == 2
    assert [(c.key, c.column, c.old, c.new) for c in src.cells] == [({"id": 1}, "split", None, "train"), ({"id": 2}, "split", None, "val")]


def test_rows_list_a_label_column_new_or_dropped(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"t.csv": "id,x\n1,p\n2,q\n"}, {"t.csv": "id,x,label\n1,p,cat\n2,q,\n"})
    src = _diff(repo, "t.csv", rows=None)
    assert src.totals.relabeled == 1
    assert [(c.key, c.column, c.old, c.new) for c in src.cells] == [({"id": 1}, "label", None, "cat")]
    write_tree(repo_dir, {"t.csv": "id,x\n1,p\n2,q\n"})
    repo.commit("dropped")
    assert [(c.column, c.old, c.new) for c in _diff(repo, "t.csv", rows=None).cells] == [("label", "cat", None)]


def test_rows_list_a_multilabel_column_new_in_b(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"t.jsonl": '{"id": 1}\n'}, {"t.jsonl": '{"id": 1, "tags": ["a", "b"]}\n'})
    src = _diff(repo, "t.jsonl", label="tags", rows=None)
    assert src.totals.relabeled == 1
    assert [(c.column, c.old, c.new) for c in src.cells] == [("tags", None, ["a", "b"])]


def test_rows_list_a_file_column_new_in_b(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"t.csv": "id,label\n1,a\n", "img/1.png": "x"}, {"t.csv": "id,label,path\n1,a,img/1.png\n"})
    decl = Declaration(tables=[TableSource(path="t.csv", key=["id"], label="label", file="path")])
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=decl, rows=None).sources[0]
    assert src.totals.modified == 1
    assert [(c.column, c.old, c.new) for c in src.cells] == [("path", None, "img/1.png")]
