"""Manifests: the list of every file of a snapshot, as Arrow tables, stored in chunks.

A manifest is a sorted table ``(path, oid, size, mode)`` cut into *chunks* at
content-defined boundaries: a chunk ends after an entry whose path fingerprint
has its low :data:`BOUNDARY_BITS` bits all set (on average every 1,024 entries;
at most :data:`MAX_CHUNK_ROWS`). A boundary depends only on the path at it, so an
edit changes only the chunks around the edited paths; every other chunk keeps
its bytes and its id, and is shared with the parent commit. Committing ten
changed files in a million-file dataset thus writes about ten chunks and one
root table.

Each chunk and the root are stored as objects in the canonical encoding of
:mod:`dsv.manifest.encoding` (same rows, same bytes, same id, whatever the
library versions), compressed by the store as a storage detail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from dsv.base.filemodes import MODE_EXEC, MODE_FILE, MODE_LINK, MODES
from dsv.base.hashing import from_hex, path_fingerprint, to_hex
from dsv.manifest.encoding import ENTRY_SCHEMA, ROOT_SCHEMA, decode_chunk, decode_root, encode_chunk, encode_root

if TYPE_CHECKING:
    from dsv.store.base import ObjectStore, ObjectWriter

BOUNDARY_BITS = 10
BOUNDARY_MASK = (1 << BOUNDARY_BITS) - 1
MAX_CHUNK_ROWS = 16 * 1024

__all__ = ["BOUNDARY_BITS", "ENTRY_SCHEMA", "MAX_CHUNK_ROWS", "MODES", "MODE_EXEC", "MODE_FILE", "MODE_LINK", "ROOT_SCHEMA", "Manifest",
           "empty_entries", "entries_table", "read_manifest", "row_problems", "write_manifest"]


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
        oid = writer.add_bytes(encode_chunk(part), compress=True)
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
    return writer.add_bytes(encode_root(root), compress=True)


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
            table = decode_chunk(self.store.read(oid), what=f"manifest chunk {oid}")
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


def row_problems(table: pa.Table) -> list[str]:
    """What is wrong with a manifest table's rows, if anything (one rule for fsck and checkout).

    Paths strictly increasing (sorted, none twice), every mode known, no negative size.
    """
    out = []
    paths = table.column("path").combine_chunks()
    n = len(paths)
    if n > 1 and not pc.all(pc.less(paths.slice(0, n - 1), paths.slice(1))).as_py():
        out.append("is not sorted by path or repeats a path")
    if n and not pc.all(pc.is_in(table.column("mode"), pa.array(MODES, pa.int32()))).as_py():
        out.append("has an unknown file mode")
    if n and pc.min(table.column("size")).as_py() < 0:
        out.append("has a negative size")
    return out


def read_manifest(store: "ObjectStore", oid: str) -> Manifest:
    """Load a manifest root."""
    root = decode_root(store.read(oid), what=f"manifest {oid}")
    return Manifest(oid, root, store)


