"""The ``detail`` of a changed nested cell has a shape dsv defines (docs/diff-format.md), not deepdiff's.

deepdiff computes what changed; dsv decides how it is written, so a deepdiff
upgrade cannot change the public JSON. The golden file was written by hand.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dsv
from dsv.semantic.declaration import Declaration, TableSource
from dsv.semantic.detail import nested_detail

from conftest import write_tree

GOLDEN = json.loads((Path(__file__).parent / "golden" / "cell_detail.json").read_text())


@pytest.mark.parametrize("case", GOLDEN, ids=[str(i) for i in range(len(GOLDEN))])
def test_detail_matches_the_golden_file(case: dict) -> None:
    assert nested_detail(case["old"], case["new"]) == case["detail"]


def test_scalars_have_no_detail() -> None:
    assert nested_detail(1, 2) is None and nested_detail("a", ["a"]) is None and nested_detail(None, {"a": 1}) is None


def test_detail_in_a_diff_of_a_struct_column(repo: dsv.Repo, repo_dir: Path) -> None:
    def parquet(boxes: list) -> bytes:
        sink = io.BytesIO()
        pq.write_table(pa.table({"id": [1], "label": ["cat"], "box": boxes}), sink)
        return sink.getvalue()

    write_tree(repo_dir, {"t.parquet": parquet([{"w": 1.5, "tags": ["a"]}])})
    repo.commit("a")
    write_tree(repo_dir, {"t.parquet": parquet([{"w": 2.5, "tags": ["a", "b"]}])})
    repo.commit("b")
    decl = Declaration(tables=[TableSource(path="t.parquet", key=["id"], label="label")])
    [cell] = repo.semantic_diff("HEAD~1", "HEAD", declaration=decl, rows=None).sources[0].cells
    assert cell.to_dict()["detail"] == [
        {"path": ["tags", 1], "change": "added", "old": None, "new": "b"},
        {"path": ["w"], "change": "changed", "old": 1.5, "new": 2.5},
    ]
