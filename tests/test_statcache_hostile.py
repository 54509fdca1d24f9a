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


def test_a_cache_read_ahead_is_given_once_and_only_while_its_file_is_unchanged(tmp_path: Path) -> None:
    """The server's prepared process reads the stat cache ahead (statcache.load_ahead); its command
    gets that object only if the file is still the one read, and only once."""
    from array import array

    path = str(tmp_path / "statcache")
    first = statcache.StatCache("c1", "m1", ["a", "b"], None, array("q", [1, 2]), array("i", [0o100644] * 2), None, oid_blob=b"\1" * 32, key_blob=bytearray(statcache.KEY.size * 2))
    statcache.save(path, first)
    statcache.load_ahead(path)
    got = statcache.load(path)
    assert got is not None and got.paths == ["a", "b"] and got._index is not None  # noqa: SLF001 (indexed ahead)
    again = statcache.load(path)
    assert again is not None and again is not got  # given once: the next load reads the file
    # Saved again in between (a new file): the read-ahead copy is stale and not used.
    statcache.load_ahead(path)
    second = statcache.StatCache("c2", "m2", ["a"], None, array("q", [1]), array("i", [0o100644]), None, oid_blob=b"\2" * 16, key_blob=bytearray(statcache.KEY.size))
    statcache.save(path, second)
    fresh = statcache.load(path)
    assert fresh is not None and fresh.commit == "c2" and fresh.paths == ["a"]
    # Another path: not given.
    statcache.load_ahead(path)
    other = str(tmp_path / "other")
    assert statcache.load(other) is None
    assert statcache.load(path) is not None and statcache._ahead is None  # noqa: SLF001
