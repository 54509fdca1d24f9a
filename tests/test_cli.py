"""The CLI: through click's runner for shapes and errors, through real subprocesses for user paths."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dsv.cli.app import cli, parse_duration
from dsv.cli.errors import format_error
from dsv.cli.progress import TerminalProgress
from dsv.base.errors import UsageError, DsvError

from conftest import run_dsv, write_tree

ROOT = Path(__file__).resolve().parent.parent


def invoke(repo_dir: Path, *args: str) -> tuple[int, str, str]:
    """Run a command in-process through the console script's entry point (``dsv.cli.main``)."""
    from dsv.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    old_cwd = os.getcwd()
    os.chdir(repo_dir)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as e:
                code = int(e.code or 0)
    finally:
        os.chdir(old_cwd)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    write_tree(d, {"img/cat/1.jpg": "c1", "img/dog/1.jpg": "d1", "labels.csv": "id,label\n"})
    code, _, err = invoke(d, "init")
    assert code == 0, err
    return d


def test_every_command_has_help_and_is_documented() -> None:
    runner = CliRunner()
    doc = (ROOT / "docs" / "cli.md").read_text()
    assert sorted(cli.commands) == ["audit", "branch", "cat", "changelog", "check", "checkout", "clone", "commit", "config", "diff", "fetch", "fsck", "fsmonitor", "gc", "init", "log", "ls", "metrics", "pull", "push", "remote", "report", "server", "show", "status", "tag"]
    for name in cli.commands:
        res = runner.invoke(cli, [name, "--help"])
        assert res.exit_code == 0 and "Usage:" in res.output
        assert re.search(rf"^#+ .*dsv {name}\b", doc, re.M), f"docs/cli.md lacks a section for dsv {name}"


def test_json_shapes(data: Path) -> None:
    code, out, _ = invoke(data, "status", "--json")
    st = json.loads(out)
    assert code == 0 and st["head"] is None and sorted(st["added"]) == ["img/cat/1.jpg", "img/dog/1.jpg", "labels.csv"]
    code, out, _ = invoke(data, "commit", "-m", "v1", "--json")
    c1 = json.loads(out)
    assert set(c1) >= {"id", "parents", "author", "email", "time", "message", "manifest", "files", "bytes", "changes", "branch"}
    assert c1["files"] == 3 and c1["branch"] == "main" and c1["author"] == "Test Author"
    (data / "img/dog/1.jpg").rename(data / "img/cat/2.jpg")
    invoke(data, "commit", "-m", "relabel")
    code, out, _ = invoke(data, "log", "--json")
    log = json.loads(out)
    assert [e["message"] for e in log] == ["relabel", "v1"] and log[0]["refs"] == ["HEAD -> main"]
    code, out, _ = invoke(data, "diff", "HEAD~1", "HEAD", "--json")
    d = json.loads(out)["files"]
    assert d["counts"] == {"added": 0, "removed": 0, "modified": 0, "moved": 1}
    assert d["changes"][0]["old_path"] == "img/dog/1.jpg" and d["changes"][0]["path"] == "img/cat/2.jpg"
    code, out, _ = invoke(data, "ls", "HEAD~1", "img", "--json")
    assert [f["path"] for f in json.loads(out)] == ["img/cat/1.jpg", "img/dog/1.jpg"]
    code, out, _ = invoke(data, "tag", "v1", "HEAD~1", "-m", "exp-42", "--meta", "run_id=abc", "--meta", "lr=0.1", "--json")
    t = json.loads(out)
    assert t["annotated"] and t["meta"] == {"run_id": "abc", "lr": "0.1"} and t["commit"] == c1["id"]
    code, out, _ = invoke(data, "show", "v1", "--json")
    s = json.loads(out)
    assert s["id"] == c1["id"] and s["tag"]["name"] == "v1" and s["tag"]["message"] == "exp-42"
    code, out, _ = invoke(data, "tag", "--list", "--json")
    assert [x["name"] for x in json.loads(out)] == ["v1"]
    code, out, _ = invoke(data, "branch", "--list", "--json")
    assert json.loads(out) == [{"name": "main", "commit": log[0]["id"], "current": True}]
    code, out, _ = invoke(data, "fsck", "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    code, out, _ = invoke(data, "gc", "--grace", "0", "--json")
    assert code == 0 and json.loads(out)["objects_removed"] == 0


def test_diff_exit_code_and_cat(data: Path) -> None:
    invoke(data, "commit", "-m", "v1")
    assert invoke(data, "diff", "--exit-code")[0] == 0
    (data / "labels.csv").write_text("id,label\n1,cat\n")
    code, out, _ = invoke(data, "diff", "--exit-code")
    assert code == 1 and "M  labels.csv" in out
    proc = run_dsv("cat", "HEAD:labels.csv", cwd=data)
    assert proc.returncode == 0 and proc.stdout == b"id,label\n"


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["show", "nope"], 2, "unknown revision 'nope'"),
        (["log", "HEAD~5"], 2, "unknown revision"),
        (["cat", "HEAD:missing.txt"], 1, "does not exist at HEAD (see 'dsv ls HEAD'; paths here start at the repository root)"),
        (["cat", "HEAD:"], 1, "no file path given after 'HEAD:' (name a file, as in HEAD:labels.csv"),
        (["tag", "x", "--meta", "novalue"], 2, "KEY=VALUE"),
        (["gc", "--grace", "soon"], 2, "cannot read duration"),
        (["branch", "bad name"], 2, "invalid name"),
        (["checkout", "HEAD", "../outside"], 3, "outside the working tree"),
        (["ls", "HEAD", "/etc"], 3, "outside the working tree (give a path inside "),
        (["ls", "HEAD", ".dsv"], 3, "points inside .dsv (dsv's own files are not part of any version)"),
        (["ls", "HEAD", "nothing/here"], 2, "matches no file"),
        (["commit", "-m", "again"], 1, "nothing to commit"),
        (["config", "user.nickname", "x"], 2, "unknown setting"),
        (["branch", "-d", "nosuch"], 1, "branch 'nosuch' does not exist (list them with 'dsv branch')"),
        (["tag", "-d", "nosuch"], 1, "tag 'nosuch' does not exist (list them with 'dsv tag')"),
    ],
)
def test_errors_are_one_line_without_traceback(data: Path, args: list[str], code: int, needle: str) -> None:
    invoke(data, "commit", "-m", "v1")
    rc, out, err = invoke(data, *args)
    assert rc == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dsv: error:") and needle in lines[0], err
    assert "Traceback" not in err


