"""The settings every writing command reads, from ``config.json`` without pydantic.

``commit``, ``checkout`` and ``tag`` need the lock timeout and the author (and
``status`` whether a file-system monitor is on), and
importing pydantic to validate ``config.json`` cost them ~90 ms each. This
module checks the whole document with the verdicts of the schema of record,
:class:`dsv.config.RepoConfig` (strict types, no unknown key, at any depth; a
test holds the two to the same verdicts on valid and damaged configs), and
returns the values those commands use. Commands that change the config or read
remotes go through the model.
"""

from __future__ import annotations

import json
import math

from dsv.base.errors import CorruptMetadataError
from dsv.base.records import FrozenRecord, init_field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Settings(FrozenRecord):
    """The values of a valid ``config.json`` that writing commands use."""

    __slots__ = ("lock_timeout", "user_name", "user_email", "fsmonitor", "server")

    lock_timeout: float
    user_name: str | None
    user_email: str | None
    fsmonitor: bool
    server: bool

    def __init__(self, lock_timeout: float = 30.0, user_name: str | None = None, user_email: str | None = None,
                 fsmonitor: bool = False, server: bool = False) -> None:
        init_field(self, "lock_timeout", lock_timeout)
        init_field(self, "user_name", user_name)
        init_field(self, "user_email", user_email)
        init_field(self, "fsmonitor", fsmonitor)
        init_field(self, "server", server)


class _Bad(ValueError):
    def __init__(self, loc: str, message: str) -> None:
        super().__init__(f"{loc}: {message}")


def _section(doc: dict[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise _Bad(key, "Input should be an object")
    for k in value:
        if k not in allowed:
            raise _Bad(f"{key}.{k}", "Extra inputs are not permitted")
    return value


def _optional_str(section: dict[str, Any], key: str, loc: str) -> str | None:
    value = section.get(key)
    if value is not None and not isinstance(value, str):
        raise _Bad(loc, "Input should be a valid string")
    return value


def read_settings(data: bytes, *, what: str) -> Settings:
    """Check ``config.json`` as :class:`dsv.config.RepoConfig` does; return the settings (format already gated)."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as err:
        raise CorruptMetadataError(what, f"not valid JSON ({err})") from err
    if not isinstance(doc, dict):
        raise CorruptMetadataError(what, "expected a JSON object")
    try:
        for key in doc:
            if key not in ("format", "user", "core", "remotes", "promisor"):
                raise _Bad(key, "Extra inputs are not permitted")
        fmt = doc.get("format", 2)
        if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt not in (1, 2):
            raise _Bad("format", "Input should be 1 or 2")
        user = _section(doc, "user", ("name", "email"))
        name = _optional_str(user, "name", "user.name")
        email = _optional_str(user, "email", "user.email")
        core = _section(doc, "core", ("lock_timeout", "fsmonitor", "server"))
        timeout = core.get("lock_timeout", 30.0)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise _Bad("core.lock_timeout", "Input should be a valid number")
        if not math.isfinite(timeout):  # NaN would make every wait for a lock last for ever
            raise _Bad("core.lock_timeout", "Input should be a finite number")
        monitor = core.get("fsmonitor", False)
        if not isinstance(monitor, bool):
            raise _Bad("core.fsmonitor", "Input should be a valid boolean")
        server = core.get("server", False)
        if not isinstance(server, bool):
            raise _Bad("core.server", "Input should be a valid boolean")
        remotes = doc.get("remotes", {})
        if not isinstance(remotes, dict):
            raise _Bad("remotes", "Input should be a valid dictionary")
        for rname, remote in remotes.items():
            if not isinstance(remote, dict):
                raise _Bad(f"remotes.{rname}", "Input should be an object")
            for k in remote:
                if k not in ("url", "options"):
                    raise _Bad(f"remotes.{rname}.{k}", "Extra inputs are not permitted")
            if not isinstance(remote.get("url"), str):
                raise _Bad(f"remotes.{rname}.url", "Field required" if "url" not in remote else "Input should be a valid string")
            options = remote.get("options", {})
            if not isinstance(options, dict):
                raise _Bad(f"remotes.{rname}.options", "Input should be a valid dictionary")
            for k, v in options.items():
                if not isinstance(v, str):
                    raise _Bad(f"remotes.{rname}.options.{k}", "Input should be a valid string")
        _optional_str(doc, "promisor", "promisor")
    except _Bad as err:
        raise CorruptMetadataError(what, str(err)) from None
    return Settings(float(timeout), name, email, monitor, server)
