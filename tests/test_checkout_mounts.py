"""Checkout into a folder of the tree that is another filesystem (a mount point inside the tree).

Files there are staged on that filesystem (an unnamed file, or a temp name beside the
target when the folder is still to be created), never in ``.dsv/staging/`` and renamed
across filesystems; a full filesystem there changes nothing. Needs a real tmpfs mount
(root, or a user namespace that allows it): skipped where mounting is not permitted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import dsv  # noqa: E402
from faultutil import assert_fsck_clean, assert_one_line_error, ok, read_tree, run_dsv, write_files  # noqa: E402


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return res.returncode == 0


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[list[Path]]:
    """Mount tmpfs filesystems where the test asks (unmounted at the end)."""
    mounts: list[Path] = []
    yield mounts
    for m in reversed(mounts):
        subprocess.run(["umount", "-l", str(m)], capture_output=True)


def _mount_or_skip(mounts: list[Path], where: Path, size: str) -> None:
    if not _mount_tmpfs(where, size):
        pytest.skip("mounting a tmpfs is not permitted here")
    mounts.append(where)


def _tree(n: int, tag: bytes) -> dict[str, bytes]:
    files = {f"top/f{i}.bin": tag + b"top %d\n" % i for i in range(n)}
    files.update({f"sub/d{i % 3}/f{i}.bin": tag + b"sub %d\n" % i * (i + 1) for i in range(n)})
    return files


def test_checkout_across_a_mount_point_in_the_tree(tmp_path: Path, mounted: list[Path]) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    _mount_or_skip(mounted, root / "sub", "20m")
    assert os.stat(root / "sub").st_dev != os.stat(root).st_dev
    v1 = _tree(30, b"v1 ")
    write_files(root, v1)
    repo = dsv.Repo.init(root)
    c1 = repo.commit("v1").id
    v2 = {p: d for p, d in _tree(30, b"v2 ").items() if not p.startswith("sub/d2/")}
    v2["sub/new/deep/x.bin"] = b"a folder the checkout creates on the mounted filesystem\n"
    for p in v1:
        if p.startswith("sub/d2/"):
            os.unlink(root / p)
    os.rmdir(root / "sub" / "d2")
    write_files(root, v2)
    c2 = repo.commit("v2").id
    for rev, want in ((c1, v1), (c2, v2), (c1, v1), (c2, v2)):
        ok(run_dsv(root, "checkout", rev))
        assert read_tree(root) == want
        assert os.stat(root / "sub").st_dev != os.stat(root).st_dev  # the mount point itself is kept
        st = ok(run_dsv(root, "status", "--json"))
        assert '"clean": true' in st.stdout
    assert not [p for p in read_tree(root) if ".dsv-tmp-" in p]
    staging = root / ".dsv" / "staging"
    assert not staging.exists() or not list(staging.iterdir())
    assert_fsck_clean(root)


def test_a_full_mounted_filesystem_changes_nothing(tmp_path: Path, mounted: list[Path]) -> None:
    # v2 needs ~400 KB in a folder that becomes a 256 KiB filesystem: the checkout must stop
    # before changing anything (free space is checked where each file goes).
    root = tmp_path / "repo"
    v2 = {"a.txt": b"a2\n", "small/s.bin": os.urandom(200_000), "small/t.bin": os.urandom(200_000)}
    v1 = {"a.txt": b"a\n", "small/s.bin": b"small\n", "small/t.bin": b"t\n"}
    root.mkdir()
    write_files(root, v2)
    repo = dsv.Repo.init(root)
    c2 = repo.commit("v2").id
    write_files(root, v1)
    c1 = repo.commit("v1").id
    _mount_or_skip(mounted, root / "small", "256k")  # hides the folder's files: put v1's back
    write_files(root, {p: d for p, d in v1.items() if p.startswith("small/")})
    assert '"clean": true' in ok(run_dsv(root, "status", "--json")).stdout
    res = run_dsv(root, "checkout", c2)
    assert_one_line_error(res.stderr, res.returncode)
    assert "nothing in the working tree was changed" in res.stderr
    assert read_tree(root) == v1
    assert dsv.Repo(root).repository.refs.head().commit == c1
    assert not (root / ".dsv" / "CHECKOUT").exists()
    assert not [p for p in os.listdir(root / "small") if p.startswith(".dsv-tmp-")]
    assert '"clean": true' in ok(run_dsv(root, "status", "--json")).stdout
