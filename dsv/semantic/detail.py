"""What changed inside a nested cell value (a struct, list or map): the ``detail`` of a changed cell."""

from __future__ import annotations

from typing import Any


def nested_detail(old: Any, new: Any) -> dict[str, Any] | None:
    """For nested values (structs, lists, maps), what changed inside them (deepdiff)."""
    if not isinstance(old, (dict, list)) or not isinstance(new, (dict, list)):
        return None
    from deepdiff import DeepDiff

    return json_safe(DeepDiff(old, new, verbose_level=2).to_dict())


def json_safe(value: Any) -> Any:
    """A deepdiff result made of JSON types only."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
