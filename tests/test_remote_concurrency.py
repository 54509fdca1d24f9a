"""Many writers on one remote: racing pushes (separate processes), a push killed mid-way, gc racing pushes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import dsv
from dsv.remote import RefStatus

from conftest import read_tree, write_tree

WORKERS = 20
ROUNDS = 2
"""Rounds of simultaneous pushes (20, then 19 pushers); each loser redoes its commit on the new tip between rounds.

(Every round costs each loser a fetch, two checkouts and a commit: on two cores, about 12 s a round.)"""

WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    import dsv
    from dsv.base.errors import PushRejectedError

    idx, root, ctl = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    repo = dsv.Repo(root)
    r = 0
    while True:
        while not os.path.exists(f"{ctl}/go-{r}"):
            time.sleep(0.005)
        if os.path.exists(f"{ctl}/stop"):
            break
        try:
            res = repo.push("origin")
            out = {"status": "won", "commit": res.refs[0].new}
        except PushRejectedError as err:
            out = {"status": "lost", "reason": err.reason, "hint": err.hint}
        with open(f"{ctl}/result-{r}-{idx}.json", "w") as f:
            json.dump(out, f)
        if out["status"] == "won":
            break
        # Lost: take the remote's history and redo this worker's change on top (dsv has no merge).
        repo.fetch("origin")
        repo.checkout("origin/main", force=True)
        repo.create_branch("main", "origin/main", force=True)
        repo.checkout("main")
        with open(os.path.join(root, f"w{idx}.txt"), "w") as f:
            f.write(f"worker {idx}")
        repo.commit(f"worker {idx} after round {r}")
        r += 1
        open(f"{ctl}/ready-{r}-{idx}", "w").close()
    """
)


def _wait_for(paths: list[Path], timeout: float = 240, procs: list[subprocess.Popen[bytes]] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        dead = [p for p in procs or [] if p.poll() not in (None, 0)]
        if dead:
            raise AssertionError(f"a worker died with {dead[0].returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {[p.name for p in paths if not p.exists()]}")
        time.sleep(0.02)


@pytest.mark.slow
def test_twenty_simultaneous_pushes_one_wins_each_round_nothing_lost(s3_env, tmp_path: Path) -> None:
    url, options = f"s3://{s3_env.new_bucket()}/race", {"endpoint_url": s3_env.endpoint}
    seed = dsv.Repo.init(tmp_path / "seed")
    write_tree(Path(seed.root), {"base.txt": "base"})
    seed.commit("base")
    seed.add_remote("origin", url, options)
    seed.push()
    roots = []
    for i in range(WORKERS):
        clone = dsv.Repo.clone(url, tmp_path / f"w{i}", options=options)
        write_tree(Path(clone.root), {f"w{i}.txt": f"worker {i}"})
        clone.commit(f"worker {i}")
        roots.append(clone.root)
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if k != "DSV_DEBUG"}
    procs = [subprocess.Popen([sys.executable, str(script), str(i), roots[i], str(ctl)], env=env) for i in range(WORKERS)]
    try:
        active = set(range(WORKERS))
        winners: list[str] = []
        r = 0
        while active and r < ROUNDS:
            if r:
                _wait_for([ctl / f"ready-{r}-{i}" for i in active], procs=procs)
            (ctl / f"go-{r}").touch()  # every active worker pushes at once
            _wait_for([ctl / f"result-{r}-{i}.json" for i in active], procs=procs)
            results = {i: json.loads((ctl / f"result-{r}-{i}.json").read_text()) for i in active}
            won = [i for i, res in results.items() if res["status"] == "won"]
            assert len(won) == 1, f"round {r}: {len(won)} winners"
            for i, res in results.items():
                if i not in won:
                    assert "fetch first" in res["reason"] and "dsv pull" in res["hint"], res
            winners.append(results[won[0]]["commit"])
            active -= set(won)
            r += 1
        if active:
            _wait_for([ctl / f"ready-{r}-{i}" for i in active], procs=procs)
        (ctl / "stop").touch()
        (ctl / f"go-{r}").touch()
    finally:
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    assert all(p.returncode == 0 for p in procs)
    final = dsv.Repo.clone(url, tmp_path / "final", options=options)
    history = {e.id for e in final.log()}
    assert set(winners) <= history, "every push that was told it won is in the remote's history"
    assert final.log()[0].id == winners[-1]
    assert len(winners) == ROUNDS
    assert final.fsck().ok
    # No commit is lost on the losing side either: each loser still has its own work, on top of the remote tip.
    for i in active:
        mine = dsv.Repo(roots[i])
        assert (Path(mine.root) / f"w{i}.txt").read_text() == f"worker {i}"
        assert winners[-1] in {e.id for e in mine.log()}


