#!/usr/bin/env python3
"""Metadata written by a small commit in a large dataset (target: < 1 MB for 10 files in 1,000,000).

Generates ``--files`` small files in ``train/<class>/<id>.txt`` (real files on
disk), commits them with the installed dsv, changes ``--changed`` files, commits
again, and reports how many bytes of *metadata* the second commit added to the
object store: the new pack(s) minus the new file contents and their per-object
headers. Also prints the time of each commit and of ``dsv status``.

Usage: python scripts/bench_metadata.py [--files 1000000] [--changed 10] [--workdir /tmp/dsv-meta]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

OBJECT_HEADER = 24  # 16-byte id + u64 length before each object in a pack (docs/format.md)


def dsv(args: list[str], cwd: Path) -> tuple[float, str]:
    """Run dsv, return (seconds, stdout); exit on failure."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dsv", "-q", *args], cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"dsv {' '.join(args)} failed: {proc.stderr}")
    return dt, proc.stdout


def pack_bytes(root: Path) -> dict[str, int]:
    """Sizes of the pack and index files in the store."""
    packs = root / ".dsv" / "objects" / "packs"
    return {p.name: p.stat().st_size for p in packs.iterdir()}


def loose_bytes(root: Path) -> int:
    """Total size of loose objects."""
    total = 0
    for dirpath, _, files in os.walk(root / ".dsv" / "objects" / "loose"):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total


def main() -> None:
    """Run the measurement and print a Markdown table."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchenv import compile_dsv

    compile_dsv()  # see scripts/benchenv.py
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--changed", type=int, default=10)
    ap.add_argument("--workdir", default="/tmp/dsv-meta")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    os.environ.setdefault("DSV_AUTHOR_NAME", "bench")
    os.environ.setdefault("DSV_AUTHOR_EMAIL", "bench@example.com")
    root = Path(args.workdir)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    t = time.perf_counter()
    per_class = max(1, args.files // 100)
    for i in range(args.files):
        d = root / "train" / f"c{i // per_class:03d}"
        if i % per_class == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:08d}.txt").write_bytes(b"sample %d\n" % i)
    gen = time.perf_counter() - t
    print(f"generated {args.files} files in {gen:.1f} s", file=sys.stderr)
    dsv(["init"], root)
    t1, _ = dsv(["commit", "-m", "all"], root)
    ts, _ = dsv(["status"], root)
    before = pack_bytes(root)
    loose_before = loose_bytes(root)
    step = max(1, args.files // args.changed)
    changed = []
    for k in range(args.changed):
        i = k * step
        p = root / "train" / f"c{i // per_class:03d}" / f"{i:08d}.txt"
        content = b"changed sample %d\n" % i
        p.write_bytes(content)
        changed.append(len(content))
    t2, out = dsv(["commit", "-m", "change a few", "--json"], root)
    after = pack_bytes(root)
    new_files = {k: v for k, v in after.items() if k not in before}
    new_total = sum(new_files.values()) + loose_bytes(root) - loose_before
    content = sum(changed) + OBJECT_HEADER * len(changed)
    metadata = new_total - content
    summary = json.loads(out)
    rows = {
        "files": args.files,
        "changed": args.changed,
        "first_commit_s": round(t1, 2),
        "status_s": round(ts, 2),
        "second_commit_s": round(t2, 2),
        "new_store_bytes": new_total,
        "new_content_bytes": content,
        "new_metadata_bytes": metadata,
        "modified_reported": summary["changes"]["modified"],
        "target_bytes": 1_000_000,
        "pass": metadata < 1_000_000 and summary["changes"]["modified"] == args.changed,
    }
    print(f"command: {' '.join(sys.argv)}")
    print("| measure | value |\n|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {v} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2))
    if not rows["pass"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
