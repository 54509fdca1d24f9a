"""Worktree layer: ignore rules, path safety, stat cache, scanning."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dsv
from dsv.base.errors import UnsafePathError
from dsv.store import MemoryObjectStore
from dsv.worktree import statcache
from dsv.worktree.checkout import FileWrite, materialize
from dsv.worktree.ignore import IgnoreRules, load_ignore
from dsv.worktree.paths import check_manifest_path, to_repo_path
from dsv.worktree.scan import MODE_FILE, scan
from dsv.worktree.statcache import StatCache, stat_key

from conftest import write_tree


@pytest.mark.parametrize(
    "patterns, path, is_dir, ignored",
    [
        (["*.tmp"], "x.tmp", False, True),
        (["*.tmp"], "deep/er/x.tmp", False, True),
        (["*.tmp", "!keep.tmp"], "keep.tmp", False, False),
        (["*.tmp", "!keep.tmp"], "d/keep.tmp", False, False),
        (["build/"], "build", True, True),
        (["build/"], "build", False, False),
        (["build/"], "src/build", True, True),
        (["/top.txt"], "top.txt", False, True),
        (["/top.txt"], "d/top.txt", False, False),
        (["a/**/b"], "a/b", False, True),
        (["a/**/b"], "a/x/y/b", False, True),
        (["logs/*.log"], "logs/1.log", False, True),
        (["logs/*.log"], "logs/x/1.log", False, False),
        (["**/cache"], "x/y/cache", True, True),
        (["im?.png"], "im1.png", False, True),
        (["im[0-4].png"], "im7.png", False, False),
        (["# comment", "", "  "], "anything", False, False),
        (["\\#literal"], "#literal", False, True),
        (["with space\\ "], "with space ", False, True),
    ],
)
def test_ignore_rules(patterns: list[str], path: str, is_dir: bool, ignored: bool) -> None:
    rules = IgnoreRules(patterns)
    assert (rules.ignores_dir(path) if is_dir else rules.ignores_file(path)) is ignored


def test_ignored_files_and_dirs_are_not_scanned(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.jpg": "1", "b.tmp": "2", "cache/x": "3", "keep/y": "4", ".dsvignore": "*.tmp\ncache/\n", ".git/HEAD": "g"})
    res = scan(str(tmp_path), StatCache(None, None), load_ignore(str(tmp_path)), lambda m: None, parallel=False)
    assert sorted(p for p, _, _ in res.new) == [".dsvignore", "a.jpg", "keep/y"]


@pytest.mark.parametrize(
    "bad", ["", "/abs", "../x", "a/../b", "a/./b", "a//b", "a/", ".dsv/config.json", ".dsv", "a/.dsv", ".DSV/HEAD", ".git/hooks/pre-commit", "x/.Git/config", "nul\x00x", "..", "."]
)
def test_unsafe_manifest_paths(bad: str) -> None:
    with pytest.raises(UnsafePathError):
        check_manifest_path(bad)


@pytest.mark.parametrize("good", ["a", "a/b.jpg", "-leading-dash", "sp ace/ü.png", "new\nline", ".hidden", "..dots", "a/.dsvx", ".gitignore"])
def test_safe_manifest_paths(good: str) -> None:
    assert check_manifest_path(good) == good


def test_repo_paths_from_the_command_line(tmp_path: Path) -> None:
    root = str(tmp_path)
    (tmp_path / "sub").mkdir()
    assert to_repo_path(root, "x/y", cwd=root) == "x/y"
    assert to_repo_path(root, "y", cwd=str(tmp_path / "sub")) == "sub/y"
    assert to_repo_path(root, ".", cwd=root) == ""
    assert to_repo_path(root, str(tmp_path / "abs"), cwd="/") == "abs"
    for bad in ("../outside", "/etc/passwd", ".dsv/HEAD"):
        with pytest.raises(UnsafePathError):
            to_repo_path(root, bad, cwd=root)


def _cache_for(root: Path, rels: list[str]) -> StatCache:
    keys = []
    for r in rels:
        keys.append(stat_key(os.lstat(root / r), MODE_FILE))
    return StatCache("c" * 32, "m" * 32, rels, [b"\0" * 16] * len(rels), [1] * len(rels), [MODE_FILE] * len(rels), keys)


def test_statcache_round_trip(tmp_path: Path) -> None:
    write_tree(tmp_path, {"b": "x", "a/c": "y", "ü/ñ": "z"})
    rels = ["b", "a/c", "ü/ñ"]
    cache = _cache_for(tmp_path, rels)
    path = str(tmp_path / "cache")
    statcache.save(path, cache)
    # Age the cache file so that no entry is racy.
    os.utime(path, ns=(4_000_000_000_000_000_000, 4_000_000_000_000_000_000))
    loaded = statcache.load(path)
    assert loaded is not None
    assert loaded.commit == "c" * 32 and loaded.manifest == "m" * 32
    assert sorted(loaded.paths) == sorted(rels)
    for p in rels:
        assert loaded.key(loaded.index[p]) == cache.key(cache.index[p])


def test_statcache_entries_not_older_than_the_cache_are_racy(tmp_path: Path) -> None:
    write_tree(tmp_path, {"f": "x"})
    cache = _cache_for(tmp_path, ["f"])
    path = str(tmp_path / "cache")
    statcache.save(path, cache)
    st = os.lstat(tmp_path / "f")
    os.utime(path, ns=(st.st_mtime_ns, st.st_mtime_ns))  # cache written in the same tick as the file
    loaded = statcache.load(path)
    assert loaded is not None and loaded.key(0) == statcache.UNKNOWN_KEY


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 40), st.data())
def test_patched_statcache_equals_a_row_by_row_rebuild(n: int, data: st.DataObject) -> None:
    paths = [f"p{i}" for i in range(n)]
    cache = StatCache("c", "m", paths, [bytes([i % 256]) * 16 for i in range(n)], list(range(n)), [MODE_FILE] * n,
                      [statcache.KEY.pack(i, i, i, i + 1, MODE_FILE) for i in range(n)])
    removed = data.draw(st.sets(st.integers(0, n - 1), max_size=n) if n else st.just(set()))
    changed = {r: (b"\xee" * 16, 7, MODE_FILE, None) for r in data.draw(st.sets(st.integers(0, n - 1)) if n else st.just(set())) if r not in removed}
    added = [(f"new{i}", b"\xaa" * 16, i, MODE_FILE, statcache.KEY.pack(9, 9, 9, 9, 9)) for i in range(data.draw(st.integers(0, 3)))]
    out = cache.patched("c2", "m2", removed, changed, added)
    want = []
    for r in range(n):
        if r in removed:
            continue
        oid, size, mode, key = changed.get(r, (cache.oid(r), cache.sizes[r], cache.modes[r], cache.key(r)))
        want.append((paths[r], oid, size, mode, key or statcache.UNKNOWN_KEY))
    want += [(p, o, sz, m, k) for p, o, sz, m, k in added]
    got = [(out.paths[i], out.oid(i), out.sizes[i], out.modes[i], out.key(i)) for i in range(len(out))]
    assert got == want and (out.commit, out.manifest) == ("c2", "m2")


def test_corrupt_statcache_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    statcache.save(str(path), StatCache("c" * 32, None, ["a"], [b"\0" * 16], [1], [MODE_FILE], [None]))
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))
    assert statcache.load(str(path)) is None
    assert statcache.load(str(tmp_path / "missing")) is None


def test_parallel_scan_equals_sequential(tmp_path: Path) -> None:
    files = {f"d{i % 13}/s{i % 3}/f{i}": str(i) for i in range(600)}
    write_tree(tmp_path, files)
    rels = sorted(files)[:400]
    cache = _cache_for(tmp_path, rels)
    (tmp_path / rels[0]).write_text("changed!")  # a suspect
    os.unlink(tmp_path / rels[1])  # missing
    results = [scan(str(tmp_path), cache, None, lambda m: None, parallel=p) for p in (False, True)]
    seq, par = results
    assert sorted(seq.clean) == sorted(par.clean)
    assert sorted(r for r, _, _ in seq.suspect) == sorted(r for r, _, _ in par.suspect) == [0]
    assert sorted(p for p, _, _ in seq.new) == sorted(p for p, _, _ in par.new)
    assert seq.missing == par.missing == [1]
    assert len(seq.new) == 200


def test_special_files_are_skipped_with_a_warning(tmp_path: Path) -> None:
    write_tree(tmp_path, {"ok": "1"})
    os.mkfifo(tmp_path / "pipe")
    warnings: list[str] = []
    res = scan(str(tmp_path), StatCache(None, None), None, warnings.append, parallel=False)
    assert [p for p, _, _ in res.new] == ["ok"]
    assert any("pipe" in w for w in warnings)


def test_materialize_never_writes_through_a_symlinked_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "data").symlink_to(outside)
    store = MemoryObjectStore()
    w = store.begin_write()
    oid = w.add_bytes(b"payload")
    w.commit()
    with pytest.raises(UnsafePathError):
        materialize(str(root), store, [FileWrite("data/x", oid, 7, MODE_FILE)], [])
    assert list(outside.iterdir()) == []


def test_materialize_validates_every_path_before_writing(tmp_path: Path) -> None:
    store = MemoryObjectStore()
    w = store.begin_write()
    oid = w.add_bytes(b"payload")
    w.commit()
    with pytest.raises(UnsafePathError):
        materialize(str(tmp_path), store, [FileWrite("fine", oid, 7, MODE_FILE), FileWrite("../evil", oid, 7, MODE_FILE)], [])
    assert list(tmp_path.iterdir()) == []


def test_git_and_dsv_folders_are_never_tracked_at_any_depth(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "a.txt": "1",
            "sub/.git/HEAD": "g",
            "sub/.dsv/x": "d",
            "sub/ok.txt": "2",
            ".dsv-tmp-0123456789abcdef": "crash leftover",
            ".dsv-tmp-notes.txt": "a user's file that merely starts like one",
            ".GIT/config": "upper-case git folder",
            "wt/.git": "gitdir: ../x (a worktree marker file)",
            ".dsv.init-123/config.json": "half-made repository",
        },
    )
    res = scan(str(tmp_path), StatCache(None, None), None, lambda m: None, parallel=False)
    assert sorted(p for p, _, _ in res.new) == [".dsv-tmp-notes.txt", "a.txt", "sub/ok.txt"]
    assert res.leftovers == [".dsv-tmp-0123456789abcdef"]


def test_removal_never_follows_a_symlinked_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "b").write_text("not yours")
    root = tmp_path / "root"
    root.mkdir()
    (root / "a").symlink_to(outside)  # a tracked folder 'a' was replaced by a link
    materialize(str(root), MemoryObjectStore(), [], ["a/b"])
    assert (outside / "b").read_text() == "not yours"


def test_nothing_is_written_when_one_target_is_behind_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "z").symlink_to(outside)
    store = MemoryObjectStore()
    w = store.begin_write()
    oid = w.add_bytes(b"payload")
    w.commit()
    with pytest.raises(UnsafePathError):
        materialize(str(root), store, [FileWrite("a/first", oid, 7, MODE_FILE), FileWrite("z/x", oid, 7, MODE_FILE)], [])
    assert sorted(p.name for p in root.iterdir()) == ["z"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="ab/é\0", min_size=1, max_size=4), unique=True, max_size=30), st.lists(st.text(alphabet="ab/é", max_size=4), max_size=20))
def test_rows_of_a_loaded_cache_equal_its_index(paths: list[str], lookups: list[str]) -> None:
    import tempfile

    paths = [p for p in paths if "\0" not in p]
    cache = StatCache("c", "m", paths, [b"\0" * 16] * len(paths), [1] * len(paths), [MODE_FILE] * len(paths), [None] * len(paths))
    with tempfile.TemporaryDirectory() as d:
        statcache.save(os.path.join(d, "c"), cache)
        loaded = statcache.load(os.path.join(d, "c"))
    assert loaded is not None
    want = {p: cache.index[p] for p in lookups if p in cache.index}
    assert loaded.rows_of(lookups) == want  # from the unsplit text
    assert loaded.rows_of(lookups) == want  # and again
    assert loaded.paths == paths and loaded.rows_of(lookups) == want  # after the split


def test_only_dsvs_exact_temp_names_are_left_untracked(repo: dsv.Repo, repo_dir: Path) -> None:
    # docs/cli.md: ".dsv-tmp-" plus exactly 16 hex digits is a checkout temp file; other names are data.
    write_tree(repo_dir, {".dsv-tmp-notes.txt": b"mine", "sub/.dsv-tmp-abc123": b"also mine", "a.txt": b"a"})
    (repo_dir / "sub" / ".dsv-tmp-0123456789abcdef").write_bytes(b"a killed checkout's temp file")
    st = repo.status()
    assert set(st.added) == {".dsv-tmp-notes.txt", "sub/.dsv-tmp-abc123", "a.txt"}


def _store_of(contents: dict[str, bytes]) -> tuple[MemoryObjectStore, dict[str, str]]:
    store = MemoryObjectStore()
    w = store.begin_write()
    oids = {p: w.add_bytes(data) for p, data in contents.items()}
    w.commit()
    return store, oids


@pytest.mark.parametrize("budget", [None, 0, 3])
def test_checkout_stages_unnamed_and_named_files_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: int | None) -> None:
    # Unnamed staging (O_TMPFILE, as many as descriptors allow), temp names, or both in one
    # checkout: the same files, modes, stat keys, and no staged file left behind.
    import stat as statmod

    import dsv.worktree.checkout as co
    from dsv.base.filemodes import MODE_EXEC

    if budget is not None:
        real = co._unnamed_budget
        monkeypatch.setattr(co, "_unnamed_budget", lambda count: min(budget, real(count)))
    new = {f"d{i % 3}/f{i}": f"new {i}\n".encode() * (i + 1) for i in range(10)}
    new["top"] = b"at the root\n"
    store, oids = _store_of(new)
    root = tmp_path / "root"
    write_tree(root, {"d0/f0": b"old\n", "d1/f1": b"old\n", "gone": b"x"})
    writes = [FileWrite(p, oids[p], len(d), MODE_EXEC if p == "d1/f4" else MODE_FILE) for p, d in new.items()]
    linked: list[int] = []
    real_link = co._link_unnamed
    monkeypatch.setattr(co, "_link_unnamed", lambda fd, target, dir_fd: (linked.append(fd), real_link(fd, target, dir_fd)))
    keys, removed = materialize(str(root), store, writes, ["gone"], staging=str(tmp_path / "staging"))
    assert removed == 1
    # 8 targets have a folder already (d0, d1, the root); d2's three are staged in the staging folder.
    assert len(linked) == (min(8, budget) if budget is not None else 8 if co._O_TMPFILE else 0)
    got = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert got == new
    assert os.stat(root / "d1/f4").st_mode & 0o111 and not os.stat(root / "d1/f1").st_mode & 0o111
    for p in new:
        st_ = os.lstat(root / p)
        assert statmod.S_ISREG(st_.st_mode) and st_.st_nlink == 1
        assert keys[p] == stat_key(st_, MODE_EXEC if p == "d1/f4" else MODE_FILE), p
    assert not (tmp_path / "staging").exists()


def test_checkout_falls_back_to_temp_names_where_unnamed_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A filesystem without O_TMPFILE (NFS, old kernels) answers EOPNOTSUPP: staged under temp names.
    import errno

    import dsv.worktree.checkout as co

    real_open = os.open
    refused = {"n": 0}

    def no_tmpfile(path: str, flags: int, mode: int = 0o777, **kw: object) -> int:
        if co._O_TMPFILE and flags & co._O_TMPFILE == co._O_TMPFILE:
            refused["n"] += 1
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", no_tmpfile)
    new = {f"d/f{i}": f"v{i}\n".encode() for i in range(5)}
    store, oids = _store_of(new)
    root = tmp_path / "root"
    write_tree(root, {"d/f0": b"old\n"})
    materialize(str(root), store, [FileWrite(p, oids[p], len(d), MODE_FILE) for p, d in new.items()], [], staging=str(tmp_path / "s"))
    assert {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()} == new
    assert refused["n"] <= 1  # asked once per filesystem, not once per file


def test_a_corrupt_object_stops_unnamed_staging_before_any_change(tmp_path: Path) -> None:
    # The id is verified as the content streams into the unnamed file; nothing is linked.
    from dsv.base.errors import DsvError

    new = {f"d/f{i}": f"v{i}\n".encode() for i in range(4)}
    store, oids = _store_of(new)
    store.objects[oids["d/f2"]] = b"tampered\n"
    root = tmp_path / "root"
    write_tree(root, {"d/f0": b"old\n", "d/f2": b"old two\n"})
    with pytest.raises(DsvError):
        materialize(str(root), store, [FileWrite(p, oids[p], len(d), MODE_FILE) for p, d in new.items()], [], staging=str(tmp_path / "s"))
    assert {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()} == {"d/f0": b"old\n", "d/f2": b"old two\n"}
    assert sorted(os.listdir(root / "d")) == ["f0", "f2"]


def _fake_statvfs(monkeypatch: pytest.MonkeyPatch, *, block: int, blocks_free: int, inodes_free: int) -> None:
    real = os.statvfs

    class Fake:
        def __init__(self, st: os.statvfs_result) -> None:
            self.f_frsize = block
            self.f_bsize = block
            self.f_bavail = blocks_free
            self.f_blocks = blocks_free * 2 + 1
            self.f_files = max(inodes_free, 1) * 2
            self.f_favail = inodes_free
            self.f_flag = st.f_flag

    monkeypatch.setattr(os, "statvfs", lambda path: Fake(real(path)))


@pytest.mark.parametrize("what", ["blocks", "entries", "inodes", "fits"])
def test_checkout_checks_blocks_folder_entries_and_inodes_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    # 300 one-byte files with 200-byte names into an existing folder, on a filesystem of 1 KiB
    # blocks: 300 blocks of data, ~62 KB of new folder entries (claimed only at the switch).
    from dsv.base.errors import WorktreeError

    names = {f"sub/{'n' * 200}{i:04d}": b"x" for i in range(300)}
    store, oids = _store_of(names)
    root = tmp_path / "root"
    write_tree(root, {"sub/keep": b"keep\n"})
    blocks_free, inodes_free = {
        "blocks": (299, 10_000),  # not even the data
        "entries": (300 + 8, 10_000),  # the data, not the folder's new entries
        "inodes": (10_000, 299),
        "fits": (10_000, 10_000),
    }[what]
    _fake_statvfs(monkeypatch, block=1024, blocks_free=blocks_free, inodes_free=inodes_free)
    writes = [FileWrite(p, oids[p], 1, MODE_FILE) for p in names]
    if what == "fits":
        materialize(str(root), store, writes, [], staging=str(tmp_path / "s"))
        assert len(os.listdir(root / "sub")) == 301
        return
    with pytest.raises(WorktreeError) as info:
        materialize(str(root), store, writes, [], staging=str(tmp_path / "s"))
    assert ("inodes" in info.value.message) == (what == "inodes")
    assert "nothing in the working tree was changed" in (info.value.hint or "")
    assert os.listdir(root / "sub") == ["keep"]


def test_a_folder_that_only_loses_files_must_be_writable_before_anything_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by an outside attack: a read-only folder holding only deletions stopped the switch
    # part-way. (Simulated: the tests run as root, for whom every folder is writable.)
    from dsv.base.errors import WorktreeError

    store, oids = _store_of({"a/keep": b"k\n"})
    root = tmp_path / "root"
    write_tree(root, {"a/keep": b"old\n", "ro/gone": b"x\n"})
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p).endswith("/ro") else real(p, mode, **kw))
    with pytest.raises(WorktreeError) as info:
        materialize(str(root), store, [FileWrite("a/keep", oids["a/keep"], 2, MODE_FILE)], ["ro/gone"], staging=str(tmp_path / "s"))
    assert "cannot delete files in ro" in info.value.message and "nothing in the working tree was changed" in (info.value.hint or "")
    assert (root / "a" / "keep").read_bytes() == b"old\n" and (root / "ro" / "gone").exists()


def test_a_refused_unnamed_file_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import dsv.worktree.checkout as co
    from dsv.base.errors import StorageError

    if not co._O_TMPFILE:
        pytest.skip("no O_TMPFILE here")
    real_open = os.open

    def denied(path: str, flags: int, mode: int = 0o777, **kw: object) -> int:
        if flags & co._O_TMPFILE == co._O_TMPFILE:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, mode, **kw)  # type: ignore[arg-type]

    store, oids = _store_of({"d/f": b"new\n"})
    root = tmp_path / "root"
    write_tree(root, {"d/f": b"old\n"})
    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(StorageError) as info:
        materialize(str(root), store, [FileWrite("d/f", oids["d/f"], 4, MODE_FILE)], [], staging=str(tmp_path / "s"))
    assert info.value.message.startswith(f"cannot write {root / 'd' / 'f'}:"), info.value.message


def test_a_filesystem_without_block_accounting_is_not_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ramfs reports 0 blocks in all and 0 free: nothing to check against, so nothing is refused.
    store, oids = _store_of({"d/f": b"new\n"})
    root = tmp_path / "root"
    write_tree(root, {"d/f": b"old\n"})
    real = os.statvfs
    monkeypatch.setattr(os, "statvfs", lambda p: type("Ramfs", (), {"f_frsize": 4096, "f_bsize": 4096, "f_blocks": 0, "f_bavail": 0,
                                                                     "f_files": 0, "f_favail": 0, "f_flag": real(p).f_flag})())
    materialize(str(root), store, [FileWrite("d/f", oids["d/f"], 4, MODE_FILE)], [], staging=str(tmp_path / "s"))
    assert (root / "d" / "f").read_bytes() == b"new\n"


def _glob_reference(pattern: str, path: str) -> bool:
    """An independent matcher for what the property test draws (literals, '/', '*', '?', '**',
    '**/'): memoised recursion over (pattern position, path position). '*' and '?' never match
    '/'; '**/' is zero or more whole folders; any other '**' is any text."""
    import functools

    @functools.lru_cache(maxsize=None)
    def match(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(path)
        if pattern.startswith("**/", i):
            return match(i + 3, j) or any(path[k] == "/" and match(i + 3, k + 1) for k in range(j, len(path)))
        if pattern.startswith("**", i):
            return any(match(i + 2, k) for k in range(j, len(path) + 1))
        c = pattern[i]
        if c == "*":
            return match(i + 1, j) or (j < len(path) and path[j] != "/" and match(i, j + 1))
        if j < len(path) and (c == path[j] or (c == "?" and path[j] != "/")):
            return match(i + 1, j + 1)
        return False

    return match(0, 0)


@settings(max_examples=600, deadline=None)
@given(
    pattern=st.text(alphabet="ab*?/", min_size=1, max_size=14).filter(lambda p: not p.startswith("/") and not p.endswith("/") and "//" not in p),
    path=st.text(alphabet="ab/", min_size=1, max_size=14).filter(lambda s: "//" not in s and not s.startswith("/") and not s.endswith("/")),
)
def test_ignore_patterns_match_as_an_independent_matcher_does(pattern: str, path: str) -> None:
    rules = IgnoreRules(["/" + pattern])  # anchored: the whole path against the whole pattern
    assert rules.ignores_file(path) is _glob_reference(pattern, path), (pattern, path)


def test_a_pattern_of_many_stars_does_not_backtrack_for_ever(tmp_path: Path) -> None:
    # Found by an outside attack: '*a*a*a*a*a*a*a*a*b' against a 100-character name took
    # minutes (a backtracking regex); git answers at once.
    import subprocess
    import sys

    code = (
        "from dsv.worktree.ignore import IgnoreRules\n"
        "r = IgnoreRules(['*a*a*a*a*a*a*a*a*b', '!keep', 'x*a*a*a*a*a*a*a*a*/', '**c**c**c**c**c**c**d', 'c/**/c/**/c/**/c/**/c/**/d'])\n"
        "assert not r.ignores_file('c/' * 30 + 'c' * 40)\n"
        "assert not r.ignores_file('a' * 100)\n"
        "assert r.ignores_file('a' * 99 + 'b')\n"
        "assert r.ignores_dir('x' + 'a' * 100) and not r.ignores_dir('x' + 'a' * 7 + 'b' * 100)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_a_dsvignore_that_is_not_a_file_is_a_clear_error_not_a_hang(tmp_path: Path, kind: str) -> None:
    from conftest import run_dsv

    (tmp_path / "a.txt").write_text("a")
    dsv.Repo.init(tmp_path)
    target = tmp_path / ".dsvignore"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    else:
        target.symlink_to("/dev/zero")
    proc = run_dsv("status", cwd=tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1 and ".dsvignore is not a regular file" in err, err


def test_on_a_whole_second_filesystem_recent_keys_are_saved_as_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by an outside attack on a 1-second-timestamp ext4: a file checkout wrote, then
    # edited in the same second (same size), kept size, times and inode: status missed the
    # edit and the next checkout overwrote it. A key taken in the second its file was
    # written is not trusted there.
    import time

    monkeypatch.setattr(statcache, "_coarse_timestamps", lambda folder: True)
    now = time.time_ns()
    second = now - now % 1_000_000_000
    old = statcache.KEY.pack(5, second - 10_000_000_000, second - 10_000_000_000, 11, 0o100644)
    fresh = statcache.KEY.pack(5, second, second, 12, 0o100644)  # written this second
    cache = StatCache("c", "m", ["a", "b"], [b"\0" * 16, b"\1" * 16], [5, 5], [0o100644, 0o100644], [old, fresh])
    path = str(tmp_path / "statcache")
    statcache.save(path, cache)
    loaded = statcache.load(path)
    assert loaded is not None
    assert loaded.key(loaded.index["a"]) == old
    assert loaded.key(loaded.index["b"]) == statcache.UNKNOWN_KEY
    # With finer timestamps nothing is forgotten at save (the load-time rule covers a tick).
    monkeypatch.setattr(statcache, "_coarse_timestamps", lambda folder: False)
    cache = StatCache("c", "m", ["a", "b"], [b"\0" * 16, b"\1" * 16], [5, 5], [0o100644, 0o100644], [old, fresh])
    statcache.save(path, cache)
    os.utime(path, ns=(second + 5_000_000_000, second + 5_000_000_000))  # the cache file is newer than both rows
    loaded = statcache.load(path)
    assert loaded is not None and loaded.key(loaded.index["b"]) == fresh


def test_a_checkout_on_a_whole_second_filesystem_leaves_its_files_to_be_rehashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statcache, "_coarse_timestamps", lambda folder: True)
    write_tree(tmp_path, {"x.txt": "AAAA", "y.txt": "keep"})
    repo = dsv.Repo.init(tmp_path)
    repo.commit("a")
    (tmp_path / "x.txt").write_text("BBBB")
    repo.commit("b")
    repo.checkout("HEAD~1")
    cache = statcache.load(str(tmp_path / ".dsv" / "statcache"))
    assert cache is not None and cache.key(cache.index["x.txt"]) == statcache.UNKNOWN_KEY
    (tmp_path / "x.txt").write_text("MINE")  # same size, same second: found because the key is unknown
    assert dsv.Repo(tmp_path).status().modified == ("x.txt",)
