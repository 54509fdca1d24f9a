"""dsv audit: every number checked against an independent pandas computation on generated data
with planted conflicts, leakage, duplicates, NULLs, multi-label sets and folder sources."""

from __future__ import annotations

import itertools
import json
import math
import random
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsv
from dsv.base.hashing import hash_bytes

from conftest import run_dsv, write_tree

# -- the independent computation (pandas; shares no code with dsv) -----------------------------


def expected(df: pd.DataFrame, *, splits: list[str], min_samples: int, label_set: list[str] | None = None) -> dict:
    """What the audit must find in ``df`` (columns: sid, content, labels (tuple), and slice columns).

    ``content`` None: no content (excluded from conflicts, leakage, duplicates).
    """
    out: dict = {}
    c = df[df.content.notna()].copy()
    c["lab"] = c["labels"].map(lambda t: t if len(t) else None)
    lab = c[c.lab.notna()]
    nl = lab.groupby("content")["lab"].nunique()
    conflicting = set(nl[nl > 1].index)
    out["conflicts"] = (len(conflicting), int(c.content.isin(conflicting).sum()))
    out["conflict_contents"] = conflicting
    out["leakage"] = {}
    for s in splits:
        x = c[c[s].notna()]
        nv = x.groupby("content")[s].nunique()
        leaked = set(nv[nv > 1].index)
        pairs: dict[tuple[str, str], int] = {}
        for _content, vals in x[x.content.isin(leaked)].groupby("content")[s]:
            for a, b in itertools.combinations(sorted(set(vals)), 2):
                pairs[(a, b)] = pairs.get((a, b), 0) + 1
        out["leakage"][s] = (len(leaked), int(x.content.isin(leaked).sum()), pairs)
    ex = c.explode("labels")
    ex = ex[ex["labels"].notna()]
    sizes = ex.groupby(["content", "labels"]).size()
    dup = sizes[sizes > 1]
    out["dup_class"] = (len(dup), int((dup - 1).sum()))
    out["dup_class_by"] = {k: (int((g > 1).sum()), int((g[g > 1] - 1).sum())) for k, g in sizes.groupby(level=1) if (g > 1).any()}
    out["dup_split"] = {}
    for s in splits:
        sz = c[c[s].notna()].groupby(["content", s]).size()
        d = sz[sz > 1]
        out["dup_split"][s] = (len(d), int((d - 1).sum()))
    all_ex = df.explode("labels")
    counts = all_ex["labels"].value_counts(dropna=True).to_dict()
    missing = int(df["labels"].map(len).eq(0).sum())
    out["classes"] = {**{k: int(v) for k, v in counts.items()}, **({None: missing} if missing else {})}
    out["imbalance"] = max(counts.values()) / min(counts.values()) if counts else None
    universe = sorted(set(counts) | set(label_set or []))
    out["small"] = sorted((k, int(counts.get(k, 0))) for k in universe if counts.get(k, 0) < min_samples)
    small_slices = 0
    slice_cols = [col for col in df.columns if col.startswith("slice_")]
    for col in slice_cols:
        values = df[col].drop_duplicates().tolist()
        for v in values:
            part = all_ex[(all_ex[col] == v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else all_ex[col].isna()]
            cnt = part["labels"].value_counts(dropna=True).to_dict()
            small_slices += sum(1 for k in universe if cnt.get(k, 0) < min_samples)
    out["small_in_slices"] = small_slices
    out["missing"] = missing
    if label_set is not None:
        out["unknown"] = {k: int(v) for k, v in counts.items() if k not in label_set}
        out["absent"] = sorted(k for k in label_set if counts.get(k, 0) == 0)
    return out


def check(source: dict, exp: dict, *, splits: list[str]) -> None:
    """Compare one source of the audit JSON with the independent computation."""
    assert (source["conflicts"]["contents"], source["conflicts"]["samples"]) == exp["conflicts"]
    by_split = {x["column"]: x for x in source["leakage"]}
    assert sorted(by_split) == sorted(splits)
    for s in splits:
        contents, samples, pairs = exp["leakage"][s]
        got = by_split[s]
        assert (got["contents"], got["samples"]) == (contents, samples), s
        assert {tuple(p["values"]): p["contents"] for p in got["pairs"]} == pairs
    dups = {d["column"]: d for d in source["duplicates"]}
    assert (dups[None]["groups"], dups[None]["extra"]) == exp["dup_class"]
    assert {v["value"]: (v["groups"], v["extra"]) for v in dups[None]["by_value"]} == exp["dup_class_by"]
    for s in splits:
        assert (dups[s]["groups"], dups[s]["extra"]) == exp["dup_split"][s]
    cov = source["coverage"]
    assert {c["class"]: c["count"] for c in cov["classes"]} == exp["classes"]
    if exp["imbalance"] is None:
        assert cov["imbalance"] is None
    else:
        assert cov["imbalance"] == pytest.approx(exp["imbalance"])
    assert sorted((c["class"], c["count"]) for c in cov["small_classes"]) == exp["small"]
    assert cov["small_in_slices"]["count"] == exp["small_in_slices"]
    assert cov["missing_labels"]["count"] == exp["missing"]
    if "unknown" in exp:
        assert {c["class"]: c["count"] for c in cov["unknown_labels"]} == exp["unknown"]
        assert cov["absent_labels"] == exp["absent"]


# -- folder source with planted findings ------------------------------------------------------


def folder_dataset(rng: random.Random, n: int) -> tuple[dict[str, bytes], pd.DataFrame]:
    """Files ``img/<split>/<label>/<i>.bin`` with contents drawn from a pool (so duplicates and conflicts occur)."""
    classes = ["cat", "dog", "bird", "fox"]
    splits = ["train", "test", "val"]
    pool = [f"img-{k}".encode() * (1 + k % 5) for k in range(n // 2)]
    files: dict[str, bytes] = {}
    rows = []
    for i in range(n):
        label = rng.choices(classes, weights=[8, 5, 2, 1])[0]
        split = rng.choices(splits, weights=[6, 2, 2])[0]
        data = rng.choice(pool) if rng.random() < 0.5 else f"unique-{i}".encode()
        path = f"img/{split}/{label}/{i:04d}.bin"
        files[path] = data
        rows.append({"sid": path, "content": hash_bytes(data), "labels": (label,), "slice_split": split})
    # Planted: one content in cat and dog (a conflict) in train and test (leakage), twice in cat/train (duplicates).
    planted = b"planted image"
    for path, label, split in [("img/train/cat/p1.bin", "cat", "train"), ("img/train/cat/p2.bin", "cat", "train"), ("img/test/dog/p3.bin", "dog", "test")]:
        files[path] = planted
        rows.append({"sid": path, "content": hash_bytes(planted), "labels": (label,), "slice_split": split})
    df = pd.DataFrame(rows)
    df["split"] = df["slice_split"]
    return files, df


def test_folder_audit_matches_pandas(repo: dsv.Repo, repo_dir: Path) -> None:
    files, df = folder_dataset(random.Random(7), 400)
    files["dsv.toml"] = b'[[folders]]\npattern = "img/{split}/{label}/*"\nname = "images"\nlabels = ["cat", "dog", "bird", "horse"]\n[audit]\nmin_samples = 12\n'
    write_tree(repo_dir, files)
    repo.commit("v1")
    report = repo.audit("HEAD").to_dict()
    assert report["format"] == 1 and report["commit"] == repo.resolve("HEAD").commit_id
    (source,) = report["sources"]
    exp = expected(df, splits=["split"], min_samples=12, label_set=["cat", "dog", "bird", "horse"])
    check(source, exp, splits=["split"])
    assert exp["unknown"] == {"fox": exp["classes"]["fox"]} and exp["absent"] == ["horse"]
    # The planted conflict is listed with its paths, which a labeling tool can take.
    planted = hash_bytes(b"planted image")
    assert planted in exp["conflict_contents"]
    item = next(i for i in source["conflicts"]["items"] if i["content"] == planted)
    assert sorted(item["labels"]) == ["cat", "dog"] and item["count"] == 3
    assert sorted(s["path"] for s in item["samples"]) == ["img/test/dog/p3.bin", "img/train/cat/p1.bin", "img/train/cat/p2.bin"]
    # Ranked: most samples first.
    ranks = [-i["count"] for i in source["conflicts"]["items"]]
    assert ranks == sorted(ranks)
    # Overall sums the (one) source.
    assert report["overall"]["conflicts"] == exp["conflicts"][0]
    assert report["overall"]["leakage"] == exp["leakage"]["split"][0]
    # The working tree gives the same answer as the commit it equals.
    wt = repo.audit(None).to_dict()["sources"][0]
    assert wt["conflicts"] == source["conflicts"] and wt["coverage"] == source["coverage"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from(["a", "b", "c"]), st.sampled_from(["train", "test"])),
        min_size=1,
        max_size=25,
    ),
    st.integers(0, 4),
)
def test_folder_audit_property(samples: list[tuple[int, str, str]], min_samples: int) -> None:
    """Any small folder dataset: the audit equals the pandas computation."""
    root = Path(tempfile.mkdtemp(prefix="dsv-audit-prop-"))
    try:
        files: dict[str, bytes] = {"dsv.toml": f'[[folders]]\npattern = "d/{{split}}/{{label}}/*"\n[audit]\nmin_samples = {min_samples}\n'.encode()}
        rows = []
        for i, (content, label, split) in enumerate(samples):
            data = f"content {content}".encode()
            path = f"d/{split}/{label}/{i}"
            files[path] = data
            rows.append({"sid": path, "content": hash_bytes(data), "labels": (label,), "slice_split": split, "split": split})
        write_tree(root, files)
        repo = dsv.Repo.init(root)
        report = repo.audit(None).to_dict()
        check(report["sources"][0], expected(pd.DataFrame(rows), splits=["split"], min_samples=min_samples), splits=["split"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- table sources: NULLs, multi-label, a file column -------------------------------------------


def multilabel_table(rng: random.Random, n: int) -> tuple[pa.Table, pd.DataFrame]:
    ids, labels, splits, f1, f2 = [], [], [], [], []
    for i in range(n):
        ids.append(i)
        r = rng.random()
        if r < 0.07:
            labels.append(None)
        elif r < 0.12:
            labels.append([])
        else:
            labels.append(rng.sample(["person", "car", "tree", "sign"], rng.choice([1, 1, 2, 3])))
        splits.append(rng.choice(["train", "train", "valid", None]))
        k = rng.randrange(n // 3)
        if rng.random() < 0.05:
            f1.append(None)
            f2.append(None)  # no content at all
        else:
            f1.append(float(k) if k % 7 else None)
            f2.append(f"v{k % 11}")
    table = pa.table({"id": ids, "tags": pa.array(labels, pa.list_(pa.string())), "fold_name": splits, "f1": f1, "f2": f2})
    rows = []
    for i in range(n):
        content = None if f1[i] is None and f2[i] is None else (f1[i], f2[i])
        rows.append({"sid": i, "content": content, "labels": tuple(sorted(set(labels[i] or []))), "slice_fold_name": splits[i], "fold_name": splits[i]})
    return table, pd.DataFrame(rows)


def test_multilabel_parquet_with_nulls_matches_pandas(repo: dsv.Repo, repo_dir: Path) -> None:
    table, df = multilabel_table(random.Random(11), 300)
    pq.write_table(table, repo_dir / "ann.parquet")
    write_tree(repo_dir, {"dsv.toml": '[[tables]]\npath = "ann.parquet"\nkey = "id"\nlabel = "tags"\nslices = ["fold_name"]\n[audit]\nmin_samples = 40\n'})
    repo.commit("v1")
    report = repo.audit("HEAD").to_dict()
    (source,) = report["sources"]
    assert source["multilabel"] and source["splits"] == ["fold_name"]
    exp = expected(df, splits=["fold_name"], min_samples=40)
    check(source, exp, splits=["fold_name"])
    assert source["without_content"] == int(df.content.isna().sum()) > 0
    # Multi-label conflicts list label sets; samples carry their keys.
    for item in source["conflicts"]["items"]:
        assert all(isinstance(x, list) for x in item["labels"]) and len(item["labels"]) > 1
        assert all(isinstance(s["key"]["id"], int) for s in item["samples"])


def test_csv_table_with_file_column_uses_the_files_bytes(repo: dsv.Repo, repo_dir: Path) -> None:
    """Content of a row is the object its file column names; rows naming no file have no content."""
    rng = random.Random(3)
    files: dict[str, bytes] = {}
    lines = ["id,label,split,image,note"]
    rows = []
    for i in range(120):
        k = rng.randrange(40)
        img = f"imgs/{i}.png"
        files[img] = f"pixels {k}".encode()
        label = rng.choice(["a", "b", "c", ""])
        split = rng.choice(["train", "test", ""])
        name = img if i % 17 else f"imgs/missing-{i}.png"
        lines.append(f"{i},{label},{split},{name},note {rng.random()}")
        content = hash_bytes(files[img]) if i % 17 else None
        rows.append({"sid": i, "content": content, "labels": (label,) if label else (), "slice_split": split or None, "split": split or None})
    files["ann.csv"] = "\n".join(lines) + "\n"
    files["dsv.toml"] = '[[tables]]\npath = "ann.csv"\nkey = "id"\nlabel = "label"\nslices = ["split"]\nfile = "image"\nlabels = ["a", "b"]\n'
    write_tree(repo_dir, files)
    repo.commit("v1")
    (source,) = repo.audit("HEAD").to_dict()["sources"]
    exp = expected(pd.DataFrame(rows), splits=["split"], min_samples=10, label_set=["a", "b"])
    check(source, exp, splits=["split"])
    assert source["without_content"] == 120 // 17 + 1
    assert {c["class"] for c in source["coverage"]["unknown_labels"]} == {"c"}
    item = source["conflicts"]["items"][0]
    assert all(s["path"].startswith("imgs/") and set(s["key"]) == {"id"} for s in item["samples"])


# -- history: labels back and forth ------------------------------------------------------------------


def test_history_flips_match_pandas(repo: dsv.Repo, repo_dir: Path) -> None:
    rng = random.Random(5)
    n = 60
    contents = [f"bytes {i % 25}".encode() for i in range(n)]
    versions = []
    labels = [rng.choice(["x", "y"]) for _ in range(n)]
    for v in range(5):
        if v:
            for i in rng.sample(range(n), 12):
                labels[i] = "y" if labels[i] == "x" else "x"
        files = {f"s/{labels[i]}/{i}": contents[i] for i in range(n)}
        if v == 0:
            files["dsv.toml"] = '[[folders]]\npattern = "s/{label}/*"\n'
        else:
            # Relabel by moving: remove every old path first.
            shutil.rmtree(repo_dir / "s")
        write_tree(repo_dir, files)
        repo.commit(f"v{v}")
        versions.append({hash_bytes(contents[i]): set() for i in range(n)})
        for i in range(n):
            versions[-1][hash_bytes(contents[i])].add(labels[i])
        if v == 2:
            # A commit that leaves the source alone: its samples are copied, not re-read.
            write_tree(repo_dir, {"notes.txt": "unrelated"})
            repo.commit("notes")
            versions.append(versions[-1])
    # pandas: per content, the sequence of label states (dropping repeats); a flip when a state reappears.
    rows = [{"v": v, "content": c, "state": tuple(sorted(s))} for v, states in enumerate(versions) for c, s in states.items()]
    df = pd.DataFrame(rows).sort_values(["content", "v"])
    flips = {}
    for c, g in df.groupby("content"):
        seq = [s for s, prev in zip(g.state, [None, *g.state[:-1]]) if s != prev]
        if len(seq) > len(set(seq)):
            flips[c] = len(seq) - 1
    report = repo.audit("HEAD", history=6, limit=1000).to_dict()
    h = report["sources"][0]["history_conflicts"]
    assert h["versions"] == 6 and h["contents"] == len(flips) > 0
    assert {i["content"]: i["changes"] for i in h["items"]} == flips
    assert all(len(i["sequence"]) == i["changes"] + 1 for i in h["items"])
    # The sequences name the commits where each label set began.
    commits = [e.id for e in repo.log()][::-1]
    assert all(step["commit"] in commits for i in h["items"] for step in i["sequence"])
    # Only 3 versions searched: fewer flips possible, never more.
    assert repo.audit("HEAD", history=3).to_dict()["sources"][0]["history_conflicts"]["contents"] <= len(flips)
    assert repo.audit("HEAD", history=0).to_dict()["sources"][0]["history_conflicts"]["versions"] == 0


# -- hard samples ---------------------------------------------------------------------------------------


def confident_learning(df: pd.DataFrame) -> tuple[dict[str, tuple[int, int]], set[int]]:
    """Per given class (samples, likely errors) and the flagged ids, computed with pandas."""
    agree = df[df.label == df.predicted]
    t = agree.groupby("predicted")["confidence"].mean().to_dict()
    flagged = df[(df.label != df.predicted) & df.predicted.map(lambda p: p in t) & (df.confidence >= df.predicted.map(lambda p: t.get(p, 2.0)))]
    per = {c: (len(g), int(g.id.isin(flagged.id).sum())) for c, g in df.groupby("label")}
    return per, set(flagged.id)


def test_hard_samples_match_an_independent_confident_learning(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    rng = random.Random(9)
    n = 200
    classes = ["a", "b", "c"]
    labels = [rng.choice(classes) for _ in range(n)]
    write_tree(repo_dir, {"ann.csv": "id,label,x\n" + "".join(f"{i},{labels[i]},{i}\n" for i in range(n)), "dsv.toml": '[[tables]]\npath = "ann.csv"\nkey = "id"\nlabel = "label"\n'})
    repo.commit("v1")
    preds = []
    for i in range(n):
        p = labels[i] if rng.random() < 0.8 else rng.choice(classes)
        preds.append({"id": i, "predicted": p, "confidence": round(rng.uniform(0.3, 1.0), 4)})
    pdf = pd.DataFrame(preds)
    pdf.to_parquet(tmp_path / "preds.parquet")
    (tmp_path / "m.json").write_text(json.dumps({"accuracy": 0.8}))
    entry = repo.add_metrics("HEAD", tmp_path / "m.json", name="run1", predictions=tmp_path / "preds.parquet")
    assert entry.record.format == 2 and entry.record.predictions is not None and entry.record.predictions.rows == n
    hard = repo.audit("HEAD", limit=1000).to_dict()["sources"][0]["hard_samples"]
    merged = pdf.assign(label=labels)
    per, flagged = confident_learning(merged)
    assert hard["record"] == "run1" and hard["predictions"] == n and hard["matched"] == n and hard["score"] == "confidence"
    assert {c["class"]: (c["samples"], c["likely_errors"]) for c in hard["classes"]} == per
    for c in hard["classes"]:
        assert c["error_rate"] == pytest.approx(c["likely_errors"] / c["samples"])
    assert {int(i["key"]["id"]) for i in hard["items"]} == flagged and hard["likely_errors"] == len(flagged)
    # Ranked per class by confidence, most confident first.
    for cls, group in itertools.groupby(hard["items"], key=lambda i: i["label"]):
        conf = [i["confidence"] for i in group]
        assert conf == sorted(conf, reverse=True), cls


def test_hard_samples_from_loss_only_csv(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    write_tree(repo_dir, {"d/cat/1": "1", "d/cat/2": "2", "d/cat/3": "3", "d/dog/4": "4", "d/dog/5": "5", "dsv.toml": '[[folders]]\npattern = "d/{label}/*"\n'})
    repo.commit("v1")
    (tmp_path / "p.csv").write_text("path,predicted,loss\nd/cat/1,cat,0.1\nd/cat/2,dog,2.5\nd/cat/3,cat,0.2\nd/dog/4,dog,0.3\nd/dog/5,cat,0.1\n")
    (tmp_path / "m.json").write_text('{"accuracy": 0.6}')
    repo.add_metrics("HEAD", tmp_path / "m.json", name="r", predictions=tmp_path / "p.csv")
    hard = repo.audit("HEAD").to_dict()["sources"][0]["hard_samples"]
    # Self-confidence exp(-loss): cat mean (e^-0.1 + e^-2.5 + e^-0.2)/3; d/cat/2 is below it and disagrees.
    # dog mean (e^-0.3 + e^-0.1)/2 = 0.823; d/dog/5 has e^-0.1 = 0.905 above it: not flagged.
    assert hard["score"] == "loss" and [i["path"] for i in hard["items"]] == ["d/cat/2"]
    t_cat = (math.exp(-0.1) + math.exp(-2.5) + math.exp(-0.2)) / 3
    assert next(c for c in hard["classes"] if c["class"] == "cat")["threshold"] == pytest.approx(t_cat)


@pytest.mark.parametrize(
    "content, message",
    [
        ("id,confidence\n1,0.5\n", "'predicted' column"),
        ("id,predicted\n1,a\n", "'confidence' or a 'loss'"),
        ("id,predicted,confidence\n1,a,1.5\n", "outside 0..1"),
        ("predicted,confidence\na,0.5\n", "key column"),
        ("id,predicted,loss\n1,a,-1\n", "negative"),
    ],
)
def test_bad_predictions_are_refused_in_one_line(repo: dsv.Repo, repo_dir: Path, tmp_path: Path, content: str, message: str) -> None:
    write_tree(repo_dir, {"x": "1"})
    repo.commit("v1")
    (tmp_path / "p.csv").write_text(content)
    (tmp_path / "m.json").write_text('{"accuracy": 0.6}')
    proc = run_dsv("metrics", "add", "HEAD", str(tmp_path / "m.json"), "--name", "r", "--predictions", str(tmp_path / "p.csv"), cwd=repo_dir)
    err = proc.stderr.decode().strip()
    assert proc.returncode == 3 and message in err and err.count("\n") == 0, err
    assert repo.metrics("HEAD") == []


def test_predictions_survive_gc_and_fsck_sees_them(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    write_tree(repo_dir, {"d/cat/1": "1", "dsv.toml": '[[folders]]\npattern = "d/{label}/*"\n'})
    repo.commit("v1")
    (tmp_path / "p.csv").write_text("path,predicted,confidence\nd/cat/1,dog,0.9\n")
    (tmp_path / "m.json").write_text('{"accuracy": 0.6}')
    entry = repo.add_metrics("HEAD", tmp_path / "m.json", name="r", predictions=tmp_path / "p.csv")
    oid = entry.record.predictions.oid
    repo.gc(0)
    assert repo.repository.store.has(oid)
    assert repo.fsck().ok
    # A record without predictions keeps the format-1 bytes (no "predictions" key).
    plain = repo.add_metrics("HEAD", tmp_path / "m.json", name="plain")
    raw = json.loads(repo.repository.store.read(plain.oid))
    assert raw["format"] == 1 and "predictions" not in raw


# -- the CLI ------------------------------------------------------------------------------------------------


def test_cli_audit_formats_fail_on_and_source(repo: dsv.Repo, repo_dir: Path) -> None:
    files, _ = folder_dataset(random.Random(1), 80)
    files["t.csv"] = "id,y\n1,a\n2,b\n3,\n"
    files["dsv.toml"] = '[[folders]]\npattern = "img/{split}/{label}/*"\nname = "images"\n[[tables]]\npath = "t.csv"\nkey = "id"\nlabel = "y"\n'
    write_tree(repo_dir, files)
    repo.commit("v1")
    js = json.loads(run_dsv("audit", "HEAD", "--json", cwd=repo_dir, check=True).stdout)
    assert [s["name"] for s in js["sources"]] == ["images", "t.csv"] and js["failed"] is False
    assert js["overall"]["missing-labels"] == 1 and js["overall"]["conflicts"] == js["sources"][0]["conflicts"]["contents"]
    only = json.loads(run_dsv("audit", "--source", "t.csv", "--format", "json", cwd=repo_dir, check=True).stdout)
    assert [s["name"] for s in only["sources"]] == ["t.csv"]
    text = run_dsv("audit", "HEAD", cwd=repo_dir, check=True).stdout.decode()
    assert "Label conflicts" in text and "Split leakage in 'split'" in text and "img/train/cat/p1.bin" in text
    md = run_dsv("audit", "HEAD", "--format", "md", cwd=repo_dir, check=True).stdout.decode()
    assert md.startswith("## Data audit") and "| content | labels | samples | examples |" in md
    proc = run_dsv("audit", "HEAD", "--fail-on", "conflicts,missing-labels,imbalance>1000", cwd=repo_dir)
    assert proc.returncode == 1 and "FAILED  conflicts" in proc.stdout.decode() and "ok  imbalance>1000" in proc.stdout.decode()
    js = json.loads(run_dsv("audit", "--fail-on", "imbalance>1000,unknown-labels", "--json", cwd=repo_dir, check=True).stdout)
    assert js["failed"] is False and [c["check"] for c in js["checks"]] == ["imbalance>1000", "unknown-labels"]
    bad = run_dsv("audit", "--fail-on", "conflicts>x", cwd=repo_dir)
    assert bad.returncode == 2 and "--fail-on" in bad.stderr.decode()
    nosrc = run_dsv("audit", "--source", "nope", cwd=repo_dir)
    assert nosrc.returncode == 2 and "images" in nosrc.stderr.decode()


def test_changelog_audit_shows_findings_appear_and_disappear(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"dsv.toml": '[[folders]]\npattern = "d/{split}/{label}/*"\n[audit]\nmin_samples = 0\n', "d/train/cat/1": "a", "d/train/dog/2": "b"})
    repo.commit("clean")
    write_tree(repo_dir, {"d/test/cat/3": "a"})  # leakage (train/test) appears
    repo.commit("leak")
    (repo_dir / "d/test/cat/3").unlink()
    write_tree(repo_dir, {"d/train/dog/4": "a"})  # leakage gone, conflict appears
    repo.commit("conflict")
    js = json.loads(run_dsv("changelog", "--audit", "--json", cwd=repo_dir, check=True).stdout)
    steps = [(e["commit"]["message"], {(c["kind"], c["appeared"], c["disappeared"]) for c in e["audit"]["changes"]}) for e in js["entries"]]
    assert steps[0] == ("conflict", {("conflicts", 1, 0), ("leakage", 0, 1), ("duplicates", 1, 1)})
    assert ("leakage", 1, 0) in steps[1][1] and steps[1][0] == "leak"
    text = run_dsv("changelog", "--audit", cwd=repo_dir, check=True).stdout.decode()
    assert "Audit:" in text and "conflicts +1 -0" in text
    md = run_dsv("changelog", "--audit", "--format", "md", cwd=repo_dir, check=True).stdout.decode()
    assert "**Audit**" in md


@pytest.mark.parametrize(
    "toml, message",
    [
        ('[[folders]]\npattern = "d/{split}/{label}/*"\nsplits = ["fold"]\n', "splits: 'fold' is not a slice of this source (slices: split)"),
        ('[[folders]]\npattern = "d/{label}/*"\nlabels = ["a", "a"]\n', "a class is listed twice"),
        ('[[folders]]\npattern = "d/{label}/*"\n[audit]\nmin_samples = -1\n', "audit.min_samples"),
        ('[[folders]]\npattern = "d/{label}/*"\n[drift]\nbins = 1\n', "drift.bins"),
    ],
)
def test_bad_audit_declarations_stop_with_one_line(repo: dsv.Repo, repo_dir: Path, toml: str, message: str) -> None:
    write_tree(repo_dir, {"d/split/a/1": "x", "dsv.toml": toml})
    proc = run_dsv("audit", cwd=repo_dir)
    err = proc.stderr.decode().strip()
    assert proc.returncode == 3 and message in err and err.count("\n") == 0, err


def test_audit_without_sources_says_how_to_declare_them(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"x": "1"})
    proc = run_dsv("audit", cwd=repo_dir)
    assert proc.returncode == 2 and "no sample source is declared" in proc.stderr.decode() and "dsv.toml" in proc.stderr.decode()
