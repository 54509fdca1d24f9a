"""Mistakes that used to pass silently (issue 8): a source that exists nowhere, a dsv.toml that
does not parse, warnings on stdout; and ``dsv check``, which validates dsv.toml for CI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dsv
from dsv.base.errors import DsvError, UsageError
from dsv.semantic.declaration import Declaration, FolderSource, TableSource

from conftest import run_dsv, write_tree


def _one_line_error(proc, code: int) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code, (proc.returncode, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dsv: error: "), err
    return lines[0]


@pytest.fixture
def two(repo: dsv.Repo, repo_dir: Path) -> dsv.Repo:
    write_tree(repo_dir, {"t.csv": "id,label\n1,a\n", "img/a/1.png": "1"})
    repo.commit("v1")
    write_tree(repo_dir, {"t.csv": "id,label\n1,b\n", "img/a/2.png": "2"})
    repo.commit("v2")
    return repo


# -- a source that exists in neither version ---------------------------------------------


def test_table_flag_naming_no_file_is_an_error(two: dsv.Repo, repo_dir: Path) -> None:
    proc = run_dsv("diff", "HEAD~1", "HEAD", "--table", "nope.csv", "--key", "id", "--label", "label", cwd=repo_dir)
    line = _one_line_error(proc, 2)
    assert "nope.csv" in line and "HEAD~1" in line and "HEAD" in line
    assert proc.stdout == b""


def test_folder_flag_matching_no_file_is_an_error(two: dsv.Repo, repo_dir: Path) -> None:
    for pattern in ("nope/{label}/*", "img/{label}/*.jpg"):
        proc = run_dsv("diff", "HEAD~1", "HEAD", "--folder", pattern, cwd=repo_dir)
        line = _one_line_error(proc, 2)
        assert pattern in line


def test_declared_table_absent_on_both_sides_stops_a_diff_but_not_a_changelog(two: dsv.Repo, repo_dir: Path) -> None:
    decl = Declaration(tables=[TableSource(path="gone.csv", key=["id"], label="label")])
    with pytest.raises(UsageError, match="gone.csv"):
        two.semantic_diff("HEAD~1", "HEAD", declaration=decl)
    write_tree(repo_dir, {"dsv.toml": "[[tables]]\npath = 'gone.csv'\nkey = 'id'\nlabel = 'label'\n"})
    with pytest.raises(DsvError) as exc:
        two.semantic_diff("HEAD", None)
    assert "gone.csv" in str(exc.value) and "dsv.toml" in str(exc.value) and exc.value.exit_code == 3
    # A changelog step before the table existed is normal: reported as not read.
    two.commit("declare a table added later")
    entries = two.changelog()
    assert entries[0][1].sources[0].read is False and not entries[0][1].warnings


def test_an_existing_source_still_diffs(two: dsv.Repo) -> None:
    decl = Declaration(tables=[TableSource(path="t.csv", key=["id"], label="label")], folders=[FolderSource(pattern="img/{label}/*")])
    d = two.semantic_diff("HEAD~1", "HEAD", declaration=decl)
    assert [s.read for s in d.sources] == [True, True]


# -- dsv.toml that does not parse --------------------------------------------------------


@pytest.mark.parametrize(
    "toml, needle",
    [("[[tables]\npath = 'x'\n", "not valid TOML"), ("[[tables]]\npath = 't.csv'\nkey = 'id'\nlable = 'label'\n", "lable")],
)
def test_commit_warns_about_a_broken_dsv_toml_and_still_commits(repo: dsv.Repo, repo_dir: Path, toml: str, needle: str) -> None:
    write_tree(repo_dir, {"t.csv": "id,label\n1,a\n", "dsv.toml": toml})
    proc = run_dsv("commit", "-m", "with a typo", cwd=repo_dir)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dsv: warning: dsv.toml") and needle in err[0], err
    assert "committed" in err[0]
    assert repo.log()[0].commit.message == "with a typo"
    res = repo.commit("again", allow_empty=True)
    assert any("dsv.toml" in w for w in res.warnings)
    write_tree(repo_dir, {"dsv.toml": "[[tables]]\npath = 't.csv'\nkey = 'id'\nlabel = 'label'\n"})
    assert not repo.commit("fixed").warnings


# -- warnings go to stderr ---------------------------------------------------------------


def test_changelog_warnings_go_to_stderr(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"a.csv": "id,label\n1,x\n", "dsv.toml": "[[tables]]\npath='a.csv'\nkey='id'\nlable='label'\n"})
    repo.commit("broken toml")
    write_tree(repo_dir, {"a.csv": "id,label\n1,y\n", "dsv.toml": "[[tables]]\npath='a.csv'\nkey='id'\nlabel='label'\n"})
    repo.commit("fixed")
    broken = repo.log()[1].id
    for args in ((), ("--format", "md"), ("--json",)):
        proc = run_dsv("changelog", *args, cwd=repo_dir, check=True)
        err = proc.stderr.decode().splitlines()
        assert err and all(line.startswith(f"dsv: warning: {broken[:10]}: ") for line in err), err
        assert "malformed" in err[0]
        if not args:
            assert "warning" not in proc.stdout.decode()


# -- dsv check ---------------------------------------------------------------------------

GOOD = """
[[folders]]
pattern = "images/{split}/{label}/*"
name = "images"

