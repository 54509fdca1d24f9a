"""Branches, tags and HEAD, kept as small text files under ``.dsv/``.

``refs/heads/<name>`` and ``refs/tags/<name>`` each hold one object id and a
newline; ``HEAD`` holds ``ref: refs/heads/<name>`` or a detached commit id. A ref
changes only through :meth:`RefStore.update`, a compare-and-swap under a
``<ref>.lock`` file: the caller names the value it expects, and a different
current value raises :class:`RefConflictError` instead of overwriting it.
"""

from __future__ import annotations

import os
import re
import stat

from dsv.base.errors import CorruptMetadataError, InvalidRefNameError, RefConflictError, RefExistsError, RefNotFoundError, StorageError
from dsv.base.fsio import FileLock, atomic_write_bytes, fsync_dir
from dsv.base.hashing import is_object_id
from dsv.base.records import FrozenRecord, init_field

HEADS = "refs/heads"
TAGS = "refs/tags"
REMOTES = "refs/remotes"
"""Remote-tracking branches: ``refs/remotes/<remote>/<branch>``, moved by fetch and push."""
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
LOCK_TIMEOUT = 10.0


def check_ref_name(name: str) -> str:
    """Validate a branch or tag name (git's rules, slightly stricter); return it."""
    why = None
    if not name:
        why = "empty"
    elif name in ("HEAD", "@"):
        why = "reserved"
    elif _BAD_CHARS.search(name):
        why = "contains a space, control character or one of ~^:?*[\\"
    elif name.startswith(("-", "/", ".")) or name.endswith(("/", ".")):
        why = "starts with '-', '/' or '.', or ends with '/' or '.'"
    elif any(part.endswith(".lock") or ".lock." in part or part.startswith(".") for part in name.split("/")):
        why = "a component starts with '.', ends with '.lock' or contains '.lock.'"
    elif ".." in name or "//" in name or "/." in name or "@{" in name:
        why = "contains '..', '//', '/.' or '@{'"
    elif is_object_id(name):
        why = "looks like an object id"
    if why:
        raise InvalidRefNameError(name, why)
    return name


class Head(FrozenRecord):
    """What HEAD points at: a branch (which may not exist yet) or a detached commit."""

    __slots__ = ("branch", "commit")

    branch: str | None
    commit: str | None

    def __init__(self, branch: str | None, commit: str | None) -> None:
        init_field(self, "branch", branch)
        init_field(self, "commit", commit)

    @property
    def detached(self) -> bool:
        """Whether HEAD names a commit rather than a branch."""
        return self.branch is None


