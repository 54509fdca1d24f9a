"""Porcelain for ``dsv audit`` and ``dsv changelog --audit``: pick the versions, load each source, run the engine.

The engine (:mod:`dsv.semantic.audit`) is pure functions over DuckDB tables;
this module decides which files each version has (through the diff's sides),
which commits the history check walks, and which metrics record's
predictions give the hard samples.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsv.base.errors import DsvError, UsageError
from dsv.semantic.declaration import Declaration, FolderSource, TableSource
from dsv.semantic.findings import AuditReport, FailCheck, FindingKind, SourceAudit

if TYPE_CHECKING:
    import duckdb

    from dsv.api.repo import Repo
    from dsv.api.semantic import Side
    from dsv.metrics.records import MetricsEntry
    from dsv.semantic.audit import Samples


@dataclass(frozen=True)
class AuditOptions:
    """Settings of one audit; ``None`` takes the ``[audit]`` value of ``dsv.toml`` (docs/audit.md)."""

    source: str | None = None
    min_samples: int | None = None
    limit: int | None = None
    history: int | None = None
    metrics_name: str | None = None
    fail_on: str | None = None
    with_ids: bool = False


# -- --fail-on ------------------------------------------------------------------------------------

_FAIL = re.compile(r"^\s*([a-z-]+)\s*(?:>\s*([0-9]+(?:\.[0-9]+)?))?\s*$")
FAIL_KINDS = tuple(k.value for k in FindingKind)


def parse_fail_on(spec: str | None) -> list[tuple[str, float | None]]:
    """``conflicts,leakage,imbalance>10`` -> ``[(kind, threshold)]``.

    A kind alone fails on any finding (threshold ``None``, meaning 0); ``KIND>N``
    above N. ``imbalance`` is a ratio, so it needs its number.
    """
    if spec is None:
        return []
    out = []
    for part in spec.split(","):
        if not part.strip():
            continue
        m = _FAIL.match(part)
        if not m or m.group(1) not in FAIL_KINDS:
            raise UsageError(f"--fail-on: cannot read {part.strip()!r}", hint=f"use KIND or KIND>N with KIND one of {', '.join(FAIL_KINDS)}")
        kind, n = m.group(1), m.group(2)
        if kind == FindingKind.IMBALANCE.value and n is None:
            raise UsageError("--fail-on: imbalance needs a ratio, e.g. imbalance>10")
        out.append((kind, float(n) if n is not None else None))
    if not out:
        # `--fail-on "$CHECKS"` with an empty variable would otherwise pass CI without checking anything.
        raise UsageError(f"--fail-on: no check in {spec!r}", hint=f"use KIND or KIND>N with KIND one of {', '.join(FAIL_KINDS)}")
    return out


def evaluate(checks: list[tuple[str, float | None]], overall: dict[str, Any]) -> tuple[FailCheck, ...]:
    """Each check against the overall findings: fails when the count (or ratio) exceeds the threshold (default 0)."""
    out = []
    for kind, n in checks:
        value = overall.get(kind)
        spec = kind if n is None else f"{kind}>{n:g}"
        failed = value is not None and value > (n if n is not None else 0)
        out.append(FailCheck(spec, None if value is None else float(value), failed))
    return tuple(out)


# -- versions ------------------------------------------------------------------------------------------


class Version:
    """One version to audit: a side (revision or working tree) and its name in reports."""

    def __init__(self, repo: "Repo", commit: str | None, temp_files: list[str]) -> None:
        from dsv.api.semantic import revision_side, worktree_side
        from dsv.manifest import read_manifest

        self.commit = commit
        self.manifest = None
        if commit is None:
            self.side: Side = worktree_side(repo)
            self.name = "working tree"
        else:
            c = repo.repository.history.commit(commit)
            self.manifest = read_manifest(repo.repository.store, c.manifest)
            self.side = revision_side(repo, commit[:10], temp_files, self.manifest)
            self.name = commit

    def content_key(self, source: FolderSource | TableSource) -> Any:
        """What a source's samples at this version depend on, when that is cheap to know (else None).

        A table without ``file``: its object id. A folder: the ids of the manifest chunks
        that lie wholly below the pattern's literal prefix (chunks are content-addressed,
        so equal ids mean equal entries), and the ``(path, oid)`` entries below the prefix
        in the one or two chunks at its edges (they also hold other files, such as a
        ``dsv.toml`` that changed).
        """
        from dsv.api.semantic import _literal_prefix

        if isinstance(source, TableSource):
            return self.side.oid_of(source.path) if not source.file else None
        if self.manifest is None:
            return None
        prefix = _literal_prefix(source.pattern)
        root = self.manifest.root
        lo, hi = prefix, prefix + "0"  # "0" sorts right after "/"
        key: list[Any] = []
        for c, f, last in zip(self.manifest.chunk_ids(), root.column("first").to_pylist(), root.column("last").to_pylist()):
            if prefix and (last < lo or f >= hi):
                continue
            if not prefix or (f >= prefix + "/" and last < hi):
                key.append(c)
                continue
            entries = self.manifest.load_chunk(c)
            paths = entries.column("path").to_pylist()
            oids = entries.column("oid").to_pylist()
            key.append(tuple((p, o) for p, o in zip(paths, oids) if p == prefix or p.startswith(prefix + "/")))
        return tuple(key)


def load_samples(con: "duckdb.DuckDBPyConnection", version: Version, source: FolderSource | TableSource, tag: str) -> "Samples | None":
    """A source's samples at one version, or None where it has none (a table not in this version)."""
    from dsv.api.semantic import _literal_prefix
    from dsv.semantic import audit

    side = version.side
    if isinstance(source, FolderSource):
        entries = side.under(_literal_prefix(source.pattern)).select(["path", "oid"])
        smp = audit.load_folder(con, tag, entries, source)
        return smp if smp.rows else None
    if side.oid_of(source.path) is None:
        return None
    disk = side.disk_path(source.path)
    if disk is None or os.path.getsize(disk) == 0:
        return None
    files = side.table.select(["path", "oid"]) if source.file else None
    return audit.load_table(con, tag, disk, source, side.name, files)


