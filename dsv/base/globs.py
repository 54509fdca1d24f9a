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

import itertools
import re
from collections.abc import Callable

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""A ``{name}`` placeholder of a folder pattern."""


_ATOMIC_NAMES = itertools.count()


def translate(glob: str, placeholder: Callable[[str], str] | None = None) -> str:
    """Regex source for one glob, without anchors.

    A run of ``*`` and fixed text between two ``*`` within a component matches
    the fixed text's leftmost occurrence, atomically (the lookahead and
    back-reference trick of :func:`fnmatch.translate`): a plain ``[^/]*a[^/]*a...``
    backtracks through every split, minutes for ``*a*a*a*a*a*a*a*a*b`` against a
    100-character name. Taking the leftmost occurrence loses no match there,
    since the ``*`` after it absorbs any text the ``*`` before it would have
    (neither crosses a ``/``, and the fixed text holds none).

    Args:
        glob: the pattern.
        placeholder: when given, ``{name}`` is replaced by ``placeholder(name)``;
            otherwise braces are literal characters.
    """
    # (kind, regex source): "star" '*', "dstar" '**', "dirs" '**/', "slash" '/', "fixed" text
    # that never matches '/', "other" the rest (a class that might match '/', a placeholder).
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "{" and placeholder is not None:
            m = PLACEHOLDER.match(glob, i)
            if m:
                tokens.append(("other", placeholder(m.group(1))))
                i = m.end()
                continue
        if c == "*":
            if glob.startswith("**", i):
                # "**/" matches zero or more directories; a trailing "**" everything.
                if glob.startswith("**/", i):
                    tokens.append(("dirs", "(?:.*/)?"))
                    i += 3
                    continue
                tokens.append(("dstar", ".*"))
                i += 2
                continue
            tokens.append(("star", "[^/]*"))
        elif c == "?":
            tokens.append(("fixed", "[^/]"))
        elif c == "[":
            j = glob.find("]", i + 2 if glob.startswith("[!", i) or glob.startswith("[^", i) else i + 1)
            if j == -1:
                tokens.append(("fixed", re.escape(c)))
            else:
                body = glob[i + 1 : j]
                negated = body.startswith(("!", "^"))
                if negated:
                    body = "^/" + body[1:]  # a negated class never matches the separator
                tokens.append(("other" if "/" in body[negated * 2 :] else "fixed", "[" + body.replace("\\", "\\\\") + "]"))
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            tokens.append(("slash" if glob[i] == "/" else "fixed", re.escape(glob[i])))
        else:
            tokens.append(("slash" if c == "/" else "fixed", re.escape(c)))
        i += 1
    out = []
    k = 0
    while k < len(tokens):
        kind, src = tokens[k]
        if kind in _LAZY:
            j = k + 1
            while j < len(tokens) and tokens[j][0] in ("fixed", "slash"):
                j += 1
            if j > k + 1 and j < len(tokens) and _leftmost_is_enough(kind, tokens[k + 1 : j], tokens[j][0]):
                name = f"_a{next(_ATOMIC_NAMES)}"
                fixed = "".join(t[1] for t in tokens[k + 1 : j])
                out.append(f"(?=(?P<{name}>{_LAZY[kind]}{fixed}))(?P={name})")
                k = j  # the next wildcard starts the next run
                continue
        out.append(src)
        k += 1
    return "".join(out)


_LAZY = {"star": "[^/]*?", "dstar": ".*?", "dirs": "(?:.*?/)??"}
"""Each wildcard's lazy form, which finds the leftmost place the fixed text after it matches."""


def _leftmost_is_enough(before: str, fixed: list[tuple[str, str]], after: str) -> bool:
    """Whether the leftmost match of ``fixed`` after the wildcard ``before`` loses no match,
    given the wildcard ``after`` it: the later wildcard must absorb the text between the
    leftmost match and any later one. ``**`` absorbs anything; ``**/`` any text ending in
    ``/`` (so ``fixed`` must end with one); ``*`` text without ``/`` (so ``before`` must
    be ``*`` too and ``fixed`` hold no ``/``)."""
    if after == "dstar":
        return True
    if after == "dirs":
        return fixed[-1][0] == "slash"
    if after == "star":
        return before == "star" and all(kind == "fixed" for kind, _ in fixed)
    return False
