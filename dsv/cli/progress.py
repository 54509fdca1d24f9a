"""A terminal progress bar (files, bytes, rate, ETA) that stays silent when not on a TTY."""

from __future__ import annotations

import sys
import time

from dsv.cli.render import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO


def _duration(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class TerminalProgress:
    """Draws ``phase  files  bytes  rate  ETA`` on stderr, at most 10 times a second."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None, min_interval: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.min_interval = min_interval
        self._reset("", 0, 0)

    def _reset(self, phase: str, files: int, nbytes: int) -> None:
        self.phase = phase
        self.total_files = files
        self.total_bytes = nbytes
        self.files = 0
        self.bytes = 0
        self.started = time.monotonic()
        self._last = 0.0
        self._drawn = False

    def start(self, phase: str, total_files: int, total_bytes: int) -> None:
        """Begin a phase."""
        self._reset(phase, total_files, total_bytes)

    def advance(self, files: int, nbytes: int) -> None:
        """Count progress; redraw if due."""
        self.files += files
        self.bytes += nbytes
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= self.min_interval and now - self.started >= 0.3:
            self._last = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        """The current progress line."""
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.started, 1e-6)
        rate = self.bytes / elapsed
        unit = "objects" if self.phase in ("pushing", "fetching") else "files"
        parts = [f"{self.phase:<10}", f"{self.files}/{self.total_files} {unit}", f"{human_size(self.bytes)}/{human_size(self.total_bytes)}", f"{human_size(rate)}/s"]
        if self.bytes and self.total_bytes > self.bytes:
            parts.append(f"ETA {_duration((self.total_bytes - self.bytes) / max(rate, 1))}")
        elif self.files and self.total_files > self.files:
            parts.append(f"ETA {_duration((self.total_files - self.files) * elapsed / self.files)}")
        return "  ".join(parts)

    def _draw(self, now: float) -> None:
        self.stream.write("\r\x1b[K" + self.line(now))
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """End the phase and clear the line."""
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self._drawn = False
