"""Metrics output agrees with its docs (issue 8b, item 6).

JSON keeps deltas at full precision (they were rounded to 10 decimals); text
tables leave out scikit-learn's ``support`` counts only, never a user's metric
whose name merely ends in ``support``; two records evaluated on different
sample sources are warned about.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dsv
from dsv.metrics.compare import MetricDelta

from conftest import run_dsv, write_tree


@pytest.mark.parametrize(
    ("before", "after", "delta"),
    [
        (0.81, 0.86, 0.05),  # exact on the stored decimals: not 0.050000000000000044
        (0.1, 0.3, 0.2),
        (0.3, 0.1, -0.2),
        (1e-12, 3e-12, 2e-12),  # rounding to 10 decimals gave 0.0
        (0.123456789012345, 0.123456789012346, 1e-15),
        (2, 5, 3),
    ],
)
def test_delta_keeps_full_precision(before: float, after: float, delta: float) -> None:
    assert MetricDelta("m", before, after).delta == delta


def test_a_missing_side_has_no_delta() -> None:
    assert MetricDelta("m", None, 0.5).delta is None and MetricDelta("m", 0.5, None).delta is None


def _two_runs(repo: dsv.Repo, repo_dir: Path, tmp_path: Path, m1: dict, m2: dict, meta1: dict | None = None, meta2: dict | None = None) -> None:
    toml = '[[folders]]\npattern = "img/{label}/*"\nname = "images"\n\n[[tables]]\npath = "t.csv"\nkey = "id"\nlabel = "label"\n'
    write_tree(repo_dir, {"dsv.toml": toml, "img/cat/1": "1", "t.csv": "id,label\n1,cat\n"})
    repo.commit("v1")
    write_tree(repo_dir, {"img/cat/2": "2", "t.csv": "id,label\n1,cat\n2,cat\n"})
    repo.commit("v2")
    (tmp_path / "m1.json").write_text(json.dumps(m1))
    (tmp_path / "m2.json").write_text(json.dumps(m2))
    repo.add_metrics("HEAD~1", tmp_path / "m1.json", name="run1", meta=meta1 or {})
    repo.add_metrics("HEAD", tmp_path / "m2.json", name="run2", meta=meta2 or {})


def test_json_deltas_are_full_precision(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    _two_runs(repo, repo_dir, tmp_path, {"loss": 1e-12}, {"loss": 3e-12})
    out = json.loads(run_dsv("changelog", "HEAD~1..HEAD", "--metrics", "--json", cwd=repo_dir, check=True).stdout)
    [m] = out["entries"][0]["metrics"]["overall"]
    assert (m["before"], m["after"], m["delta"]) == (1e-12, 3e-12, 2e-12)


def test_text_tables_show_a_user_metric_ending_in_support(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    m1 = {"overall": {"accuracy": 0.5, "data_support": 10}, "classes": {"cat": {"f1": 0.5, "support": 3}}}
    m2 = {"overall": {"accuracy": 0.6, "data_support": 12}, "classes": {"cat": {"f1": 0.6, "support": 4}}}
    _two_runs(repo, repo_dir, tmp_path, m1, m2, {"source": "images"}, {"source": "images"})
    text = run_dsv("changelog", "HEAD~1..HEAD", "--metrics", cwd=repo_dir, check=True).stdout.decode()
    assert "data_support" in text and "10 -> 12" not in text  # the overall table: before/after/delta columns
    assert any(line.split()[:4] == ["data_support", "10", "12", "+2"] for line in text.splitlines()), text
    # Not a scikit-learn report: a class metric named support is the user's, and shows.
    assert "support" in [w for line in text.splitlines() if line.strip().startswith("class ") for w in line.split()], text


def test_text_tables_leave_out_scikit_learn_support_counts(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    def report(f1: float) -> dict:
        row = {"precision": f1, "recall": f1, "f1-score": f1, "support": 2.0}
        return {"cat": row, "accuracy": f1, "macro avg": row, "weighted avg": row}

    _two_runs(repo, repo_dir, tmp_path, report(0.5), report(0.6), {"source": "images"}, {"source": "images"})
    text = run_dsv("changelog", "HEAD~1..HEAD", "--metrics", cwd=repo_dir, check=True).stdout.decode()
    assert "support" not in text, text
    assert "macro_avg.f1" in text, text
    out = json.loads(run_dsv("changelog", "HEAD~1..HEAD", "--metrics", "--json", cwd=repo_dir, check=True).stdout)
    assert "macro_avg.support" in [m["metric"] for m in out["entries"][0]["metrics"]["overall"]]


def test_records_naming_different_sources_warn(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    _two_runs(repo, repo_dir, tmp_path, {"accuracy": 0.5}, {"accuracy": 0.6}, {"source": "images"}, {"source": "t.csv"})
    proc = run_dsv("changelog", "HEAD~1..HEAD", "--metrics", cwd=repo_dir, check=True)
    err = proc.stderr.decode()
    assert "dsv: warning:" in err and "'images'" in err and "'t.csv'" in err, err
    assert "warning" not in proc.stdout.decode()
    [(_, _, comp)] = repo.metrics_changelog("HEAD~1..HEAD")
    assert comp.source == "t.csv" and len(comp.warnings) == 1
    # The same source on both sides, or a source named on one side only: no warning.
    repo.add_metrics("HEAD~1", tmp_path / "m1.json", name="run1", meta={"source": "t.csv"}, force=True)
    assert repo.metrics_changelog("HEAD~1..HEAD")[0][2].warnings == ()
    repo.add_metrics("HEAD~1", tmp_path / "m1.json", name="run1", force=True)
    assert repo.metrics_changelog("HEAD~1..HEAD")[0][2].warnings == ()
