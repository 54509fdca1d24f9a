"""``.dsv/config.json``: the repository's settings (pydantic model).

Kept apart from :mod:`dsv.repository` so that opening a repository for a
read-only command needs only the cheap format-version gate, not pydantic.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from dsv.base.formats import REPOSITORY_FORMAT
from dsv.base.ondisk import OnDiskModel


class UserConfig(BaseModel):
    """Who commits: used for commit and tag authorship."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    email: str | None = None


class CoreConfig(BaseModel):
    """Behaviour settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lock_timeout: float = 30.0
    """Seconds a writing command waits for another one to finish."""


class RepoConfig(OnDiskModel):
    """``.dsv/config.json``: the repository format (the gate, docs/format.md §9) and settings."""

    max_format: ClassVar[int] = REPOSITORY_FORMAT
    format: Literal[1, 2] = REPOSITORY_FORMAT  # type: ignore[assignment]
    user: UserConfig = UserConfig()
    core: CoreConfig = CoreConfig()


SETTINGS = ("user.name", "user.email", "core.lock_timeout")
"""Keys ``dsv config`` accepts."""
