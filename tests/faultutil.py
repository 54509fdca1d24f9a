"""Shared helpers for the fault-injection and concurrency tests.

Everything here is hermetic: repositories live under ``tmp_path``, the dsv CLI
runs as a real subprocess (``python -m dsv``) with a scrubbed environment, and
random data comes from seeded generators.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

AUTHOR_ENV = {"DSV_AUTHOR_NAME": "Fault Tester", "DSV_AUTHOR_EMAIL": "faults@example.invalid"}

BIG = 9 * 1024 * 1024
"""A size above the store's loose-object threshold (8 MiB)."""


def dsv_env(**extra: str) -> dict[str, str]:
    """A minimal environment for a dsv subprocess (no debug, no user config leaking in)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")}
    env.update(AUTHOR_ENV)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["HOME"] = os.environ.get("HOME", "/nonexistent")
    env.update(extra)
    return env


def dsv_cmd(*args: str) -> list[str]:
    """The argv that runs the installed dsv CLI with this interpreter."""
    return [sys.executable, "-m", "dsv", *args]


def run_dsv(repo: os.PathLike[str] | str, *args: str, timeout: float = 120, text: bool = True, **kw: object) -> subprocess.CompletedProcess:
    """Run ``dsv ARGS`` in ``repo`` and wait for it (``text=False`` keeps stdout as bytes, stderr is always text)."""
    res = subprocess.run(
        dsv_cmd(*args), cwd=os.fspath(repo), env=dsv_env(), capture_output=True, text=text, timeout=timeout, **kw  # type: ignore[arg-type]
    )
    if not text:
        res.stderr = res.stderr.decode("utf-8", "replace")
    return res


def start_dsv(repo: os.PathLike[str] | str, *args: str, **kw: object) -> subprocess.Popen[str]:
    """Start ``dsv ARGS`` in ``repo`` without waiting (output captured)."""
    return subprocess.Popen(
        dsv_cmd(*args),
        cwd=os.fspath(repo),
        env=dsv_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,  # type: ignore[arg-type]
    )


def ok(res: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """Assert a dsv run exited 0, showing its output otherwise."""
    assert res.returncode == 0, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return res


def assert_one_line_error(stderr: str, returncode: int, *, contains: Iterable[str] = ()) -> str:
    """Assert a clean failure: non-zero exit, exactly one ``dsv: error:`` line, no traceback."""
    assert returncode != 0, "expected a failure"
    assert returncode < 70, f"internal-error exit code {returncode}: {stderr}"
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("dsv: warning:")]
    assert len(lines) == 1, f"expected one error line, got: {stderr!r}"
    line = lines[0]
    assert line.startswith("dsv: error: "), line
    for text in contains:
        assert text in line, f"{text!r} not in {line!r}"
    return line


def write_files(root: os.PathLike[str] | str, files: Mapping[str, bytes]) -> None:
    """Write ``{relative path: bytes}`` below ``root``."""
    for rel, data in files.items():
        p = Path(root, *rel.split("/"))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def read_tree(root: os.PathLike[str] | str) -> dict[str, bytes]:
    """Every regular file below ``root`` except ``.dsv``, as ``{relative path: bytes}``.

    Symlinks map to ``b"->" + target`` so they are compared but never followed.
    """
    root = os.fspath(root)
    out: dict[str, bytes] = {}
    for dirpath, dirs, files in os.walk(root):
        if dirpath == root and ".dsv" in dirs:
            dirs.remove(".dsv")
        for d in list(dirs):
            if os.path.islink(os.path.join(dirpath, d)):
                dirs.remove(d)
                files.append(d)
        for f in files:
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if os.path.islink(full):
                out[rel] = b"->" + os.fsencode(os.readlink(full))
            else:
                with open(full, "rb") as fh:
                    out[rel] = fh.read()
    return out


def tree_listing(root: os.PathLike[str] | str) -> dict[str, tuple[int, int, int]]:
    """``{relative path: (mode, size, mtime_ns)}`` of everything below ``root`` (symlinks not followed)."""
    root = os.fspath(root)
    out: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            out[os.path.relpath(full, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def log_ids(repo: os.PathLike[str] | str, rev: str = "HEAD") -> list[str]:
    """Commit ids of ``dsv log --json`` (newest first)."""
    res = ok(run_dsv(repo, "log", "--json", rev))
    return [e["id"] for e in json.loads(res.stdout)]


def log_entries(repo: os.PathLike[str] | str, rev: str = "HEAD") -> list[dict[str, object]]:
    """``dsv log --json`` entries (newest first)."""
    return json.loads(ok(run_dsv(repo, "log", "--json", rev)).stdout)


def assert_fsck_clean(repo: os.PathLike[str] | str) -> None:
    """``dsv fsck`` exits 0 and reports no problem."""
    res = run_dsv(repo, "fsck", "--json")
    assert res.returncode == 0, f"fsck failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    assert json.loads(res.stdout)["ok"] is True


def visible_objects(repo: os.PathLike[str] | str) -> set[str]:
    """Ids of every object a reader can see (packs with an index, loose files)."""
    from dsv.store.local import LocalObjectStore

    store = LocalObjectStore(os.path.join(os.fspath(repo), ".dsv", "objects"))
    try:
        return {c.oid for c in store.copies()}
    finally:
        store.close()


def object_files(repo: os.PathLike[str] | str) -> set[str]:
    """Every file name under ``.dsv/objects`` (including temp and orphan files)."""
    base = os.path.join(os.fspath(repo), ".dsv", "objects")
    return {os.path.relpath(os.path.join(d, f), base) for d, _, fs in os.walk(base) for f in fs}


def random_dataset(rng: random.Random, n_small: int, n_big: int = 0, *, folders: int = 30) -> dict[str, bytes]:
    """A dataset of ``n_small`` small files spread over folders plus ``n_big`` files of :data:`BIG` bytes."""
    files = {f"data/d{i % folders:02d}/f{i:05d}.bin": rng.randbytes(rng.randint(1, 400)) for i in range(n_small)}
    for i in range(n_big):
        files[f"big/blob{i}.bin"] = rng.randbytes(BIG + rng.randint(0, 4096))
    return files


def dead_pid() -> int:
    """A pid that belonged to a process that has exited and been reaped."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    try:
        os.kill(p.pid, 0)
    except ProcessLookupError:
        return p.pid
    raise RuntimeError("pid was reused immediately")  # pragma: no cover - vanishingly rare


