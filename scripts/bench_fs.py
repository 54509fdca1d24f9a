#!/usr/bin/env python3
"""Issue-11 benchmark: reading versions through ``dsv://``, beside plain local reads and DVC's filesystem.

One run, three cases, each tool on the same data (medians of ``--runs`` runs,
page cache warm, every read in a fresh filesystem object):

a. a Parquet column (``label``) of a ~1 GiB file: ``pq.read_table(columns=...)``
   from the local file, through ``DsvFileSystem``, through ``DVCFileSystem``.
   Target: dsv <= 1.2x local.
b. 10,000 small files (4 KiB): read each from a checkout (``open().read()``),
   through ``dsv://`` (``fsspec.open`` as a data loader would), through DVC.
   Target: dsv <= 2x checkout.
c. listing a 100,000-file folder: ``os.scandir`` names, ``fs.ls(detail=False)``
   through dsv, ``DVCFileSystem.ls``. Target: dsv <= 2x scandir.

DVC runs in its own interpreter (``--dvc-python``, the venv of
``scripts/setup_bench.sh``), with pyarrow installed there when needed.

Usage: python scripts/bench_fs.py [--workdir /tmp/dsv-fs] [--gib 1] [--runs 3] [--skip-dvc]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dsv  # noqa: E402
from dsv.api.fs import DsvFileSystem, clear_cache  # noqa: E402

SMALL = 10_000
WIDE = 100_000


def build(work: Path, gib: float) -> Path:
    """The repository: data/big.parquet (~gib GiB), small/ (10k x 4 KiB), wide/ (100k tiny files)."""
    repo = work / "repo"
    marker = work / f"built-{gib}"
    if marker.exists():
        return repo
    shutil.rmtree(work, ignore_errors=True)
    (repo / "data").mkdir(parents=True)
    rng = random.Random(11)
    rows = int(gib * 1024**3 / 140)
    with pq.ParquetWriter(repo / "data" / "big.parquet", pa.schema([("id", pa.int64()), ("label", pa.string()), ("score", pa.float64()), ("text", pa.string())])) as w:
        step = 1_000_000
        for start in range(0, rows, step):
            n = min(step, rows - start)
            w.write_table(
                pa.table(
                    {
                        "id": pa.array(range(start, start + n), pa.int64()),
                        "label": pa.array([("cat", "dog", "bird", "fish")[i % 4] for i in range(n)]),
                        "score": pa.array([rng.random() for _ in range(n)]),
                        "text": pa.array([os.urandom(48).hex() for _ in range(n)]),
                    }
                ),
                row_group_size=250_000,
            )
    for i in range(SMALL):
        d = repo / "small" / f"c{i % 20:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:05d}.bin").write_bytes(os.urandom(4096))
    wide = repo / "wide"
    wide.mkdir()
    for i in range(WIDE):
        (wide / f"{i:06d}.txt").write_bytes(b"%d\n" % i)
    r = dsv.Repo.init(repo)
    r.commit("bench data")
    marker.write_text("ok")
    return repo


def timed(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def run_dsv(repo: Path, runs: int) -> dict[str, float]:
    small = sorted(str(p.relative_to(repo)) for p in (repo / "small").rglob("*.bin"))
    res: dict[str, float] = {}
    res["parquet/local"] = timed(lambda: pq.read_table(repo / "data" / "big.parquet", columns=["label"]), runs)
    # dsv:// keeps verified bytes, decoded manifest chunks and the opened repository per process
    # (dsv.api.fs.clear_cache): every timed run starts without them, as a new process would.
    def read_parquet_dsv() -> None:
        clear_cache()
        pq.read_table("data/big.parquet", columns=["label"], filesystem=DsvFileSystem(repo=str(repo), skip_instance_cache=True))

    res["parquet/dsv"] = timed(read_parquet_dsv, runs)

    def read_checkout() -> None:
        for p in small:
            with open(repo / p, "rb") as f:
                f.read()

    def read_dsv() -> None:
        clear_cache()
        fs = DsvFileSystem(repo=str(repo), skip_instance_cache=True)
        for p in small:
            with fs.open(p, "rb") as f:
                f.read()

    res["small/checkout"] = timed(read_checkout, runs)
    res["small/dsv"] = timed(read_dsv, runs)
    res["list/scandir"] = timed(lambda: [e.name for e in os.scandir(repo / "wide")], runs)
    def list_dsv() -> None:
        clear_cache()
        DsvFileSystem(repo=str(repo), skip_instance_cache=True).ls("wide", detail=False)

    res["list/dsv"] = timed(list_dsv, runs)
    return res


DVC_WORKER = textwrap.dedent(
    """
    import json, statistics, sys, time
    import pyarrow.parquet as pq
    from dvc.api import DVCFileSystem
    repo, runs = sys.argv[1], int(sys.argv[2])
    def timed(fn):
        out = []
        for _ in range(runs):
            t = time.perf_counter(); fn(); out.append(time.perf_counter() - t)
        return statistics.median(out)
    fs = DVCFileSystem(repo)
    small = sorted(p for p in fs.find("small"))
    res = {}
    res["parquet/dvc"] = timed(lambda: pq.read_table("data/big.parquet", columns=["label"], filesystem=DVCFileSystem(repo)))
    def read_small():
        f = DVCFileSystem(repo)
        for p in small:
            with f.open(p, "rb") as h:
                h.read()
    res["small/dvc"] = timed(read_small)
    res["list/dvc"] = timed(lambda: DVCFileSystem(repo).ls("wide", detail=False))
    print(json.dumps(res))
    """
)


def run_dvc(work: Path, repo: Path, runs: int, python: str) -> dict[str, float]:
    dvc_repo = work / "dvc-repo"
    if not (dvc_repo / ".dvc").exists():
        shutil.rmtree(dvc_repo, ignore_errors=True)
        subprocess.run(["cp", "-a", str(repo), str(dvc_repo)], check=True)
        shutil.rmtree(dvc_repo / ".dsv")
        env = dict(os.environ, DVC_NO_ANALYTICS="1")
        dvc = str(Path(python).parent / "dvc")
        for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "add", "-q", "data", "small", "wide"]):
            subprocess.run(cmd, cwd=dvc_repo, check=True, env=env)
        subprocess.run(["git", "add", "-A"], cwd=dvc_repo, check=True)
        subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "data"], cwd=dvc_repo, check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "pyarrow"], check=True)
    out = subprocess.run([python, "-c", DVC_WORKER, str(dvc_repo), str(runs)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchenv import compile_dsv

    compile_dsv()  # see scripts/benchenv.py
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/dsv-fs")
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-dvc", action="store_true")
    ap.add_argument("--dvc-python", default="/work/bench-venv/bin/python")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    repo = build(work, args.gib)
    size = (repo / "data" / "big.parquet").stat().st_size
    res = run_dsv(repo, args.runs)
    if not args.skip_dvc:
        res.update(run_dvc(work, repo, args.runs, args.dvc_python))
    load = os.getloadavg()[0]
    rows = [
        ("a. Parquet column of a %.2f GiB file" % (size / 1024**3), "parquet/local", "parquet/dsv", "parquet/dvc", 1.2, "local"),
        ("b. 10,000 small files (4 KiB)", "small/checkout", "small/dsv", "small/dvc", 2.0, "checkout"),
        ("c. list a 100,000-file folder", "list/scandir", "list/dsv", "list/dvc", 2.0, "scandir"),
    ]
    print(f"load average {load:.2f} (2 CPUs)\n")
    print("| case | plain s | dsv s | dvc s | dsv/plain | target | dvc/dsv | pass |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | --- |")
    for title, base, mine, peer, target, base_name in rows:
        ratio = res[mine] / res[base]
        dvc = res.get(peer)
        print(
            f"| {title} | {res[base]:.3f} | {res[mine]:.3f} | {'-' if dvc is None else f'{dvc:.3f}'} | {ratio:.2f}x | "
            f"dsv <= {target}x {base_name} | {'-' if dvc is None else f'{dvc / res[mine]:.1f}x'} | {'PASS' if ratio <= target else 'FAIL'} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"load": load, **res}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
