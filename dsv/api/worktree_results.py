"""Results of the working-tree commands (``status``, ``commit``, ``checkout``).

Apart from :mod:`dsv.api.results` (which re-exports them) because these three
commands are the ones run most, and defining every other result type cost
them a few milliseconds of start-up each (:mod:`dsv.cli.quick`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsv.base.tables import ResultTable

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


@dataclass(frozen=True)
class CommitResult:
    """A new commit."""

    id: str
    branch: str | None
    commit: Commit
    warnings: tuple[str, ...] = ()
    changed_while_reading: tuple[str, ...] = ()
    files_read: int = 0
    bytes_read: int = 0

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


@dataclass(frozen=True)
class StatusResult:
    """The working tree against HEAD."""

    branch: str | None
    head: str | None
    added: tuple[str, ...]
    removed: tuple[str, ...]
    modified: tuple[str, ...]
    moved: tuple[tuple[str, str], ...]
    warnings: tuple[str, ...] = ()
    checkout_in_progress: str | None = None
    """The command that finishes a checkout that stopped part-way, if one did."""

    @property
    def clean(self) -> bool:
        """Whether nothing changed."""
        return not (self.added or self.removed or self.modified or self.moved)

    @property
    def table(self) -> ResultTable:
        """One row per change: ``change`` (added, removed, modified, moved), ``path``, ``old_path``."""
        rows = [{"change": "added", "path": p, "old_path": None} for p in self.added]
        rows += [{"change": "removed", "path": p, "old_path": None} for p in self.removed]
        rows += [{"change": "modified", "path": p, "old_path": None} for p in self.modified]
        rows += [{"change": "moved", "path": b, "old_path": a} for a, b in self.moved]
        return ResultTable(rows, [("change", "string"), ("path", "string"), ("old_path", "string")])

    def to_arrow(self) -> Any:
        """:attr:`table` as an Arrow table."""
        return self.table.to_arrow()

    def to_pandas(self) -> Any:
        """:attr:`table` as a pandas DataFrame (pandas is optional)."""
        return self.table.to_pandas()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "branch": self.branch,
            "head": self.head,
            "checkout_in_progress": self.checkout_in_progress,
            "clean": self.clean,
            "added": list(self.added),
            "removed": list(self.removed),
            "modified": list(self.modified),
            "moved": [{"from": a, "to": b} for a, b in self.moved],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class CheckoutResult:
    """What a checkout did."""

    commit: str
    branch: str | None
    written: int
    removed: int
    bytes_written: int
    paths: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    overwritten: tuple[str, ...] = ()
    """Paths whose local changes a path checkout discarded (as ``git checkout -- PATH`` does)."""

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


@dataclass
class Warnings:
    """Collects warnings raised deep in a service, for the result."""

    items: list[str] = field(default_factory=list)

    def __call__(self, message: str) -> None:
        self.items.append(message)
