"""Base of every JSON document dsv writes: frozen, strict pydantic models.

A document is written as canonical JSON (sorted keys, no spaces, UTF-8) so that the
same content always gives the same bytes and so the same object id. Each document
carries ``format``; :meth:`OnDiskModel.from_json_bytes` refuses versions newer than
the model's ``max_format`` (:data:`DOCUMENT_FORMAT` unless a model says otherwise)
before validating anything else.
"""

from __future__ import annotations

import json
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from dsv.base.errors import CorruptMetadataError, FormatVersionError
from dsv.base.formats import DOCUMENT_FORMAT, canonical_json

__all__ = ["DOCUMENT_FORMAT", "OnDiskModel", "canonical_json"]


class OnDiskModel(BaseModel):
    """Frozen, strict base model for documents written to disk."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    max_format: ClassVar[int] = DOCUMENT_FORMAT
    """The newest ``format`` this dsv reads for this kind of document."""

    format: Literal[1] = DOCUMENT_FORMAT

    def to_json_bytes(self) -> bytes:
        """Canonical JSON bytes of this document."""
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_json_bytes(cls, data: bytes, *, what: str) -> Self:
        """Parse and validate a document, naming it ``what`` in errors."""
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CorruptMetadataError(what, f"not valid JSON ({err})") from err
        if not isinstance(raw, dict):
            raise CorruptMetadataError(what, "expected a JSON object")
        version = raw.get("format", None)
        if not isinstance(version, int) or isinstance(version, bool):
            raise CorruptMetadataError(what, "no integer 'format' version")
        if version > cls.max_format:
            raise FormatVersionError(what, version, cls.max_format)
        try:
            # Strict, from JSON: no silent coercion (an integer is not a timestamp).
            return cls.model_validate_json(data, strict=True)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "document"
            raise CorruptMetadataError(what, f"{loc}: {first['msg']}") from err
