"""Commit and tag documents, stored as canonical JSON objects in the object store."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

from dsv.base.errors import CorruptMetadataError, ObjectNotFoundError
from dsv.base.hashing import is_object_id
from dsv.base.ondisk import OnDiskModel

if TYPE_CHECKING:
    from dsv.store.base import ObjectStore

MAX_DOCUMENT_SIZE = 16 * 1024 * 1024
"""Commit and tag documents larger than this are refused as malformed."""


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


def now() -> dt.datetime:
    """The current time with the local UTC offset, to the second."""
    return dt.datetime.now().astimezone().replace(microsecond=0)


def document_type(data: bytes) -> str | None:
    """The ``type`` of a JSON document object, or ``None`` if the bytes are not one."""
    if not data.startswith(b"{") or len(data) > MAX_DOCUMENT_SIZE:
        return None
    try:
        raw = json.loads(data)
    except ValueError:
        return None
    if isinstance(raw, dict) and isinstance(raw.get("type"), str):
        return raw["type"]
    return None


def read_commit(store: "ObjectStore", oid: str) -> Commit:
    """Read and validate the commit ``oid``."""
    try:
        data = store.read(oid)
    except ObjectNotFoundError:
        raise ObjectNotFoundError(oid, context="history") from None
    kind = document_type(data)
    if kind != "commit":
        raise CorruptMetadataError(f"commit {oid}", f"object is a {kind or 'data blob'}, not a commit")
    return Commit.from_json_bytes(data, what=f"commit {oid}")


def read_tag(store: "ObjectStore", oid: str) -> Tag:
    """Read and validate the tag object ``oid``."""
    data = store.read(oid)
    return Tag.from_json_bytes(data, what=f"tag {oid}")
