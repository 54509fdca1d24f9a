"""Semantic-diff regressions found in review: each test names what used to go wrong."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dsv
from dsv.base.errors import DsvError
from dsv.semantic.declaration import Declaration, FolderSource, TableSource

from conftest import run_dsv, write_tree


def _two(repo: dsv.Repo, root: Path, a: dict, b: dict) -> None:
    write_tree(root, a)
    repo.commit("a")
    write_tree(root, b)
    repo.commit("b")


def _table(path: str, **kw) -> Declaration:
    return Declaration(tables=[TableSource(path=path, key=kw.pop("key", ["id"]), label=kw.pop("label", "label"), **kw)])


def test_gzipped_tables_are_read_from_commits(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"a.csv.gz": gzip.compress(b"id,label\n1,a\n2,b\n")}, {"a.csv.gz": gzip.compress(b"id,label\n1,a\n2,c\n")})
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=_table("a.csv.gz")).sources[0]
    assert src.totals.relabeled == 1


def test_a_table_absent_on_both_sides_does_not_stop_a_changelog_step(repo: dsv.Repo, repo_dir: Path) -> None:
    # (A plain diff refuses it since issue 8: a path found in neither version is a mistake.)
    _two(repo, repo_dir, {"other": "1"}, {"other": "2"})
    [step, _] = repo.changelog(declaration=_table("gone.csv"))
    d = step[1]
    assert d.files["modified"] == 1 and d.sources[0].read is False and not d.warnings


def test_a_slice_column_added_later_is_null_before(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"a.csv": "id,label\n1,x\n2,y\n"}, {"a.csv": "id,label,split\n1,x,train\n2,y,val\n"})
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=_table("a.csv", slices=["split"])).sources[0]
    assert {(s.value, s.before, s.after) for s in src.slices} == {("train", 0, 1), ("val", 0, 1), (None, 2, 0)}
    assert [(c.column, c.change) for c in src.schema] == [("split", "added")]


def test_changelog_continues_past_an_old_malformed_declaration(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"a.csv": "id,label\n1,x\n", "dsv.toml": "[[tables]]\npath='a.csv'\nkey='id'\nlable='label'\n"})
    repo.commit("broken toml")
    write_tree(repo_dir, {"a.csv": "id,label\n1,y\n", "dsv.toml": "[[tables]]\npath='a.csv'\nkey='id'\nlabel='label'\n"})
    repo.commit("fixed")
    entries = repo.changelog()
    assert [e.commit.message for e, _ in entries] == ["fixed", "broken toml"]
    assert entries[0][1].sources[0].totals.relabeled == 1
    assert entries[1][1].warnings and "malformed" in entries[1][1].warnings[0]
    with pytest.raises(DsvError):
        repo.semantic_diff("", entries[1][0].id)  # a plain diff still refuses it


def test_scalar_label_becoming_a_list_is_a_set_comparison(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"a.jsonl": '{"id":1,"label":"cat"}\n{"id":2,"label":"dog"}\n'}, {"a.jsonl": '{"id":1,"label":["cat"]}\n{"id":2,"label":["cat","dog"]}\n'})
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=_table("a.jsonl")).sources[0]
    assert src.totals.relabeled == 1 and src.totals.unchanged == 1


def test_int_labels_widened_to_float_keep_their_classes(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"a.csv": "id,label\n1,0\n2,1\n3,1\n"}, {"a.csv": "id,label\n1,0\n2,1\n3,1.5\n"})
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=_table("a.csv")).sources[0]
    assert src.totals.relabeled == 1 and [(r.src, r.dst) for r in src.relabels] == [("1", "1.5")]


def test_empty_keys_are_refused(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"a.csv": "v,f,label\na,1,x\na,,y\n"}, {"a.csv": "v,f,label\na,1,x\na,,z\n"})
    with pytest.raises(DsvError) as exc:
        repo.semantic_diff("HEAD~1", "HEAD", declaration=_table("a.csv", key=["v", "f"]))
    assert "empty key" in str(exc.value)


def test_repeated_classes_in_a_label_list_count_once(repo: dsv.Repo, repo_dir: Path) -> None:
    def parquet(labels: list) -> bytes:
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"id": [1, 2], "labels": pa.array(labels, pa.list_(pa.string()))}), sink)
        return sink.getvalue().to_pybytes()

    _two(repo, repo_dir, {"a.parquet": parquet([["cat", "cat"], ["dog"]])}, {"a.parquet": parquet([["cat"], ["dog"]])})
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=_table("a.parquet", label="labels")).sources[0]
    assert src.totals.relabeled == 0 and {c.cls: c.before for c in src.classes} == {"cat": 1, "dog": 1}


@pytest.mark.parametrize("pattern", ["images/{label}/{oops", "images/{}/{label}/*", "images/{_w0}/{label}/*", "images/{split/{label}/*"])
def test_malformed_folder_patterns_are_refused_cleanly(repo: dsv.Repo, repo_dir: Path, pattern: str) -> None:
    write_tree(repo_dir, {"images/cat/1.png": "1"})
    repo.commit("a")
    proc = run_dsv("diff", "--folder", pattern, cwd=repo_dir)
    assert proc.returncode == 2 and proc.stderr.decode().startswith("dsv: error:") and b"Traceback" not in proc.stderr


def test_double_star_matches_zero_folders(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"images/cat/1.jpg": "1", "images/x/dog/2.jpg": "2"}, {"images/cat/3.jpg": "3"})
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=Declaration(folders=[FolderSource(pattern="images/**/{label}/*")])).sources[0]
    assert {c.cls: (c.before, c.after) for c in src.classes} == {"cat": (1, 2), "dog": (1, 1)}


def test_json_stays_valid_with_nan_and_markdown_with_newlines(repo: dsv.Repo, repo_dir: Path) -> None:
    def parquet(vals: list, notes: list) -> bytes:
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"id": [1, 2], "label": ["a", "b"], "v": vals, "note": notes}), sink)
        return sink.getvalue().to_pybytes()

    _two(repo, repo_dir, {"a.parquet": parquet([1.0, 2.0], ["x", "y"])}, {"a.parquet": parquet([math.nan, math.inf], ["x", "line1\nline2"])})
    args = ["diff", "HEAD~1", "HEAD", "--table", "a.parquet", "--key", "id", "--label", "label", "--rows"]
    out = json.loads(run_dsv(*args, "--json", cwd=repo_dir, check=True).stdout, parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert {c["new"] for c in out["sources"][0]["rows"]["cells"] if c["column"] == "v"} == {"NaN", "Infinity"}
    md = run_dsv(*args, "--format", "md", cwd=repo_dir, check=True).stdout.decode()
    assert "line1\\nline2" in md and all(line.startswith("|") for line in md.splitlines() if "line" in line)


def test_metrics_changelog_knows_classes_of_sources_the_step_did_not_change(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    write_tree(repo_dir, {"a.csv": "id,label\n1,a\n2,b\n", "dsv.toml": "[[tables]]\npath='a.csv'\nkey='id'\nlabel='label'\n"})
    repo.commit("data")
    write_tree(repo_dir, {"README": "docs only"})
    repo.commit("readme")
    (tmp_path / "m.json").write_text('{"classes": {"a": {"f1": 0.9}, "b": {"f1": 0.8}}}')
    repo.add_metrics("HEAD~1", tmp_path / "m.json", name="r1")
    repo.add_metrics("HEAD", tmp_path / "m.json", name="r2")
    [(_, _, comp), _] = repo.metrics_changelog()
    assert all(c.in_data for c in comp.classes) and {c.cls: c.samples_after for c in comp.classes} == {"a": 1, "b": 1}


def test_an_inferred_integer_width_is_no_schema_change(repo: dsv.Repo, repo_dir: Path) -> None:
    # DuckDB reads a JSONL integer column mixing signs as HUGEINT, one of one sign as BIGINT
    # (found by an independent recompute): text declares no width, so no type changed.
    _two(
        repo, repo_dir,
        {"t.jsonl": '{"id":1,"label":"a","n":-878838}\n'},
        {"t.jsonl": '{"id":1,"label":"a","n":-878838}\n{"id":2,"label":"a","n":437205}\n'},
    )
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=_table("t.jsonl")).sources[0]
    assert not src.schema and src.totals.added == 1
    # A real change of type is still one.
    write_tree(repo_dir, {"t.jsonl": '{"id":1,"label":"a","n":"x"}\n{"id":2,"label":"a","n":437205}\n'})
    repo.commit("c")
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=_table("t.jsonl")).sources[0]
    assert [(c.column, c.change, c.old_type, c.new_type) for c in src.schema] == [("n", "type_changed", "BIGINT", "JSON")]


def test_a_parquet_integer_width_change_is_still_reported(repo: dsv.Repo, repo_dir: Path) -> None:
    def pq_bytes(t: pa.Table) -> bytes:
        sink = pa.BufferOutputStream()
        pq.write_table(t, sink)
        return sink.getvalue().to_pybytes()

    _two(
        repo, repo_dir,
        {"t.parquet": pq_bytes(pa.table({"id": [1], "label": ["a"], "n": pa.array([1], pa.int32())}))},
        {"t.parquet": pq_bytes(pa.table({"id": [1], "label": ["a"], "n": pa.array([1], pa.int64())}))},
    )
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=_table("t.parquet")).sources[0]
    assert [(c.column, c.old_type, c.new_type) for c in src.schema] == [("n", "INTEGER", "BIGINT")]


def test_an_integer_label_read_wider_is_no_type_warning(repo: dsv.Repo, repo_dir: Path) -> None:
    _two(repo, repo_dir, {"t.jsonl": '{"id":1,"label":3}\n'}, {"t.jsonl": '{"id":1,"label":3}\n{"id":2,"label":-3}\n'})
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=_table("t.jsonl")).sources[0]
    assert not src.warnings and not src.schema
    assert {(c.cls, c.before, c.after) for c in src.classes} == {("3", 1, 1), ("-3", 0, 1)}
