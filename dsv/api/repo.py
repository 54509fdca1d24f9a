"""``dsv.Repo``: the porcelain. Every CLI command is one method here returning a typed result.

The methods never print; warnings travel in the results and progress through the
``progress`` callback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from dsv.api.remotes import RemoteCommands
from dsv.api.status import pending_checkout, repository_status
from dsv.api.worktree_results import CheckoutResult, CommitResult, StatusResult, Warnings
from dsv.base.errors import (
    CheckoutInProgressError,
    DsvError,
    NothingToCommitError,
    RefConflictError,
    RefExistsError,
    RefNotFoundError,
    UsageError,
    WorktreeError,
)
from dsv.base.formats import DECLARATION_FILE
from dsv.base.progress import Progress
from dsv.history.refs import HEADS, REMOTES, TAGS, check_ref_name
from dsv.repository import Repository
from dsv.worktree.paths import to_repo_path

if TYPE_CHECKING:
    import pyarrow as pa

    from dsv.history.documents import Commit
    from dsv.history.revisions import Resolved
    from dsv.api.results import BranchInfo, ChangelogResult, FileInfo, LogEntry, LogResult, ShowResult, TagInfo, VersionInfo
    from dsv.metrics.compare import MetricsComparison
    from dsv.metrics.records import MetricsEntry, MetricsResult
    from dsv.semantic.declaration import Declaration
    from dsv.semantic.report import DeclarationCheck, SemanticDiff
    from dsv.semantic.findings import AuditReport, AuditStep
    from dsv.semantic.drift import DriftReport
    from dsv.api.reporting import ReportData

    from dsv.maintenance import FsckReport, GcReport
    from dsv.manifest import FileDiff, Manifest
    from dsv.api.remotes import CloneResult
    from dsv.worktree.pending import CheckoutRecord


class Repo(RemoteCommands):
    """A dsv repository, opened at ``path`` or any parent of it (remote methods: :class:`RemoteCommands`)."""

    def __init__(self, path: str | os.PathLike[str] = ".") -> None:
        self._repo = Repository.open(os.fspath(path))
        self.root = self._repo.root
        #: what :meth:`clone` fetched, on a repository it made; None otherwise
        self.cloned: "CloneResult | None" = None

    @classmethod
    def init(cls, path: str | os.PathLike[str] = ".") -> "Repo":
        """Create a repository in ``path`` and open it."""
        Repository.init(os.fspath(path))
        return cls(path)

    @property
    def repository(self) -> Repository:
        """The underlying repository (store, refs, history)."""
        return self._repo

    # -- helpers -------------------------------------------------------------------

    def resolve(self, rev: str = "HEAD") -> Resolved:
        """Resolve a revision expression."""
        return self._repo.history.resolve(rev)

    def _manifest(self, commit: Commit) -> "Manifest":
        from dsv.manifest import read_manifest

        return read_manifest(self._repo.store, commit.manifest)

    def _refs_by_commit(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        head = self._repo.refs.head()
        if head.commit:
            out.setdefault(head.commit, []).append("HEAD" if head.detached else f"HEAD -> {head.branch}")
        # Decorations only: a malformed ref elsewhere must not stop 'log' (fsck reports it).
        for name, oid in self._repo.refs.list(HEADS, malformed=[]).items():
            if name != head.branch:
                out.setdefault(oid, []).append(name)
        # Remote-tracking branches (origin/main), as git decorates them.
        for name, oid in sorted(self._repo.refs.list(REMOTES, malformed=[]).items()):
            out.setdefault(oid, []).append(name)
        for name, oid in self._repo.refs.list(TAGS, malformed=[]).items():
            target = self._peel_tag(oid)
            out.setdefault(target, []).append(f"tag: {name}")
        return out

    def _peel_tag(self, oid: str) -> str:
        from dsv.history.documents import document_type, read_tag

        try:
            data = self._repo.store.read(oid)
        except DsvError:
            return oid
        return read_tag(self._repo.store, oid).object if document_type(data) == "tag" else oid

    def _reachable_from_refs(self, commit: str) -> bool:
        """Whether any branch or tag reaches ``commit`` (walks history; commits are small)."""
        starts = list(self._repo.refs.list(HEADS, malformed=[]).values())
        starts += [self._peel_tag(oid) for oid in self._repo.refs.list(TAGS, malformed=[]).values()]
        try:
            return any(oid == commit for oid, _ in self._repo.history.walk(starts)) if starts else False
        except DsvError:
            return True  # unsure: do not warn

    def repo_path(self, user_path: str) -> str:
        """A command-line path as a path relative to the working-tree root."""
        return to_repo_path(self.root, user_path)

    # -- status and commit ---------------------------------------------------------

    def status(self, progress: Progress | None = None) -> StatusResult:
        """The working tree against HEAD."""
        return repository_status(self._repo, progress)

    def _pending_checkout(self, *, locked: bool = False) -> "CheckoutRecord | None":
        """The checkout that stopped part-way, if any (:func:`dsv.api.status.pending_checkout`)."""
        return pending_checkout(self._repo, locked=locked)

    def commit(self, message: str, *, allow_empty: bool = False, progress: Progress | None = None) -> CommitResult:
        """Snapshot the whole working tree (respecting ``.dsvignore``) as a new commit on HEAD."""
        from dsv.history.documents import Commit, CommitSummary, commit_bytes, now
        from dsv.worktree.snapshot import take_snapshot

        if not message.strip():
            raise UsageError("empty commit message", hint="pass -m 'what changed and why'")
        self._refuse_commit_in_sparse_clone()  # dsv.api.remotes
        repo = self._repo
        warn = Warnings()
        with repo.write_lock():
            pending = self._pending_checkout(locked=True)
            if pending is not None:
                # The tree mixes two versions: committing it would record a state nobody chose.
                raise CheckoutInProgressError(pending.rev, pending.command())
            repo.store.refresh()
            head = repo.refs.head()
            parent = head.commit
            if parent is not None:
                repo.history.commit(parent)  # never build on a parent that is missing or corrupt
            cache = repo.load_statcache(parent)
            monitor = repo.monitor_session(cache)
            writer = repo.store.begin_write()
            try:
                snap = take_snapshot(self.root, cache, repo.ignore_rules(), writer, warn, progress, changed=monitor.changed if monitor else None)
                if not allow_empty and (not snap.changed if parent else snap.files == 0):
                    raise NothingToCommitError()
                # pyarrow is imported only after the snapshot (see dsv.base.forkjob).
                from dsv.manifest import read_manifest, write_manifest, write_manifest_patch
                from dsv.worktree.statcache import cache_table

                if parent is not None and cache.manifest is not None:
                    # Only the chunks around the changed paths are read and written.
                    manifest_id = write_manifest_patch(read_manifest(repo.store, cache.manifest), snap.upserts, snap.removals, writer)
                else:
                    manifest_id = write_manifest(cache_table(snap.cache), writer)
                name, email = repo.author()
                commit = Commit(
                    manifest=manifest_id,
                    parents=(parent,) if parent else (),
                    author=name,
                    email=email,
                    time=now(),
                    message=message,
                    summary=CommitSummary(
                        files=snap.files, bytes=snap.total_bytes, added=snap.added, removed=snap.removed, modified=snap.modified, moved=snap.moved
                    ),
                )
                document = commit_bytes(commit)
                cid = writer.add_bytes(document)
                writer.commit()
            except BaseException:
                writer.abort()
                raise
            # Everything the commit reaches is durable: now move the ref (compare-and-swap).
            if head.branch is not None:
                repo.refs.update(f"{HEADS}/{head.branch}", cid, expected=parent)
            else:
                if repo.refs.head().commit != parent:
                    raise RefConflictError("HEAD", parent, repo.refs.head().commit)
                repo.refs.set_head(commit=cid)
            snap.cache.commit = cid
            snap.cache.manifest = manifest_id
            repo.save_statcache(snap.cache)
            if monitor is not None:
                monitor.record(snap.cache.identity, snap.skipped)  # everything else found changed is committed now
        for p in snap.changed_while_reading:
            warn(f"{p} changed while it was being committed; the version read was stored")
        # A dsv.toml that does not parse is committed anyway, and said now (issue 8).
        if os.path.exists(os.path.join(self.root, DECLARATION_FILE)):
            from dsv.semantic.declaration import commit_warnings

            warn.items.extend(commit_warnings(self.root))
        return CommitResult(cid, head.branch, commit, tuple(warn.items), tuple(snap.changed_while_reading), snap.files_read, snap.bytes_read)

    # -- history -------------------------------------------------------------------

    def log(self, rev: str = "HEAD", *, limit: int | None = None) -> LogResult:
        """Commits reachable from ``rev``, newest first (a list, and a table: ``.to_pandas()``)."""
        from dsv.api.results import LogEntry, LogResult

        head = self._repo.refs.head()
        if rev in ("HEAD", "@") and head.commit is None:
            return LogResult()
        start = self.resolve(rev).commit_id
        refs = self._refs_by_commit()
        return LogResult(LogEntry(oid, c, tuple(refs.get(oid, ()))) for oid, c in self._repo.history.walk(start, limit=limit))

    def show(self, rev: str = "HEAD") -> ShowResult:
        """One commit, or the commit a tag names plus the tag's message and metadata."""
        from dsv.api.results import ShowResult

        r = self.resolve(rev)
        refs = self._refs_by_commit()
        return ShowResult(r.commit_id, r.commit, r.tag_name, r.tag, tuple(refs.get(r.commit_id, ())))

    # -- reading snapshots ---------------------------------------------------------

    def ls(self, rev: str = "HEAD", path: str = "") -> list[FileInfo]:
        """Files at ``rev``, optionally only at or under ``path``."""
        from dsv.api.results import FileInfo

        r = self.resolve(rev)
        table = self._manifest(r.commit).under(path)
        return [
            FileInfo(p, o.hex(), s, m)
            for p, o, s, m in zip(
                table.column("path").to_pylist(), table.column("oid").to_pylist(), table.column("size").to_pylist(), table.column("mode").to_pylist()
            )
        ]

    def manifest_table(self, rev: str = "HEAD") -> "pa.Table":
        """The manifest of ``rev`` as an Arrow table ``(path, oid, size, mode)``."""
        return self._manifest(self.resolve(rev).commit).table()

    def open_file(self, rev: str, path: str) -> Iterator[bytes]:
        """Stream the bytes of ``path`` at ``rev``, verified before the first byte is yielded.

        Large objects are hashed in a first pass, so a corrupt object yields nothing
        rather than a prefix of bad bytes.
        """
        path = path.strip("/")
        r = self.resolve(rev)
        table = self._manifest(r.commit).under(path)
        rows = [i for i, p in enumerate(table.column("path").to_pylist()) if p == path]
        if not rows:
            if table.num_rows:
                if not path:
                    raise WorktreeError(f"no file path given after '{rev}:'", hint=f"name a file, as in {rev}:labels.csv; 'dsv ls {rev}' lists them")
                raise WorktreeError(f"'{path}' is a folder at {rev}", hint=f"use 'dsv ls {rev} {path}'")
            raise WorktreeError(f"'{path}' does not exist at {rev}", hint=f"see 'dsv ls {rev}'; paths here start at the repository root")
        oid = table.column("oid")[rows[0]].as_py().hex()
        store = self._repo.store
        if store.size(oid) > (64 << 20):
            for _ in store.iter_chunks(oid):  # verify first; raises CorruptObjectError
                pass
            return store.iter_chunks(oid)
        return iter([store.read(oid)])

    def read_file(self, rev: str, path: str) -> bytes:
        """The bytes of ``path`` at ``rev``."""
        return b"".join(self.open_file(rev, path))

    # -- diff ----------------------------------------------------------------------

    def worktree_table(self, progress: Progress | None = None) -> "pa.Table":
        """The working tree as a manifest table (hashing changed files, storing nothing)."""
        from dsv.manifest import entries_table
        from dsv.worktree.content import hash_path
        from dsv.worktree.scan import scan

        head = self._repo.refs.head()
        cache = self._repo.load_statcache(head.commit)
        res = scan(self.root, cache, self._repo.ignore_rules(), Warnings())
        paths, oids, sizes, modes = [], [], [], []
        for row in res.clean:
            paths.append(cache.paths[row])
            oids.append(cache.oids[row])
            sizes.append(cache.sizes[row])
            modes.append(cache.modes[row])
        todo = [(cache.paths[r], st, m) for r, st, m in res.suspect] + list(res.new)
        for p, st, m in todo:
            h = hash_path(os.path.join(self.root, *p.split("/")), st, m)
            if h.vanished:
                continue
            paths.append(p)
            oids.append(h.raw_oid)
            sizes.append(h.size)
            modes.append(m)
        return entries_table(paths, oids, sizes, modes)

    def diff(
        self, old: str | None = None, new: str | None = None, *, declaration: "Declaration | None" = None, by: Sequence[str] = (), rows: int | None = 20
    ) -> "SemanticDiff":
        """What changed from ``old`` to ``new``: files, and per class and slice of the declared samples.

        A missing side is the working tree (default: HEAD against the working
        tree). Every summary is a table (``.classes``, ``.relabels``, ``.slices``,
        ``.totals``, ``.file_table``, ``.cells``) with ``to_arrow()`` and
        ``to_pandas()``; ``to_dict()`` is the ``dsv diff --json`` document.
        :meth:`file_diff` gives the file-level diff alone.

        >>> import dsv, os, tempfile
        >>> root = tempfile.mkdtemp()
        >>> os.makedirs(os.path.join(root, "img", "cat"))
        >>> for name in ("1.png", "2.png"):
        ...     open(os.path.join(root, "img", "cat", name), "wb").write(name.encode()) and None
        >>> repo = dsv.Repo.init(root); _ = repo.commit("v1")
        >>> os.makedirs(os.path.join(root, "img", "dog"))
        >>> os.rename(os.path.join(root, "img", "cat", "2.png"), os.path.join(root, "img", "dog", "2.png"))
        >>> _ = repo.commit("relabel 2.png")
        >>> from dsv.semantic.declaration import declaration_from_flags
        >>> d = repo.diff("HEAD~1", "HEAD", declaration=declaration_from_flags([], [], None, [], None, ["img/{label}/*"]))
        >>> d.relabels.to_pylist()
        [{'source': 'img/{label}/*', 'from': 'cat', 'to': 'dog', 'count': 1}]
        >>> d.classes.to_arrow().column("class").to_pylist()
        ['cat', 'dog']
        """
        return self.semantic_diff(old, new, declaration=declaration, by=by, rows=rows)

    def file_diff(self, old: str | None = None, new: str | None = None) -> "FileDiff":
        """File-level diff: ``old`` vs ``new``; a missing side is the working tree (default HEAD vs working tree)."""
        from dsv.manifest import diff_manifests, diff_tables, empty_entries

        if new is not None:
            a = self._manifest(self.resolve(old or "HEAD").commit)
            b = self._manifest(self.resolve(new).commit)
            return diff_manifests(a, b)
        head = self._repo.refs.head()
        if old is None and head.commit is None:
            return diff_tables(empty_entries(), self.worktree_table())
        base = self._manifest(self.resolve(old or "HEAD").commit).table()
        return diff_tables(base, self.worktree_table())

    def semantic_diff(
        self,
        old: str | None = None,
        new: str | None = None,
        *,
        declaration: "Declaration | None" = None,
        by: Sequence[str] = (),
        rows: int | None = 20,
        force_read: bool = False,
        strict: bool = True,
    ) -> "SemanticDiff":
        """Per-class and per-slice diff of the declared sample sources, plus the file-level diff.

        Sides are as in :meth:`diff`. Sources come from ``declaration`` or, by
        default, from ``dsv.toml`` on the newer side. ``rows`` bounds the changed
        cells reported per table (``None``: all, ``0``: none).
        """
        from dsv.api.semantic import empty_side, revision_side, run_semantic_diff, worktree_side
        from dsv.manifest import diff_manifests, diff_tables

        temp_files: list[str] = []
        try:
            if new is not None and old == "":
                # From nothing (a root commit in a changelog).
                a = empty_side()
                b = revision_side(self, new, temp_files, self._manifest(self.resolve(new).commit))
                fd = diff_tables(a.table, b.table)
            elif new is not None:
                # One Manifest object per side: chunks the diff reads are reused by sample sources.
                ma = self._manifest(self.resolve(old or "HEAD").commit)
                mb = self._manifest(self.resolve(new).commit)
                a = revision_side(self, old or "HEAD", temp_files, ma)
                b = revision_side(self, new, temp_files, mb)
                fd = diff_manifests(ma, mb)
            else:
                if old is None and self._repo.refs.head().commit is None:
                    a = empty_side()
                else:
                    a = revision_side(self, old or "HEAD", temp_files, self._manifest(self.resolve(old or "HEAD").commit))
                b = worktree_side(self)
                fd = diff_tables(a.table, b.table)
            return run_semantic_diff(self, a, b, fd, declaration, by=list(by), rows=rows, force_read=force_read, strict=strict)
        finally:
            for t in temp_files:
                try:
                    os.unlink(t)
                except OSError:
                    pass

    def changelog(
        self,
        spec: str | None = None,
        *,
        declaration: "Declaration | None" = None,
        by: Sequence[str] = (),
        rows: int | None = 0,
        force_read: bool = False,
    ) -> ChangelogResult:
        """Per commit in ``A..B`` (reachable from B, not from A), newest first: the commit and what it changed.

        ``spec`` is ``A..B``, ``A..`` (to HEAD), ``B`` (B's whole history) or ``None`` (HEAD's).
        Each step is diffed against its first parent (a root commit against nothing).
        """
        from dsv.api.results import ChangelogResult, LogEntry

        if spec and ".." in spec:
            old, _, new = spec.partition("..")
            new = new or "HEAD"
        else:
            old, new = "", spec or "HEAD"
        if new in ("HEAD", "@") and self._repo.refs.head().commit is None:
            return ChangelogResult(spec=spec)
        tip = self.resolve(new).commit_id
        stop: set[str] = set()
        if old:
            stop = {oid for oid, _ in self._repo.history.walk(self.resolve(old).commit_id)}
        refs = self._refs_by_commit()
        out = ChangelogResult(spec=spec)
        for oid, commit in self._repo.history.walk(tip):
            if oid in stop:
                continue
            parent = commit.parents[0] if commit.parents else ""
            # A step that cannot be diffed (an old malformed dsv.toml, a column not yet
            # declared) is reported in its warnings; the rest of the history still shows.
            d = self.semantic_diff(parent, oid, declaration=declaration, by=by, rows=rows, force_read=force_read, strict=False)
            d = type(d)(parent[:10] if parent else "(empty)", oid[:10], d.files, d.sources, d.file_changes, d.warnings)
            out.append((LogEntry(oid, commit, tuple(refs.get(oid, ()))), d))
        return out

    # -- checkout ------------------------------------------------------------------

    def checkout(
        self, rev: str | None = None, paths: Sequence[str] | None = None, *, force: bool = False, progress: Progress | None = None
    ) -> CheckoutResult:
        """Restore the working tree to ``rev``, or only ``paths`` from ``rev`` (HEAD when omitted).

        ``paths`` are relative to the repository root (the CLI converts paths given
        relative to the current folder). Without paths HEAD moves to ``rev`` (a
        branch name keeps HEAD on that branch; anything else detaches it); local
        changes to files that differ between HEAD and ``rev`` stop the checkout
        unless ``force``, other local changes are kept. With paths, as in git,
        those paths are restored whatever their local changes, and the result
        names what was overwritten.

        All or nothing for what can be checked in advance: objects, paths and
        obstacles are checked and every file is staged (verified) before the first
        change to the tree. If the switch itself is interrupted, ``.dsv/CHECKOUT``
        records it and running the same checkout again completes it.
        """
        from dsv.api.checkout import checkout

        return checkout(self, rev, paths, force=force, progress=progress)

    # -- branches and tags ---------------------------------------------------------

    def branches(self) -> list[BranchInfo]:
        """Every branch; ``current`` marks HEAD's."""
        from dsv.api.results import BranchInfo

        head = self._repo.refs.head()
        return [BranchInfo(n, c, n == head.branch) for n, c in self._repo.refs.list(HEADS).items()]

    def create_branch(self, name: str, rev: str = "HEAD", *, force: bool = False) -> BranchInfo:
        """Create branch ``name`` at ``rev``."""
        from dsv.api.results import BranchInfo

        check_ref_name(name)
        head = self._repo.refs.head()
        if force and head.branch == name:
            raise UsageError(f"cannot force-move the current branch '{name}'", hint="use 'dsv checkout' to move it")
        # Under the write lock: a concurrent gc must see the new ref before it prunes.
        with self._repo.write_lock():
            oid = self.resolve(rev).commit_id
            self._repo.refs.create(HEADS, name, oid, force=force)
        return BranchInfo(name, oid, head.branch == name)

    def delete_branch(self, name: str) -> str:
        """Delete branch ``name``; refuse the current branch."""
        if self._repo.refs.head().branch == name:
            raise UsageError(f"cannot delete the current branch '{name}'", hint="check out another branch first")
        if self._repo.refs.read(f"{HEADS}/{name}") is None:
            raise RefNotFoundError(name, "branch")
        return self._repo.refs.delete(HEADS, name)

    def tags(self) -> list[TagInfo]:
        """Every tag, with its annotation when it has one."""
        from dsv.api.results import TagInfo

        from dsv.history.documents import document_type, read_tag

        out = []
        for name, oid in self._repo.refs.list(TAGS).items():
            tag = None
            commit = oid
            try:
                if document_type(self._repo.store.read(oid)) == "tag":
                    tag = read_tag(self._repo.store, oid)
                    commit = tag.object
            except DsvError:
                pass
            out.append(TagInfo(name, oid, commit, tag))
        return out

    def create_tag(
        self, name: str, rev: str = "HEAD", *, message: str | None = None, meta: dict[str, str] | None = None, force: bool = False
    ) -> TagInfo:
        """Tag ``rev`` as ``name``: annotated (a stored tag object) when a message or metadata is given."""
        from dsv.api.results import TagInfo

        from dsv.history.objects import Tag, now

        check_ref_name(name)
        # Under the write lock: a concurrent gc must not prune the tag object before its ref exists.
        with self._repo.write_lock():
            commit_id = self.resolve(rev).commit_id
            if not force and self._repo.refs.read(f"{TAGS}/{name}") is not None:
                raise RefExistsError(name)
            tag = None
            oid = commit_id
            if message is not None or meta:
                from dsv.history.documents import parse_tag

                tagger, email = self._repo.author()
                document = Tag(object=commit_id, name=name, tagger=tagger, email=email, time=now(), message=message or "", meta=dict(meta or {})).to_json_bytes()
                writer = self._repo.store.begin_write()
                try:
                    oid = writer.add_bytes(document)
                    writer.commit()
                except BaseException:
                    writer.abort()
                    raise
                tag = parse_tag(document, what=f"tag {oid}")
            self._repo.refs.create(TAGS, name, oid, force=force)
        return TagInfo(name, oid, commit_id, tag)

    def delete_tag(self, name: str) -> str:
        """Delete tag ``name``."""
        if self._repo.refs.read(f"{TAGS}/{name}") is None:
            raise RefNotFoundError(name, "tag")
        return self._repo.refs.delete(TAGS, name)

    # -- metrics -------------------------------------------------------------------

    def add_metrics(
        self,
        rev: str,
        source: "str | os.PathLike[str] | bytes",
        *,
        name: str,
        meta: dict[str, str] | None = None,
        force: bool = False,
        predictions: "str | os.PathLike[str] | None" = None,
    ) -> "MetricsEntry":
        """Attach a metrics file (a path, or its bytes) to the commit ``rev`` as record ``name``.

        The file's format is detected (docs/metrics.md); a malformed file attaches
        nothing. An existing record of the same name is refused unless ``force``.
        ``predictions`` names a per-sample predictions table (Parquet or CSV) stored
        with the record, from which ``dsv audit`` ranks hard samples.
        """
        import datetime as _dt

        from dsv.metrics.formats import parse_metrics
        from dsv.metrics.records import MetricsEntry, attach, make_record

        if isinstance(source, bytes):
            data, label = source, "metrics"
        else:
            label = os.fspath(source)
            try:
                with open(label, "rb") as f:
                    data = f.read()
            except OSError as err:
                from dsv.base.errors import StorageError

                raise StorageError("read", label, err) from err
        metrics = parse_metrics(data, name=label)
        pred_bytes = pred_ref = None
        if predictions is not None:
            from dsv.metrics.predictions import read_predictions

            pred_label = os.fspath(predictions)
            try:
                with open(pred_label, "rb") as f:
                    pred_bytes = f.read()
            except OSError as err:
                from dsv.base.errors import StorageError

                raise StorageError("read", pred_label, err) from err
            pred_ref = read_predictions(pred_bytes, name=pred_label)
        with self._repo.write_lock():
            commit_id = self.resolve(rev).commit_id
            author, email = self._repo.author()
            # Full precision: records attached in the same second still order by time.
            stamp = _dt.datetime.now().astimezone()
            record = make_record(commit_id, name, metrics, author=author, email=email, meta=dict(meta or {}), time=stamp, predictions=pred_ref)
            oid = attach(self._repo.store, self._repo.refs, record, force=force, predictions=pred_bytes)
        return MetricsEntry(oid, record)

    def metrics(self, rev: str | None = None, *, name: str | None = None) -> "MetricsResult":
        """Metrics records of ``rev`` (or of every commit), oldest first; only ``name`` if given.

        A list, and a table in long form (``.to_pandas()``): one row per value,
        with the record's commit and name, the scope (``overall``, ``class``,
        ``slice``), the class or slice column and value, the metric and its value.
        """
        from dsv.metrics.records import MetricsResult, iter_records

        commit = self.resolve(rev).commit_id if rev is not None else None
        return MetricsResult(e for e in iter_records(self._repo.store, self._repo.refs, commit) if name is None or e.record.name == name)

    def metrics_changelog(
        self,
        spec: str | None = None,
        *,
        name: str | None = None,
        declaration: "Declaration | None" = None,
        by: Sequence[str] = (),
        source: str | None = None,
    ) -> list[tuple[LogEntry, "SemanticDiff", "MetricsComparison"]]:
        """:meth:`changelog` with, per step, the metrics of the parent and of the commit joined to its data changes.

        Each side uses its record named ``name``, or its newest record. Records are
        joined with one sample source: ``source``, else the one a record names
        (``source`` metadata), else the step's only one; with several, each
        source is shown apart (:func:`dsv.metrics.compare.compare`).
        """
        from dsv.metrics.compare import compare, pick
        from dsv.metrics.records import iter_records

        # Only the records of commits in the range are listed and read, each commit once.
        cache: dict[str, list["MetricsEntry"]] = {}

        def records_of(commit: str) -> list["MetricsEntry"]:
            if commit not in cache:
                cache[commit] = list(iter_records(self._repo.store, self._repo.refs, commit))
            return cache[commit]

        out = []
        seen_sources: set[str] = set()
        # Metrics need class counts on both sides, even of sources a step left unchanged.
        for entry, d in self.changelog(spec, declaration=declaration, by=by, force_read=True):
            parent = entry.commit.parents[0] if entry.commit.parents else None
            old = pick(records_of(parent), name) if parent else None
            new = pick(records_of(entry.id), name)
            seen_sources.update(s.name for s in d.sources)
            out.append((entry, d, compare(old, new, d, source=source)))
        if source is not None and out and source not in seen_sources:
            raise UsageError(f"--source {source}: no sample source of that name in {spec or 'HEAD'}", hint="sources: " + (", ".join(sorted(seen_sources)) or "none"))
        return out

    def check_declaration(self, rev: str | None = None) -> "DeclarationCheck":
        """``dsv check``: validate the ``dsv.toml`` of ``rev`` (default: the working tree) against its files."""
        from dsv.api.semantic import check_declaration

        return check_declaration(self, rev, self._manifest(self.resolve(rev).commit) if rev is not None else None)

    def current_version(self) -> "VersionInfo":
        """The checked-out version: commit, branch, tags naming it, and whether the tree is dirty."""
        from dsv.api.results import VersionInfo

        head = self._repo.refs.head()
        tags = []
        if head.commit:
            tags = [t.name for t in self.tags() if t.commit == head.commit]
        dirty = not self.status().clean
        return VersionInfo(head.commit, head.branch, tuple(tags), dirty, self.root)

    # -- maintenance ---------------------------------------------------------------

    def fsck(self, progress: Progress | None = None, *, repair: bool = False) -> "FsckReport":
        """Re-hash every object and check every reference; ``repair`` rebuilds indexes and restores objects from the working tree."""
        from dsv.maintenance import fsck

        return fsck(self._repo, progress, repair=repair)

    # -- file-system monitor -------------------------------------------------------------

    def fsmonitor_on(self) -> dict[str, object]:
        """Turn the file-system monitor on (``core.fsmonitor``) and start its daemon; its status.

        Linux only (inotify). ``status`` and ``commit`` then look only at the paths
        the daemon saw change (docs/fsmonitor.md).
        """
        from dsv.worktree import fsmonitor

        repo = self._repo
        before = repo.settings.fsmonitor
        # On first: a daemon that has to wait for a stopping one's lock checks the setting once it has it.
        repo.set_config({"core.fsmonitor": True})
        try:
            try:
                fsmonitor.start(self.root, repo.layout.dsv)
            except fsmonitor.MonitorUnavailable as err:
                raise WorktreeError(f"cannot use a file-system monitor here: {err}", hint="status and commit keep walking the tree") from None
            if not fsmonitor.wait_until_running(repo.layout.dsv):
                log = os.path.join(fsmonitor.monitor_dir(repo.layout.dsv), fsmonitor.LOG)
                raise WorktreeError("the file-system monitor did not start", hint=f"its log is {log}; status and commit keep walking the tree")
        except BaseException:
            if not before:
                repo.set_config({"core.fsmonitor": False})
            raise
        return self.fsmonitor_status()

    def fsmonitor_off(self) -> dict[str, object]:
        """Turn the monitor off and stop its daemon; ``status`` walks the tree again."""
        from dsv.worktree import fsmonitor

        repo = self._repo
        repo.set_config({"core.fsmonitor": False})
        fsmonitor.request(repo.layout.dsv, "stop")
        try:
            os.unlink(os.path.join(fsmonitor.monitor_dir(repo.layout.dsv), fsmonitor.STATE))
        except OSError:
            pass
        return self.fsmonitor_status()

    def fsmonitor_status(self) -> dict[str, object]:
        """``enabled`` (the setting), ``running``, and the daemon's ``pid``, ``watches`` and ``problem``."""
        from dsv.worktree import fsmonitor

        from dsv.worktree.ignore import IGNORE_FILE

        reply = fsmonitor.request(self._repo.layout.dsv, "status") or {}
        problem = reply.get("problem") or fsmonitor.local_problem(self.root, self._repo.layout.dsv, ignore_file=IGNORE_FILE)
        return {
            "enabled": self._repo.settings.fsmonitor,
            "running": bool(reply),
            "pid": reply.get("pid"),
            "watches": reply.get("watches"),
            "problem": problem,
        }

    def gc(self, grace_seconds: float = 14 * 86400) -> "GcReport":
        """Delete unreachable objects older than the grace period."""
        from dsv.maintenance import gc

        if grace_seconds < 0:
            raise UsageError("grace period must not be negative")
        return gc(self._repo, grace_seconds)

    # -- audit, drift and report (issue 12) ------------------------------------------
    # Kept apart from the rest of the porcelain: each method delegates to its own module.

    def audit(
        self,
        rev: str | None = None,
        *,
        source: str | None = None,
        min_samples: int | None = None,
        limit: int | None = None,
        history: int | None = None,
        metrics_name: str | None = None,
        fail_on: str | None = None,
    ) -> "AuditReport":
        """``dsv audit``: label conflicts, split leakage, duplicates, coverage and hard samples at ``rev``.

        ``rev`` ``None`` audits the working tree. Settings left ``None`` come from
        the ``[audit]`` table of ``dsv.toml`` (docs/audit.md); ``fail_on``
        (``conflicts,leakage,imbalance>10``) fills ``checks`` and ``failed``.
        """
        from dsv.api.audit import AuditOptions, run_audit

        options = AuditOptions(source, min_samples, limit, history, metrics_name, fail_on)
        return run_audit(self, rev, options)

    def audit_changelog(
        self, spec: str | None = None, *, source: str | None = None, min_samples: int | None = None, limit: int | None = None
    ) -> list[tuple[LogEntry, "AuditStep"]]:
        """``dsv changelog --audit``: per commit in ``A..B``, newest first, the audit findings that appeared and disappeared."""
        from dsv.api.audit import audit_changelog

        return audit_changelog(self, spec, source=source, min_samples=min_samples, limit=limit)

    def drift(
        self,
        old: str | None = None,
        new: str | None = None,
        *,
        psi: float | None = None,
        ks: float | None = None,
        bins: int | None = None,
        declaration: "Declaration | None" = None,
    ) -> "DriftReport":
        """``dsv diff --drift``: per column (and per slice) drift of each table source from ``old`` to ``new``,
        and of each ``[[drift.pairs]]`` reference/current pair at ``new``."""
        from dsv.api.drift import run_drift

        return run_drift(self, old, new, psi=psi, ks=ks, bins=bins, declaration=declaration)

    def report(self, spec: str, *, metrics_name: str | None = None, thumbnails: int = 6) -> "ReportData":
        """``dsv report A..B``: everything a reviewer needs about a data change, as one result (rendered by dsv.report)."""
        from dsv.api.reporting import build_report

        return build_report(self, spec, metrics_name=metrics_name, thumbnails=thumbnails)


def _repo_relative(path: str) -> str:
    """Normalise an API path argument (relative to the root) and check it is safe."""
    from dsv.worktree.paths import check_manifest_path

    p = path.strip("/")
    return check_manifest_path(p) if p and p != "." else ""
