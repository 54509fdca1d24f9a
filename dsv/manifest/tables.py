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

import bisect
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from dsv.base import compute as pc
from dsv.base.filemodes import MODE_EXEC, MODE_FILE, MODE_LINK, MODES
from dsv.base.hashing import from_hex, path_fingerprint, to_hex
from dsv.base.records import FrozenRecord, init_field
from dsv.manifest.encoding import ENTRY_SCHEMA, ROOT_SCHEMA, decode_chunk, decode_root, encode_chunk, encode_root

if TYPE_CHECKING:
    from dsv.store.base import ObjectStore, ObjectWriter

BOUNDARY_BITS = 10
BOUNDARY_MASK = (1 << BOUNDARY_BITS) - 1
MAX_CHUNK_ROWS = 16 * 1024

__all__ = ["BOUNDARY_BITS", "ENTRY_SCHEMA", "MAX_CHUNK_ROWS", "MODES", "MODE_EXEC", "MODE_FILE", "MODE_LINK", "ROOT_SCHEMA", "Manifest",
           "empty_entries", "entries_table", "manifest_problems", "read_manifest", "row_problems", "write_manifest", "write_manifest_patch"]


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
        table = pc.sort_by(table, "path")
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
        nbytes.append(pc.sum_of(sizes.slice(start, end - start)) or 0)
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


Row = tuple[bytes, int, int]
"""A file's manifest row without its path: ``(16-byte id, size, mode)``."""


def write_manifest_patch(parent: "Manifest", upserts: dict[str, Row], removals: Iterable[str], writer: "ObjectWriter") -> str:
    """Store ``parent`` with rows added, replaced (``upserts``) and removed; return the new root id.

    Gives exactly the ids :func:`write_manifest` would give for the whole new
    table, but reads and writes only the chunks around the changed paths: every
    other chunk keeps its id and is neither loaded nor re-encoded. A *run* of
    chunks is rebuilt from the first chunk holding a change until a piece ends
    at a content-defined boundary again, which is where the canonical chunking
    of the whole table cuts too (a chunk after such a boundary depends only on
    its own rows).

    A run stays columnar (Arrow filter, concat and sort; no per-row Python
    object), and boundaries are not re-hashed row by row: in a canonically cut
    parent only a chunk's last row can be a boundary, so the boundary rows of a
    run are those chunk ends plus the inserted paths that are boundaries.
    """
    changes = sorted(set(upserts) | set(removals))
    removed = set(removals) - set(upserts)
    root = parent.root
    ids = root.column("chunk").to_pylist()
    lasts = root.column("last").to_pylist()
    firsts = root.column("first").to_pylist()
    counts = root.column("files").to_pylist()
    sums = root.column("bytes").to_pylist()
    n = len(ids)
    if n == 0:
        return write_manifest(_rows_table(sorted(upserts.items())), writer)
    out: list[tuple[bytes, str, str, int, int]] = []
    ci = 0  # next change to place
    k = 0
    while k < n:
        upper = lasts[k] if k < n - 1 else None  # the last chunk takes every path after it
        if ci >= len(changes) or (upper is not None and changes[ci] > upper):
            out.append((ids[k], firsts[k], lasts[k], counts[k], sums[k]))
            k += 1
            continue
        # A dirty run: rows of chunk k onwards, with the changes that fall in their ranges.
        pieces: list[pa.Table] = []
        placed: list[str] = []
        boundaries: set[str] = set()
        while True:
            pieces.append(parent.load_chunk(ids[k].hex()))
            if _is_boundary(lasts[k]):
                boundaries.add(lasts[k])
            upper = lasts[k] if k < n - 1 else None
            while ci < len(changes) and (upper is None or changes[ci] <= upper):
                placed.append(changes[ci])
                ci += 1
            k += 1
            merged = _patched_rows(pieces, placed, upserts, removed)
            paths = merged.column("path")
            if k >= n or (len(paths) and _is_boundary(paths[-1].as_py())):
                break  # the piece ends where canonical chunking cuts: what follows is unchanged
        boundaries.update(p for p in placed if p in upserts and _is_boundary(p))
        if not len(paths):
            continue
        marks = pc.indices_nonzero(pc.is_in(paths, pa.array(sorted(boundaries), pa.string()))).to_pylist()
        for start, end in _bounds_at(len(paths), marks):
            part = merged.slice(start, end - start)
            cid = from_hex(writer.add_bytes(encode_chunk(part), compress=True))
            out.append((cid, paths[start].as_py(), paths[end - 1].as_py(), end - start, pc.sum_of(part.column("size")) or 0))
    return _write_root(out, writer)


