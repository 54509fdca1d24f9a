"""Big files as content-defined chunks (issue 9), and format-1 repositories still read and upgraded.

Round trips are checked byte for byte against the bytes written; storage is
measured by the pack files on disk, never by dsv's own counters.
"""

from __future__ import annotations

import json
import os
import random
import struct
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))

import dsv  # noqa: E402
from dsv.base.hashing import digest_bytes, hash_bytes  # noqa: E402
from dsv.store.chunking import CHUNKED_THRESHOLD, MAX_CHUNK, MIN_CHUNK, chunks_of_bytes, chunks_of_fd  # noqa: E402
from dsv.store.local import LocalObjectStore  # noqa: E402
from faultutil import assert_fsck_clean, ok, read_tree, run_dsv, write_files  # noqa: E402

T = CHUNKED_THRESHOLD


def _store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore.create(str(tmp_path / "objects"))


def _packed_bytes(store: LocalObjectStore) -> int:
    return sum(os.path.getsize(os.path.join(store.packs_dir, n)) for n in os.listdir(store.packs_dir) if n.endswith(".pack"))


def test_stream_and_buffer_cut_at_the_same_places(tmp_path: Path) -> None:
    data = random.Random(7).randbytes(3 * T + 12345)
    p = tmp_path / "f"
    p.write_bytes(data)
    fd = os.open(p, os.O_RDONLY)
    try:
        head = os.read(fd, 1000)
        streamed = [len(c) for c in chunks_of_fd(fd, head)]
    finally:
        os.close(fd)
    cut = [len(c) for c in chunks_of_bytes(data)]
    assert streamed == cut and sum(cut) == len(data)
    assert all(MIN_CHUNK <= n <= MAX_CHUNK for n in cut[:-1])


def test_chunk_boundaries_are_pinned() -> None:
    """Boundaries decide dedup across versions and machines: a library upgrade must not move them."""
    data = random.Random(20261130).randbytes(2 * 1024 * 1024)
    sizes = [len(c) for c in chunks_of_bytes(data)]
    assert hash_bytes(struct.pack(f"<{len(sizes)}Q", *sizes)) == GOLDEN_BOUNDARIES, sizes[:8]


GOLDEN_BOUNDARIES = "1b15a4324e42c64c2026424c071967fe"  # 25 chunks: 43585, 68149, 91275, ... bytes


edits = st.lists(
    st.tuples(st.sampled_from(["insert", "delete", "overwrite", "truncate", "append"]), st.floats(0, 1), st.integers(1, 300_000)),
    min_size=1,
    max_size=4,
)


@given(base_size=st.sampled_from([T - 1, T, T + 1, T + MIN_CHUNK, 2 * T + 777]), ops=edits, seed=st.integers(0, 2**32))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_chunked_round_trips_through_random_edits(tmp_path: Path, base_size: int, ops: list[tuple[str, float, int]], seed: int) -> None:
    rng = random.Random(seed)
    store = LocalObjectStore.create(str(tmp_path / f"objects-{seed}-{base_size}"))
    data = bytearray(rng.randbytes(base_size))
    versions = [bytes(data)]
    for op, where, n in ops:
        at = int(where * len(data))
        if op == "insert":
            data[at:at] = rng.randbytes(n)
        elif op == "delete":
            del data[at : at + n]
        elif op == "overwrite":
            data[at : at + n] = rng.randbytes(len(data[at : at + n]))
        elif op == "truncate":
            del data[at:]
        else:
            data += rng.randbytes(n)
        versions.append(bytes(data))
    oids = []
    for v in versions:
        w = store.begin_write()
        oids.append(w.add_bytes(v))
        w.commit()
    fresh = LocalObjectStore(store.root)
    for v, oid in zip(versions, oids):
        assert oid == hash_bytes(v)
        assert b"".join(fresh.iter_chunks(oid)) == v
        assert fresh.size(oid) == len(v)
        chunks = fresh.chunk_list(oid)
        assert (chunks is not None) == (len(v) >= T)
        if chunks:
            assert sum(n for _, n in chunks) == len(v)


