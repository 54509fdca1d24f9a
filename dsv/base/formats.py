"""Format version numbers (docs/format.md §13), importable without pydantic."""

from typing import Final, Literal

REPOSITORY_FORMAT = 2
"""The repository format (``config.json``'s ``format``) this dsv writes; it reads 1 and 2.

2: canonical manifest encoding, pack version 2 (per-object encodings). A format-1
repository is read as it is and upgraded to 2 by its first write.
"""

DOCUMENT_FORMAT: Final[Literal[1]] = 1
"""The format of JSON documents stored as objects (commits, tags, metrics records)."""

REMOTE_MARKER: Final = "dsv-remote.json"
"""The file a push creates at a remote's root (docs/remotes.md): what makes a location a dsv remote."""
