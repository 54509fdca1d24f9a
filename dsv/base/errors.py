"""The one exception tree of dsv.

Every error a user can cause or meet derives from :class:`DsvError`, carries the
data a user needs (paths, ids, revisions) and a ``hint`` saying what to do. The CLI
maps the tree to a one-line message and an exit code in a single place
(``dsv.cli.errors``); the library never prints.

::

    DsvError
    ├── NotARepositoryError           no .dsv/ here or above
    ├── RepositoryExistsError         dsv init where a repository already is
    ├── FormatVersionError            on-disk data written by a newer dsv
    ├── CorruptMetadataError          malformed config, commit, tag, manifest, cache
    ├── ObjectError
    │   ├── ObjectNotFoundError       an id the store does not hold
    │   └── CorruptObjectError        stored bytes do not hash to their id
    ├── RevisionError
    │   ├── UnknownRevisionError      no commit, branch or tag of that name
    │   └── AmbiguousRevisionError    an id prefix matching several commits
    ├── RefError
    │   ├── InvalidRefNameError
    │   ├── RefExistsError
    │   │   └── MetricsExistsError    the commit already has a metrics record of that name
    │   ├── RefNotFoundError
    │   └── RefConflictError          compare-and-swap lost a race
    ├── LockError                     another dsv process holds a lock
    ├── WorktreeError
    │   ├── UnsafePathError           a path that would leave the working tree
    │   ├── UncommittedChangesError   checkout would clobber local changes
    │   ├── CheckoutInProgressError   a checkout stopped part-way; finish it first
    │   └── NothingToCommitError
    ├── UsageError                    a bad argument value (durations, key=value)
    ├── StorageError                  the filesystem refused a read or write
    │   └── PackGoneError             a pack the store had listed was removed (gc elsewhere): reads retry
    ├── RemoteError                   a remote repository (fsspec URL) failed us
    │   ├── UnknownRemoteError        no remote of that name is configured
    │   ├── RemoteUnreachableError    endpoint down, DNS, timeout
    │   ├── RemoteAuthError           missing or wrong credentials, access denied
    │   ├── RemoteNotFoundError       bucket or folder missing, or not a dsv remote
    │   ├── RemoteCorruptError        a fetched object fails verification (truncated, forged)
    │   ├── RemoteBusyError           a remote lock or lease held too long
    │   └── PushRejectedError         non-fast-forward, stale lease, fetch first
    ├── SampleSourceError             a declared sample table cannot be read, lacks a column, repeats a key
    └── MetricsFormatError            a metrics file that is not JSON or fits none of the accepted formats
"""

from __future__ import annotations

import errno as _errno
import json as _json
import re as _re
from collections.abc import Sequence


class DsvError(Exception):
    """Root of all dsv errors.

    Attributes:
        message: what went wrong, one line.
        hint: what the user can do about it, or ``None``.
    """

    exit_code = 1
    default_hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message

    def with_hint(self, hint: str) -> "DsvError":
        """Replace the hint and return the error (for ``raise Err(...).with_hint(...)``)."""
        self.hint = hint
        return self

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take other constructor arguments than (message,): rebuild from
        # the instance's fields so the error keeps its type and data across a
        # process boundary (pickle), whatever its signature.
        return (_rebuild_error, (type(self), self.message, dict(self.__dict__)))


def _rebuild_error(cls: type[DsvError], message: str, state: dict[str, object]) -> DsvError:
    """Unpickle a :class:`DsvError` of any subclass (see ``DsvError.__reduce__``)."""
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class NotARepositoryError(DsvError):
    """The folder (or any parent) holds no ``.dsv`` repository."""

    exit_code = 128
    default_hint = "run 'dsv init' in the dataset folder first"

    def __init__(self, path: str) -> None:
        super().__init__(f"not a dsv repository (or any parent): {path}")
        self.path = path


class RepositoryExistsError(DsvError):
    """``dsv init`` where a repository already exists."""

    def __init__(self, path: str, *, message: str | None = None, hint: str | None = None) -> None:
        super().__init__(message or f"a dsv repository already exists at {path}", hint=hint)
        self.path = path


