"""CLI layer: click commands over :class:`dsv.Repo`; the only place that prints or exits."""

from __future__ import annotations

import os
import sys


def run() -> None:
    """Console-script entry: the command in the repository's command server if one runs
    (:mod:`dsv.cli.server`), else :func:`execute` here; then a fast exit (``os._exit``, after
    flushing output, so a large stat cache is not torn down object by object)."""
    args = sys.argv[1:]
    from dsv.cli.server import forward

    code = forward(args)
    if code is None:
        code = execute(args)
    os._exit(code)


def execute(args: list[str]) -> int:
    """Run ``dsv ARGS`` in this process as a program; its exit code, output flushed.

    The cyclic garbage collector is off for the command's lifetime (dsv builds
    large acyclic structures; collection passes over them cost more than they
    free). As a program (not a library), the command may fork a helper process
    while it is single-threaded (:mod:`dsv.base.forkjob`). ``dsv status`` is
    served without importing click (:mod:`dsv.cli.quick`). The command server's
    children run this too.
    """
    import gc

    from dsv.base.forkjob import allow_fork

    gc.disable()
    allow_fork()
    _usable_streams()
    block_unused_modules()
    code = 0
    try:
        if args in _QUICK and os.environ.get("DSV_DEBUG") != "1":
            from dsv.cli.quick import run_status

            code = run_status(args)
        else:
            main(args)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt as err:  # Ctrl-C while the command's modules load
        from dsv.cli.errors import report

        sys.stderr.write("\n")
        code = report(err)
    # An interrupted command drops what it had not written yet: flushing it could block for
    # good on a pipe nobody reads (Ctrl-C on 'dsv ls | less' stopped at a full pipe).
    streams = (sys.stderr,) if code == EXIT_INTERRUPTED else (sys.stdout, sys.stderr)
    for stream in streams:
        try:
            stream.flush()
        except (OSError, ValueError, KeyboardInterrupt):
            pass
    return code


def block_unused_modules() -> None:
    """Make numpy and pandas unimportable for the command (see :data:`_UNUSED`); idempotent."""
    # pyarrow imports numpy when it is installed (~0.1 s), and pandas (0.3-0.8 s) the
    # first time it converts a Python list, just to ask whether it is a DataFrame.
    # The command uses neither (a library caller that has them imported already
    # pays nothing), so the command makes them unimportable for itself. (Not
    # dateutil, which pyarrow loads then too, ~3 ms: botocore needs it for S3 remotes.)
    if not _UNUSED.intersection(sys.modules) and not any(isinstance(f, _Unused) for f in sys.meta_path):
        sys.meta_path.insert(0, _Unused())


def _usable_streams() -> None:
    """Output the command can always write: a closed stdout or stderr (``dsv status >&-``) becomes
    a sink, and a character the output encoding lacks (``PYTHONIOENCODING=ascii``, a C locale)
    is written as an escape instead of failing the command after part of its output."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, open(os.devnull, "w"))
        elif hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass


_QUICK = (["status"], ["status", "--json"])
"""Argument lists served without click (:func:`dsv.cli.quick.run_status`)."""

_UNUSED = frozenset({"numpy", "pandas"})

EXIT_INTERRUPTED = 130
"""Exit code of a command ended by Ctrl-C (as ``dsv.cli.errors``, not imported here: start-up)."""


class _Unused:
    """A meta-path finder that answers "not installed" for :data:`_UNUSED` (see :func:`run`)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] in _UNUSED:
            raise ModuleNotFoundError(f"No module named {name!r} (not used by the dsv command)", name=name)
        return None


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``dsv`` command: runs the CLI and maps errors to one line and an exit code."""
    from dsv.cli.errors import exit_code_of

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("DSV_DEBUG") == "1"
    sys.exit(exit_code_of(lambda: _click_main(args), debug=debug))


def _click_main(args: list[str]) -> int:
    """The click commands; click's own outcomes (usage errors, --help, aborts) as exit codes."""
    import click

    _refuse_undecodable(args)

    from dsv.cli.app import cli
    from dsv.cli.errors import report

    try:
        code = cli.main(args=args, prog_name="dsv", standalone_mode=False)
    except SystemExit as e:
        # click ends a command whose reader closed the pipe (dsv log | head) with exit 1,
        # after wrapping the streams; dsv does not count that as an error (exit_code_of).
        # (The exception click handled is gone by then: its stream wrapper is the one trace
        # left, and tests/test_quick_status.py fails if a click release changes that.)
        if e.code == 1 and type(sys.stdout).__name__ == "_PacifyFlushWrapper":
            return 0
        raise
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:  # click printed the newline after ^C already
        return report(KeyboardInterrupt())
    return code if isinstance(code, int) else 0


def _refuse_undecodable(args: list[str]) -> None:
    """Every argument is UTF-8 text: dsv stores paths, names and messages as UTF-8, so bytes that are
    not (``$'\\xff'``, decoded by Python as lone surrogates) can name nothing and could not be stored."""
    from dsv.base.errors import UsageError

    for a in args:
        try:
            a.encode("utf-8")
        except UnicodeEncodeError:
            shown = os.fsencode(a).decode("utf-8", "backslashreplace")
            raise UsageError(f"argument '{shown}' is not valid UTF-8", hint="paths, names and messages in dsv are UTF-8 text") from None


__all__ = ["execute", "main", "run"]
