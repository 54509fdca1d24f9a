"""Typed results of push, fetch, pull, clone and remote gc (``to_dict()`` is the ``--json`` shape)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class RefStatus(enum.Enum):
    """What happened to one ref."""

    UP_TO_DATE = "up-to-date"
    CREATED = "created"
    FAST_FORWARD = "fast-forward"
    FORCED = "forced"
    DELETED = "deleted"
    REJECTED = "rejected"


@dataclass(frozen=True)
class RefUpdate:
    """One ref a push or fetch moved (or did not): names on both sides, old and new ids."""

    ref: str
    """The ref on the remote (push) or locally (fetch): ``refs/heads/main``, ``refs/remotes/origin/main``."""
    old: str | None
    new: str | None
    status: RefStatus
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ref": self.ref, "old": self.old, "new": self.new, "status": self.status.value, "reason": self.reason}


@dataclass(frozen=True)
class TransferStats:
    """What crossed the wire."""

    objects: int = 0
    bytes: int = 0
    packs: int = 0
    requests: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"objects": self.objects, "bytes": self.bytes, "packs": self.packs, "requests": self.requests, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class PushResult:
    """A push: each ref's fate and what was uploaded."""

    remote: str
    url: str
    refs: tuple[RefUpdate, ...]
    stats: TransferStats

    @property
    def rejected(self) -> tuple[RefUpdate, ...]:
        """The refs the remote did not take."""
        return tuple(r for r in self.refs if r.status == RefStatus.REJECTED)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"remote": self.remote, "url": self.url, "refs": [r.to_dict() for r in self.refs], **self.stats.to_dict()}


@dataclass(frozen=True)
class FetchResult:
    """A fetch: local refs updated and what was downloaded."""

    remote: str
    url: str
    refs: tuple[RefUpdate, ...]
    stats: TransferStats
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"remote": self.remote, "url": self.url, "refs": [r.to_dict() for r in self.refs], **self.stats.to_dict(), "warnings": list(self.warnings)}


@dataclass(frozen=True)
class RemoteGcResult:
    """A remote gc: packs deleted, rewritten and kept."""

    remote: str
    url: str
    packs_deleted: int = 0
    packs_rewritten: int = 0
    objects_removed: int = 0
    bytes_removed: int = 0
    packs_kept: int = 0
    leases_seen: int = 0
    leases_expired: int = 0
    skipped: tuple[str, ...] = field(default_factory=tuple)
    """Why packs that looked dead were kept (a push in flight relied on them)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "remote": self.remote,
            "url": self.url,
            "packs_deleted": self.packs_deleted,
            "packs_rewritten": self.packs_rewritten,
            "objects_removed": self.objects_removed,
            "bytes_removed": self.bytes_removed,
            "packs_kept": self.packs_kept,
            "leases_seen": self.leases_seen,
            "leases_expired": self.leases_expired,
            "skipped": list(self.skipped),
        }
