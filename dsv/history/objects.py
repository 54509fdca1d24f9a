"""Commit and tag documents, stored as canonical JSON objects in the object store: the models that write them.

Reading goes through :mod:`dsv.history.documents` (no pydantic on the read
path); its names are re-exported here for callers that write and read.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

from dsv.base.hashing import is_object_id
from dsv.base.ondisk import OnDiskModel
from dsv.history.documents import MAX_DOCUMENT_SIZE, document_type, now, read_commit, read_tag

__all__ = ["AwareDatetime", "Commit", "CommitSummary", "MAX_DOCUMENT_SIZE", "ObjectIdStr", "Tag", "document_type", "now", "read_commit", "read_tag"]

def _check_oid(value: str) -> str:
    if not is_object_id(value):
        raise ValueError("not a 32-digit lowercase hex object id")
    return value


ObjectIdStr = Annotated[str, AfterValidator(_check_oid)]


def _check_aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp needs a UTC offset")
    return value


AwareDatetime = Annotated[dt.datetime, AfterValidator(_check_aware)]


class CommitSummary(BaseModel):
    """Counts stored in the commit so ``log``/``show`` never re-read the manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    files: int
    bytes: int
    added: int = 0
    removed: int = 0
    modified: int = 0
    moved: int = 0


class Commit(OnDiskModel):
    """A snapshot: a manifest, its parents, who made it, when and why."""

    type: Literal["commit"] = "commit"
    manifest: ObjectIdStr
    parents: tuple[ObjectIdStr, ...] = ()
    author: str
    email: str = ""
    time: AwareDatetime
    message: str
    summary: CommitSummary


class Tag(OnDiskModel):
    """An annotated tag: a name for a commit, with a message and key=value metadata."""

    type: Literal["tag"] = "tag"
    object: ObjectIdStr
    name: str
    tagger: str
    email: str = ""
    time: AwareDatetime
    message: str = ""
    meta: dict[str, str] = {}