def damage_chunk(repo: os.PathLike[str] | str, file_oid: str, *, remove: bool = False) -> str:
    """Flip a byte of one chunk of a chunked (big) file's object, or remove that chunk; return the chunk id.

    Removing rewrites the chunk's pack without it (as a lost object would look).
    """
    from dsv.store.local import LocalObjectStore
    from dsv.store.upkeep import repack

    store = LocalObjectStore(os.path.join(os.fspath(repo), ".dsv", "objects"))
    chunks = store.chunk_list(file_oid)
    assert chunks, f"{file_oid} is not chunked"
    chunk = chunks[len(chunks) // 2][0]
    raw = bytes.fromhex(chunk)
    for pack in store.packs():
        if raw in pack.index.ids:
            if remove:
                keep = set(pack.index.ids) - {raw}
                repack(store, [pack], keep)
            else:
                i = pack.index.ids.index(raw)
                path = Path(pack.pack_path)
                mode = path.stat().st_mode
                path.chmod(0o644)
                with open(path, "r+b") as f:
                    f.seek(pack.index.offsets[i] + pack.index.lengths[i] // 2)
                    b = f.read(1)
                    f.seek(pack.index.offsets[i] + pack.index.lengths[i] // 2)
                    f.write(bytes([b[0] ^ 0x5A]))
                path.chmod(mode)
            store.close()
            return chunk
    raise AssertionError(f"chunk {chunk} not found")
