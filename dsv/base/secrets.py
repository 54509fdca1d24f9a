"""Keeping credentials out of every output: masked options, URLs and messages.

Remote options (``--option key=value``) and URLs may carry credentials. Their
values are registered here when a remote is opened or configured, and
:func:`redact` replaces every registered value (and any ``user:password@`` part
of a URL) with ``***`` in text the CLI prints: messages, ``remote list -v``,
``--debug`` tracebacks.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "***"
SECRET_KEY = re.compile(r"(secret|passw|token|credential|private|(^|[._-])key$|^key$|sas|signature|auth)", re.IGNORECASE)
"""Option names whose values are secrets (``secret``, ``aws_secret_access_key``, ``token``, ``key`` ...)."""
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
_registered: set[str] = set()
_lock = threading.Lock()


def is_secret_key(name: str) -> bool:
    """Whether an option called ``name`` holds a secret."""
    return bool(SECRET_KEY.search(name.rsplit(".", 1)[-1]))


def register(value: str) -> None:
    """Remember ``value`` as a secret to mask in every output (values shorter than 4 characters are not worth masking)."""
    if isinstance(value, str) and len(value) >= 4:
        with _lock:
            _registered.add(value)


def option_value(key: str, value: Any) -> Any:
    """A ``--option`` value as the filesystem wants it: ``{...}``/``[...]`` as JSON, ``true``/``false`` as booleans.

    Options arrive as text (the command line, config.json); fsspec wants
    ``client_kwargs`` as a dict and ``anon`` as a bool (the string ``"false"``
    is true). A secret's value is never reinterpreted. Raises ``ValueError``
    for text that starts like JSON but does not parse.
    """
    if not isinstance(value, str) or is_secret_key(key):
        return value
    text = value.strip()
    if text[:1] in ("{", "["):
        return json.loads(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return value


def _parsed(key: str, value: Any) -> Any:
    try:
        return option_value(key, value)
    except ValueError:
        return value


def register_options(options: Mapping[str, Any]) -> None:
    """Register the secret values among remote options (nested dicts and JSON text too)."""
    for key, value in options.items():
        value = _parsed(str(key), value)
        if isinstance(value, Mapping):
            register_options(value)
        elif is_secret_key(str(key)) and value is not None:
            register(str(value))


def mask_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``options`` with every secret value replaced by ``***`` (inside JSON text too)."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        parsed = _parsed(str(key), value)
        if isinstance(value, Mapping):
            out[key] = mask_options(value)
        elif isinstance(parsed, Mapping):
            out[key] = json.dumps(mask_options(parsed), separators=(",", ":"))
        elif is_secret_key(str(key)):
            out[key] = MASK
        else:
            out[key] = value
    return out


def mask_url(url: str) -> str:
    """``s3://user:secret@bucket`` -> ``s3://***@bucket``."""
    return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", url)


def redact(text: str) -> str:
    """``text`` with every registered secret and URL credential masked."""
    with _lock:
        secrets = sorted(_registered, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, MASK)
    return mask_url(text)
