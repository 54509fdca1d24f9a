"""Writing a snapshot into the working tree: checked, then staged, then switched.

A checkout changes the working tree in three steps, so that whatever can go
wrong in advance goes wrong before the first change:

1. **Check** (:func:`prepare`): every path is validated, every object the
   checkout needs is present, every symlink target is sane, and nothing stands
   in the way (a symlinked folder, a folder holding untracked files where a file
   must go, a file where a folder must go). Nothing is written.
2. **Stage** (:func:`stage`): every file is written, and verified against its
   id while it is written, where nobody sees it: on Linux as an unnamed file in
   its target's folder (``O_TMPFILE``), else under a temp name beside its
   target or in a staging folder inside ``.dsv``. A corrupt or missing object,
   a full disk or a kill leaves the working tree untouched; what was staged is
   removed (an unnamed file vanishes with the process; temp names are swept).
3. **Switch** (:func:`switch`): tracked files to delete are deleted, empty
   folders in the way removed, and each staged file linked or renamed into
   place. This step only links, renames and deletes; if it is interrupted
   anyway (a kill, a power cut), the caller has recorded the checkout as in
   progress and running the same checkout again completes it.

Staging and the switch create, link, rename and delete only through
descriptors of the folders, each opened from its parent's without following a
symlink (:class:`_Folders`), so nothing is ever written or deleted through a
symlink, even one that replaced a folder while the checkout runs.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat as statmod
from collections.abc import Iterable

from dsv.base.errors import DsvError, ObjectNotFoundError, StorageError, UnsafePathError, WorktreeError
from dsv.base.filemodes import MODE_EXEC, MODE_LINK, MODES
from dsv.base.fsio import write_all
from dsv.base.hashing import from_hex
from dsv.base.layout import DSV_DIR
from dsv.base.progress import NullProgress, Progress
from dsv.base.records import FrozenRecord, Record, init_field
from dsv.store.base import ObjectStore
from dsv.worktree.ignore import CHECKOUT_TEMP_PREFIX, CHECKOUT_TEMP_RE
from dsv.worktree.paths import check_manifest_path
from dsv.worktree.recycle import FolderInTheWay, Recycle, sweep
from dsv.worktree.statcache import StatKey, stat_key

NOTHING_CHANGED = "nothing in the working tree was changed"


class FileWrite(FrozenRecord):
    """One file to write: where, which object, its size and mode."""

    __slots__ = ("path", "oid", "size", "mode")

    path: str
    oid: str
    size: int
    mode: int

    def __init__(self, path: str, oid: str, size: int, mode: int) -> None:
        init_field(self, "path", path)
        init_field(self, "oid", oid)
        init_field(self, "size", size)
        init_field(self, "mode", mode)


def _folders_above(path: str) -> list[str]:
    """``a``, ``a/b`` for ``a/b/c``: the folders a path needs, outermost first."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


class Prepared(Record):
    """A checked checkout: what to write, delete and clear out of the way."""

    __slots__ = ("root", "writes", "removals", "link_targets", "clear_files", "clear_folders", "absent")
    __hash__ = None  # type: ignore[assignment]

    root: str
    writes: list[FileWrite]
    removals: list[str]
    link_targets: dict[str, bytes]
    clear_files: list[str]
    """Untracked files where a folder must go (only with ``force``)."""
    clear_folders: list[str]
    """Folders holding nothing but empty folders, where a file must go."""
    absent: set[str]
    """Written paths with nothing there yet: each needs a new entry in its folder."""

    def __init__(
        self,
        root: str,
        writes: list[FileWrite],
        removals: list[str],
        link_targets: dict[str, bytes] | None = None,
        clear_files: list[str] | None = None,
        clear_folders: list[str] | None = None,
    ) -> None:
        self.root = root
        self.writes = writes
        self.removals = removals
        self.link_targets = {} if link_targets is None else link_targets
        self.clear_files = [] if clear_files is None else clear_files
        self.clear_folders = [] if clear_folders is None else clear_folders
        self.absent = set()


