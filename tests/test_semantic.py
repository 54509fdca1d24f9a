"""Semantic diff: golden numbers on small hand-built datasets, output formats, changelog, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dsv
from dsv.base.errors import CorruptMetadataError, DsvError, UsageError
from dsv.semantic.declaration import Declaration, FolderSource, TableSource

from conftest import run_dsv, write_tree

TOML = """
[[folders]]
pattern = "images/{split}/{label}/*"

[[tables]]
path = "ann.csv"
key = "id"
label = "species"
slices = ["island"]
file = "image_path"
"""

ANN_V1 = """id,species,island,sex,image_path
1,Adelie,Torgersen,m,images/train/cat/1.jpg
2,Gentoo,Biscoe,f,images/train/cat/2.jpg
3,Adelie,Dream,f,images/train/dog/1.jpg
4,Chinstrap,Dream,m,x
"""

ANN_V2 = """id,species,island,sex,image_path
1,Gentoo,Torgersen,m,images/train/cat/1.jpg
2,Gentoo,Biscoe,m,images/train/cat/2.jpg
3,Adelie,Dream,f,images/train/dog/1.jpg
5,Adelie,Biscoe,f,y
"""


def _v1(root: Path) -> None:
    files = {f"images/train/cat/{i}.jpg": f"c{i}" for i in (1, 2, 3)}
    files |= {f"images/train/dog/{i}.jpg": f"d{i}" for i in (1, 2, 3)}
    files |= {"images/val/cat/v.jpg": "vc", "ann.csv": ANN_V1, "dsv.toml": TOML}
    write_tree(root, files)


def _v2(root: Path) -> None:
    (root / "images/train/dog/3.jpg").rename(root / "images/train/cat/3-moved.jpg")  # relabel dog -> cat
    (root / "images/train/dog/2.jpg").unlink()  # removed
    write_tree(root, {"images/train/dog/9.jpg": "new", "images/train/cat/1.jpg": "changed", "ann.csv": ANN_V2})


@pytest.fixture
def two_versions(repo: dsv.Repo, repo_dir: Path) -> dsv.Repo:
    _v1(repo_dir)
    repo.commit("v1")
    _v2(repo_dir)
    repo.commit("v2")
    return repo


def _by_class(source) -> dict:
    return {c.cls: (c.before, c.after, c.added, c.removed, c.relabeled_in, c.relabeled_out, c.modified) for c in source.classes}


def test_folder_source_golden(two_versions: dsv.Repo) -> None:
    d = two_versions.semantic_diff("HEAD~1", "HEAD")
    folder = d.sources[0]
    assert folder.kind == "folder" and folder.read
    t = folder.totals
    assert (t.before, t.after, t.added, t.removed, t.relabeled, t.modified, t.unchanged) == (7, 7, 1, 1, 1, 1, 4)
    # cat: 1,2,3 train + v val = 4 -> + 3-moved = 5; 1.jpg modified.  dog: 1,2,3 -> 1,9.
    assert _by_class(folder) == {"cat": (4, 5, 0, 0, 1, 0, 1), "dog": (3, 2, 1, 1, 0, 1, 0)}
    assert [(r.src, r.dst, r.count) for r in folder.relabels] == [("dog", "cat", 1)]
    assert [(s.column, s.value, s.before, s.after, s.added, s.removed, s.relabeled, s.modified) for s in folder.slices] == [
        ("split", "train", 6, 6, 1, 1, 1, 1),
        ("split", "val", 1, 1, 0, 0, 0, 0),
    ]
    assert folder.imbalance_before == pytest.approx(4 / 3, rel=1e-3) and folder.imbalance_after == 2.5


def test_table_source_golden(two_versions: dsv.Repo) -> None:
    d = two_versions.semantic_diff("HEAD~1", "HEAD", rows=None)
    table = d.sources[1]
    t = table.totals
    # id1 relabeled (and its image changed -> modified); id2 sex changed; id3 same; id4 removed; id5 added.
    assert (t.before, t.after, t.added, t.removed, t.relabeled, t.modified, t.unchanged) == (4, 4, 1, 1, 1, 2, 1)
    assert _by_class(table) == {
        "Adelie": (2, 2, 1, 0, 0, 1, 0),
        "Chinstrap": (1, 0, 0, 1, 0, 0, 0),
        "Gentoo": (1, 2, 0, 0, 1, 0, 2),
    }
    assert [(r.src, r.dst, r.count) for r in table.relabels] == [("Adelie", "Gentoo", 1)]
    slices = {s.value: (s.before, s.after, s.added, s.removed, s.relabeled, s.modified) for s in table.slices}
    assert slices == {"Biscoe": (1, 2, 1, 0, 0, 1), "Dream": (2, 1, 0, 1, 0, 0), "Torgersen": (1, 1, 0, 0, 1, 1)}
    assert table.imbalance_before == 2.0 and table.imbalance_after == 1.0
    cells = {(tuple(c.key.values()), c.column, c.old, c.new) for c in table.cells}
    assert cells == {((1,), "species", "Adelie", "Gentoo"), ((2,), "sex", "f", "m")}
    assert table.schema == ()


def test_by_slice_breaks_classes_down(two_versions: dsv.Repo) -> None:
    d = two_versions.semantic_diff("HEAD~1", "HEAD", by=["island"])
    rows = {(r.value, r.row.cls): (r.row.before, r.row.after) for r in d.sources[1].by}
    assert rows[("Torgersen", "Adelie")] == (1, 0) and rows[("Torgersen", "Gentoo")] == (0, 1)
    assert rows[("Dream", "Chinstrap")] == (1, 0)
    assert d.sources[0].by == ()  # the folder source has no 'island' slice
    with pytest.raises(UsageError):
        two_versions.semantic_diff("HEAD~1", "HEAD", by=["nope"])


def test_json_shape_is_the_documented_one(two_versions: dsv.Repo, repo_dir: Path) -> None:
    proc = run_dsv("diff", "HEAD~1", "HEAD", "--format", "json", cwd=repo_dir, check=True)
    d = json.loads(proc.stdout)
    assert d["format"] == 1 and set(d) == {"format", "old", "new", "files", "sources", "warnings"}
    src = d["sources"][1]
    assert set(src["classes"][0]) == {"class", "before", "after", "added", "removed", "relabeled_in", "relabeled_out", "modified"}
    assert src["relabels"] == [{"from": "Adelie", "to": "Gentoo", "count": 1}]
    assert set(src["slices"][0]) == {"column", "value", "before", "after", "added", "removed", "relabeled", "modified", "moved_in", "moved_out"}
    assert set(src["totals"]) == {"before", "after", "added", "removed", "relabeled", "modified", "unchanged", "moved"}
    assert src["rows"] == {"cells": [], "truncated": False}  # cells only on request
    assert json.loads(run_dsv("diff", "HEAD~1", "HEAD", "--json", cwd=repo_dir, check=True).stdout) == d


def test_markdown_and_text_formats(two_versions: dsv.Repo, repo_dir: Path) -> None:
    md = run_dsv("diff", "HEAD~1", "HEAD", "--format", "md", cwd=repo_dir, check=True).stdout.decode()
    assert md.startswith("## Dataset changes: HEAD~1 → HEAD")
    assert "| Gentoo | 1 | 2 | 0 | 0 | 1 | 0 | 2 |" in md
    assert "| dog | cat | 1 |" in md
    text = run_dsv("diff", "HEAD~1", "HEAD", "--rows", cwd=repo_dir, check=True).stdout.decode()
    assert "Source ann.csv (table)" in text and "Changed cells:" in text and "id=2" in text


def test_rows_are_bounded_unless_all(repo: dsv.Repo, repo_dir: Path) -> None:
    header = "id,label,x\n"
    write_tree(repo_dir, {"t.csv": header + "".join(f"{i},a,{i}\n" for i in range(50))})
    repo.commit("v1")
    write_tree(repo_dir, {"t.csv": header + "".join(f"{i},a,{i + 1}\n" for i in range(50))})
    repo.commit("v2")
    decl = Declaration(tables=[TableSource(path="t.csv", key=["id"], label="label")])
    few = repo.semantic_diff("HEAD~1", "HEAD", declaration=decl, rows=20).sources[0]
    assert len(few.cells) == 20 and few.cells_truncated
    assert [c.key["id"] for c in few.cells] == list(range(20))
    every = repo.semantic_diff("HEAD~1", "HEAD", declaration=decl, rows=None).sources[0]
    assert len(every.cells) == 50 and not every.cells_truncated
    none = repo.semantic_diff("HEAD~1", "HEAD", declaration=decl, rows=0).sources[0]
    assert none.cells == () and none.totals.modified == 50


def test_flags_override_dsv_toml(two_versions: dsv.Repo, repo_dir: Path) -> None:
    proc = run_dsv("diff", "HEAD~1", "HEAD", "--table", "ann.csv", "--key", "id", "--label", "sex", "--json", cwd=repo_dir, check=True)
    [src] = json.loads(proc.stdout)["sources"]
    assert src["name"] == "ann.csv" and {c["class"] for c in src["classes"]} == {"m", "f"}
    assert src["relabels"] == [{"from": "f", "to": "m", "count": 1}]
    proc = run_dsv("diff", "HEAD~1", "HEAD", "--folder", "images/{split}/{label}/*", "--json", cwd=repo_dir, check=True)
    assert [s["kind"] for s in json.loads(proc.stdout)["sources"]] == ["folder"]


def test_worktree_side_and_exit_code(two_versions: dsv.Repo, repo_dir: Path) -> None:
    assert run_dsv("diff", "--exit-code", cwd=repo_dir).returncode == 0
    (repo_dir / "images/val/cat/v.jpg").rename(repo_dir / "images/val/dog-v.jpg")  # leaves the pattern
    d = two_versions.semantic_diff()
    assert d.sources[0].totals.removed == 1 and d.old == "HEAD" and d.new == "working tree"
    assert run_dsv("diff", "--exit-code", cwd=repo_dir).returncode == 1


def test_unchanged_table_is_not_read(two_versions: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"other.txt": "x"})
    two_versions.commit("unrelated change")
    decl = Declaration(tables=[TableSource(path="ann.csv", key=["id"], label="species")])
    d = two_versions.semantic_diff("HEAD~1", "HEAD", declaration=decl)
    assert d.sources[0].read is False and not d.sources[0].changed


def test_changelog_walks_the_range(two_versions: dsv.Repo, repo_dir: Path) -> None:
    entries = two_versions.changelog("HEAD~1..HEAD")
    assert [e.commit.message for e, _ in entries] == ["v2"]
    full = two_versions.changelog()
    assert [e.commit.message for e, _ in full] == ["v2", "v1"]
    root_diff = full[1][1]
    assert root_diff.sources[0].totals.added == 7 and root_diff.sources[0].totals.before == 0
    out = json.loads(run_dsv("changelog", "HEAD~1..HEAD", "--json", cwd=repo_dir, check=True).stdout)
    assert out["entries"][0]["commit"]["message"] == "v2"
    assert out["entries"][0]["diff"]["sources"][1]["totals"]["relabeled"] == 1
    md = run_dsv("changelog", "--format", "md", cwd=repo_dir, check=True).stdout.decode()
    assert md.startswith("# Changelog") and md.index("## v2") < md.index("## v1")


@pytest.mark.parametrize(
    "toml, needle",
    [
        ("[[folders]]\npattern = 'images/{split}/*'\n", "needs a {label} placeholder"),
        ("[[tables]]\npath = 'a.csv'\nlabel = 'y'\n", "key"),
        ("[[tables]]\npath = 'a.xlsx'\nkey = 'id'\nlabel = 'y'\n", "cannot tell the format"),
        ("[[tables]\n", "not valid TOML"),
        ("[[folderz]]\npattern = 'x/{label}/*'\n", "folderz"),
    ],
)
def test_malformed_declaration_is_one_clear_line(repo: dsv.Repo, repo_dir: Path, toml: str, needle: str) -> None:
    write_tree(repo_dir, {"a.csv": "id,y\n1,a\n", "dsv.toml": toml})
    repo.commit("v1")
    with pytest.raises(CorruptMetadataError) as exc:
        repo.semantic_diff()
    assert needle in str(exc.value) and "dsv.toml" in str(exc.value)
    proc = run_dsv("diff", cwd=repo_dir)
    assert proc.returncode == 3 and proc.stderr.decode().count("\n") == 1 and needle.encode() in proc.stderr


def test_missing_column_and_flag_errors(two_versions: dsv.Repo, repo_dir: Path) -> None:
    decl = Declaration(tables=[TableSource(path="ann.csv", key=["id"], label="nope")])
    with pytest.raises(DsvError) as exc:
        two_versions.semantic_diff("HEAD~1", "HEAD", declaration=decl)
    assert "no column 'nope'" in str(exc.value) and "ann.csv" in str(exc.value)
    proc = run_dsv("diff", "--table", "ann.csv", cwd=repo_dir)
    assert proc.returncode == 2 and b"needs --key and --label" in proc.stderr
    proc = run_dsv("diff", "--rows", "lots", "--table", "ann.csv", "--key", "id", "--label", "species", cwd=repo_dir)
    assert proc.returncode == 2 and b"--rows" in proc.stderr


def test_folder_pattern_with_double_star(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"data/a/cat/x/1.png": "1", "data/b/dog/2.png": "2", "data/c/cat/3.png": "3"})
    repo.commit("v1")
    (repo_dir / "data/c/cat/3.png").unlink()
    repo.commit("v2")
    decl = Declaration(folders=[FolderSource(pattern="data/{batch}/{label}/**")])
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=decl).sources[0]
    assert _by_class(src)["cat"][:4] == (2, 1, 0, 1)
    assert {s.value for s in src.slices} == {"a", "b", "c"}


@pytest.mark.parametrize(
    "a, b, side",
    [
        ("id,label\n1,x\n2,y\n2,y\n", "id,label\n1,x\n", "HEAD~1"),  # repeated key absent on the other side
        ("id,label\n1,x\n2,y\n", "id,label\n1,x\n2,y\n2,z\n", "HEAD"),  # repeated key present on both sides
        ("id,label\n1,x\n2,y\n2,y\n", "id,label\n1,x\n2,y\n", "HEAD~1"),
    ],
)
def test_repeated_keys_are_found_on_either_side(repo: dsv.Repo, repo_dir: Path, a: str, b: str, side: str) -> None:
    write_tree(repo_dir, {"t.csv": a})
    repo.commit("a")
    write_tree(repo_dir, {"t.csv": b})
    repo.commit("b")
    decl = Declaration(tables=[TableSource(path="t.csv", key=["id"], label="label")])
    with pytest.raises(DsvError) as exc:
        repo.semantic_diff("HEAD~1", "HEAD", declaration=decl)
    assert f"t.csv at {side}: key id is not unique: 2 (x2)" in str(exc.value)


def test_tables_larger_than_the_memory_limit_spill_instead_of_failing(repo: dsv.Repo, repo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 600_000
    ids = pa.array(range(n), pa.int64())
    note = pa.array([f"note {i} " + "x" * 40 for i in range(n)])
    pq.write_table(pa.table({"id": ids, "label": pa.array([f"c{i % 7}" for i in range(n)]), "note": note}), repo_dir / "t.parquet")
    repo.commit("a")
    labels = [f"c{(i + (1 if i % 100 == 0 else 0)) % 7}" for i in range(n)]
    pq.write_table(pa.table({"id": ids, "label": pa.array(labels), "note": note}), repo_dir / "t.parquet")
    repo.commit("b")
    # Far less memory than the two versions take: DuckDB must spill to .dsv/objects/tmp.
    monkeypatch.setenv("DSV_DIFF_MEMORY_LIMIT", "40MB")
    decl = Declaration(tables=[TableSource(path="t.parquet", key=["id"], label="label")])
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=decl, rows=0).sources[0]
    assert src.totals.relabeled == n // 100 and src.totals.unchanged == n - n // 100
