"""Porcelain for ``dsv diff`` with samples: build both sides, run the engine per source."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsv.base.errors import UsageError
from dsv.semantic.declaration import DECLARATION_FILE, Declaration, FolderSource, TableSource, parse_declaration
from dsv.semantic.report import SemanticDiff, SourceDiff

if TYPE_CHECKING:
    import pyarrow as pa

    from dsv.api.repo import Repo
    from dsv.manifest import FileDiff, Manifest


@dataclass
class Side:
    """One side of a diff: a revision or the working tree.

    The full manifest table is built only when a sample source needs it: a plain
    file-level diff of two revisions reads only the chunks they do not share.
    """

    name: str
    load_table: Callable[[], "pa.Table"] = field(repr=False)
    disk_path: Callable[[str], str | None] = field(repr=False)
    read_bytes: Callable[[str], bytes | None] = field(repr=False)
    oid_of: Callable[[str], bytes | None] = field(repr=False)

    under_fn: Callable[[str], "pa.Table"] | None = field(default=None, repr=False)

    @property
    def table(self) -> "pa.Table":
        """The side's manifest table ``(path, oid, size, mode)``."""
        return self.load_table()

    def under(self, prefix: str) -> "pa.Table":
        """Entries at or below ``prefix``; a revision reads only the chunks that can hold them."""
        if self.under_fn is not None:
            return self.under_fn(prefix)
        import pyarrow.compute as pc

        t = self.table
        if not prefix:
            return t
        paths = t.column("path")
        return t.filter(pc.or_(pc.equal(paths, prefix), pc.starts_with(paths, prefix + "/")))


def _lazy(build: Callable[[], Any]) -> Callable[[], Any]:
    cache: list[Any] = []

    def get() -> Any:
        if not cache:
            cache.append(build())
        return cache[0]

    return get


def _lookup(table: "pa.Table") -> dict[str, bytes]:
    return dict(zip(table.column("path").to_pylist(), table.column("oid").to_pylist()))


def empty_side(name: str = "(empty)") -> Side:
    """A side with no files."""
    from dsv.manifest import empty_entries

    return Side(name, empty_entries, lambda p: None, lambda p: None, lambda p: None)


def revision_side(repo: "Repo", rev: str, temp_files: list[str], manifest: "Manifest") -> Side:
    """A revision (its ``manifest``) as a diff side; packed table files are spilled to temp files for DuckDB."""
    store = repo.repository.store

    def oid_of(path: str) -> bytes | None:
        part = manifest.under(path)
        hits = [o for p, o in zip(part.column("path").to_pylist(), part.column("oid").to_pylist()) if p == path]
        return hits[0] if hits else None

    def disk_path(path: str) -> str | None:
        raw = oid_of(path)
        if raw is None:
            return None
        oid = raw.hex()
        loose = os.path.join(store.loose_dir, oid[:2], oid[2:])
        if os.path.exists(loose):
            # Verify once (streaming) so the engine never reads corrupt bytes.
            for _ in store.iter_chunks(oid):
                pass
            return loose
        tmp = os.path.join(store.tmp_dir, f"semantic-{os.getpid()}-{uuid.uuid4().hex}")
        with open(tmp, "wb") as f:
            f.write(store.read(oid))
        temp_files.append(tmp)
        return tmp

    def read_bytes(path: str) -> bytes | None:
        raw = oid_of(path)
        return None if raw is None else store.read(raw.hex())

    return Side(rev, _lazy(manifest.table), disk_path, read_bytes, oid_of, manifest.under)


def worktree_side(repo: "Repo") -> Side:
    """The working tree as a diff side."""
    table = repo.worktree_table()
    index = _lookup(table)

    def disk_path(path: str) -> str | None:
        return os.path.join(repo.root, *path.split("/")) if path in index else None

    def read_bytes(path: str) -> bytes | None:
        full = disk_path(path)
        if full is None:
            return None
        with open(full, "rb") as f:
            return f.read()

    return Side("working tree", lambda: table, disk_path, read_bytes, index.get)


def load_declaration(side: Side) -> Declaration:
    """The ``dsv.toml`` of a side (empty when there is none)."""
    data = side.read_bytes(DECLARATION_FILE)
    if data is None:
        return Declaration()
    return parse_declaration(data, where=what_side(side))


def what_side(side: Side) -> str:
    """How a side's dsv.toml is named in errors."""
    return f"{DECLARATION_FILE} at {side.name}"