class Staged(Record):
    """Files written and verified where nobody sees them, ready to be linked or renamed into place."""

    __slots__ = ("prepared", "folder", "names", "beside", "created", "unnamed", "folders", "recycle")
    __hash__ = None  # type: ignore[assignment]

    prepared: Prepared
    folder: str
    names: dict[str, str]
    """Files staged under a temp name: path -> that name."""
    beside: list[str]
    """Temp files staged next to their target (a folder on another filesystem than ``.dsv``)."""
    created: list[str]
    """Folders created to stage beside a target, removed again if the checkout stops."""
    unnamed: dict[str, int]
    """Files staged as unnamed files in their target's folder: path -> open descriptor."""
    folders: _Folders | None
    """Descriptors of the tree's folders that staging and the switch write and delete through."""
    recycle: Recycle
    """Where the switch moves what it replaces (dsv.worktree.recycle), emptied as staging creates files."""

    def __init__(
        self,
        prepared: Prepared,
        folder: str,
        names: dict[str, str] | None = None,
        beside: list[str] | None = None,
        created: list[str] | None = None,
    ) -> None:
        self.prepared = prepared
        self.folder = folder
        self.names = {} if names is None else names
        self.beside = [] if beside is None else beside
        self.created = [] if created is None else created
        self.unnamed = {}
        self.folders = None
        self.recycle = Recycle(None)

    def discard(self) -> None:
        """Remove the staging folder, temp files staged beside targets, and folders made for them.

        Closing an unnamed file's descriptor frees it: one that was not linked into place is gone.
        """
        for fd in self.unnamed.values():
            os.close(fd)
        self.unnamed.clear()
        if self.folders is not None:
            self.folders.close()
            self.folders = None
        self.recycle.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        for tmp in self.beside:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        self.beside.clear()
        for d in reversed(self.created):
            try:
                os.rmdir(d)
            except OSError:
                pass
        self.created.clear()


