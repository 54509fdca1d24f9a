"""Commit and tag documents without pydantic: the read path of every command, and commit's write path.

dsv writes commits and tags through the pydantic models of
:mod:`dsv.history.objects` (canonical JSON, docs/format.md §6). Reading them
is what ``log``, ``status``, ``diff``, ``checkout`` and ``dsv://`` do on every
call, and importing pydantic and building those models costs ~80 ms, more
than a no-op ``status`` of 20,000 files. So reads parse the JSON here, with
checks equal to the models' (strict types, no unknown field, ids and aware
timestamps), into immutable records with the same field names. A test holds
the two to the same verdicts on valid and malformed documents.

``dsv commit`` writes its document with :func:`commit_bytes`, which gives byte
for byte what the pydantic model writes (a test holds them equal on random
commits): the model stays the schema of record, and a commit does not pay for
importing it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from dsv.base.errors import CorruptMetadataError, FormatVersionError, ObjectNotFoundError
from dsv.base.formats import DOCUMENT_FORMAT, canonical_json
from dsv.base.hashing import is_object_id
from dsv.base.records import FrozenRecord, init_field

if TYPE_CHECKING:
    from dsv.store.base import ObjectStore

MAX_DOCUMENT_SIZE = 16 * 1024 * 1024
"""Commit and tag documents larger than this are refused as malformed."""


class CommitSummary(FrozenRecord):
    """Counts stored in the commit so ``log``/``show`` never re-read the manifest."""

    __slots__ = ("files", "bytes", "added", "removed", "modified", "moved")

    files: int
    bytes: int
    added: int
    removed: int
    modified: int
    moved: int

    def __init__(self, files: int, bytes: int, added: int = 0, removed: int = 0, modified: int = 0, moved: int = 0) -> None:
        init_field(self, "files", files)
        init_field(self, "bytes", bytes)
        init_field(self, "added", added)
        init_field(self, "removed", removed)
        init_field(self, "modified", modified)
        init_field(self, "moved", moved)


class Commit(FrozenRecord):
    """A snapshot as read: a manifest, its parents, who made it, when and why."""

    __slots__ = ("manifest", "author", "time", "message", "summary", "parents", "email", "format", "type")

    manifest: str
    author: str
    time: dt.datetime
    message: str
    summary: CommitSummary
    parents: tuple[str, ...]
    email: str
    format: int
    type: str

    def __init__(
        self,
        manifest: str,
        author: str,
        time: dt.datetime,
        message: str,
        summary: CommitSummary,
        parents: tuple[str, ...] = (),
        email: str = "",
        format: int = DOCUMENT_FORMAT,
        type: str = "commit",
    ) -> None:
        init_field(self, "manifest", manifest)
        init_field(self, "author", author)
        init_field(self, "time", time)
        init_field(self, "message", message)
        init_field(self, "summary", summary)
        init_field(self, "parents", parents)
        init_field(self, "email", email)
        init_field(self, "format", format)
        init_field(self, "type", type)


class Tag(FrozenRecord):
    """An annotated tag as read: a name for a commit, with a message and key=value metadata."""

    __slots__ = ("object", "name", "tagger", "time", "message", "email", "meta", "format", "type")

    object: str
    name: str
    tagger: str
    time: dt.datetime
    message: str
    email: str
    meta: dict[str, str]
    format: int
    type: str

    def __init__(
        self,
        object: str,
        name: str,
        tagger: str,
        time: dt.datetime,
        message: str = "",
        email: str = "",
        meta: dict[str, str] | None = None,
        format: int = DOCUMENT_FORMAT,
        type: str = "tag",
    ) -> None:
        init_field(self, "object", object)
        init_field(self, "name", name)
        init_field(self, "tagger", tagger)
        init_field(self, "time", time)
        init_field(self, "message", message)
        init_field(self, "email", email)
        init_field(self, "meta", {} if meta is None else meta)
        init_field(self, "format", format)
        init_field(self, "type", type)


class _Bad(ValueError):
    """One problem, at ``loc`` (reported as ``loc: message``)."""

    def __init__(self, loc: str, message: str) -> None:
        super().__init__(f"{loc}: {message}")


def _str(doc: dict[str, Any], key: str, default: str | None = None) -> str:
    if key not in doc:
        if default is None:
            raise _Bad(key, "Field required")
        return default
    value = doc[key]
    if not isinstance(value, str):
        raise _Bad(key, "Input should be a valid string")
    return value


def _int(doc: dict[str, Any], key: str, loc: str, default: int | None = None) -> int:
    if key not in doc:
        if default is None:
            raise _Bad(loc, "Field required")
        return default
    value = doc[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Bad(loc, "Input should be a valid integer")
    return value


def _oid(value: Any, loc: str) -> str:
    if not isinstance(value, str):
        raise _Bad(loc, "Input should be a valid string")
    if not is_object_id(value):
        raise _Bad(loc, "Value error, not a 32-digit lowercase hex object id")
    return value


def _time(doc: dict[str, Any]) -> dt.datetime:
    if "time" not in doc:
        raise _Bad("time", "Field required")
    value = doc["time"]
    if not isinstance(value, str):
        raise _Bad("time", "Input should be a valid datetime")
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _Bad("time", "Input should be a valid datetime") from None
    if when.tzinfo is None:
        raise _Bad("time", "Value error, timestamp needs a UTC offset")
    return when


def _only(doc: dict[str, Any], allowed: set[str], prefix: str = "") -> None:
    for key in doc:
        if key not in allowed:
            raise _Bad(prefix + key, "Extra inputs are not permitted")


def _document(data: bytes, what: str, kind: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptMetadataError(what, f"not valid JSON ({err})") from err
    if not isinstance(doc, dict):
        raise CorruptMetadataError(what, "expected a JSON object")
    version = doc.get("format", None)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CorruptMetadataError(what, "no integer 'format' version")
    if version > DOCUMENT_FORMAT:
        raise FormatVersionError(what, version, DOCUMENT_FORMAT)
    if version != DOCUMENT_FORMAT:
        raise CorruptMetadataError(what, f"format: Input should be {DOCUMENT_FORMAT}")
    if doc.get("type", kind) != kind:
        raise CorruptMetadataError(what, f"type: Input should be '{kind}'")
    return doc


def parse_commit(data: bytes, *, what: str) -> Commit:
    """A commit document, checked as strictly as :class:`dsv.history.objects.Commit` checks it."""
    doc = _document(data, what, "commit")
    try:
        _only(doc, {"format", "type", "manifest", "parents", "author", "email", "time", "message", "summary"})
        if "manifest" not in doc:
            raise _Bad("manifest", "Field required")
        manifest = _oid(doc["manifest"], "manifest")
        raw_parents = doc.get("parents", [])
        if not isinstance(raw_parents, list):
            raise _Bad("parents", "Input should be a valid tuple")
        parents = tuple(_oid(p, f"parents.{i}") for i, p in enumerate(raw_parents))
        author = _str(doc, "author")
        email = _str(doc, "email", "")
        when = _time(doc)
        message = _str(doc, "message")
        if "summary" not in doc:
            raise _Bad("summary", "Field required")
        raw = doc["summary"]
        if not isinstance(raw, dict):
            raise _Bad("summary", "Input should be an object")
        _only(raw, {"files", "bytes", "added", "removed", "modified", "moved"}, "summary.")
        summary = CommitSummary(
            _int(raw, "files", "summary.files"),
            _int(raw, "bytes", "summary.bytes"),
            _int(raw, "added", "summary.added", 0),
            _int(raw, "removed", "summary.removed", 0),
            _int(raw, "modified", "summary.modified", 0),
            _int(raw, "moved", "summary.moved", 0),
        )
    except _Bad as err:
        raise CorruptMetadataError(what, str(err)) from None
    return Commit(manifest, author, when, message, summary, parents, email)


def parse_tag(data: bytes, *, what: str) -> Tag:
    """A tag document, checked as strictly as :class:`dsv.history.objects.Tag` checks it."""
    doc = _document(data, what, "tag")
    try:
        _only(doc, {"format", "type", "object", "name", "tagger", "email", "time", "message", "meta"})
        if "object" not in doc:
            raise _Bad("object", "Field required")
        target = _oid(doc["object"], "object")
        name = _str(doc, "name")
        tagger = _str(doc, "tagger")
        email = _str(doc, "email", "")
        when = _time(doc)
        message = _str(doc, "message", "")
        meta = doc.get("meta", {})
        if not isinstance(meta, dict):
            raise _Bad("meta", "Input should be a valid dictionary")
        for k, v in meta.items():
            if not isinstance(v, str):
                raise _Bad(f"meta.{k}", "Input should be a valid string")
    except _Bad as err:
        raise CorruptMetadataError(what, str(err)) from None
    return Tag(target, name, tagger, when, message, email, dict(meta))


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
    return parse_commit(data, what=f"commit {oid}")


def read_tag(store: "ObjectStore", oid: str) -> Tag:
    """Read and validate the tag object ``oid``."""
    return parse_tag(store.read(oid), what=f"tag {oid}")


def now() -> dt.datetime:
    """The current time with the local UTC offset, to the second."""
    return dt.datetime.now().astimezone().replace(microsecond=0)


def json_time(when: dt.datetime) -> str:
    """An aware timestamp as the models write it: ISO 8601, ``Z`` for a zero UTC offset."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("timestamp needs a UTC offset")
    text = when.isoformat()
    if when.utcoffset() == dt.timedelta(0):
        text = text[: text.rindex("+")] + "Z"
    return text


def commit_bytes(commit: Commit) -> bytes:
    """The canonical JSON document of ``commit`` (what :class:`dsv.history.objects.Commit` writes)."""
    for oid in (commit.manifest, *commit.parents):
        if not is_object_id(oid):
            raise ValueError(f"not a 32-digit lowercase hex object id: {oid!r}")
    s = commit.summary
    return canonical_json(
        {
            "author": commit.author,
            "email": commit.email,
            "format": commit.format,
            "manifest": commit.manifest,
            "message": commit.message,
            "parents": list(commit.parents),
            "summary": {"added": s.added, "bytes": s.bytes, "files": s.files, "modified": s.modified, "moved": s.moved, "removed": s.removed},
            "time": json_time(commit.time),
            "type": "commit",
        }
    )