def _first_parents(repo: "Repo", start: str, n: int) -> list[str]:
    """``start`` and its first parents, at most ``n`` commits, oldest first."""
    out = [start]
    cur = start
    while len(out) < n:
        parents = repo.repository.history.commit(cur).parents
        if not parents:
            break
        cur = parents[0]
        out.append(cur)
    return out[::-1]


# -- the audit --------------------------------------------------------------------------------------------


def run_audit(repo: "Repo", rev: str | None, options: AuditOptions, declaration: Declaration | None = None) -> AuditReport:
    """Audit every declared source (or ``options.source``) at ``rev`` (``None``: the working tree)."""
    from dsv.api.semantic import declaration_of
    from dsv.semantic import engine

    fail_on = parse_fail_on(options.fail_on)  # a typo stops the command before any work
    temp_files: list[str] = []
    try:
        head = repo.repository.refs.head().commit
        commit = repo.resolve(rev).commit_id if rev is not None else None
        current = Version(repo, commit, temp_files)
        decl = declaration if declaration is not None else declaration_of(current.side)
        sources = select_sources(decl, options.source, current.side.name)
        settings: dict[str, Any] = {
            "min_samples": decl.audit.min_samples if options.min_samples is None else options.min_samples,
            "limit": decl.audit.limit if options.limit is None else options.limit,
            "history": decl.audit.history if options.history is None else options.history,
        }
        warnings: list[str] = []
        record, rec_warn = pick_predictions(repo, commit if rev is not None else head, options.metrics_name)
        warnings += rec_warn
        if record is not None:
            settings["metrics"] = record.record.name
        con = engine.connect(repo.repository.scratch_dir)
        try:
            results = []
            for i, source in enumerate(sources):
                results.append(
                    audit_one(
                        repo, con, current, source, f"a{i}", settings, record=record, history_from=commit or head,
                        temp_files=temp_files, warnings=warnings, want_ids=options.with_ids,
                    )
                )
        finally:
            con.close()
        report = AuditReport(current.name if rev is None else rev, commit, tuple(results), (), tuple(warnings), settings)
        checks = evaluate(fail_on, report.overall())
        if not options.with_ids:
            results = [_without_ids(s) for s in results]
        return AuditReport(report.revision, commit, tuple(results), checks, tuple(warnings), settings)
    finally:
        for t in temp_files:
            try:
                os.unlink(t)
            except OSError:
                pass


def _without_ids(s: SourceAudit) -> SourceAudit:
    import dataclasses

    return dataclasses.replace(s, ids={})


def select_sources(decl: Declaration, name: str | None, where: str) -> list[FolderSource | TableSource]:
    """The declared sources, or the one named ``name``."""
    sources: list[FolderSource | TableSource] = [*decl.folders, *decl.tables]
    if not sources:
        raise UsageError(f"no sample source is declared at {where}", hint="declare [[folders]] or [[tables]] in dsv.toml (docs/diff-format.md)")
    if name is None:
        return sources
    chosen = [s for s in sources if s.display_name == name]
    if not chosen:
        raise UsageError(f"--source {name}: no sample source of that name at {where}", hint="sources: " + ", ".join(s.display_name for s in sources))
    return chosen