def _patched_rows(pieces: list[pa.Table], placed: list[str], upserts: dict[str, Row], removed: set[str]) -> pa.Table:
    """The rows of consecutive chunks with the changes in their range applied, sorted by path."""
    table = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
    if not placed:
        return table
    keep = pc.invert(pc.is_in(table.column("path"), pa.array(placed, pa.string())))
    table = pc.filter_rows(table, keep)
    rows = [(p, upserts[p]) for p in placed if p not in removed]
    if rows:
        # UTF-8 byte order (Arrow's) is code point order (Python's), so both sorts agree.
        table = pc.sort_by(pa.concat_tables([table, _rows_table(rows)]), "path")
    return table


def _bounds_at(count: int, marks: list[int]) -> list[tuple[int, int]]:
    """Chunk bounds of ``count`` sorted rows whose boundary rows are at ``marks`` (ascending).

    The same cuts as :func:`_chunk_bounds`: after every boundary row, and after
    :data:`MAX_CHUNK_ROWS` rows without one.
    """
    bounds = []
    start = 0
    for b in [*marks, count - 1]:
        while b + 1 - start > MAX_CHUNK_ROWS:
            bounds.append((start, start + MAX_CHUNK_ROWS))
            start += MAX_CHUNK_ROWS
        if b >= start:
            bounds.append((start, b + 1))
            start = b + 1
    return bounds


def _is_boundary(path: str) -> bool:
    return (path_fingerprint(path) & BOUNDARY_MASK) == BOUNDARY_MASK


def _rows_table(rows: list[tuple[str, Row]]) -> pa.Table:
    return pa.table(
        [
            pa.array([p for p, _ in rows], pa.string()),
            pa.array([r[0] for _, r in rows], pa.binary(16)),
            pa.array([r[1] for _, r in rows], pa.int64()),
            pa.array([r[2] for _, r in rows], pa.int32()),
        ],
        schema=ENTRY_SCHEMA,
    )


def _write_root(rows: list[tuple[bytes, str, str, int, int]], writer: "ObjectWriter") -> str:
    root = pa.table(
        [
            pa.array([r[0] for r in rows], pa.binary(16)),
            pa.array([r[1] for r in rows], pa.string()),
            pa.array([r[2] for r in rows], pa.string()),
            pa.array([r[3] for r in rows], pa.int64()),
            pa.array([r[4] for r in rows], pa.int64()),
        ],
        schema=ROOT_SCHEMA,
    )
    return writer.add_bytes(encode_root(root), compress=True)


class Manifest(FrozenRecord):
    """A stored manifest: its root table, and the store to load chunks from.

    Equal to another when its id and root table are; the store and the chunks
    loaded so far are neither compared nor shown.
    """

    __slots__ = ("oid", "root", "store", "_chunks")

    oid: str
    root: pa.Table
    store: "ObjectStore"
    _chunks: dict[str, pa.Table]

    def __init__(self, oid: str, root: pa.Table, store: "ObjectStore", _chunks: dict[str, pa.Table] | None = None) -> None:
        init_field(self, "oid", oid)
        init_field(self, "root", root)
        init_field(self, "store", store)
        init_field(self, "_chunks", {} if _chunks is None else _chunks)

    def _values(self) -> tuple[object, ...]:
        return self.oid, self.root

    def __hash__(self) -> int:
        return hash(self.oid)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return type(self), (self.oid, self.root, self.store)

    def __repr__(self) -> str:
        return f"Manifest(oid={self.oid!r}, root={self.root!r})"

    @property
    def file_count(self) -> int:
        """Number of files."""
        return int(pc.sum_of(self.root.column("files")) or 0)

    @property
    def total_bytes(self) -> int:
        """Sum of file sizes."""
        return int(pc.sum_of(self.root.column("bytes")) or 0)

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

    def holding(self, paths: Iterable[str]) -> set[str]:
        """Which of ``paths`` the manifest holds, reading only the chunks whose recorded bounds could.

        Trusts the root's bounds (checked for a checkout by :func:`manifest_problems`);
        bounds that do not increase mean the whole manifest is read.
        """
        wanted = sorted(set(paths))
        if not wanted:
            return set()
        firsts = self.root.column("first").to_pylist()
        lasts = self.root.column("last").to_pylist()
        ids = self.chunk_ids()
        if _bounds_increase(firsts, lasts):
            rows = set()
            for p in wanted:
                i = bisect.bisect_right(firsts, p) - 1
                if i >= 0 and p <= lasts[i]:
                    rows.add(i)
            chosen = [ids[i] for i in sorted(rows)]
        else:
            chosen = ids
        if not chosen:
            return set()
        table = self.table(chunks=chosen)
        mask = pc.is_in(table.column("path"), pa.array(wanted, pa.string()))
        return set(pc.filter_rows(table, mask).column("path").to_pylist())

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
        return pc.filter_rows(table, mask)


