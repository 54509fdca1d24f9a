"""Store layer: bytes in, object id out.

Backends implement :class:`dsv.store.base.ObjectStore`; the store knows nothing of
what the bytes mean (file contents, manifest chunks, commits all look alike here).
The names below load on first use (PEP 562): a command imports the backend it
opens, not every backend.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dsv.store.base import ObjectStore, ObjectWriter
    from dsv.store.local import LocalObjectStore
    from dsv.store.memory import MemoryObjectStore

__all__ = ["LocalObjectStore", "MemoryObjectStore", "ObjectStore", "ObjectWriter"]

_HOMES = {"ObjectStore": "base", "ObjectWriter": "base", "LocalObjectStore": "local", "MemoryObjectStore": "memory"}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dsv.store' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"dsv.store.{home}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
