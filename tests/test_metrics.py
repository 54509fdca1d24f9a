"""Metrics records attached to dataset versions, and their deltas beside data changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dsv
from dsv.base.errors import DsvError, RefExistsError, UnknownRevisionError

from conftest import run_dsv, write_tree

SKLEARN_V1 = {
    "cat": {"precision": 0.80, "recall": 0.82, "f1-score": 0.81, "support": 30},
    "dog": {"precision": 0.90, "recall": 0.88, "f1-score": 0.89, "support": 30},
    "accuracy": 0.85,
    "macro avg": {"precision": 0.85, "recall": 0.85, "f1-score": 0.85, "support": 60},
    "weighted avg": {"precision": 0.85, "recall": 0.85, "f1-score": 0.85, "support": 60},
}
DSV_V2 = {
    "overall": {"accuracy": 0.88},
    "classes": {"cat": {"f1": 0.86}, "dog": {"f1": 0.87}, "horse": {"f1": 0.40}},
    "slices": {"split": {"train": {"f1": 0.9}, "val": {"f1": 0.8}}},
}
TOML = '[[folders]]\npattern = "{split}/{label}/*"\n'


@pytest.fixture
def versions(repo: dsv.Repo, repo_dir: Path) -> dsv.Repo:
    files = {f"train/cat/{i}.png": f"c{i}" for i in range(3)} | {f"train/dog/{i}.png": f"d{i}" for i in range(3)}
    write_tree(repo_dir, files | {"val/cat/v.png": "vc", "dsv.toml": TOML})
    repo.commit("v1")
    repo.create_tag("v1")
    (repo_dir / "train/dog/2.png").rename(repo_dir / "train/cat/2-from-dog.png")
    write_tree(repo_dir, {"train/cat/new.png": "n"})
    repo.commit("v2: relabel one dog, add a cat")
    repo.create_tag("v2", message="for exp-42")
    return repo


def _write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_attach_list_show_and_commit_id_unchanged(versions: dsv.Repo, tmp_path: Path) -> None:
    before = versions.resolve("v1").commit_id
    e = versions.add_metrics("v1", _write(tmp_path / "m.json", SKLEARN_V1), name="resnet18-run7", meta={"run_id": "7"})
    assert versions.resolve("v1").commit_id == before  # like git notes
    assert e.record.source_format == "sklearn" and e.record.classes["cat"]["f1"] == 0.81
    assert e.record.overall["accuracy"] == 0.85 and e.record.meta == {"run_id": "7"}
    versions.add_metrics("v1", _write(tmp_path / "m2.json", {"loss": 0.3}), name="other-model")
    names = [m.record.name for m in versions.metrics("v1")]
    assert names == ["resnet18-run7", "other-model"]
    assert versions.metrics("v2") == []
    assert [m.record.name for m in versions.metrics()] == names
    assert [m.record.name for m in versions.metrics("v1", name="other-model")] == ["other-model"]


def test_same_name_is_refused_unless_forced(versions: dsv.Repo, tmp_path: Path) -> None:
    f = _write(tmp_path / "m.json", SKLEARN_V1)
    versions.add_metrics("v1", f, name="run")
    with pytest.raises(RefExistsError):
        versions.add_metrics("v1", _write(tmp_path / "n.json", {"accuracy": 0.5}), name="run")
    assert versions.metrics("v1")[0].record.overall["accuracy"] == 0.85
    versions.add_metrics("v1", _write(tmp_path / "n.json", {"accuracy": 0.5}), name="run", force=True)
    [only] = versions.metrics("v1")
    assert only.record.overall == {"accuracy": 0.5}


def test_bad_input_attaches_nothing(versions: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownRevisionError):
        versions.add_metrics("v9", _write(tmp_path / "m.json", SKLEARN_V1), name="x")
    bad = tmp_path / "bad.json"
    bad.write_text('{"accuracy": "high"}')
    with pytest.raises(DsvError):
        versions.add_metrics("v1", bad, name="x")
    assert versions.metrics() == []
    proc = run_dsv("metrics", "add", "v1", str(bad), "--name", "x", cwd=repo_dir)
    assert proc.returncode == 3 and proc.stderr.decode().startswith("dsv: error:") and proc.stderr.decode().count("\n") == 1
    proc = run_dsv("metrics", "add", "nope", str(tmp_path / "m.json"), "--name", "x", cwd=repo_dir)
    assert proc.returncode == 2 and b"unknown revision" in proc.stderr
    assert run_dsv("metrics", "list", "--json", cwd=repo_dir, check=True).stdout.strip() == b"[]"


def test_changelog_puts_metric_deltas_beside_data_changes(versions: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    versions.add_metrics("v1", _write(tmp_path / "a.json", SKLEARN_V1), name="run1")
    versions.add_metrics("v2", _write(tmp_path / "b.json", DSV_V2), name="run2")
    [(entry, diff, comp)] = versions.metrics_changelog("v1..v2")
    assert entry.commit.message.startswith("v2")
    assert [(m.metric, m.before, m.after, m.delta) for m in comp.overall if m.metric == "accuracy"] == [("accuracy", 0.85, 0.88, pytest.approx(0.03))]
    classes = {c.cls: c for c in comp.classes}
    cat = classes["cat"]
    # Data: cat 4 -> 6 (one relabeled in from dog, one added); f1 0.81 -> 0.86.
    assert (cat.in_data, cat.samples_before, cat.samples_after, cat.added, cat.relabeled_in) == (True, 4, 6, 1, 1)
    assert {m.metric: (m.before, m.after) for m in cat.metrics}["f1"] == (0.81, 0.86)
    dog = classes["dog"]
    assert (dog.samples_before, dog.samples_after, dog.relabeled_out) == (3, 2, 1)
    horse = classes["horse"]
    assert horse.in_data is False and horse.samples_before is None  # kept, and flagged
    slices = {(s.column, s.value): s for s in comp.slices}
    assert slices[("split", "train")].in_data and (slices[("split", "train")].samples_before, slices[("split", "train")].samples_after) == (6, 7)
    out = json.loads(run_dsv("changelog", "v1..v2", "--metrics", "--json", cwd=repo_dir, check=True).stdout)
    m = out["entries"][0]["metrics"]
    assert m["old"]["name"] == "run1" and m["new"]["name"] == "run2"
    assert {c["class"]: c["in_data"] for c in m["classes"]} == {"cat": True, "dog": True, "horse": False}
    text = run_dsv("changelog", "v1..v2", "--metrics", cwd=repo_dir, check=True).stdout.decode()
    cat_line = next(line for line in text.splitlines() if line.strip().startswith("cat ") and "->" in line and "(+0.05)" in line)
    assert "4 -> 6" in cat_line and "0.81 -> 0.86" in cat_line
    assert "not in data" in text
    md = run_dsv("changelog", "v1..v2", "--metrics", "--format", "md", cwd=repo_dir, check=True).stdout.decode()
    assert "| cat | 4 -> 6 |" in md and "**Metrics** (run1 → run2)" in md


def test_log_show_and_gc_keep_metrics(versions: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    versions.add_metrics("v2", _write(tmp_path / "b.json", DSV_V2), name="run2", meta={"model": "resnet18"})
    line = run_dsv("log", "--oneline", "--metrics", cwd=repo_dir, check=True).stdout.decode().splitlines()[0]
    assert "[run2: accuracy=0.88]" in line
    shown = run_dsv("show", "v2", cwd=repo_dir, check=True).stdout.decode()
    assert "metrics run2: accuracy=0.88 [model=resnet18]" in shown
    js = json.loads(run_dsv("show", "v2", "--json", cwd=repo_dir, check=True).stdout)
    assert js["metrics"][0]["name"] == "run2" and js["metrics"][0]["overall"] == {"accuracy": 0.88}
    versions.gc(0)
    assert versions.fsck().ok
    assert [m.record.name for m in versions.metrics("v2")] == ["run2"]


def test_current_version_for_training_scripts(versions: dsv.Repo, repo_dir: Path) -> None:
    info = dsv.current_version(str(repo_dir))
    assert info.commit == versions.resolve("v2").commit_id and info.branch == "main"
    assert info.tags == ("v2",) and info.dirty is False and info.label == "v2"
    write_tree(repo_dir, {"train/cat/extra.png": "x"})
    info = dsv.current_version(str(repo_dir))
    assert info.dirty is True and info.label == "v2+dirty"
    assert info.to_dict()["commit"] == versions.resolve("v2").commit_id
