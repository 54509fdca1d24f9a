"""Glob patterns to regular expressions: one translator for ``.dsvignore`` and ``dsv.toml``.

Syntax (gitignore's, path components separated by ``/``):

* ``*`` any run of characters within one component, ``?`` one character;
* ``**/`` zero or more whole folders, any other ``**`` any run including ``/``;
* ``[abc]``, ``[a-z]``, ``[!abc]`` / ``[^abc]`` one character of (not of) a class,
  never ``/``;
* ``\\x`` the character ``x`` literally.

``dsv.toml`` folder patterns add placeholders (``{label}``): the caller passes
``placeholder`` to say what each one becomes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""A ``{name}`` placeholder of a folder pattern."""


def translate(glob: str, placeholder: Callable[[str], str] | None = None) -> str:
    """Regex source for one glob, without anchors.

    Args:
        glob: the pattern.
        placeholder: when given, ``{name}`` is replaced by ``placeholder(name)``;
            otherwise braces are literal characters.
    """
    out = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "{" and placeholder is not None:
            m = PLACEHOLDER.match(glob, i)
            if m:
                out.append(placeholder(m.group(1)))
                i = m.end()
                continue
        if c == "*":
            if glob.startswith("**", i):
                # "**/" matches zero or more directories; a trailing "**" everything.
                if glob.startswith("**/", i):
                    out.append("(?:.*/)?")
                    i += 3
                    continue
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = glob.find("]", i + 2 if glob.startswith("[!", i) or glob.startswith("[^", i) else i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : j]
                if body.startswith(("!", "^")):
                    body = "^/" + body[1:]  # a negated class never matches the separator
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)