KILLER = textwrap.dedent(
    """
    import os, sys
    import dsv.store.remote as remote_store
    import dsv.store.remotefs as remotefs

    remote_store.PACK_TARGET = 1 << 20  # small packs: many uploads to interrupt
    published = [0]
    original = remotefs.RemoteFS.put_immutable

    def put_then_die(self, rel, data):
        done = original(self, rel, data)
        if rel.endswith(".idx") and rel.startswith("packs/pack-"):
            published[0] += 1
            if published[0] == int(sys.argv[1]):
                os.kill(os.getpid(), 9)  # killed mid-way, like a power cut or a ^C'd laptop lid
        return done

    remotefs.RemoteFS.put_immutable = put_then_die
    from dsv.cli import main
    main(["push"])
    """
)


def test_push_killed_mid_way_resumes_without_resending(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    repo = dsv.Repo.init(tmp_path / "r")
    write_tree(Path(repo.root), {f"f{i:03d}.bin": os.urandom(200_000) for i in range(100)})  # ~20 MiB
    repo.commit("big batch")
    repo.add_remote("origin", url)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.run([sys.executable, str(script), "5"], cwd=repo.root, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    uploaded = [p for p in (Path(url) / "packs").iterdir() if p.name.startswith("pack-") and p.suffix == ".idx"]
    assert len(uploaded) >= 5
    assert json.loads((Path(url) / "refs.json").read_text())["refs"] == {} if (Path(url) / "refs.json").exists() else True
    res = dsv.Repo(repo.root).push()
    assert res.refs[0].status == RefStatus.CREATED
    total = 100 * 200_000
    assert res.stats.bytes < total - 4 * (1 << 20), "the packs that arrived before the kill were not sent again"
    clone = dsv.Repo.clone(url, tmp_path / "c")
    assert read_tree(Path(clone.root)) == read_tree(Path(repo.root))


# -- remote gc ---------------------------------------------------------------------------------


def _setup_garbage(tmp_path: Path, url: str, options: dict[str, str]) -> tuple[dsv.Repo, bytes]:
    """A remote whose branch 'side' was force-moved, leaving a file only the old 'side' had."""
    repo = dsv.Repo.init(tmp_path / "r")
    write_tree(Path(repo.root), {"keep.txt": "kept"})
    repo.commit("main")
    repo.add_remote("origin", url, options)
    repo.push()
    orphan = os.urandom(40_000)
    repo.create_branch("side")
    repo.checkout("side")
    write_tree(Path(repo.root), {"orphan.bin": orphan})
    repo.commit("side with orphan")
    repo.push("origin", ["side"])
    repo.checkout("main")
    repo.create_branch("side", "main", force=True)
    repo.push("origin", ["side"], force=True)
    return repo, orphan


def test_remote_gc_prunes_what_no_remote_ref_reaches_after_grace(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    repo, orphan = _setup_garbage(tmp_path, url, {})
    from dsv.base.hashing import hash_bytes

    oid = hash_bytes(orphan)
    kept = repo.gc_remote("origin", 14 * 86400)
    assert kept.packs_deleted == 0 and kept.objects_removed == 0
    res = repo.gc_remote("origin", 0)
    assert res.objects_removed >= 1 and res.packs_deleted >= 1
    rem = repo.repository.open_remote("origin")
    assert not rem.store.has(oid)
    clone = dsv.Repo.clone(url, tmp_path / "c")
    assert read_tree(Path(clone.root)) == {"keep.txt": b"kept"}
    assert clone.fsck().ok


@pytest.mark.parametrize("moment", ["after-lease", "after-relying", "gc-hid-first"])
def test_push_racing_gc_grace_zero_never_loses_an_object_it_relies_on(moment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A push reuses an unreachable object already on the remote while gc --grace 0 runs at the worst moments."""
    from dsv.remote import gc as remote_gc
    from dsv.remote import repo as remote_repo

    url = str(tmp_path / "remote")
    repo, orphan = _setup_garbage(tmp_path, url, {})
    other = dsv.Repo.clone(url, tmp_path / "other")
    write_tree(Path(other.root), {"reuse.bin": orphan})  # same bytes: the push finds them present
    other.commit("reuses the orphan's bytes")
    # An hour old: gc spares packs younger than its clock slack, which would hide the lease's part.
    old = time.time() - 3600
    for f in (Path(url) / "packs").iterdir():
        os.utime(f, (old, old))
    ran: list[object] = []

    def run_gc() -> None:
        if not ran:
            ran.append(repo.gc_remote("origin", 0))

    if moment == "after-lease":
        original = remote_repo.RemoteRepo.lease

        from contextlib import contextmanager

        @contextmanager
        def lease_then_gc(self):  # type: ignore[no-untyped-def]
            with original(self) as lease:
                run_gc()  # the lease exists, it has not said what it relies on yet
                yield lease

        monkeypatch.setattr(remote_repo.RemoteRepo, "lease", lease_then_gc)
    elif moment == "after-relying":
        original_rely = remote_repo.Lease.rely_on

        def rely_then_gc(self, packs):  # type: ignore[no-untyped-def]
            original_rely(self, packs)
            run_gc()

        monkeypatch.setattr(remote_repo.Lease, "rely_on", rely_then_gc)
    else:
        original_hide = remote_gc.RemoteObjectStore.hide_pack if hasattr(remote_gc, "RemoteObjectStore") else None
        from dsv.store.remote import RemoteObjectStore

        original_hide = RemoteObjectStore.hide_pack
        pushed: list[object] = []

        def hide_then_push(self, name):  # type: ignore[no-untyped-def]
            original_hide(self, name)
            if not pushed:
                pushed.append(dsv.Repo(other.root).push())  # a whole push while the pack is hidden

        monkeypatch.setattr(RemoteObjectStore, "hide_pack", hide_then_push)
        repo.gc_remote("origin", 0)
        assert pushed
    if moment != "gc-hid-first":
        other.push()
        assert ran
    monkeypatch.undo()
    final = dsv.Repo.clone(url, tmp_path / "final")
    assert (Path(final.root) / "reuse.bin").read_bytes() == orphan
    assert final.fsck().ok


def test_pushes_and_gc_in_separate_processes_keep_every_ref_complete(tmp_path: Path) -> None:
    """A real race: one process pushes commits that reuse garbage, another loops gc --grace 0."""
    url = str(tmp_path / "remote")
    repo, orphan = _setup_garbage(tmp_path, url, {})
    env = {k: v for k, v in os.environ.items() if k != "DSV_DEBUG"}
    gc_loop = subprocess.Popen(
        [sys.executable, "-c", "import sys, dsv\nr = dsv.Repo(sys.argv[1])\nfor _ in range(15): r.gc_remote('origin', 0)", repo.root], env=env
    )
    other = dsv.Repo.clone(url, tmp_path / "other")
    for i in range(6):
        write_tree(Path(other.root), {f"reuse{i}.bin": orphan, f"n{i}.txt": str(i)})
        other.commit(f"c{i}")
        other.push()
    gc_loop.wait(timeout=300)
    assert gc_loop.returncode == 0
    final = dsv.Repo.clone(url, tmp_path / "final")
    assert read_tree(Path(final.root)) == read_tree(Path(other.root))
    assert final.fsck().ok


FETCH_KILLER = textwrap.dedent(
    """
    import importlib, os, sys
    import dsv.store.local as local_store

    fetch = importlib.import_module("dsv.remote.fetch")  # the module (dsv.remote.fetch is also its function)
    fetch.CHECKPOINT_BYTES = 1 << 20  # publish every MiB verified
    commits = [0]
    original = local_store.LocalWriter.commit

    def commit_then_die(self):
        original(self)
        commits[0] += 1
        if commits[0] == int(sys.argv[1]):
            os.kill(os.getpid(), 9)  # killed mid-way, after some checkpoints were published

    local_store.LocalWriter.commit = commit_then_die
    from dsv.cli import main
    main(["fetch"])
    """
)


def test_fetch_killed_mid_way_resumes_without_downloading_again(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    src = dsv.Repo.init(tmp_path / "src")
    write_tree(Path(src.root), {f"f{i:03d}.bin": os.urandom(100_000) for i in range(100)})  # ~10 MiB
    src.commit("c")
    src.add_remote("origin", url)
    src.push()
    dst = dsv.Repo.init(tmp_path / "dst")
    dst.add_remote("origin", url)
    script = tmp_path / "killer.py"
    script.write_text(FETCH_KILLER)
    proc = subprocess.run([sys.executable, str(script), "4"], cwd=dst.root, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert dst.repository.refs.read("refs/remotes/origin/main") is None, "refs move only when everything arrived"
    res = dsv.Repo(dst.root).fetch()
    assert res.stats.bytes < 100 * 100_000 - 3 * (1 << 20), "what was verified before the kill is not downloaded again"
    d = dsv.Repo(dst.root)
    d.checkout("origin/main")
    assert read_tree(Path(d.root)) == read_tree(Path(src.root))
