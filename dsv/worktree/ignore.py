"""``.dsvignore``: gitignore-style patterns, compiled once into regular expressions.

Supported: blank lines and ``#`` comments, ``!`` negation (last match wins),
trailing ``/`` (directories only), a leading or inner ``/`` anchoring to the
root, ``*``, ``?``, ``[...]`` and ``**``. Only the ``.dsvignore`` at the root is
read. An ignored directory is pruned from the walk, so (as in git) a negation
cannot re-include a file below an ignored directory. Folders named ``.dsv`` or
``.git`` are never tracked at any depth, nor are dsv's own temp files.

Without negations all patterns fold into one regex per kind, so matching costs
one ``re.match`` per name, not one per pattern (a cost DVC pays per file).
"""

from __future__ import annotations

import os
import re
import stat

from dsv.base.globs import translate as _translate
from dsv.base.records import FrozenRecord, init_field

ALWAYS_IGNORED = frozenset({".dsv", ".git"})
"""Folder names never tracked, at any depth."""

CHECKOUT_TEMP_PREFIX = ".dsv-tmp-"
"""Start of the name of a file checkout is writing in the tree (``.dsv-tmp-<16 hex>``)."""

CHECKOUT_TEMP_RE = re.compile(r"\.dsv-tmp-[0-9a-f]{16}\Z")
"""Exactly the names of checkout's temp files: only these are ever deleted as leftovers."""

RESERVED_TEMP_RE = re.compile(r"\.dsv-tmp-(?:[0-9a-f]{16}|staging-[0-9a-f]{12})\Z|\.dsv\.init-[0-9]+\Z")
"""Names dsv itself creates in the working tree while it works: never tracked, refused in manifests.

Any other name (``.dsv-tmp-notes.txt``) is an ordinary file."""


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of dsv's own in-flight names (:data:`RESERVED_TEMP_RE`)."""
    return name.startswith((".dsv-tmp-", ".dsv.init-")) and RESERVED_TEMP_RE.match(name) is not None
"""Names of dsv's own in-flight files (checkout temp files, a half-made repository): never tracked."""
IGNORE_FILE = ".dsvignore"


class _Rule(FrozenRecord):
    __slots__ = ("regex", "negate", "dir_only")

    regex: re.Pattern[str]
    negate: bool
    dir_only: bool

    def __init__(self, regex: re.Pattern[str], negate: bool, dir_only: bool) -> None:
        init_field(self, "regex", regex)
        init_field(self, "negate", negate)
        init_field(self, "dir_only", dir_only)


def _compile_line(line: str, number: int = 0) -> _Rule | None:
    line = line.rstrip("\n").rstrip("\r")
    if not line.strip() or line.startswith("#"):
        return None
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(line) > len(stripped):
        stripped += " "
    line = stripped
    negate = line.startswith("!")
    if negate:
        line = line[1:]
    elif line.startswith("\\!") or line.startswith("\\#"):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/")
    src = _translate(line)
    if not anchored:
        src = "(?:.*/)?" + src
    try:
        return _Rule(re.compile(src + r"\Z", re.DOTALL), negate, dir_only)
    except re.error as err:
        from dsv.base.errors import UsageError

        raise UsageError(f".dsvignore line {number}: cannot use pattern {line!r} ({err.msg})", hint="fix or escape the [...] class") from err


class IgnoreRules:
    """Compiled ``.dsvignore`` rules; paths are ``/``-separated and relative to the root."""

    def __init__(self, lines: list[str]) -> None:
        self.rules = [r for r in (_compile_line(x, n) for n, x in enumerate(lines, 1)) if r is not None]
        self._has_negation = any(r.negate for r in self.rules)
        if not self._has_negation:
            files = [r.regex.pattern for r in self.rules if not r.dir_only]
            dirs = [r.regex.pattern for r in self.rules]
            self._file_re = re.compile("|".join(f"(?:{p})" for p in files), re.DOTALL) if files else None
            self._dir_re = re.compile("|".join(f"(?:{p})" for p in dirs), re.DOTALL) if dirs else None

    def __bool__(self) -> bool:
        return bool(self.rules)

    def _ordered(self, path: str, is_dir: bool) -> bool:
        ignored = False
        for r in self.rules:
            if r.dir_only and not is_dir:
                continue
            if r.regex.match(path):
                ignored = not r.negate
        return ignored

    def ignores_file(self, path: str) -> bool:
        """Whether a file (or symlink) at ``path`` is ignored."""
        if self._has_negation:
            return self._ordered(path, False)
        return self._file_re is not None and self._file_re.match(path) is not None

    def ignores_dir(self, path: str) -> bool:
        """Whether the directory ``path`` (and so all below it) is ignored."""
        if self._has_negation:
            return self._ordered(path, True)
        return self._dir_re is not None and self._dir_re.match(path) is not None


IGNORE_MAX_BYTES = 16 << 20
"""A ``.dsvignore`` larger than this is refused (a symlink to a huge file would fill memory)."""


def load_ignore(root: str) -> IgnoreRules | None:
    """Rules from ``root/.dsvignore``, or ``None`` when there is none.

    Opened without blocking and read only if it is a regular file (a symlink to
    one is followed): a FIFO, a device or a folder there is a usage error, not a
    hang or an endless read.
    """
    from dsv.base.errors import StorageError, UsageError

    path = os.path.join(root, IGNORE_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StorageError("read", path, err) from err
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{IGNORE_FILE} is not a regular file", hint=f"make {path} a text file of patterns, or remove it")
        if st.st_size > IGNORE_MAX_BYTES:
            raise UsageError(f"{IGNORE_FILE} is {st.st_size} bytes, more than a file of patterns holds", hint=f"check {path}")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    except OSError as err:
        raise StorageError("read", path, err) from err
    finally:
        os.close(fd)
    rules = IgnoreRules(b"".join(chunks).decode("utf-8", "surrogateescape").splitlines())
    return rules or None
