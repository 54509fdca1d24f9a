"""One conformance suite run against every object-store backend, plus pack-specific checks."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dsv.base.errors import CorruptMetadataError, CorruptObjectError, ObjectNotFoundError
from dsv.base.hashing import hash_bytes
from dsv.store import LocalObjectStore, MemoryObjectStore
from dsv.store.local import LOOSE_THRESHOLD, LoadedPack
from dsv.store.pack import decode_index, encode_index
from dsv.store.upkeep import repack


STORES = ["local", "memory", "remote-folder", "remote-memory", "remote-s3"]


@pytest.fixture(params=STORES)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], object]:
    """A factory: every call gives a handle on the *same* backend (as a second process would)."""
    if request.param == "memory":
        store = MemoryObjectStore()
        return lambda: store
    if request.param.startswith("remote-"):
        import uuid

        from dsv.store.remote import RemoteObjectStore
        from dsv.store.remotefs import RemoteFS

        if request.param == "remote-folder":
            url, options = str(tmp_path / "remote"), {}
        elif request.param == "remote-memory":
            url, options = f"memory://dsv-test-{uuid.uuid4().hex}", {}  # fsspec's memory FS is global: own root
        else:
            server = request.getfixturevalue("s3_env")
            url, options = f"s3://{server.new_bucket()}/repo", {"endpoint_url": server.endpoint}
        return lambda: RemoteObjectStore(RemoteFS(url, options))
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
    assert list(idx.ids) == sorted(e[0] for e in entries)
    assert list(idx.offsets) == [e[1] for e in sorted(entries)]
    assert list(idx.lengths) == [e[2] for e in sorted(entries)]
    # The views read the bytes on access: indexing, negative indexing, slices and bisect agree with lists.
    import bisect

    assert idx.ids[-1] == bytes([9]) * 16 and idx.offsets[-1] == 16 + 9 * 40 and idx.ids[2:4] == [bytes([2]) * 16, bytes([3]) * 16]
    assert bisect.bisect_left(idx.ids, bytes([5]) * 16) == 5
    with pytest.raises(IndexError):
        idx.ids[10]
    # v2: the encoding lives in the offset's top byte and never leaks into the offset.
    v2 = decode_index(encode_index([(bytes([i]) * 16, 1000 + i, 7, i % 3) for i in range(6)], version=2), what="test")
    assert list(v2.encodings or []) == [i % 3 for i in range(6)] and list(v2.offsets) == [1000 + i for i in range(6)]
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
    repack(store, store.packs(), {bytes.fromhex(keep)})
    fresh = LocalObjectStore(store.root)
    assert fresh.read(keep) == b"keep me"
    assert not fresh.has(drop)


# -- the protocol's record-level methods: what transfers between stores use ----------------------


def _big(n: int, seed: int = 7) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def test_big_object_is_a_chunk_list_on_every_store(make_store) -> None:
    from dsv.store.chunking import CHUNKED_THRESHOLD

    data = _big(CHUNKED_THRESHOLD + 12345)
    w = make_store().begin_write()
    oid = w.add_bytes(data)
    w.commit()
    store = make_store()
    chunks = store.chunk_list(oid)
    assert chunks is not None and len(chunks) > 10
    assert sum(n for _, n in chunks) == len(data)
    assert store.has_many([c for c, _ in chunks]) == {c for c, _ in chunks}
    assert b"".join(store.iter_chunks(oid)) == data
    assert store.size(oid) == len(data)
    small = w.add_bytes  # noqa: F841 - the writer is done; a small object has no chunk list
    w2 = store.begin_write()
    sid = w2.add_bytes(b"tiny")
    w2.commit()
    assert make_store().chunk_list(sid) is None


def test_records_round_trip_between_every_pair_of_stores(make_store, tmp_path: Path) -> None:
    """What a push or fetch does: records out of one store, verified into another (chunks before lists)."""
    from dsv.store.chunking import CHUNKED_THRESHOLD
    from dsv.store.pack import Encoding

    src = MemoryObjectStore()
    w = src.begin_write()
    small = [w.add_bytes(f"file {i}".encode()) for i in range(50)]
    manifest = w.add_bytes(b"m" * 5000, compress=True)
    big = w.add_bytes(_big(CHUNKED_THRESHOLD + 1))
    w.commit()
    dst = make_store()
    chunks = [c for c, _ in src.chunk_list(big)]
    w = dst.begin_write()
    for rec in src.read_records(small + [manifest] + chunks):
        assert w.add_record(rec) is True
    w.commit()
    w = dst.begin_write()
    (rec,) = src.read_records([big])
    assert rec.encoding == Encoding.CHUNKED
    w.add_record(rec)
    w.commit()
    back = make_store()
    got = {r.oid: r for r in back.read_records(small + [manifest, big])}
    assert set(got) == set(small + [manifest, big])
    assert back.read(big) == src.read(big)
    assert back.read(manifest) == b"m" * 5000
    assert back.has_many(small + ["0" * 32]) == set(small)


def test_add_record_refuses_a_forged_record(make_store) -> None:
    from dsv.base.hashing import digest_bytes
    from dsv.store.base import StoredRecord

    forged = StoredRecord(digest_bytes(b"the real bytes"), b"other bytes!!!", 14, 0)
    w = make_store().begin_write()
    with pytest.raises(CorruptObjectError):
        w.add_record(forged)
    w.commit()
    assert not make_store().has(forged.oid)


def test_add_record_refuses_a_chunk_list_whose_chunks_do_not_hash_to_it(make_store) -> None:
    """A forged chunk list (real chunks, wrong id) is caught before it is stored."""
    from dsv.base.hashing import digest_bytes
    from dsv.store.base import StoredRecord
    from dsv.store.pack import Encoding, encode_chunk_list

    store = make_store()
    w = store.begin_write()
    a, b = w.add_raw(b"a" * 100), w.add_raw(b"b" * 100)
    w.commit()
    lie = StoredRecord(digest_bytes(b"something else"), encode_chunk_list([(a, 100), (b, 100)]), 200, int(Encoding.CHUNKED))
    w = make_store().begin_write()
    if isinstance(store, (LocalObjectStore, MemoryObjectStore)):
        with pytest.raises(CorruptObjectError):
            w.add_record(lie)
    else:
        # A remote writer cannot re-read the chunks: the fetching side verifies the whole (test_remote_*).
        pytest.skip("remote writers check chunk presence only")
    w.commit()
    assert not make_store().has(lie.oid)


def test_missing_record_raises(make_store) -> None:
    with pytest.raises(ObjectNotFoundError):
        list(make_store().read_records(["1" * 32]))


def test_a_repository_runs_on_any_store(tmp_path: Path) -> None:
    """Commit, diff, checkout and log need nothing but the protocol: here, an in-memory store."""
    import dsv
    from dsv.repository import Repository

    root = tmp_path / "r"
    dsv.Repo.init(root)
    (root / "a.txt").write_text("one")
    (root / "big.bin").write_bytes(_big(9 * 1024 * 1024))
    repo = dsv.Repo(root)
    store = MemoryObjectStore()
    repo._repo = Repository(repo.root, store=store)
    first = repo.commit("one").id
    (root / "a.txt").write_text("two")
    repo.commit("two")
    assert {c.path for c in repo.diff(first, "HEAD").changes} == {"a.txt"}
    repo.checkout(first)
    assert (root / "a.txt").read_text() == "one"
    assert [e.commit.message for e in repo.log(first)] == ["one"]
    assert store.chunk_list(repo.ls(first, "big.bin")[0].oid) is not None
    assert not os.listdir(root / ".dsv" / "objects" / "packs"), "nothing went to the local store"


def test_a_chunk_map_locates_what_the_chunk_list_lists(tmp_path: Path) -> None:
    # dsv:// reads big files through a ChunkMap (offsets, ids made on demand): it must agree with the
    # chunk list for every byte, and refuse a list whose lengths do not add up, as decode_chunk_list does.
    import random

    from dsv.store.pack import ChunkMap, decode_chunk_list, encode_chunk_list

    store = _local(tmp_path)
    data = random.Random(5).randbytes(2 * LOOSE_THRESHOLD + 12345)
    w = store.begin_write()
    oid = w.add_bytes(data)
    w.commit()
    listed = store.chunk_list(oid)
    chunks = store.chunk_map(oid)
    assert listed is not None and chunks is not None and len(chunks) == len(listed) > 50
    assert chunks.pairs() == listed
    assert chunks.offsets[0] == 0 and chunks.offsets[-1] == len(data)
    rng = random.Random(6)
    for start, end in [(0, 1), (0, len(data)), (len(data) - 1, len(data))] + [tuple(sorted(rng.sample(range(len(data) + 1), 2))) for _ in range(200)]:
        first, last = chunks.span(start, end)
        joined = b"".join(store.read(chunks.chunk_id(i)) for i in range(first, last + 1))
        assert joined[start - chunks.offsets[first] : end - chunks.offsets[first]] == data[start:end]
        assert chunks.offsets[first] <= start and end <= chunks.offsets[last + 1]
    stored = encode_chunk_list([(bytes.fromhex(c), n) for c, n in listed])
    assert decode_chunk_list(stored, len(data)) == [(bytes.fromhex(c), n) for c, n in listed]
    with pytest.raises(ValueError, match="add up"):
        ChunkMap(stored, len(data) + 1)
    with pytest.raises(ValueError, match="multiple of 24"):
        ChunkMap(stored[:-1], len(data))
    w = store.begin_write()
    small_oid = w.add_bytes(b"not chunked")
    w.commit()
    assert store.chunk_map(small_oid) is None and store.chunk_list(small_oid) is None


def test_a_bad_chunk_list_is_quarantined_by_chunk_map(tmp_path: Path) -> None:
    import random
    import struct

    store = _local(tmp_path)
    data = random.Random(8).randbytes(LOOSE_THRESHOLD + 1)
    w = store.begin_write()
    oid = w.add_bytes(data)
    w.commit()
    fresh = LocalObjectStore(store.root)
    found = fresh._find_packed(bytes.fromhex(oid))
    assert found is not None
    pack, row = found
    os.chmod(pack.pack_path, 0o644)
    with open(pack.pack_path, "r+b") as f:  # the first chunk's length, one more than it is
        at = pack.index.offsets[row] + 16
        f.seek(at)
        (n,) = struct.unpack("<Q", f.read(8))
        f.seek(at)
        f.write(struct.pack("<Q", n + 1))
    with pytest.raises(CorruptObjectError):
        fresh.chunk_map(oid)
    assert [q.oid for q in fresh.quarantined()] == [oid]
    assert not fresh.has(oid)


def test_read_into_returns_only_verified_bytes(tmp_path: Path) -> None:
    # read_into reads a packed object into a caller's buffer: a corrupt or unfit copy gives None, and
    # read() then reports (and sets aside) the corrupt copy as always.
    store = _local(tmp_path)
    w = store.begin_write()
    oids = [w.add_bytes(bytes([i]) * (1000 + i)) for i in range(3)]
    packed_big = w.add_bytes(b"z" * 5000, compress=True)
    w.commit()
    buffer = bytearray(4096)
    for i, oid in enumerate(oids):
        view = store.read_into(oid, buffer)
        assert view is not None and bytes(view) == bytes([i]) * (1000 + i)
        view.release()
    assert store.read_into(packed_big, buffer) is None  # compressed: read() decodes it
    assert store.read_into(oids[0], bytearray(10)) is None  # does not fit
    assert store.read_into("0" * 32, buffer) is None and store.read_into("nope", buffer) is None
    pack = next(p for p in os.listdir(store.packs_dir) if p.endswith(".pack"))
    path = os.path.join(store.packs_dir, pack)
    found = store._find_packed(bytes.fromhex(oids[1]))
    assert found is not None
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(found[0].index.offsets[found[1]] + 500)
        f.write(b"\xff")
    fresh = LocalObjectStore(store.root)
    assert fresh.read_into(oids[1], buffer) is None
    with pytest.raises(CorruptObjectError):
        fresh.read(oids[1])
    assert fresh.read_into(oids[1], buffer) is None and not fresh.has(oids[1])  # set aside by read()
    view = fresh.read_into(oids[2], buffer)
    assert view is not None and bytes(view) == bytes([2]) * 1002


def test_a_pack_index_finds_the_same_rows_before_and_after_it_switches_to_its_key_array() -> None:
    # PackIndex.find binary-searches the bytes, then (lookups many) an integer array of id prefixes:
    # both must give the same row for every id, -1 for every absent id, and cope with ids that share
    # their first 8 bytes.
    import random

    from dsv.store import pack as packmod

    rng = random.Random(2)
    ids = {rng.randbytes(16) for _ in range(3000)}
    prefix = rng.randbytes(8)
    ids |= {prefix + rng.randbytes(8) for _ in range(20)}  # a run sharing a key
    ids |= {b"\0" * 16, b"\xff" * 16}
    entries = [(raw, 100 + i, i) for i, raw in enumerate(ids)]
    index = decode_index(encode_index(entries), what="test")
    ordered = sorted(ids)
    absent = [rng.randbytes(16) for _ in range(300)] + [prefix + rng.randbytes(8) for _ in range(50)] + [b"\x00" * 15 + b"\x01", b"\xff" * 15 + b"\xfe"]
    absent = [a for a in absent if a not in ids]
    assert index._keys is None
    for _ in range(2):  # the first pass switches to the key array part way through
        for row, raw in enumerate(ordered):
            assert index.find(raw) == row
        for raw in absent:
            assert index.find(raw) == -1
    assert index._keys is not None and len(index._keys) == len(ordered)
    assert packmod.KEYED_LOOKUPS < len(ordered) + len(absent)


@pytest.mark.parametrize("n", [0, 1, 255, 256, 257, 1000, 65791, 65792, 70000, 5_000_000])
def test_zstd_content_size_reads_every_header_width(n: int) -> None:
    # decompress checks a record's size against its frame before allocating it.
    from dsv.store.pack import compress, zstd_content_size

    data = os.urandom(n // 2) + bytes(n - n // 2)
    assert zstd_content_size(compress(data)) == n


def test_zstd_content_size_without_a_declared_size_and_on_garbage() -> None:
    from dsv.store.pack import compress, decompress, zstd_content_size

    assert zstd_content_size(b"\x28\xb5\x2f\xfd" + bytes([0b0000_0000, 0x58])) is None  # no FCS, window byte
    with pytest.raises(ValueError):
        zstd_content_size(b"not zstd")
    frame = compress(b"x" * 1000)
    with pytest.raises(ValueError, match="says 1099511627776 bytes"):
        decompress(frame, 1 << 40)


def _two_copies(tmp_path: Path) -> tuple[LocalObjectStore, str, bytes]:
    """A store holding one object in two packs, and (fresh) the store, its id and bytes."""
    import shutil

    store = _local(tmp_path)
    other = LocalObjectStore.create(str(tmp_path / "other"))
    data = b"the same bytes in two packs\n" * 10
    for s in (store, other):
        w = s.begin_write()
        oid = w.add_bytes(data)
        w.add_bytes(f"filler {s.root}".encode())  # the two packs differ, so their names do
        w.commit()
    for name in os.listdir(other.packs_dir):
        shutil.copy(os.path.join(other.packs_dir, name), os.path.join(store.packs_dir, name))
    return LocalObjectStore(store.root), oid, data


def _corrupt_copy(pack: object, row: int) -> None:
    off, length = pack.index.offsets[row], pack.index.lengths[row]  # type: ignore[attr-defined]
    os.chmod(pack.pack_path, 0o644)  # type: ignore[attr-defined]
    with open(pack.pack_path, "r+b") as f:  # type: ignore[attr-defined]
        f.seek(off + length - 2)
        byte = f.read(1)
        f.seek(off + length - 2)
        f.write(bytes([byte[0] ^ 0xFF]))


@contextlib.contextmanager
def _must_end(seconds: int = 20) -> Iterator[None]:
    """A read that kept returning a remembered corrupt copy would never end: fail instead."""
    import signal

    def never_ends(signum: int, frame: object) -> None:
        raise TimeoutError("the read kept returning the copy set aside")

    previous = signal.signal(signal.SIGALRM, never_ends)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_copy_found_once_is_forgotten_when_it_turns_out_corrupt(tmp_path: Path) -> None:
    """The store remembers where it found an id (a checkout asks for each file it writes, then reads
    it); a copy set aside as corrupt is not returned from that memory: the other copy is read."""
    fresh, oid, data = _two_copies(tmp_path)
    assert fresh.has(oid)  # found (and remembered) in one of the packs
    pack, row = fresh._find_packed(bytes.fromhex(oid))  # noqa: SLF001
    _corrupt_copy(pack, row)
    with _must_end():
        assert fresh.read(oid) == data
        assert b"".join(fresh.iter_chunks(oid)) == data
    assert fresh._find_packed(bytes.fromhex(oid))[0] is not pack  # noqa: SLF001


def test_a_location_remembered_while_another_thread_quarantined_it_is_not_believed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in one thread, quarantined by another before the first remembers it: the stale memory
    is checked on use (the read goes to the other copy; it used to spin for ever)."""
    fresh, oid, data = _two_copies(tmp_path)
    raw = bytes.fromhex(oid)
    pack, row = fresh._find_packed(raw)  # noqa: SLF001
    _corrupt_copy(pack, row)
    fresh = LocalObjectStore(fresh.root)
    real_locate = fresh._locate  # noqa: SLF001

    def locate_then_quarantine(r: bytes) -> tuple[LoadedPack, int] | None:
        loc = real_locate(r)
        if loc is not None and r == raw:
            fresh._quarantine_packed(oid, loc[0], loc[1])  # noqa: SLF001  (the other thread)
        return loc

    monkeypatch.setattr(fresh, "_locate", locate_then_quarantine)
    assert fresh._find_packed(raw) is not None  # noqa: SLF001  (remembered after the quarantine)
    monkeypatch.setattr(fresh, "_locate", real_locate)
    with _must_end():
        assert fresh.read(oid) == data
