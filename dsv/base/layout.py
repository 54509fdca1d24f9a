"""Where things live inside ``.dsv/`` (see the tree in docs/format.md)."""

from __future__ import annotations

import os

from dsv.base.records import FrozenRecord, init_field

DSV_DIR = ".dsv"


class RepoLayout(FrozenRecord):
    """Paths of one repository, rooted at the working tree ``root``."""

    __slots__ = ("root",)

    root: str

    def __init__(self, root: str) -> None:
        init_field(self, "root", root)

    @property
    def dsv(self) -> str:
        """The ``.dsv`` directory."""
        return os.path.join(self.root, DSV_DIR)

    @property
    def config(self) -> str:
        """Repository config and format version."""
        return os.path.join(self.dsv, "config.json")

    @property
    def head(self) -> str:
        """``HEAD``: a symbolic ref to a branch, or a detached commit id."""
        return os.path.join(self.dsv, "HEAD")

    @property
    def refs(self) -> str:
        """Root of branch and tag refs."""
        return os.path.join(self.dsv, "refs")

    @property
    def objects(self) -> str:
        """The object store."""
        return os.path.join(self.dsv, "objects")

    @property
    def statcache(self) -> str:
        """The stat cache mirroring HEAD's manifest."""
        return os.path.join(self.dsv, "statcache")

    @property
    def locks(self) -> str:
        """Repository-wide locks."""
        return os.path.join(self.dsv, "locks")

    @property
    def write_lock(self) -> str:
        """Held by every command that writes objects or the working tree."""
        return os.path.join(self.locks, "write.lock")
