"""The porcelain through the Python API (dsv.Repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import dsv
from dsv.base.errors import (
    NotARepositoryError,
    NothingToCommitError,
    RefExistsError,
    RepositoryExistsError,
    UncommittedChangesError,
    UnknownRevisionError,
    UsageError,
    WorktreeError,
)

from conftest import read_tree, write_tree

V1 = {"img/cat/1.jpg": "cat1", "img/cat/2.jpg": "cat2", "img/dog/1.jpg": "dog1", "labels.csv": "id,label\n1,cat\n"}


def _v2(root: Path) -> None:
    (root / "img/cat/1.jpg").write_text("cat1 fixed")
    (root / "img/dog/1.jpg").rename(root / "img/cat/3.jpg")  # relabel dog -> cat
    (root / "img/cat/2.jpg").unlink()
    write_tree(root, {"img/bird/1.jpg": "bird"})


def test_commit_status_log_show(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, V1)
    st = repo.status()
    assert st.head is None and sorted(st.added) == sorted(V1)
    c1 = repo.commit("first")
    assert c1.commit.summary.files == 4 and c1.commit.summary.added == 4 and c1.branch == "main"
    assert repo.status().clean
    _v2(repo_dir)
    st = repo.status()
    assert st.modified == ("img/cat/1.jpg",)
    assert st.removed == ("img/cat/2.jpg",)
    assert st.added == ("img/bird/1.jpg",)
    assert st.moved == (("img/dog/1.jpg", "img/cat/3.jpg"),)
    c2 = repo.commit("second")
    s = c2.commit.summary
    assert (s.added, s.removed, s.modified, s.moved, s.files) == (1, 1, 1, 1, 4)
    assert c2.commit.parents == (c1.id,)
    log = repo.log()
    assert [e.id for e in log] == [c2.id, c1.id]
    assert "HEAD -> main" in log[0].refs
    shown = repo.show("HEAD~1")
    assert shown.id == c1.id and shown.commit.message == "first"
    with pytest.raises(NothingToCommitError):
        repo.commit("again")
    c3 = repo.commit("empty", allow_empty=True)
    assert c3.commit.summary.files == 4


def test_diff_between_commits_and_worktree(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, V1)
    repo.commit("v1")
    _v2(repo_dir)
    wt = repo.diff()
    assert wt.counts() == {"added": 1, "removed": 1, "modified": 1, "moved": 1}
    repo.commit("v2")
    d = repo.diff("HEAD~1", "HEAD")
    assert d.counts() == wt.counts()
    from dsv.manifest import ChangeKind

    moved = repo.file_diff("HEAD~1", "HEAD").of_kind(ChangeKind.MOVED)
    assert [(r["old_path"], r["path"]) for r in d.file_table if r["kind"] == "moved"] == [("img/dog/1.jpg", "img/cat/3.jpg")]
    assert [(c.old_path, c.path) for c in moved] == [("img/dog/1.jpg", "img/cat/3.jpg")]
    assert not repo.diff("HEAD", "HEAD")
    assert repo.diff("HEAD~1").counts() == wt.counts()


def test_ls_and_read_file(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, V1)
    repo.commit("v1")
    assert [f.path for f in repo.ls("HEAD", "img/cat")] == ["img/cat/1.jpg", "img/cat/2.jpg"]
    assert repo.read_file("HEAD", "labels.csv") == b"id,label\n1,cat\n"
    with pytest.raises(WorktreeError):
        repo.read_file("HEAD", "img")
    with pytest.raises(WorktreeError):
        repo.read_file("HEAD", "nope")
    with pytest.raises(UnknownRevisionError):
        repo.ls("v9")


def test_checkout_round_trips_and_switches_branches(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, V1)
    c1 = repo.commit("v1")
    before = read_tree(repo_dir)
    _v2(repo_dir)
    repo.commit("v2")
    after = read_tree(repo_dir)
    res = repo.checkout(c1.id[:8])
    assert read_tree(repo_dir) == before
    assert res.branch is None and repo.status().clean
    assert not (repo_dir / "img/bird").exists()  # emptied folders are removed
    repo.checkout("main")
    assert read_tree(repo_dir) == after and repo.status().branch == "main"


def test_checkout_writes_only_what_differs(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {f"f{i}": str(i) for i in range(20)})
    c1 = repo.commit("v1")
    (repo_dir / "f3").write_text("changed")
    repo.commit("v2")
    ino = os.lstat(repo_dir / "f5").st_ino
    res = repo.checkout(c1.id)
    assert (res.written, res.removed) == (1, 0)
    assert os.lstat(repo_dir / "f5").st_ino == ino


def test_checkout_refuses_to_clobber_then_force(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, V1)
    c1 = repo.commit("v1")
    (repo_dir / "labels.csv").write_text("id,label\n1,dog\n")
    repo.commit("v2")
    (repo_dir / "labels.csv").write_text("local edit")
    with pytest.raises(UncommittedChangesError) as exc:
        repo.checkout(c1.id)
    assert exc.value.paths == ["labels.csv"]
    assert (repo_dir / "labels.csv").read_text() == "local edit"
    assert repo.status().head != c1.id
    repo.checkout(c1.id, force=True)
    assert (repo_dir / "labels.csv").read_text() == "id,label\n1,cat\n"


def test_checkout_carries_unrelated_local_changes(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, V1)
    c1 = repo.commit("v1")
    (repo_dir / "labels.csv").write_text("v2 labels")
    repo.commit("v2")
    (repo_dir / "img/cat/2.jpg").write_text("my local edit")
    write_tree(repo_dir, {"untracked.txt": "mine"})
    repo.checkout(c1.id)
    assert (repo_dir / "img/cat/2.jpg").read_text() == "my local edit"
    assert (repo_dir / "untracked.txt").read_text() == "mine"
    assert (repo_dir / "labels.csv").read_text() == V1["labels.csv"]
    assert repo.status().modified == ("img/cat/2.jpg",)


def test_untracked_file_in_the_way_blocks_checkout(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"a": "1"})
    c1 = repo.commit("v1")
    write_tree(repo_dir, {"b": "tracked later"})
    repo.commit("v2")
    repo.checkout(c1.id)
    write_tree(repo_dir, {"b": "untracked, precious"})
    with pytest.raises(UncommittedChangesError):
        repo.checkout("main")
    assert (repo_dir / "b").read_text() == "untracked, precious"


def test_checkout_paths(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, V1)
    c1 = repo.commit("v1")
    _v2(repo_dir)
    repo.commit("v2")
    res = repo.checkout(c1.id, ["img/cat"])
    assert (repo_dir / "img/cat/2.jpg").read_text() == "cat2"
    assert (repo_dir / "img/cat/1.jpg").read_text() == "cat1"
    assert not (repo_dir / "img/cat/3.jpg").exists()  # the folder matches v1 exactly
    assert (repo_dir / "img/bird/1.jpg").exists()  # other paths untouched
    assert res.branch == "main" and repo.status().head == repo.resolve("main").commit_id
    with pytest.raises(WorktreeError):
        repo.checkout(c1.id, ["no/such/path"])


def test_checkout_paths_discards_local_edits_and_says_so(repo: dsv.Repo, repo_dir: Path) -> None:
    """As ``git checkout [REV] -- PATH``: restoring a path is how an edit is thrown away."""
    write_tree(repo_dir, V1)
    c1 = repo.commit("v1")
    (repo_dir / "labels.csv").write_text("edited")
    res = repo.checkout(c1.id, ["labels.csv"])
    assert res.overwritten == ("labels.csv",)
    assert (repo_dir / "labels.csv").read_text() == V1["labels.csv"]
    assert repo.status().clean
    (repo_dir / "labels.csv").write_text("edited again")
    res = repo.checkout(None, ["labels.csv"])  # REV defaults to HEAD
    assert res.overwritten == ("labels.csv",) and res.commit == c1.id
    assert (repo_dir / "labels.csv").read_text() == V1["labels.csv"]
    res = repo.checkout(None, ["labels.csv"])
    assert res.overwritten == () and res.written == 0


def test_branches_and_tags(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, V1)
    c1 = repo.commit("v1")
    repo.create_branch("cleanup")
    with pytest.raises(RefExistsError):
        repo.create_branch("cleanup")
    repo.checkout("cleanup")
    (repo_dir / "labels.csv").write_text("cleaned")
    c2 = repo.commit("clean")
    assert {b.name: b.commit for b in repo.branches()} == {"cleanup": c2.id, "main": c1.id}
    assert [b.name for b in repo.branches() if b.current] == ["cleanup"]
    with pytest.raises(UsageError):
        repo.delete_branch("cleanup")
    t = repo.create_tag("v1", "main", message="dataset for exp-42", meta={"run_id": "abc"})
    light = repo.create_tag("light", "HEAD")
    assert t.tag is not None and light.tag is None
    tags = {x.name: x for x in repo.tags()}
    assert tags["v1"].commit == c1.id and tags["v1"].tag.meta == {"run_id": "abc"}
    assert tags["light"].commit == c2.id
    shown = repo.show("v1")
    assert shown.tag_name == "v1" and shown.tag.message == "dataset for exp-42" and shown.id == c1.id
    repo.delete_tag("light")
    assert [x.name for x in repo.tags()] == ["v1"]
    repo.checkout("main")
    repo.delete_branch("cleanup")
    assert [b.name for b in repo.branches()] == ["main"]


def test_odd_names_symlinks_and_exec_bits_round_trip(repo: dsv.Repo, repo_dir: Path) -> None:
    files = {"sp ace/ü ñ.png": b"\x00\xff", "-leading": b"dash", "new\nline": b"nl", ".hidden": b"h", "deep/a/b/c/d.bin": os.urandom(100)}
    write_tree(repo_dir, files)
    (repo_dir / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(repo_dir / "run.sh", 0o755)
    os.symlink("deep/a", repo_dir / "link")
    os.symlink("/etc/passwd", repo_dir / "abs-link")
    before = read_tree(repo_dir)
    c1 = repo.commit("odd")
    for p in list(files) + ["run.sh", "link", "abs-link"]:
        full = repo_dir / p
        if full.is_symlink() or full.is_file():
            full.unlink()
    write_tree(repo_dir, {"other": "x"})
    repo.commit("gone")
    repo.checkout(c1.id)
    assert read_tree(repo_dir) == before
    assert os.stat(repo_dir / "run.sh").st_mode & 0o100
    assert os.readlink(repo_dir / "link") == "deep/a"
    assert repo.status().clean


def test_init_twice_and_not_a_repository(tmp_path: Path) -> None:
    dsv.Repo.init(tmp_path)
    with pytest.raises(RepositoryExistsError):
        dsv.Repo.init(tmp_path)
    with pytest.raises(NotARepositoryError):
        dsv.Repo(tmp_path.parent / "elsewhere-not-a-repo")


def test_repo_opens_from_a_subfolder(repo: dsv.Repo, repo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tree(repo_dir, {"a/b/c": "x"})
    repo.commit("v1")
    monkeypatch.chdir(repo_dir / "a" / "b")
    sub = dsv.Repo()
    assert sub.root == str(repo_dir)
    assert sub.repo_path("c") == "a/b/c"
    assert sub.read_file("HEAD", sub.repo_path("c")) == b"x"


def test_gc_prunes_unreachable_objects_after_the_grace_period(repo: dsv.Repo, repo_dir: Path) -> None:
    write_tree(repo_dir, {"keep": "k"})
    repo.commit("v1")
    repo.create_branch("side")
    repo.checkout("side")
    write_tree(repo_dir, {"experiment.bin": os.urandom(5000)})
    side = repo.commit("side work")
    repo.checkout("main")
    repo.delete_branch("side")
    assert repo.fsck().ok
    kept = repo.gc(14 * 86400)
    assert kept.objects_removed == 0
    assert repo.repository.store.has(side.id)
    pruned = repo.gc(0)
    # The side commit, its manifest root and chunk, and the experiment file.
    assert pruned.objects_removed == 4
    assert not repo.repository.store.has(side.id)
    assert repo.fsck().ok
    assert repo.read_file("main", "keep") == b"k"
    assert repo.gc(0).objects_removed == 0