class FormatVersionError(DsvError):
    """Data on disk carries a format version this dsv does not understand."""

    exit_code = 3
    default_hint = "upgrade dsv to read this repository"

    def __init__(self, what: str, found: object, supported: object) -> None:
        super().__init__(f"{what} has format version {found}; this dsv supports {supported}")
        self.what = what
        self.found = found
        self.supported = supported


class CorruptMetadataError(DsvError):
    """A config, ref, commit, tag, manifest or cache file does not parse or validate."""

    exit_code = 3
    default_hint = "run 'dsv fsck' to see what else is damaged"

    def __init__(self, what: str, detail: str, *, hint: str | None = None) -> None:
        if hint is None and what.startswith("config"):
            # Every command reads the config first, fsck included: only an edit can mend it.
            hint = "no command runs until it reads, fsck included: fix .dsv/config.json by hand; the smallest valid one is {\"format\": 2}, the rest is in docs/format.md"
        super().__init__(f"{what} is malformed: {detail}", hint=hint)
        self.what = what
        self.detail = detail


class ObjectError(DsvError):
    """A problem with one stored object."""

    exit_code = 3


class ObjectNotFoundError(ObjectError):
    """The store does not hold an object the caller asked for."""

    default_hint = "the repository is missing data; run 'dsv fsck', or fetch it from a remote"

    def __init__(self, oid: str, *, context: str | None = None) -> None:
        where = f" (needed by {context})" if context else ""
        super().__init__(f"object {oid} is missing{where}")
        self.oid = oid
        self.context = context


class CorruptObjectError(ObjectError):
    """Stored bytes do not hash to the id they are stored under."""

    default_hint = "run 'dsv fsck' to list every damaged object and what uses it"

    def __init__(self, oid: str, actual: str, *, location: str | None = None, reason: str | None = None) -> None:
        where = f" at {location}" if location else ""
        super().__init__(f"object {oid} is corrupt{where}: {reason or f'its bytes hash to {actual}'}")
        self.oid = oid
        self.expected = oid
        self.actual = actual
        self.location = location


class RevisionError(DsvError):
    """A revision expression that cannot be resolved."""

    exit_code = 2


class UnknownRevisionError(RevisionError):
    """No commit, branch or tag matches the revision."""

    default_hint = "see 'dsv log', 'dsv branch --list' and 'dsv tag --list' for what exists"

    def __init__(self, rev: str, *, detail: str | None = None) -> None:
        extra = f": {detail}" if detail else ""
        super().__init__(f"unknown revision '{rev}'{extra}")
        self.rev = rev


class AmbiguousRevisionError(RevisionError):
    """A commit-id prefix matches more than one commit."""

    default_hint = "type more characters of the id"

    def __init__(self, rev: str, candidates: Sequence[str]) -> None:
        shown = ", ".join(c[:12] for c in list(candidates)[:5])
        super().__init__(f"revision '{rev}' is ambiguous: matches {shown}")
        self.rev = rev
        self.candidates = list(candidates)


class RefError(DsvError):
    """A problem with a branch or tag reference."""


class InvalidRefNameError(RefError):
    """A branch or tag name that is not allowed."""

    exit_code = 2
    default_hint = "use letters, digits, '.', '_', '-' and '/' (no '..', no leading '-' or '.')"

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"invalid name '{name}': {why}")
        self.name = name


class RefExistsError(RefError):
    """Creating a branch or tag whose name is taken."""

    default_hint = "choose another name, or pass --force to move it"

    def __init__(self, name: str) -> None:
        super().__init__(f"'{name}' already exists")
        self.name = name


class MetricsExistsError(RefExistsError):
    """Attaching a metrics record under a name the commit already has."""

    default_hint = "choose another --name, or pass --force to replace it"

    def __init__(self, name: str, commit: str) -> None:
        DsvError.__init__(self, f"commit {commit[:10]} already has a metrics record named {name!r}")
        self.name = name
        self.commit = commit