def row_problems(table: pa.Table) -> list[str]:
    """What is wrong with a manifest table's rows, if anything (one rule for fsck and checkout).

    Paths strictly increasing (sorted, none twice), every mode known, no negative size.
    """
    out = []
    paths = table.column("path").combine_chunks()
    n = len(paths)
    if n > 1 and not pc.all_true(pc.less(paths.slice(0, n - 1), paths.slice(1))):
        out.append("is not sorted by path or repeats a path")
    if n and not pc.all_true(pc.is_in(table.column("mode"), pa.array(MODES, pa.int32()))):
        out.append("has an unknown file mode")
    if n and pc.min_of(table.column("size")) < 0:
        out.append("has a negative size")
    return out


def _bounds_increase(firsts: list[str], lasts: list[str]) -> bool:
    """Whether a root's recorded chunk bounds are in order: each chunk's first <= last < the next one's first."""
    return all(f <= last for f, last in zip(firsts, lasts)) and all(last < f for last, f in zip(lasts, firsts[1:]))


def manifest_problems(manifest: Manifest, trusted: Manifest | None = None) -> list[str]:
    """:func:`row_problems` of a whole manifest, and its root's agreement with its chunks,
    reading only the chunks ``trusted`` does not hold.

    A chunk ``trusted`` holds too is taken as checked (a switch from HEAD writes
    nothing from it) when the root records it as ``trusted``'s root does. The
    others are checked row by row, together (rows of chunks in order are a
    subsequence of the whole: sorted if it is), and each must hold as many rows
    as its root entry says, beginning and ending at the paths recorded there. No
    chunk may be listed twice and the recorded bounds must increase. Then the
    whole manifest is sorted with no path twice, and :meth:`Manifest.holding`
    may trust the bounds.
    """
    ids = manifest.chunk_ids()
    firsts = manifest.root.column("first").to_pylist()
    lasts = manifest.root.column("last").to_pylist()
    counts = manifest.root.column("files").to_pylist()
    known: dict[str, tuple[str, str, int]] = {}
    if trusted is not None:
        known = dict(zip(trusted.chunk_ids(), zip(*(trusted.root.column(c).to_pylist() for c in ("first", "last", "files")))))
    check = [c for c in ids if c not in known]
    out = row_problems(manifest.table() if len(check) == len(ids) else manifest.table(chunks=check))
    ordered = len(set(ids)) == len(ids) and _bounds_increase(firsts, lasts)
    for c, f, last, n in zip(ids, firsts, lasts, counts):
        if not ordered:
            break
        if c in known:
            ordered = known[c] == (f, last, n)
            continue
        paths = manifest.load_chunk(c).column("path")
        ordered = len(paths) == n and (n == 0 or (paths[0].as_py() == f and paths[-1].as_py() == last))
    if not ordered and "is not sorted by path or repeats a path" not in out:
        out.insert(0, "is not sorted by path or repeats a path")
    return out


def read_manifest(store: "ObjectStore", oid: str) -> Manifest:
    """Load a manifest root."""
    root = decode_root(store.read(oid), what=f"manifest {oid}")
    return Manifest(oid, root, store)


