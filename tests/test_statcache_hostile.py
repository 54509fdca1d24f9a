"""A .dsv/statcache that is not a cache file only costs a re-hash: never a hang, a crash or a cache never rewritten."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_dsv, write_tree
from dsv.worktree import statcache


@pytest.fixture
def committed(repo_dir: Path) -> Path:
    write_tree(repo_dir, {"a/1.txt": "one", "a/2.txt": "two", "b.txt": "b"})
    run_dsv("init", cwd=repo_dir, check=True)
    run_dsv("commit", "-m", "v1", cwd=repo_dir, check=True)
    return repo_dir


def _replace(path: Path, kind: str) -> None:
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "devzero":
        path.symlink_to("/dev/zero")
    elif kind == "sparse":
        with open(path, "wb") as f:
            f.truncate(8 * 1024**4)  # 8 TiB of holes: reading it would never end
    elif kind == "dir":
        path.mkdir()
    elif kind == "header_lies":
        path.write_bytes(statcache.MAGIC + b"\x02\x00\x00\x00" + b"\x00" * 4 + b"\xff" * 64)


@pytest.mark.parametrize("kind", ["fifo", "devzero", "sparse", "dir", "header_lies"])
def test_a_statcache_that_is_not_a_cache_file_costs_only_a_rehash(committed: Path, kind: str) -> None:
    cache = committed / ".dsv" / "statcache"
    _replace(cache, kind)
    (committed / "b.txt").write_text("changed")
    for args in (["status"], ["-C", ".", "status"], ["commit", "-m", "v2"], ["checkout", "HEAD~1"], ["status"]):
        proc = subprocess.run([sys.executable, "-m", "dsv", *args], cwd=committed, capture_output=True, timeout=60)
        assert proc.returncode == 0, (args, proc.stderr)
        assert b"Traceback" not in proc.stderr and b"internal error" not in proc.stderr
    assert (committed / "b.txt").read_text() == "b"
    # The cache was written again, as a regular file, and is used: the next status hashes nothing.
    assert cache.is_file() and not cache.is_symlink()
    assert statcache.load(str(cache)) is not None


def test_load_refuses_what_is_not_a_regular_file_without_reading_it(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert statcache.load(str(fifo)) is None  # would block forever in open() or read()
    assert statcache.load("/dev/zero") is None
    assert statcache.load(str(tmp_path)) is None