class _Tree:
    """``lstat`` views of the working tree below ``root``."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._prefix = os.path.join(self.root, "")

    def abs(self, path: str) -> str:
        # Manifest paths are checked (check_manifest_path: no empty, '.' or '..' part) before
        # any lookup, so joining by '/' is os.path.join's answer at a fifth of its cost.
        return self._prefix + path if os.sep == "/" else os.path.join(self.root, *path.split("/"))

    def lstat(self, path: str) -> os.stat_result | None:
        try:
            return os.lstat(self.abs(path))
        except (FileNotFoundError, NotADirectoryError):
            return None


class _Folders:
    """Descriptors of the tree's folders, each opened from its parent's without following a symlink.

    Staging and the switch create, link, rename and delete through these
    (``*at`` calls), so a folder that is replaced by a symlink after it was
    checked is never written or deleted through: a folder already open stays
    the real one, and opening one that is now a link fails. The descriptors of
    the folders used last are kept (writes come sorted by path).
    """

    KEEP = 64

    def __init__(self, root: str) -> None:
        self.root = root
        try:
            self._root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as err:
            raise StorageError("open", root, err) from err
        self._fds: dict[str, int] = {}

    def fd(self, rel: str) -> int:
        """The folder ``rel`` (``""``: the root). FileNotFoundError when it does not exist;
        :class:`UnsafePathError` for a symlink, :class:`WorktreeError` for anything else but a folder."""
        if not rel:
            return self._root_fd
        fd = self._fds.pop(rel, None)
        if fd is None:
            parent, _, name = rel.rpartition("/")
            parent_fd = self.fd(parent)
            try:
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
            except FileNotFoundError:
                raise
            except OSError as err:
                if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise StorageError("open folder", os.path.join(self.root, rel), err) from err
                if statmod.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode):
                    raise UnsafePathError(rel, "became a symlink; dsv never writes or deletes through symlinks").with_hint(
                        f"replace the link {rel} with a real folder, then run the checkout again"
                    ) from None
                raise WorktreeError(f"cannot write in {rel}: it is a file, not a folder", hint="move that file away, then run the same checkout again") from None
            if len(self._fds) >= self.KEEP:
                os.close(self._fds.pop(next(iter(self._fds))))
        self._fds[rel] = fd
        return fd

    def forget(self, rel: str) -> None:
        """``rel`` was removed: drop its descriptor and those below it."""
        for key in [k for k in self._fds if k == rel or k.startswith(rel + "/")]:
            os.close(self._fds.pop(key))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        os.close(self._root_fd)


def _limits(root: str) -> tuple[int, int]:
    """The longest file name and path the working tree's filesystem takes."""
    try:
        name_max = os.pathconf(root, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    try:
        path_max = os.pathconf(root, "PC_PATH_MAX")
    except (OSError, ValueError):
        path_max = 4096
    return name_max or 255, path_max or 4096


def check_link_target(path: str, target: bytes) -> bytes:
    """Refuse a symlink target that no filesystem can hold (empty, or with NUL)."""
    if not target:
        raise UnsafePathError(path, f"symlink with an empty target; {NOTHING_CHANGED}")
    if b"\x00" in target:
        raise UnsafePathError(path, f"symlink target contains NUL; {NOTHING_CHANGED}")
    return target


def prepare(
    root: str, store: ObjectStore, writes: Iterable[FileWrite], removals: Iterable[str], *, force: bool = False
) -> Prepared:
    """Check everything a checkout can check before changing anything (step 1).

    Raises :class:`UnsafePathError`, :class:`ObjectNotFoundError` or
    :class:`WorktreeError`; on any of them nothing has been written.
    """
    writes = sorted(writes, key=lambda w: w.path)
    removals = sorted(removals)
    for p in removals:
        check_manifest_path(p)
    name_max, path_max = _limits(root)
    root_prefix = os.path.join(os.path.abspath(root), "")
    previous = None
    for w in writes:
        check_manifest_path(w.path)
        from_hex(w.oid)
        if w.path == previous:
            raise UnsafePathError(w.path, f"appears twice in the snapshot; {NOTHING_CHANGED}")
        previous = w.path
        if w.mode not in MODES:
            raise UnsafePathError(w.path, f"has an unknown file mode {w.mode:o}; {NOTHING_CHANGED}")
        if w.size < 0:
            raise UnsafePathError(w.path, f"has a negative size; {NOTHING_CHANGED}")
        long_part = next((part for part in w.path.split("/") if len(part.encode("utf-8", "surrogateescape")) > name_max), None)
        if long_part is not None:
            raise WorktreeError(
                f"cannot write {w.path}: a name is longer than this filesystem allows ({name_max} bytes)",
                hint=f"check it out on a filesystem that allows longer names; {NOTHING_CHANGED}",
            )
        if len(os.fsencode(root_prefix + w.path)) >= path_max:
            raise WorktreeError(f"cannot write {w.path}: its path is longer than this system allows ({path_max} bytes)", hint=NOTHING_CHANGED)
    removing = set(removals)
    written = {w.path for w in writes}
    # A manifest that holds both "a" and "a/x" cannot be written (one would hide the other).
    for w in writes:
        for d in _folders_above(w.path):
            if d in written:
                raise UnsafePathError(w.path, f"'{d}' is also a file in the same snapshot; {NOTHING_CHANGED}")
    out = Prepared(os.path.abspath(root), writes, removals)
    tree = _Tree(root)
    for w in writes:
        if not store.has(w.oid):
            raise ObjectNotFoundError(w.oid, context=w.path).with_hint(
                f"the repository is missing data; {NOTHING_CHANGED}; run 'dsv fsck', or fetch it from a remote"
            )
        if w.mode == MODE_LINK:
            out.link_targets[w.path] = check_link_target(w.path, store.read(w.oid))
    checked: dict[str, str] = {}
    for w in writes:
        _check_folders(tree, w.path, removing, force, checked, out)
        _check_target(tree, w.path, removing, out)
    # A folder the checkout only deletes from must let it (writes into one that does not are
    # refused while staging): checked now, or the switch would stop part-way.
    for folder in sorted({p.rpartition("/")[0] for p in removals}):
        full = tree.abs(folder) if folder else tree.root
        if os.path.isdir(full) and not os.path.islink(full) and not os.access(full, os.W_OK | os.X_OK):
            raise WorktreeError(
                f"cannot delete files in {folder or '.'}: permission denied",
                hint=f"make the folder writable (chmod u+w), then run the checkout again; {NOTHING_CHANGED}",
            )
    return out


def _check_folders(tree: _Tree, path: str, removing: set[str], force: bool, checked: dict[str, str], out: Prepared) -> None:
    """Every existing folder above ``path`` must be a real folder (or a file that goes away)."""
    for rel in _folders_above(path):
        state = checked.get(rel)
        if state is None:
            st = tree.lstat(rel)
            if st is None:
                state = "absent"
            elif statmod.S_ISDIR(st.st_mode):
                state = "dir"
            elif rel in removing:
                state = "removed"
            elif statmod.S_ISLNK(st.st_mode):
                # Even with --force: a link in the way may lead to data elsewhere; the user decides.
                raise UnsafePathError(path, f"{rel} is a symlink; dsv never writes through symlinks").with_hint(
                    f"replace the link {rel} with a real folder (or move it away), then run the checkout again; {NOTHING_CHANGED}"
                )
            elif force:
                state = "cleared"
                out.clear_files.append(rel)
            else:
                raise WorktreeError(f"cannot write {path}: {rel} is a file that is not tracked", hint=f"move it away or use --force; {NOTHING_CHANGED}")
            checked[rel] = state
        if state in ("absent", "removed", "cleared"):
            return  # everything below is created by the checkout


def _check_target(tree: _Tree, path: str, removing: set[str], out: Prepared) -> None:
    """A folder where the file must go may hold only tracked files (removed first) and empty folders."""
    st = tree.lstat(path)
    if st is None:
        out.absent.add(path)
        return
    if not statmod.S_ISDIR(st.st_mode):
        return
    full = tree.abs(path)
    for dirpath, dirs, files in os.walk(full):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            rel = os.path.relpath(os.path.join(dirpath, name), tree.root).replace(os.sep, "/")
            if rel not in removing:
                raise WorktreeError(
                    f"cannot write {path}: folder {path} holds {rel}, which is not tracked",
                    hint=f"move it away (or delete it), then run the checkout again; {NOTHING_CHANGED}",
                )
    out.clear_folders.append(path)


def staging_folder(root: str) -> str:
    """Where a checkout stages its files: inside ``.dsv`` when there is one.

    ``.dsv/staging`` must be a real folder: a symlink there (to anywhere) is
    removed, never followed, so staging and sweeping stay inside the repository.
    """
    dsv_dir = os.path.join(root, ".dsv")
    if os.path.isdir(dsv_dir):
        base = os.path.join(dsv_dir, "staging")
        _real_folder(base)
        return os.path.join(base, f"{os.getpid()}-{os.urandom(6).hex()}")
    return os.path.join(root, f"{CHECKOUT_TEMP_PREFIX}staging-{os.urandom(6).hex()}")


def _real_folder(path: str) -> None:
    """Make ``path`` a real folder: replace a symlink or file there (without following it)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)
        return
    except OSError as err:
        raise StorageError("read", path, err) from err
    if statmod.S_ISDIR(st.st_mode):
        return
    try:
        os.unlink(path)
        os.mkdir(path)
    except OSError as err:
        raise StorageError("create", path, err) from err


def stage(prepared: Prepared, store: ObjectStore, folder: str, progress: Progress | None = None) -> Staged:
    """Write every file, verified, beside its target or into ``folder`` (step 2).

    Beside its target (``.dsv-tmp-<16 hex>``) when the target's folder exists;
    else into ``folder``, or beside the nearest folder when that is on another
    filesystem. On any failure everything staged is removed and the error
    re-raised, with a hint saying the working tree was not changed.
    """
    progress = progress or NullProgress()
    staged = Staged(prepared, folder)
    total = sum(w.size for w in prepared.writes)
    progress.start("checkout", len(prepared.writes), total)
    try:
        try:
            os.makedirs(folder, exist_ok=True)
            staging_dev = os.stat(folder).st_dev
        except OSError as err:
            raise StorageError("create", folder, err) from err
        tree = _Tree(prepared.root)
        dsv_dir = os.path.join(tree.root, DSV_DIR)
        staged.recycle = recycle = Recycle(dsv_dir if os.path.isdir(dsv_dir) else None)
        devices: dict[str, int] = {}
        try:
            _check_space(tree, prepared, folder, staging_dev, devices)
        except WorktreeError:
            if not recycle.left:
                raise
            recycle.free_all()  # what the last checkout replaced may be the space that is missing
            _check_space(tree, prepared, folder, staging_dev, devices)
        staged.folders = folders = _Folders(tree.root)
        budget = _unnamed_budget(len(prepared.writes))
        no_unnamed: set[int] = set()  # filesystems that refused an unnamed file
        parents: dict[str, os.stat_result | None] = {}  # writes are sorted: a folder's files come together
        for i, w in enumerate(prepared.writes):
            recycle.free_one()  # an inode freed just before one is allocated: see dsv.worktree.recycle
            parent_rel = w.path.rpartition("/")[0]
            if parent_rel in parents:
                st_parent = parents[parent_rel]
            else:
                st_parent = parents[parent_rel] = tree.lstat(parent_rel) if parent_rel else os.lstat(tree.root)
            if (
                len(staged.unnamed) < budget
                and w.mode != MODE_LINK
                and st_parent is not None
                and statmod.S_ISDIR(st_parent.st_mode)
                and st_parent.st_dev not in no_unnamed
            ):
                # An unnamed file in its target's folder: no directory entry until the switch
                # links it, so the folder changes as git's checkout changes it (unlink, then one
                # new name), where a temp name cost a create, a rename and a delete of entries
                # hashed all over a large folder (~1.5-2.5x slower per file on ext4 here).
                fd = _open_unnamed(folders.fd(parent_rel), w.mode, tree.abs(w.path))
                if fd is None:
                    no_unnamed.add(st_parent.st_dev)
                else:
                    staged.unnamed[w.path] = fd
                    _write_content(fd, tree.abs(w.path), w, store)
                    progress.advance(1, w.size)
                    continue
            if st_parent is not None and statmod.S_ISDIR(st_parent.st_mode):
                # Staged beside its target when its folder is already there, under a temp name
                # the walk never tracks: a new file's inode is allocated near its folder's (in a
                # staging folder of its own every allocation was ~4x slower on ext4), the rename
                # stays in one folder, and status, checkout and gc remove what a kill leaves.
                name = f"{CHECKOUT_TEMP_PREFIX}{os.urandom(8).hex()}"
                tmp = os.path.join(tree.abs(parent_rel) if parent_rel else tree.root, name)
                staged.beside.append(tmp)
                _write_staged(name, w, prepared, store, folders.fd(parent_rel), tmp)
                staged.names[w.path] = tmp
                progress.advance(1, w.size)
                continue
            # Its folder does not exist yet, or something else is in the way that only the
            # switch removes: staged in .dsv (or beside the nearest folder on another filesystem).
            dev, _ = _device_of(tree, w.path, devices)
            if dev == staging_dev:
                tmp = os.path.join(folder, str(i))
            else:
                _make_folders(tree, w.path, staged.created)
                parents.clear()  # folders were created
                tmp = os.path.join(os.path.dirname(tree.abs(w.path)), f"{CHECKOUT_TEMP_PREFIX}{os.urandom(8).hex()}")
                staged.beside.append(tmp)
            _write_staged(tmp, w, prepared, store)
            staged.names[w.path] = tmp
            progress.advance(1, w.size)
    except BaseException as err:
        staged.discard()
        if isinstance(err, StorageError):
            err.hint = f"free space or fix permissions, then run the checkout again; {NOTHING_CHANGED}"
        elif isinstance(err, DsvError) and NOTHING_CHANGED not in (err.hint or ""):
            err.hint = f"{err.hint}; {NOTHING_CHANGED}" if err.hint else NOTHING_CHANGED
        raise
    finally:
        progress.finish()
    return staged


def _check_space(tree: _Tree, prepared: Prepared, folder: str, staging_dev: int, devices: dict[str, int]) -> None:
    """Refuse, before anything is written, a checkout that the filesystems it writes to cannot hold.

    Per filesystem: every file rounded up to whole blocks, and for each name new
    in its folder an entry (8 bytes + the name, twice, for the folder's own
    growth) plus a block per folder receiving new names, against the blocks
    free to this user; and an inode per file (each is staged as a new file)
    against the inodes free. Directory entries are claimed only when a file is
    linked or renamed into place, so without them a nearly full filesystem
    would stop the switch part-way.
    """
    per_device: dict[int, tuple[str, list[FileWrite], set[str]]] = {}
    for w in prepared.writes:
        dev, probe = _device_of(tree, w.path, devices)
        _probe, writes, folders = per_device.setdefault(dev, (probe, [], set()))
        writes.append(w)
        if w.path in prepared.absent:
            folders.add(w.path.rpartition("/")[0])
    for dev, (probe, writes, folders) in per_device.items():
        try:
            fs = os.statvfs(folder if dev == staging_dev else probe)
        except OSError:
            continue
        if not fs.f_blocks:
            continue  # no block accounting (ramfs): nothing to check against
        block = fs.f_frsize or fs.f_bsize or 4096
        nbytes = sum(-(-w.size // block) * block for w in writes)
        nbytes += sum(2 * (8 + -(-len(os.fsencode(w.path.rpartition("/")[2])) // 4) * 4) for w in writes if w.path in prepared.absent)
        nbytes += block * len(folders)
        free = fs.f_bavail * block
        if nbytes > free:
            raise WorktreeError(
                f"checkout needs {nbytes} bytes for the files it writes and {free} are free",
                hint=f"free some space, then run the checkout again; {NOTHING_CHANGED}",
            )
        if fs.f_files and len(writes) > fs.f_favail:
            raise WorktreeError(
                f"checkout writes {len(writes)} files and the filesystem has {fs.f_favail} free inodes",
                hint=f"free some inodes (delete files), then run the checkout again; {NOTHING_CHANGED}",
            )


def _device_of(tree: _Tree, path: str, cache: dict[str, int]) -> tuple[int, str]:
    """The filesystem (``st_dev``) of the nearest existing real folder above ``path``, and that folder."""
    folders = [""] + _folders_above(path)
    for rel in reversed(folders):
        if rel in cache:
            return cache[rel], tree.abs(rel) if rel else tree.root
        st = tree.lstat(rel) if rel else os.lstat(tree.root)
        if st is not None and statmod.S_ISDIR(st.st_mode):
            cache[rel] = st.st_dev
            return st.st_dev, tree.abs(rel) if rel else tree.root
    raise WorktreeError(f"cannot write {path}: the working tree is gone")  # pragma: no cover


def _make_folders(tree: _Tree, path: str, created: list[str]) -> None:
    """Create missing real folders above ``path`` (recorded so a failed checkout removes them)."""
    for rel in _folders_above(path):
        full = tree.abs(rel)
        st = tree.lstat(rel)
        if st is None:
            try:
                os.mkdir(full, 0o755)
            except OSError as err:
                raise StorageError("create folder", full, err) from err
            created.append(full)
        elif not statmod.S_ISDIR(st.st_mode):
            return  # replaced during the switch; staged in .dsv instead would be needed


def _unnamed_budget(count: int) -> int:
    """How many of ``count`` files may be staged as unnamed files, each holding a descriptor open.

    0 where the system has no ``O_TMPFILE`` or no ``/proc/self/fd`` to link one
    by; else up to the descriptor limit less those in use and 128 to spare (the
    rest are staged under temp names).
    """
    if not _O_TMPFILE or not count:
        return 0
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(0, min(count, soft - in_use - 128, 1 << 16))


_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_NO_UNNAMED = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOSYS, errno.ENOTSUP})


def _open_unnamed(folder_fd: int, mode: int, target: str) -> int | None:
    """An unnamed file in the folder open at ``folder_fd`` (``O_TMPFILE``), or None where its filesystem has none."""
    try:
        return os.open(".", os.O_WRONLY | _O_TMPFILE, 0o755 if mode == MODE_EXEC else 0o644, dir_fd=folder_fd)
    except OSError as err:
        if err.errno in _NO_UNNAMED:
            return None
        raise StorageError("write", target, err) from err


def _write_staged(tmp: str, w: FileWrite, prepared: Prepared, store: ObjectStore, dir_fd: int | None = None, shown: str | None = None) -> None:
    """Write ``w`` under the temp name ``tmp`` (in the folder open at ``dir_fd``, if given)."""
    shown = shown or tmp
    try:
        if w.mode == MODE_LINK:
            os.symlink(os.fsdecode(prepared.link_targets[w.path]), tmp, dir_fd=dir_fd)
            return
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(tmp, flags, 0o755 if w.mode == MODE_EXEC else 0o644, dir_fd=dir_fd)
    except OSError as err:
        raise StorageError("write", shown, err) from err
    try:
        _write_content(fd, shown, w, store)
    finally:
        os.close(fd)


def _write_content(fd: int, where: str, w: FileWrite, store: ObjectStore) -> None:
    """Write ``w``'s object into ``fd``; iter_chunks verifies the id when the stream ends, before any switch."""
    try:
        for chunk in store.iter_chunks(w.oid):
            write_all(fd, chunk)
    except OSError as err:
        raise StorageError("write", where, err) from err


def switch(staged: Staged) -> tuple[dict[str, StatKey], int]:
    """Delete, clear, link and rename into place (step 3); return stat keys of written files and files removed.

    Only deletes, links and renames (and creates folders): the slow and fallible
    work was done by :func:`stage`. Every change goes through a descriptor of
    its folder (:class:`_Folders`), so none goes through a symlink, even one
    that replaced a folder while the switch runs.
    """
    prepared = staged.prepared
    tree = _Tree(prepared.root)
    if staged.folders is None:
        staged.folders = _Folders(tree.root)
    folders = staged.folders
    recycle = staged.recycle
    removed = sum(1 for p in sorted(prepared.removals, reverse=True) if _remove_tracked(folders, p, recycle))
    for rel in prepared.clear_files:
        parent, _, name = rel.rpartition("/")
        try:
            os.unlink(name, dir_fd=folders.fd(parent))
        except FileNotFoundError:
            pass
        except OSError as err:
            raise StorageError("delete", tree.abs(rel), err) from err
    for rel in prepared.clear_folders:
        _remove_empty_folders(tree.abs(rel))
        folders.forget(rel)
    keys: dict[str, StatKey] = {}
    staged.created.clear()  # the folders are part of the new tree now
    for w in prepared.writes:
        parent, _, name = w.path.rpartition("/")
        dir_fd = _folder_for(folders, w.path)
        target = tree.abs(w.path)
        # Unlink, then link or rename onto a free name: renaming over an existing file makes
        # ext4 (auto_da_alloc) flush the new file's data at once, ~5x slower per file and
        # stalling the writes that follow. The old version is in the store (or was discarded
        # on purpose with --force), and .dsv/CHECKOUT records the switch, so an interruption
        # here is finished by re-running the checkout.
        _clear_target(dir_fd, name, w.path, target, recycle)
        fd = staged.unnamed.get(w.path)
        try:
            if fd is not None:
                _link_unnamed(fd, dir_fd, name)
                st = os.fstat(fd)  # after the link: its ctime is the one lstat sees
            else:
                src = staged.names[w.path]
                src_dir_fd = None
                if os.path.dirname(src) == os.path.dirname(target):
                    src, src_dir_fd = os.path.basename(src), dir_fd  # staged beside it: in the same real folder
                try:
                    os.replace(src, name, src_dir_fd=src_dir_fd, dst_dir_fd=dir_fd)
                except OSError as err:
                    if err.errno != errno.EXDEV:
                        raise
                    _replace_across_devices(src, dir_fd, name)
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as err:
            raise StorageError("write", target, err) from err
        keys[w.path] = stat_key(st, w.mode)
    staged.beside.clear()
    staged.discard()
    return keys, removed


def _folder_for(folders: _Folders, path: str) -> int:
    """The descriptor of ``path``'s folder, creating missing folders one component at a time."""
    parent = path.rpartition("/")[0]
    for rel in _folders_above(path) if parent else ():
        try:
            folders.fd(rel)
            continue
        except FileNotFoundError:
            pass
        up, _, name = rel.rpartition("/")
        try:
            os.mkdir(name, 0o755, dir_fd=folders.fd(up))
        except FileExistsError:
            pass  # made meanwhile (or not a folder: fd() below says which)
        except OSError as err:
            raise StorageError("create folder", os.path.join(folders.root, rel), err) from err
        try:
            folders.fd(rel)
        except FileNotFoundError:
            raise WorktreeError(f"cannot create folder {rel}: it vanished as it was made", hint="run the same checkout again to finish it") from None
    return folders.fd(parent)


def _clear_target(dir_fd: int, name: str, path: str, target: str, recycle: Recycle) -> None:
    """Move the file ``name`` in the folder open at ``dir_fd`` to the recycle folder or delete it; a folder there stops the switch."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if statmod.S_ISDIR(st.st_mode):
            raise _folder_in_the_way(path)
        if not recycle.keep(dir_fd, name, st):
            os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise _folder_in_the_way(path) from None
    except FolderInTheWay as moved:
        raise _folder_in_the_way(path, moved.parked) from None
    except OSError as err:
        raise StorageError("write", target, err) from err


def _folder_in_the_way(path: str, parked: str | None = None, verb: str = "write") -> WorktreeError:
    """A folder took the place of a file the switch replaces or deletes (``parked``: where it was moved and left)."""
    if parked:
        return WorktreeError(
            f"cannot {verb} {path}: a folder appeared in the way and was moved to .dsv/{parked}",
            hint=f"move .dsv/{parked} back to {path} (or elsewhere), then run the same checkout again to finish it",
        )
    return WorktreeError(f"cannot write {path}: a folder appeared in the way", hint="move it away, then run the same checkout again to finish it")


def _link_unnamed(fd: int, dir_fd: int, name: str) -> None:
    """Give the unnamed file open at ``fd`` the name ``name`` in the folder open at ``dir_fd``.

    ``linkat`` of ``/proc/self/fd/<fd>`` with ``AT_SYMLINK_FOLLOW`` (open(2),
    ``O_TMPFILE``). Something created at the name since it was cleared is
    deleted once, as a rename would have replaced it.
    """
    source = f"/proc/self/fd/{fd}"
    try:
        os.link(source, name, dst_dir_fd=dir_fd, follow_symlinks=True)
    except FileExistsError:
        os.unlink(name, dir_fd=dir_fd)
        os.link(source, name, dst_dir_fd=dir_fd, follow_symlinks=True)


def _replace_across_devices(src: str, dir_fd: int, name: str) -> None:
    """A folder of the tree is another filesystem: copy beside the target (in the folder open at ``dir_fd``), then rename."""
    tmp = f"{CHECKOUT_TEMP_PREFIX}{os.urandom(8).hex()}"
    try:
        if os.path.islink(src):
            os.symlink(os.readlink(src), tmp, dir_fd=dir_fd)
        else:
            mode = os.stat(src).st_mode & 0o7777
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
            try:
                with open(src, "rb") as f:
                    while chunk := f.read(1 << 20):
                        write_all(out, chunk)
                os.fchmod(out, mode)
            finally:
                os.close(out)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    os.unlink(src)


def _remove_empty_folders(full: str) -> None:
    """Remove a folder that holds only empty folders, bottom-up (``rmdir`` never deletes data)."""
    try:
        for dirpath, _dirs, _files in sorted(os.walk(full, topdown=False), key=lambda t: -len(t[0])):
            os.rmdir(dirpath)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise StorageError("remove folder", full, err) from err


def _remove_tracked(folders: _Folders, path: str, recycle: Recycle | None = None) -> bool:
    """Delete a tracked file (not a folder), then any folders it leaves empty.

    Nothing is deleted through a symlinked folder: a tracked folder replaced by
    a link to elsewhere (or gone) leaves the link's target untouched, and the
    file is not counted.
    """
    parent, _, name = path.rpartition("/")
    try:
        dir_fd = folders.fd(parent)
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except (OSError, DsvError):
        return False
    if statmod.S_ISDIR(st.st_mode):
        return False
    try:
        if recycle is None or not recycle.keep(dir_fd, name, st):
            os.unlink(name, dir_fd=dir_fd)
    except (FileNotFoundError, IsADirectoryError):
        return False  # a folder took its place: left alone, as a folder there always is
    except FolderInTheWay as moved:
        if moved.parked:
            raise _folder_in_the_way(path, moved.parked, "delete") from None
        return False
    except OSError as err:
        raise StorageError("delete", os.path.join(folders.root, path), err) from err
    parts = parent.split("/") if parent else []
    while parts:
        rel = "/".join(parts)
        try:
            os.rmdir(parts[-1], dir_fd=folders.fd("/".join(parts[:-1])))
        except (OSError, DsvError):
            break
        folders.forget(rel)
        parts.pop()
    return True


def materialize(
    root: str,
    store: ObjectStore,
    writes: Iterable[FileWrite],
    removals: Iterable[str],
    progress: Progress | None = None,
    *,
    force: bool = False,
    staging: str | None = None,
) -> tuple[dict[str, StatKey], int]:
    """Check, stage and switch in one call (no in-progress record: for callers that need none)."""
    prepared = prepare(root, store, writes, removals, force=force)
    staged = stage(prepared, store, staging or staging_folder(root), progress)
    try:
        return switch(staged)
    finally:
        staged.discard()


def remove_leftovers(root: str, paths: Iterable[str]) -> int:
    """Delete checkout temp files a killed process left; return how many.

    Only files named ``.dsv-tmp-*`` are touched, and only through real folders.
    The caller must hold the repository write lock, so no live checkout owns them.
    """
    removed = 0
    for rel in paths:
        if not CHECKOUT_TEMP_RE.match(rel.rsplit("/", 1)[-1]):
            continue
        full = os.path.join(root, *rel.split("/"))
        try:
            if any(os.path.islink(os.path.join(root, *d.split("/"))) for d in _folders_above(rel)):
                continue
            if statmod.S_ISDIR(os.lstat(full).st_mode):
                continue
            os.unlink(full)
            removed += 1
        except OSError:
            continue
    return removed


def sweep_staging(dsv_dir: str) -> int:
    """Remove staging folders of checkouts that died (caller holds the write lock).

    Never follows a symlink: a link at ``.dsv/staging`` or inside it is removed
    itself, and ``rmtree`` never descends through links.
    """
    return sweep(dsv_dir, "staging")
