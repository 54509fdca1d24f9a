"""Manifests: canonical bytes, chunk sharing, validation, and the file-level diff."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsv import manifest as m
from dsv.base.errors import CorruptMetadataError, FormatVersionError
from dsv.store import MemoryObjectStore


def _table(entries: dict[str, bytes], mode: int = m.MODE_FILE) -> pa.Table:
    paths = list(entries)
    return m.entries_table(paths, [entries[p] for p in paths], [len(p) for p in paths], [mode] * len(paths))


def _store(table: pa.Table) -> tuple[MemoryObjectStore, str]:
    store = MemoryObjectStore()
    w = store.begin_write()
    root = m.write_manifest(table, w)
    w.commit()
    return store, root


def test_same_rows_give_same_id_whatever_the_input_order() -> None:
    entries = {f"d{i % 7}/f{i}": os.urandom(16) for i in range(3000)}
    _, a = _store(_table(entries))
    _, b = _store(_table(dict(reversed(list(entries.items())))))
    assert a == b


def test_small_edit_in_large_manifest_rewrites_few_chunks() -> None:
    entries = {f"train/c{i % 10}/{i:07d}.jpg": os.urandom(16) for i in range(100_000)}
    store, root1 = _store(_table(entries))
    before = set(store.objects)
    for i in range(0, 100_000, 10_000):  # 10 changed files
        entries[f"train/c{i % 10}/{i:07d}.jpg"] = os.urandom(16)
    w = store.begin_write()
    root2 = m.write_manifest(_table(entries), w)
    w.commit()
    new_objects = set(store.objects) - before
    from dsv.store.pack import compress

    # As the local store keeps them: manifests are stored zstd-compressed.
    new_bytes = sum(len(compress(store.objects[o])) for o in new_objects)
    chunks1 = m.read_manifest(store, root1).chunk_ids()
    assert len(chunks1) > 50  # the manifest really is chunked
    assert len(new_objects) <= 10 + 1  # at most one chunk per edit, plus the root
    # Scaled to 1,000,000 files the root grows 10x: still far under 1 MB of new metadata.
    assert new_bytes < 400_000
    d = m.diff_manifests(m.read_manifest(store, root1), m.read_manifest(store, root2))
    assert d.counts() == {"added": 0, "removed": 0, "modified": 10, "moved": 0}


def test_summary_counts_and_under() -> None:
    entries = {"a/x": b"1" * 16, "a/y": b"2" * 16, "ab": b"3" * 16, "b/z": b"4" * 16}
    store, root = _store(_table(entries))
    man = m.read_manifest(store, root)
    assert man.file_count == 4
    assert man.total_bytes == sum(len(p) for p in entries)
    assert man.under("a").column("path").to_pylist() == ["a/x", "a/y"]
    assert man.under("ab").column("path").to_pylist() == ["ab"]
    assert man.under("").num_rows == 4
    assert man.under("nothing").num_rows == 0


def test_truncated_or_foreign_manifest_is_refused() -> None:
    store, root = _store(_table({"a": b"1" * 16}))
    data = store.objects[root]
    with pytest.raises(CorruptMetadataError):
        m.decode_root(data[: len(data) // 2], what="root")
    with pytest.raises(CorruptMetadataError):
        m.decode_root(data + b"x" * 8, what="root")
    with pytest.raises(CorruptMetadataError, match="not a chunk"):
        m.decode_chunk(data, what="chunk")
    with pytest.raises(CorruptMetadataError):
        m.decode_chunk(b"not a manifest at all", what="chunk")


def test_corrupt_string_offsets_are_refused_not_crashed() -> None:
    import struct

    data = bytearray(m.encode_chunk(_table({"ab": b"1" * 16, "cd": b"2" * 16})))
    struct.pack_into("<i", data, 24 + 4, 1000)  # the first path ends past the data
    with pytest.raises(CorruptMetadataError):
        m.decode_chunk(bytes(data), what="chunk")
    bad_utf8 = bytearray(m.encode_chunk(_table({"ab": b"1" * 16})))
    bad_utf8[24 + 8] = 0xFF
    with pytest.raises(CorruptMetadataError):
        m.decode_chunk(bytes(bad_utf8), what="chunk")


def test_newer_manifest_version_is_refused() -> None:
    import struct

    data = bytearray(m.encode_chunk(_table({"a": b"1" * 16})))
    struct.pack_into("<I", data, 8, 3)
    with pytest.raises(FormatVersionError):
        m.decode_chunk(bytes(data), what="chunk")
    from dsv.manifest.encoding import V1_ENTRY_SCHEMA, encode_v1

    v9 = encode_v1(m.empty_entries(), V1_ENTRY_SCHEMA.with_metadata({b"dsv.manifest.version": b"9", b"dsv.kind": b"chunk"}))
    with pytest.raises(FormatVersionError):
        m.decode_chunk(v9, what="chunk")


# Golden values: a dependency upgrade (pyarrow, zstd) must never change them.
GOLDEN_ENTRIES = {
    "images/cat/001.png": (bytes.fromhex("00112233445566778899aabbccddeeff"), 1234, m.MODE_FILE),
    "images/dog/002.png": (bytes.fromhex("ffeeddccbbaa99887766554433221100"), 0, m.MODE_EXEC),
    "labels.csv": (bytes.fromhex("0123456789abcdef0123456789abcdef"), 77, m.MODE_FILE),
    "link": (bytes.fromhex("fedcba9876543210fedcba9876543210"), 9, m.MODE_LINK),
    "\u00e9t\u00e9/\u6f22\\x.txt": (bytes.fromhex("11111111111111111111111111111111"), 2**40, m.MODE_FILE),
}
GOLDEN_CHUNK_HEX = (
    "4453564d414e490a0200000001000000050000000000000000000000120000002400000"  # header; path offsets
    "02e0000003200000041000000"
    "696d616765732f6361742f3030312e706e67696d616765732f646f672f3030322e706e67"  # path bytes
    "6c6162656c732e6373766c696e6bc3a974c3a92fe6bca25c782e747874"
    "00000000000000"  # padding to 8
    "00112233445566778899aabbccddeeffffeeddccbbaa998877665544332211000123456789abcdef0123456789abcdef"  # oids
    "fedcba9876543210fedcba987654321011111111111111111111111111111111"
    "d2040000000000000000000000000000" "4d000000000000000900000000000000" "0000000000010000"  # sizes
    "a4810000ed810000a481000000a00000a4810000" "00000000"  # modes, padding
)
GOLDEN_ROOT_ID = "25b360b335d33c87bb7e06ec2a1cd6d5"


def _golden_table() -> pa.Table:
    paths = list(GOLDEN_ENTRIES)
    return m.entries_table(paths, [GOLDEN_ENTRIES[p][0] for p in paths], [GOLDEN_ENTRIES[p][1] for p in paths], [GOLDEN_ENTRIES[p][2] for p in paths])


def test_golden_chunk_bytes_and_ids() -> None:
    from dsv.base.hashing import hash_bytes

    chunk = m.encode_chunk(_golden_table())
    assert chunk.hex() == GOLDEN_CHUNK_HEX
    store, root = _store(_golden_table())
    man = m.read_manifest(store, root)
    assert man.chunk_ids() == [hash_bytes(chunk)]
    assert root == GOLDEN_ROOT_ID
    assert man.table().equals(_golden_table())
    assert man.file_count == 5 and man.total_bytes == 1234 + 77 + 9 + 2**40


def test_version_1_manifests_are_still_read() -> None:
    from dsv.manifest.encoding import V1_ENTRY_SCHEMA, V1_ROOT_SCHEMA, encode_v1

    table = _golden_table()
    store = MemoryObjectStore()
    w = store.begin_write()
    chunk = w.add_bytes(encode_v1(table, V1_ENTRY_SCHEMA))
    root_table = pa.table(
        [pa.array([bytes.fromhex(chunk)], pa.binary(16)), pa.array([table.column("path")[0].as_py()]), pa.array([table.column("path")[-1].as_py()]),
         pa.array([5], pa.int64()), pa.array([1234 + 77 + 9 + 2**40], pa.int64())],
        schema=m.ROOT_SCHEMA,
    )
    root = w.add_bytes(encode_v1(root_table, V1_ROOT_SCHEMA))
    w.commit()
    man = m.read_manifest(store, root)
    assert man.table().equals(table)
    assert man.file_count == 5


@given(st.dictionaries(st.text(min_size=1, max_size=30).filter(lambda p: "\x00" not in p), st.binary(min_size=16, max_size=16), max_size=60))
@settings(max_examples=60, deadline=None)
def test_encoding_round_trips(entries: dict[str, bytes]) -> None:
    table = _table(entries)
    assert m.decode_chunk(m.encode_chunk(table), what="t").equals(table)
    half = table.slice(len(entries) // 2)
    assert m.decode_chunk(m.encode_chunk(half), what="t").equals(half.combine_chunks())


def test_diff_kinds_and_moves() -> None:
    a = _table({"keep": b"k" * 16, "edit": b"e" * 16, "gone": b"g" * 16, "old/name": b"m" * 16})
    b = _table({"keep": b"k" * 16, "edit": b"E" * 16, "new": b"n" * 16, "new/name": b"m" * 16})
    d = m.diff_tables(a, b)
    kinds = {(c.kind.value, c.path, c.old_path) for c in d.changes}
    assert kinds == {("added", "new", None), ("removed", "gone", None), ("modified", "edit", None), ("moved", "new/name", "old/name")}


def test_duplicate_content_moves_pair_one_to_one() -> None:
    same = b"s" * 16
    a = _table({"x1": same, "x2": same})
    b = _table({"y1": same, "y2": same, "y3": same})
    d = m.diff_tables(a, b)
    assert d.counts() == {"added": 1, "removed": 0, "modified": 0, "moved": 2}
    assert {(c.old_path, c.path) for c in d.of_kind(m.ChangeKind.MOVED)} == {("x1", "y1"), ("x2", "y2")}


def test_mode_change_is_a_modification() -> None:
    a = m.entries_table(["run.sh"], [b"r" * 16], [5], [m.MODE_FILE])
    b = m.entries_table(["run.sh"], [b"r" * 16], [5], [m.MODE_EXEC])
    assert m.diff_tables(a, b).counts()["modified"] == 1


_paths = st.lists(st.text(alphabet="abc/", min_size=1, max_size=6).filter(lambda p: "//" not in p and not p.startswith("/") and not p.endswith("/")), unique=True, max_size=30)
_contents = st.sampled_from([bytes([i]) * 16 for i in range(6)])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text("abcde/", min_size=1, max_size=5), _contents, max_size=25), st.dictionaries(st.text("abcde/", min_size=1, max_size=5), _contents, max_size=25))
def test_diff_matches_a_naive_comparison(old: dict[str, bytes], new: dict[str, bytes]) -> None:
    d = m.diff_tables(_table(old), _table(new))
    added = {c.path for c in d.changes if c.kind is m.ChangeKind.ADDED}
    removed = {c.path for c in d.changes if c.kind is m.ChangeKind.REMOVED}
    modified = {c.path for c in d.changes if c.kind is m.ChangeKind.MODIFIED}
    moves = [(c.old_path, c.path) for c in d.changes if c.kind is m.ChangeKind.MOVED]
    assert modified == {p for p in old.keys() & new.keys() if old[p] != new[p]}
    # Every move pairs a vanished path with an appeared path of the same content, each used once.
    assert len({a for a, _ in moves}) == len(moves) == len({b for _, b in moves})
    for a, b in moves:
        assert a in old and a not in new and b in new and b not in old and old[a] == new[b]
    assert added | {b for _, b in moves} == new.keys() - old.keys()
    assert removed | {a for a, _ in moves} == old.keys() - new.keys()


@given(
    st.dictionaries(st.text(alphabet="ab/cé0", min_size=1, max_size=6).filter(lambda p: not p.startswith("/")), st.binary(min_size=16, max_size=16), max_size=400),
    st.lists(st.tuples(st.booleans(), st.text(alphabet="ab/cé0x", min_size=1, max_size=6), st.binary(min_size=16, max_size=16)), max_size=40),
    st.sampled_from([3, 5, 16 * 1024]),
)
@settings(max_examples=200, deadline=None)
def test_patching_a_manifest_gives_the_ids_of_writing_it_whole(entries: dict[str, bytes], edits: list[tuple[bool, str, bytes]], max_rows: int) -> None:
    import dsv.manifest.tables as t

    # Tiny chunks, so random trees span many chunks and runs; a tiny row limit forces cuts
    # that are not content-defined boundaries.
    old_bits, old_mask, old_max = t.BOUNDARY_BITS, t.BOUNDARY_MASK, t.MAX_CHUNK_ROWS
    t.BOUNDARY_MASK = 0b11 if max_rows > 5 else 0b111
    t.MAX_CHUNK_ROWS = max_rows
    try:
        store, root = _store(_table(entries))
        parent = m.read_manifest(store, root)
        new = dict(entries)
        upserts: dict[str, tuple[bytes, int, int]] = {}
        removals: set[str] = set()
        for remove, path, oid in edits:
            if remove and new:
                victim = sorted(new)[len(path) % len(new)]
                new.pop(victim)
                upserts.pop(victim, None)
                removals.add(victim)
            else:
                new[path] = oid
                upserts[path] = (oid, len(path), m.MODE_FILE)
                removals.discard(path)
        w = store.begin_write()
        patched = m.write_manifest_patch(parent, upserts, removals, w)
        w.commit()
        _, whole = _store(_table(new))
        assert patched == whole
        assert m.read_manifest(store, patched).table().equals(_table(new))
    finally:
        t.BOUNDARY_BITS, t.BOUNDARY_MASK, t.MAX_CHUNK_ROWS = old_bits, old_mask, old_max


@given(
    st.dictionaries(st.text(alphabet="ab/c0", min_size=1, max_size=6).filter(lambda p: not p.startswith("/")), st.sampled_from([bytes([i]) * 16 for i in range(4)]), max_size=300),
    st.lists(st.tuples(st.sampled_from(["modify", "add", "remove", "swap", "mode"]), st.text(alphabet="ab/c0x", min_size=1, max_size=6), st.integers(0, 3)), max_size=30),
    st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_diff_of_stored_manifests_matches_the_diff_of_their_whole_tables(
    entries: dict[str, bytes], edits: list[tuple[str, str, int]], moves: bool
) -> None:
    """diff_manifests compares chunk pairs cut at the same paths row by row, and the rest by lookup:
    whatever the edits (including a pair that gains as many paths as it loses), the result is the
    whole-table diff's, in the same order."""
    import dsv.manifest.tables as t

    old_mask = t.BOUNDARY_MASK
    t.BOUNDARY_MASK = 0b11  # small chunks: random trees span many
    try:
        old = {p: (oid, m.MODE_FILE) for p, oid in entries.items()}
        new = dict(old)
        for kind, path, n in edits:
            keys = sorted(new)
            victim = keys[len(path) % len(keys)] if keys else None
            if kind == "add" or victim is None:
                new[path] = (bytes([n]) * 16, m.MODE_FILE)
            elif kind == "modify":
                new[victim] = (bytes([n + 8]) * 16, new[victim][1])
            elif kind == "mode":
                new[victim] = (new[victim][0], m.MODE_EXEC)
            elif kind == "remove":
                del new[victim]
            else:  # a path removed and a neighbour added: same count, same chunk, other paths
                oid = new.pop(victim)
                new[victim + "x"] = oid

        def table(rows: dict[str, tuple[bytes, int]]) -> pa.Table:
            paths = sorted(rows)
            return m.entries_table(paths, [rows[p][0] for p in paths], [len(p) for p in paths], [rows[p][1] for p in paths])

        store = MemoryObjectStore()
        w = store.begin_write()
        a, b = m.write_manifest(table(old), w), m.write_manifest(table(new), w)
        w.commit()
        got = m.diff_manifests(m.read_manifest(store, a), m.read_manifest(store, b), detect_moves=moves)
        assert got.changes == m.diff_tables(table(old), table(new), detect_moves=moves).changes
    finally:
        t.BOUNDARY_MASK = old_mask


