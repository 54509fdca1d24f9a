"""Every summary the API returns is also a table: Arrow and pandas, with fixed columns (issue 11)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, os.path.dirname(__file__))

import dsv  # noqa: E402
from faultutil import write_files  # noqa: E402


def _repo(tmp_path: Path) -> dsv.Repo:
    root = tmp_path / "repo"
    write_files(root, {"img/cat/1.png": b"1", "img/cat/2.png": b"2", "img/dog/3.png": b"3", "dsv.toml": b'[[folders]]\npattern = "img/{label}/*"\n'})
    repo = dsv.Repo.init(root)
    repo.commit("v1")
    os.makedirs(root / "img" / "bird")
    os.rename(root / "img" / "cat" / "2.png", root / "img" / "bird" / "2.png")
    write_files(root, {"img/dog/4.png": b"4"})
    repo.commit("v2")
    report = {"accuracy": 0.9, "cat": {"precision": 0.8, "recall": 0.7, "f1-score": 0.75, "support": 3}}
    (tmp_path / "m.json").write_text(json.dumps(report))
    repo.add_metrics("HEAD", str(tmp_path / "m.json"), name="run1")
    return repo


def test_diff_tables_hold_the_json_numbers(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    d = repo.diff("HEAD~1", "HEAD")
    js = d.to_dict()
    src = js["sources"][0]
    classes = d.classes.to_pandas()
    assert list(classes.columns[:3]) == ["source", "class", "before"]
    assert {r["class"]: (r["before"], r["after"]) for r in src["classes"]} == {
        row["class"]: (row["before"], row["after"]) for _, row in classes.iterrows()
    }
    assert d.relabels.to_arrow().to_pylist() == [{"source": src["name"], **r} for r in src["relabels"]]
    assert d.totals.to_pandas().loc[0, "added"] == src["totals"]["added"]
    assert len(d.file_table) == len(js["files"]["changes"])
    # An empty summary still has its columns and types.
    empty = repo.diff("HEAD", "HEAD")
    assert empty.relabels.to_arrow().schema.names == ["source", "from", "to", "count"]
    assert not empty and empty.counts() == {"added": 0, "removed": 0, "modified": 0, "moved": 0}


def test_log_status_metrics_and_changelog_as_tables(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    log = repo.log().to_pandas()
    assert list(log["message"]) == ["v2", "v1"] and log["time"].dt.tz is not None
    (Path(repo.root) / "img" / "cat" / "1.png").write_bytes(b"changed")
    st = repo.status().to_pandas()
    assert st[["change", "path"]].to_dict("records") == [{"change": "modified", "path": "img/cat/1.png"}] and st["old_path"].isna().all()
    m = repo.metrics().to_pandas()
    assert set(m["scope"]) == {"overall", "class"}
    assert m[(m["scope"] == "class") & (m["metric"] == "recall")]["value"].tolist() == [0.7]
    cl = repo.changelog()
    assert len(cl.to_arrow()) == len(cl)  # one source: one row per step
    assert cl.relabels.to_pylist()[0]["from"] == "cat"
    assert isinstance(cl.classes.to_pandas(), pd.DataFrame)


def test_cli_json_is_the_api_objects_dump(tmp_path: Path) -> None:
    """Issue 11: the CLI's --json is the same document as the API result's to_dict(), for every command."""
    from faultutil import ok, run_dsv

    repo = _repo(tmp_path)
    root = Path(repo.root)
    write_files(root, {"img/dog/5.png": b"5"})  # a local change for status

    def cli(*args: str):  # type: ignore[no-untyped-def]
        return json.loads(ok(run_dsv(root, *args, "--json")).stdout)

    assert cli("log") == repo.log().to_dict()
    assert cli("changelog") == repo.changelog().to_dict()
    assert cli("changelog", "HEAD~1..HEAD") == repo.changelog("HEAD~1..HEAD").to_dict()
    assert cli("metrics", "list") == repo.metrics().to_dict(values=False)
    assert cli("metrics", "show", "HEAD") == repo.metrics("HEAD").to_dict()
    assert cli("diff", "HEAD~1", "HEAD") == repo.diff("HEAD~1", "HEAD").to_dict()
    assert cli("status") == repo.status().to_dict()
