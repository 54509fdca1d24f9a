"""Regression tests for what an adversarial review of issue 7's fixes found (each failed before its fix)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import dsv  # noqa: E402
from dsv.base.hashing import hash_bytes  # noqa: E402
from faultutil import BIG, assert_fsck_clean, assert_one_line_error, ok, read_tree, run_dsv, write_files  # noqa: E402


def make_repo(path: Path, files: dict[str, bytes], message: str = "initial") -> str:
    path.mkdir(parents=True, exist_ok=True)
    write_files(path, files)
    return dsv.Repo.init(path).commit(message).id


def commit(path: Path, files: dict[str, bytes], message: str, remove: tuple[str, ...] = ()) -> str:
    for p in remove:
        full = path / p
        if full.is_dir() and not full.is_symlink():
            shutil.rmtree(full)
        else:
            full.unlink()
    write_files(path, files)
    return dsv.Repo(path).commit(message).id


def _pack_of(root: Path, oid: str) -> Path:
    store = dsv.Repo(root).repository.store
    raw = bytes.fromhex(oid)
    return Path(next(p.pack_path for p in store.packs() if raw in p.index.ids))


# -- the store -------------------------------------------------------------------------------------


def test_gc_never_drops_a_good_record_a_stray_quarantine_entry_names(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {"f": b"precious v1\n", "g": b"g\n"})
    commit(root, {"f": b"v2\n"}, "v2")  # v1 of f now lives only in history
    oid = hash_bytes(b"precious v1\n")
    pack = _pack_of(root, oid)
    q = root / ".dsv" / "objects" / "quarantine"
    q.mkdir(exist_ok=True)
    (q / f"{oid}.{pack.stem}").write_bytes(b"")  # a claim, not a verdict (or a one-off bad read)
    (q / f"{'ab' * 16}.loose").mkdir()  # junk: a folder where a file would be
    old = 1_000_000_000
    for p in (root / ".dsv" / "objects" / "packs").iterdir():
        os.utime(p, (old, old))
    ok(run_dsv(root, "gc"))
    assert ok(run_dsv(root, "cat", "HEAD~1:f", text=False)).stdout == b"precious v1\n"
    assert_fsck_clean(root)


def test_a_pack_that_lost_its_index_is_reindexed_not_deleted(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {"f": b"only copy\n"})
    c2 = commit(root, {"g": b"second pack\n"}, "v2")
    pack = _pack_of(root, hash_bytes(b"only copy\n"))
    pack.with_suffix(".idx").unlink()
    old = 1_000_000_000
    os.utime(pack, (old, old))
    res = run_dsv(root, "fsck", "--json")
    assert res.returncode == 1 and pack.name in res.stdout
    ok(run_dsv(root, "gc", "--grace", "0"))
    # Reindexed, then (a small pack) merged with the others: the only copy lives on, indexed.
    holder = _pack_of(root, hash_bytes(b"only copy\n"))
    assert holder.exists() and holder.with_suffix(".idx").exists(), "gc deleted (or left unindexed) the only copy"
    assert ok(run_dsv(root, "cat", f"{c2}:f", text=False)).stdout == b"only copy\n"
    assert_fsck_clean(root)


def test_a_damaged_index_costs_one_error_line_not_a_log_line(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    c1 = make_repo(root, {"f": b"f\n"})
    commit(root, {"g": b"g\n"}, "v2")
    idx = _pack_of(root, hash_bytes(b"f\n")).with_suffix(".idx")
    idx.chmod(0o644)
    idx.write_bytes(idx.read_bytes()[:30])
    res = run_dsv(root, "cat", f"{c1}:f")
    assert_one_line_error(res.stderr, res.returncode, contains=["fsck --repair"])
    assert "skipping" not in res.stderr


def test_fsck_repair_reports_what_it_set_aside(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {"f": b"set aside me\n"})
    pack = _pack_of(root, hash_bytes(b"set aside me\n"))
    data = bytearray(pack.read_bytes())
    i = data.index(b"set aside me")
    data[i] ^= 0x20
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    report = json.loads(ok(run_dsv(root, "fsck", "--repair", "--json")).stdout)
    assert report["quarantined"] == 1 and report["repaired"], report



def test_fsck_names_a_set_aside_copy_once(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {"f": b"set aside me\n", "g": b"g\n"})
    pack = _pack_of(root, hash_bytes(b"set aside me\n"))
    data = bytearray(pack.read_bytes())
    data[data.index(b"set aside me")] ^= 0x20
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    (root / "f").unlink()  # no good copy left to repair from
    run_dsv(root, "fsck", "--repair")
    res = run_dsv(root, "fsck")
    assert res.returncode == 1
    line = next(ln for ln in (res.stdout + res.stderr).splitlines() if "set aside" in ln)
    assert line.count("quarantine") == 1, line


# -- names -------------------------------------------------------------------------------------------


def test_user_files_that_merely_start_like_temp_files_are_tracked_and_kept(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    files = {".dsv-tmp-notes.txt": b"notes\n", "sub/.dsv-tmp-results.csv": b"a,b\n", "x": b"x\n"}
    make_repo(root, files)
    (root / "sub" / ".dsv-tmp-0123456789abcdef").write_bytes(b"a real leftover")
    ok(run_dsv(root, "status"))
    assert read_tree(root) == files
    assert {f.path for f in dsv.Repo(root).ls()} == set(files)


def test_manifest_names_reserved_for_temp_files_are_refused(tmp_path: Path) -> None:
    from test_safety import _forge

    root = tmp_path / "repo"
    make_repo(root, {"keep": b"k\n"})
    _forge(root, "evil", [("keep", b"k\n", 0o100644), (".dsv-tmp-0123456789abcdef", b"would vanish at the next status\n", 0o100644)])
    before = read_tree(root)
    res = run_dsv(root, "checkout", "evil")
    assert_one_line_error(res.stderr, res.returncode, contains=["temp"])
    assert read_tree(root) == before


@pytest.mark.parametrize(
    "entries",
    [
        [("a", b"1", 0o100644), ("a", b"2", 0o100644)],
        [("a", b"1", 0o040000)],
        [("a", b"1", 0o100777)],
        [("n" * 300, b"too long a name\n", 0o100644)],
        [("d/" + "é" * 200, b"510 bytes of name\n", 0o100644)],
    ],
    ids=["duplicate", "dir-mode", "odd-mode", "long-name", "long-utf8-name"],
)
def test_forged_manifests_are_refused_before_any_change(tmp_path: Path, entries: list[tuple[str, bytes, int]]) -> None:
    from test_safety import _forge

    root = tmp_path / "repo"
    make_repo(root, {"f1": b"v1\n", "f2": b"v1\n"})
    _forge(root, "evil", [("f1", b"changed\n", 0o100644), ("f2", b"changed\n", 0o100644), *entries])
    before = read_tree(root)
    for args in (["checkout", "evil"], ["checkout", "-f", "evil"], ["checkout", "evil", "--", "."]):  # paths too (outside attack)
        res = run_dsv(root, *args)
        assert_one_line_error(res.stderr, res.returncode)
        assert read_tree(root) == before, args
        assert not (root / ".dsv" / "CHECKOUT").exists()


# -- checkout obstacles ----------------------------------------------------------------------------------


def test_symlinked_staging_folder_is_never_followed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {"f": b"v1\n"})
    commit(root, {"f": b"v2\n"}, "v2")
    outside = tmp_path / "scratch"
    (outside / "projectX").mkdir(parents=True)
    (outside / "projectX" / "weights.bin").write_bytes(b"w")
    (root / ".dsv" / "staging").symlink_to(outside)
    ok(run_dsv(root, "checkout", "HEAD~1"))
    assert (outside / "projectX" / "weights.bin").read_bytes() == b"w"
    assert read_tree(root) == {"f": b"v1\n"}


def test_an_ignored_untracked_file_in_the_way_stops_the_checkout(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {".dsvignore": b"*.log\n", "a": b"a\n"})
    ok(run_dsv(root, "branch", "A"))
    (root / ".dsvignore").write_bytes(b"")
    write_files(root, {"run.log": b"tracked log in B\n"})
    ok(run_dsv(root, "commit", "-m", "B"))
    ok(run_dsv(root, "checkout", "A"))
    (root / "run.log").write_bytes(b"PRECIOUS local training log\n")
    res = run_dsv(root, "checkout", "main")
    assert_one_line_error(res.stderr, res.returncode, contains=["run.log"])
    assert (root / "run.log").read_bytes() == b"PRECIOUS local training log\n"
    ok(run_dsv(root, "checkout", "-f", "main"))
    assert (root / "run.log").read_bytes() == b"tracked log in B\n"


# -- checkouts that stopped part-way -------------------------------------------------------------------


class _Killed(BaseException):
    """Stands for SIGKILL inside the switch (a BaseException, as a kill leaves no handler running)."""


def _interrupt_switch(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    import dsv.worktree.checkout as co

    real = co.stat_key
    calls = {"n": 0}

    def dying(st: os.stat_result, mode: int) -> bytes:
        calls["n"] += 1
        if calls["n"] > after:
            raise _Killed()
        return real(st, mode)

    monkeypatch.setattr(co, "stat_key", dying)


def _shapes(tmp_path: Path) -> tuple[Path, dict[str, bytes], dict[str, bytes]]:
    root = tmp_path / "repo"
    a = {"shape": b"a file\n", **{f"z{i:03d}": f"a{i}\n".encode() for i in range(300)}}
    b = {"shape/inner": b"a folder's file\n", **{f"z{i:03d}": f"b{i}\n".encode() for i in range(300)}, **{f"onlyb/{i}": b"b" for i in range(20)}}
    make_repo(root, a, "A")
    ok(run_dsv(root, "branch", "A"))
    (root / "shape").unlink()
    commit(root, b, "B")
    ok(run_dsv(root, "branch", "B"))
    ok(run_dsv(root, "checkout", "A"))
    return root, a, b


@pytest.mark.parametrize("after", [1, 150, 310])
def test_rerunning_a_stopped_checkout_finishes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    root, a, b = _shapes(tmp_path)
    _interrupt_switch(monkeypatch, after)
    with pytest.raises(_Killed):
        dsv.Repo(root).checkout("B")
    monkeypatch.undo()
    st = json.loads(ok(run_dsv(root, "status", "--json")).stdout)
    assert st["checkout_in_progress"] == "dsv checkout B"
    res = run_dsv(root, "commit", "-m", "mixed")
    assert_one_line_error(res.stderr, res.returncode, contains=["stopped part-way"])
    ok(run_dsv(root, "checkout", "B"))
    assert read_tree(root) == b
    assert json.loads(ok(run_dsv(root, "status", "--json")).stdout)["clean"]


@pytest.mark.parametrize("after", [1, 150, 310])
def test_forcing_back_after_a_stopped_checkout_leaves_nothing_of_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    root, a, b = _shapes(tmp_path)
    _interrupt_switch(monkeypatch, after)
    with pytest.raises(_Killed):
        dsv.Repo(root).checkout("B")
    monkeypatch.undo()
    res = run_dsv(root, "checkout", "A")
    assert_one_line_error(res.stderr, res.returncode, contains=["stopped part-way"])
    ok(run_dsv(root, "checkout", "-f", "A"))
    assert read_tree(root) == a, "files of the abandoned checkout stayed behind"
    assert json.loads(ok(run_dsv(root, "status", "--json")).stdout)["clean"]


def test_the_record_names_a_commit_not_a_relative_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dsv.worktree.pending as pending

    root = tmp_path / "repo"
    c1 = make_repo(root, {"f": b"v1\n"})
    commit(root, {"f": b"v2\n"}, "v2")

    def killed(dsv_dir: str) -> None:
        raise _Killed()  # after HEAD moved, before the record is cleared

    monkeypatch.setattr(pending, "clear_record", killed)
    import dsv.api.repo  # noqa: F401 - the API imports clear_record at call time

    with pytest.raises(_Killed):
        dsv.Repo(root).checkout("HEAD~1")
    monkeypatch.undo()
    record = json.loads((root / ".dsv" / "CHECKOUT").read_text())
    assert record["rev"] == c1 and record["commit"] == c1
    # The switch had finished (HEAD moved): status clears the stale record instead of blocking.
    assert json.loads(ok(run_dsv(root, "status", "--json")).stdout)["checkout_in_progress"] is None
    ok(run_dsv(root, "checkout", c1))
    assert json.loads(ok(run_dsv(root, "status", "--json")).stdout)["checkout_in_progress"] is None
    assert read_tree(root) == {"f": b"v1\n"}


def test_a_garbled_record_is_replaced_by_a_forced_checkout(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_repo(root, {"f": b"v1\n"})
    (root / ".dsv" / "CHECKOUT").write_text("{garbled")
    res = run_dsv(root, "commit", "-m", "x", "--allow-empty")
    assert_one_line_error(res.stderr, res.returncode, contains=["CHECKOUT", "--force"])
    ok(run_dsv(root, "checkout", "--force", "main"))
    assert not (root / ".dsv" / "CHECKOUT").exists()
    ok(run_dsv(root, "commit", "-m", "x", "--allow-empty"))


def test_a_corrupt_head_commit_is_a_data_error_and_never_a_parent(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    c1 = make_repo(root, {"f": b"v1\n"})
    pack = _pack_of(root, c1)
    data = bytearray(pack.read_bytes())
    i = data.index(b'"message"')
    data[i + 3] ^= 0x01
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    for args in (["show", "HEAD"], ["diff", "HEAD", "HEAD"]):
        res = run_dsv(root, *args)
        assert_one_line_error(res.stderr, res.returncode)
        assert res.returncode == 3, res.stderr
    res = run_dsv(root, "commit", "--allow-empty", "-m", "on top of nothing")
    assert_one_line_error(res.stderr, res.returncode, contains=[c1])


def test_checkout_in_a_format_1_repository_raises_the_format_before_writing_the_record(tmp_path: Path) -> None:
    from test_chunking import _format1_repository

    root = tmp_path / "old"
    c1 = _format1_repository(root, {"a": b"a\n"}, random.Random(1).randbytes(BIG))
    (root / "a").write_bytes(b"edited\n")
    ok(run_dsv(root, "checkout", "--", "a"))
    assert json.loads((root / ".dsv" / "config.json").read_text())["format"] == 2
    assert (root / "a").read_bytes() == b"a\n"
    assert c1


def test_tree_on_another_filesystem_than_dsv_stages_beside_the_target(tmp_path: Path) -> None:
    """A mount inside the tree: a full disk there fails during staging and changes nothing."""
    root = tmp_path / "repo"
    mnt = root / "mnt"
    mnt.mkdir(parents=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        rng = random.Random(2)
        v1 = {"mnt/a.bin": rng.randbytes(600_000), "mnt/b.bin": rng.randbytes(600_000), "top.txt": b"v1\n"}
        c1 = make_repo(root, v1)
        v2 = {"mnt/a.bin": rng.randbytes(900_000), "mnt/b.bin": rng.randbytes(900_000), "top.txt": b"v2\n"}
        commit(root, v2, "v2")
        (root / "mnt" / "filler").write_bytes(b"x" * 300_000)
        before = read_tree(root)
        ok(run_dsv(root, "checkout", c1))  # fits: files staged beside their targets
        assert {k: v for k, v in read_tree(root).items() if k != "mnt/filler"} == v1
        (root / "mnt" / "filler2").write_bytes(b"x" * 1_200_000)
        res = run_dsv(root, "checkout", "main")  # does not fit beside the old versions
        assert_one_line_error(res.stderr, res.returncode)
        after = read_tree(root)
        assert {k: v for k, v in after.items() if not k.startswith("mnt/filler")} == v1, "a failed checkout changed files"
        assert not [p for p in after if ".dsv-tmp-" in p]
        del before
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_record_left_after_the_switch_finished_is_cleared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed between moving HEAD and deleting the record: nothing is half-switched, nothing blocks."""
    import dsv.worktree.pending as pending

    root = tmp_path / "repo"
    c1 = make_repo(root, {"f": b"v1\n"})
    c2 = commit(root, {"f": b"v2\n"}, "v2")
    monkeypatch.setattr(pending, "clear_record", lambda dsv_dir: (_ for _ in ()).throw(_Killed()))
    with pytest.raises(_Killed):
        dsv.Repo(root).checkout(c1)
    monkeypatch.undo()
    assert (root / ".dsv" / "CHECKOUT").exists()
    ok(run_dsv(root, "checkout", c2))  # another revision, no --force needed: the first one had finished
    assert read_tree(root) == {"f": b"v2\n"}
    assert not (root / ".dsv" / "CHECKOUT").exists()


def test_a_file_deleted_here_that_the_target_removes_too_leaves_no_phantom(tmp_path: Path) -> None:
    """Outside attack: the switch skipped a removal already done by hand and kept its stat-cache
    row, so status reported 'removed' on a clean tree and the next commit recorded it."""
    root = tmp_path / "repo"
    make_repo(root, {"init.txt": b"i\n", "keep.txt": b"k\n"})
    ok(run_dsv(root, "branch", "other"))
    ok(run_dsv(root, "checkout", "other"))
    (root / "init.txt").unlink()
    ok(run_dsv(root, "commit", "-m", "drop init"))
    ok(run_dsv(root, "checkout", "main"))
    (root / "init.txt").unlink()  # deleted by hand; the target removes it too
    ok(run_dsv(root, "checkout", "other"))
    status = json.loads(ok(run_dsv(root, "status", "--json")).stdout)
    assert status["removed"] == [] and status["added"] == [] and status["modified"] == [], status
    assert read_tree(root) == {"keep.txt": b"k\n"}
