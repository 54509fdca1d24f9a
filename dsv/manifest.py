"""Manifests: the list of every file of a snapshot, as Arrow tables.

A manifest is a sorted table ``(path, oid, size, mode)`` cut into *chunks* at
content-defined boundaries: a chunk ends after an entry whose path fingerprint
has its low :data:`BOUNDARY_BITS` bits all set (on average every 1,024 entries;
at most :data:`MAX_CHUNK_ROWS`). A boundary depends only on the path at it, so an
edit changes only the chunks around the edited paths; every other chunk keeps
its bytes and its id, and is shared with the parent commit. Committing ten
changed files in a million-file dataset thus writes about ten chunks and one
root table.

Each chunk and the root are stored as objects, serialized as Arrow IPC streams
with fixed schemas and writer options (canonical bytes: same rows, same id).
Diff logic here is pure functions over Arrow tables (vectorized joins).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from dsv.base.errors import CorruptMetadataError, FormatVersionError
from dsv.base.hashing import from_hex, path_fingerprint, to_hex

if TYPE_CHECKING:
    from dsv.store.base import ObjectStore, ObjectWriter

MANIFEST_VERSION = 1
BOUNDARY_BITS = 10
BOUNDARY_MASK = (1 << BOUNDARY_BITS) - 1
MAX_CHUNK_ROWS = 16 * 1024

MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000
MODES = (MODE_FILE, MODE_EXEC, MODE_LINK)

_META = {b"dsv.manifest.version": str(MANIFEST_VERSION).encode()}

ENTRY_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("oid", pa.binary(16), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("mode", pa.int32(), nullable=False),
    ],
    metadata={**_META, b"dsv.kind": b"chunk"},
)
"""Schema of a manifest chunk: one row per file, sorted by ``path`` (UTF-8 bytes)."""

ROOT_SCHEMA = pa.schema(
    [
        pa.field("chunk", pa.binary(16), nullable=False),
        pa.field("first", pa.string(), nullable=False),
        pa.field("last", pa.string(), nullable=False),
        pa.field("files", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
    ],
    metadata={**_META, b"dsv.kind": b"root"},
)
"""Schema of a manifest root: one row per chunk, in path order."""

_WRITE_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


def to_ipc_bytes(table: pa.Table) -> bytes:
    """Serialize a table with the fixed writer options (canonical bytes)."""
    table = table.combine_chunks()  # the same rows give the same bytes however they were split
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_WRITE_OPTIONS) as writer:
        writer.write_table(table, max_chunksize=max(1, table.num_rows))
    return sink.getvalue().to_pybytes()


def from_ipc_bytes(data: bytes, schema: pa.Schema, *, what: str) -> pa.Table:
    """Parse an IPC stream and check it has exactly ``schema`` and a known version."""
    try:
        table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as err:
        raise CorruptMetadataError(what, f"not a readable Arrow stream ({err})") from err
    meta = table.schema.metadata or {}
    version = meta.get(b"dsv.manifest.version", b"?").decode(errors="replace")
    if version != str(MANIFEST_VERSION):
        if version.isdigit() and int(version) > MANIFEST_VERSION:
            raise FormatVersionError(what, version, MANIFEST_VERSION)
        raise CorruptMetadataError(what, f"unknown manifest version {version!r}")
    if not table.schema.equals(schema, check_metadata=True):
        raise CorruptMetadataError(what, f"unexpected schema {table.schema.names}")
    return table


def empty_entries() -> pa.Table:
    """An empty manifest table."""
    return ENTRY_SCHEMA.empty_table()


def entries_table(paths: Sequence[str], oids: Sequence[bytes], sizes: Sequence[int], modes: Sequence[int]) -> pa.Table:
    """Build a sorted manifest table from column lists (any order)."""
    table = pa.table(
        [
            pa.array(paths, pa.string()),
            pa.array(oids, pa.binary(16)),
            pa.array(sizes, pa.int64()),
            pa.array(modes, pa.int32()),
        ],
        schema=ENTRY_SCHEMA,
    )
    if table.num_rows > 1:
        table = table.sort_by("path")
    return table


def _chunk_bounds(paths: list[str]) -> list[tuple[int, int]]:
    bounds = []
    start = 0
    for i, p in enumerate(paths):
        if (path_fingerprint(p) & BOUNDARY_MASK) == BOUNDARY_MASK or i + 1 - start >= MAX_CHUNK_ROWS:
            bounds.append((start, i + 1))
            start = i + 1
    if start < len(paths):
        bounds.append((start, len(paths)))
    return bounds


def write_manifest(table: pa.Table, writer: "ObjectWriter") -> str:
    """Store a sorted manifest table as chunks plus a root; return the root id."""
    paths = table.column("path").to_pylist()
    sizes = table.column("size")
    chunk_ids: list[bytes] = []
    firsts: list[str] = []
    lasts: list[str] = []
    files: list[int] = []
    nbytes: list[int] = []
    for start, end in _chunk_bounds(paths):
        part = table.slice(start, end - start)
        oid = writer.add_bytes(to_ipc_bytes(part))
        chunk_ids.append(from_hex(oid))
        firsts.append(paths[start])
        lasts.append(paths[end - 1])
        files.append(end - start)
        nbytes.append(pc.sum(sizes.slice(start, end - start)).as_py() or 0)
    root = pa.table(
        [
            pa.array(chunk_ids, pa.binary(16)),
            pa.array(firsts, pa.string()),
            pa.array(lasts, pa.string()),
            pa.array(files, pa.int64()),
            pa.array(nbytes, pa.int64()),
        ],
        schema=ROOT_SCHEMA,
    )
    return writer.add_bytes(to_ipc_bytes(root))


@dataclass(frozen=True)
class Manifest:
    """A stored manifest: its root table, and the store to load chunks from."""

    oid: str
    root: pa.Table
    store: "ObjectStore" = field(repr=False, compare=False)
    _chunks: dict[str, pa.Table] = field(default_factory=dict, repr=False, compare=False)

    @property
    def file_count(self) -> int:
        """Number of files."""
        return int(pc.sum(self.root.column("files")).as_py() or 0)

    @property
    def total_bytes(self) -> int:
        """Sum of file sizes."""
        return int(pc.sum(self.root.column("bytes")).as_py() or 0)

    def chunk_ids(self) -> list[str]:
        """Hex ids of the chunks, in path order."""
        return [to_hex(b) for b in self.root.column("chunk").to_pylist()]

    def load_chunk(self, oid: str) -> pa.Table:
        """Load and validate one chunk (kept: a diff and a sample source may both need it)."""
        table = self._chunks.get(oid)
        if table is None:
            table = from_ipc_bytes(self.store.read(oid), ENTRY_SCHEMA, what=f"manifest chunk {oid}")
            self._chunks[oid] = table
        return table

    def table(self, *, chunks: Iterable[str] | None = None) -> pa.Table:
        """The whole manifest (or the named chunks) as one table."""
        ids = self.chunk_ids() if chunks is None else list(chunks)
        tables = [self.load_chunk(c) for c in ids]
        if not tables:
            return empty_entries()
        return pa.concat_tables(tables)

    def under(self, prefix: str) -> pa.Table:
        """Entries at or under ``prefix`` (a file path or a folder), reading only chunks that can hold them."""
        prefix = prefix.strip("/")
        if not prefix:
            return self.table()
        # Every path equal to prefix or below prefix/ sorts in [prefix, prefix + "0"): '0' follows '/'.
        lo, hi = prefix, prefix + "0"
        firsts = self.root.column("first").to_pylist()
        lasts = self.root.column("last").to_pylist()
        ids = [c for c, f, last in zip(self.chunk_ids(), firsts, lasts) if not (last < lo or f >= hi)]
        table = self.table(chunks=ids)
        paths = table.column("path")
        mask = pc.or_(pc.equal(paths, prefix), pc.starts_with(paths, prefix + "/"))
        return table.filter(mask)


def read_manifest(store: "ObjectStore", oid: str) -> Manifest:
    """Load a manifest root."""
    root = from_ipc_bytes(store.read(oid), ROOT_SCHEMA, what=f"manifest {oid}")
    return Manifest(oid, root, store)


class ChangeKind(enum.Enum):
    """What happened to one path between two snapshots."""

    ADDED = "added"
    REMOVED = "removed"
    MODIFIED = "modified"
    MOVED = "moved"


@dataclass(frozen=True)
class FileChange:
    """One file-level change. ``old_*`` is ``None`` for added files, ``new_*`` for removed."""

    kind: ChangeKind
    path: str
    old_path: str | None = None
    old_oid: str | None = None
    new_oid: str | None = None
    old_size: int | None = None
    new_size: int | None = None
    old_mode: int | None = None
    new_mode: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the shape documented in docs/cli.md)."""
        return {
            "kind": self.kind.value,
            "path": self.path,
            "old_path": self.old_path,
            "old_oid": self.old_oid,
            "new_oid": self.new_oid,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_mode": None if self.old_mode is None else f"{self.old_mode:o}",
            "new_mode": None if self.new_mode is None else f"{self.new_mode:o}",
        }


