"""Typed results of the porcelain operations; each has ``to_dict()`` for ``--json``.

The results of ``status``, ``commit`` and ``checkout`` are defined in
:mod:`dsv.api.worktree_results` (so those commands do not pay for defining the
others) and importable from here as well.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from dsv.api.worktree_results import CheckoutResult, CommitResult, StatusResult, Warnings, commit_dict
from dsv.base.records import FrozenRecord, init_field
from dsv.base.tables import ResultList, ResultTable

if TYPE_CHECKING:
    from dsv.history.documents import Commit, Tag


def tag_dict(name: str, oid: str, tag: Tag | None, commit_id: str) -> dict[str, Any]:
    """The JSON shape of a tag."""
    return {
        "name": name,
        "commit": commit_id,
        "annotated": tag is not None,
        "object": oid,
        "message": tag.message if tag else None,
        "tagger": tag.tagger if tag else None,
        "email": tag.email if tag else None,
        "time": tag.time.isoformat() if tag else None,
        "meta": dict(tag.meta) if tag else {},
    }


class LogEntry(FrozenRecord):
    """One commit in ``log``, with the refs pointing at it."""

    __slots__ = ("id", "commit", "refs")

    id: str
    commit: Commit
    refs: tuple[str, ...]

    def __init__(self, id: str, commit: Commit, refs: tuple[str, ...] = ()) -> None:
        init_field(self, "id", id)
        init_field(self, "commit", commit)
        init_field(self, "refs", refs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = commit_dict(self.id, self.commit)
        d["refs"] = list(self.refs)
        return d


class LogResult(ResultList):
    """``log``'s entries (newest first); ``to_arrow()``/``to_pandas()`` give one row per commit."""

    columns = [
        ("id", "string"), ("parents", "string"), ("author", "string"), ("email", "string"), ("time", "timestamp"), ("message", "string"),
        ("manifest", "string"), ("files", "int64"), ("bytes", "int64"), ("added", "int64"), ("removed", "int64"), ("modified", "int64"),
        ("moved", "int64"), ("refs", "string"),
    ]

    def to_dict(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The ``dsv log --json`` document: one dict per commit, newest first."""
        return [e.to_dict() for e in self]

    def rows_of(self, item: LogEntry) -> list[dict[str, Any]]:
        """One row per commit (parents and refs joined by spaces)."""
        d = item.to_dict()
        changes = d.pop("changes")
        d.update(changes)
        d["parents"] = " ".join(d["parents"])
        d["refs"] = ", ".join(d["refs"])
        d["time"] = item.commit.time.astimezone(dt.timezone.utc)
        return [d]


class ShowResult(FrozenRecord):
    """A commit, and the tag it was named through (if any)."""

    __slots__ = ("id", "commit", "tag_name", "tag", "refs")

    id: str
    commit: Commit
    tag_name: str | None
    tag: Tag | None
    refs: tuple[str, ...]

    def __init__(self, id: str, commit: Commit, tag_name: str | None = None, tag: Tag | None = None, refs: tuple[str, ...] = ()) -> None:
        init_field(self, "id", id)
        init_field(self, "commit", commit)
        init_field(self, "tag_name", tag_name)
        init_field(self, "tag", tag)
        init_field(self, "refs", refs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = commit_dict(self.id, self.commit)
        d["refs"] = list(self.refs)
        d["tag"] = tag_dict(self.tag_name, "", self.tag, self.id) if self.tag_name else None
        if d["tag"] is not None:
            d["tag"].pop("object")
        return d


class FileInfo(FrozenRecord):
    """One file of a snapshot."""

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"path": self.path, "oid": self.oid, "size": self.size, "mode": f"{self.mode:o}"}


class BranchInfo(FrozenRecord):
    """A branch."""

    __slots__ = ("name", "commit", "current")

    name: str
    commit: str
    current: bool

    def __init__(self, name: str, commit: str, current: bool) -> None:
        init_field(self, "name", name)
        init_field(self, "commit", commit)
        init_field(self, "current", current)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "commit": self.commit, "current": self.current}


class TagInfo(FrozenRecord):
    """A tag (annotated or lightweight)."""

    __slots__ = ("name", "object", "commit", "tag")

    name: str
    object: str
    commit: str
    tag: Tag | None

    def __init__(self, name: str, object: str, commit: str, tag: Tag | None = None) -> None:
        init_field(self, "name", name)
        init_field(self, "object", object)
        init_field(self, "commit", commit)
        init_field(self, "tag", tag)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return tag_dict(self.name, self.object, self.tag, self.commit)


class VersionInfo(FrozenRecord):
    """What a training script should log: the dataset version it read."""

    __slots__ = ("commit", "branch", "tags", "dirty", "root")

    commit: str | None
    branch: str | None
    tags: tuple[str, ...]
    dirty: bool
    root: str

    def __init__(self, commit: str | None, branch: str | None, tags: tuple[str, ...], dirty: bool, root: str) -> None:
        init_field(self, "commit", commit)
        init_field(self, "branch", branch)
        init_field(self, "tags", tags)
        init_field(self, "dirty", dirty)
        init_field(self, "root", root)

    @property
    def label(self) -> str:
        """A short human label, e.g. ``v2`` or ``main@1a2b3c4d5e+dirty``."""
        base = self.tags[0] if self.tags else f"{self.branch or 'detached'}@{(self.commit or 'none')[:10]}"
        return base + ("+dirty" if self.dirty else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON form; log it as run parameters (MLflow ``log_params``, W&B ``config``)."""
        return {"commit": self.commit, "branch": self.branch, "tags": list(self.tags), "dirty": self.dirty, "root": self.root, "label": self.label}


class ChangelogResult(ResultList):
    """``changelog``'s steps (``(LogEntry, SemanticDiff)``, newest first), with per-step tables.

    ``to_arrow()`` gives one row per step and source (the totals); ``classes``,
    ``relabels`` and ``slices`` the same summaries as a diff, with a ``commit`` column.
    """

    columns = [("commit", "string"), ("message", "string"), ("time", "timestamp")]

    def __init__(self, steps: Any = (), *, spec: str | None = None) -> None:
        super().__init__(steps)
        self.spec = spec
        """The range asked for (``None``: HEAD's whole history)."""
        self.extras: dict[str, dict[str, Any]] = {}
        """Per commit id, more of its step's document (``metrics``, ``audit``), as ``changelog --metrics/--audit`` add."""

    def to_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """The ``dsv changelog --json`` document (docs/cli.md)."""
        entries = [{"commit": commit_dict(e.id, e.commit), "diff": d.to_dict(), **self.extras.get(e.id, {})} for e, d in self]
        return {"format": 1, "range": self.spec or "HEAD", "entries": entries}

    def rows_of(self, item: Any) -> list[dict[str, Any]]:
        """The step's totals per source."""
        entry, diff = item
        head = {"commit": entry.id, "message": entry.commit.message, "time": entry.commit.time.astimezone(dt.timezone.utc)}
        return [{**head, **row} for row in diff.totals]

    def _summary(self, name: str) -> ResultTable:
        rows: list[dict[str, Any]] = []
        columns: list[tuple[str, str]] = [("commit", "string")]
        for entry, diff in self:
            t = getattr(diff, name)
            columns = [("commit", "string"), *t.columns]
            rows.extend({"commit": entry.id, **r} for r in t)
        if not self:
            from dsv.semantic.report import SemanticDiff

            columns = [("commit", "string"), *getattr(SemanticDiff("", "", {}), name).columns]
        return ResultTable(rows, columns)

    @property
    def table(self) -> ResultTable:
        """Totals per step and source."""
        from dsv.semantic.report import TOTALS_COLUMNS

        return ResultTable([row for item in self for row in self.rows_of(item)], [*self.columns, *TOTALS_COLUMNS])

    @property
    def classes(self) -> ResultTable:
        """Per step, source and class."""
        return self._summary("classes")

    @property
    def relabels(self) -> ResultTable:
        """Per step and source, the relabel matrix in long form."""
        return self._summary("relabels")

    @property
    def slices(self) -> ResultTable:
        """Per step, source, slice column and value."""
        return self._summary("slices")


__all__ = [
    "BranchInfo",
    "ChangelogResult",
    "CheckoutResult",
    "CommitResult",
    "FileInfo",
    "LogEntry",
    "LogResult",
    "ShowResult",
    "StatusResult",
    "TagInfo",
    "VersionInfo",
    "Warnings",
    "commit_dict",
    "tag_dict",
]