class RefStore:
    """The refs of one repository, rooted at its ``.dsv`` directory."""

    def __init__(self, dsv_dir: str) -> None:
        self.dsv_dir = dsv_dir

    def _path(self, ref: str) -> str:
        return os.path.join(self.dsv_dir, *ref.split("/"))

    def _check_no_symlink(self, ref: str) -> None:
        """Refuse a ref reached through a symlink (the ref file or any folder above it).

        Listing never follows symlinks (so gc could not see such a branch) and
        reading would: both treat a symlink the same way by refusing it.
        """
        parts = ref.split("/")
        for i in range(1, len(parts) + 1):
            rel = "/".join(parts[:i])
            try:
                st = os.lstat(self._path(rel))
            except (FileNotFoundError, NotADirectoryError):
                return
            except OSError as err:
                raise StorageError("read", self._path(rel), err) from err
            if stat.S_ISLNK(st.st_mode):
                raise CorruptMetadataError(
                    f"ref {ref}",
                    f"{rel} is a symlink; dsv never follows symlinks in .dsv/refs",
                    hint=f"replace {self._path(rel)} with the folder or file it points to",
                )

    def read(self, ref: str) -> str | None:
        """The id a full ref name (``refs/heads/main``) holds, or ``None``."""
        self._check_no_symlink(ref)
        path = self._path(ref)
        try:
            with open(path, "rb") as f:
                raw = f.read(200)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as err:
            raise StorageError("read", path, err) from err
        value = raw.decode("ascii", errors="replace").strip()
        if not is_object_id(value):
            raise CorruptMetadataError(f"ref {ref}", "does not hold an object id", hint=f"repair or delete {path}")
        return value

    def head(self) -> Head:
        """Read HEAD."""
        path = os.path.join(self.dsv_dir, "HEAD")
        try:
            with open(path, "rb") as f:
                raw = f.read(1000).decode("utf-8", errors="replace").strip()
        except FileNotFoundError:
            raise CorruptMetadataError("HEAD", "missing", hint=f"write 'ref: refs/heads/main' to {path}") from None
        if raw.startswith("ref: "):
            ref = raw[5:].strip()
            if not ref.startswith(HEADS + "/"):
                raise CorruptMetadataError("HEAD", f"points at {ref!r}, not a branch")
            branch = ref[len(HEADS) + 1 :]
            try:
                check_ref_name(branch)
            except InvalidRefNameError:
                raise CorruptMetadataError("HEAD", f"names an invalid branch {branch!r}", hint=f"write 'ref: refs/heads/main' to {path}") from None
            return Head(branch, self.read(ref))
        if is_object_id(raw):
            return Head(None, raw)
        raise CorruptMetadataError("HEAD", "neither 'ref: refs/heads/<branch>' nor a commit id")

    def head_lock(self, timeout: float = LOCK_TIMEOUT) -> FileLock:
        """The lock that guards HEAD (take it before a checkout changes anything)."""
        return FileLock(os.path.join(self.dsv_dir, "HEAD") + ".lock", timeout=timeout)

    def set_head(self, *, branch: str | None = None, commit: str | None = None, locked: bool = False) -> None:
        """Point HEAD at a branch, or detach it at a commit (``locked``: the caller holds :meth:`head_lock`)."""
        if branch is not None:
            data = f"ref: {HEADS}/{check_ref_name(branch)}\n"
        elif commit is not None and is_object_id(commit):
            data = commit + "\n"
        else:
            raise ValueError("set_head needs a branch or a commit id")
        path = os.path.join(self.dsv_dir, "HEAD")
        if locked:
            self._write_head(path, data)
            return
        with self.head_lock():
            self._write_head(path, data)

    @staticmethod
    def _write_head(path: str, data: str) -> None:
        try:
            with open(path, "rb") as f:
                old: bytes | None = f.read()
        except FileNotFoundError:
            old = None
        _publish(path, data.encode(), old)

    def list(self, namespace: str, *, malformed: "list[str] | None" = None) -> dict[str, str]:
        """``{short name: id}`` of every ref under ``refs/heads`` or ``refs/tags``.

        With ``malformed`` given, refs that do not hold an id, and symlinks among
        the refs, are described in it and skipped instead of raising (fsck reports
        them, gc refuses to run; log shows the rest).
        """
        base = self._path(namespace)
        out: dict[str, str] = {}
        self._check_no_symlink(namespace)
        for dirpath, dirs, files in os.walk(base):
            # os.walk lists a symlinked folder among dirs but never enters it: report it.
            for d in [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
                short = os.path.relpath(os.path.join(dirpath, d), base).replace(os.sep, "/")
                problem = f"{namespace}/{short} is a symlink to a folder; dsv never follows symlinks in .dsv/refs"
                if malformed is None:
                    raise CorruptMetadataError(f"ref {namespace}/{short}", "is a symlink", hint=f"replace {os.path.join(dirpath, d)} with the folder it points to")
                malformed.append(problem)
            for f in files:
                # Skip lock files, their stale graves and temp files (ref names can be none of these).
                if f.startswith(".") or f.endswith(".lock") or ".lock.stale-" in f:
                    continue
                full = os.path.join(dirpath, f)
                short = os.path.relpath(full, base).replace(os.sep, "/")
                try:
                    value = self.read(f"{namespace}/{short}")
                except CorruptMetadataError as err:
                    if malformed is None:
                        raise
                    malformed.append(f"{namespace}/{short}: {err.detail}")
                    continue
                if value:
                    out[short] = value
        return dict(sorted(out.items()))

    def update(self, ref: str, new: str | None, *, expected: str | None, check: bool = True) -> None:
        """Compare-and-swap ``ref`` from ``expected`` to ``new`` (``None`` deletes).

        Raises :class:`RefConflictError` if the ref holds anything but ``expected``
        (``check=False`` skips the comparison, for forced moves). The new value is
        published atomically and durably before the lock is released.
        """
        path = self._path(ref)
        parent = os.path.dirname(path)
        self._check_no_symlink(ref)
        self._check_no_clash(ref, path)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as err:
            raise StorageError("create", parent, err) from err
        with FileLock(path + ".lock", timeout=LOCK_TIMEOUT):
            current = self.read(ref)
            if check and current != expected:
                raise RefConflictError(ref, expected, current)
            if new is None:
                try:
                    os.unlink(path)
                    fsync_dir(parent)
                except FileNotFoundError:
                    pass
            else:
                _publish(path, (new + "\n").encode(), None if current is None else (current + "\n").encode())

    def _prune_empty(self, ref: str) -> None:
        """Remove folders a deleted ``a/b`` left empty, so ``a`` can be created later."""
        parts = ref.split("/")[:-1]
        while len(parts) > 2:
            try:
                os.rmdir(self._path("/".join(parts)))
            except OSError:
                break
            parts.pop()

    def _check_no_clash(self, ref: str, path: str) -> None:
        """Refuse ``a/b`` when ``a`` exists, and ``a`` when ``a/b`` exists (as git does)."""
        if os.path.isdir(path):
            raise RefExistsError(f"{ref} (refs below it exist)")
        parts = ref.split("/")
        for i in range(3, len(parts)):
            above = "/".join(parts[:i])
            if os.path.isfile(self._path(above)):
                raise RefExistsError(f"{ref} (conflicts with {above})")

    def create(self, namespace: str, name: str, oid: str, *, force: bool = False) -> None:
        """Create ``namespace/name`` at ``oid``; refuse an existing name unless ``force``."""
        check_ref_name(name)
        ref = f"{namespace}/{name}"
        if force:
            self.update(ref, oid, expected=None, check=False)
            return
        try:
            self.update(ref, oid, expected=None)
        except RefConflictError:
            raise RefExistsError(name) from None

    def delete(self, namespace: str, name: str) -> str:
        """Delete ``namespace/name``; return the id it held."""
        ref = f"{namespace}/{name}"
        current = self.read(ref)
        if current is None:
            raise RefNotFoundError(name, {HEADS: "branch", TAGS: "tag"}.get(namespace))
        self.update(ref, None, expected=current)
        self._prune_empty(ref)  # after the lock file is gone
        return current


def _publish(path: str, data: bytes, old: bytes | None) -> None:
    """Write a ref file durably; if that fails after the new value became visible, put the old one back.

    So a reported failure always means the ref did not move.
    """
    try:
        atomic_write_bytes(path, data)
    except StorageError as err:
        if err.published:
            try:
                if old is None:
                    os.unlink(path)
                else:
                    atomic_write_bytes(path, old)
            except StorageError as undo:
                if undo.published:
                    return_hint = "the old value is back but its directory could not be synced"
                    err.hint = return_hint + "; check the disk, then 'dsv log' and 'dsv fsck'"
                else:
                    err.hint = "the ref may have moved; check 'dsv log' and run 'dsv fsck'"
            except OSError:
                err.hint = "the ref may have moved; check 'dsv log' and run 'dsv fsck'"
        raise
