"""The three kinds of file a snapshot records, as manifest modes (docs/format.md §5.5)."""

from __future__ import annotations

MODE_FILE = 0o100644
"""A regular file (owner-execute bit clear)."""
MODE_EXEC = 0o100755
"""A regular file with the owner-execute bit set."""
MODE_LINK = 0o120000
"""A symbolic link; its content object is the link target."""
MODES = (MODE_FILE, MODE_EXEC, MODE_LINK)
"""Every valid mode."""