def test_not_a_repository(tmp_path: Path) -> None:
    rc, _, err = invoke(tmp_path, "status")
    assert rc == 128 and err.startswith("dsv: error: not a dsv repository")


def test_newer_format_is_refused(data: Path) -> None:
    cfg = data / ".dsv" / "config.json"
    doc = json.loads(cfg.read_text())
    doc["format"] = 99
    cfg.write_text(json.dumps(doc))
    rc, _, err = invoke(data, "status")
    assert rc == 3 and "format version 99" in err and "upgrade dsv" in err


def test_malformed_config_is_one_line(data: Path) -> None:
    (data / ".dsv" / "config.json").write_text("{not json")
    rc, _, err = invoke(data, "log")
    assert rc == 3 and len(err.strip().splitlines()) == 1 and "malformed" in err


def test_config_sets_author_and_environment_overrides_it(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke(data, "config", "user.name", "Ada Lovelace")[0] == 0
    assert invoke(data, "config", "user.name")[1].strip() == "Ada Lovelace"
    assert invoke(data, "config", "core.lock_timeout", "2.5")[0] == 0
    assert invoke(data, "config", "core.lock_timeout")[1].strip() == "2.5"
    rc, _, err = invoke(data, "config", "format")
    assert rc == 2 and "unknown setting" in err
    _, out, _ = invoke(data, "commit", "-m", "v1", "--json")
    assert json.loads(out)["author"] == "Test Author"  # DSV_AUTHOR_NAME wins, as GIT_AUTHOR_NAME does in git
    monkeypatch.delenv("DSV_AUTHOR_NAME")
    _, out, _ = invoke(data, "commit", "-m", "v2", "--allow-empty", "--json")
    assert json.loads(out)["author"] == "Ada Lovelace"


def test_real_subprocess_user_path(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    write_tree(d, {"train/cat/a.png": b"\x89PNG", "train/dog/b.png": b"\x89PNG2"})
    run_dsv("init", cwd=d, check=True)
    out = run_dsv("commit", "-m", "first", cwd=d, check=True).stdout.decode()
    assert re.match(r"\[main [0-9a-f]{10}\] first", out)
    (d / "train/dog/b.png").unlink()
    run_dsv("commit", "-m", "drop dog", cwd=d, check=True)
    run_dsv("checkout", "HEAD~1", "--", "train/dog", cwd=d, check=True)
    assert (d / "train/dog/b.png").read_bytes() == b"\x89PNG2"
    st = json.loads(run_dsv("status", "--json", cwd=d, check=True).stdout)
    assert st["added"] == ["train/dog/b.png"]
    proc = run_dsv("show", "doesnotexist", cwd=d)
    assert proc.returncode == 2 and proc.stderr.decode().count("\n") == 1 and b"Traceback" not in proc.stderr
    # Piped output: no progress bar escape codes anywhere.
    assert b"\x1b[" not in proc.stdout + proc.stderr


def test_console_script_is_installed() -> None:
    exe = shutil.which("dsv") or str(Path(os.sys.executable).parent / "dsv")
    assert Path(exe).exists()


def test_progress_bar_draws_only_when_enabled() -> None:
    buf = io.StringIO()
    p = TerminalProgress(buf, enabled=True, min_interval=0)
    p.start("hashing", 10, 1000)
    p.started -= 1  # pretend a second passed so the bar is due
    p.advance(5, 500)
    assert "hashing" in buf.getvalue() and "5/10 files" in buf.getvalue() and "ETA" in buf.getvalue()
    p.finish()
    quiet = io.StringIO()
    q = TerminalProgress(quiet, enabled=False)
    q.start("hashing", 10, 1000)
    q.advance(10, 1000)
    q.finish()
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("text, seconds", [("0", 0), ("now", 0), ("45s", 45), ("30m", 1800), ("12h", 43200), ("3d", 259200), ("2w", 1209600), ("1.5h", 5400)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_error_formatting_is_one_line() -> None:
    line, code = format_error(UsageError("bad\nthing", hint="do this"))
    assert "\n" not in line and code == 2 and line.endswith("(do this)")
    line, code = format_error(OSError(28, "No space left on device", "/x"))
    assert code == 1 and "No space left" in line and "/x" in line
    line, code = format_error(RuntimeError("boom"))
    assert code == 70 and "internal error" in line
    line, code = format_error(MemoryError())
    assert code == 1 and line.startswith("dsv: error: out of memory") and "internal" not in line
    assert issubclass(UsageError, DsvError)


def test_dash_c_makes_paths_relative_to_that_folder(data: Path) -> None:
    invoke(data, "commit", "-m", "v1")
    rc, out, err = invoke(data.parent, "-C", data.name, "ls", "HEAD", "img/cat")
    assert rc == 0, err
    assert out.split() == ["img/cat/1.jpg"]


def test_debug_keeps_the_exit_code(data: Path) -> None:
    invoke(data, "commit", "-m", "v1")
    rc, _, err = invoke(data, "--debug", "show", "nope")
    assert rc == 2 and "Traceback" in err and "unknown revision" in err


def test_show_prefers_the_branch_and_says_so(data: Path) -> None:
    invoke(data, "commit", "-m", "v1")
    invoke(data, "tag", "same", "-m", "a tag")
    (data / "labels.csv").write_text("changed")
    invoke(data, "commit", "-m", "v2")
    invoke(data, "branch", "same")
    _, out, _ = invoke(data, "show", "same", "--json")
    shown = json.loads(out)
    assert shown["message"] == "v2" and shown["tag"] is None


def test_diff_json_shows_mode_changes(data: Path) -> None:
    invoke(data, "commit", "-m", "v1")
    os.chmod(data / "labels.csv", 0o755)
    _, out, _ = invoke(data, "diff", "--json")
    [change] = json.loads(out)["files"]["changes"]
    assert change["kind"] == "modified" and change["old_mode"] == "100644" and change["new_mode"] == "100755"