def _file_oids(side: Side) -> "pa.Table":
    return side.table.select(["path", "oid"])


def run_semantic_diff(
    repo: "Repo",
    a: Side,
    b: Side,
    file_diff: "FileDiff",
    declaration: Declaration | None,
    *,
    by: list[str],
    rows: int | None,
    force_read: bool = False,
    strict: bool = True,
) -> SemanticDiff:
    """Diff every declared source between sides ``a`` and ``b``.

    ``force_read`` reads sources even when identical (their class counts are then
    known, for metrics); with ``strict`` False (changelog), a source that cannot be
    diffed at this step is reported in ``warnings`` instead of stopping everything.
    """
    from dsv.semantic import engine

    from dsv.base.errors import DsvError

    warnings: list[str] = []
    try:
        decl = declaration if declaration is not None else load_declaration(b)
    except DsvError as err:
        if strict:
            raise
        warnings.append(str(err))
        decl = Declaration()
    changed_paths = {c.path for c in file_diff.changes} | {c.old_path for c in file_diff.changes if c.old_path}
    if force_read:
        changed_paths = {""}  # every prefix counts as touched
    sources: list[SourceDiff] = []
    con = engine.connect(repo.repository.store.tmp_dir)
    try:
        jobs: list[tuple[str, Callable[[], SourceDiff]]] = []
        for i, folder in enumerate(decl.folders):
            jobs.append((folder.display_name, lambda f=folder, t=f"f{i}": _folder(con, a, b, f, changed_paths, by, t)))
        for i, table in enumerate(decl.tables):
            jobs.append((table.display_name, lambda tb=table, t=f"t{i}": _table(con, a, b, tb, file_diff, by, rows, t, force_read)))
        for name, job in jobs:
            try:
                sources.append(job())
                warnings.extend(sources[-1].warnings)
            except DsvError as err:
                if strict:
                    raise
                warnings.append(f"{name}: {err}")
    finally:
        con.close()
    known = {s for f in decl.folders for s in f.slices} | {s for t in decl.tables for s in t.slices}
    for col in by:
        if col not in known and strict:
            raise UsageError(f"--by {col}: no sample source has a slice named {col!r}", hint=f"slices: {', '.join(sorted(known)) or 'none'}")
    return SemanticDiff(a.name, b.name, file_diff.counts(), tuple(sources), tuple(file_diff.changes), tuple(warnings))


def _literal_prefix(pattern: str) -> str:
    parts = []
    for part in pattern.split("/"):
        if any(ch in part for ch in "{*?[\\"):
            break
        parts.append(part)
    return "/".join(parts)


def _folder(con, a: Side, b: Side, folder: FolderSource, changed: set[str], by: list[str], tag: str) -> SourceDiff:  # type: ignore[no-untyped-def]

    from dsv.semantic import engine

    prefix = _literal_prefix(folder.pattern)
    if not any(not p or not prefix or p == prefix or p.startswith(prefix + "/") for p in changed):
        return SourceDiff(folder.display_name, "folder", read=False)
    sa = engine.folder_samples(a.under(prefix), folder)
    sb = engine.folder_samples(b.under(prefix), folder)
    return engine.diff_folder(con, sa, sb, folder, by=by, tag=tag)


def _table(  # type: ignore[no-untyped-def]
    con, a: Side, b: Side, table: TableSource, file_diff: "FileDiff", by: list[str], rows: int | None, tag: str, force_read: bool = False
) -> SourceDiff:
    from dsv.semantic import tables

    oid_a, oid_b = a.oid_of(table.path), b.oid_of(table.path)
    if oid_a is None and oid_b is None:
        # Declared but absent on both sides (deleted earlier, or added later): no samples here.
        return SourceDiff(table.display_name, "table", read=False)
    files_changed = table.file is not None and bool(file_diff.changes)
    if oid_a == oid_b and not files_changed and not force_read:
        # Same content: nothing to read.
        return SourceDiff(table.display_name, "table", read=False)
    return tables.diff_table(
        con,
        a.disk_path(table.path) if oid_a is not None else None,
        b.disk_path(table.path) if oid_b is not None else None,
        table,
        side_a=a.name,
        side_b=b.name,
        file_oids=(_file_oids(a), _file_oids(b)) if table.file else None,
        by=by,
        rows=rows,
        tag=tag,
    )