def _forged_root(store: MemoryObjectStore, base: m.Manifest, k: int, rows: pa.Table, first: str | None = None, last: str | None = None) -> str:
    """``base`` with chunk ``k`` replaced by ``rows`` (its recorded bounds as given, or the rows' own)."""
    from dsv.manifest.tables import _write_root

    w = store.begin_write()
    chunk = w.add_bytes(m.encode_chunk(rows), compress=True)
    out = []
    ids = base.chunk_ids()
    for i, (c, f, la, n, b) in enumerate(zip(ids, *(base.root.column(x).to_pylist() for x in ("first", "last", "files", "bytes")))):
        if i == k:
            paths = rows.column("path").to_pylist()
            out.append((bytes.fromhex(chunk), first or paths[0], last or paths[-1], rows.num_rows, b))
        else:
            out.append((bytes.fromhex(c), f, la, n, b))
    root = _write_root(out, w)
    w.commit()
    return root


@pytest.fixture
def chunked(monkeypatch: pytest.MonkeyPatch) -> tuple[MemoryObjectStore, str]:
    """A stored manifest of 120 rows cut into many small chunks (a boundary every ~4 paths)."""
    import dsv.manifest.tables as t

    monkeypatch.setattr(t, "BOUNDARY_MASK", 0b11)
    return _store(_table({f"d{i:03d}": bytes([i % 7]) * 16 for i in range(120)}))


