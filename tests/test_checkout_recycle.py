"""Issue 9: what a checkout replaces waits in ``.dsv/recycle`` and is deleted as the next one creates files.

Why (dsv.worktree.recycle): freeing inodes just before allocating new ones,
as git does, keeps ext4's allocator from passing over a growing pile of
recently freed inodes. These tests check the bookkeeping from outside (what
is in the folder, what the tree holds, what gc and hostile set-ups do); the
speed itself is measured by scripts/bench_scale.py, never here.
"""

from __future__ import annotations

import errno
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import dsv  # noqa: E402
from faultutil import ok, read_tree, run_dsv, write_files  # noqa: E402

V1 = {**{f"a/f{i}": b"v1 a %d\n" % i for i in range(6)}, "b/gone": b"only in v1\n", "b/keep": b"same\n"}
V2 = {**{f"a/f{i}": b"v2 a %d\n" % i for i in range(4)}, "a/f4": b"v1 a 4\n", "a/f5": b"v1 a 5\n", "b/keep": b"same\n", "b/new": b"only in v2\n"}


def _repo(root: Path) -> tuple[str, str]:
    root.mkdir()
    write_files(root, V1)
    repo = dsv.Repo.init(root)
    c1 = repo.commit("v1").id
    (root / "b" / "gone").unlink()
    write_files(root, V2)
    c2 = repo.commit("v2").id
    return c1, c2


def _recycled(root: Path) -> Counter[bytes]:
    folder = root / ".dsv" / "recycle"
    return Counter(p.read_bytes() for p in folder.iterdir()) if folder.is_dir() else Counter()


def test_the_switch_keeps_what_it_replaces_and_the_next_checkout_deletes_it(tmp_path: Path) -> None:
    root = tmp_path / "r"
    c1, c2 = _repo(root)
    assert _recycled(root) == Counter()
    ok(run_dsv(root, "checkout", c1))
    assert read_tree(root) == V1
    # v2's four changed files and the file v1 does not have; nothing that stayed the same.
    assert _recycled(root) == Counter([V2[f"a/f{i}"] for i in range(4)] + [V2["b/new"]])
    ok(run_dsv(root, "checkout", c2))
    assert read_tree(root) == V2
    # The last checkout's files are gone, this one's are there.
    assert _recycled(root) == Counter([V1[f"a/f{i}"] for i in range(4)] + [V1["b/gone"]])
    ok(run_dsv(root, "status"))
    res = ok(run_dsv(root, "gc"))
    assert "cleaned" in res.stdout
    assert _recycled(root) == Counter()
    assert read_tree(root) == V2


def test_big_files_and_files_past_the_caps_are_deleted_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dsv.worktree.recycle as rc

    root = tmp_path / "r"
    root.mkdir()
    small = {f"s{i}": b"x" * 5 for i in range(4)}
    write_files(root, {**small, "big": b"B" * 50})
    repo = dsv.Repo.init(root)
    c1 = repo.commit("v1").id
    write_files(root, {**{p: b"y" * 5 for p in small}, "big": b"C" * 50})
    repo.commit("v2")
    monkeypatch.setattr(rc, "KEEP_FILE_BYTES", 10)
    monkeypatch.setattr(rc, "KEEP_FILES", 3)
    repo.checkout(c1)
    assert read_tree(root) == {**small, "big": b"B" * 50}
    assert _recycled(root) == Counter([b"y" * 5] * 3)  # the big one and the fourth small one were deleted
    assert sorted(int(p.name.partition(".")[2]) for p in (root / ".dsv" / "recycle").iterdir()) == [5, 5, 5]
    monkeypatch.setattr(rc, "KEEP_FILES", 100)
    monkeypatch.setattr(rc, "KEEP_BYTES", 12)
    repo.checkout("main")
    # Staging 5 files deleted the 3 kept ones; then 12 bytes hold two 5-byte files.
    assert _recycled(root) == Counter([b"x" * 5] * 2)


def test_what_staging_does_not_pair_stays_and_the_caps_count_the_whole_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dsv.worktree.recycle as rc

    root = tmp_path / "r"
    root.mkdir()
    write_files(root, {f"f{i}": b"1%d" % i for i in range(6)})
    repo = dsv.Repo.init(root)
    c1 = repo.commit("six").id
    for i in range(1, 6):
        (root / f"f{i}").unlink()
    write_files(root, {"f0": b"2"})
    c2 = repo.commit("one").id
    write_files(root, {"f0": b"3"})
    c3 = repo.commit("one changed").id
    repo.checkout(c1)  # stages 6, replaces f0
    assert _recycled(root) == Counter([b"3"])
    repo.checkout(c2)  # stages f0 (pairs with the one kept), replaces f0 and removes five
    assert _recycled(root) == Counter(b"1%d" % i for i in range(6))
    repo.checkout(c3)  # stages f0: one of the six goes, five stay; f0's old version comes in
    kept = _recycled(root)
    assert sum(kept.values()) == 6 and kept[b"2"] == 1
    # The caps count what earlier checkouts left: room for 5 files, 5 there after staging.
    monkeypatch.setattr(rc, "KEEP_FILES", 5)
    repo.checkout(c2)
    kept = _recycled(root)
    assert sum(kept.values()) == 5 and kept[b"3"] == 0
    assert read_tree(root) == {"f0": b"2"}
    assert rc._size_of("0123456789abcdef.17") == 17


