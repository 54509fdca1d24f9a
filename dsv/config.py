"""``.dsv/config.json``: the repository's settings (pydantic model).

Kept apart from :mod:`dsv.repository` so that opening a repository for a
read-only command needs only the cheap format-version gate, not pydantic.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

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

    lock_timeout: float = Field(default=30.0, allow_inf_nan=False)
    """Seconds a writing command waits for another one to finish."""
    fsmonitor: bool = False
    """Ask a file-system monitor daemon what changed instead of walking the tree (docs/fsmonitor.md)."""
    server: bool = False
    """Run commands in a command server that has dsv loaded already (docs/server.md)."""

    @model_serializer(mode="wrap")
    def _omit_default_daemons(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        for key in ("fsmonitor", "server"):
            if not data.get(key):
                data.pop(key, None)  # an older dsv keeps reading (and writing) this config
        return data


class RemoteConfig(BaseModel):
    """One remote: an fsspec URL and the options passed to its filesystem (docs/remotes.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    url: str
    options: dict[str, str] = {}
    """``--option key=value`` pairs (``endpoint_url``, ``key``, ``secret``, ``anon``...); secrets are never printed."""


class RepoConfig(OnDiskModel):
    """``.dsv/config.json``: the repository format (the gate, docs/format.md §9) and settings.

    ``remotes`` and ``promisor`` are written only when set, so a repository
    without remotes keeps the exact bytes dsv 0.2 wrote and stays writable by
    it (docs/format.md §9: an older dsv refuses, never misreads, a file that
    has them).
    """

    max_format: ClassVar[int] = REPOSITORY_FORMAT
    format: Literal[1, 2] = REPOSITORY_FORMAT  # type: ignore[assignment]
    user: UserConfig = UserConfig()
    core: CoreConfig = CoreConfig()
    remotes: dict[str, RemoteConfig] = {}
    """Named remotes (``dsv remote add``)."""
    promisor: str | None = None
    """The remote a partial clone fetches missing objects from."""

    @model_serializer(mode="wrap")
    def _omit_unset_remote_fields(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if not data.get("remotes"):
            data.pop("remotes", None)
        if data.get("promisor") is None:
            data.pop("promisor", None)
        return data

    def has_secrets(self) -> bool:
        """Whether any remote option holds a credential (the file is then written with mode 0600)."""
        from dsv.base.secrets import is_secret_key

        return any(is_secret_key(k) for r in self.remotes.values() for k in r.options) or any(
            "@" in r.url.split("://", 1)[-1].split("/", 1)[0] for r in self.remotes.values()
        )


SETTINGS = ("user.name", "user.email", "core.lock_timeout", "core.fsmonitor", "core.server")
"""Keys ``dsv config`` accepts."""
