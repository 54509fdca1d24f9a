"""Format version numbers (docs/format.md §13) and the canonical JSON encoding, importable without pydantic."""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final, Literal

REPOSITORY_FORMAT = 2
"""The repository format (``config.json``'s ``format``) this dsv writes; it reads 1 and 2.

2: canonical manifest encoding, pack version 2 (per-object encodings). A format-1
repository is read as it is and upgraded to 2 by its first write.
"""

DOCUMENT_FORMAT: Final[Literal[1]] = 1
"""The format of JSON documents stored as objects (commits, tags, metrics records)."""

DECLARATION_FILE: Final = "dsv.toml"
"""The file at a working tree's root that declares sample sources, slices and audits (docs/semantic.md)."""

REMOTE_MARKER: Final = "dsv-remote.json"
"""The file a push creates at a remote's root (docs/remotes.md): what makes a location a dsv remote."""


def canonical_json(value: Any) -> bytes:
    """Serialize ``value`` deterministically: sorted keys, no spaces, UTF-8 (docs/format.md §6)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