@dataclass(frozen=True)
class FileDiff:
    """All file-level changes between two snapshots, sorted by kind then path."""

    changes: tuple[FileChange, ...]

    def of_kind(self, kind: ChangeKind) -> list[FileChange]:
        """Changes of one kind."""
        return [c for c in self.changes if c.kind is kind]

    def counts(self) -> dict[str, int]:
        """Number of changes per kind."""
        out = {k.value: 0 for k in ChangeKind}
        for c in self.changes:
            out[c.kind.value] += 1
        return out

    def __bool__(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"counts": self.counts(), "changes": [c.to_dict() for c in self.changes]}


def _hex_or_none(raw: bytes | None) -> str | None:
    return None if raw is None else raw.hex()


def _rank_within(table: pa.Table, key: str) -> pa.Array:
    """Rank of each row within its run of equal ``key`` values (table sorted by key)."""
    n = table.num_rows
    if n == 0:
        return pa.array([], pa.int64())
    keys = table.column(key).combine_chunks()
    idx = pa.array(range(n), pa.int64())
    change = pc.not_equal(keys.slice(1), keys.slice(0, n - 1))
    starts_mask = pa.concat_arrays([pa.array([True]), change.combine_chunks() if isinstance(change, pa.ChunkedArray) else change])
    starts = pc.if_else(starts_mask, idx, pa.scalar(0, pa.int64()))
    group_start = pc.cumulative_max(starts)
    return pc.subtract(idx, group_start)


