"""Walking the working tree and comparing it with the stat cache.

The walk is one ``scandir`` per directory and one ``lstat`` per file (from the
directory entry), with no per-file pattern loop and no per-file ``open`` unless
the stat changed. Regular files and symlinks are tracked; symlinks are never
followed. FIFOs, sockets and devices are skipped and reported; so are names
that are not valid UTF-8 (a manifest path is UTF-8).
"""

from __future__ import annotations

import errno
import os
import stat as statmod
from array import array
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator

from dsv.base.errors import StorageError
from dsv.base.filemodes import MODE_EXEC, MODE_FILE, MODE_LINK
from dsv.base.forkjob import SCAN_MIN_FILES, ChildFailed, ForkJob, fork_available
from dsv.base.records import Record
from dsv.worktree.ignore import ALWAYS_IGNORED, CHECKOUT_TEMP_RE, IgnoreRules, is_temp_name
from dsv.worktree.statcache import KEY, UNKNOWN_KEY, StatCache

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Warn = Callable[[str], None]


def dsv_mode(st_mode: int) -> int | None:
    """The manifest mode for an ``lstat`` mode, or ``None`` for untracked kinds."""
    if statmod.S_ISREG(st_mode):
        return MODE_EXEC if st_mode & 0o100 else MODE_FILE
    if statmod.S_ISLNK(st_mode):
        return MODE_LINK
    return None


class ScanResult(Record):
    """The working tree against the stat cache.

    ``clean`` are rows of the cache whose stat is unchanged (their cached key
    stands); ``suspect`` are cached rows whose stat changed (content may or may
    not differ); ``new`` are paths not in the cache; ``missing`` are cached rows
    not found.
    """

    __slots__ = ("clean", "suspect", "new", "missing", "leftovers", "skipped", "unreachable")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self.clean: list[int] = []
        self.suspect: list[tuple[int, Any, int]] = []
        """``(row, stat, mode)``, the stat a :class:`FileStat`."""
        self.new = NewFiles()
        """Files not in the cache (iterates as ``(path, FileStat, mode)``)."""
        self.missing: list[int] = []
        self.leftovers: list[str] = []
        """Checkout temp files (``.dsv-tmp-*``) a killed process left behind."""
        self.skipped: list[str] = []
        """Paths the walk warned about and left out (a monitored scan looks at them again next time)."""
        self.unreachable: list[str] = []
        """Files, and folders (ending with ``/``), the system refused to reach by path (too long):
        their cached rows are kept as they are, never counted missing (see :meth:`keep_unreachable`)."""

    def keep_unreachable(self, rows: "Iterable[int]", paths: "list[str]") -> list[int]:
        """``rows`` less those at or below an unreachable path: a file dsv cannot reach is not a removed file."""
        if not self.unreachable:
            return list(rows)
        files = {p for p in self.unreachable if not p.endswith("/")}
        folders = tuple(p for p in self.unreachable if p.endswith("/"))
        return [r for r in rows if paths[r] not in files and not paths[r].startswith(folders)]


_S_IFMT = 0o170000
_S_IFREG = 0o100000
_S_IFLNK = 0o120000



class FileStat(namedtuple("FileStat", "st_mode st_size st_mtime_ns st_ctime_ns st_ino")):
    """The ``lstat`` fields dsv uses (all ints), in a form that crosses a pipe cheaply."""

    __slots__ = ()


