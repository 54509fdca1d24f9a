"""One conformance suite run against every object-store backend, plus pack-specific checks."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from dsv.base.errors import CorruptMetadataError, CorruptObjectError, ObjectNotFoundError
from dsv.base.hashing import hash_bytes
from dsv.store import LocalObjectStore, MemoryObjectStore
from dsv.store.local import LOOSE_THRESHOLD
from dsv.store.pack import decode_index, encode_index


@pytest.fixture(params=["local", "memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], object]:
    """A factory: every call gives a handle on the *same* backend (as a second process would)."""
    if request.param == "memory":
        store = MemoryObjectStore()
        return lambda: store
    root = str(tmp_path / "objects")
    LocalObjectStore.create(root)
    return lambda: LocalObjectStore(root)


def test_add_then_read_round_trips(make_store) -> None:
    store = make_store()
    w = store.begin_write()
    oid = w.add_bytes(b"hello")
    w.commit()
    assert oid == hash_bytes(b"hello")
    assert make_store().read(oid) == b"hello"
    assert make_store().size(oid) == 5


def test_objects_are_invisible_until_commit(make_store) -> None:
    store = make_store()
    w = store.begin_write()
    oid = w.add_bytes(b"pending")
    assert not make_store().has(oid)
    w.commit()
    assert make_store().has(oid)


def test_abort_leaves_nothing(make_store) -> None:
    store = make_store()
    w = store.begin_write()
    oid = w.add_bytes(b"dropped")
    w.abort()
    assert not make_store().has(oid)
    assert list(make_store().ids()) == []


def test_adding_existing_object_is_a_noop(make_store) -> None:
    store = make_store()
    for _ in range(2):
        w = store.begin_write()
        w.add_bytes(b"same")
        w.add_bytes(b"same")
        w.commit()
    assert list(make_store().ids()) == [hash_bytes(b"same")]


def test_missing_object_raises(make_store) -> None:
    with pytest.raises(ObjectNotFoundError):
        make_store().read("0" * 32)


def test_empty_object(make_store) -> None:
    w = make_store().begin_write()
    oid = w.add_bytes(b"")
    w.commit()
    assert make_store().read(oid) == b""


def test_large_object_streams_and_verifies(make_store, tmp_path: Path) -> None:
    data = os.urandom(LOOSE_THRESHOLD + 12345)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    w = make_store().begin_write()
    fd = os.open(src, os.O_RDONLY)
    try:
        oid, n = w.add_fd(fd)
    finally:
        os.close(fd)
    w.commit()
    assert n == len(data)
    assert oid == hash_bytes(data)
    assert b"".join(make_store().iter_chunks(oid)) == data


def test_prefix_lookup(make_store) -> None:
    w = make_store().begin_write()
    ids = [w.add_bytes(f"obj{i}".encode()) for i in range(50)]
    w.commit()
    target = ids[7]
    assert target in make_store().ids_with_prefix(target[:6])
    assert make_store().ids_with_prefix(target) == [target]


# -- local backend specifics ----------------------------------------------------------


def _local(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore.create(str(tmp_path / "objects"))


def test_small_objects_share_one_pack_per_transaction(tmp_path: Path) -> None:
    store = _local(tmp_path)
    w = store.begin_write()
    for i in range(100):
        w.add_bytes(f"file {i}".encode())
    w.commit()
    names = os.listdir(store.packs_dir)
    assert sorted(n.rsplit(".", 1)[1] for n in names) == ["idx", "pack"]


def test_large_objects_are_chunked_and_an_edit_stores_about_what_changed(tmp_path: Path) -> None:
    import random

    store = _local(tmp_path)
    data = bytearray(random.Random(1).randbytes(3 * LOOSE_THRESHOLD))
    w = store.begin_write()
    oid = w.add_bytes(bytes(data))
    w.commit()
    assert not os.listdir(store.loose_dir)
    chunks = store.chunk_list(oid)
    assert chunks is not None and len(chunks) > 100
    assert sum(n for _, n in chunks) == len(data)
    assert store.size(oid) == len(data)
    assert LocalObjectStore(store.root).read(oid) == bytes(data)
    before = sum(os.path.getsize(os.path.join(store.packs_dir, n)) for n in os.listdir(store.packs_dir))
    data[len(data) // 2 : len(data) // 2 + 1000] = b"edited!" * 142 + b"xxxxxx"  # 1000 bytes rewritten in place
    w = store.begin_write()
    oid2 = w.add_bytes(bytes(data))
    w.commit()
    after = sum(os.path.getsize(os.path.join(store.packs_dir, n)) for n in os.listdir(store.packs_dir))
    assert after - before < 600_000, after - before  # a couple of chunks and a chunk list, not 24 MiB
    assert b"".join(LocalObjectStore(store.root).iter_chunks(oid2)) == bytes(data)
    assert os.listdir(store.tmp_dir) == []


def _write_loose(store: LocalObjectStore, data: bytes) -> str:
    """A loose object as format 1 wrote big files (still read by format 2)."""
    from dsv.base.hashing import hash_bytes

    oid = hash_bytes(data)
    os.makedirs(os.path.join(store.loose_dir, oid[:2]), exist_ok=True)
    Path(store.loose_dir, oid[:2], oid[2:]).write_bytes(data)
    return oid


def test_corrupt_pack_byte_is_detected(tmp_path: Path) -> None:
    store = _local(tmp_path)
    w = store.begin_write()
    oid = w.add_bytes(b"precious data")
    w.commit()
    pack = next(p for p in os.listdir(store.packs_dir) if p.endswith(".pack"))
    path = os.path.join(store.packs_dir, pack)
    os.chmod(path, 0o644)
    raw = bytearray(Path(path).read_bytes())
    raw[-3] ^= 0xFF
    Path(path).write_bytes(bytes(raw))
    with pytest.raises(CorruptObjectError) as exc:
        LocalObjectStore(store.root).read(oid)
    assert exc.value.expected == oid
    assert exc.value.actual != oid


def test_corrupt_loose_object_is_detected_when_streamed(tmp_path: Path) -> None:
    store = _local(tmp_path)
    oid = _write_loose(store, b"y" * LOOSE_THRESHOLD)
    assert b"".join(LocalObjectStore(store.root).iter_chunks(oid)) == b"y" * LOOSE_THRESHOLD
    path = os.path.join(store.loose_dir, oid[:2], oid[2:])
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(100)
        f.write(b"Z")
    with pytest.raises(CorruptObjectError):
        b"".join(LocalObjectStore(store.root).iter_chunks(oid))


def test_index_round_trip_and_checksum() -> None:
    entries = [(bytes([i]) * 16, 16 + i * 40, i) for i in range(10)]
    data = encode_index(entries)
    idx = decode_index(data, what="test")
    assert idx.ids == sorted(e[0] for e in entries)
    assert idx.offsets == [e[1] for e in sorted(entries)]
    with pytest.raises(CorruptMetadataError):
        decode_index(data[:-1] + bytes([data[-1] ^ 1]), what="test")
    with pytest.raises(CorruptMetadataError):
        decode_index(data[:40], what="test")


def test_repack_keeps_only_live_objects(tmp_path: Path) -> None:
    store = _local(tmp_path)
    w = store.begin_write()
    keep = w.add_bytes(b"keep me")
    drop = w.add_bytes(b"drop me")
    w.commit()
    store.repack(store.packs(), {bytes.fromhex(keep)})
    fresh = LocalObjectStore(store.root)
    assert fresh.read(keep) == b"keep me"
    assert not fresh.has(drop)
