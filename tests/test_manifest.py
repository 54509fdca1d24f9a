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
    new_bytes = sum(len(store.objects[o]) for o in new_objects)
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
        m.from_ipc_bytes(data[: len(data) // 2], m.ROOT_SCHEMA, what="root")
    with pytest.raises(CorruptMetadataError):
        m.from_ipc_bytes(data, m.ENTRY_SCHEMA, what="chunk")


def test_newer_manifest_version_is_refused() -> None:
    schema = m.ENTRY_SCHEMA.with_metadata({b"dsv.manifest.version": b"2", b"dsv.kind": b"chunk"})
    data = m.to_ipc_bytes(schema.empty_table())
    with pytest.raises(FormatVersionError):
        m.from_ipc_bytes(data, m.ENTRY_SCHEMA, what="chunk")


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