def test_manifest_problems_reads_only_chunks_head_lacks_and_still_finds_forgeries(chunked: tuple[MemoryObjectStore, str]) -> None:
    """A switch checks only the target's chunks HEAD does not hold: a forged chunk among shared ones
    (a path twice, rows outside the bounds the root records for it, bounds out of order) is found."""
    store, root = chunked
    head = m.read_manifest(store, root)
    ids = head.chunk_ids()
    assert len(ids) > 6
    k = len(ids) // 2
    chunk = head.load_chunk(ids[k])
    n = chunk.num_rows
    assert m.manifest_problems(head, head) == [] and m.manifest_problems(head) == []
    # A path twice inside the one chunk HEAD lacks.
    twice = pa.concat_tables([chunk.slice(0, 1), chunk.slice(0, n)])
    forged = m.read_manifest(store, _forged_root(store, head, k, twice))
    assert m.manifest_problems(forged, head) == ["is not sorted by path or repeats a path"]
    # Rows that belong to the next chunk's range, under the bounds the root recorded.
    nxt = head.load_chunk(ids[k + 1])
    stolen = pa.concat_tables([chunk, nxt.slice(0, 1)])
    fp, lp = chunk.column("path")[0].as_py(), chunk.column("path")[n - 1].as_py()
    forged = m.read_manifest(store, _forged_root(store, head, k, stolen, fp, lp))
    assert "is not sorted by path or repeats a path" in m.manifest_problems(forged, head)
    # Honest rows, bounds that overlap the next chunk's.
    forged = m.read_manifest(store, _forged_root(store, head, k, stolen))
    assert "is not sorted by path or repeats a path" in m.manifest_problems(forged, head)
    # An unknown mode in the chunk HEAD lacks.
    odd = chunk.set_column(chunk.schema.get_field_index("mode"), "mode", pa.array([0o100777] * n, pa.int32()))
    forged = m.read_manifest(store, _forged_root(store, head, k, odd))
    assert m.manifest_problems(forged, head) == ["has an unknown file mode"]
    # The shared chunks are not read: a head whose chunks are all in the store but never loaded.
    fresh = m.read_manifest(store, _forged_root(store, head, k, odd))
    m.manifest_problems(fresh, head)
    assert set(fresh._chunks) == {fresh.chunk_ids()[k]}  # noqa: SLF001


