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


def test_one_glob_translator_for_dsvignore_and_folder_patterns(tmp_path) -> None:
    """.dsvignore and dsv.toml folder patterns read globs with the same function."""
    from dsv.base import globs
    from dsv.semantic.declaration import Declaration, FolderSource
    from dsv.worktree import ignore

    assert ignore._translate is globs.translate
    repo = dsv.Repo.init(tmp_path / "d")
    root = tmp_path / "d"
    files = {"img/cat/a.png": "1", "img/cat/b.jpg": "2", "img/cat/c.gif": "3", "img/dog/x/d.png": "4", "img/dog/e.png": "5"}
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    # A character class selects png and jpg files; '**/' matches zero or more folders.
    decl = Declaration(folders=[FolderSource(pattern="img/{label}/**/*.[jp][pn]g")])
    src = repo.semantic_diff(declaration=decl).sources[0]
    assert {c.cls: c.after for c in src.classes} == {"cat": 2, "dog": 2}
    # The same glob, as a .dsvignore rule, selects the same files.
    rules = ignore.IgnoreRules(["img/*/**/*.[jp][pn]g"])
    assert sorted(p for p in files if rules.ignores_file(p)) == ["img/cat/a.png", "img/cat/b.jpg", "img/dog/e.png", "img/dog/x/d.png"]


def test_one_size_formatter() -> None:
    from dsv.cli import progress, render

    assert progress.human_size is render.human_size
    assert [render.human_size(n) for n in (0, 1023, 1024, 1536, 5 << 30)] == ["0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 GiB"]
