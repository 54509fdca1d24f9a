"""What changed inside a nested cell value (a struct, list or map): the ``detail`` of a changed cell.

deepdiff computes the differences; dsv decides how they are written, so the
public JSON (docs/diff-format.md, ``rows.cells[].detail``) does not change with
a deepdiff upgrade. The shape is a list of changes, ordered by path::

    [{"path": ["box", "w"], "change": "changed", "old": 1.5, "new": 2.5},
     {"path": ["tags", 1], "change": "added", "old": null, "new": "b"}]

``path`` holds object keys (strings) and list indices (integers) from the
cell's top; ``change`` is ``added``, ``removed`` or ``changed`` (a value or its
type); ``old`` / ``new`` are ``null`` on the side where the item is absent.
"""

from __future__ import annotations

import json
from typing import Any

_ADDED = ("dictionary_item_added", "iterable_item_added", "attribute_added", "set_item_added")
_REMOVED = ("dictionary_item_removed", "iterable_item_removed", "attribute_removed", "set_item_removed")
_CHANGED = ("values_changed", "type_changes")


def nested_detail(old: Any, new: Any) -> list[dict[str, Any]] | None:
    """The changes inside two nested values (objects or lists), or ``None`` for scalars."""
    if not isinstance(old, (dict, list)) or not isinstance(new, (dict, list)):
        return None
    from deepdiff import DeepDiff

    tree = DeepDiff(old, new, view="tree")
    out: list[dict[str, Any]] = []
    for report, levels in tree.items():
        if report in _ADDED:
            change = "added"
        elif report in _REMOVED:
            change = "removed"
        elif report in _CHANGED:
            change = "changed"
        else:  # pragma: no cover - kinds JSON values cannot produce (repetition, ...)
            change = "changed"
        for level in levels:
            out.append(
                {
                    "path": [_plain(p) for p in level.path(output_format="list")],
                    "change": change,
                    "old": None if change == "added" else _plain(level.t1),
                    "new": None if change == "removed" else _plain(level.t2),
                }
            )
    out.sort(key=lambda c: (json.dumps(c["path"]), c["change"]))
    return out


def _plain(value: Any) -> Any:
    """A value made of JSON types only (deepdiff may hand back its own wrappers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
