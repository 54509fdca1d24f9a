"""Writing a snapshot into the working tree: only what differs, each file atomically.

Every manifest path is validated before the first filesystem call. Parent
folders are created component by component with ``lstat`` checks, so nothing is
ever written through a symlink; each file is written to a temp file in its
folder, verified against its id while it is written, and renamed into place.
"""

from __future__ import annotations

import os
import stat as statmod
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from dsv.base.errors import StorageError, UnsafePathError, WorktreeError
from dsv.base.fsio import write_all
from dsv.base.hashing import from_hex
from dsv.base.progress import NullProgress, Progress
from dsv.store.base import ObjectStore
from dsv.worktree.ignore import CHECKOUT_TEMP_PREFIX
from dsv.worktree.paths import check_manifest_path
from dsv.base.filemodes import MODE_EXEC, MODE_LINK
from dsv.worktree.statcache import StatKey, stat_key


@dataclass(frozen=True)
class FileWrite:
    """One file to write: where, which object, its size and mode."""

    path: str
    oid: str
    size: int
    mode: int


def _folders_above(path: str) -> list[str]:
    """``a``, ``a/b`` for ``a/b/c``: the folders a path needs, outermost first."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


class Materializer:
    """Writes and removes files below ``root`` on behalf of checkout."""

    def __init__(self, root: str, store: ObjectStore, progress: Progress | None = None) -> None:
        self.root = os.path.abspath(root)
        self.store = store
        self.progress = progress or NullProgress()
        self._dirs_ok: set[str] = {""}

    def _abs(self, path: str) -> str:
        return os.path.join(self.root, *path.split("/"))

    def _ensure_parent(self, path: str) -> None:
        for rel in _folders_above(path):
            if rel in self._dirs_ok:
                continue
            full = self._abs(rel)
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                try:
                    os.mkdir(full, 0o755)
                except FileExistsError:
                    st = os.lstat(full)
                    if not statmod.S_ISDIR(st.st_mode):
                        raise WorktreeError(f"cannot create folder {rel}: something else appeared there") from None
                except OSError as err:
                    raise StorageError("create folder", full, err) from err
                self._dirs_ok.add(rel)
                continue
            if statmod.S_ISLNK(st.st_mode):
                raise UnsafePathError(path, f"{rel} is a symlink; dsv never writes through symlinks")
            if not statmod.S_ISDIR(st.st_mode):
                raise WorktreeError(f"cannot write {path}: {rel} is a file, not a folder", hint="move that file away or use --force")
            self._dirs_ok.add(rel)

    def write(self, item: FileWrite) -> StatKey:
        """Write one file atomically; return its stat key."""
        self._ensure_parent(item.path)
        target = self._abs(item.path)
        head, tail = os.path.split(target)
        tmp = os.path.join(head, f"{CHECKOUT_TEMP_PREFIX}{uuid.uuid4().hex[:16]}")
        try:
            st0 = os.lstat(target)
        except FileNotFoundError:
            st0 = None
        if st0 is not None and statmod.S_ISDIR(st0.st_mode):
            raise WorktreeError(f"cannot write {item.path}: a folder is in the way", hint="move that folder away")
        try:
            if item.mode == MODE_LINK:
                link = self.store.read(item.oid)
                os.symlink(os.fsdecode(link), tmp)
            else:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o755 if item.mode == MODE_EXEC else 0o644)
                try:
                    # iter_chunks verifies the id when the stream ends, before the rename.
                    for chunk in self.store.iter_chunks(item.oid):
                        write_all(fd, chunk)
                finally:
                    os.close(fd)
            os.replace(tmp, target)
            st = os.lstat(target)
        except BaseException as err:
            # Whatever went wrong (a corrupt or missing object, a full disk, ^C), no temp file stays.
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(err, OSError):
                failure = StorageError("write", target, err)
                failure.hint = "checkout stopped part-way; the repository is intact: fix the cause and run the same checkout again"
                raise failure from err
            raise
        self.progress.advance(1, item.size)
        return stat_key(st, item.mode)

    def _parent_is_real(self, path: str) -> bool:
        """Whether every folder above ``path`` is a real folder (never a symlink)."""
        for rel in _folders_above(path):
            if rel in self._dirs_ok:
                continue
            try:
                st = os.lstat(self._abs(rel))
            except FileNotFoundError:
                return False
            if not statmod.S_ISDIR(st.st_mode):
                return False
            self._dirs_ok.add(rel)
        return True

    def check_parents(self, path: str, removing: set[str]) -> None:
        """Refuse, before anything is written, a path whose existing folders include a symlink.

        A symlink that the checkout removes first (a tracked link replaced by a folder) is fine.
        """
        for rel in _folders_above(path):
            if rel in removing:
                return
            try:
                st = os.lstat(self._abs(rel))
            except (FileNotFoundError, NotADirectoryError):
                return  # created later, component by component
            if statmod.S_ISLNK(st.st_mode):
                raise UnsafePathError(path, f"{rel} is a symlink; dsv never writes through symlinks")

    def check_target(self, path: str, removing: set[str]) -> None:
        """Refuse, before any change, a file that must replace a folder still holding other files.

        The folder's tracked files are removed first; anything else in it (untracked or
        ignored files) would be lost, so the checkout stops naming one of them.
        """
        full = self._abs(path)
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            return
        if not statmod.S_ISDIR(st.st_mode):
            return
        for dirpath, _dirs, files in os.walk(full):
            for name in files:
                rel = os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/")
                if rel not in removing:
                    raise WorktreeError(
                        f"cannot write {path}: folder {path} holds {rel}, which is not tracked",
                        hint="move it away (or delete it), then run the checkout again; nothing was changed",
                    )

    def remove(self, path: str) -> bool:
        """Delete a tracked file (not a folder), then any folders it leaves empty.

        Nothing is deleted through a symlinked folder: a tracked folder replaced by
        a link to elsewhere leaves the link's target untouched.
        """
        if not self._parent_is_real(path):
            return False
        full = self._abs(path)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            return False
        if statmod.S_ISDIR(st.st_mode):
            return False
        try:
            os.unlink(full)
        except FileNotFoundError:
            return False
        except OSError as err:
            raise StorageError("delete", full, err) from err
        parts = path.split("/")[:-1]
        while parts:
            d = self._abs("/".join(parts))
            try:
                os.rmdir(d)
            except OSError:
                break
            self._dirs_ok.discard("/".join(parts))
            parts.pop()
        return True


def materialize(
    root: str, store: ObjectStore, writes: Iterable[FileWrite], removals: Iterable[str], progress: Progress | None = None
) -> tuple[dict[str, StatKey], int]:
    """Remove ``removals``, write ``writes``; return stat keys of written files and the number removed.

    All paths are validated first: one unsafe path aborts before anything changes.
    """
    writes = list(writes)
    removals = list(removals)
    for p in removals:
        check_manifest_path(p)
    for w in writes:
        check_manifest_path(w.path)
        from_hex(w.oid)
    progress = progress or NullProgress()
    m = Materializer(root, store, progress)
    # Writes that would go through a symlinked folder are refused before any change.
    removing = set(removals)
    for w in writes:
        m.check_parents(w.path, removing)
        m.check_target(w.path, removing)
    progress.start("checkout", len(writes), sum(w.size for w in writes))
    try:
        removed = sum(1 for p in sorted(removals, reverse=True) if m.remove(p))
        keys: dict[str, StatKey] = {}
        for w in writes:
            keys[w.path] = m.write(w)
    finally:
        progress.finish()
    return keys, removed


def remove_leftovers(root: str, paths: Iterable[str]) -> int:
    """Delete checkout temp files a killed process left; return how many.

    Only files named ``.dsv-tmp-*`` are touched, and only through real folders.
    The caller must hold the repository write lock, so no live checkout owns them.
    """
    removed = 0
    for rel in paths:
        if not rel.rsplit("/", 1)[-1].startswith(CHECKOUT_TEMP_PREFIX):
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
