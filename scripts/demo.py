#!/usr/bin/env python3
"""A short end-to-end demo of dsv on a small generated dataset.

Builds an image-folder dataset (one folder per class) with an annotation table,
then walks through what a data-centric ML team does: commit, fix labels, move a
mislabeled image to its right class, drop a duplicate, add edge cases, inspect
status and diff, tag the version an experiment used, go back to it, and verify
the repository. Every step runs the real ``dsv`` command line.

Usage: .venv/bin/python scripts/demo.py [--dir FOLDER] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dsv.cli.render import plural

CLASSES = ["cat", "dog", "bird"]


def make_dataset(root: Path, rng: random.Random) -> None:
    """Write 30 fake images per class and a labels.csv describing them."""
    rows = ["id,image_path,label,split"]
    for label in CLASSES:
        for i in range(30):
            path = root / "images" / label / f"{label}_{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"\x89PNG\r\n\x1a\n" + rng.randbytes(2048))
            rows.append(f"{label}_{i:03d},images/{label}/{path.name},{label},{'val' if i % 5 == 0 else 'train'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    (root / ".dsvignore").write_text("*.tmp\n__pycache__/\n")
    # How to read samples: the class from the folder, and the annotation table.
    (root / "dsv.toml").write_text(
        '[[folders]]\npattern = "images/{label}/*"\n\n'
        '[[tables]]\npath = "labels.csv"\nkey = "id"\nlabel = "label"\nslices = ["split"]\nfile = "image_path"\n'
    )


def dsv(*args: str, cwd: Path, limit: int = 40) -> str:
    """Run one dsv command, echo it (quoted so it can be pasted into a shell) and its output; stop the demo if it fails."""
    command = shlex.join(["dsv", *args])
    print(f"\n$ {command}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "dsv", *args], cwd=cwd, capture_output=True, text=True)
    out = proc.stdout.rstrip()
    lines = out.splitlines()
    print("\n".join(lines[:limit] + ([f"... ({plural(len(lines) - limit, 'more line')})"] if len(lines) > limit else [])))
    if proc.stderr.strip():
        print(proc.stderr.rstrip(), file=sys.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"demo failed at: {command} (exit {proc.returncode})")
    return out


def main() -> None:
    """Run the demo."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="folder to build the demo dataset in (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the folder afterwards")
    args = parser.parse_args()
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="dsv-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    keep = args.keep or bool(args.dir)
    os.environ.setdefault("DSV_AUTHOR_NAME", "Demo User")
    os.environ.setdefault("DSV_AUTHOR_EMAIL", "demo@example.com")
    rng = random.Random(42)
    if keep:
        print(f"Demo dataset in {root} (kept afterwards)")
    else:
        print(f"Demo dataset in {root} (a temporary folder, deleted at the end; run with --keep, or --dir FOLDER, to keep it)")
    try:
        make_dataset(root, rng)
        dsv("init", cwd=root)
        dsv("commit", "-m", "Initial dataset: 3 classes x 30 images", cwd=root)
        dsv("tag", "v1", "-m", "baseline for exp-41", "--meta", "run_id=exp-41", cwd=root)

        # A round of data cleaning.
        (root / "images/dog/dog_007.png").rename(root / "images/cat/dog_007.png")  # mislabeled: it is a cat
        (root / "images/bird/bird_013.png").unlink()  # a duplicate
        for i in range(5):  # edge cases: birds at night
            (root / "images/bird" / f"night_{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.randbytes(2048))
        labels = (root / "labels.csv").read_text().replace("dog_007,images/dog/dog_007.png,dog", "dog_007,images/cat/dog_007.png,cat")
        (root / "labels.csv").write_text(labels)
        (root / "scratch.tmp").write_text("ignored by .dsvignore")

        dsv("status", cwd=root)
        dsv("diff", "--stat", cwd=root)
        dsv("commit", "-m", "Fix dog_007 label, drop duplicate bird, add night birds", cwd=root)
        dsv("tag", "v2", "-m", "cleaned data for exp-42", "--meta", "run_id=exp-42", cwd=root)
        dsv("log", "--oneline", cwd=root)
        dsv("diff", "v1", "v2", "--no-files", "--rows", cwd=root)
        dsv("changelog", "v1..v2", "--format", "md", cwd=root)
        dsv("show", "v2", cwd=root)
        dsv("ls", "v1", "images/bird", cwd=root, limit=5)
        dsv("cat", "v1:labels.csv", cwd=root, limit=5)
        dsv("checkout", "v1", cwd=root)
        dsv("status", cwd=root)
        dsv("checkout", "main", cwd=root)
        dsv("fsck", cwd=root)
        print("\nDemo finished: every step above ran the real dsv CLI.")
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
            print(f"\nDeleted {root}; run '{_python()} scripts/demo.py --keep' to keep the dataset and try dsv on it yourself.")
        else:
            print(f"\nThe dataset is in {root}: cd there and try {_dsv()} yourself (its dsv.toml declares the class folders and labels.csv).")


def _python() -> str:
    """This interpreter as the user would type it from here (``.venv/bin/python``)."""
    rel = os.path.relpath(sys.executable)
    return shlex.quote(rel if not rel.startswith("..") else sys.executable)


def _dsv() -> str:
    """The ``dsv`` command next to this interpreter (the venv's), as the user would type it."""
    exe = os.path.join(os.path.dirname(sys.executable), "dsv")
    return shlex.quote(exe) if os.path.exists(exe) else "dsv"


if __name__ == "__main__":
    main()