def audit_one(
    repo: "Repo",
    con: "duckdb.DuckDBPyConnection",
    current: Version,
    source: FolderSource | TableSource,
    tag: str,
    settings: dict[str, Any],
    *,
    record: "MetricsEntry | None",
    history_from: str | None,
    temp_files: list[str],
    warnings: list[str],
    want_ids: bool = False,
) -> SourceAudit:
    """Audit one source at ``current``, with its history and hard samples."""
    from dsv.semantic import audit
    from dsv.semantic.findings import HistoryConflicts

    smp = load_samples(con, current, source, tag)
    kind = "folder" if isinstance(source, FolderSource) else "table"
    if smp is None:
        warnings.append(f"{source.display_name}: no samples at {current.side.name}")
        return SourceAudit(source.display_name, kind)
    history = None
    depth = int(settings["history"])
    if depth > 1 and history_from is not None:
        history = audit_history(repo, con, current, source, smp, tag, depth, history_from, int(settings["limit"]), temp_files, warnings)
    elif depth > 1:
        history = (HistoryConflicts(1, 0, ()), {})
    hard = None
    if record is not None and record.record.predictions is not None:
        wanted = record.record.meta.get("source")
        if wanted is None or wanted == source.display_name:
            hard = predictions_for(repo, con, smp, record, tag, int(settings["limit"]), temp_files, warnings)
    result = audit.audit_source(
        con, smp, min_samples=int(settings["min_samples"]), limit=int(settings["limit"]), history=history, hard=hard, want_ids=want_ids
    )
    if history is not None and want_ids:
        result.ids[FindingKind.HISTORY_CONFLICTS.value] = history[1]
    return result


def audit_history(
    repo: "Repo",
    con: "duckdb.DuckDBPyConnection",
    current: Version,
    source: FolderSource | TableSource,
    smp: "Samples",
    tag: str,
    depth: int,
    start: str,
    limit: int,
    temp_files: list[str],
    warnings: list[str],
) -> Any:
    """Labels of each content along the first-parent history ending at ``current`` (``depth`` versions in all)."""
    from dsv.semantic import audit

    hist = audit.history_table(con, tag, source)
    commits = _first_parents(repo, start, depth if current.commit is not None else depth - 1)
    if current.commit is not None:
        commits = commits[:-1]  # the current version is added below, from the samples already loaded
    if not commits:
        from dsv.semantic.findings import HistoryConflicts

        return HistoryConflicts(1, 0, ()), {}  # a single version: nothing can go back and forth
    names: list[str] = []
    last: tuple[int, Any] | None = None  # (version, what its samples depend on)
    current_key = current.content_key(source)
    current_load: int | None = None
    for cid in commits:
        v = len(names)
        version = Version(repo, cid, temp_files)
        try:
            # Samples that cannot have changed are not read again: a table whose bytes are the same
            # (and names no files), a folder whose manifest chunks under its prefix are the same.
            key = version.content_key(source)
            if key is not None and last is not None and last[1] == key:
                audit.copy_history(con, hist, v, last[0])
                last = (v, key)
                names.append(cid)
                continue
            if key is not None and key == current_key:
                # The same samples as the audited version, which are loaded already.
                if current_load is None:
                    audit.add_history(con, hist, v, smp)
                    current_load = v
                else:
                    audit.copy_history(con, hist, v, current_load)
                last = (v, key)
                names.append(cid)
                continue
            old = load_samples(con, version, source, f"{tag}h{v}")
        except DsvError as err:
            warnings.append(f"{source.display_name}: history: skipped {cid[:10]} ({err})")
            continue
        if old is None:
            continue
        audit.add_history(con, hist, v, old)
        con.execute(f"DROP TABLE IF EXISTS {old.table}")
        last = (v, key) if key is not None else None
        names.append(cid)
    if current_load is None:
        audit.add_history(con, hist, len(names), smp)
    else:
        audit.copy_history(con, hist, len(names), current_load)
    names.append(current.name)
    return audit.history_flips(con, hist, names, smp, limit)


# -- predictions ------------------------------------------------------------------------------------------------


def pick_predictions(repo: "Repo", commit: str | None, name: str | None) -> tuple["MetricsEntry | None", list[str]]:
    """The metrics record whose predictions give hard samples: ``name``, else the newest with predictions."""
    if commit is None:
        return None, []
    entries = repo.metrics(commit)
    if name is not None:
        named = [e for e in entries if e.record.name == name]
        if not named:
            raise UsageError(f"--metrics-name {name}: no metrics record of that name on {commit[:10]}", hint=f"see 'dsv metrics list {commit[:10]}'")
        if named[-1].record.predictions is None:
            return None, [f"metrics record {name!r} has no predictions: no hard samples (attach them with 'dsv metrics add ... --predictions FILE')"]
        return named[-1], []
    with_pred = [e for e in entries if e.record.predictions is not None]
    return (with_pred[-1] if with_pred else None), []


