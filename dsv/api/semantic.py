"""Porcelain for ``dsv diff`` with samples: build both sides, run the engine per source."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dsv.base.errors import UsageError
from dsv.base.formats import DECLARATION_FILE
from dsv.base.records import Record
from dsv.semantic.report import DeclarationCheck, SemanticDiff, SourceCheck, SourceDiff

if TYPE_CHECKING:
    import pyarrow as pa

    from dsv.api.repo import Repo
    from dsv.manifest import FileDiff, Manifest
    from dsv.semantic.declaration import Declaration, FolderSource, TableSource

# dsv.semantic.declaration is imported on first use: a diff with no sample source
# never needs pydantic or DuckDB.


class Side(Record):
    """One side of a diff: a revision or the working tree.

    The full manifest table is built only when a sample source needs it: a plain
    file-level diff of two revisions reads only the chunks they do not share.
    """

    __slots__ = ("name", "load_table", "disk_path", "read_bytes", "oid_of", "under_fn", "has_under_fn")
    __hash__ = None  # type: ignore[assignment]

    name: str
    load_table: Callable[[], "pa.Table"]
    disk_path: Callable[[str], str | None]
    read_bytes: Callable[[str], bytes | None]
    oid_of: Callable[[str], bytes | None]
    under_fn: Callable[[str], "pa.Table"] | None
    has_under_fn: Callable[[str], bool] | None

    def __init__(
        self,
        name: str,
        load_table: Callable[[], "pa.Table"],
        disk_path: Callable[[str], str | None],
        read_bytes: Callable[[str], bytes | None],
        oid_of: Callable[[str], bytes | None],
        under_fn: Callable[[str], "pa.Table"] | None = None,
        has_under_fn: Callable[[str], bool] | None = None,
    ) -> None:
        self.name = name
        self.load_table = load_table
        self.disk_path = disk_path
        self.read_bytes = read_bytes
        self.oid_of = oid_of
        self.under_fn = under_fn
        self.has_under_fn = has_under_fn

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

    def has_under(self, prefix: str) -> bool:
        """Whether any file is at or below ``prefix``; a revision reads at most the chunks its root cannot settle."""
        if self.has_under_fn is not None:
            return self.has_under_fn(prefix)
        return self.under(prefix).num_rows > 0


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
        in_place = store.local_path(oid)  # verified by the store
        if in_place is not None:
            return in_place
        tmp = os.path.join(repo.repository.scratch_dir, f"semantic-{os.getpid()}-{uuid.uuid4().hex}")
        temp_files.append(tmp)  # removed by the caller, also when the stream below fails verification
        with open(tmp, "wb") as f:
            for part in store.iter_chunks(oid):
                f.write(part)
        return tmp

    def read_bytes(path: str) -> bytes | None:
        raw = oid_of(path)
        return None if raw is None else store.read(raw.hex())

    def has_under(prefix: str) -> bool:
        # The root's first/last path per chunk settles most questions without reading a chunk.
        prefix = prefix.strip("/")
        firsts = manifest.root.column("first").to_pylist()
        lasts = manifest.root.column("last").to_pylist()
        if not prefix:
            return bool(firsts)
        lo, hi = prefix, prefix + "0"
        inside = [f for f, last in zip(firsts, lasts) if not (last < lo or f >= hi)]
        if not inside:
            return False
        if any(x == prefix or x.startswith(prefix + "/") for f, last in zip(firsts, lasts) for x in (f, last) if not (last < lo or f >= hi)):
            return True
        return manifest.under(prefix).num_rows > 0

    return Side(rev, _lazy(manifest.table), disk_path, read_bytes, oid_of, manifest.under, has_under)


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


def load_declaration(side: Side) -> "Declaration | None":
    """The ``dsv.toml`` of a side (``None`` when there is none)."""
    data = side.read_bytes(DECLARATION_FILE)
    if data is None:
        return None
    from dsv.semantic.declaration import parse_declaration

    return parse_declaration(data, where=what_side(side))


def declaration_of(side: Side) -> "Declaration":
    """The ``dsv.toml`` of a side, or an empty declaration when there is none."""
    decl = load_declaration(side)
    if decl is None:
        from dsv.semantic.declaration import Declaration

        return Declaration()
    return decl


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
    from dsv.base.errors import DsvError

    warnings: list[str] = []
    try:
        decl = declaration if declaration is not None else load_declaration(b)
    except DsvError as err:
        if strict:
            raise
        warnings.append(str(err))
        decl = None
    if decl is None or not (decl.folders or decl.tables):
        # No sample source: the file diff is the whole answer (no DuckDB, no pydantic).
        return SemanticDiff(a.name, b.name, file_diff.counts(), (), tuple(file_diff.changes), tuple(warnings))
    from dsv.semantic import engine

    changed_paths = {c.path for c in file_diff.changes} | {c.old_path for c in file_diff.changes if c.old_path}
    if force_read:
        changed_paths = {""}  # every prefix counts as touched
    sources: list[SourceDiff] = []
    con = engine.connect(repo.repository.scratch_dir)
    try:
        jobs: list[tuple[str, Callable[[], SourceDiff]]] = []
        for i, folder in enumerate(decl.folders):
            jobs.append((folder.display_name, lambda f=folder, t=f"f{i}": _folder(con, a, b, f, changed_paths, by, t, file_diff)))  # type: ignore[misc]
        for i, table in enumerate(decl.tables):
            jobs.append((table.display_name, lambda tb=table, t=f"t{i}": _table(con, a, b, tb, file_diff, by, rows, t, force_read)))  # type: ignore[misc]
        declared: list[FolderSource | TableSource] = [*decl.folders, *decl.tables]
        for (name, job), source in zip(jobs, declared):
            try:
                sources.append(job())
                warnings.extend(sources[-1].warnings)
                if strict:
                    # A source found in neither version is a mistake (a typo in a path or pattern),
                    # not "unchanged". A changelog step before a source existed is normal.
                    _check_found(sources[-1], source, a, b, explicit=declaration is not None)
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


def _check_found(result: SourceDiff, source: "FolderSource | TableSource", a: Side, b: Side, *, explicit: bool) -> None:
    """Refuse a declared source that exists in neither version (flags: exit 2; dsv.toml: exit 3)."""
    from dsv.base.errors import SampleSourceError

    from dsv.semantic.declaration import TableSource

    if isinstance(source, TableSource):
        if result.read or a.oid_of(source.path) is not None or b.oid_of(source.path) is not None:
            return
        flag, what, where = f"--table {source.path}", f"table {source.path}", f"exists at neither {a.name} nor {b.name}"
    else:
        if result.read:
            if result.totals.before or result.totals.after:
                return
        elif any(s.has_under(_literal_prefix(source.pattern)) for s in (a, b)):
            return  # not read (nothing changed below it); a file is there to match
        flag, what, where = f"--folder {source.pattern}", f"folder pattern {source.pattern}", f"matches no file at {a.name} or {b.name}"
    if explicit:
        raise UsageError(f"{flag}: {where}", hint="check the path; 'dsv ls REV' lists the files of a revision")
    raise SampleSourceError(
        f"{DECLARATION_FILE} at {b.name} declares {what}, which {where}",
        hint=f"fix or remove the entry in {DECLARATION_FILE}; 'dsv check' validates it against the files",
    )


def _literal_prefix(pattern: str) -> str:
    parts = []
    for part in pattern.split("/"):
        if any(ch in part for ch in "{*?[\\"):
            break
        parts.append(part)
    return "/".join(parts)


def _folder(con, a: Side, b: Side, folder: "FolderSource", changed: set[str], by: list[str], tag: str, file_diff: "FileDiff") -> SourceDiff:  # type: ignore[no-untyped-def]

    from dsv.semantic import engine

    prefix = _literal_prefix(folder.pattern)
    if not any(not p or not prefix or p == prefix or p.startswith(prefix + "/") for p in changed):
        return SourceDiff(folder.display_name, "folder", read=False)
    import pyarrow as pa

    from dsv.manifest import ChangeKind

    sa = engine.folder_samples(a.under(prefix), folder)
    sb = engine.folder_samples(b.under(prefix), folder)
    # The file diff's moves, so the sample diff pairs identical files exactly as it does.
    moved = file_diff.of_kind(ChangeKind.MOVED)
    moves = pa.table({"old_path": pa.array([c.old_path for c in moved], pa.string()), "new_path": pa.array([c.path for c in moved], pa.string())})
    return engine.diff_folder(con, sa, sb, folder, by=by, tag=tag, moves=moves)


def _table(  # type: ignore[no-untyped-def]
    con, a: Side, b: Side, table: "TableSource", file_diff: "FileDiff", by: list[str], rows: int | None, tag: str, force_read: bool = False
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


# -- dsv check ---------------------------------------------------------------------------


def check_declaration(repo: "Repo", rev: str | None, manifest: "Manifest | None") -> DeclarationCheck:
    """Validate the ``dsv.toml`` of ``rev`` (its ``manifest``; ``None``: the working tree) against that version's files.

    Every problem a diff would stop on is reported, with the rest still checked:
    the file parses; source names are distinct; each table exists, reads, has
    its key, label, slice, file and typed columns, and unique non-empty keys;
    each folder pattern matches files. Rows naming files absent from the tree
    are warnings.
    """
    from dsv.base.errors import DsvError

    temp_files: list[str] = []
    try:
        side = worktree_side(repo) if rev is None or manifest is None else revision_side(repo, rev, temp_files, manifest)
        from dsv.semantic.declaration import parse_declaration

        data = side.read_bytes(DECLARATION_FILE)
        if data is None:
            return DeclarationCheck(side.name, None, problems=(f"no {DECLARATION_FILE} at {side.name}: no sample source is declared",))
        try:
            decl = parse_declaration(data, where=DECLARATION_FILE)
        except DsvError as err:
            return DeclarationCheck(side.name, DECLARATION_FILE, problems=(err.message,))
        problems = []
        declared: list[FolderSource | TableSource] = [*decl.folders, *decl.tables]
        names = [s.display_name for s in declared]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"the source name {name!r} is used twice: give the sources distinct name = \"...\" (reports and --source go by name)")
        if not names:
            problems.append(f"{DECLARATION_FILE} declares no [[folders]] or [[tables]]")
        sources = [_check_folder(side, f) for f in decl.folders]
        sources += [_check_table(repo, side, t) for t in decl.tables]
        return DeclarationCheck(side.name, DECLARATION_FILE, tuple(sources), tuple(problems))
    finally:
        for t in temp_files:
            try:
                os.unlink(t)
            except OSError:
                pass


def _check_folder(side: Side, folder: "FolderSource") -> SourceCheck:
    from dsv.semantic import engine

    samples = engine.folder_samples(side.under(_literal_prefix(folder.pattern)), folder)
    if samples.num_rows == 0:
        return SourceCheck(folder.display_name, "folder", 0, 0, (f"folder pattern {folder.pattern} matches no file at {side.name}",))
    import pyarrow.compute as pc

    return SourceCheck(folder.display_name, "folder", samples.num_rows, len(pc.unique(samples.column("label"))))


def _check_table(repo: "Repo", side: Side, table: "TableSource") -> SourceCheck:
    from dsv.base.errors import DsvError
    from dsv.semantic import engine, tables

    name = table.display_name
    if side.oid_of(table.path) is None:
        return SourceCheck(name, "table", problems=(f"no file {table.path} at {side.name}",))
    disk = side.disk_path(table.path)
    assert disk is not None
    if os.path.getsize(disk) == 0:
        return SourceCheck(name, "table", 0, 0, warnings=(f"{table.path} is empty at {side.name}",))
    con = engine.connect(repo.repository.scratch_dir)
    try:
        try:
            version = tables.load_table(con, "t", disk, table, side.name)
        except DsvError as err:
            return SourceCheck(name, "table", problems=(err.message,))
        problems: list[str] = []
        cols = version.types
        roles = [(table.label, "label")] + [(s, "slice") for s in table.slices] + ([(table.file, "file")] if table.file else [])
        roles += [(c, "typed") for c in table.types]
        for col, role in roles:
            if col not in cols:
                problems.append(f"{table.path} at {side.name} has no {role} column {col!r} (columns: {', '.join(cols)})")
        keys = " OR ".join(f"{engine.q(k)} IS NULL" for k in table.key)
        (empty,) = con.execute(f"SELECT count(*) FROM t WHERE {keys}").fetchall()[0]
        if empty:
            problems.append(f"{table.path} at {side.name}: {empty} row(s) have an empty key ({', '.join(table.key)})")
        try:
            tables.check_unique_keys(con, "t", table, side.name)
        except DsvError as err:
            problems.append(err.message)
        classes = None
        if table.label in cols:
            (classes,) = con.execute(f"SELECT count(DISTINCT {engine.q(table.label)}) FROM t").fetchall()[0]
        warnings: list[str] = []
        if table.file and table.file in cols:
            con.register("paths_", side.table.select(["path"]))
            fcol = engine.q(table.file)
            named = tables.file_path(f"CAST({fcol} AS VARCHAR)")
            n_missing, first = con.execute(
                f"""SELECT count(*), min(CAST({fcol} AS VARCHAR)) FROM t
                    WHERE {fcol} IS NOT NULL AND {named} NOT IN (SELECT path FROM paths_)"""
            ).fetchall()[0]
            if n_missing:
                warnings.append(f"{n_missing} row(s) of {table.path} name a {table.file!r} file that is not at {side.name} (first: {first})")
        return SourceCheck(name, "table", version.rows, classes, tuple(problems), tuple(warnings))
    finally:
        con.close()
