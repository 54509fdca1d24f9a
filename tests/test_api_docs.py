"""docs/api.md is generated from the docstrings, and every example in it runs (issue 11)."""

from __future__ import annotations

import doctest
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import gen_api_docs  # noqa: E402


def test_the_reference_is_up_to_date() -> None:
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_api_docs.py"), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def _documented() -> list[tuple[str, object]]:
    out = []
    for _, names in gen_api_docs.SECTIONS:
        for dotted in names:
            obj = gen_api_docs.resolve(dotted)
            out.append((dotted, obj))
            if inspect.isclass(obj):
                for name, member in inspect.getmembers(obj):
                    public = not name.startswith("_") and getattr(member, "__name__", name) == name
                    if public and (inspect.isfunction(member) or inspect.ismethod(member)) and getattr(member, "__module__", "").startswith("dsv"):
                        out.append((f"{dotted}.{name}", member))
    return out


@pytest.mark.parametrize("dotted,obj", _documented(), ids=[d for d, _ in _documented()])
def test_every_public_name_has_a_docstring_and_its_examples_run(dotted: str, obj: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert inspect.getdoc(obj), f"{dotted} has no docstring"
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(getattr(obj, "__module__", "dsv"))
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(obj, dotted, module=module, globs=dict(vars(module))):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} example(s) of {dotted} failed"
