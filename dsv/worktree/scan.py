"""Walking the working tree and comparing it with the stat cache.

The walk is one ``scandir`` per directory and one ``lstat`` per file (from the
directory entry), with no per-file pattern loop and no per-file ``open`` unless
the stat changed. Regular files and symlinks are tracked; symlinks are never
followed. FIFOs, sockets and devices are skipped and reported; so are names
that are not valid UTF-8 (a manifest path is UTF-8).
"""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dsv.base.errors import StorageError
from dsv.worktree.ignore import ALWAYS_IGNORED, IgnoreRules
from dsv.worktree.statcache import StatCache, StatKey, stat_key

MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000

Warn = Callable[[str], None]


def dsv_mode(st_mode: int) -> int | None:
    """The manifest mode for an ``lstat`` mode, or ``None`` for untracked kinds."""
    if statmod.S_ISREG(st_mode):
        return MODE_EXEC if st_mode & 0o100 else MODE_FILE
    if statmod.S_ISLNK(st_mode):
        return MODE_LINK
    return None


def walk(root: str, ignore: IgnoreRules | None, warn: Warn, *, under: str = "") -> Iterator[tuple[str, os.stat_result, int]]:
    """Yield ``(path, lstat, mode)`` for every tracked-kind file below ``root``.

    ``under`` limits the walk to one folder (a manifest-style path).
    """
    start = os.path.join(root, *under.split("/")) if under else root
    stack = [(under + "/" if under else "", start)]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            it = os.scandir(abs_dir)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as err:
            raise StorageError("list", abs_dir, err) from err
        with it:
            for e in it:
                name = e.name
                if not name.isascii():
                    try:
                        name.encode("utf-8")
                    except UnicodeEncodeError:
                        warn(f"skipped {rel_dir}{name.encode('utf-8', 'surrogateescape')!r}: name is not valid UTF-8")
                        continue
                rel = rel_dir + name
                try:
                    if e.is_dir(follow_symlinks=False):
                        if not rel_dir and name in ALWAYS_IGNORED:
                            continue
                        if ignore is not None and ignore.ignores_dir(rel):
                            continue
                        stack.append((rel + "/", e.path))
                        continue
                    if ignore is not None and ignore.ignores_file(rel):
                        continue
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError as err:
                    raise StorageError("stat", e.path, err) from err
                mode = dsv_mode(st.st_mode)
                if mode is None:
                    warn(f"skipped {rel}: not a regular file or symlink")
                    continue
                yield rel, st, mode


@dataclass
class ScanResult:
    """The working tree against the stat cache.

    ``clean`` rows are unchanged (by stat) cached rows; ``suspect`` rows are
    cached paths whose stat changed (content may or may not differ); ``new``
    are paths not in the cache; ``missing`` are cached rows not found.
    """

    clean: list[tuple[int, StatKey]] = field(default_factory=list)
    suspect: list[tuple[int, os.stat_result, int]] = field(default_factory=list)
    new: list[tuple[str, os.stat_result, int]] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)


def scan(root: str, cache: StatCache, ignore: IgnoreRules | None, warn: Warn, *, under: str = "") -> ScanResult:
    """Classify every file of the working tree (or of folder ``under``) against ``cache``."""
    index = cache.index
    keys = cache.keys
    result = ScanResult()
    clean_append = result.clean.append
    seen = 0
    seen_rows: set[int] = set()
    for rel, st, mode in walk(root, ignore, warn, under=under):
        row = index.get(rel)
        if row is None:
            result.new.append((rel, st, mode))
            continue
        seen += 1
        seen_rows.add(row)
        key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, mode)
        if keys[row] == key:
            clean_append((row, key))
        else:
            result.suspect.append((row, st, mode))
    if under:
        prefix = under + "/"
        expected = [i for i, p in enumerate(cache.paths) if p.startswith(prefix) or p == under]
    else:
        expected = range(len(cache.paths))
    if seen != len(expected):
        result.missing = [i for i in expected if i not in seen_rows]
    return result


def file_stat_key(st: os.stat_result, mode: int) -> StatKey:
    """Re-export of :func:`stat_key` for callers of this module."""
    return stat_key(st, mode)
