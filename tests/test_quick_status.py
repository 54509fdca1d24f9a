"""``dsv status`` served without click (dsv.cli.quick) prints exactly what the click command prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_dsv, write_tree


def _both(cwd: Path, *extra: str) -> tuple[subprocess.CompletedProcess[bytes], subprocess.CompletedProcess[bytes]]:
    """``dsv status EXTRA`` by the quick path, and by click (``-C .`` takes the click path)."""
    quick = run_dsv("status", *extra, cwd=cwd)
    full = run_dsv("-C", ".", "status", *extra, cwd=cwd)
    return quick, full


def _same(cwd: Path) -> str:
    """Both paths agree on exit code, stdout and stderr, with and without ``--json``; the text output (stdout + stderr)."""
    outputs = []
    for extra in ((), ("--json",)):
        quick, full = _both(cwd, *extra)
        assert (quick.returncode, quick.stdout, quick.stderr) == (full.returncode, full.stdout, full.stderr), extra
        outputs.append((quick.stdout + quick.stderr).decode())
    return outputs[0]


def test_quick_status_matches_click_in_every_state(repo_dir: Path) -> None:
    # Outside a repository: the same one-line error and exit code.
    out = _same(repo_dir)
    assert out.startswith("dsv: error:") and run_dsv("status", cwd=repo_dir).returncode != 0
    run_dsv("init", cwd=repo_dir, check=True)
    assert "No commits yet" in _same(repo_dir)
    write_tree(repo_dir, {"cat/1.jpg": b"one", "cat/2.jpg": b"two", "dog/3.jpg": b"three", "with space.txt": b"s"})
    assert "added:" in _same(repo_dir)
    run_dsv("commit", "-m", "v1", cwd=repo_dir, check=True)
    assert "nothing to commit, working tree clean" in _same(repo_dir)
    (repo_dir / "cat/1.jpg").write_bytes(b"ONE")
    (repo_dir / "dog/3.jpg").rename(repo_dir / "dog/4.jpg")
    (repo_dir / "cat/2.jpg").unlink()
    (repo_dir / "new.txt").write_bytes(b"n")
    out = _same(repo_dir)
    assert "modified:" in out and "moved:" in out and "removed:" in out and "added:" in out
    run_dsv("commit", "-m", "v2", cwd=repo_dir, check=True)
    run_dsv("checkout", "HEAD~1", cwd=repo_dir, check=True)
    assert "HEAD detached at" in _same(repo_dir)
    # A subfolder: the repository is found above the working folder.
    assert "HEAD detached at" in _same(repo_dir / "cat")


def test_quick_status_reports_a_malformed_config_as_one_line(repo_dir: Path) -> None:
    run_dsv("init", cwd=repo_dir, check=True)
    (repo_dir / ".dsv" / "config.json").write_text("{not json")
    quick, full = _both(repo_dir)
    assert quick.returncode == full.returncode != 0
    assert quick.stderr == full.stderr
    assert quick.stderr.decode().startswith("dsv: error:") and b"Traceback" not in quick.stderr


def test_quick_status_imports_neither_click_nor_other_commands(repo_dir: Path) -> None:
    run_dsv("init", cwd=repo_dir, check=True)
    env = dict(os.environ)
    env.pop("DSV_DEBUG", None)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "dsv", "status"], cwd=repo_dir, capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.decode().splitlines() if line.startswith("import time:")}
    assert "dsv.api.status" in imported  # the measurement works
    assert not {"click", "pydantic", "pyarrow"} & imported
    # Start-up is most of a no-op status (docs/architecture.md, "Start-up of status"): not every
    # command's module, and none of the stdlib modules that cost milliseconds each to import.
    assert not {"dsv.api.repo", "dsv.api.remotes", "typing", "dataclasses", "inspect", "socket", "getpass"} & imported
    # Any other argument list goes through click.
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "dsv", "-q", "status"], cwd=repo_dir, capture_output=True, env=env, timeout=60)
    assert "click" in {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.decode().splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("args", [["status", "--help"], ["status", "--bogus"], ["status", "extra"]])
def test_other_status_arguments_take_the_click_path(repo_dir: Path, args: list[str]) -> None:
    run_dsv("init", cwd=repo_dir, check=True)
    proc = run_dsv(*args, cwd=repo_dir)
    if args[1] == "--help":
        assert proc.returncode == 0 and b"Usage:" in proc.stdout
    else:
        assert proc.returncode == 2 and b"Usage:" in proc.stderr


def test_quick_status_survives_a_closed_pipe(repo_dir: Path) -> None:
    run_dsv("init", cwd=repo_dir, check=True)
    write_tree(repo_dir, {f"f{i:05d}.txt": b"x" for i in range(3000)})
    env = dict(os.environ)
    env.pop("DSV_DEBUG", None)
    proc = subprocess.run(
        f"{sys.executable} -m dsv status | head -1", shell=True, cwd=repo_dir, capture_output=True, env=env, timeout=60
    )
    assert proc.stdout == b"On branch main\n"
    assert b"Traceback" not in proc.stderr and b"error" not in proc.stderr


def test_interrupt_reads_the_same_on_both_paths(repo_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import dsv
    from dsv.cli import main
    from dsv.cli.quick import run_status
    from dsv.repository import Repository

    dsv.Repo.init(repo_dir)
    monkeypatch.chdir(repo_dir)

    def interrupted(self: object, head_commit: object) -> None:
        raise KeyboardInterrupt

    # Both paths read the stat cache through the repository (the quick one without dsv.Repo).
    monkeypatch.setattr(Repository, "load_statcache", interrupted)
    assert run_status(["status"]) == 130
    quick = capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["-C", ".", "status"])
    assert info.value.code == 130
    full = capsys.readouterr()
    assert (quick.out, quick.err) == (full.out, full.err) == ("", "\ndsv: interrupted\n")


def _shell(cmd: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[bytes]:
    environ = dict(os.environ)
    environ.pop("DSV_DEBUG", None)
    environ.update(env)
    return subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, env=environ, timeout=60, executable="/bin/bash")


def test_a_reader_that_stops_early_is_not_an_error_on_either_path(repo_dir: Path) -> None:
    run_dsv("init", cwd=repo_dir, check=True)
    write_tree(repo_dir, {f"f{i:05d}.txt": b"x" for i in range(3000)})
    for cmd in ("status", "-C . status", "diff", "ls-files" if False else "status --json"):
        proc = _shell(f"set -o pipefail; {sys.executable} -m dsv {cmd} | head -1 >/dev/null", repo_dir)
        assert proc.returncode == 0, (cmd, proc.stderr)
        assert b"Traceback" not in proc.stderr and b"error" not in proc.stderr, cmd
    run_dsv("commit", "-m", "v1", cwd=repo_dir, check=True)
    for i in range(40):
        run_dsv("commit", "--allow-empty", "-m", f"empty {i}", cwd=repo_dir, check=True)
    proc = _shell(f"set -o pipefail; {sys.executable} -m dsv log | head -1 >/dev/null", repo_dir)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("closed", [">&-", "2>&-", ">&- 2>&-"])
def test_a_closed_output_is_not_a_crash(repo_dir: Path, closed: str) -> None:
    run_dsv("init", cwd=repo_dir, check=True)
    write_tree(repo_dir, {"a.txt": "a"})
    for cmd in ("status", "-C . status", "log"):
        proc = _shell(f"{sys.executable} -m dsv {cmd} {closed}", repo_dir)
        assert proc.returncode == 0, (cmd, closed, proc.stdout, proc.stderr)
        assert b"Traceback" not in proc.stdout + proc.stderr and b"internal error" not in proc.stdout + proc.stderr


def test_names_the_output_encoding_cannot_show_are_escaped_not_a_crash(repo_dir: Path) -> None:
    run_dsv("init", cwd=repo_dir, check=True)
    write_tree(repo_dir, {"caf\u00e9.txt": "x", "\u732b/1.jpg": "y"})
    for cmd in ("status", "-C . status"):
        proc = _shell(f"{sys.executable} -m dsv {cmd}", repo_dir, PYTHONIOENCODING="ascii")
        assert proc.returncode == 0, (cmd, proc.stderr)
        assert b"caf\\xe9" in proc.stdout, proc.stdout
    for cmd in ("status --json", "-C . status --json"):
        proc = _shell(f"{sys.executable} -m dsv {cmd}", repo_dir, PYTHONIOENCODING="ascii")
        assert proc.returncode == 0, (cmd, proc.stderr)
        assert set(json.loads(proc.stdout)["added"]) == {"caf\u00e9.txt", "\u732b/1.jpg"}


def test_commands_import_neither_numpy_nor_pandas(repo_dir: Path) -> None:
    # pyarrow would import them (numpy on import, pandas on its first list conversion);
    # the command needs neither, and they cost up to a second (dsv.cli.run).
    run_dsv("init", cwd=repo_dir, check=True)
    write_tree(repo_dir, {"cat/1.jpg": b"one", "labels.csv": b"id,label\n1,cat\n"})
    run_dsv("commit", "-m", "one", cwd=repo_dir, check=True)
    write_tree(repo_dir, {"dog/2.jpg": b"two", "labels.csv": b"id,label\n1,cat\n2,dog\n"})
    run_dsv("commit", "-m", "two", cwd=repo_dir, check=True)
    env = dict(os.environ)
    env.pop("DSV_DEBUG", None)
    # The console script's entry point, reporting the modules loaded when it exits.
    driver = (
        "import os, sys; exit_ = os._exit\n"
        "def report(code):\n"
        "    sys.stderr.write('MODULES ' + ' '.join(sorted(sys.modules)) + '\\n'); sys.stderr.flush(); exit_(code)\n"
        "os._exit = report; sys.argv[0] = 'dsv'\n"
        "from dsv.cli import run; run()\n"
    )
    for args in (["diff", "HEAD~1", "HEAD"], ["checkout", "HEAD~1"], ["log"]):
        proc = subprocess.run([sys.executable, "-c", driver, *args], cwd=repo_dir, capture_output=True, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        line = next(li for li in proc.stderr.decode().splitlines() if li.startswith("MODULES "))
        loaded = {name.partition(".")[0] for name in line.split()[1:]}
        assert "pyarrow" in loaded or args == ["log"], args  # the check sees what the command loads
        assert not {"numpy", "pandas"} & loaded, (args, {"numpy", "pandas"} & loaded)
