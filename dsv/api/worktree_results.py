"""Results of the working-tree commands (``status``, ``commit``, ``checkout``).

Apart from :mod:`dsv.api.results` (which re-exports them) because these three
commands are the ones run most, and defining every other result type cost
them a few milliseconds of start-up each (:mod:`dsv.cli.quick`).
:class:`StatusResult` and :class:`Warnings` live in :mod:`dsv.api.status`
(re-exported here), as plain classes: see that module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dsv.api.status import StatusResult, Warnings
from dsv.base.records import FrozenRecord, init_field

if TYPE_CHECKING:
    from dsv.history.documents import Commit


def commit_dict(oid: str, c: Commit) -> dict[str, Any]:
    """The JSON shape of a commit (docs/cli.md)."""
    return {
        "id": oid,
        "parents": list(c.parents),
        "author": c.author,
        "email": c.email,
        "time": c.time.isoformat(),
        "message": c.message,
        "manifest": c.manifest,
        "files": c.summary.files,
        "bytes": c.summary.bytes,
        "changes": {"added": c.summary.added, "removed": c.summary.removed, "modified": c.summary.modified, "moved": c.summary.moved},
    }


class CommitResult(FrozenRecord):
    """A new commit."""

    __slots__ = ("id", "branch", "commit", "warnings", "changed_while_reading", "files_read", "bytes_read")

    id: str
    branch: str | None
    commit: Commit
    warnings: tuple[str, ...]
    changed_while_reading: tuple[str, ...]
    files_read: int
    bytes_read: int

    def __init__(
        self,
        id: str,
        branch: str | None,
        commit: Commit,
        warnings: tuple[str, ...] = (),
        changed_while_reading: tuple[str, ...] = (),
        files_read: int = 0,
        bytes_read: int = 0,
    ) -> None:
        init_field(self, "id", id)
        init_field(self, "branch", branch)
        init_field(self, "commit", commit)
        init_field(self, "warnings", warnings)
        init_field(self, "changed_while_reading", changed_while_reading)
        init_field(self, "files_read", files_read)
        init_field(self, "bytes_read", bytes_read)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = commit_dict(self.id, self.commit)
        d.update(
            branch=self.branch,
            warnings=list(self.warnings),
            changed_while_reading=list(self.changed_while_reading),
            files_read=self.files_read,
            bytes_read=self.bytes_read,
        )
        return d


class CheckoutResult(FrozenRecord):
    """What a checkout did."""

    __slots__ = ("commit", "branch", "written", "removed", "bytes_written", "paths", "warnings", "overwritten")

    commit: str
    branch: str | None
    written: int
    removed: int
    bytes_written: int
    paths: tuple[str, ...]
    warnings: tuple[str, ...]
    overwritten: tuple[str, ...]
    """Paths whose local changes a path checkout discarded (as ``git checkout -- PATH`` does)."""

    def __init__(
        self,
        commit: str,
        branch: str | None,
        written: int,
        removed: int,
        bytes_written: int,
        paths: tuple[str, ...] = (),
        warnings: tuple[str, ...] = (),
        overwritten: tuple[str, ...] = (),
    ) -> None:
        init_field(self, "commit", commit)
        init_field(self, "branch", branch)
        init_field(self, "written", written)
        init_field(self, "removed", removed)
        init_field(self, "bytes_written", bytes_written)
        init_field(self, "paths", paths)
        init_field(self, "warnings", warnings)
        init_field(self, "overwritten", overwritten)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "commit": self.commit,
            "branch": self.branch,
            "written": self.written,
            "removed": self.removed,
            "bytes_written": self.bytes_written,
            "paths": list(self.paths),
            "overwritten": list(self.overwritten),
            "warnings": list(self.warnings),
        }


__all__ = ["CheckoutResult", "CommitResult", "StatusResult", "Warnings", "commit_dict"]
