"""Friction a new user met (issue 8): metric numbers, messages whose hint fits the cause,
--json everywhere data is printed, every command documented, a demo whose commands can be copied."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import dsv
from dsv.metrics.numbers import format_change, format_delta, format_value

from conftest import run_dsv, write_tree

ROOT = Path(__file__).resolve().parent.parent


# -- one rule for metric numbers -----------------------------------------------------------


@pytest.mark.parametrize(
    "value, text",
    [
        (0.81, "0.81"),
        (0.8, "0.80"),
        (0.6666666666666666, "0.6667"),
        (0.09524, "0.0952"),
        (1.0, "1"),
        (30.0, "30"),
        (1200, "1200"),
        (-0.27, "-0.27"),
        (12.345678, "12.3457"),
        (0.000012, "1.2e-05"),
        (0.0, "0"),
        (None, "-"),
    ],
)
def test_format_value(value: float | None, text: str) -> None:
    assert format_value(value) == text


def test_format_delta_is_signed_with_the_same_rule() -> None:
    assert [format_delta(d) for d in (0.05, -0.02, 0.09524, 0.0, 2.0, None)] == ["+0.05", "-0.02", "+0.0952", "+0", "+2", "-"]
    assert format_change(0.81, 0.86, 0.05) == "0.81 -> 0.86 (+0.05)"
    assert format_change(None, 0.4, None) == "- -> 0.40"


@pytest.fixture
def with_metrics(repo: dsv.Repo, repo_dir: Path, tmp_path: Path) -> dsv.Repo:
    write_tree(repo_dir, {"dsv.toml": '[[folders]]\npattern = "img/{label}/*"\n', "img/cat/1": "1", "img/dog/1": "2"})
    repo.commit("v1")
    repo.create_tag("v1")
    write_tree(repo_dir, {"img/cat/2": "3"})
    repo.commit("v2")
    repo.create_tag("v2")
    (tmp_path / "a.json").write_text(json.dumps({"overall": {"accuracy": 0.8, "loss": 0.4123456}, "classes": {"cat": {"f1": 0.81}, "dog": {"f1": 0.9}}}))
    (tmp_path / "b.json").write_text(json.dumps({"overall": {"accuracy": 0.9, "loss": 0.31}, "classes": {"cat": {"f1": 0.86}, "dog": {"f1": 2 / 3}}}))
    repo.add_metrics("v1", tmp_path / "a.json", name="run1")
    repo.add_metrics("v2", tmp_path / "b.json", name="run2")
    return repo


def _numbers(text: str) -> list[str]:
    """Decimal numbers in text, leaving out ISO times (seconds have 6 decimals)."""
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+[+-]\d\d:\d\d", "", text)
    return re.findall(r"[-+]?\d+\.\d+", text)


def test_every_metrics_table_formats_numbers_one_way(with_metrics: dsv.Repo, repo_dir: Path) -> None:
    text = run_dsv("changelog", "v1..v2", "--metrics", cwd=repo_dir, check=True).stdout.decode()
    metrics_part = text[text.index("Metrics ("):]
    assert "accuracy" in metrics_part and "0.80" in metrics_part and "0.90" in metrics_part and "+0.10" in metrics_part, metrics_part
    assert "0.4123" in metrics_part and "-0.1023" in metrics_part
    assert "0.81 -> 0.86 (+0.05)" in metrics_part and "0.90 -> 0.6667 (-0.2333)" in metrics_part
    # At most 4 decimals anywhere, never a raw float repr.
    assert all(len(n.split(".")[1]) <= 4 for n in _numbers(metrics_part)), metrics_part
    md = run_dsv("changelog", "v1..v2", "--metrics", "--format", "md", cwd=repo_dir, check=True).stdout.decode()
    assert "| accuracy | 0.80 | 0.90 | +0.10 |" in md and "0.81 -> 0.86 (+0.05)" in md
    for args in (("log", "--oneline", "--metrics"), ("metrics", "list"), ("metrics", "show", "v2"), ("show", "v2")):
        out = run_dsv(*args, cwd=repo_dir, check=True).stdout.decode()
        assert "0.6667" in out or "0.90" in out, (args, out)
        assert all(len(n.split(".")[1]) <= 4 for n in _numbers(out)), (args, out)
    # JSON keeps full precision.
    js = json.loads(run_dsv("changelog", "v1..v2", "--metrics", "--json", cwd=repo_dir, check=True).stdout)
    dog = [c for c in js["entries"][0]["metrics"]["classes"] if c["class"] == "dog"][0]
    assert dog["metrics"][0]["after"] == 2 / 3


# -- messages whose hint fits the cause ------------------------------------------------------


def test_missing_metrics_file_says_check_the_path(with_metrics: dsv.Repo, repo_dir: Path) -> None:
    proc = run_dsv("metrics", "add", "v1", "nope.json", "--name", "x", cwd=repo_dir)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "nope.json" in err and "check the path" in err, err
    assert "free space" not in err and "permissions" not in err


def test_duplicate_metrics_name_message(with_metrics: dsv.Repo, repo_dir: Path, tmp_path: Path) -> None:
    proc = run_dsv("metrics", "add", "v1", str(tmp_path / "a.json"), "--name", "run1", cwd=repo_dir)
    err = proc.stderr.decode().strip()
    assert proc.returncode == 1 and err.count("\n") == 0
    assert "already has a metrics record named 'run1'" in err and "--force to replace it" in err, err
    assert "move" not in err and "'metrics '" not in err


@pytest.mark.parametrize("path", ["x.xlsx", "x.gz", "data"])
def test_unreadable_table_name_gets_a_plain_message(with_metrics: dsv.Repo, repo_dir: Path, path: str) -> None:
    proc = run_dsv("diff", "--table", path, "--key", "id", "--label", "y", cwd=repo_dir)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Value error" not in err and "cannot tell the table format" in err and path in err, err
    assert ".tsv.gz" in err  # the hint lists what works


def test_tsv_gz_table_flag_works(repo: dsv.Repo, repo_dir: Path) -> None:
    import gzip

    write_tree(repo_dir, {"x.tsv.gz": gzip.compress(b"id\ty\n1\ta\n")})
    repo.commit("a")
    write_tree(repo_dir, {"x.tsv.gz": gzip.compress(b"id\ty\n1\tb\n")})
    out = json.loads(run_dsv("diff", "--table", "x.tsv.gz", "--key", "id", "--label", "y", "--json", cwd=repo_dir, check=True).stdout)
    assert out["sources"][0]["totals"]["relabeled"] == 1


# -- --json wherever data is printed; every command documented --------------------------------

NO_JSON = {
    "init": "prints only where the repository was created",
    "cat": "prints a file's raw bytes",
}


def _commands() -> dict[str, object]:
    import click

    from dsv.cli.app import cli

    out: dict[str, object] = {}
    for name, cmd in cli.commands.items():
        if isinstance(cmd, click.Group):
            for sub, subcmd in cmd.commands.items():
                out[f"{name} {sub}"] = subcmd
        else:
            out[name] = cmd
    return out


def test_every_data_printing_command_takes_json() -> None:
    for name, cmd in _commands().items():
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        if name in NO_JSON:
            assert "--json" not in opts
            continue
        assert "--json" in opts, f"dsv {name} prints data but has no --json"


def test_every_command_is_in_the_command_table_and_documented() -> None:
    from dsv.cli.app import cli

    doc = (ROOT / "docs" / "cli.md").read_text()
    table = doc[: doc.index("## Global options")]
    for name in cli.commands:
        assert re.search(rf"^\| \[`{name}`\]\(#dsv-{name}\) \|", table, re.M), f"the command table of docs/cli.md lacks {name}"
    for name, cmd in _commands().items():
        start = doc.index(f"## dsv {name.split()[0]}\n")
        end = doc.find("\n## ", start + 1)
        section = doc[start : end if end > 0 else None]
        synopsis = section[: section.index("```", section.index("```") + 3)]
        assert f"dsv {name}" in synopsis, f"no synopsis for dsv {name}"
        for p in cmd.params:
            for opt in getattr(p, "opts", []):
                if opt.startswith("--") and opt != "--help":
                    assert opt in section, f"dsv {name}: {opt} is not in its section of docs/cli.md"


def test_config_json(repo: dsv.Repo, repo_dir: Path) -> None:
    assert json.loads(run_dsv("config", "user.name", "--json", cwd=repo_dir, check=True).stdout) == {"key": "user.name", "value": None}
    out = json.loads(run_dsv("config", "core.lock_timeout", "12", "--json", cwd=repo_dir, check=True).stdout)
    assert out == {"key": "core.lock_timeout", "value": 12.0}
    assert json.loads(run_dsv("config", "core.lock_timeout", "--json", cwd=repo_dir, check=True).stdout)["value"] == 12.0
    assert run_dsv("config", "core.lock_timeout", cwd=repo_dir, check=True).stdout.decode().strip() == "12.0"


# -- the demo ----------------------------------------------------------------------------------


def test_demo_prints_commands_that_can_be_copied(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    commands = [line[2:] for line in out.splitlines() if line.startswith("$ ")]
    assert commands and all(shlex.split(c)[0] == "dsv" for c in commands)
    commit = next(c for c in commands if c.startswith("dsv commit"))
    assert shlex.split(commit) == ["dsv", "commit", "-m", "Initial dataset: 3 classes x 30 images"]
    assert not re.search(r"\b1 (more lines|commits|files|objects)\b", out), out
    # It says where the dataset is, that it is deleted, and how to keep it.
    assert "--keep" in out
