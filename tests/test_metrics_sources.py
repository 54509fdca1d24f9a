"""``changelog --metrics`` joins a metrics record with one sample source, never a sum (issue 8, item 2).

The README declares a folder and a table describing the same images; summing
their per-class counts showed ``bird 12 -> 15`` where the data had 6 -> 8 images
and 6 -> 7 rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dsv
from dsv.base.errors import UsageError

from conftest import run_dsv, write_tree

# The README's dsv.toml.
TOML = """
[[folders]]
pattern = "images/{split}/{label}/*"     # class from the path; {split} becomes a slice

[[tables]]
path = "annotations/train.csv"           # CSV, Parquet or JSONL
key = "id"
label = "species"
slices = ["island", "sex"]
file = "image_path"                      # a changed image makes its row "modified"
"""

METRICS_V1 = {"classes": {"bird": {"f1": 0.70}, "cat": {"f1": 0.80}}, "overall": {"accuracy": 0.75}}
METRICS_V2 = {"classes": {"bird": {"f1": 0.75}, "cat": {"f1": 0.81}}, "overall": {"accuracy": 0.78}}


def _rows(n_bird: int) -> str:
    rows = ["id,species,island,sex,image_path"]
    rows += [f"b{i},bird,Dream,f,images/train/bird/{i}.png" for i in range(n_bird)]
    rows += [f"c{i},cat,Biscoe,m,images/train/cat/{i}.png" for i in range(3)]
    return "\n".join(rows) + "\n"


@pytest.fixture
def readme_repo(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> dsv.Repo:
    images = {f"images/train/bird/{i}.png": f"bird {i}" for i in range(6)} | {f"images/train/cat/{i}.png": f"cat {i}" for i in range(3)}
    write_tree(repo_dir, {"dsv.toml": TOML, "annotations/train.csv": _rows(6), **images})
    repo.commit("v1")
    repo.create_tag("v1")
    # Two more bird images, one more annotated bird row.
    write_tree(repo_dir, {"images/train/bird/6.png": "bird 6", "images/val/bird/7.png": "bird 7", "annotations/train.csv": _rows(7)})
    repo.commit("v2")
    repo.create_tag("v2")
    (tmp_path / "m1.json").write_text(json.dumps(METRICS_V1))
    (tmp_path / "m2.json").write_text(json.dumps(METRICS_V2))
    repo.add_metrics("v1", tmp_path / "m1.json", name="run1")
    repo.add_metrics("v2", tmp_path / "m2.json", name="run2")
    return repo


def _bird(table) -> tuple:
    [row] = [c for c in table.classes if c.cls == "bird"]
    return (row.samples_before, row.samples_after, row.added, row.removed)


def test_several_sources_are_shown_apart_never_summed(readme_repo: dsv.Repo, repo_dir: Path) -> None:
    [(_, _, comp)] = readme_repo.metrics_changelog("v1..v2")
    assert comp.source is None
    tables = {t.name: t for t in comp.sources}
    assert set(tables) == {"images/{split}/{label}/*", "annotations/train.csv"}
    assert _bird(tables["images/{split}/{label}/*"]) == (6, 8, 2, 0)
    assert _bird(tables["annotations/train.csv"]) == (6, 7, 1, 0)
    text = run_dsv("changelog", "v1..v2", "--metrics", cwd=repo_dir, check=True).stdout.decode()
    assert "12 -> 15" not in text
    bird_lines = [line for line in text.splitlines() if line.strip().startswith("bird ")]
    assert any("6 -> 8" in line for line in bird_lines) and any("6 -> 7" in line for line in bird_lines), text
    assert "images/{split}/{label}/*" in text and "annotations/train.csv" in text
    out = json.loads(run_dsv("changelog", "v1..v2", "--metrics", "--json", cwd=repo_dir, check=True).stdout)
    m = out["entries"][0]["metrics"]
    assert m["source"] is None and [s["name"] for s in m["sources"]] == ["images/{split}/{label}/*", "annotations/train.csv"]
    assert m["classes"] == [] and m["slices"] == []  # no single joined table


def test_source_flag_picks_one(readme_repo: dsv.Repo, repo_dir: Path) -> None:
    [(_, _, comp)] = readme_repo.metrics_changelog("v1..v2", source="annotations/train.csv")
    assert comp.source == "annotations/train.csv" and [t.name for t in comp.sources] == ["annotations/train.csv"]
    assert _bird(comp) == (6, 7, 1, 0)
    out = json.loads(run_dsv("changelog", "v1..v2", "--metrics", "--source", "images/{split}/{label}/*", "--json", cwd=repo_dir, check=True).stdout)
    m = out["entries"][0]["metrics"]
    assert m["source"] == "images/{split}/{label}/*"
    assert [(c["samples_before"], c["samples_after"]) for c in m["classes"] if c["class"] == "bird"] == [(6, 8)]
    assert m["sources"][0]["classes"] == m["classes"]


def test_a_record_names_its_source(readme_repo: dsv.Repo, tmp_path: Path) -> None:
    readme_repo.add_metrics("v2", tmp_path / "m2.json", name="run2", meta={"source": "annotations/train.csv"}, force=True)
    [(_, _, comp)] = readme_repo.metrics_changelog("v1..v2")
    assert comp.source == "annotations/train.csv" and _bird(comp) == (6, 7, 1, 0)
    # --source wins over the record.
    [(_, _, comp)] = readme_repo.metrics_changelog("v1..v2", source="images/{split}/{label}/*")
    assert _bird(comp) == (6, 8, 2, 0)


def test_an_unknown_source_is_an_error(readme_repo: dsv.Repo, repo_dir: Path) -> None:
    with pytest.raises(UsageError) as exc:
        readme_repo.metrics_changelog("v1..v2", source="nope")
    assert "nope" in str(exc.value) and "annotations/train.csv" in (exc.value.hint or "")
    proc = run_dsv("changelog", "v1..v2", "--metrics", "--source", "nope", cwd=repo_dir)
    assert proc.returncode == 2 and proc.stderr.decode().startswith("dsv: error:")


def test_a_single_source_is_joined(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    write_tree(repo_dir, {"dsv.toml": '[[folders]]\npattern = "img/{label}/*"\n', "img/bird/1": "1"})
    repo.commit("v1")
    write_tree(repo_dir, {"img/bird/2": "2"})
    repo.commit("v2")
    (tmp_path / "m.json").write_text(json.dumps(METRICS_V2))
    repo.add_metrics("HEAD", tmp_path / "m.json", name="r")
    [(_, _, comp)] = repo.metrics_changelog("HEAD~1..HEAD")
    assert comp.source == "img/{label}/*" and _bird(comp) == (1, 2, 1, 0)


def test_changelog_reads_only_the_records_of_commits_in_range(repo: dsv.Repo, repo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dsv.history.refs import RefStore
    from dsv.metrics import records

    (tmp_path / "m.json").write_text(json.dumps(METRICS_V1))
    write_tree(repo_dir, {"dsv.toml": '[[folders]]\npattern = "img/{label}/*"\n'})
    for i in range(6):
        write_tree(repo_dir, {f"img/bird/{i}": str(i)})
        repo.commit(f"c{i}")
        repo.add_metrics("HEAD", tmp_path / "m.json", name="r")
    reads: list[str] = []
    listed: list[str] = []
    real_read, real_list = records.read_record, RefStore.list
    monkeypatch.setattr(records, "read_record", lambda store, oid: reads.append(oid) or real_read(store, oid))
    monkeypatch.setattr(RefStore, "list", lambda self, ns, **kw: listed.append(ns) or real_list(self, ns, **kw))
    entries = repo.metrics_changelog("HEAD~2..HEAD")
    assert len(entries) == 2
    assert len(reads) == 3  # HEAD, HEAD~1, HEAD~2: each once
    assert "refs/metrics" not in listed  # never the whole namespace


def test_a_source_absent_at_the_step_does_not_count(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    toml = '[[folders]]\npattern = "img/{label}/*"\n\n[[tables]]\npath = "later.csv"\nkey = "id"\nlabel = "label"\n'
    write_tree(repo_dir, {"dsv.toml": toml, "img/bird/1": "1"})
    repo.commit("v1")
    write_tree(repo_dir, {"img/bird/2": "2"})
    repo.commit("v2")
    (tmp_path / "m.json").write_text(json.dumps(METRICS_V2))
    repo.add_metrics("HEAD", tmp_path / "m.json", name="r")
    [(_, _, comp), _] = repo.metrics_changelog()
    assert comp.source == "img/{label}/*" and _bird(comp) == (1, 2, 1, 0)
