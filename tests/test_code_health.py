"""Code-health rules that hold by themselves: one exception tree, one glob translator, one size formatter."""

from __future__ import annotations

import importlib
import pkgutil

import dsv
from dsv.base import errors


def _all_modules() -> list[object]:
    out = []
    for info in pkgutil.walk_packages(dsv.__path__, "dsv."):
        if info.name.startswith("dsv.cli") or info.name == "dsv.__main__":
            continue  # click; the CLI defines no errors of its own
        out.append(importlib.import_module(info.name))
    return out


def test_every_dsv_error_lives_in_the_one_tree() -> None:
    """Each DsvError subclass is defined in dsv/base/errors.py and drawn in its docstring tree."""
    seen: dict[str, type] = {}
    for module in _all_modules():
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, errors.DsvError):
                seen[value.__qualname__] = value
    assert "SampleSourceError" in seen and "MetricsFormatError" in seen
    for name, cls in seen.items():
        assert cls.__module__ == "dsv.base.errors", f"{name} is defined in {cls.__module__}"
        assert f" {name} " in errors.__doc__ or f" {name}\n" in errors.__doc__, f"{name} is missing from the tree in errors.py"
