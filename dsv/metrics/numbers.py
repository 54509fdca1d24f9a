"""One way to write a metric in text: every table, list and summary that shows metrics calls these.

The rule (docs/cli.md, "Metric numbers"):

* a whole number prints as an integer: ``1``, ``30``, ``1200``;
* a number below 0.001 (and not 0) prints with 2 significant digits: ``1.2e-05``;
* anything else prints with at least 2 and at most 4 decimals: ``0.80``, ``0.81``,
  ``0.6667``, ``12.3457``;
* a delta always carries its sign: ``+0.05``, ``-0.0952``, ``+0``;
* a missing value prints ``-``.

JSON output never goes through here: it keeps full precision.
"""

from __future__ import annotations

import math

__all__ = ["format_change", "format_delta", "format_value"]


def format_value(v: float | None) -> str:
    """A metric value as text."""
    if v is None:
        return "-"
    if not math.isfinite(v):
        return str(v)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    if abs(v) < 0.001:
        return f"{v:.1e}"
    text = f"{v:.4f}".rstrip("0")
    decimals = len(text.split(".")[1])
    return text if decimals >= 2 else f"{v:.2f}"


def format_delta(d: float | None) -> str:
    """A change of a metric, always signed."""
    if d is None:
        return "-"
    return ("-" if d < 0 else "+") + format_value(abs(d))


def format_change(before: float | None, after: float | None, delta: float | None) -> str:
    """``0.81 -> 0.86 (+0.05)``; without a delta (a side missing) ``- -> 0.40``."""
    text = f"{format_value(before)} -> {format_value(after)}"
    return text if delta is None else f"{text} ({format_delta(delta)})"