def predictions_for(
    repo: "Repo",
    con: "duckdb.DuckDBPyConnection",
    smp: "Samples",
    record: "MetricsEntry",
    tag: str,
    limit: int,
    temp_files: list[str],
    warnings: list[str],
) -> Any:
    """Hard samples of one source from a record's predictions table."""
    from dsv.semantic import audit

    pred = record.record.predictions
    assert pred is not None
    store = repo.repository.store
    path = os.path.join(repo.repository.scratch_dir, f"predictions-{os.getpid()}-{uuid.uuid4().hex}")
    with open(path, "wb") as f:
        f.write(store.read(pred.oid))
    temp_files.append(path)
    columns = audit.load_predictions(con, tag, path, pred.format)
    try:
        hard = audit.hard_samples(con, smp, tag, columns, record=record.record.name, commit=record.record.commit, limit=limit)
    except audit.DuplicatePredictions as dup:
        warnings.append(
            f"{smp.name}: the predictions of {record.record.name!r} give {dup.count} sample(s) several rows "
            f"(e.g. {dup.example}); one row per sample is expected, no hard samples"
        )
        return None
    if hard is None:
        warnings.append(
            f"{smp.name}: the predictions of {record.record.name!r} have no column matching its key "
            f"({', '.join(smp.keys) if smp.keys else 'path'}); no hard samples"
        )
    elif hard.matched == 0:
        warnings.append(f"{smp.name}: no prediction of {record.record.name!r} matches a labelled sample")
    else:
        matched, unknown, examples = audit.unknown_predicted(con, tag)
        if matched and unknown == matched:
            warnings.append(
                f"{smp.name}: no predicted class of {record.record.name!r} is a class of the source "
                f"(predicted: {', '.join(examples)}); write predicted as the dataset writes classes"
            )
    return hard


# -- changelog --audit ---------------------------------------------------------------------------------------


def audit_changelog(
    repo: "Repo", spec: str | None, *, source: str | None, min_samples: int | None, limit: int | None
) -> list[tuple[Any, Any]]:
    """Per commit in ``spec`` (newest first): findings that appeared and disappeared against its first parent.

    Each version is audited once with its own ``dsv.toml`` (as the changelog diffs
    each step with that step's declaration), without history and predictions;
    findings are matched by source name, kind and subject (docs/audit.md).
    """
    import dataclasses

    from dsv.semantic.findings import diff_findings

    entries = _range(repo, spec)
    cache: dict[str, tuple[tuple[SourceAudit, ...], list[str]]] = {}
    shown_limit = 20 if limit is None else limit

    def audit_at(commit: str) -> tuple[tuple[SourceAudit, ...], list[str]]:
        if commit not in cache:
            try:
                opts = AuditOptions(source=None, min_samples=min_samples, limit=limit, history=0, with_ids=True)
                report = run_audit(repo, commit, opts)
                found = tuple(s for s in report.sources if source is None or s.name == source)
                cache[commit] = (found, list(report.warnings))
            except UsageError as err:
                cache[commit] = ((), [] if "no sample source" in err.message else [str(err)])
            except DsvError as err:
                cache[commit] = ((), [str(err)])
        return cache[commit]

    out = []
    for entry in entries:
        new, warn_new = audit_at(entry.id)
        parent = entry.commit.parents[0] if entry.commit.parents else None
        old, _ = audit_at(parent) if parent else ((), [])
        step = diff_findings(old, new, limit=shown_limit)
        out.append((entry, dataclasses.replace(step, warnings=tuple(warn_new))))
    return out


def _range(repo: "Repo", spec: str | None) -> list[Any]:
    """The commits of ``A..B`` (reachable from B, not A), newest first, as log entries."""
    from dsv.api.results import LogEntry

    if spec and ".." in spec:
        old, _, new = spec.partition("..")
        new = new or "HEAD"
    else:
        old, new = "", spec or "HEAD"
    if new in ("HEAD", "@") and repo.repository.refs.head().commit is None:
        return []
    tip = repo.resolve(new).commit_id
    stop = {oid for oid, _ in repo.repository.history.walk(repo.resolve(old).commit_id)} if old else set()
    refs = repo._refs_by_commit()
    return [LogEntry(oid, c, tuple(refs.get(oid, ()))) for oid, c in repo.repository.history.walk(tip) if oid not in stop]