class RefNotFoundError(RefError):
    """A branch or tag that does not exist (``kind``: ``"branch"``, ``"tag"``, or ``None`` when unknown)."""

    def __init__(self, name: str, kind: str | None = None) -> None:
        what = f"{kind} '{name}'" if kind else f"'{name}'"
        hint = f"list them with 'dsv {kind}'" if kind in ("branch", "tag") else None
        super().__init__(f"{what} does not exist", hint=hint)
        self.name = name
        self.kind = kind


class RefConflictError(RefError):
    """A compare-and-swap ref update found another value than expected."""

    default_hint = "another dsv process changed it at the same time; check 'dsv log' and retry"

    def __init__(self, name: str, expected: str | None, found: str | None) -> None:
        super().__init__(f"ref {name} moved concurrently: expected {expected or 'none'}, found {found or 'none'}")
        self.name = name
        self.expected = expected
        self.found = found


class LockError(DsvError):
    """Another dsv process holds a lock we need."""

    exit_code = 4

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(
            f"{path} is locked by {holder}",
            hint="wait for that dsv process to finish; if it died, delete the lock file",
        )
        self.path = path
        self.holder = holder


class WorktreeError(DsvError):
    """A problem with the working tree."""


class UnsafePathError(WorktreeError):
    """A path that would read or write outside the working tree (or inside .dsv)."""

    exit_code = 3

    def __init__(self, path: str, why: str, *, hint: str | None = None) -> None:
        super().__init__(f"unsafe path {path!r}: {why}", hint=hint or "the manifest or argument is malformed or malicious; nothing was written")
        self.path = path
        self.why = why


class UncommittedChangesError(WorktreeError):
    """A checkout that would overwrite or delete uncommitted changes."""

    default_hint = "commit them first, or pass --force to discard them"

    def __init__(self, paths: Sequence[str]) -> None:
        shown = ", ".join(list(paths)[:5])
        more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
        super().__init__(f"checkout would overwrite uncommitted changes in {shown}{more}")
        self.paths = list(paths)


class CheckoutInProgressError(WorktreeError):
    """A checkout stopped part-way (killed, power cut): the tree mixes two versions until it is finished."""

    exit_code = 4

    def __init__(self, rev: str, command: str, *, hint: str | None = None) -> None:
        super().__init__(f"a checkout of {rev} stopped part-way: run `{command}` to finish it", hint=hint)
        self.rev = rev
        self.command = command


class NothingToCommitError(WorktreeError):
    """``dsv commit`` with a working tree equal to HEAD."""

    default_hint = "change some files first, or pass --allow-empty"

    def __init__(self) -> None:
        super().__init__("nothing to commit, working tree clean")


class UsageError(DsvError):
    """An argument value that cannot be understood."""

    exit_code = 2


class StorageError(DsvError):
    """The filesystem refused an operation (missing file, permission, disk full, file-size limit...).

    The hint fits the cause: a missing file asks to check the path, a permission
    error to fix permissions, a full disk to free space.
    """

    def __init__(self, action: str, path: str, error: OSError) -> None:
        reason = error.strerror or str(error)
        super().__init__(f"cannot {action} {path}: {reason}", hint=_storage_hint(error.errno))
        self.action = action
        self.path = path
        self.errno = error.errno
        self.published = False


class PackGoneError(StorageError):
    """A pack the object store had listed is no longer there: ``dsv gc`` in another process
    removed it (its objects moved to a new pack), or it was deleted by hand.

    The store has listed the packs again when this is raised; every read retries
    once it is caught, so a long-lived reader follows a gc without noticing.
    """

    def __init__(self, path: str, error: OSError) -> None:
        super().__init__("open", path, error)
        self.hint = "another process (dsv gc) removed it while this one read: run the command again; if it persists, run 'dsv fsck'"


def _storage_hint(code: int | None) -> str:
    if code in (_errno.ENOENT, _errno.ENOTDIR, _errno.EISDIR):
        return "check the path"
    if code in (_errno.EACCES, _errno.EPERM, _errno.EROFS):
        return "fix the permissions; the repository was left as it was"
    if code in (_errno.ENOSPC, _errno.EDQUOT, _errno.EFBIG):
        return "free some space; the repository was left as it was"
    return "the repository was left as it was"


