"""``dsv status`` without click: the command most often run, started as fast as it can be.

At 20,000 files a no-op ``git status`` takes ~26 ms, and CPython's start-up
alone ~10-20 ms; importing click and every command's definitions would add
~25 ms before any work. So :func:`dsv.cli.run` hands the exact argument lists
``status`` and ``status --json`` to :func:`run_status`, which opens the
repository, runs :func:`dsv.api.status.repository_status` (what :meth:`dsv.Repo.status`
runs, without importing every other command's module) and renders it with :func:`dsv.cli.render.show_status`,
the same renderer the click command uses. Any other arguments (``-C``, ``-q``,
``--help``, a typo) take the click path, which gives the same output.
"""

from __future__ import annotations

from dsv.cli.render import show_status


def run_status(args: list[str]) -> int:
    """``dsv status [--json]`` from the console script: the exit code (errors mapped as for every command)."""
    from dsv.cli.errors import exit_code_of

    def status() -> None:
        from dsv.api.status import repository_status
        from dsv.cli.progress import TerminalProgress
        from dsv.repository import Repository

        repo = Repository.open(".")
        if repo.settings.server:
            from dsv.cli.server import ensure_running

            ensure_running(repo.root, repo.layout.dsv)  # for the next command (docs/server.md)
        show_status(repository_status(repo, TerminalProgress()), as_json="--json" in args)

    return exit_code_of(status)