def diff_tables(old: pa.Table, new: pa.Table, *, detect_moves: bool = True) -> FileDiff:
    """Compare two manifest tables (pure, vectorized).

    A removed path and an added path with the same content id are paired into a
    move (one-to-one, in path order, when several copies moved).
    """
    joined = old.select(["path", "oid", "size", "mode"]).join(
        new.select(["path", "oid", "size", "mode"]), keys="path", join_type="full outer", left_suffix="_a", right_suffix="_b"
    )
    a_null = pc.is_null(joined.column("oid_a"))
    b_null = pc.is_null(joined.column("oid_b"))
    added = joined.filter(a_null)
    removed = joined.filter(b_null)
    both = joined.filter(pc.and_(pc.invert(a_null), pc.invert(b_null)))
    modified = both.filter(
        pc.or_(pc.not_equal(both.column("oid_a"), both.column("oid_b")), pc.not_equal(both.column("mode_a"), both.column("mode_b")))
    )
    moves: list[FileChange] = []
    if detect_moves and added.num_rows and removed.num_rows:
        rem = removed.select(["path", "oid_a", "size_a", "mode_a"]).rename_columns(["old_path", "oid", "old_size", "old_mode"])
        add = added.select(["path", "oid_b", "size_b", "mode_b"]).rename_columns(["path", "oid", "new_size", "new_mode"])
        rem = rem.sort_by([("oid", "ascending"), ("old_path", "ascending")])
        add = add.sort_by([("oid", "ascending"), ("path", "ascending")])
        rem = rem.append_column("rank", _rank_within(rem, "oid"))
        add = add.append_column("rank", _rank_within(add, "oid"))
        pairs = rem.join(add, keys=["oid", "rank"], join_type="inner")
        if pairs.num_rows:
            moved_old = set(pairs.column("old_path").to_pylist())
            moved_new = set(pairs.column("path").to_pylist())
            for r in pairs.to_pylist():
                moves.append(
                    FileChange(ChangeKind.MOVED, r["path"], r["old_path"], r["oid"].hex(), r["oid"].hex(), r["old_size"], r["new_size"], r["old_mode"], r["new_mode"])
                )
            added = added.filter(pc.invert(pc.is_in(added.column("path"), pa.array(list(moved_new), pa.string()))))
            removed = removed.filter(pc.invert(pc.is_in(removed.column("path"), pa.array(list(moved_old), pa.string()))))
    changes: list[FileChange] = []
    for r in added.sort_by("path").to_pylist():
        changes.append(FileChange(ChangeKind.ADDED, r["path"], None, None, _hex_or_none(r["oid_b"]), None, r["size_b"], None, r["mode_b"]))
    for r in removed.sort_by("path").to_pylist():
        changes.append(FileChange(ChangeKind.REMOVED, r["path"], None, _hex_or_none(r["oid_a"]), None, r["size_a"], None, r["mode_a"], None))
    for r in modified.sort_by("path").to_pylist():
        changes.append(
            FileChange(ChangeKind.MODIFIED, r["path"], None, _hex_or_none(r["oid_a"]), _hex_or_none(r["oid_b"]), r["size_a"], r["size_b"], r["mode_a"], r["mode_b"])
        )
    changes.extend(sorted(moves, key=lambda c: c.path))
    return FileDiff(tuple(changes))


def diff_manifests(old: Manifest | None, new: Manifest | None, *, detect_moves: bool = True) -> FileDiff:
    """Compare two stored manifests, reading only the chunks they do not share."""
    old_ids = old.chunk_ids() if old else []
    new_ids = new.chunk_ids() if new else []
    shared = set(old_ids) & set(new_ids)
    a = old.table(chunks=[c for c in old_ids if c not in shared]) if old else empty_entries()
    b = new.table(chunks=[c for c in new_ids if c not in shared]) if new else empty_entries()
    return diff_tables(a, b, detect_moves=detect_moves)