class RemoteError(DsvError):
    """A remote repository could not be used. ``remote`` names it (URL with credentials masked)."""

    exit_code = 1

    def __init__(self, remote: str, detail: str, *, hint: str | None = None) -> None:
        super().__init__(f"remote {remote}: {detail}", hint=hint)
        self.remote = remote
        self.detail = detail


class UnknownRemoteError(RemoteError):
    """No remote of that name is configured."""

    exit_code = 2
    default_hint = "see 'dsv remote list'; add one with 'dsv remote add NAME URL'"

    def __init__(self, name: str) -> None:
        DsvError.__init__(self, f"no remote named {name!r}")
        self.remote = name
        self.detail = "unknown"


class RemoteUnreachableError(RemoteError):
    """The endpoint does not answer (connection refused, DNS, timeout)."""

    default_hint = "check the URL and endpoint_url, and that the server is up; nothing was changed locally"


class RemoteAuthError(RemoteError):
    """Credentials are missing or wrong, or access is denied."""

    default_hint = "check the credentials (environment, ~/.aws, or --option); nothing was changed locally"


class RemoteNotFoundError(RemoteError):
    """The bucket or folder does not exist, or holds no dsv repository."""

    default_hint = "check the URL; create the bucket first, or push to create the repository"


class RemoteCorruptError(RemoteError):
    """An object from the remote does not verify: truncated, damaged, or forged. Nothing of it was kept."""

    exit_code = 3
    default_hint = "the remote's copy is damaged or forged; nothing from it was kept locally (run 'dsv fsck' on a good copy and push again)"

    def __init__(self, remote: str, oid: str, detail: str) -> None:
        super().__init__(remote, f"object {oid} {detail}")
        self.oid = oid


class RemoteBusyError(RemoteError):
    """A remote ref lock or lease is held by another writer past the wait."""

    exit_code = 4
    default_hint = "another push or gc is running; retry later (a lease left by a crash expires by itself)"


class PushRejectedError(RemoteError):
    """The remote ref was not moved: not a fast-forward, a stale lease, or a lost race."""

    default_hint = "fetch first ('dsv pull'), then push again; --force replaces the remote history"

    def __init__(self, remote: str, ref: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(remote, f"rejected {ref} ({reason})", hint=hint)
        self.ref = ref
        self.reason = reason


class SampleSourceError(DsvError):
    """A declared sample source cannot be read (bad file, missing column, duplicate keys)."""

    exit_code = 3


# Key path segments printed bare in metrics messages; anything else is quoted as ["..."].
_BARE_SEGMENT = _re.compile(r"[^.\[\]\"'\s](?:[^.\[\]\"']*[^.\[\]\"'\s])?")


def format_key_path(keys: Sequence[str]) -> str:
    """Render a key path for messages: ``classes.cat.f1``, ``slices["a.b"].x``."""
    out = ""
    for key in keys:
        if _BARE_SEGMENT.fullmatch(key):
            out += f".{key}" if out else key
        else:
            out += f"[{_json.dumps(key, ensure_ascii=False)}]"
    return out


class MetricsFormatError(DsvError):
    """A metrics file that is not valid JSON or fits none of the accepted formats (docs/metrics.md).

    Attributes:
        name: the file (or other source) name given to the parser.
        keys: the key path to the offending value, outermost first; empty when
            the problem is the file as a whole.
        detail: what is wrong there, and what was expected.
    """

    exit_code = 3
    default_hint = "see docs/metrics.md for the accepted metrics formats"

    def __init__(self, name: str, detail: str, *, keys: tuple[str, ...] = (), hint: str | None = None) -> None:
        where = f"{name}: {format_key_path(keys)}: " if keys else f"{name}: "
        super().__init__(where + detail, hint=hint)
        self.name = name
        self.keys = keys
        self.detail = detail
