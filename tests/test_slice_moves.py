"""Slice moves: a sample whose slice changed counts the same for tables and folders (issue 8, item 4).

A row whose only change is its slice value used to count as ``modified`` in a
table, while a file moved between split folders did not. Both now count as
``moved`` (totals), and in the slice table as moved out of the old value and
moved into the new one; ``modified`` is for changed content only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dsv
from dsv.semantic.declaration import Declaration, FolderSource, TableSource

from conftest import run_dsv, write_tree

TOML = """
[[folders]]
pattern = "images/{split}/{label}/*"

[[tables]]
path = "ann.csv"
key = "id"
label = "label"
slices = ["split"]
file = "image_path"
"""

ANN = "id,label,split,image_path\n" + "".join(
    f"{i},{lab},{sp},images/{sp}/{lab}/{i}.png\n" for i, (lab, sp) in enumerate([("cat", "train"), ("cat", "train"), ("dog", "train"), ("dog", "val")], 1)
)


def _images(ann: str) -> dict[str, str]:
    rows = [line.split(",") for line in ann.strip().splitlines()[1:]]
    return {r[3]: f"pixels of {r[0]}" for r in rows}


@pytest.fixture
def moved(repo: dsv.Repo, repo_dir: Path) -> dsv.Repo:
    """v1: 4 images; v2: image 2 moved train -> val (same bytes), image 4 relabeled dog -> cat and moved val -> train."""
    write_tree(repo_dir, {"ann.csv": ANN, "dsv.toml": TOML, **_images(ANN)})
    repo.commit("v1")
    ann2 = ANN.replace("2,cat,train,images/train/cat/2.png", "2,cat,val,images/val/cat/2.png")
    ann2 = ann2.replace("4,dog,val,images/val/dog/4.png", "4,cat,train,images/train/cat/4.png")
    (repo_dir / "images/train/cat/2.png").unlink()
    (repo_dir / "images/val/dog/4.png").unlink()
    write_tree(repo_dir, {"ann.csv": ann2, **_images(ann2)})
    repo.commit("v2")
    return repo


def _slices(src) -> dict:
    return {s.value: (s.before, s.after, s.added, s.removed, s.moved_in, s.moved_out, s.relabeled, s.modified) for s in src.slices}


def test_tables_and_folders_agree_on_slice_moves(moved: dsv.Repo) -> None:
    folder, table = moved.semantic_diff("HEAD~1", "HEAD").sources
    for src in (folder, table):
        t = src.totals
        assert (t.added, t.removed, t.relabeled, t.moved, t.modified, t.unchanged) == (0, 0, 1, 2, 0, 2), src.kind
        assert _slices(src) == {"train": (3, 3, 0, 0, 1, 1, 1, 0), "val": (1, 1, 0, 0, 1, 1, 0, 0)}, src.kind
        assert [(r.src, r.dst, r.count) for r in src.relabels] == [("dog", "cat", 1)]


def test_a_slice_change_alone_is_not_modified(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"t.csv": "id,label,split,score\n1,a,train,1\n2,b,train,2\n3,c,val,3\n"})
    repo.commit("a")
    write_tree(repo_dir, {"t.csv": "id,label,split,score\n1,a,val,1\n2,b,train,5\n3,c,test,4\n"})
    repo.commit("b")
    decl = Declaration(tables=[TableSource(path="t.csv", key=["id"], label="label", slices=["split"])])
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=decl, rows=None).sources[0]
    t = src.totals
    # 1 moved only; 2 modified only; 3 moved and modified.
    assert (t.moved, t.modified, t.unchanged) == (2, 2, 0)
    assert _slices(src) == {
        "test": (0, 1, 0, 0, 1, 0, 0, 1),
        "train": (2, 1, 0, 0, 0, 1, 0, 1),
        "val": (1, 1, 0, 0, 1, 1, 0, 0),
    }
    # Changed cells still list the slice cells.
    assert {(c.key["id"], c.column) for c in src.cells} == {(1, "split"), (2, "score"), (3, "split"), (3, "score")}


def test_a_file_moved_with_its_row_is_not_modified_but_changed_bytes_are(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"t.csv": "id,label,f\n1,a,x/1.png\n2,b,x/2.png\n", "x/1.png": "one", "x/2.png": "two"})
    repo.commit("a")
    (repo_dir / "x/1.png").rename(repo_dir / "x/1-renamed.png")
    write_tree(repo_dir, {"t.csv": "id,label,f\n1,a,x/1-renamed.png\n2,b,x/2.png\n", "x/2.png": "two, edited"})
    repo.commit("b")
    decl = Declaration(tables=[TableSource(path="t.csv", key=["id"], label="label", file="f")])
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=decl, rows=None).sources[0]
    assert (src.totals.modified, src.totals.unchanged) == (1, 1)
    assert {(c.key["id"], c.column) for c in src.cells} == {(1, "f")}  # the path cell differs; the content does not


def test_by_slice_counts_removals_and_relabels_under_their_own_side(moved: dsv.Repo) -> None:
    d = moved.semantic_diff("HEAD~1", "HEAD", by=["split"])
    for src in d.sources:
        rows = {(r.value, r.row.cls): (r.row.before, r.row.after, r.row.relabeled_in, r.row.relabeled_out, r.moved_in, r.moved_out) for r in src.by}
        # Image 4 was (val, dog) and is (train, cat): out of its old cell, into its new one.
        assert rows[("val", "dog")] == (1, 0, 0, 1, 0, 1), src.kind
        assert rows[("train", "cat")] == (2, 2, 1, 0, 1, 1), src.kind
        assert rows[("val", "cat")] == (0, 1, 0, 0, 1, 0), src.kind


def test_json_and_text_show_moves(moved: dsv.Repo, repo_dir: Path) -> None:
    out = json.loads(run_dsv("diff", "HEAD~1", "HEAD", "--json", "--by", "split", cwd=repo_dir, check=True).stdout)
    src = out["sources"][1]
    assert src["totals"]["moved"] == 2 and src["totals"]["modified"] == 0
    assert {"moved_in", "moved_out"} <= set(src["slices"][0]) and {"moved_in", "moved_out"} <= set(src["by"][0])
    text = run_dsv("diff", "HEAD~1", "HEAD", "--stat", cwd=repo_dir, check=True).stdout.decode()
    assert "2 moved between slices" in text and "moved in" in text and "moved out" in text


def test_imbalance_keeps_full_precision_in_json(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {f"img/a/{i}": str(i) for i in range(4)} | {f"img/b/{i}": f"b{i}" for i in range(3)})
    repo.commit("a")
    write_tree(repo_dir, {"img/b/x": "x"})
    repo.commit("b")
    src = repo.semantic_diff("HEAD~1", "HEAD", declaration=Declaration(folders=[FolderSource(pattern="img/{label}/*")])).sources[0]
    assert src.imbalance_before == 4 / 3 and src.imbalance_after == 1.0
    text = run_dsv("diff", "HEAD~1", "HEAD", "--folder", "img/{label}/*", cwd=repo_dir, check=True).stdout.decode()
    assert "1.33 -> 1.00" in text