def test_holding_reads_only_the_chunks_whose_bounds_could_hold_the_paths(chunked: tuple[MemoryObjectStore, str]) -> None:
    store, root = chunked
    man = m.read_manifest(store, root)
    ask = {"d000", "d057", "d119", "d0575", "a", "z", "d05"}
    assert man.holding(ask) == {"d000", "d057", "d119"}
    assert len(man._chunks) <= 3 < len(man.chunk_ids())  # noqa: SLF001
    assert m.read_manifest(store, root).holding(set()) == set()
    # Bounds out of order: the whole manifest is read, and the answer is still right.
    ids, firsts, lasts = man.chunk_ids(), man.root.column("first").to_pylist(), man.root.column("last").to_pylist()
    from dsv.manifest.tables import _write_root

    w = store.begin_write()
    rows = [(bytes.fromhex(c), f, la, 1, 1) for c, f, la in zip(ids, firsts, lasts)]
    rows[0], rows[1] = rows[1], rows[0]
    forged_root = _write_root(rows, w)
    w.commit()
    forged = m.read_manifest(store, forged_root)
    assert forged.holding(ask) == {"d000", "d057", "d119"}


def _root_of(store: MemoryObjectStore, rows: list[tuple[str, str, str, int]]) -> m.Manifest:
    """A manifest whose root lists ``(chunk id, first, last, files)`` as given (a forged root)."""
    from dsv.manifest.tables import _write_root

    w = store.begin_write()
    root = _write_root([(bytes.fromhex(c), f, la, n, 1) for c, f, la, n in rows], w)
    w.commit()
    return m.read_manifest(store, root)


