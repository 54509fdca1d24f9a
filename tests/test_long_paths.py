"""A tracked file the OS can no longer reach by path (PATH_MAX) is kept, not reported or committed as removed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

NAME = "d" * 250


def _deep(base: Path, levels: int) -> str:
    """A folder ``levels`` x 251 bytes below ``base``, made through relative mkdir/chdir (its path is too long for open())."""
    here = os.getcwd()
    fd = os.open(base, os.O_RDONLY)
    try:
        os.fchdir(fd)
        for _ in range(levels):
            os.mkdir(NAME)
            os.chdir(NAME)
        return os.getcwd()
    finally:
        os.chdir(here)
        os.close(fd)


def _dsv(cwd_fd_path: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("DSV_DEBUG", None)
    # cwd= would chdir by path (too long): chdir by steps in the child instead.
    code = f"import os, sys, runpy; [os.chdir(p) for p in {cwd_fd_path.split('/')[1:]!r}]; sys.argv = ['dsv', *{list(args)!r}]; runpy.run_module('dsv', run_name='__main__')"
    os.chdir("/")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd="/")


@pytest.mark.skipif(os.pathconf("/", "PC_PATH_MAX") > 4096, reason="needs PATH_MAX 4096")
def test_a_file_beyond_path_max_is_kept_and_named(tmp_path: Path) -> None:
    here = os.getcwd()
    try:
        repo = tmp_path / "r"
        repo.mkdir()
        # A tracked folder 4 x 251 bytes deep, committed while the repository sits shallow...
        inner = _deep(repo, 4)
        Path(inner, "f.txt").write_text("deep")
        (repo / "top.txt").write_text("top")
        assert _dsv(str(repo), "init").returncode == 0
        res = _dsv(str(repo), "commit", "-m", "v1")
        assert res.returncode == 0, res.stderr
        Path(inner, "f.txt").write_text("deeper")
        res = _dsv(str(repo), "commit", "-m", "v1b")
        assert res.returncode == 0, res.stderr
        # ...then moved 14 x 251 bytes deeper: the file's absolute path passes 4,096 bytes.
        deep_parent = _deep(tmp_path, 14)
        os.chdir(tmp_path)
        os.rename("r", os.path.join(os.path.relpath(deep_parent, tmp_path), "r"))
        moved = deep_parent + "/r"
        st = _dsv(moved, "status")
        assert st.returncode == 0, st.stderr
        assert "removed" not in st.stdout, st.stdout
        assert "too long" in st.stderr
        res = _dsv(moved, "commit", "-m", "v2", "--allow-empty")
        assert res.returncode == 0, res.stderr
        ls = _dsv(moved, "ls")
        assert "f.txt" in ls.stdout, "the unreachable file left the snapshot"
        # A checkout that must write it says why it cannot, in one line, and changes nothing.
        co = _dsv(moved, "checkout", "HEAD~2")
        assert co.returncode != 0
        assert co.stderr.startswith("dsv: error: cannot write") and "longer than this system allows" in co.stderr, co.stderr
        assert len(co.stderr.strip().splitlines()) == 1
        assert _dsv(moved, "status").stdout.startswith("On branch main\nnothing to commit")
    finally:
        os.chdir(here)
