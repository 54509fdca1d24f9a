"""The remote commands: ``remote add|list|remove``, ``push``, ``fetch``, ``pull``, ``clone``.

Registered on the main group by :mod:`dsv.cli.app`; ``gc --remote`` lives with
``gc`` there. Output never shows a credential: URLs and options are masked.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import click

from dsv.base.errors import PushRejectedError, UsageError
from dsv.cli.render import emit_json, human_size, short


def parse_options(items: Sequence[str]) -> dict[str, str]:
    """``--option key=value`` pairs."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--option takes KEY=VALUE, got {item.split('=', 1)[0]!r}", hint="e.g. --option endpoint_url=http://127.0.0.1:9000")
        out[key.strip()] = value
    return out


def _stats_line(verb: str, d: dict[str, Any]) -> str:
    rate = d["bytes"] / d["seconds"] if d["seconds"] > 0 else 0
    packs = f" in {d['packs']} pack(s)" if d.get("packs") else ""
    return f"{verb} {d['objects']} object(s), {human_size(d['bytes'])}{packs}; {d['requests']} request(s), {d['seconds']:.1f} s ({human_size(rate)}/s)"


def _ref_line(u: Any, arrow_to: str | None = None) -> str:
    name = u.ref.split("/", 3)[-1] if u.ref.startswith("refs/remotes/") else u.ref.split("/", 2)[-1]  # fetch: main -> origin/main
    target = arrow_to or name
    status = u.status.value
    if status == "up-to-date":
        return f" = [up to date]      {name} -> {target}"
    if status == "created":
        return f" * [new {'tag' if u.ref.startswith('refs/tags/') else 'branch' if 'heads' in u.ref or 'remotes' in u.ref else 'ref'}]{' ' * 5}{name} -> {target}"
    if status == "rejected":
        return f" ! [rejected]        {name} -> {target} ({u.reason})"
    if status == "deleted":
        return f" - [deleted]         {target}"
    sep = "..." if status == "forced" else ".."
    flag = "+" if status == "forced" else " "
    return f"{flag}  {short(u.old)}{sep}{short(u.new)}  {name} -> {target}"