def test_a_root_that_lies_about_chunks_head_holds_is_found(chunked: tuple[MemoryObjectStore, str]) -> None:
    """Outside attack: a forged root reusing HEAD's chunks under other bounds, or twice, or with
    another row count, checked out as if sorted (the switch trusted shared chunks)."""
    store, root = chunked
    head = m.read_manifest(store, root)
    rows = list(zip(head.chunk_ids(), *(head.root.column(c).to_pylist() for c in ("first", "last", "files"))))
    c0, f0, l0, n0 = rows[0]
    bad = {
        "listed twice under made-up bounds": [(c0, " ", " ", n0), (c0, "  ", "  ", n0), *rows[1:]],
        "moved after another chunk": [rows[1], (c0, rows[1][2] + "z", rows[1][2] + "zz", n0), *rows[2:]],
        "another row count": [(c0, f0, l0, n0 + 1), *rows[1:]],
    }
    for why, forged_rows in bad.items():
        forged = _root_of(store, forged_rows)
        for trusted in (head, None):  # a switch, and checkout -f (nothing trusted)
            assert "is not sorted by path or repeats a path" in m.manifest_problems(forged, trusted), (why, trusted)
    assert m.manifest_problems(_root_of(store, rows), head) == []


def test_a_root_with_a_wrong_row_count_diffs_without_crashing(chunked: tuple[MemoryObjectStore, str]) -> None:
    """Outside attack: chunks paired by their recorded row counts crashed the diff when a root lied."""
    store, root = chunked
    head = m.read_manifest(store, root)
    rows = list(zip(head.chunk_ids(), *(head.root.column(c).to_pylist() for c in ("first", "last", "files"))))
    k = len(rows) // 2
    chunk = head.load_chunk(rows[k][0])
    w = store.begin_write()
    shorter = w.add_bytes(m.encode_chunk(chunk.slice(1)), compress=True)  # one row fewer...
    w.commit()
    c, f, la, n = rows[k]
    forged = _root_of(store, [*rows[:k], (shorter, f, la, n), *rows[k + 1:]])  # ...recorded as before
    got = m.diff_manifests(head, forged)
    assert got.changes == m.diff_tables(head.table(), forged.table()).changes
    assert [ch.path for ch in got.changes] == [chunk.column("path")[0].as_py()]
