"""Remotes through the installed CLI: JSON shapes, one-line errors for bad remotes, credentials never shown."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import read_tree, write_tree

SECRET = "Sup3rSecretValue/with+chars"
KEY_ID = "AKIAEXAMPLEKEYID1234"


def dsv_cmd(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, with an environment of our choosing."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "DSV_DEBUG"}
    base.update({"AWS_EC2_METADATA_DISABLED": "true", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"})
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "dsv", *args], cwd=cwd, capture_output=True, text=True, env=base, timeout=180)


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dsv: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    write_tree(d, {"a.txt": "alpha", "dir/b.bin": os.urandom(3000)})
    assert dsv_cmd("init", cwd=d).returncode == 0
    assert dsv_cmd("commit", "-m", "first", cwd=d).returncode == 0
    return d


def test_push_fetch_pull_clone_json_shapes_over_a_folder(work: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    add = dsv_cmd("remote", "add", "origin", url, "--json", cwd=work)
    assert json.loads(add.stdout) == {"name": "origin", "url": url, "options": {}, "promisor": False}
    push = dsv_cmd("push", "--json", cwd=work)
    assert push.returncode == 0, push.stderr
    out = json.loads(push.stdout)
    assert out["refs"][0]["ref"] == "refs/heads/main" and out["refs"][0]["status"] == "created"
    assert {"objects", "bytes", "packs", "requests", "seconds"} <= set(out)
    clone = dsv_cmd("clone", url, "copy", "--json", cwd=tmp_path)
    assert clone.returncode == 0, clone.stderr
    c = json.loads(clone.stdout)
    assert c["branch"] == "main" and c["written"] == 2 and c["partial"] is False
    assert read_tree(tmp_path / "copy") == read_tree(work)
    write_tree(work, {"a.txt": "beta"})
    dsv_cmd("commit", "-m", "second", cwd=work)
    text = dsv_cmd("push", cwd=work)
    assert text.returncode == 0 and ".." in text.stdout and "main -> main" in text.stdout
    fetch = dsv_cmd("fetch", "--json", cwd=tmp_path / "copy")
    assert json.loads(fetch.stdout)["refs"][0]["ref"] == "refs/remotes/origin/main"
    pull = dsv_cmd("pull", "--json", cwd=tmp_path / "copy")
    assert json.loads(pull.stdout)["status"] == "fast-forward"
    assert (tmp_path / "copy" / "a.txt").read_text() == "beta"
    noop = dsv_cmd("pull", cwd=tmp_path / "copy")
    assert "Already up to date." in noop.stdout
    shallow = dsv_cmd("clone", url, "part", "--depth", "1", "--json", "--", "dir", cwd=tmp_path)
    assert shallow.returncode == 0, shallow.stderr
    assert json.loads(shallow.stdout)["paths"] == ["dir"] and sorted(read_tree(tmp_path / "part")) == ["dir/b.bin"]
    listing = dsv_cmd("remote", "list", "-v", cwd=tmp_path / "part")
    assert "(promisor)" in listing.stdout
    # As git: a bare 'remote' lists them, '-v' with their URLs.
    assert dsv_cmd("remote", "-v", cwd=tmp_path / "part").stdout == listing.stdout
    bare = dsv_cmd("remote", cwd=tmp_path / "part")
    assert bare.returncode == 0 and bare.stdout == dsv_cmd("remote", "list", cwd=tmp_path / "part").stdout == "origin\n"
    as_json = dsv_cmd("remote", "--json", cwd=tmp_path / "part")
    assert as_json.returncode == 0 and as_json.stdout == dsv_cmd("remote", "list", "--json", cwd=tmp_path / "part").stdout
    assert [r["name"] for r in json.loads(as_json.stdout)] == ["origin"]
    misplaced = dsv_cmd("remote", "--json", "remove", "origin", cwd=tmp_path / "part")
    assert misplaced.returncode == 2 and "'dsv remote remove --json'" in misplaced.stderr
    gone = dsv_cmd("remote", "remove", "origin", cwd=work)
    assert gone.returncode == 0 and dsv_cmd("remote", "list", cwd=work).stdout == ""


def test_rejected_push_prints_refs_and_one_error_line(work: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    dsv_cmd("remote", "add", "origin", url, cwd=work)
    dsv_cmd("push", cwd=work)
    other = tmp_path / "other"
    assert dsv_cmd("clone", url, str(other), cwd=tmp_path).returncode == 0
    write_tree(other, {"a.txt": "other"})
    dsv_cmd("commit", "-m", "other", cwd=other)
    dsv_cmd("push", cwd=other)
    write_tree(work, {"a.txt": "mine"})
    dsv_cmd("commit", "-m", "mine", cwd=work)
    proc = dsv_cmd("push", cwd=work)
    assert proc.returncode == 1
    assert "! [rejected]" in proc.stderr
    err = [line for line in proc.stderr.splitlines() if line.startswith("dsv: error:")]
    assert len(err) == 1 and "fetch first" in err[0] and "dsv pull origin" in err[0]
    forced = dsv_cmd("push", "--force", cwd=work)
    assert forced.returncode == 0 and "+" in forced.stdout


def test_credentials_are_never_printed_and_config_is_private(s3_server, work: Path) -> None:
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/repo"
    opts = ["--option", f"endpoint_url={s3_server.endpoint}", "--option", f"key={KEY_ID}", "--option", f"secret={SECRET}"]
    add = dsv_cmd("remote", "add", "origin", url, *opts, cwd=work)
    assert add.returncode == 0, add.stderr
    config = work / ".dsv" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    outputs = [add.stdout + add.stderr]
    for args in (["remote", "list", "-v"], ["remote", "list", "--json"], ["push", "--json"], ["push"], ["fetch", "--json"]):
        proc = dsv_cmd(*args, cwd=work)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout + proc.stderr)
    assert "***" in outputs[1]
    # Errors, with and without --debug (tracebacks): a bucket that does not exist.
    dsv_cmd("remote", "add", "broken", f"s3://no-such-bucket-{bucket}/x", *opts, cwd=work)
    for debug in ([], ["--debug"]):
        proc = dsv_cmd(*debug, "push", "broken", cwd=work)
        assert proc.returncode != 0
        outputs.append(proc.stdout + proc.stderr)
    assert "does not exist" in outputs[-2]
    for out in outputs:
        assert SECRET not in out and KEY_ID not in out, out


@pytest.mark.parametrize("case", ["unreachable", "no-credentials", "wrong-credentials", "missing-bucket", "not-a-repository"])
def test_bad_remotes_fail_in_one_line_and_change_nothing(case: str, request: pytest.FixtureRequest, work: Path, tmp_path: Path) -> None:
    from s3server import CREDENTIALS, free_port

    env = dict(CREDENTIALS)
    if case == "unreachable":
        url, opts = "s3://bucket/x", [f"endpoint_url=http://127.0.0.1:{free_port()}"]
        expect = "unreachable"
    elif case == "no-credentials":
        server = request.getfixturevalue("s3_server")
        url, opts, env = f"s3://{server.new_bucket()}/x", [f"endpoint_url={server.endpoint}"], {}
        expect = "credentials"
    elif case == "wrong-credentials":
        server = request.getfixturevalue("s3_auth_server")
        url, opts = "s3://bucket/x", [f"endpoint_url={server.endpoint}"]
        expect = "access denied"
    elif case == "missing-bucket":
        server = request.getfixturevalue("s3_server")
        url, opts = "s3://no-such-bucket-here/x", [f"endpoint_url={server.endpoint}"]
        expect = "bucket does not exist"
    else:
        url, opts = str(tmp_path / "empty-folder"), []
        (tmp_path / "empty-folder").mkdir()
        expect = "no dsv repository"
    args = [a for o in opts for a in ("--option", o)]
    assert dsv_cmd("remote", "add", "origin", url, *args, cwd=work).returncode == 0
    before = read_tree(work / ".dsv")
    commands = [["fetch"], ["clone", url, str(tmp_path / "clone"), *args]]
    if case != "not-a-repository":
        commands.insert(0, ["push"])
    for cmd in commands:
        line = _one_line_error(dsv_cmd(*cmd, cwd=work, env=env))
        assert expect in line, line
    assert not (tmp_path / "clone").exists()
    after = read_tree(work / ".dsv")
    assert after == before, "a failed remote operation changes nothing locally"


def test_unknown_remote_and_bad_option_are_usage_errors(work: Path) -> None:
    proc = dsv_cmd("push", "nowhere", cwd=work)
    assert proc.returncode == 2 and "no remote named 'nowhere'" in _one_line_error(proc)
    proc = dsv_cmd("remote", "add", "x", "/tmp/x", "--option", "novalue", cwd=work)
    assert proc.returncode == 2 and "KEY=VALUE" in _one_line_error(proc)


@pytest.mark.parametrize("damage", ["truncated", "other-objects-bytes"])
def test_damaged_remote_objects_are_one_line_and_nothing_is_kept(damage: str, work: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    write_tree(work, {"x.txt": "XXXXXXXXXXXX", "y.txt": "YYYYYYYYYYYY"})
    dsv_cmd("commit", "-m", "xy", cwd=work)
    dsv_cmd("remote", "add", "origin", url, cwd=work)
    assert dsv_cmd("push", cwd=work).returncode == 0
    (pack,) = [p for p in (Path(url) / "packs").iterdir() if p.name.startswith("pack-") and p.suffix == ".pack"]
    pack.chmod(0o644)
    if damage == "truncated":
        with open(pack, "r+b") as f:
            f.truncate(pack.stat().st_size - 7)
        expect = "truncated"
    else:
        pack.write_bytes(pack.read_bytes().replace(b"XXXXXXXXXXXX", b"YYYYYYYYYYYY"))
        expect = "does not verify"
    proc = dsv_cmd("clone", url, str(tmp_path / "copy"), cwd=tmp_path)
    line = _one_line_error(proc)
    assert proc.returncode == 3 and expect in line and url in line, line
    assert not (tmp_path / "copy").exists()
