"""Regression tests from an outside review of audits, drift and the report (issue 12).

Each test reproduces one finding: hostile strings in the report's embedded JSON
and in Markdown, predictions with duplicate keys, NaN drift thresholds, an empty
``--fail-on``, and unknown labels of multi-label samples.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import dsv

from conftest import run_dsv, write_tree

HOSTILE = '<!--<script>'
IMG = "<img src=x onerror=alert(1)>"


def _two_versions(repo: dsv.Repo, repo_dir: Path) -> None:
    toml = '[[tables]]\npath = "t.csv"\nkey = "id"\nlabel = "lab"\nslices = ["split"]\n'
    write_tree(repo_dir, {"dsv.toml": toml, "t.csv": "id,lab,split,f\n1,a,train,1\n2,b,test,2\n3,a,train,3\n"})
    repo.commit("v1")
    repo.create_tag("v1")
    rows = f'id,lab,split,f\n1,a,train,1\n2,"{HOSTILE}",test,2\n3,"{IMG}","{IMG}",3\n4,a,"{HOSTILE}",3\n'
    write_tree(repo_dir, {"t.csv": rows})
    repo.commit("v2")
    repo.create_tag("v2")


def test_report_embedded_json_survives_comment_and_script_in_labels(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    # "<!--<script>" in the JSON puts the HTML tokenizer in "script data double escaped"
    # state: the closing </script> no longer closes the block and the embedded JSON breaks.
    _two_versions(repo, repo_dir)
    out = tmp_path / "r.html"
    run_dsv("report", "v1..v2", "-o", str(out), cwd=repo_dir, check=True)
    page = out.read_text()
    start = page.index('<script type="application/json" id="dsv-report-data">') + len('<script type="application/json" id="dsv-report-data">')
    end = page.index("</script>", start)
    payload = page[start:end]
    assert "<!--" not in payload and not re.search(r"<script", payload, re.I)
    data = json.loads(payload)
    assert any(c["class"] == HOSTILE for s in data["diff"]["sources"] for c in s["classes"])


def test_markdown_escapes_html_in_labels_and_slices(repo: dsv.Repo, repo_dir: Path) -> None:
    # A label "<!--" in a PR comment hides everything after it; "<img onerror>" renders.
    _two_versions(repo, repo_dir)
    outputs = {
        "audit": run_dsv("audit", "v2", "--format", "md", cwd=repo_dir, check=True).stdout.decode(),
        "report": run_dsv("report", "v1..v2", "--format", "md", cwd=repo_dir, check=True).stdout.decode(),
        "drift": run_dsv("diff", "v1", "v2", "--drift", "--format", "md", cwd=repo_dir, check=True).stdout.decode(),
        "changelog": run_dsv("changelog", "v1..v2", "--audit", "--format", "md", cwd=repo_dir, check=True).stdout.decode(),
    }
    for name, md in outputs.items():
        assert "<!--" not in md and "<img" not in md and "<script" not in md, name
        assert "&lt;img src=x onerror=alert(1)>" in md, name


def _folder_repo(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(
        repo_dir,
        {
            "dsv.toml": '[[folders]]\npattern = "img/{label}/*"\n',
            "img/cat/a.png": b"A",
            "img/cat/b.png": b"B",
            "img/dog/c.png": b"C",
        },
    )
    repo.commit("v1")


def test_duplicate_prediction_keys_are_not_counted_twice(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    # Two prediction rows for one sample made it count twice in matched, per-class samples and errors.
    _folder_repo(repo, repo_dir)
    (tmp_path / "m.json").write_text('{"accuracy": 0.5}')
    (tmp_path / "p.csv").write_text(
        "path,predicted,confidence\nimg/cat/a.png,dog,0.9\nimg/cat/a.png,cat,0.6\nimg/cat/b.png,cat,0.6\nimg/dog/c.png,dog,0.9\n"
    )
    repo.add_metrics("HEAD", tmp_path / "m.json", name="run", predictions=tmp_path / "p.csv")
    proc = run_dsv("audit", "HEAD", "--json", cwd=repo_dir)
    assert proc.returncode == 0, proc.stderr
    js = json.loads(proc.stdout)
    hard = js["sources"][0]["hard_samples"]
    assert hard is None
    assert any("img/cat/a.png" in w and "predictions" in w for w in js["warnings"]), js["warnings"]
    assert b"Traceback" not in proc.stderr


def test_drift_thresholds_refuse_nan(repo: dsv.Repo, repo_dir: Path) -> None:
    # --psi nan / --ks nan passed FloatRange and silently flagged nothing (every comparison with NaN is false).
    _two_versions(repo, repo_dir)
    for opt in ("--psi", "--ks"):
        proc = run_dsv("diff", "v1", "v2", "--drift", "--exit-code", opt, "nan", cwd=repo_dir)
        assert proc.returncode == 2, (opt, proc.returncode, proc.stderr)
        err = proc.stderr.decode()
        assert opt in err and "Traceback" not in err and len(err.strip().splitlines()) <= 4


def test_fail_on_without_any_check_is_refused(repo: dsv.Repo, repo_dir: Path) -> None:
    # `--fail-on "$CHECKS"` with an empty variable silently ran no check and exited 0.
    _folder_repo(repo, repo_dir)
    for spec in ("", ",", " , "):
        proc = run_dsv("audit", "--fail-on", spec, cwd=repo_dir)
        assert proc.returncode == 2, (spec, proc.returncode)
        err = proc.stderr.decode().strip()
        assert err.startswith("dsv: error: --fail-on") and "\n" not in err


def test_unknown_labels_count_samples_not_classes(repo: dsv.Repo, repo_dir: Path) -> None:
    # docs/audit.md: unknown-labels counts "samples whose label is outside the declared set";
    # a multi-label sample with two unknown classes was counted twice.
    tbl = pa.table({"id": [1, 2, 3, 4], "lab": [["alien", "martian"], ["cat"], ["cat", "alien"], []], "f": [1, 2, 3, 4]})
    repo_dir.joinpath("t.parquet").parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(tbl, repo_dir / "t.parquet")
    write_tree(repo_dir, {"dsv.toml": '[[tables]]\npath = "t.parquet"\nkey = "id"\nlabel = "lab"\nlabels = ["cat"]\n'})
    repo.commit("v1")
    js = json.loads(run_dsv("audit", "HEAD", "--json", cwd=repo_dir, check=True).stdout)
    src = js["sources"][0]
    assert src["counts"]["unknown-labels"] == 2
    assert js["overall"]["unknown-labels"] == 2
    assert {c["class"]: c["count"] for c in src["coverage"]["unknown_labels"]} == {"alien": 2, "martian": 1}


def test_drift_missing_is_not_a_new_or_vanished_category(repo: dsv.Repo, repo_dir: Path) -> None:
    # Missing values have their own share (missing_ref/missing_cur); listed as a "new category"
    # NULL showed in text as "(none)" beside a count of 1, reading as "nothing new".
    write_tree(repo_dir, {"dsv.toml": '[[tables]]\npath = "t.csv"\nkey = "id"\nlabel = "y"\n', "t.csv": "id,y,c\n1,a,x\n2,b,y\n3,a,\n"})
    repo.commit("v1")
    repo.create_tag("v1")
    write_tree(repo_dir, {"t.csv": "id,y,c\n1,a,x\n2,b,\n3,a,z\n"})
    repo.commit("v2")
    repo.create_tag("v2")
    js = json.loads(run_dsv("diff", "v1", "v2", "--drift", "--json", cwd=repo_dir, check=True).stdout)
    c = {x["column"]: x for x in js["drift"]["sources"][0]["columns"]}["c"]
    assert c["new_categories"] == {"count": 1, "values": ["z"]}
    assert c["vanished_categories"] == {"count": 1, "values": ["y"]}
    write_tree(repo_dir, {"t.csv": "id,y,c\n1,a,x\n2,b,y\n3,a,y\n"})
    repo.commit("v3")
    c = {x["column"]: x for x in json.loads(run_dsv("diff", "v2", "HEAD", "--drift", "--json", cwd=repo_dir, check=True).stdout)["drift"]["sources"][0]["columns"]}["c"]
    assert c["vanished_categories"] == {"count": 1, "values": ["z"]} and c["missing_ref"] > 0 and c["missing_cur"] == 0


def test_report_long_labels_do_not_overflow(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    # A 3000-character class name was one SVG <text> (no wrapping): the page scrolled
    # sideways for thousands of pixels and shorter long names ran off the chart's edge.
    long = "x" * 3000
    write_tree(repo_dir, {"dsv.toml": '[[tables]]\npath = "t.csv"\nkey = "id"\nlabel = "y"\n', "t.csv": "id,y,f\n1,a,1\n2,b,2\n"})
    repo.commit("v1")
    write_tree(repo_dir, {"t.csv": f"id,y,f\n1,a,1\n2,{long},2\n"})
    repo.commit("v2")
    out = tmp_path / "r.html"
    run_dsv("report", "HEAD", "-o", str(out), cwd=repo_dir, check=True)
    page = out.read_text()
    body = page[: page.index('<script type="application/json"')]
    texts = re.findall(r"<text[^>]*>(?:<title>.*?</title>)?([^<]*)</text>", body, re.S)
    assert texts and max(len(t) for t in texts) <= 20
    assert f"<title>{long}</title>" in body  # the full name stays available
    assert "overflow-wrap:anywhere" in page


def test_float_predicted_classes_match_integer_labels(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    # Keys were matched as canonical text (1.0 -> 1) but predicted classes were not: a float
    # predicted column (2.0) never equalled the label 2, every sample "disagreed", no class had
    # a threshold and the audit reported 0 likely errors without a word.
    pq.write_table(pa.table({"id": [1, 2, 3, 4], "lab": [1, 2, 2, 2], "f": [1.0, 2.0, 3.0, 4.0]}), repo_dir / "t.parquet")
    write_tree(repo_dir, {"dsv.toml": '[[tables]]\npath = "t.parquet"\nkey = "id"\nlabel = "lab"\n'})
    repo.commit("v1")
    (tmp_path / "m.json").write_text('{"accuracy": 0.5}')
    pq.write_table(
        pa.table({"id": [1.0, 2.0, 3.0, 4.0], "predicted": [2.0, 2.0, 2.0, 2.0], "confidence": [0.95, 0.9, 0.8, 0.7]}), tmp_path / "p.parquet"
    )
    repo.add_metrics("HEAD", tmp_path / "m.json", name="run", predictions=tmp_path / "p.parquet")
    js = json.loads(run_dsv("audit", "HEAD", "--json", cwd=repo_dir, check=True).stdout)
    hard = js["sources"][0]["hard_samples"]
    assert hard["matched"] == 4 and hard["likely_errors"] == 1
    assert [(i["key"], i["predicted"]) for i in hard["items"]] == [({"id": 1}, "2")]


def test_predictions_naming_no_known_class_warn(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    # Predictions written as class indices for a dataset labelled by name matched every sample
    # and flagged nothing, silently.
    _folder_repo(repo, repo_dir)
    (tmp_path / "m.json").write_text('{"accuracy": 0.5}')
    (tmp_path / "p.csv").write_text("path,predicted,confidence\nimg/cat/a.png,0,0.9\nimg/cat/b.png,1,0.6\nimg/dog/c.png,1,0.9\n")
    repo.add_metrics("HEAD", tmp_path / "m.json", name="run", predictions=tmp_path / "p.csv")
    js = json.loads(run_dsv("audit", "HEAD", "--json", cwd=repo_dir, check=True).stdout)
    assert any("predicted" in w and "class" in w and "run" in w for w in js["warnings"]), js["warnings"]


def test_drift_pair_without_a_format_is_a_dsv_toml_error(repo: dsv.Repo, repo_dir: Path) -> None:
    # docs/audit.md: a malformed dsv.toml entry stops the command with one line, exit 3 (not 2, a usage error).
    toml = '[[tables]]\npath = "t.csv"\nkey = "id"\nlabel = "y"\n[[drift.pairs]]\nreference = "t.csv"\ncurrent = "prod.bin"\n'
    write_tree(repo_dir, {"dsv.toml": toml, "t.csv": "id,y,f\n1,a,1\n", "prod.bin": "id,f\n1,2\n"})
    repo.commit("v1")
    proc = run_dsv("diff", "HEAD", "--drift", cwd=repo_dir)
    err = proc.stderr.decode().strip()
    assert proc.returncode == 3 and "prod.bin" in err and "format" in err and "\n" not in err


def test_report_refuses_an_unknown_metrics_name_as_audit_does(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    # `dsv audit --metrics-name nope` exits 2; `dsv report --metrics-name nope` only warned and wrote a page
    # without the metrics the user asked for.
    _folder_repo(repo, repo_dir)
    write_tree(repo_dir, {"img/dog/d.png": b"D"})
    repo.commit("v2")
    out = tmp_path / "r.html"
    proc = run_dsv("report", "HEAD~1..HEAD", "--metrics-name", "nope", "-o", str(out), cwd=repo_dir)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.decode().strip()
    assert "nope" in err and "\n" not in err and not out.exists()
