"""Regressions for behaviour found wrong in review: each test names what used to go wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dsv
from dsv.base.errors import CorruptMetadataError, RefExistsError, UsageError, WorktreeError

from conftest import read_tree, run_dsv, write_tree


def test_file_replacing_a_folder_with_ignored_files_changes_nothing(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {".dsvignore": "*.pyc\n", "a": "v1", "z": "1"})
    repo.commit("one")
    repo.create_branch("b1")
    (repo_dir / "a").unlink()
    write_tree(repo_dir, {"a/b": "x", "z": "2"})
    repo.commit("two")
    (repo_dir / "a" / "cache.pyc").write_text("ignored, but data")
    before = read_tree(repo_dir)
    with pytest.raises(WorktreeError) as exc:
        repo.checkout("b1")
    assert "a/cache.pyc" in str(exc.value)
    assert read_tree(repo_dir) == before and repo.status().clean and repo.status().branch == "main"


def test_a_locally_deleted_file_is_restored_without_force(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"f": "1"})
    repo.commit("1")
    repo.create_branch("b")
    write_tree(repo_dir, {"f": "2"})
    repo.commit("2")
    (repo_dir / "f").unlink()
    repo.checkout("HEAD", ["f"])
    assert (repo_dir / "f").read_text() == "2"
    (repo_dir / "f").unlink()
    repo.checkout("b")
    assert (repo_dir / "f").read_text() == "1"


def test_checkout_force_head_stays_on_the_branch(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"f": "1"})
    repo.commit("1")
    write_tree(repo_dir, {"f": "local edit"})
    res = repo.checkout("HEAD", force=True)
    assert res.branch == "main" and repo.status().branch == "main" and (repo_dir / "f").read_text() == "1"


def test_bad_ignore_pattern_is_one_clear_line(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {".dsvignore": "ok\n[z-a]\n", "f": "1"})
    with pytest.raises(UsageError) as exc:
        repo.status()
    assert ".dsvignore line 2" in str(exc.value)
    proc = run_dsv("status", cwd=repo_dir)
    assert proc.returncode == 2 and proc.stderr.decode().count("\n") == 1


def test_slashed_ref_names_can_be_reused_and_clashes_are_clear(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"f": "1"})
    repo.commit("1")
    repo.create_branch("exp/a")
    repo.delete_branch("exp/a")
    repo.create_branch("exp")  # the emptied folder is gone
    with pytest.raises(RefExistsError) as exc:
        repo.create_branch("exp/b")
    assert "conflicts with refs/heads/exp" in str(exc.value)


def test_a_malformed_ref_is_reported_by_fsck_and_does_not_block_log(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"f": "1"})
    repo.commit("1")
    (repo_dir / ".dsv/refs/heads/bad").write_text("zz\n")
    assert [e.commit.message for e in repo.log("main")] == ["1"]
    report = repo.fsck()
    assert any(p.kind == "bad-ref" and p.location == "refs/heads/bad" for p in report.problems)
    proc = run_dsv("fsck", "--json", cwd=repo_dir)
    assert proc.returncode == 1 and json.loads(proc.stdout)["ok"] is False


def test_head_naming_an_invalid_branch_is_refused(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"f": "1"})
    (repo_dir / ".dsv/HEAD").write_text("ref: refs/heads/../../../outside_ref\n")
    with pytest.raises(CorruptMetadataError):
        repo.commit("x")
    assert not (repo_dir / "outside_ref").exists() and not (repo_dir.parent / "outside_ref").exists()


def test_format_zero_is_malformed(repo: dsv.Repo, repo_dir: Path) -> None:
    cfg = repo_dir / ".dsv/config.json"
    doc = json.loads(cfg.read_text())
    doc["format"] = 0
    cfg.write_text(json.dumps(doc))
    proc = run_dsv("status", cwd=repo_dir)
    assert proc.returncode == 3 and b"format 0" in proc.stderr


def test_leaving_a_commit_no_ref_reaches_warns(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"f": "1"})
    first = repo.commit("1")
    repo.checkout(first.id)  # detached
    write_tree(repo_dir, {"f": "2"})
    lost = repo.commit("on detached HEAD")
    res = repo.checkout("main")
    assert any(lost.id[:10] in w and "dsv branch NAME" in w for w in res.warnings)
    repo.checkout(first.id)
    assert repo.checkout("main").warnings == ()  # nothing unreachable this time
