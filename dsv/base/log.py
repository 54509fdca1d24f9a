"""Loggers for dsv's modules, created on first use.

A library is quiet: the ``dsv`` logger gets a ``NullHandler``, so nothing reaches
stderr unless the application configures logging. ``logging`` itself is imported
only when something is logged, which keeps ``dsv status`` from paying for it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging


def logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)``, with the package's ``NullHandler`` in place."""
    import logging

    package = logging.getLogger("dsv")
    if not any(isinstance(h, logging.NullHandler) for h in package.handlers):
        package.addHandler(logging.NullHandler())
    return logging.getLogger(name)