class _PathsAfterDashDash(click.Command):
    """Takes everything after ``--`` as paths (click would otherwise drop the ``--`` and mix them in)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            i = args.index("--")
            ctx.meta["paths_after_dashdash"] = list(args[i + 1 :])
            args = args[:i]
        return super().parse_args(ctx, args)


def register(cli: click.Group, repo_of: Any, progress_of: Any, json_option: Any) -> None:
    """Add the remote commands to ``cli`` (helpers passed in to avoid an import cycle with app)."""

    @cli.group(invoke_without_command=True)
    @click.option("-v", "--verbose", is_flag=True, help="With no subcommand: list remotes with their URLs (as 'remote list -v').")
    @json_option
    @click.pass_context
    def remote(ctx: click.Context, verbose: bool, as_json: bool) -> None:
        """Manage remotes: fsspec URLs (a folder, file://, memory://, s3://, gs://, az://...).

        With no subcommand, lists them (as git remote does).
        """
        if ctx.invoked_subcommand is None:
            ctx.invoke(remote_list, verbose=verbose, as_json=as_json)
        elif as_json:
            raise click.UsageError(f"--json goes after the subcommand: 'dsv remote {ctx.invoked_subcommand} --json'")

    @remote.command("add")
    @click.argument("name")
    @click.argument("url")
    @click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Filesystem option (endpoint_url, key, secret, anon...); repeatable.")
    @json_option
    @click.pass_context
    def remote_add(ctx: click.Context, name: str, url: str, options: tuple[str, ...], as_json: bool) -> None:
        """Add remote NAME at URL."""
        info = repo_of(ctx).add_remote(name, url, parse_options(options))
        if as_json:
            emit_json(info.to_dict())
            return
        click.echo(f"Added remote {info.name} {info.url}")

    @remote.command("list")
    @click.option("-v", "--verbose", is_flag=True, help="Show URLs and options (credentials masked).")
    @json_option
    @click.pass_context
    def remote_list(ctx: click.Context, verbose: bool, as_json: bool) -> None:
        """List remotes."""
        items = repo_of(ctx).remotes()
        if as_json:
            emit_json([i.to_dict() for i in items])
            return
        for i in items:
            if not verbose:
                click.echo(i.name)
                continue
            opts = " ".join(f"{k}={v}" for k, v in sorted(i.options.items()))
            click.echo(f"{i.name}\t{i.url}" + (f"\t{opts}" if opts else "") + ("\t(promisor)" if i.promisor else ""))

    @remote.command("remove")
    @click.argument("name")
    @json_option
    @click.pass_context
    def remote_remove(ctx: click.Context, name: str, as_json: bool) -> None:
        """Remove remote NAME, its remote-tracking branches and cached indexes."""
        info = repo_of(ctx).remove_remote(name)
        if as_json:
            emit_json(info.to_dict())
            return
        click.echo(f"Removed remote {info.name}")

    @cli.command()
    @click.argument("remote_name", required=False, metavar="[REMOTE]")
    @click.argument("refs", nargs=-1, metavar="[BRANCH|TAG]...")
    @click.option("--all", "all_branches", is_flag=True, help="Push every branch.")
    @click.option("--tags", is_flag=True, help="Push every tag.")
    @click.option("-f", "--force", is_flag=True, help="Replace the remote ref even if it is not an ancestor (never a push that landed after we read).")
    @click.option("--force-with-lease", is_flag=True, help="Force only while the remote ref is where REMOTE/BRANCH says it was.")
    @json_option
    @click.pass_context
    def push(ctx: click.Context, remote_name: str | None, refs: tuple[str, ...], all_branches: bool, tags: bool, force: bool, force_with_lease: bool, as_json: bool) -> None:
        """Send branches and tags (default: the current branch), with their metrics records, to REMOTE."""
        repo = repo_of(ctx)
        try:
            res = repo.push(remote_name, refs, all_branches=all_branches, tags=tags, force=force, force_with_lease=force_with_lease, progress=progress_of(ctx))
        except PushRejectedError as err:
            result = getattr(err, "result", None)
            if result is not None:
                if as_json:
                    emit_json(result.to_dict())
                else:
                    click.echo(f"To {result.url}", err=True)
                    for u in result.refs:
                        if not u.ref.startswith("refs/metrics/") or u.status.value == "rejected":
                            click.echo(_ref_line(u), err=True)
            raise
        if as_json:
            emit_json(res.to_dict())
            return
        click.echo(f"To {res.url}")
        metrics = [u for u in res.refs if u.ref.startswith("refs/metrics/") and u.status.value != "up-to-date"]
        for u in res.refs:
            if not u.ref.startswith("refs/metrics/"):
                click.echo(_ref_line(u))
        if metrics:
            click.echo(f" * {len(metrics)} metrics record(s)")
        click.echo(_stats_line("sent", res.to_dict()))

    @cli.command()
    @click.argument("remote_name", required=False, metavar="[REMOTE]")
    @json_option
    @click.pass_context
    def fetch(ctx: click.Context, remote_name: str | None, as_json: bool) -> None:
        """Download what REMOTE's branches, tags and metrics records need; branches become REMOTE/BRANCH."""
        res = repo_of(ctx).fetch(remote_name, progress=progress_of(ctx))
        for w in res.warnings:
            click.echo(f"dsv: warning: {w}", err=True)
        if as_json:
            emit_json(res.to_dict())
            return
        if res.refs:
            click.echo(f"From {res.url}")
            for u in res.refs:
                click.echo(_ref_line(u, u.ref.replace("refs/remotes/", "").replace("refs/tags/", "").replace("refs/metrics/", "metrics/")))
        click.echo(_stats_line("received", res.to_dict()))

    @cli.command()
    @click.argument("remote_name", required=False, metavar="[REMOTE]")
    @click.argument("branch", required=False)
    @json_option
    @click.pass_context
    def pull(ctx: click.Context, remote_name: str | None, branch: str | None, as_json: bool) -> None:
        """Fetch from REMOTE, then fast-forward BRANCH (default: the current one) and the working tree."""
        res = repo_of(ctx).pull(remote_name, branch, progress=progress_of(ctx))
        if as_json:
            emit_json(res.to_dict())
            return
        if res.status == "up-to-date":
            click.echo("Already up to date.")
        else:
            click.echo(f"Updating {short(res.old) if res.old else '(none)'}..{short(res.new)}: fast-forward {res.branch} ({res.written} written, {res.removed} removed)")
        click.echo(_stats_line("received", res.fetch.to_dict()))

    @cli.command(cls=_PathsAfterDashDash)
    @click.argument("args", nargs=-1, metavar="URL [DIR] [-- PATH...]")
    @click.option("--rev", default=None, metavar="REV", help="Branch or tag to check out (default: the remote's default branch).")
    @click.option("--depth", type=click.IntRange(min=1), default=None, metavar="N", help="Fetch only the last N commits (more are fetched on demand).")
    @click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Filesystem option for the remote; repeatable.")
    @json_option
    @click.pass_context
    def clone(ctx: click.Context, args: tuple[str, ...], rev: str | None, depth: int | None, options: tuple[str, ...], as_json: bool) -> None:
        """Copy the repository at URL into DIR (whole, one revision with --depth 1, or only PATHs after --).

        \b
        dsv clone s3://bucket/penguins
        dsv clone s3://bucket/penguins work --rev v2 --depth 1
        dsv clone ./shared/penguins mine -- images/train labels.csv
        """
        from dsv.api.remotes import clone as do_clone

        after = ctx.meta.get("paths_after_dashdash")
        before, paths = list(args), list(after or [])
        if not before:
            raise UsageError("clone needs a URL", hint="dsv clone URL [DIR] [-- PATH...]")
        if len(before) > 2:
            raise UsageError("clone takes a URL and at most one folder before '--'", hint="dsv clone URL [DIR] [-- PATH...]")
        if after is not None and not paths:
            raise UsageError("no path after '--'", hint="dsv clone URL [DIR] -- PATH...")
        url = before[0]
        dest = os.path.join(ctx.obj["cwd"], before[1]) if len(before) > 1 else None
        _, res = do_clone(url, dest, rev=rev, depth=depth, paths=paths or None, options=parse_options(options), progress=progress_of(ctx))
        if as_json:
            emit_json(res.to_dict())
            return
        click.echo(f"Cloned {res.url} into {res.path}")
        what = f"branch '{res.branch}'" if res.branch else (f"{short(res.commit)} (detached)" if res.commit else "nothing (the remote is empty)")
        extra = []
        if res.depth:
            extra.append(f"depth {res.depth}")
        if res.paths:
            extra.append("paths " + ", ".join(res.paths))
        click.echo(f"Checked out {what}: {res.written} file(s)" + (f" [partial: {'; '.join(extra)}; the rest is fetched on demand]" if extra else ""))
        click.echo(_stats_line("received", res.fetch.to_dict()))