class NewFiles:
    """Files the cache does not know, as columns: paths, five ``lstat`` fields each, dsv modes.

    A first commit of a million files finds a million of them; as a tuple of a
    path and a :class:`FileStat` each they took ~380 bytes per file, as columns
    ~140. Iterating yields ``(path, FileStat, mode)`` made on the fly.
    """

    __slots__ = ("paths", "stats", "inodes", "modes")

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.stats = array("q")
        """``st_mode, st_size, st_mtime_ns, st_ctime_ns`` per file."""
        self.inodes = array("Q")
        self.modes = array("i")

    def add(self, path: str, st: Any, mode: int) -> None:
        """Record one file from its ``lstat`` result (or a :class:`FileStat`)."""
        self.paths.append(path)
        self.stats.extend((st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        self.inodes.append(st.st_ino)
        self.modes.append(mode)

    def append(self, item: tuple[str, Any, int]) -> None:
        """``add`` for a ``(path, stat, mode)`` tuple."""
        self.add(*item)

    def stat(self, i: int) -> FileStat:
        """The :class:`FileStat` of file ``i``."""
        s = self.stats
        return FileStat(s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3], self.inodes[i])

    def size(self, i: int) -> int:
        """The size of file ``i``."""
        return self.stats[4 * i + 1]

    def __len__(self) -> int:
        return len(self.paths)

    def __bool__(self) -> bool:
        return bool(self.paths)

    def __iter__(self) -> "Iterator[tuple[str, Any, int]]":  # Any: a FileStat, typed where an os.stat_result goes
        for i, p in enumerate(self.paths):
            yield p, self.stat(i), self.modes[i]

    def extend(self, other: "NewFiles") -> None:
        """Append another set's files."""
        self.paths += other.paths
        self.stats += other.stats
        self.inodes += other.inodes
        self.modes += other.modes

    def clear(self) -> None:
        """Forget every file."""
        self.paths = []
        self.stats = array("q")
        self.inodes = array("Q")
        self.modes = array("i")

    def to_wire(self) -> tuple[list[str], bytes, bytes, bytes]:
        """A ``marshal``-able form (for the forked half of a walk)."""
        return self.paths, self.stats.tobytes(), self.inodes.tobytes(), self.modes.tobytes()

    @classmethod
    def from_wire(cls, wire: tuple[list[str], bytes, bytes, bytes]) -> "NewFiles":
        """The inverse of :meth:`to_wire` (same machine, same byte order)."""
        out = cls()
        out.paths = list(wire[0])
        out.stats.frombytes(wire[1])
        out.inodes.frombytes(wire[2])
        out.modes.frombytes(wire[3])
        return out


def _scan_dirs(
    units: list[tuple[str, str]],
    index_get: Callable[[str], int | None],
    keys: bytearray,
    ignore: IgnoreRules | None,
    warn: Warn,
    result: ScanResult,
    leftover: list[tuple[str, str]] | None = None,
) -> None:
    """The hot loop: walk ``units`` (``(rel_dir, abs_dir)``), classifying each file.

    With ``leftover`` given, subfolders are collected there instead of walked.
    The per-file rules (:func:`dsv_mode`, the key compare) are written out here
    rather than called: a call per file is ~10% of a million-file walk.
    :func:`scan_changed` applies the same rules to single paths, and
    tests/test_fsmonitor.py holds the two to the same answer on random edits.
    """
    key_of = KEY.pack
    ksize = KEY.size
    clean_append = result.clean.append
    suspect_append = result.suspect.append
    new_paths_append = result.new.paths.append
    new_stats_extend = result.new.stats.extend
    new_inodes_append = result.new.inodes.append
    new_modes_append = result.new.modes.append
    stack = list(units)
    pop = stack.pop
    push = stack.append if leftover is None else leftover.append
    while stack:
        rel_dir, abs_dir = pop()
        try:
            it = os.scandir(abs_dir)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as err:
            if err.errno == errno.ENAMETOOLONG:
                warn(f"skipped folder {rel_dir.rstrip('/')}: its path is too long for the operating system (its files are kept as committed)")
                result.skipped.append(rel_dir.rstrip("/"))
                result.unreachable.append(rel_dir)
                continue
            raise StorageError("list", abs_dir, err) from err
        with it:
            for e in it:
                name = e.name
                if not name.isascii():
                    try:
                        name.encode("utf-8")
                    except UnicodeEncodeError:
                        warn(f"skipped {rel_dir}{name.encode('utf-8', 'surrogateescape')!r}: name is not valid UTF-8")
                        result.skipped.append(rel_dir + name)
                        continue
                # .dsv and .git (any letter case, file or folder) and dsv's temp files are never tracked.
                if name[0] == "." and (name.lower() in ALWAYS_IGNORED or is_temp_name(name)):
                    if CHECKOUT_TEMP_RE.match(name) and not e.is_dir(follow_symlinks=False):
                        result.leftovers.append(rel_dir + name)
                    continue
                rel = rel_dir + name
                try:
                    if e.is_dir(follow_symlinks=False):
                        if ignore is None or not ignore.ignores_dir(rel):
                            push((rel + "/", e.path))
                        continue
                    if ignore is not None and ignore.ignores_file(rel):
                        continue
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError as err:
                    if err.errno == errno.ENAMETOOLONG:
                        warn(f"skipped {rel}: its path is too long for the operating system (kept as committed)")
                        result.skipped.append(rel)
                        result.unreachable.append(rel)
                        continue
                    raise StorageError("stat", e.path, err) from err
                fmt = st.st_mode & _S_IFMT
                if fmt == _S_IFREG:
                    mode = MODE_EXEC if st.st_mode & 0o100 else MODE_FILE
                elif fmt == _S_IFLNK:
                    mode = MODE_LINK
                else:
                    warn(f"skipped {rel}: not a regular file or symlink")
                    result.skipped.append(rel)
                    continue
                row = index_get(rel)
                if row is None:
                    # Columns, not a stat_result (~20 fields, ~500 bytes) per file: a first commit of
                    # a million files finds a million new ones.
                    new_paths_append(rel)
                    new_stats_extend((st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
                    new_inodes_append(st.st_ino)
                    new_modes_append(mode)
                elif keys[row * ksize : row * ksize + ksize] == key_of(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, mode):
                    clean_append(row)
                else:
                    suspect_append((row, FileStat(st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino), mode))


def _scan_forked(
    units: list[tuple[str, str]], cache: StatCache, ignore: IgnoreRules | None, result: ScanResult, warn: Warn
) -> None:
    """Walk ``units`` split between this process and one forked child.

    The child inherits the stat cache copy-on-write and sends back only its
    classification (plain tuples), so two cores share the ``lstat`` calls and
    the per-file Python work.
    """
    mine = units[0::2]
    theirs = units[1::2]

    def child() -> tuple[list[int], list[Any], tuple[list[str], bytes, bytes, bytes], list[str], list[str], list[str], list[str]]:
        part = ScanResult()
        notes: list[str] = []
        _scan_dirs(theirs, cache.index.get, cache.key_blob, ignore, notes.append, part)
        return (
            part.clean,
            [(r, tuple(st), m) for r, st, m in part.suspect],
            part.new.to_wire(),
            notes,
            part.leftovers,
            part.skipped,
            part.unreachable,
        )

    job = ForkJob(child)
    try:
        _scan_dirs(mine, cache.index.get, cache.key_blob, ignore, warn, result)
    except BaseException:
        job.cancel()
        raise
    try:
        clean, suspect, new, notes, leftovers, skipped, unreachable = job.result()
    except ChildFailed:
        _scan_dirs(theirs, cache.index.get, cache.key_blob, ignore, warn, result)
        return
    result.clean.extend(clean)
    result.suspect.extend((r, FileStat(*st), m) for r, st, m in suspect)
    result.new.extend(NewFiles.from_wire(new))
    result.leftovers.extend(leftovers)
    result.skipped.extend(skipped)
    result.unreachable.extend(unreachable)
    for n in notes:
        warn(n)


def scan(
    root: str, cache: StatCache, ignore: IgnoreRules | None, warn: Warn, *, under: str = "", parallel: bool | None = None,
    changed: Iterable[str] | None = None,
) -> ScanResult:
    """Classify every file of the working tree (or of folder ``under``) against ``cache``.

    Large trees are walked by two processes when the machine has two cores and
    this process runs no other thread (forking a threaded process is unsafe).
    With ``changed`` (a file-system monitor's answer), only those paths are
    looked at (:func:`scan_changed`).
    """
    if changed is not None and not under:
        return scan_changed(root, cache, ignore, warn, changed)
    result = ScanResult()
    start = os.path.join(root, *under.split("/")) if under else root
    units = [(under + "/" if under else "", start)]
    if parallel is None:
        parallel = len(cache) >= SCAN_MIN_FILES or not len(cache)
    parallel = parallel and fork_available()
    if parallel:
        # Expand the top levels until there are enough folders to share out.
        for _ in range(4):
            leftover: list[tuple[str, str]] = []
            _scan_dirs(units, cache.index.get, cache.key_blob, ignore, warn, result, leftover)
            units = sorted(leftover)
            if len(units) >= 8 or not units:
                break
        if len(units) >= 2:
            _scan_forked(units, cache, ignore, result, warn)
        else:
            _scan_dirs(units, cache.index.get, cache.key_blob, ignore, warn, result)
    else:
        _scan_dirs(units, cache.index.get, cache.key_blob, ignore, warn, result)
    if under:
        prefix = under + "/"
        expected: range | list[int] = [i for i, p in enumerate(cache.paths) if p.startswith(prefix) or p == under]
    else:
        expected = range(len(cache))
    if len(result.clean) + len(result.suspect) != len(expected):
        seen = bytearray(len(cache))
        for r in result.clean:
            seen[r] = 1
        for r, _, _ in result.suspect:
            seen[r] = 1
        result.missing = result.keep_unreachable((i for i in expected if not seen[i]), cache.paths)
    return result


def unknown_rows(cache: StatCache) -> list[int]:
    """Rows whose stat key is unknown (:data:`UNKNOWN_KEY`: racy, or never stat'ed): always checked."""
    blob = cache.key_blob
    ksize = KEY.size
    out = []
    pos = blob.find(UNKNOWN_KEY)
    while pos != -1:
        if pos % ksize == 0:
            out.append(pos // ksize)
            pos = blob.find(UNKNOWN_KEY, pos + ksize)
        else:
            pos = blob.find(UNKNOWN_KEY, pos - pos % ksize + ksize)
    return out


def _plausible(path: str) -> bool:
    """A relative ``/`` path with no empty, ``.`` or ``..`` part (a forged or damaged monitor state can hold anything)."""
    return bool(path) and "\0" not in path and all(part not in ("", ".", "..") for part in path.split("/"))


def scan_changed(root: str, cache: StatCache, ignore: IgnoreRules | None, warn: Warn, changed: Iterable[str]) -> ScanResult:
    """Classify only the paths a file-system monitor reported (:mod:`dsv.worktree.fsmonitor`).

    ``changed`` holds files and folders (ending with ``/``). Folders are walked
    as a full scan walks them, and so is a reported file that is a folder now;
    files are checked one by one with the walk's rules (no ``.dsv``/``.git``
    component, no temp name, no ignored folder above, real folders only, valid
    UTF-8). Rows whose stat key is unknown are checked too. Every other cached
    row is taken as unchanged: that is the monitor's promise. Paths that drew a
    warning are listed in ``result.skipped`` (they stay pending, so the warning
    repeats as a full walk's would).
    """
    result = ScanResult()
    folders: set[str] = set()
    files: set[str] = set()
    for p in changed:
        if p.endswith("/"):
            if _plausible(p[:-1]):
                folders.add(p)
        elif _plausible(p):
            files.add(p)
    for r in unknown_rows(cache):
        files.add(cache.paths[r])
    if not files and not folders:
        return result  # nothing changed: the usual answer, with no path list or index built
    # A reported file that is a folder now is walked as one (and only once).
    now_folders = {p for p in files if _is_real_dir(root, p)}
    folders.update(p + "/" for p in now_folders)
    outer: list[str] = []
    for d in sorted(folders):
        if not outer or not d.startswith(outer[-1]):
            outer.append(d)
    prefixes = tuple(outer)
    # Rows of every reported path are re-decided: found again below, or missing.
    rows = cache.rows_of(sorted(files))
    handled: set[int] = set(rows.values())
    if prefixes:
        handled.update(i for i, p in enumerate(cache.paths) if p.startswith(prefixes))
    dir_ok: dict[str, bool] = {"": True}
    for d in outer:
        rel = d.rstrip("/")
        if _folder_tracked(root, rel, ignore, dir_ok):
            _scan_dirs([(d, os.path.join(root, *rel.split("/")))], cache.index.get, cache.key_blob, ignore, warn, result)
    key_of = KEY.pack

    def skip(message: str, rel: str) -> None:
        warn(message)
        result.skipped.append(rel)

    for rel in sorted(files):
        if rel.startswith(prefixes) or rel in now_folders:
            continue  # (a reported folder that is a file now is checked as a file, here)
        row = rows.get(rel)
        parent, _, name = rel.rpartition("/")
        if not _folder_tracked(root, parent, ignore, dir_ok):
            continue
        if name[0] == "." and (name.lower() in ALWAYS_IGNORED or is_temp_name(name)):
            if CHECKOUT_TEMP_RE.match(name) and os.path.lexists(os.path.join(root, *rel.split("/"))):
                result.leftovers.append(rel)
            continue
        if ignore is not None and ignore.ignores_file(rel):
            continue
        full = os.path.join(root, *rel.split("/"))
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as err:
            if err.errno == errno.ENAMETOOLONG:
                skip(f"skipped {rel}: its path is too long for the operating system (kept as committed)", rel)
                result.unreachable.append(rel)
                continue
            raise StorageError("stat", full, err) from err
        if not name.isascii():
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                skip(f"skipped {rel.encode('utf-8', 'surrogateescape')!r}: name is not valid UTF-8", rel)
                continue
        mode = dsv_mode(st.st_mode)
        if mode is None:
            skip(f"skipped {rel}: not a regular file or symlink", rel)
            continue
        fs = FileStat(st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        if row is None:
            result.new.add(rel, fs, mode)
        elif cache.key_blob[row * KEY.size : (row + 1) * KEY.size] == key_of(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, mode):
            result.clean.append(row)
        else:
            result.suspect.append((row, fs, mode))
    seen = set(result.clean)
    seen.update(r for r, _, _ in result.suspect)
    result.missing = result.keep_unreachable(sorted(handled - seen), cache.paths)
    return result


def _folder_tracked(root: str, rel: str, ignore: IgnoreRules | None, memo: dict[str, bool]) -> bool:
    """Whether the walk would descend into folder ``rel`` (every component a real, unignored folder)."""
    if rel in memo:
        return memo[rel]
    parent, _, name = rel.rpartition("/")
    ok = _folder_tracked(root, parent, ignore, memo)
    if ok:
        try:
            name.encode("utf-8")
            valid = True
        except UnicodeEncodeError:
            valid = False
        ok = valid and name.lower() not in ALWAYS_IGNORED and not is_temp_name(name) and (ignore is None or not ignore.ignores_dir(rel))
        ok = ok and _is_real_dir(root, rel)
    memo[rel] = ok
    return ok


def _is_real_dir(root: str, rel: str) -> bool:
    try:
        return statmod.S_ISDIR(os.lstat(os.path.join(root, *rel.split("/"))).st_mode)
    except OSError:
        return False


def find_leftovers(root: str) -> list[str]:
    """Every checkout temp file (``.dsv-tmp-*``) in the working tree, for gc.

    A plain walk (no stat cache): it skips ``.dsv`` and ``.git`` folders and
    never follows symlinks.
    """
    out: list[str] = []
    stack = [("", root)]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            it = os.scandir(abs_dir)
        except OSError:
            continue
        with it:
            for e in it:
                name = e.name
                try:
                    is_dir = e.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    if name.lower() not in ALWAYS_IGNORED:
                        stack.append((rel_dir + name + "/", e.path))
                elif CHECKOUT_TEMP_RE.match(name):
                    out.append(rel_dir + name)
    return sorted(out)
