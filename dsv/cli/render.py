"""Human and JSON renderers; the only modules (with ``app``) that write to stdout.

No click import here: ``dsv status`` renders through this module without
loading click (:mod:`dsv.cli.quick`); only colouring on a terminal imports it.
"""

from __future__ import annotations

import json
import re
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dsv.api.worktree_results import StatusResult


def echo(text: str, *, err: bool = False) -> None:
    """One line on stdout (or stderr), flushed, as ``click.echo`` writes it.

    dsv adds colour only when stdout is a terminal (:func:`color`), so there is
    never an escape sequence for ``click.echo`` to strip here.
    """
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def emit_json(value: Any) -> None:
    """Print ``value`` as indented JSON (the documented ``--json`` shape)."""
    # allow_nan=False: never print NaN or Infinity, which strict JSON parsers reject. Non-ASCII
    # text as it is where stdout takes UTF-8, as \u escapes elsewhere (still valid JSON).
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    echo(json.dumps(value, indent=2, ensure_ascii=encoding != "utf8", sort_keys=False, allow_nan=False))


def warn(message: str) -> None:
    """A warning line on stderr."""
    echo(f"dsv: warning: {message}", err=True)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 line``, ``2 lines``; ``many`` for irregular plurals (``plural(2, "class", "classes")``)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def human_size(n: float) -> str:
    """``1.5 MiB`` style sizes (binary units); the one size formatter of every command and the progress bar."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


_NEEDS_QUOTES = re.compile(r"[\s\x00-\x1f]")
"""Whitespace (``\\s`` on ``str`` is ``str.isspace``, Unicode spaces included) or a control character."""


def quote_path(path: str) -> str:
    """A path as shown to humans: quoted when it has spaces or control characters, or starts with ``-``."""
    if path.startswith("-") or _NEEDS_QUOTES.search(path):
        return json.dumps(path, ensure_ascii=False)
    return path


def short(oid: str | None) -> str:
    """Abbreviated id."""
    return (oid or "")[:10]


def color(text: str, fg: str) -> str:
    """Colour ``text`` when stdout is a terminal."""
    if not sys.stdout.isatty():
        return text
    import click

    return click.style(text, fg=fg)


def show_status(st: "StatusResult", as_json: bool) -> None:
    """Print a status result: warnings on stderr, then the text or ``--json`` form."""
    for w in st.warnings:
        warn(w)
    if as_json:
        emit_json(st.to_dict())
        return
    echo(f"On branch {st.branch}" if st.branch else f"HEAD detached at {short(st.head)}")
    if st.checkout_in_progress:
        echo(color(f"A checkout stopped part-way: run `{st.checkout_in_progress}` to finish it.", "red"))
    if st.head is None:
        echo("No commits yet")
    if st.clean:
        echo("nothing to commit, working tree clean")
        return
    for label, items, fg in (("modified", st.modified, "yellow"), ("removed", st.removed, "red"), ("added", st.added, "green")):
        for p in items:
            echo(color(f"  {label + ':':<10} {quote_path(p)}", fg))
    for old, new in st.moved:
        echo(color(f"  {'moved:':<10} {quote_path(old)} -> {quote_path(new)}", "cyan"))
    n = len(st.modified) + len(st.removed) + len(st.added) + len(st.moved)
    echo(f"{n} change(s): {len(st.added)} added, {len(st.removed)} removed, {len(st.modified)} modified, {len(st.moved)} moved")
