"""Small frictions a new user meets (issue 8b, item 7): each message fits its case."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dsv

from conftest import run_dsv, write_tree

TOML = '[[tables]]\npath = "labels.csv"\nkey = "id"\nlabel = "label"\n'


def test_check_counts_read_as_english(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"dsv.toml": TOML, "labels.csv": "id,label\n1,cat\n"})
    out = run_dsv("check", cwd=repo_dir, check=True).stdout.decode()
    assert "1 sample, 1 class" in out and "ok: 1 source checked" in out, out
    write_tree(repo_dir, {"labels.csv": "id,label\n1,cat\n2,dog\n"})
    out = run_dsv("check", cwd=repo_dir, check=True).stdout.decode()
    assert "2 samples, 2 classes" in out, out
    write_tree(repo_dir, {"dsv.toml": TOML.replace('"label"', '"nope"')})
    proc = run_dsv("check", cwd=repo_dir)
    assert proc.returncode == 1 and proc.stdout.decode().rstrip().endswith("\n1 problem"), proc.stdout.decode()


def test_checkout_of_a_path_without_dashdash_hints_at_it(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"labels.csv": "id,label\n1,cat\n", "img/a.png": "a"})
    repo.commit("v1")
    for arg in ("labels.csv", "img", "./img/a.png"):
        proc = run_dsv("checkout", arg, cwd=repo_dir)
        err = proc.stderr.decode()
        assert proc.returncode == 2 and f"unknown revision '{arg}'" in err, err
        assert f"did you mean 'dsv checkout -- {arg}'?" in err, err
    # In HEAD only (deleted locally), or in the working tree only (not committed): the same hint.
    (repo_dir / "labels.csv").unlink()
    write_tree(repo_dir, {"new.txt": "n"})
    for arg in ("labels.csv", "new.txt"):
        assert f"did you mean 'dsv checkout -- {arg}'?" in run_dsv("checkout", arg, cwd=repo_dir).stderr.decode()
    # Neither a revision nor a path: the usual hint.
    err = run_dsv("checkout", "nope", cwd=repo_dir).stderr.decode()
    assert "unknown revision 'nope'" in err and "dsv checkout --" not in err, err


def test_restoring_a_path_in_no_revision_names_the_right_ones(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"a.txt": "a"})
    repo.commit("v1")
    repo.create_tag("v1")
    err = run_dsv("checkout", "--", "newfile.txt", cwd=repo_dir).stderr.decode()
    assert "matches no file in HEAD" in err and "that revision" not in err, err
    err = run_dsv("checkout", "v1", "--", "newfile.txt", cwd=repo_dir).stderr.decode()
    assert "matches no file in v1 or in HEAD" in err, err


def test_forced_checkout_of_the_current_branch_says_restored(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"a.txt": "a"})
    repo.commit("v1")
    write_tree(repo_dir, {"a.txt": "edited"})
    out = run_dsv("checkout", "-f", "HEAD", cwd=repo_dir, check=True).stdout.decode()
    assert "Restored the working tree to HEAD (main)" in out and "Switched" not in out, out
    assert (repo_dir / "a.txt").read_text() == "a"
    repo.create_branch("other")
    out = run_dsv("checkout", "other", cwd=repo_dir, check=True).stdout.decode()
    assert "Switched to branch 'other'" in out, out


def test_a_semicolon_csv_says_which_delimiter_was_used(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"dsv.toml": TOML, "labels.csv": "id;label\n1;cat\n"})
    repo.commit("v1")
    write_tree(repo_dir, {"labels.csv": "id;label\n1;dog\n"})
    repo.commit("v2")
    for args in (["diff", "--table", "labels.csv", "--key", "id", "--label", "label", "HEAD~1", "HEAD"], ["check"]):
        text = run_dsv(*args, cwd=repo_dir).stderr.decode() + run_dsv(*args, cwd=repo_dir).stdout.decode()
        assert "no column 'id' (columns: id;label)" in text, text
        assert "delimiter" in text and "','" in text and 'delimiter = ";"' in text, text


def test_a_file_value_starting_with_dot_slash_names_the_file(repo: dsv.Repo, repo_dir: Path) -> None:
    toml = TOML + 'file = "path"\n'
    write_tree(repo_dir, {"dsv.toml": toml, "labels.csv": "id,label,path\n1,cat,./img/1.png\n2,dog,img/2.png\n", "img/1.png": "1", "img/2.png": "2"})
    repo.commit("v1")
    proc = run_dsv("check", cwd=repo_dir, check=True)
    assert "not at" not in proc.stderr.decode(), proc.stderr.decode()
    write_tree(repo_dir, {"img/1.png": "one", "labels.csv": "id,label,path\n1,cat,./img/1.png\n2,dog,./img/2.png\n"})
    repo.commit("v2")
    src = repo.semantic_diff("HEAD~1", "HEAD").sources[0]
    # Row 1's image changed: modified. Row 2 now writes ./img/2.png, the same file: not modified.
    assert (src.totals.modified, src.totals.unchanged) == (1, 1)


def test_metrics_list_prints_time_as_documented(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    write_tree(repo_dir, {"a.txt": "a"})
    repo.commit("v1")
    (tmp_path / "m.json").write_text(json.dumps({"accuracy": 0.88}))
    repo.add_metrics("HEAD", tmp_path / "m.json", name="run7", meta={"run_id": "7"})
    line = run_dsv("metrics", "list", cwd=repo_dir, check=True).stdout.decode().strip()
    assert re.fullmatch(r"[0-9a-f]{10}  run7  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d  accuracy=0.88  \[run_id=7\]", line), line
    doc = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    example = [ln for ln in doc.splitlines() if "resnet18-run7  " in ln][0]
    assert re.fullmatch(r"[0-9a-f]{10}  resnet18-run7  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d  .*", example), example
    shown = run_dsv("metrics", "show", "HEAD", cwd=repo_dir, check=True).stdout.decode()
    assert not re.search(r"T\d\d:\d\d:\d\d\.\d", shown), shown
