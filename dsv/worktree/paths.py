"""Path safety: every manifest path is checked before any filesystem call.

A manifest path is a relative, ``/``-separated UTF-8 string. It must not be empty,
absolute, contain empty, ``.`` or ``..`` components or NUL, and no component may
be ``.dsv`` or ``.git`` in any letter case (a malicious manifest must not reach
the repository's own data, or an enclosing git repository's hooks). Paths from
the command line are made relative to the working-tree root and refused if they
leave it.

A backslash is an ordinary character of a file name on POSIX systems, so names
like ``data\\file.csv`` are committed and checked out as they are (as git does).
Where the operating system treats ``\\`` as a separator (Windows), such a path
would name other folders, so it is refused there.
"""

from __future__ import annotations

import os

from dsv.base.errors import UnsafePathError
from dsv.base.layout import DSV_DIR
from dsv.worktree.ignore import is_temp_name

RESERVED_NAMES = frozenset({DSV_DIR, ".git"})
"""Folder names never tracked (at any depth) and refused in manifests."""


BACKSLASH_IS_SEPARATOR = "\\" in (os.sep, os.altsep)
"""Whether this system reads ``\\`` in a path as a folder separator."""


def check_manifest_path(path: str, *, backslash_is_separator: bool = BACKSLASH_IS_SEPARATOR) -> str:
    """Return ``path`` if it is safe to join to the working-tree root, else raise."""
    if not path:
        raise UnsafePathError(path, "empty path")
    if "\x00" in path:
        raise UnsafePathError(path, "contains NUL")
    if backslash_is_separator and "\\" in path:
        raise UnsafePathError(path, "contains a backslash, a folder separator on this system")
    if path.startswith("/"):
        raise UnsafePathError(path, "absolute path")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePathError(path, f"has a {part or 'empty'!r} component")
        if part.startswith(".dsv") and is_temp_name(part):
            raise UnsafePathError(path, f"has a component {part!r} named like dsv's own temp files")
        # Case-insensitively, so that '.DSV' cannot reach '.dsv' on macOS or Windows filesystems.
        if part.lower() in RESERVED_NAMES:
            raise UnsafePathError(path, f"has a reserved {part!r} component")
    return path


def to_repo_path(root: str, user_path: str, cwd: str | None = None) -> str:
    """Turn a command-line path into a manifest-style path relative to ``root``.

    Returns ``""`` for the root itself. Raises :class:`UnsafePathError` for paths
    outside the working tree or inside ``.dsv``.
    """
    base = cwd if cwd is not None else os.getcwd()
    absolute = os.path.normpath(os.path.join(base, user_path))
    root_abs = os.path.normpath(os.path.abspath(root))
    rel = os.path.relpath(absolute, root_abs)
    if rel == ".":
        return ""
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        raise UnsafePathError(user_path, "outside the working tree", hint=f"give a path inside {root_abs}; paths are taken from the current folder")
    rel = rel.replace(os.sep, "/")
    if any(part.lower() == DSV_DIR for part in rel.split("/")):
        raise UnsafePathError(user_path, "points inside .dsv", hint="dsv's own files are not part of any version")
    return rel
