"""``dsv fsmonitor`` and ``dsv server``: the two opt-in helper processes of a repository.

The file-system monitor (docs/fsmonitor.md) tells status and commit what
changed; the command server (docs/server.md) runs commands without Python's
start-up. Both are turned on per repository (``core.fsmonitor``,
``core.server``), report their state the same way, and never change results.
"""

from __future__ import annotations

import os
from typing import Any

import click

from dsv.cli.app import _repo, cli, json_option
from dsv.cli.render import emit_json


@cli.group()
def fsmonitor() -> None:
    """A file-system monitor (Linux, opt-in): status and commit look only at what changed."""


def _show_monitor(state: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(state)
        return
    click.echo(f"fsmonitor: {'on' if state['enabled'] else 'off'}; daemon {'running (pid ' + str(state['pid']) + ', ' + str(state['watches']) + ' folders watched)' if state['running'] else 'not running'}")
    if state.get("problem"):
        click.echo(f"problem: {state['problem']} (status walks the whole tree meanwhile)")


@fsmonitor.command(name="on")
@json_option
@click.pass_context
def fsmonitor_on(ctx: click.Context, as_json: bool) -> None:
    """Turn the monitor on and start its daemon for this working tree."""
    _show_monitor(_repo(ctx).fsmonitor_on(), as_json)


@fsmonitor.command(name="off")
@json_option
@click.pass_context
def fsmonitor_off(ctx: click.Context, as_json: bool) -> None:
    """Turn the monitor off and stop its daemon."""
    _show_monitor(_repo(ctx).fsmonitor_off(), as_json)


@fsmonitor.command(name="status")
@json_option
@click.pass_context
def fsmonitor_status(ctx: click.Context, as_json: bool) -> None:
    """Whether the monitor is on and its daemon running."""
    _show_monitor(_repo(ctx).fsmonitor_status(), as_json)


@cli.group()
def server() -> None:
    """A command server (opt-in): commands here start without loading Python's modules (docs/server.md)."""


def _repository_here(ctx: click.Context) -> Any:
    """The repository, opened without starting a server (the ``server`` commands manage it themselves)."""
    from dsv.api import Repo

    return Repo(ctx.obj["cwd"]).repository


def _server_state(repo: Any) -> dict[str, Any]:
    from dsv.cli import server as command_server

    reply = command_server.request(repo.layout.dsv, b"status") or {}
    problem = None
    try:
        command_server.check_available(repo.layout.dsv)
    except command_server.ServerUnavailable as err:
        problem = str(err)
    return {"enabled": repo.settings.server, "running": bool(reply), "pid": reply.get("pid"),
            "commands": reply.get("commands"), "refused": reply.get("refused"),
            "last_refusal": reply.get("last_refusal"), "prepared": reply.get("prepared"), "problem": problem}


def _show_server(state: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(state)
        return
    if state["running"]:
        n = state["commands"]
        running = f"running (pid {state['pid']}, {n} command{'' if n == 1 else 's'} served"
        if state["refused"]:
            r = state["refused"]
            running += f", {r} run in their own process" if r != 1 else ", 1 run in its own process"
            running += f": {state['last_refusal']}" if state["last_refusal"] else ""
        running += ")"
    else:
        running = "not running"
    click.echo(f"server: {'on' if state['enabled'] else 'off'}; {running}")
    if state.get("problem"):
        click.echo(f"problem: {state['problem']} (commands run in their own process)")


@server.command(name="on")
@json_option
@click.pass_context
def server_on(ctx: click.Context, as_json: bool) -> None:
    """Turn the command server on (core.server) and (re)start it with this environment."""
    from dsv.base.errors import DsvError
    from dsv.cli import server as command_server

    repo = _repository_here(ctx)
    try:
        command_server.check_available(repo.layout.dsv)
    except command_server.ServerUnavailable as err:
        raise DsvError(str(err), hint="commands keep running in their own process") from err
    _stop_server(repo)  # one started from another environment would refuse this one's commands
    command_server.start(repo.root, repo.layout.dsv)
    if command_server.wait_until_running(repo.layout.dsv) is None:
        log = os.path.join(command_server.server_dir(repo.layout.dsv), command_server.LOG)
        why = command_server.last_log_line(repo.layout.dsv)
        raise DsvError("the command server did not start" + (f": {why}" if why else ""), hint=f"see {log}")
    repo.set_config({"core.server": True})
    _show_server(_server_state(repo), as_json)


@server.command(name="off")
@json_option
@click.pass_context
def server_off(ctx: click.Context, as_json: bool) -> None:
    """Turn the command server off and stop it (commands it started go on to finish)."""

    repo = _repository_here(ctx)
    repo.set_config({"core.server": False})
    _stop_server(repo)
    _show_server(_server_state(repo), as_json)


def _stop_server(repo: Any) -> None:
    """Stop the repository's server, or fail with one line saying which process is still there."""
    from dsv.base.errors import DsvError
    from dsv.cli import server as command_server

    if not command_server.stop(repo.layout.dsv) and not command_server.lock_is_free(repo.layout.dsv):
        pid = command_server.lock_holder(repo.layout.dsv)
        raise DsvError(f"the command server (pid {pid}) did not stop within 10 s",
                       hint="it may be busy; try again, or end that process")


@server.command(name="status")
@json_option
@click.pass_context
def server_status(ctx: click.Context, as_json: bool) -> None:
    """Whether the command server is on and running (it does not start one)."""
    _show_server(_server_state(_repository_here(ctx)), as_json)
