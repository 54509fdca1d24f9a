"""Shared fixtures: hermetic environment, a fresh repository, helpers to run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import dsv


def pytest_sessionstart(session: pytest.Session) -> None:
    """Write dsv's bytecode once: with PYTHONDONTWRITEBYTECODE set (CI machines), every CLI
    subprocess a test starts would otherwise recompile ~70 modules (0.15-0.2 s each time)."""
    import compileall

    compileall.compile_dir(os.path.dirname(dsv.__file__), quiet=1)


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed author, no debug, no leaking of the developer's git identity."""
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "DSV_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DSV_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("DSV_AUTHOR_EMAIL", "test@example.com")
    # dsv:// keeps verified bytes per process; tests that count reads and fetches start empty.
    if "dsv.api.fs" in sys.modules:
        sys.modules["dsv.api.fs"].clear_cache()


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    """An empty folder for a dataset."""
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def repo(repo_dir: Path) -> dsv.Repo:
    """A freshly initialised repository."""
    return dsv.Repo.init(repo_dir)


def write_tree(root: Path, files: dict[str, bytes | str]) -> None:
    """Create ``files`` (path -> content) below ``root``."""
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)


def read_tree(root: Path) -> dict[str, bytes]:
    """Every tracked-kind file below ``root`` (not .dsv) as path -> bytes (symlinks as b'->target')."""
    out: dict[str, bytes] = {}
    for dirpath, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirs[:] = [d for d in dirs if d not in (".dsv", ".git")]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name)).replace(os.sep, "/")
            if os.path.islink(full):
                out[rel] = b"->" + os.fsencode(os.readlink(full))
            else:
                out[rel] = Path(full).read_bytes()
    return out


def run_dsv(*args: str, cwd: Path, check: bool = False, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the real CLI in a subprocess (``python -m dsv``)."""
    env = dict(os.environ)
    env.pop("DSV_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "dsv", *args], cwd=cwd, capture_output=True, env=env, input=input, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"dsv {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode()}")
    return proc


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """A moto S3 server on loopback, proven to honour conditional writes before any test uses it."""
    from s3server import S3Server

    server = S3Server(tmp_path_factory.mktemp("moto"))
    try:
        server.check_conditional_writes()
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch: pytest.MonkeyPatch):
    """Credentials for the test server in the environment (as a user would export them)."""
    from s3server import CREDENTIALS

    for k, v in CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    return s3_server


@pytest.fixture(scope="session")
def s3_auth_server(tmp_path_factory: pytest.TempPathFactory):
    """A second moto server that checks credentials (it knows none, so every key is wrong)."""
    from s3server import S3Server

    server = S3Server(tmp_path_factory.mktemp("moto-auth"), enforce_auth=True)
    try:
        yield server
    finally:
        server.stop()
