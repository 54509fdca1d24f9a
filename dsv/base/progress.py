"""Progress reporting: the library calls a callback; only the CLI draws."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # a protocol for type checkers; at run time a plain class, so `status` never imports typing


class Progress(Protocol):
    """Receives progress of a long operation."""

    def start(self, phase: str, total_files: int, total_bytes: int) -> None:
        """A phase begins (``hashing``, ``checkout``, ``fsck`` ...)."""
        ...

    def advance(self, files: int, nbytes: int) -> None:
        """``files`` more files and ``nbytes`` more bytes are done."""
        ...

    def finish(self) -> None:
        """The phase is over."""
        ...


class NullProgress:
    """Progress that reports nothing."""

    def start(self, phase: str, total_files: int, total_bytes: int) -> None:
        """Ignore."""

    def advance(self, files: int, nbytes: int) -> None:
        """Ignore."""

    def finish(self) -> None:
        """Ignore."""
