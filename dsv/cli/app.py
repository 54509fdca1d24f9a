"""The click commands: parse arguments, call :class:`dsv.Repo`, render results."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from dsv.base.errors import UsageError
from dsv.cli.progress import TerminalProgress
from dsv.cli.render import color, emit_json, human_size, plural, quote_path, short, show_status, warn

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _repo(ctx: click.Context) -> Any:  # a dsv.api.Repo (imported lazily: --help stays fast)
    from dsv.api import Repo

    repo = Repo(ctx.obj["cwd"])
    if repo.repository.settings.server:
        from dsv.cli.server import ensure_running

        ensure_running(repo.root, repo.repository.layout.dsv)  # for the next command (docs/server.md)
    return repo


def _progress(ctx: click.Context) -> TerminalProgress:
    return TerminalProgress(enabled=None if not ctx.obj["quiet"] else False)


def _time(t: Any) -> str:
    """A commit, tag or metrics time in text: ISO 8601 to the second, with its UTC offset (JSON keeps it whole)."""
    return str(t.replace(microsecond=0).isoformat())


def _print_warnings(items: Sequence[str]) -> None:
    for w in items:
        warn(w)


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (shape in docs/cli.md).")


def source_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The sample-source flags shared by diff and changelog; they arrive as one ``decl`` argument."""
    options = [
        click.option("--table", "tables", multiple=True, metavar="PATH", help="Annotation table to diff as samples (instead of dsv.toml)."),
        click.option("--key", "keys", multiple=True, metavar="COL", help="Key column(s) of --table; repeatable."),
        click.option("--label", metavar="COL", help="Class column of --table."),
        click.option("--slice", "slices", multiple=True, metavar="COL", help="Slice column(s) of --table; repeatable."),
        click.option("--file", "file_col", metavar="COL", help="Column of --table naming each sample's file."),
        click.option("--folder", "folders", multiple=True, metavar="PATTERN", help="Folder source pattern, e.g. 'images/{split}/{label}/*'."),
        click.option("--by", multiple=True, metavar="SLICE", help="Also break classes down within each value of SLICE."),
    ]

    @functools.wraps(f)
    def wrapper(*args: Any, tables: tuple[str, ...], keys: tuple[str, ...], label: str | None, slices: tuple[str, ...], file_col: str | None, folders: tuple[str, ...], **kwargs: Any) -> Any:
        decl = None
        if tables or keys or label or slices or file_col or folders:
            # Only then: the declaration models cost pydantic's import.
            from dsv.semantic.declaration import declaration_from_flags

            decl = declaration_from_flags(list(tables), list(keys), label, list(slices), file_col, list(folders))
        return f(*args, decl=decl, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


@click.group(context_settings=CONTEXT)
@click.option("-C", "cwd", default=".", metavar="PATH", help="Run as if dsv was started in PATH.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
@click.version_option(package_name="dsv", prog_name="dsv")
@click.pass_context
def cli(ctx: click.Context, cwd: str, quiet: bool, debug: bool) -> None:
    """dsv: git-style version control for machine-learning datasets.

    Snapshots of a data folder live in .dsv/ beside it. Commit after each data
    edit, diff and check out any version, tag the versions experiments use.
    """
    ctx.ensure_object(dict)
    if cwd != ".":
        # Like git -C: every path argument is then relative to PATH.
        try:
            os.chdir(cwd)
        except OSError as err:
            raise UsageError(f"cannot change to folder {cwd!r}: {err.strerror}") from err
    ctx.obj.update(cwd=".", quiet=quiet, debug=debug)


@cli.command()
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.pass_context
def init(ctx: click.Context, path: str) -> None:
    """Create an empty repository in PATH (default: here)."""
    from dsv.api import Repo

    repo = Repo.init(os.path.join(ctx.obj["cwd"], path))
    click.echo(f"Initialized empty dsv repository in {os.path.join(repo.root, '.dsv')}")


@cli.command()
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show what changed in the working tree since the last commit."""
    show_status(_repo(ctx).status(progress=_progress(ctx)), as_json)


@cli.command()
@click.option("-m", "--message", required=True, help="Why the data changed.")
@click.option("--allow-empty", is_flag=True, help="Commit even when nothing changed.")
@json_option
@click.pass_context
def commit(ctx: click.Context, message: str, allow_empty: bool, as_json: bool) -> None:
    """Snapshot the whole working tree (respecting .dsvignore) as a new commit."""
    res = _repo(ctx).commit(message, allow_empty=allow_empty, progress=_progress(ctx))
    _print_warnings(res.warnings)
    if as_json:
        emit_json(res.to_dict())
        return
    s = res.commit.summary
    where = res.branch or "detached HEAD"
    click.echo(f"[{where} {short(res.id)}] {res.commit.message.splitlines()[0]}")
    click.echo(
        f" {s.files} files, {human_size(s.bytes)}: {s.added} added, {s.removed} removed, {s.modified} modified, {s.moved} moved"
    )


def _commit_lines(entry_id: str, c, refs: Sequence[str]) -> list[str]:
    decor = f" ({', '.join(refs)})" if refs else ""
    lines = [color(f"commit {entry_id}", "yellow") + decor]
    if len(c.parents) > 1:
        lines.append("Merge: " + " ".join(short(p) for p in c.parents))
    lines.append(f"Author: {c.author} <{c.email}>")
    lines.append(f"Date:   {_time(c.time)}")
    lines.append("")
    lines.extend("    " + line for line in c.message.splitlines() or [""])
    s = c.summary
    lines.append("")
    lines.append(f"    {s.files} files, {human_size(s.bytes)} ({s.added} added, {s.removed} removed, {s.modified} modified, {s.moved} moved)")
    return lines


@cli.command()
@click.argument("rev", default="HEAD")
@click.option("-n", "--max-count", type=click.IntRange(min=0), default=None, help="Show at most N commits.")
@click.option("--oneline", is_flag=True, help="One line per commit.")
@click.option("--metrics", "with_metrics", is_flag=True, help="Headline metrics of each commit's records.")
@json_option
@click.pass_context
def log(ctx: click.Context, rev: str, max_count: int | None, oneline: bool, with_metrics: bool, as_json: bool) -> None:
    """Show the history from REV (default HEAD), newest first."""
    repo = _repo(ctx)
    entries = repo.log(rev, limit=max_count)
    records: dict[str, list] = {}
    if with_metrics:
        for m in repo.metrics():
            records.setdefault(m.record.commit, []).append(m)
    if as_json:
        out = entries.to_dict()
        if with_metrics:
            for d, e in zip(out, entries):
                d["metrics"] = [m.to_dict(values=False) | {"overall": dict(m.record.overall)} for m in records.get(e.id, [])]
        emit_json(out)
        return
    for i, e in enumerate(entries):
        if oneline:
            decor = f" ({', '.join(e.refs)})" if e.refs else ""
            head = f"{color(short(e.id), 'yellow')}{decor} {e.commit.message.splitlines()[0] if e.commit.message else ''}"
            if with_metrics and records.get(e.id):
                latest = records[e.id][-1].record
                head += f"  [{latest.name}: {latest.summary()}]"
            click.echo(head)
            continue
        if i:
            click.echo("")
        click.echo("\n".join(_commit_lines(e.id, e.commit, e.refs)))
        for m in records.get(e.id, []):
            click.echo(f"    metrics {m.record.name}: {m.record.summary()}")


@cli.command()
@click.argument("rev", default="HEAD")
@json_option
@click.pass_context
def show(ctx: click.Context, rev: str, as_json: bool) -> None:
    """Show one commit or tag: message, author, time, parents, tag metadata, file counts and sizes."""
    repo = _repo(ctx)
    res = repo.show(rev)
    attached = repo.metrics(res.id)
    if as_json:
        emit_json(res.to_dict() | {"metrics": [m.to_dict(values=False) | {"overall": dict(m.record.overall)} for m in attached]})
        return
    if res.tag_name:
        click.echo(color(f"tag {res.tag_name}", "yellow"))
        if res.tag is not None:
            click.echo(f"Tagger: {res.tag.tagger} <{res.tag.email}>")
            click.echo(f"Date:   {_time(res.tag.time)}")
            if res.tag.message:
                click.echo("")
                click.echo("\n".join("    " + line for line in res.tag.message.splitlines()))
            for k, v in res.tag.meta.items():
                click.echo(f"    {k}={v}")
        click.echo("")
    click.echo("\n".join(_commit_lines(res.id, res.commit, res.refs)))
    if res.commit.parents:
        click.echo("    parents: " + " ".join(res.commit.parents))
    click.echo(f"    manifest: {res.commit.manifest}")
    for m in attached:
        meta = " ".join(f"{k}={v}" for k, v in m.record.meta.items())
        click.echo(f"    metrics {m.record.name}: {m.record.summary()}" + (f" [{meta}]" if meta else ""))


def _rows_option(value: str | None) -> int | None:
    """``--rows``: absent 0, bare 20, a number, or ``all`` (None)."""
    if value is None:
        return 0
    if value == "all":
        return None
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"--rows takes a number or 'all', got {value!r}") from None
    if n < 0:
        raise UsageError("--rows must not be negative")
    return n


@cli.command()
@click.argument("old", required=False)
@click.argument("new", required=False)
@click.option("--stat", "stat_only", is_flag=True, help="Only counts (no list of files).")
@click.option("--exit-code", is_flag=True, help="Exit 1 when there are differences.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "md"]), default="text", show_default=True, help="Output format.")
@json_option
@source_options
@click.option("--rows", "rows", is_flag=False, flag_value="20", default=None, metavar="[N|all]", help="List changed cells (20 by default, or N, or all).")
@click.option("--files/--no-files", "semantic_only", default=True, help="With sources: also list changed files (text).")
@click.option("--drift", "with_drift", is_flag=True, help="Also measure per-column drift of table sources (PSI, KS, new categories).")
@click.option("--psi", "psi", type=click.FloatRange(min=0), default=None, metavar="X", help="With --drift: flag PSI above X (dsv.toml [drift], default 0.2).")
@click.option("--ks", "ks", type=click.FloatRange(min=0, max=1), default=None, metavar="X", help="With --drift: flag a KS statistic above X (default 0.1).")
@click.option("--bins", "bins", type=click.IntRange(min=2, max=1000), default=None, metavar="N", help="With --drift: quantile bins of numeric PSI (default 10).")
@click.pass_context
def diff(
    ctx: click.Context,
    old: str | None,
    new: str | None,
    stat_only: bool,
    exit_code: bool,
    fmt: str,
    as_json: bool,
    decl: Any,
    by: tuple[str, ...],
    rows: str | None,
    semantic_only: bool,
    with_drift: bool,
    psi: float | None,
    ks: float | None,
    bins: int | None,
) -> None:
    """Show what changed between OLD and NEW: files, and per class and slice of the samples.

    No arguments: HEAD against the working tree. One: OLD against the working tree.
    Samples are declared in dsv.toml (newer side) or with --table/--folder.
    With --drift, also the per-column drift of table sources; --exit-code then exits 1 on drift.
    """
    from dsv.cli.diffrender import md_safe, render_markdown, render_text

    if not with_drift and (psi is not None or ks is not None or bins is not None):
        raise UsageError("--psi, --ks and --bins go with --drift")
    repo = _repo(ctx)
    d = repo.semantic_diff(old, new, declaration=decl, by=by, rows=_rows_option(rows))
    _print_warnings(d.warnings)
    drift = repo.drift(old, new, psi=psi, ks=ks, bins=bins, declaration=decl) if with_drift else None
    if drift is not None:
        _print_warnings(drift.warnings)
    if as_json:
        fmt = "json"
    if fmt == "json":
        emit_json(d.to_dict() | ({"drift": drift.to_dict()} if drift is not None else {}))
    else:
        lines = render_markdown(d) if fmt == "md" else render_text(d, stat_only=stat_only or (bool(d.sources) and not semantic_only))
        if drift is not None:
            from dsv.cli.driftrender import render_drift

            lines += render_drift(drift, markdown=fmt == "md")
        if fmt == "md":
            lines = md_safe(lines)
        click.echo("\n".join(lines))
    if exit_code and (drift.flagged if drift is not None else d.changed):
        ctx.exit(1)


@cli.command()
@click.argument("spec", required=False, metavar="[A..B]")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "md"]), default="text", show_default=True, help="Output format.")
@json_option
@source_options
@click.option("--metrics", "with_metrics", is_flag=True, help="Put metric deltas (attached with 'dsv metrics add') next to the data changes.")
@click.option("--metrics-name", default=None, metavar="NAME", help="Compare records named NAME (default: each side's newest).")
@click.option("--source", "metrics_source", default=None, metavar="NAME", help="With --metrics: join the metrics with this sample source only; with --audit: audit only it.")
@click.option("--audit", "with_audit", is_flag=True, help="Also show the audit findings (dsv audit) each commit added and removed.")
@click.pass_context
def changelog(
    ctx: click.Context,
    spec: str | None,
    fmt: str,
    as_json: bool,
    decl: Any,
    by: tuple[str, ...],
    with_metrics: bool,
    metrics_name: str | None,
    metrics_source: str | None,
    with_audit: bool,
) -> None:
    """Per commit in A..B, newest first: its message and what it did to each class and slice.

    A..B: commits reachable from B but not A. B alone (or nothing: HEAD): the whole history.
    """
    from dsv.cli.auditrender import render_audit_step
    from dsv.cli.diffrender import md_safe, metrics_blocks, render_markdown, source_blocks

    repo = _repo(ctx)
    audits: dict[str, Any] = {}
    if with_audit:
        for e, step in repo.audit_changelog(spec, source=metrics_source if not (with_metrics or metrics_name) else None):
            audits[e.id] = step
            _print_warnings([f"{short(e.id)}: audit: {w}" for w in step.warnings])
    if with_metrics or metrics_name or metrics_source:
        entries = repo.metrics_changelog(spec, name=metrics_name, declaration=decl, by=by, source=metrics_source)
        for e, _, comp in entries:
            _print_warnings([f"{short(e.id)}: {w}" for w in comp.warnings])
    else:
        entries = [(e, d, None) for e, d in repo.changelog(spec, declaration=decl, by=by)]
    for e, d, _ in entries:
        _print_warnings([f"{short(e.id)}: {w}" for w in d.warnings])
    if as_json:
        fmt = "json"
    if fmt == "json":
        from dsv.api.results import ChangelogResult

        result = ChangelogResult([(e, d) for e, d, _ in entries], spec=spec)
        for e, _, comp in entries:
            extra = {"metrics": comp.to_dict()} if comp is not None else {}
            if e.id in audits:
                extra["audit"] = audits[e.id].to_dict()
            result.extras[e.id] = extra
        emit_json(result.to_dict())
        return
    if fmt == "md":
        lines = [f"# Changelog ({spec or 'HEAD'})", ""]
        for e, d, comp in entries:
            first = e.commit.message.splitlines()[0] if e.commit.message else ""
            lines += render_markdown(d, title=f"{first} ({short(e.id)}, {e.commit.time.date().isoformat()})")
            if comp is not None:
                lines += metrics_blocks(comp, markdown=True)
            if e.id in audits:
                lines += render_audit_step(audits[e.id], markdown=True)
            rest = e.commit.message.splitlines()[1:]
            if any(x.strip() for x in rest):
                lines += ["", *[x for x in rest]]
            lines.append("")
        click.echo("\n".join(md_safe(lines)).rstrip())
        return
    for i, (e, d, comp) in enumerate(entries):
        if i:
            click.echo("")
        click.echo("\n".join(_commit_lines(e.id, e.commit, e.refs)))
        n = d.files
        click.echo(f"    files: {n['added']} added, {n['removed']} removed, {n['modified']} modified, {n['moved']} moved")
        for s in d.sources:
            click.echo("")
            click.echo("\n".join("  " + line for line in source_blocks(s, markdown=False)))
        if comp is not None:
            click.echo("\n".join("  " + line for line in metrics_blocks(comp, markdown=False)))
        if e.id in audits:
            click.echo("\n".join(render_audit_step(audits[e.id], markdown=False)))


@cli.command()
@click.argument("rev", required=False)
@json_option
@click.pass_context
def check(ctx: click.Context, rev: str | None, as_json: bool) -> None:
    """Validate dsv.toml against the files of REV (default: the working tree); exit 1 on any problem.

    For CI: every table exists, reads and has its columns and unique keys; every
    folder pattern matches files; source names are distinct.
    """
    report = _repo(ctx).check_declaration(rev)
    # Findings that do not fail the check are warnings: stderr, like every warning.
    _print_warnings([w for s in report.sources for w in s.warnings])
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(f"{report.declaration or 'dsv.toml'} at {report.revision}")
        for p in report.problems:
            click.echo(f"  problem  {p}")
        for s in report.sources:
            counts = f": {plural(s.samples, 'sample')}, {plural(s.classes, 'class', 'classes')}" if s.samples is not None and s.classes is not None else ""
            click.echo(f"  {'ok' if s.ok else 'problem':<8} {s.name} ({s.kind}){counts}")
            for p in s.problems:
                click.echo(f"    problem  {p}")
        bad = len(report.problems) + sum(len(s.problems) for s in report.sources)
        click.echo(f"ok: {plural(len(report.sources), 'source')} checked" if report.ok else plural(bad, "problem"))
    if not report.ok:
        ctx.exit(1)


@cli.command(name="ls")
@click.argument("rev", default="HEAD")
@click.argument("path", default="")
@click.option("-l", "long", is_flag=True, help="Show mode, size and object id.")
@json_option
@click.pass_context
def ls_cmd(ctx: click.Context, rev: str, path: str, long: bool, as_json: bool) -> None:
    """List the files at REV (default HEAD), optionally under PATH."""
    repo = _repo(ctx)
    rel = repo.repo_path(path) if path else ""
    files = repo.ls(rev, rel)
    if path and not files:
        raise UsageError(f"'{path}' matches no file at {rev}")
    if as_json:
        emit_json([f.to_dict() for f in files])
        return
    for f in files:
        if long:
            click.echo(f"{f.mode:o} {f.size:>12} {short(f.oid)}  {quote_path(f.path)}")
        else:
            click.echo(quote_path(f.path))


@cli.command()
@click.argument("spec", metavar="REV:PATH")
@click.pass_context
def cat(ctx: click.Context, spec: str) -> None:
    """Write the bytes of a file at a revision to stdout, e.g. dsv cat v1:labels.csv.

    PATH is relative to the repository root; start it with ./ to mean the current folder.
    """
    rev, sep, path = spec.partition(":")
    if not sep:
        rev, path = "HEAD", spec
    repo = _repo(ctx)
    # As in git, REV:PATH is relative to the repository root; REV:./PATH to the current folder.
    rel = repo.repo_path(path) if path.startswith(("./", "../")) else path.strip("/")
    chunks = repo.open_file(rev or "HEAD", rel)
    out = sys.stdout.buffer
    for chunk in chunks:
        out.write(chunk)
    out.flush()


class _DashDashCommand(click.Command):
    """Remembers where ``--`` stood in the arguments (click drops it), as git's pathspec separator."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            # Positional arguments before "--" (this command's options are all flags).
            ctx.meta["before_dashdash"] = sum(1 for a in args[: args.index("--")] if not a.startswith("-"))
        return super().parse_args(ctx, args)


@cli.command(cls=_DashDashCommand)
@click.argument("args", nargs=-1, metavar="[REV] [--] [PATH]...")
@click.option("-f", "--force", is_flag=True, help="Discard uncommitted changes that are in the way.")
@json_option
@click.pass_context
def checkout(ctx: click.Context, args: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Switch the working tree to REV, or restore PATHs from REV (HEAD when omitted).

    \b
    dsv checkout v1                  the whole tree as it was at v1
    dsv checkout -- labels.csv       throw away local edits of labels.csv
    dsv checkout v1 -- images/cat    restore one folder from v1
    """
    n_before = ctx.meta.get("before_dashdash")
    if n_before is not None:
        # Everything after "--" is a path; before it, at most a revision.
        before = list(args[:n_before])
        rev = before[0] if before else None
        paths = list(args[n_before:])
        if len(before) > 1:
            raise UsageError("only one revision may come before '--'", hint="dsv checkout [REV] -- PATH...")
        if not paths:
            raise UsageError("no path after '--'", hint="dsv checkout [REV] -- PATH...")
    else:
        if not args:
            raise UsageError("checkout needs a revision or paths", hint="dsv checkout REV, or dsv checkout [REV] -- PATH...")
        rev, paths = args[0], list(args[1:])
    from dsv.base.errors import UnknownRevisionError, WorktreeError

    repo = _repo(ctx)
    rel = [repo.repo_path(p) for p in paths]
    branch_before = repo.repository.refs.head().branch
    try:
        res = repo.checkout(rev, rel or None, force=force, progress=_progress(ctx))
    except UnknownRevisionError as err:
        # `dsv checkout labels.csv`: a path where a revision goes, as git users type it.
        if n_before is None and not paths and rev is not None and err.rev == rev and _names_a_path(repo, rev):
            raise err.with_hint(f"did you mean 'dsv checkout -- {rev}'? paths come after --") from None
        raise
    except WorktreeError as err:
        # The planner speaks of "that revision or HEAD"; name the revision (HEAD alone when it is HEAD).
        generic = "matches no file in that revision or in HEAD"
        if paths and err.message.endswith(generic):
            where = "in HEAD" if rev in (None, "HEAD") else f"in {rev} or in HEAD"
            err.message = err.message[: -len(generic)] + f"matches no file {where}"
            err.args = (err.message,)
            err.hint = err.hint or "'dsv status' lists files not committed yet; 'dsv ls REV' lists the files of a revision"
        raise
    _print_warnings(res.warnings)
    if as_json:
        emit_json(res.to_dict())
        return
    if res.overwritten:
        shown = ", ".join(quote_path(p) for p in res.overwritten[:5])
        more = f" and {len(res.overwritten) - 5} more" if len(res.overwritten) > 5 else ""
        click.echo(f"Discarded local changes in {shown}{more}")
    if paths:
        click.echo(f"Restored {len(paths)} path(s) from {rev or 'HEAD'}: {res.written} file(s) written, {res.removed} removed")
    elif res.branch and res.branch == branch_before:
        # Still on the same branch (`dsv checkout -f HEAD`): nothing was switched.
        named = f"{rev} ({res.branch})" if rev != res.branch else rev
        click.echo(f"Restored the working tree to {named} ({res.written} written, {res.removed} removed)")
    elif res.branch:
        click.echo(f"Switched to branch '{res.branch}' ({res.written} written, {res.removed} removed)")
    else:
        click.echo(f"HEAD is now at {short(res.commit)} ({res.written} written, {res.removed} removed)")


def _names_a_path(repo: Any, arg: str) -> bool:
    """Whether ``arg`` is a path in the working tree or in HEAD (for the hint of a checkout that took it for a revision)."""
    try:
        rel = repo.repo_path(arg)
    except Exception:  # a path outside the repository, or not a path at all
        return False
    if rel and os.path.lexists(os.path.join(repo.root, *rel.split("/"))):
        return True
    try:
        return bool(rel) and bool(repo.ls("HEAD", rel))
    except Exception:  # no commit yet
        return False


@cli.command()
@click.argument("name", required=False)
@click.argument("rev", default="HEAD")
@click.option("-l", "--list", "list_", is_flag=True, help="List branches.")
@click.option("-d", "--delete", is_flag=True, help="Delete branch NAME.")
@click.option("-f", "--force", is_flag=True, help="Move NAME if it exists.")
@json_option
@click.pass_context
def branch(ctx: click.Context, name: str | None, rev: str, list_: bool, delete: bool, force: bool, as_json: bool) -> None:
    """Create branch NAME at REV, delete it (-d), or list branches."""
    repo = _repo(ctx)
    if delete:
        if not name:
            raise UsageError("dsv branch -d needs a branch name")
        old = repo.delete_branch(name)
        click.echo(f"Deleted branch {name} (was {short(old)})") if not as_json else emit_json({"deleted": name, "commit": old})
        return
    if name and not list_:
        info = repo.create_branch(name, rev, force=force)
        click.echo(f"Created branch {name} at {short(info.commit)}") if not as_json else emit_json(info.to_dict())
        return
    infos = repo.branches()
    if as_json:
        emit_json([b.to_dict() for b in infos])
        return
    for b in infos:
        click.echo(f"{'*' if b.current else ' '} {b.name}  {short(b.commit)}")


def _parse_meta(items: Sequence[str]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--meta expects KEY=VALUE, got {item!r}")
        meta[key.strip()] = value
    return meta


@cli.command()
@click.argument("name", required=False)
@click.argument("rev", default="HEAD")
@click.option("-m", "--message", default=None, help="Annotation message (makes an annotated tag).")
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Metadata to store in the tag; repeatable.")
@click.option("-l", "--list", "list_", is_flag=True, help="List tags.")
@click.option("-d", "--delete", is_flag=True, help="Delete tag NAME.")
@click.option("-f", "--force", is_flag=True, help="Replace NAME if it exists.")
@json_option
@click.pass_context
def tag(ctx: click.Context, name: str | None, rev: str, message: str | None, meta: tuple[str, ...], list_: bool, delete: bool, force: bool, as_json: bool) -> None:
    """Name REV as NAME (annotated with -m/--meta), delete a tag, or list tags."""
    repo = _repo(ctx)
    if delete:
        if not name:
            raise UsageError("dsv tag -d needs a tag name")
        old = repo.delete_tag(name)
        click.echo(f"Deleted tag {name} (was {short(old)})") if not as_json else emit_json({"deleted": name, "object": old})
        return
    if name and not list_:
        info = repo.create_tag(name, rev, message=message, meta=_parse_meta(meta), force=force)
        if as_json:
            emit_json(info.to_dict())
        else:
            click.echo(f"Tagged {short(info.commit)} as {name}{' (annotated)' if info.tag else ''}")
        return
    infos = repo.tags()
    if as_json:
        emit_json([t.to_dict() for t in infos])
        return
    for t in infos:
        note = f"  {t.tag.message.splitlines()[0]}" if t.tag and t.tag.message else ""
        meta_s = "  " + " ".join(f"{k}={v}" for k, v in t.tag.meta.items()) if t.tag and t.tag.meta else ""
        click.echo(f"{t.name}  {short(t.commit)}{note}{meta_s}")


@cli.command()
@click.option("--repair", is_flag=True, help="Rebuild damaged pack indexes and restore missing or corrupt objects from working-tree files.")
@json_option
@click.pass_context
def fsck(ctx: click.Context, repair: bool, as_json: bool) -> None:
    """Re-hash every object and check every reference; exit 1 on any problem left."""
    report = _repo(ctx).fsck(progress=_progress(ctx), repair=repair)
    if as_json:
        emit_json(report.to_dict())
    else:
        for idx in report.indexes_rebuilt:
            click.echo(f"rebuilt pack index {idx}")
        for idx in report.indexes_set_aside:
            click.echo(f"set aside pack index {idx} (its pack file is missing: its objects are lost)")
        for r in report.repaired:
            click.echo(f"repaired {r.oid} from {r.source}")
        if report.quarantined:
            click.echo(f"set aside {report.quarantined} corrupt cop{'y' if report.quarantined == 1 else 'ies'} in .dsv/objects/quarantine")
        for p in report.problems:
            line = f"{p.kind}: {p.message}"
            if p.expected and p.actual:
                line += f" (expected {p.expected}, got {p.actual})"
            if p.location:
                line += f" in {p.location}"
            if p.used_by:
                line += f"; used by {', '.join(p.used_by)}"
            click.echo(line)
        status_line = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        objects = f"{report.objects_checked} object{'' if report.objects_checked == 1 else 's'}"
        commits = f"{report.commits} commit{'' if report.commits == 1 else 's'}"
        click.echo(f"checked {objects} ({human_size(report.bytes_checked)}), {commits}: {status_line}")
    if not report.ok:
        ctx.exit(1)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``2w``, ``3d``, ``12h``, ``30m``, ``45s``, ``0`` or ``now`` to seconds."""
    if text.strip().lower() == "now":
        return 0.0
    m = _DURATION.match(text.lower())
    if not m:
        raise UsageError(f"cannot read duration {text!r}", hint="use forms like 2w, 3d, 12h, 30m, 45s or 0")
    return float(m.group(1)) * _UNITS[m.group(2)]


@cli.command()
@click.option("--grace", default="2w", show_default=True, help="Keep unreachable objects younger than this (0 prunes at once).")
@click.option("--remote", "remote_name", default=None, metavar="NAME", help="Prune the remote NAME instead (safe against concurrent pushes).")
@json_option
@click.pass_context
def gc(ctx: click.Context, grace: str, remote_name: str | None, as_json: bool) -> None:
    """Delete objects that no branch, tag or HEAD reaches and that are older than --grace."""
    if remote_name is not None:
        res = _repo(ctx).gc_remote(remote_name, parse_duration(grace))
        if as_json:
            emit_json(res.to_dict())
            return
        click.echo(
            f"{res.url}: deleted {res.packs_deleted} pack(s), rewrote {res.packs_rewritten}, removed {res.objects_removed} object(s) "
            f"({human_size(res.bytes_removed)}), kept {res.packs_kept} pack(s)"
        )
        for why in res.skipped:
            click.echo(f"  kept {why}")
        return
    report = _repo(ctx).gc(parse_duration(grace))
    if as_json:
        emit_json(report.to_dict())
        return
    click.echo(
        f"removed {report.objects_removed} object(s) ({human_size(report.bytes_removed)}), rewrote {report.packs_rewritten} pack(s), "
        f"kept {report.objects_kept}, cleaned {report.temp_files_removed} temp file(s)"
    )


@cli.command(context_settings={"ignore_unknown_options": True})  # a value may start with '-' (and is then refused by its check)
@click.argument("key")
@click.argument("value", required=False)
@json_option
@click.pass_context
def config(ctx: click.Context, key: str, value: str | None, as_json: bool) -> None:
    """Read or set a repository setting (user.name, user.email, core.lock_timeout, core.fsmonitor, core.server)."""
    from dsv.config import SETTINGS

    repo = _repo(ctx).repository
    if key not in SETTINGS:
        raise UsageError(f"unknown setting {key!r}", hint="known: " + ", ".join(SETTINGS))
    section, _, field = key.partition(".")
    if value is not None:
        repo.set_config({key: value})
        if key == "core.fsmonitor" and not repo.config.core.fsmonitor:
            from dsv.worktree import fsmonitor as monitor

            monitor.request(repo.layout.dsv, "stop")  # off means no daemon, as with 'dsv fsmonitor off'
        if key == "core.server":
            from dsv.cli import server as command_server

            if not repo.config.core.server:
                command_server.stop(repo.layout.dsv)  # as with 'dsv server off'
            else:
                try:
                    command_server.check_available(repo.layout.dsv)
                except command_server.ServerUnavailable as err:
                    warn(f"{err}: commands will run in their own process")
        if not as_json:
            return
    # Read through the model's attributes: fields at their default are left out of its dump.
    v = getattr(getattr(repo.config, section), field)
    if as_json:
        emit_json({"key": key, "value": v})
        return
    click.echo("" if v is None else str(v).lower() if isinstance(v, bool) else str(v))


@cli.group()
def metrics() -> None:
    """Attach model metrics to dataset versions, and read them back."""


@metrics.command(name="add")
@click.argument("rev")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", required=True, help="Record name, e.g. the model and run (resnet18-run7).")
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Metadata to store with the record; repeatable.")
@click.option("-f", "--force", is_flag=True, help="Replace a record of the same name.")
@click.option("--predictions", default=None, type=click.Path(dir_okay=False), metavar="PATH", help="Per-sample predictions (Parquet or CSV: key, predicted, confidence or loss) for dsv audit.")
@json_option
@click.pass_context
def metrics_add(ctx: click.Context, rev: str, file: str, name: str, meta: tuple[str, ...], force: bool, predictions: str | None, as_json: bool) -> None:
    """Attach metrics FILE (scikit-learn report, flat JSON, or dsv form) to REV as record NAME."""
    entry = _repo(ctx).add_metrics(rev, file, name=name, meta=_parse_meta(meta), force=force, predictions=predictions)
    if as_json:
        emit_json(entry.to_dict())
        return
    r = entry.record
    pred = f", {r.predictions.rows} predictions ({r.predictions.format})" if r.predictions else ""
    click.echo(f"Attached {r.source_format} metrics '{r.name}' to {short(r.commit)}: {len(r.overall)} overall, {len(r.classes)} classes, {len(r.slices)} slice columns{pred}")


@metrics.command(name="list")
@click.argument("rev", required=False)
@json_option
@click.pass_context
def metrics_list(ctx: click.Context, rev: str | None, as_json: bool) -> None:
    """List metrics records of REV (default: every commit), oldest first."""
    entries = _repo(ctx).metrics(rev)
    if as_json:
        emit_json(entries.to_dict(values=False))
        return
    for e in entries:
        r = e.record
        meta = " ".join(f"{k}={v}" for k, v in r.meta.items())
        click.echo(f"{short(r.commit)}  {r.name}  {_time(r.time)}  {r.summary()}" + (f"  [{meta}]" if meta else ""))


@metrics.command(name="show")
@click.argument("rev")
@click.option("--name", default=None, help="Only the record NAME.")
@json_option
@click.pass_context
def metrics_show(ctx: click.Context, rev: str, name: str | None, as_json: bool) -> None:
    """Show the metrics records of REV in full."""
    from dsv.metrics.numbers import format_value

    entries = _repo(ctx).metrics(rev, name=name)
    if name is not None and not entries:
        raise UsageError(f"no metrics named {name!r} on {rev}", hint=f"see 'dsv metrics list {rev}'")
    if as_json:
        emit_json(entries.to_dict())
        return
    for i, e in enumerate(entries):
        r = e.record
        if i:
            click.echo("")
        click.echo(color(f"metrics {r.name}", "yellow") + f" on {short(r.commit)} ({r.source_format}, {r.author}, {_time(r.time)})")
        for k, v in r.meta.items():
            click.echo(f"    {k}={v}")
        if r.overall:
            click.echo("  overall: " + " ".join(f"{k}={format_value(v)}" for k, v in sorted(r.overall.items())))
        for cls, vals in sorted(r.classes.items()):
            click.echo(f"  class {cls}: " + " ".join(f"{k}={format_value(v)}" for k, v in sorted(vals.items())))
        for col, values in sorted(r.slices.items()):
            for value, vals in sorted(values.items()):
                click.echo(f"  slice {col}={value}: " + " ".join(f"{k}={format_value(v)}" for k, v in sorted(vals.items())))


def _register_remote_commands() -> None:
    from dsv.cli import remote_cmds

    remote_cmds.register(cli, _repo, _progress, json_option)


_register_remote_commands()


# Commands defined in their own modules register on ``cli`` when imported (kept last: they import this one).
from dsv.cli import daemons as _daemons  # noqa: E402,F401
from dsv.cli import review as _review  # noqa: E402,F401
