"""Store layer: bytes in, object id out.

Backends implement :class:`dsv.store.base.ObjectStore`; the store knows nothing of
what the bytes mean (file contents, manifest chunks, commits all look alike here).
"""

from dsv.store.base import ObjectStore, ObjectWriter
from dsv.store.local import LocalObjectStore
from dsv.store.memory import MemoryObjectStore

__all__ = ["LocalObjectStore", "MemoryObjectStore", "ObjectStore", "ObjectWriter"]
