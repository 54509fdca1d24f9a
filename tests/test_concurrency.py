"""Several dsv processes on one repository: commits, gc, ref creation, and the locks between them."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import dsv  # noqa: E402
from dsv.base.fsio import FileLock  # noqa: E402
from faultutil import (  # noqa: E402
    BIG,
    assert_fsck_clean,
    assert_one_line_error,
    dead_pid,
    dsv_env,
    log_ids,
    ok,
    random_dataset,
    read_tree,
    run_dsv,
    start_dsv,
    write_files,
)


def _write_atomically(root: Path, files: dict[str, bytes]) -> None:
    """Write files by rename, so a concurrent reader sees each one whole or not at all."""
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.parent / f".{p.name}.writing"
        tmp.write_bytes(data)
        os.replace(tmp, p)


def _setup(tmp_path: Path, seed: int, n_small: int, n_big: int = 1) -> tuple[Path, random.Random, dict[str, bytes], str]:
    rng = random.Random(seed)
    root = tmp_path / "repo"
    root.mkdir()
    tree = random_dataset(rng, n_small, n_big)
    write_files(root, tree)
    dsv.Repo.init(root)
    cid = dsv.Repo(root).commit("initial").id
    return root, rng, tree, cid


def _finish(proc: subprocess.Popen[str], timeout: float = 90) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _checkout_matches(root: Path, rev: str, expected: dict[str, bytes]) -> None:
    ok(run_dsv(root, "-q", "checkout", rev))
    actual = read_tree(root)
    bad = sorted(p for p in set(actual) | set(expected) if actual.get(p) != expected.get(p))
    assert not bad, f"checkout {rev}: {len(bad)} paths differ, e.g. {bad[:5]}"


# -- two commits at once --------------------------------------------------------------------


def test_two_commits_at_once_both_land_or_one_fails_cleanly(tmp_path: Path) -> None:
    root, rng, tree, first = _setup(tmp_path, 61, 800)
    reported: list[str] = []
    outcomes = []
    for rnd in range(4):
        small = sorted(p for p in tree if p.startswith("data/"))
        change_a = {p: rng.randbytes(rng.randint(1, 400)) for p in rng.sample(small, 200)}
        if rnd % 2 == 0:
            change_a["big/blob0.bin"] = rng.randbytes(BIG + rnd)
        change_b = {f"round{rnd}/b{i}.bin": rng.randbytes(200) for i in range(100)}
        _write_atomically(root, change_a)
        if rnd % 2 == 0:  # both changes made before either process starts
            _write_atomically(root, change_b)
        p1 = start_dsv(root, "-q", "commit", "-m", f"r{rnd}-a", "--json")
        if rnd % 2 == 1:  # the second change lands while the first commit holds the lock
            deadline = time.monotonic() + 10
            while not (root / ".dsv" / "locks" / "write.lock").exists() and p1.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            _write_atomically(root, change_b)
        p2 = start_dsv(root, "-q", "commit", "-m", f"r{rnd}-b", "--json")
        tree.update(change_a)
        tree.update(change_b)
        wins = 0
        for p in (p1, p2):
            code, out, err = _finish(p)
            if code == 0:
                reported.append(json.loads(out)["id"])
                wins += 1
            else:
                assert_one_line_error(err, code, contains=["nothing to commit"])
            outcomes.append(code)
        assert wins >= 1, f"round {rnd}: neither commit landed"
    history = log_ids(root)
    assert set(reported) <= set(history), "a commit reported as made is not in the history"
    assert len(history) == 1 + len(reported), "the history holds commits nobody reported"
    assert history[-1] == first
    assert_fsck_clean(root)
    assert json.loads(ok(run_dsv(root, "status", "--json")).stdout)["clean"] is True
    _checkout_matches(root, history[0], tree)
    print("commit exit codes:", outcomes)


# -- gc while committing --------------------------------------------------------------------


def test_gc_running_with_a_commit_keeps_every_commit_whole(tmp_path: Path) -> None:
    root, rng, tree, first = _setup(tmp_path, 62, 400)
    snapshots = {first: dict(tree)}
    removed_total = 0
    for rnd in range(3):
        # Garbage that shares packs and contents with what main commits next: a side branch,
        # committed then deleted, whose file contents main re-uses.
        ok(run_dsv(root, "branch", f"side{rnd}"))
        ok(run_dsv(root, "-q", "checkout", f"side{rnd}"))
        small = sorted(p for p in tree if p.startswith("data/"))
        side = {p: rng.randbytes(rng.randint(1, 400)) for p in rng.sample(small, 60)}
        if rnd == 0:
            side["big/blob0.bin"] = rng.randbytes(BIG + 99)
        write_files(root, side)
        ok(run_dsv(root, "-q", "commit", "-m", f"side {rnd}"))
        ok(run_dsv(root, "-q", "checkout", "main"))
        ok(run_dsv(root, "branch", "-d", f"side{rnd}"))
        reused = dict(list(side.items())[:30])
        fresh = {p: rng.randbytes(rng.randint(1, 400)) for p in rng.sample(small, 40)}
        change = {**reused, **fresh}
        write_files(root, change)
        tree.update(change)

        first_cmd, second_cmd = (["gc", "--grace", "0", "--json"], ["-q", "commit", "-m", f"main {rnd}", "--json"])
        if rnd % 2:
            first_cmd, second_cmd = second_cmd, first_cmd
        a = start_dsv(root, *first_cmd)
        time.sleep(rng.uniform(0.0, 0.25))
        b = start_dsv(root, *second_cmd)
        results = {tuple(first_cmd): _finish(a), tuple(second_cmd): _finish(b)}
        for cmd, (code, out, err) in results.items():
            assert code == 0, f"{cmd} failed ({code}): {err}"
            data = json.loads(out)
            if cmd[0] == "gc":
                removed_total += data["objects_removed"]
            else:
                snapshots[data["id"]] = dict(tree)
        assert_fsck_clean(root)
    assert removed_total > 0, "gc never removed anything: the test exercised nothing"
    assert set(log_ids(root)) == set(snapshots)
    for cid, expected in snapshots.items():
        _checkout_matches(root, cid, expected)
    _checkout_matches(root, "main", tree)


# -- refs created at once -------------------------------------------------------------------


def test_same_tag_and_branch_created_by_two_cli_processes(tmp_path: Path) -> None:
    root, rng, tree, c1 = _setup(tmp_path, 63, 20, 0)
    write_files(root, {"more.txt": b"more"})
    c2 = dsv.Repo(root).commit("second").id
    for i in range(2):
        procs = {
            "a": start_dsv(root, "tag", f"t{i}", "-m", "from a"),
            "b": start_dsv(root, "tag", f"t{i}", "-m", "from b"),
        }
        codes = {k: _finish(p) for k, p in procs.items()}
        winners = [k for k, (code, _, _) in codes.items() if code == 0]
        assert len(winners) == 1, codes
        loser = "b" if winners == ["a"] else "a"
        assert_one_line_error(codes[loser][2], codes[loser][0], contains=["already exists"])
        tags = {t["name"]: t for t in json.loads(ok(run_dsv(root, "tag", "--list", "--json")).stdout)}
        assert json.dumps(tags[f"t{i}"]).count(f"from {winners[0]}") == 1, tags[f"t{i}"]

        procs = {c1: start_dsv(root, "branch", f"b{i}", c1), c2: start_dsv(root, "branch", f"b{i}", c2)}
        codes = {k: _finish(p) for k, p in procs.items()}
        winners = [k for k, (code, _, _) in codes.items() if code == 0]
        assert len(winners) == 1, codes
        loser = c2 if winners == [c1] else c1
        assert_one_line_error(codes[loser][2], codes[loser][0], contains=["already exists"])
        assert dsv.Repo(root).repository.refs.read(f"refs/heads/b{i}") == winners[0]
    assert_fsck_clean(root)


_RACER = textwrap.dedent(
    """
    import json, sys, time
    import dsv
    from dsv.base.errors import DsvError
    root, kind, name, me, start = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
    repo = dsv.Repo(root)
    time.sleep(max(0.0, start - time.time()))
    try:
        if kind == "tag":
            info = repo.create_tag(name, message=me)
            print(json.dumps({"won": True, "object": info.object}))
        else:
            info = repo.create_branch(name, me)
            print(json.dumps({"won": True, "object": info.commit}))
    except DsvError as err:
        print(json.dumps({"won": False, "error": type(err).__name__, "message": str(err)}))
    """
)


@pytest.mark.parametrize("kind", ["tag", "branch"])
def test_ref_creation_race_between_many_processes_has_one_winner(tmp_path: Path, kind: str) -> None:
    """Processes released at the same instant (dsv already imported) race for each name."""
    root, rng, tree, c1 = _setup(tmp_path, 64, 10, 0)
    commits = [c1]
    for i in range(3):
        write_files(root, {f"x{i}.txt": b"x" * (i + 1)})
        commits.append(dsv.Repo(root).commit(f"c{i}").id)
    racers = 5
    names = [f"race{i}" for i in range(2)]
    start = time.time() + 1.2  # every racer has imported dsv by then (10 interpreters on 2 cores)
    procs = []
    for name in names:
        for k in range(racers):
            me = f"racer {k}" if kind == "tag" else commits[k % len(commits)]
            cmd = [sys.executable, "-c", _RACER, str(root), kind, name, me, str(start)]
            procs.append((name, me, subprocess.Popen(cmd, env=dsv_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    results: dict[str, list[tuple[str, dict]]] = {n: [] for n in names}
    for name, me, p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results[name].append((me, json.loads(out)))
    refs = dsv.Repo(root).repository.refs
    for name in names:
        won = [(me, r) for me, r in results[name] if r["won"]]
        lost = [r for _, r in results[name] if not r["won"]]
        assert len(won) == 1, results[name]
        assert all(r["error"] == "RefExistsError" for r in lost), lost
        ns = "refs/tags" if kind == "tag" else "refs/heads"
        assert refs.read(f"{ns}/{name}") == won[0][1]["object"]
        if kind == "tag":
            tag = next(t for t in dsv.Repo(root).tags() if t.name == name)
            assert tag.tag is not None and tag.tag.message == won[0][0]
    assert not [n for n in os.listdir(root / ".dsv" / "refs" / ("tags" if kind == "tag" else "heads")) if n.endswith(".lock")]
    assert dsv.Repo(root).fsck().ok


# -- locks ----------------------------------------------------------------------------------


def _lock_file(root: Path, pid: int, host: str | None = None) -> Path:
    path = root / ".dsv" / "locks" / "write.lock"
    path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "time": time.time()}))
    return path


def test_stale_lock_of_a_dead_process_is_broken(tmp_path: Path) -> None:
    root, rng, tree, c1 = _setup(tmp_path, 71, 10, 0)
    lock = _lock_file(root, dead_pid())
    ref_lock = root / ".dsv" / "refs" / "heads" / "main.lock"
    ref_lock.write_text(lock.read_text())  # a crash inside the ref update left this one too
    write_files(root, {"new.txt": b"new"})
    t0 = time.monotonic()
    res = ok(run_dsv(root, "commit", "-m", "after a crash"))
    assert time.monotonic() - t0 < 10, "the stale lock was waited for instead of broken"
    assert "[main " in res.stdout
    assert len(log_ids(root)) == 2
    assert os.listdir(root / ".dsv" / "locks") == []
    assert sorted(os.listdir(root / ".dsv" / "refs" / "heads")) == ["main"]


@pytest.mark.parametrize("holder", ["this-process", "other-host"])
def test_live_lock_makes_commit_fail_naming_the_holder(tmp_path: Path, holder: str) -> None:
    root, rng, tree, c1 = _setup(tmp_path, 72, 10, 0)
    ok(run_dsv(root, "config", "core.lock_timeout", "0.5"))
    if holder == "this-process":
        pid, host = os.getpid(), socket.gethostname()
    else:  # a dead pid, but on another machine sharing the folder: cannot be judged stale
        pid, host = dead_pid(), "some-other-host.invalid"
    lock = _lock_file(root, pid, host)
    content = lock.read_bytes()
    write_files(root, {"new.txt": b"new"})
    t0 = time.monotonic()
    res = run_dsv(root, "commit", "-m", "blocked")
    elapsed = time.monotonic() - t0
    assert_one_line_error(res.stderr, res.returncode, contains=[f"pid {pid} on {host}", "locked"])
    assert res.returncode == 4
    assert 0.5 <= elapsed < 8, elapsed
    assert lock.read_bytes() == content, "someone else's lock was touched"
    assert len(log_ids(root)) == 1


def test_half_written_lock_blocks_until_old(tmp_path: Path) -> None:
    root, rng, tree, c1 = _setup(tmp_path, 73, 10, 0)
    ok(run_dsv(root, "config", "core.lock_timeout", "0.3"))
    lock = root / ".dsv" / "locks" / "write.lock"
    lock.write_bytes(b"")  # its writer was killed between create and write
    write_files(root, {"new.txt": b"new"})
    res = run_dsv(root, "commit", "-m", "blocked")
    assert_one_line_error(res.stderr, res.returncode, contains=["locked"])
    old = time.time() - 60
    os.utime(lock, (old, old))
    ok(run_dsv(root, "commit", "-m", "lock was old"))
    assert not lock.exists()


def test_commit_waits_for_a_lock_released_in_time(tmp_path: Path) -> None:
    root, rng, tree, c1 = _setup(tmp_path, 74, 10, 0)
    write_files(root, {"new.txt": b"new"})
    held = FileLock(str(root / ".dsv" / "locks" / "write.lock")).acquire()
    try:
        t0 = time.monotonic()
        proc = start_dsv(root, "commit", "-m", "waited")
        time.sleep(0.8)
        assert proc.poll() is None, "commit did not wait for the lock"
    finally:
        held.release()
    code, out, err = _finish(proc)
    assert code == 0, err
    assert time.monotonic() - t0 >= 0.8
    assert len(log_ids(root)) == 2


# -- a long-lived reader while gc runs in another process ----------------------------------------


def _pack_names(root: Path) -> set[str]:
    return {p.name[:-4] for p in (root / ".dsv" / "objects" / "packs").glob("pack-*.idx")}


def _reader_with_a_pack_gc_will_rewrite(tmp_path: Path) -> tuple[Path, dict[str, bytes], "dsv.Repo", set[str]]:
    """A repository where one pack holds a live file and garbage, and an open ``dsv.Repo`` that
    has loaded the pack list without opening that pack (gc then rewrites and removes it)."""
    rng = random.Random(64)
    root = tmp_path / "repo"
    root.mkdir()
    write_files(root, {"a.txt": b"first file\n"})
    dsv.Repo.init(root)
    ok(run_dsv(root, "-q", "commit", "-m", "one"))
    first = _pack_names(root)
    ok(run_dsv(root, "branch", "side"))
    ok(run_dsv(root, "-q", "checkout", "side"))
    keep = {f"keep/{i}.bin": rng.randbytes(300 + i) for i in range(5)}
    keep["keep/big.bin"] = rng.randbytes(BIG + 17)  # stored as chunks: the chunk list and its chunks move too
    write_files(root, {**keep, "junk.bin": rng.randbytes(500)})
    ok(run_dsv(root, "-q", "commit", "-m", "side"))
    side_packs = _pack_names(root) - first
    ok(run_dsv(root, "-q", "checkout", "main"))
    write_files(root, keep)
    ok(run_dsv(root, "-q", "commit", "-m", "the same contents on main"))
    ok(run_dsv(root, "branch", "-d", "side"))
    reader = dsv.Repo(root)
    assert reader.read_file("main", "a.txt") == b"first file\n"  # loads the pack list, opens main's packs
    return root, keep, reader, side_packs


def test_long_lived_reader_reads_on_after_gc_in_another_process_removed_its_packs(tmp_path: Path) -> None:
    root, keep, reader, side_packs = _reader_with_a_pack_gc_will_rewrite(tmp_path)
    report = json.loads(ok(run_dsv(root, "gc", "--grace", "0", "--json")).stdout)
    assert report["objects_removed"] > 0 and not side_packs & _pack_names(root), "gc removed no pack: the test exercises nothing"
    for path, data in sorted(keep.items()):
        assert reader.read_file("main", path) == data
        assert b"".join(reader.open_file("main", path)) == data
    assert [f.size for f in reader.ls("main", "keep")] == [len(keep[p]) for p in sorted(keep)]


def test_long_lived_dsv_filesystem_reads_on_after_gc(tmp_path: Path) -> None:
    import fsspec

    root, keep, _reader, _before = _reader_with_a_pack_gc_will_rewrite(tmp_path)
    fs = fsspec.filesystem("dsv", repo=str(root), rev="main")
    assert fs.cat_file("a.txt") == b"first file\n"
    ok(run_dsv(root, "gc", "--grace", "0"))
    for path, data in sorted(keep.items()):
        with fs.open(path, "rb") as f:
            f.seek(7)
            assert f.read(100) == data[7:107]
        assert fs.cat_file(path) == data


def test_pack_file_deleted_by_hand_is_reported_not_looped_on(tmp_path: Path) -> None:
    root, keep, reader, side_packs = _reader_with_a_pack_gc_will_rewrite(tmp_path)
    for name in side_packs:  # the side commit's packs: their indexes stay, their data is gone
        (root / ".dsv" / "objects" / "packs" / f"{name}.pack").unlink()
    with pytest.raises(dsv.DsvError) as err:
        reader.read_file("main", "keep/0.bin")
    assert "fsck" in (err.value.hint or ""), err.value
    res = run_dsv(root, "cat", "main:keep/0.bin")
    assert_one_line_error(res.stderr, res.returncode, contains=["fsck"])
    res = run_dsv(root, "fsck")
    assert res.returncode == 1 and "its pack file is missing" in res.stdout, res.stdout + res.stderr
    # Status says so, and gc refuses, even before anything opened the pack (outside attack).
    res = run_dsv(root, "status")
    assert res.returncode == 0 and "its pack file is missing" in res.stderr and "fsck --repair" in res.stderr, res.stderr
    res = run_dsv(root, "gc", "--grace", "0")
    assert_one_line_error(res.stderr, res.returncode, contains=["its pack file is missing", "gc stopped without deleting anything"])
    # Nothing to rebuild from: repair sets the index aside and restores the files from the working tree.
    report = json.loads(run_dsv(root, "fsck", "--repair", "--json").stdout)
    assert sorted(Path(p).name for p in report["indexes_set_aside"]) == sorted(f"{n}.idx" for n in side_packs)
    assert report["ok"], report["problems"]
    assert not side_packs & _pack_names(root)
    assert ok(run_dsv(root, "cat", "main:keep/0.bin", text=False)).stdout == keep["keep/0.bin"]
    assert_fsck_clean(root)


def test_threads_sharing_one_repo_read_right_while_it_commits(tmp_path: Path) -> None:
    # Found by an outside attack: a commit (or any read miss) re-listed the packs under the
    # readers, closing the files they were reading and renumbering the packs their lookups
    # pointed at: wrong "missing" and "corrupt" verdicts, and good copies set aside on disk.
    import threading
    import traceback

    rng = random.Random(65)
    root = tmp_path / "repo"
    root.mkdir()
    dsv.Repo.init(root)
    expected: dict[str, bytes] = {}
    for c in range(12):  # one pack per commit
        files = {f"d{c}/f{i}.bin": rng.randbytes(rng.randint(1000, 100_000)) for i in range(30)}
        write_files(root, files)
        expected.update(files)
        dsv.Repo(root).commit(f"c{c}")
    dsv.Repo(root).create_tag("v1")
    repo = dsv.Repo(root)
    deadline = time.monotonic() + 6
    errors: list[str] = []
    reads = [0]
    paths = sorted(expected)

    def reader(seed: int) -> None:
        r = random.Random(seed)
        while time.monotonic() < deadline and len(errors) < 20:
            p = r.choice(paths)
            try:
                if repo.read_file("v1", p) != expected[p]:
                    errors.append(f"wrong bytes for {p}")
                reads[0] += 1
            except Exception as err:  # noqa: BLE001 - every failure is the finding
                errors.append(f"{type(err).__name__}: {err} " + traceback.format_exc()[-1500:])

    def committer() -> None:
        n = 0
        while time.monotonic() < deadline and len(errors) < 20:
            n += 1
            (root / "new.bin").write_bytes(rng.randbytes(3000))
            try:
                repo.commit(f"n{n}")
            except Exception as err:  # noqa: BLE001
                errors.append(f"commit: {type(err).__name__}: {err}")

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)] + [threading.Thread(target=committer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"{len(errors)} failures after {reads[0]} good reads, e.g. {errors[:3]}"
    assert reads[0] > 100
    assert not (root / ".dsv" / "objects" / "quarantine").exists(), "good copies were set aside as corrupt"
    assert_fsck_clean(root)
