"""Shared set-up of the benchmarks: time dsv, not Python's compiler.

An editable install (the README's ``pip install -e .``) compiles dsv's modules
on first import and caches the bytecode, unless ``PYTHONDONTWRITEBYTECODE`` is
set, as it is on this project's build machines: then every ``dsv`` command
recompiles ~70 modules (0.15-0.2 s, more than a no-op ``status`` at 20,000
files takes). A user's installed dsv has its bytecode; so does the benchmark.
"""

from __future__ import annotations

import compileall
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def compile_dsv() -> None:
    """Write dsv's bytecode (``py_compile`` writes it whatever ``PYTHONDONTWRITEBYTECODE`` says)."""
    compileall.compile_dir(str(ROOT / "dsv"), quiet=1)
