"""Files a checkout replaced, deleted only as the next checkout creates files.

A checkout writes every new file before it deletes anything (a full disk or a
corrupt object must change nothing), so it allocates its new inodes while the
old ones are still in use and frees the old ones at the end. On ext4 without
a journal the inode allocator passes over every free inode freed in the last
minute but not in the current second (six minutes while its inode table
block is dirty: ``RECENTCY_MIN``/``RECENTCY_DIRTY`` in the kernel's
``fs/ext4/ialloc.c``), one buffer-cache lookup each: each checkout freed a few hundred more,
and successive checkouts of 20,000 files slowed from 0.13 s to 0.26-0.32 s
within a minute. git deletes each old file just before it creates the new
one, so its frees are reused within the same second and never pile up.

dsv keeps its order and gets git's pairing: the switch moves what it replaces
or removes into ``.dsv/recycle`` instead of deleting it (a rename costs what
an unlink costs), and later checkouts delete one recycled file just before
each file they create. What is not paired stays for the next checkout:
deleting it unpaired would leave freed inodes for the allocator to pass over
again. Only small files are kept (1 MiB each; 64 MiB and 65,536 files in the
folder), only when they are on the filesystem of ``.dsv``; anything else is
deleted at once. What is kept is never read again: ``dsv gc`` empties the
folder, and a checkout that lacks space empties it before it gives up.
Each kept file is named ``<16 hex>.<size in bytes>`` so the folder's total is
known from its listing; nothing of another name (or any folder) in it is ever
deleted or counted, and the folder is listed and emptied through a descriptor
opened without following a symlink.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat as statmod

RECYCLE = "recycle"
"""The folder inside ``.dsv``."""
KEEP_FILE_BYTES = 1 << 20
KEEP_BYTES = 64 << 20
KEEP_FILES = 65_536
KEPT_NAME = re.compile(r"[0-9a-f]{16}\.[0-9]+\Z")
"""What a kept file is called: 16 hex digits, a dot, its size when kept."""


class FolderInTheWay(Exception):
    """A folder took a file's place between its ``lstat`` and its move.

    It was put back; ``parked`` names where it is when that failed.
    """

    def __init__(self, parked: str | None = None) -> None:
        super().__init__(parked)
        self.parked = parked


class Recycle:
    """``.dsv/recycle`` for one checkout: what the last one kept goes out, what this one replaces comes in.

    Every failure here only means a file is deleted at once instead of kept:
    recycling never stops a checkout.
    """

    def __init__(self, dsv_dir: str | None) -> None:
        self.fd: int | None = None
        self.dev = -1
        self.left: list[str] = []
        """Files kept by earlier checkouts, not deleted yet."""
        if dsv_dir is not None:
            self.fd = _open_real_folder(dsv_dir, RECYCLE)
        if self.fd is not None:
            try:
                self.dev = os.fstat(self.fd).st_dev
                self.left = [name for name in os.listdir(self.fd) if KEPT_NAME.match(name)]
            except OSError:
                self.close()
                self.left = []
        self.kept_files = len(self.left)
        self.kept_bytes = sum(_size_of(name) for name in self.left)
        """What the folder holds (its files and their bytes, by their names)."""

    def free_one(self) -> None:
        """Delete one file an earlier checkout kept (called just before a file is created)."""
        if self.left:
            name = self.left.pop()
            try:
                os.unlink(name, dir_fd=self.fd)
            except OSError:
                return  # a folder (never deleted here) or gone
            self.kept_files -= 1
            self.kept_bytes -= _size_of(name)

    def free_all(self) -> None:
        """Delete every file an earlier checkout kept."""
        while self.left:
            self.free_one()

    def keep(self, dir_fd: int, name: str, st: os.stat_result) -> bool:
        """Move ``name`` (``st`` is its lstat) from the folder open at ``dir_fd`` into the recycle folder.

        False when it is not kept (too big, the caps reached, another
        filesystem, a folder, no recycle folder): the caller deletes it.
        FileNotFoundError when it is gone; :class:`FolderInTheWay` when what
        the rename moved turns out to be a folder (a rename moves folders too,
        where the unlink it replaces fails on them).
        """
        if (
            self.fd is None
            or st.st_dev != self.dev
            or statmod.S_ISDIR(st.st_mode)
            or st.st_size > KEEP_FILE_BYTES
            or self.kept_files >= KEEP_FILES
            or self.kept_bytes + st.st_size > KEEP_BYTES
        ):
            return False
        kept = f"{os.urandom(8).hex()}.{st.st_size}"
        try:
            os.rename(name, kept, src_dir_fd=dir_fd, dst_dir_fd=self.fd)
        except FileNotFoundError:
            raise
        except OSError:
            return False  # EXDEV (a bind mount), a full folder: deleted instead
        try:
            moved_dir = statmod.S_ISDIR(os.stat(kept, dir_fd=self.fd, follow_symlinks=False).st_mode)
        except OSError:
            moved_dir = False
        if moved_dir:
            try:
                os.rename(kept, name, src_dir_fd=self.fd, dst_dir_fd=dir_fd)  # a folder never replaces a file
            except OSError:
                raise FolderInTheWay(f"{RECYCLE}/{kept}") from None
            raise FolderInTheWay()
        self.kept_files += 1
        self.kept_bytes += st.st_size
        return True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _size_of(name: str) -> int:
    """The size a kept file's name gives (``name`` matches :data:`KEPT_NAME`)."""
    return int(name.partition(".")[2])


def _open_real_folder(parent: str, name: str) -> int | None:
    """Open (creating it) the folder ``name`` in ``parent``, replacing a symlink or file there without following it."""
    try:
        parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        for _attempt in range(2):
            try:
                os.mkdir(name, 0o755, dir_fd=parent_fd)
            except FileExistsError:
                pass
            try:
                return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
            except OSError as err:
                if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                    return None
            try:
                os.unlink(name, dir_fd=parent_fd)  # a symlink or a file: never followed
            except OSError:
                return None
        return None
    finally:
        os.close(parent_fd)


def sweep(parent: str, name: str, *, only: re.Pattern[str] | None = None, folders: bool = True) -> int:
    """Remove what the folder ``name`` in ``parent`` holds; return how many entries went.

    The folder is opened without following a symlink and listed and emptied
    through that descriptor (``rmtree`` with ``dir_fd`` never follows links
    either), so a symlink swapped in at its name at any moment leads nowhere.
    A symlink or file at the name is removed itself. ``only``: remove just the
    entries so named; ``folders=False``: leave folders.
    """
    try:
        parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return 0
    try:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
        except FileNotFoundError:
            return 0
        except OSError as err:
            if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                return 0
            try:
                os.unlink(name, dir_fd=parent_fd)
            except OSError:
                return 0
            return 1
        try:
            with os.scandir(fd) as it:
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            removed = 0
            for entry, is_dir in entries:
                if only is not None and not only.match(entry):
                    continue
                try:
                    if is_dir:
                        if not folders:
                            continue
                        shutil.rmtree(entry, dir_fd=fd)
                    else:
                        os.unlink(entry, dir_fd=fd)
                    removed += 1
                except OSError:
                    continue
            return removed
        finally:
            os.close(fd)
    finally:
        os.close(parent_fd)


def empty_recycle(dsv_dir: str) -> int:
    """Delete every file checkouts kept in ``.dsv/recycle`` (caller holds the write lock); return how many."""
    return sweep(dsv_dir, RECYCLE, only=KEPT_NAME, folders=False)
