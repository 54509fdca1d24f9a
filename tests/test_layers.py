"""Architecture rules that hold by themselves: import layers, public names, lazy heavy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


from conftest import run_dsv, write_tree

ROOT = Path(__file__).resolve().parent.parent


def test_import_layers() -> None:
    exe = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(exe), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broken" not in proc.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_public_names_exist() -> None:
    import dsv.api
    import dsv.store

    for module in (dsv, dsv.store, dsv.api):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_status_on_a_clean_tree_imports_neither_pyarrow_nor_pydantic(tmp_path: Path) -> None:
    d = tmp_path / "d"
    write_tree(d, {"a/b.txt": "x", "c.txt": "y"})
    run_dsv("init", cwd=d, check=True)
    run_dsv("commit", "-m", "v1", cwd=d, check=True)
    code = (
        "import sys\n"
        "from dsv.cli import main\n"
        "try:\n    main(['status'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('pyarrow', 'pydantic') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=d, capture_output=True, text=True)
    assert "nothing to commit" in proc.stdout
    assert "HEAVY []" in proc.stdout, proc.stdout


def test_help_is_instant_no_heavy_imports() -> None:
    code = "import sys\nfrom dsv.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\nprint('HEAVY', [m for m in ('pyarrow', 'pydantic') if m in sys.modules])\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in proc.stdout