[[tables]]
path = "ann.csv"
key = "id"
label = "label"
slices = ["split"]
file = "image_path"
types = { label = "string" }
"""


@pytest.fixture
def declared(repo: dsv.Repo, repo_dir: Path) -> dsv.Repo:
    write_tree(
        repo_dir,
        {
            "dsv.toml": GOOD,
            "images/train/cat/1.png": "1",
            "images/val/dog/2.png": "2",
            "ann.csv": "id,label,split,image_path\n1,cat,train,images/train/cat/1.png\n2,dog,val,images/val/dog/2.png\n",
        },
    )
    repo.commit("v1")
    return repo


def test_check_passes_a_good_declaration(declared: dsv.Repo, repo_dir: Path) -> None:
    report = declared.check_declaration()
    assert report.ok and [(s.name, s.samples) for s in report.sources] == [("images", 2), ("ann.csv", 2)]
    proc = run_dsv("check", cwd=repo_dir)
    assert proc.returncode == 0 and b"ok" in proc.stdout, proc.stdout
    doc = json.loads(run_dsv("check", "HEAD", "--json", cwd=repo_dir, check=True).stdout)
    assert doc["ok"] is True and doc["revision"] == "HEAD" and [s["name"] for s in doc["sources"]] == ["images", "ann.csv"]


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda t: t.replace('path = "ann.csv"', 'path = "missing.csv"'), "missing.csv"),
        (lambda t: t.replace('label = "label"', 'label = "species"'), "'species'"),
        (lambda t: t.replace('slices = ["split"]', 'slices = ["fold"]'), "'fold'"),
        (lambda t: t.replace('key = "id"', 'key = "uid"'), "'uid'"),
        (lambda t: t.replace('file = "image_path"', 'file = "img"'), "'img'"),
        (lambda t: t.replace('types = { label = "string" }', 'types = { labl = "string" }'), "'labl'"),
        (lambda t: t.replace("images/{split}/{label}/*", "imgs/{split}/{label}/*"), "matches no file"),
        (lambda t: t.replace('name = "images"', 'name = "ann.csv"'), "twice"),
        (lambda t: t + "[[tables]]\npath = 1\n", "tables.1.path"),
    ],
)
def test_check_reports_each_mistake_and_exits_1(declared: dsv.Repo, repo_dir: Path, edit, needle: str) -> None:
    write_tree(repo_dir, {"dsv.toml": edit(GOOD)})
    proc = run_dsv("check", cwd=repo_dir)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert needle in proc.stdout.decode(), proc.stdout.decode()
    doc = json.loads(run_dsv("check", "--json", cwd=repo_dir).stdout)
    assert doc["ok"] is False and needle in json.dumps(doc)
    # The committed declaration is still fine.
    assert run_dsv("check", "HEAD", cwd=repo_dir).returncode == 0


def test_check_reports_repeated_keys_and_missing_files(declared: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"ann.csv": "id,label,split,image_path\n1,cat,train,images/train/cat/1.png\n1,dog,val,images/none.png\n"})
    proc = run_dsv("check", "--json", cwd=repo_dir)
    doc = json.loads(proc.stdout)
    [table] = [s for s in doc["sources"] if s["kind"] == "table"]
    assert any("not unique" in p for p in table["problems"]), table
    assert any("images/none.png" in w for w in table["warnings"]), table
    assert proc.stderr.decode().startswith("dsv: warning: 1 row(s) of ann.csv name")


def test_check_without_dsv_toml(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"a": "1"})
    proc = run_dsv("check", cwd=repo_dir)
    assert proc.returncode == 1 and b"no dsv.toml" in proc.stdout


@pytest.mark.parametrize("args", [[b"ls", b"HEAD", b"\xff"], [b"tag", b"-m", b"x", b"t\xff"], [b"commit", b"-m", b"caf\xe9"]])
def test_an_argument_that_is_not_utf8_is_a_usage_error(repo_dir: Path, args: list[bytes]) -> None:
    """Found by an attack on the command server, in-process too: these ended in an internal error (70)."""
    import subprocess
    import sys

    (repo_dir / "a.txt").write_text("a")
    subprocess.run([sys.executable, "-m", "dsv", "init"], cwd=repo_dir, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "dsv", "commit", "-m", "v1"], cwd=repo_dir, check=True, capture_output=True)
    proc = subprocess.run([sys.executable.encode(), b"-m", b"dsv", *args], cwd=repo_dir, capture_output=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count(b"\n") == 1 and b"is not valid UTF-8" in proc.stderr


# -- revisions typed the way git users type them ---------------------------------------------


def test_commit_ids_resolve_in_either_letter_case(two: dsv.Repo) -> None:
    full = two.resolve("HEAD").commit_id
    assert two.resolve(full.upper()).commit_id == full
    assert two.resolve(full[:8].upper()).commit_id == full
    assert two.resolve(full[:8].upper() + "~1").commit_id == two.resolve("HEAD~1").commit_id


@pytest.mark.parametrize(("rev", "needle"), [("HEAD~1..HEAD", "two arguments"), ("main..", "two arguments"), ("abc", "at least 4 hex digits")])
def test_a_range_or_a_short_prefix_gets_a_hint(two: dsv.Repo, repo_dir: Path, rev: str, needle: str) -> None:
    line = _one_line_error(run_dsv("diff", rev, cwd=repo_dir), 2)
    assert f"unknown revision '{rev}'" in line and needle in line