def test_one_kept_file_is_deleted_just_before_each_file_is_staged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The pairing is the point: frees and allocations interleaved, not all frees first.
    import dsv.worktree.checkout as co
    from dsv.worktree.recycle import Recycle

    root = tmp_path / "r"
    c1, c2 = _repo(root)
    dsv.Repo(root).checkout(c1)  # keeps 5
    events: list[str] = []
    real_free, real_content = Recycle.free_one, co._write_content

    def free_one(self: Recycle) -> None:
        if self.left:
            events.append("free")
        real_free(self)

    def write_content(*args: object) -> None:
        events.append("write")
        real_content(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(Recycle, "free_one", free_one)
    monkeypatch.setattr(co, "_write_content", write_content)
    dsv.Repo(root).checkout(c2)  # stages 5 files (4 changed, b/new)
    assert events == ["free", "write"] * 5
    assert read_tree(root) == V2


def test_a_symlink_at_the_recycle_folder_is_replaced_never_followed(tmp_path: Path) -> None:
    root = tmp_path / "r"
    c1, _c2 = _repo(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"mine\n")
    os.symlink(outside, root / ".dsv" / "recycle")
    ok(run_dsv(root, "checkout", c1))
    assert read_tree(root) == V1
    assert sorted(os.listdir(outside)) == ["precious"] and (outside / "precious").read_bytes() == b"mine\n"
    assert not (root / ".dsv" / "recycle").is_symlink() and len(_recycled(root)) == 5


def test_a_file_at_the_recycle_folder_is_replaced(tmp_path: Path) -> None:
    root = tmp_path / "r"
    c1, _c2 = _repo(root)
    (root / ".dsv" / "recycle").write_bytes(b"junk")
    ok(run_dsv(root, "checkout", c1))
    assert read_tree(root) == V1 and len(_recycled(root)) == 5


def test_a_rename_the_filesystem_refuses_falls_back_to_deleting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A bind mount inside the tree has the same st_dev as .dsv but refuses renames across (EXDEV).
    root = tmp_path / "r"
    c1, _c2 = _repo(root)
    real = os.rename

    def refuse(src: str, dst: str, **kw: object) -> None:
        if kw.get("dst_dir_fd") is not None and kw.get("src_dir_fd") is not None and len(dst.partition(".")[0]) == 16:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real(src, dst, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", refuse)
    dsv.Repo(root).checkout(c1)
    assert read_tree(root) == V1
    assert _recycled(root) == Counter()


def test_a_checkout_short_of_space_empties_the_recycle_folder_before_giving_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dsv.worktree.checkout as co
    from dsv.base.errors import WorktreeError

    root = tmp_path / "r"
    c1, c2 = _repo(root)
    dsv.Repo(root).checkout(c1)
    assert len(_recycled(root)) == 5
    calls: list[int] = []

    def short_until_emptied(*args: object) -> None:
        calls.append(len(_recycled(root)))
        if _recycled(root):
            raise WorktreeError("checkout needs 1 bytes for the files it writes and 0 are free")

    monkeypatch.setattr(co, "_check_space", short_until_emptied)
    dsv.Repo(root).checkout(c2)
    assert calls == [5, 0] and read_tree(root) == V2
    # With nothing to empty, the refusal stands and nothing changes.
    monkeypatch.setattr(co, "_check_space", lambda *a: (_ for _ in ()).throw(WorktreeError("no space")))
    (root / ".dsv" / "recycle").rename(root / ".dsv" / "recycle.aside")
    with pytest.raises(WorktreeError):
        dsv.Repo(root).checkout(c1)
    assert read_tree(root) == V2


def test_a_checkout_that_fails_while_staging_keeps_the_tree_and_loses_only_recycled_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dsv.worktree.checkout as co
    from dsv.base.errors import StorageError

    root = tmp_path / "r"
    c1, c2 = _repo(root)
    dsv.Repo(root).checkout(c1)
    real = co._write_content
    written: list[int] = []

    def fail_third(fd: int, where: str, *rest: object) -> None:
        written.append(1)
        if len(written) == 3:
            raise StorageError("write", where, OSError(errno.ENOSPC, "No space left on device"))
        real(fd, where, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(co, "_write_content", fail_third)
    with pytest.raises(StorageError):
        dsv.Repo(root).checkout(c2)
    assert read_tree(root) == V1
    monkeypatch.setattr(co, "_write_content", real)
    dsv.Repo(root).checkout(c2)
    assert read_tree(root) == V2


def test_only_files_named_as_dsv_names_them_are_ever_deleted_or_counted(tmp_path: Path) -> None:
    # Found by an outside attack: a folder bind-mounted at .dsv/recycle was emptied by the next
    # checkout. What dsv did not name (or any folder) in the recycle folder is someone else's.
    root = tmp_path / "r"
    c1, c2 = _repo(root)
    folder = root / ".dsv" / "recycle"
    folder.mkdir()
    (folder / "precious.txt").write_bytes(b"mine\n")
    (folder / "0123456789abcdef.5").mkdir()
    (folder / "0123456789abcdef.5" / "inside").write_bytes(b"mine too\n")
    (folder / "0123456789abcdef.99999999999").write_bytes(b"dsv-named: counted by its name\n")
    ok(run_dsv(root, "checkout", c1))
    ok(run_dsv(root, "checkout", c2))
    ok(run_dsv(root, "gc"))
    assert sorted(p.name for p in folder.iterdir()) == ["0123456789abcdef.5", "precious.txt"]
    assert (folder / "precious.txt").read_bytes() == b"mine\n" and (folder / "0123456789abcdef.5" / "inside").read_bytes() == b"mine too\n"
    assert read_tree(root) == V2


def test_a_symlink_swapped_in_while_gc_empties_the_folder_leads_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by an outside attack (renameat2 RENAME_EXCHANGE in a loop): gc checked the folder with
    # lstat, then listed and deleted by path, through a symlink swapped in between: 20 of 30 files
    # outside the repository were deleted.
    from dsv.maintenance.gc import gc as run_gc

    root = tmp_path / "r"
    c1, _c2 = _repo(root)
    repo = dsv.Repo(root)
    repo.checkout(c1)
    outside = tmp_path / "outside"
    outside.mkdir()
    for i in range(5):
        (outside / f"{i:016x}.3").write_bytes(b"out")
    (outside / "staging-like").mkdir()
    real_scandir = os.scandir
    swapped: list[str] = []

    def swap_then_scandir(target: object) -> object:
        # The moment gc lists one of the two folders (by path, or by a descriptor of it).
        if not swapped and (isinstance(target, int) or str(target).endswith((".dsv/recycle", ".dsv/staging"))):
            for name in ("recycle", "staging"):
                real = root / ".dsv" / name
                if real.exists():
                    real.rename(root / ".dsv" / f"{name}.real")
                os.symlink(outside, real)
            swapped.append("yes")
        return real_scandir(target)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", swap_then_scandir)
    (root / ".dsv" / "staging").mkdir(exist_ok=True)
    run_gc(repo._repo, grace_seconds=0)
    assert swapped
    assert sorted(p.name for p in outside.iterdir()) == sorted([f"{i:016x}.3" for i in range(5)] + ["staging-like"])


@pytest.mark.parametrize("how", ["replace", "remove"])
def test_a_folder_that_takes_a_files_place_mid_switch_is_never_moved_to_the_recycle_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    # Found by an outside attack: the switch lstat'ed a file, a folder took its place, and the
    # rename into .dsv/recycle moved the folder (where the unlink it replaced fails on folders);
    # the next gc deleted it.
    from dsv.base.errors import WorktreeError
    from dsv.worktree.recycle import Recycle

    root = tmp_path / "r"
    c1, c2 = _repo(root)
    repo = dsv.Repo(root)
    repo.checkout(c1)  # the recycle folder now exists
    victim = "a/f0" if how == "replace" else "b/gone"
    real_keep = Recycle.keep

    def swap_then_keep(self: Recycle, dir_fd: int, name: str, st: os.stat_result) -> bool:
        if name == victim.rpartition("/")[2]:
            (root / victim).unlink()
            (root / victim).mkdir()
            (root / victim / "precious").write_bytes(b"user data\n")
        return real_keep(self, dir_fd, name, st)

    monkeypatch.setattr(Recycle, "keep", swap_then_keep)
    if how == "replace":
        with pytest.raises(WorktreeError) as info:
            repo.checkout(c2)
        assert "a folder appeared in the way" in info.value.message
    else:
        repo.checkout(c2)  # the folder is left where it is, as a folder there always was
    assert (root / victim / "precious").read_bytes() == b"user data\n"
    assert not any(p.is_dir() for p in (root / ".dsv" / "recycle").iterdir())
    monkeypatch.setattr(Recycle, "keep", real_keep)
    ok(run_dsv(root, "gc"))
    assert (root / victim / "precious").read_bytes() == b"user data\n"
