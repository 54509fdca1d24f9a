"""Object ids: XXH3-128 of an object's bytes.

An id is written as 32 lowercase hex digits (the canonical big-endian digest) in
text and JSON, and as 16 raw bytes in Arrow tables and binary indexes.
XXH3 detects accidental corruption; it is not a cryptographic hash (see the threat
model in docs/format.md).
"""

from __future__ import annotations

import re

import xxhash

HEX_LENGTH = 32
DIGEST_SIZE = 16
_HEX_RE = re.compile(r"[0-9a-f]{32}")

Hasher = xxhash.xxh3_128
"""Streaming hasher: ``h = Hasher(); h.update(b); h.hexdigest()``."""


def hash_bytes(data: bytes | memoryview) -> str:
    """Return the hex object id of ``data``."""
    return xxhash.xxh3_128_hexdigest(data)


def digest_bytes(data: bytes | memoryview) -> bytes:
    """Return the 16-byte binary object id of ``data``."""
    return xxhash.xxh3_128_digest(data)


def is_object_id(text: str) -> bool:
    """Whether ``text`` is a full hex object id."""
    return bool(_HEX_RE.fullmatch(text))


def to_hex(raw: bytes) -> str:
    """Binary id to hex."""
    return raw.hex()


def from_hex(oid: str) -> bytes:
    """Hex id to binary."""
    return bytes.fromhex(oid)


def path_fingerprint(path: str) -> int:
    """64-bit hash of a path, used for content-defined manifest chunk boundaries."""
    return xxhash.xxh3_64_intdigest(path.encode("utf-8"))