def test_empty_and_threshold_sized_files_through_the_cli(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    rng = random.Random(3)
    files = {"empty": b"", "under": rng.randbytes(T - 1), "exact": rng.randbytes(T), "over": rng.randbytes(T + 1)}
    write_files(root, files)
    ok(run_dsv(root, "init"))
    ok(run_dsv(root, "commit", "-m", "sizes"))
    for p in files:
        (root / p).unlink()
    ok(run_dsv(root, "checkout", "-f", "HEAD"))
    assert read_tree(root) == files
    for p, data in files.items():
        assert ok(run_dsv(root, "cat", f"HEAD:{p}", text=False)).stdout == data
    assert_fsck_clean(root)


def test_one_percent_edit_of_a_big_file_stores_about_one_percent(tmp_path: Path) -> None:
    store = _store(tmp_path)
    rng = random.Random(11)
    data = bytearray(rng.randbytes(64 * 1024 * 1024))
    w = store.begin_write()
    w.add_bytes(bytes(data))
    w.commit()
    first = _packed_bytes(store)
    # 1% of the bytes, in 100 scattered in-place edits.
    for _i in range(100):
        at = rng.randrange(len(data) - 7000)
        data[at : at + 6710] = rng.randbytes(6710)
    w = store.begin_write()
    oid = w.add_bytes(bytes(data))
    w.commit()
    grown = _packed_bytes(store) - first
    assert grown < 0.25 * len(data), grown  # ~100 edits x ~1.3 chunks of ~80 KiB, far from a second copy
    assert b"".join(LocalObjectStore(store.root).iter_chunks(oid)) == bytes(data)


def test_gc_keeps_chunks_while_any_file_uses_them(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    rng = random.Random(5)
    shared = rng.randbytes(2 * T)
    a = shared + rng.randbytes(T)  # shares its first 2*T bytes with b
    b = shared + rng.randbytes(T // 2)
    write_files(root, {"a.bin": a})
    ok(run_dsv(root, "init"))
    ok(run_dsv(root, "commit", "-m", "a"))
    ok(run_dsv(root, "branch", "keep-b"))
    ok(run_dsv(root, "checkout", "keep-b"))
    (root / "a.bin").unlink()
    write_files(root, {"b.bin": b})
    ok(run_dsv(root, "commit", "-m", "b only"))
    ok(run_dsv(root, "checkout", "main"))
    ok(run_dsv(root, "branch", "-d", "keep-b"))  # b's commit is now unreachable
    store = dsv.Repo(root).repository.store
    b_chunks = {c for c, _ in store.chunk_list(hash_bytes(b)) or []}
    a_chunks = {c for c, _ in store.chunk_list(hash_bytes(a)) or []}
    assert a_chunks & b_chunks and b_chunks - a_chunks
    ok(run_dsv(root, "gc", "--grace", "0"))
    fresh = LocalObjectStore(str(root / ".dsv" / "objects"))
    assert all(fresh.has(c) for c in a_chunks), "gc deleted a chunk a live file uses"
    assert not any(fresh.has(c) for c in b_chunks - a_chunks), "gc kept chunks only a dead file used"
    assert ok(run_dsv(root, "cat", "HEAD:a.bin", text=False)).stdout == a
    assert_fsck_clean(root)


def test_fsck_names_every_file_that_shares_a_damaged_chunk(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    rng = random.Random(6)
    shared = rng.randbytes(2 * T)
    files = {"a.bin": shared + b"a" * 100, "b.bin": shared + b"b" * 100}
    write_files(root, files)
    ok(run_dsv(root, "init"))
    ok(run_dsv(root, "commit", "-m", "two"))
    from faultutil import damage_chunk

    chunk = damage_chunk(root, hash_bytes(files["a.bin"]))
    res = run_dsv(root, "fsck", "--json")
    assert res.returncode == 1
    problems = json.loads(res.stdout)["problems"]
    damaged = {p["oid"] for p in problems}
    assert {hash_bytes(files["a.bin"]), hash_bytes(files["b.bin"]), chunk} <= damaged
    res = run_dsv(root, "fsck", "--repair", "--json")
    assert res.returncode == 0, res.stdout
    assert_fsck_clean(root)
    assert ok(run_dsv(root, "cat", "HEAD:b.bin", text=False)).stdout == files["b.bin"]


# -- format 1 repositories ------------------------------------------------------------------------


def _v1_pack(objects: list[bytes]) -> tuple[bytes, bytes]:
    """A version-1 pack and index (24-byte record headers, raw objects), as dsv 0.1 wrote them."""
    body = [b"DSVPACK\n" + struct.pack("<II", 1, 0)]
    pos = 16
    entries = []
    for data in objects:
        raw = digest_bytes(data)
        body.append(raw + struct.pack("<Q", len(data)) + data)
        entries.append((raw, pos + 24, len(data)))
        pos += 24 + len(data)
    entries.sort()
    idx = b"DSVIDX\n\0" + struct.pack("<IIQ", 1, 0, len(entries)) + b"".join(r + struct.pack("<QQ", o, n) for r, o, n in entries)
    return b"".join(body), idx + digest_bytes(idx)


def _format1_repository(root: Path, files: dict[str, bytes], big: bytes) -> str:
    """Write, byte by byte, a repository as dsv 0.1 left it: v1 pack, a loose big object, v1 manifests."""
    import pyarrow as pa

    from dsv.history.objects import Commit, CommitSummary, now
    from dsv.manifest import ROOT_SCHEMA, entries_table
    from dsv.manifest.encoding import V1_ENTRY_SCHEMA, V1_ROOT_SCHEMA, encode_v1

    root.mkdir(parents=True)
    write_files(root, {**files, "big.bin": big})
    dsv_dir = root / ".dsv"
    for d in ("objects/packs", "objects/loose", "objects/tmp", "refs/heads", "refs/tags", "locks"):
        (dsv_dir / d).mkdir(parents=True)
    paths = sorted([*files, "big.bin"])
    contents = {**files, "big.bin": big}
    table = entries_table(paths, [digest_bytes(contents[p]) for p in paths], [len(contents[p]) for p in paths], [0o100644] * len(paths))
    chunk = encode_v1(table, V1_ENTRY_SCHEMA)
    root_table = pa.table(
        [pa.array([digest_bytes(chunk)], pa.binary(16)), pa.array([paths[0]]), pa.array([paths[-1]]), pa.array([len(paths)], pa.int64()),
         pa.array([sum(len(v) for v in contents.values())], pa.int64())],
        schema=ROOT_SCHEMA,
    )
    manifest = encode_v1(root_table, V1_ROOT_SCHEMA)
    commit = Commit(
        manifest=hash_bytes(manifest), author="old dsv", time=now(), message="written by dsv 0.1",
        summary=CommitSummary(files=len(paths), bytes=sum(len(v) for v in contents.values()), added=len(paths)),
    ).to_json_bytes()
    pack, idx = _v1_pack([*files.values(), chunk, manifest, commit])
    name = "pack-" + hash_bytes(idx)
    (dsv_dir / "objects" / "packs" / f"{name}.pack").write_bytes(pack)
    (dsv_dir / "objects" / "packs" / f"{name}.idx").write_bytes(idx)
    big_id = hash_bytes(big)
    (dsv_dir / "objects" / "loose" / big_id[:2]).mkdir()
    (dsv_dir / "objects" / "loose" / big_id[:2] / big_id[2:]).write_bytes(big)
    cid = hash_bytes(commit)
    (dsv_dir / "refs" / "heads" / "main").write_text(cid + "\n")
    (dsv_dir / "HEAD").write_text("ref: refs/heads/main\n")
    (dsv_dir / "config.json").write_text('{"core":{"lock_timeout":30.0},"format":1,"user":{"email":null,"name":null}}')
    return cid


def test_a_format_1_repository_still_reads_and_commits(tmp_path: Path) -> None:
    root = tmp_path / "old"
    rng = random.Random(8)
    files = {"labels.csv": b"id,label\n1,cat\n", "img/a.png": rng.randbytes(3000)}
    big = rng.randbytes(T + 100)
    c1 = _format1_repository(root, files, big)
    # Read-only commands work and leave the format alone.
    st = json.loads(ok(run_dsv(root, "status", "--json")).stdout)
    assert st["clean"] and st["head"] == c1
    assert ok(run_dsv(root, "cat", "HEAD:big.bin", text=False)).stdout == big
    assert_fsck_clean(root)
    assert json.loads((root / ".dsv" / "config.json").read_text())["format"] == 1
    # The first write upgrades the gate, then writes version-2 structures beside the old ones.
    (root / "labels.csv").write_bytes(b"id,label\n1,dog\n")
    big2 = big[:5000] + b"edit" + big[5004:]
    (root / "big.bin").write_bytes(big2)
    ok(run_dsv(root, "commit", "-m", "first commit of dsv 0.2"))
    assert json.loads((root / ".dsv" / "config.json").read_text())["format"] == 2
    ok(run_dsv(root, "checkout", c1))
    assert read_tree(root) == {**files, "big.bin": big}
    ok(run_dsv(root, "checkout", "main"))
    assert read_tree(root)["big.bin"] == big2
    d = json.loads(ok(run_dsv(root, "diff", c1, "main", "--json")).stdout)
    assert d["files"]["counts"]["modified"] == 2
    assert_fsck_clean(root)
    ok(run_dsv(root, "gc", "--grace", "0"))
    assert_fsck_clean(root)
    assert ok(run_dsv(root, "cat", f"{c1}:big.bin", text=False)).stdout == big


def test_a_newer_repository_format_is_refused(tmp_path: Path) -> None:
    from faultutil import assert_one_line_error

    root = tmp_path / "repo"
    write_files(root, {"f": b"x"})
    ok(run_dsv(root, "init"))
    cfg = root / ".dsv" / "config.json"
    cfg.write_text(cfg.read_text().replace('"format":2', '"format":3'))
    for args in (["status"], ["log"], ["commit", "-m", "x"]):
        res = run_dsv(root, *args)
        assert_one_line_error(res.stderr, res.returncode, contains=["format version 3", "supports 2"])
