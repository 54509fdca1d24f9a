"""The one place where errors become a message on stderr and an exit code.

Every :class:`~dsv.base.errors.DsvError` prints as one line,
``dsv: error: <what went wrong> (<what to do>)``, and exits with the error's
``exit_code``. Filesystem errors that escaped a translation print the same way.
A traceback appears only with ``--debug`` (or ``DSV_DEBUG=1``).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable

from dsv.base.errors import DsvError

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


def format_error(err: BaseException) -> tuple[str, int]:
    """The one-line message and exit code for ``err``, credentials masked (:mod:`dsv.base.secrets`)."""
    from dsv.base.secrets import redact

    line, code = _format(err)
    return redact(line), code


def _format(err: BaseException) -> tuple[str, int]:
    if isinstance(err, DsvError):
        msg = err.message.replace("\n", " ")
        if err.hint:
            msg += f" ({err.hint})"
        return f"dsv: error: {msg}", err.exit_code
    if isinstance(err, OSError):
        where = f": {err.filename}" if err.filename else ""
        reason = err.strerror or str(err)
        hint = " (free some space; nothing was changed)" if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else ""
        return f"dsv: error: {reason}{where}{hint}", 1
    if isinstance(err, MemoryError):
        return "dsv: error: out of memory (free some memory or raise the process's limit, then run it again)", 1
    if isinstance(err, KeyboardInterrupt):
        return "dsv: interrupted", EXIT_INTERRUPTED
    return f"dsv: internal error: {type(err).__name__}: {err} (rerun with --debug for a traceback and report it)", EXIT_INTERNAL


def exit_code_of(command: Callable[[], "int | None"], *, debug: bool = False) -> int:
    """Run ``command``; its exit code, any error becoming one line on stderr (a traceback too with ``debug``).

    Shared by the click commands and the click-free ``dsv status`` (:mod:`dsv.cli.quick`).
    """
    try:
        code = command()
    except BrokenPipeError:
        # Output piped into a reader that stopped (dsv log | head): not an error.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except KeyboardInterrupt as err:
        try:
            sys.stderr.write("\n")  # closes the terminal's ^C echo, as click does
        except OSError:
            pass
        return report(err)
    except Exception as err:  # noqa: BLE001 - the one place errors become exit codes
        if debug:
            import traceback

            from dsv.base.secrets import redact

            try:
                sys.stderr.write(redact(traceback.format_exc()))
            except OSError:
                pass
        return report(err)
    return code if isinstance(code, int) else 0


def report(err: BaseException) -> int:
    """Print ``err`` to stderr as one line; return the exit code."""
    line, code = format_error(err)
    try:
        print(line, file=sys.stderr)
    except OSError:
        pass
    return code
