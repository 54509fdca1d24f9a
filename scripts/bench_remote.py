#!/usr/bin/env python3
"""Remote benchmark: dsv push/clone against `dvc push`/`dvc pull` and a plain s3fs upload, on one S3 server.

All three tools talk to the same moto S3 server on loopback (started here, as
in the tests), each in its own bucket, run side by side in one process tree:

* push of N small files (default 20,000 x 4 KiB) and of one big file (1 GiB);
* clone of the pushed small-file version (`dsv clone`) against `dvc pull`
  into a fresh checkout of the DVC project, and against `s3fs.get`;
* a no-op push and a no-op pull (requests counted at the server).

Seconds are wall time of the real CLIs (process start included); requests are
the HTTP requests the server logged during each step.

Usage::

    bash scripts/setup_bench.sh          # DVC (with dvc-s3) into /work/bench-venv
    .venv/bin/python scripts/bench_remote.py [--files 20000] [--file-kib 4] [--big-mib 1024] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from s3server import CREDENTIALS, S3Server  # noqa: E402

DVC = Path(os.environ.get("DSV_BENCH_VENV", "/work/bench-venv")) / "bin" / "dvc"
DSV = [sys.executable, "-m", "dsv"]


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed in {cwd}:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


class Bench:
    def __init__(self, work: Path, server: S3Server) -> None:
        self.work = work
        self.server = server
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(CREDENTIALS)
        self.env["DSV_AUTHOR_NAME"] = "bench"
        self.env["DSV_AUTHOR_EMAIL"] = "bench@example.com"
        self.rows: list[dict[str, object]] = []

    def measure(self, step: str, tool: str, cmd: list[str], cwd: Path) -> dict[str, object]:
        before = self.server.requests()
        seconds = run(cmd, cwd, self.env)
        requests = self.server.requests() - before
        row = {"step": step, "tool": tool, "seconds": round(seconds, 3), "requests": requests}
        self.rows.append(row)
        print(f"  {step:<28} {tool:<6} {seconds:8.2f} s {requests:8d} requests", flush=True)
        return row

    def measure_fn(self, step: str, tool: str, fn) -> dict[str, object]:  # type: ignore[no-untyped-def]
        before = self.server.requests()
        t = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t
        requests = self.server.requests() - before
        row = {"step": step, "tool": tool, "seconds": round(seconds, 3), "requests": requests}
        self.rows.append(row)
        print(f"  {step:<28} {tool:<6} {seconds:8.2f} s {requests:8d} requests", flush=True)
        return row

    # -- the three tools ------------------------------------------------------------------

    def dsv_push(self, data: Path, name: str) -> str:
        bucket = self.server.new_bucket()
        url = f"s3://{bucket}/{name}"
        run([*DSV, "init"], data, self.env)
        run([*DSV, "-q", "commit", "-m", name], data, self.env)
        run([*DSV, "remote", "add", "origin", url, "--option", f"endpoint_url={self.server.endpoint}"], data, self.env)
        self.measure(f"push {name}", "dsv", [*DSV, "-q", "push"], data)
        return url

    def dvc_push(self, data: Path, name: str) -> Path:
        bucket = self.server.new_bucket()
        project = data.parent
        run([str(DVC), "init", "--no-scm", "-f"], project, self.env)
        run([str(DVC), "config", "core.analytics", "false"], project, self.env)
        run([str(DVC), "add", data.name], project, self.env)
        run([str(DVC), "remote", "add", "-d", "-f", "s3", f"s3://{bucket}/{name}"], project, self.env)
        run([str(DVC), "remote", "modify", "s3", "endpointurl", self.server.endpoint], project, self.env)
        self.measure(f"push {name}", "dvc", [str(DVC), "push"], project)
        return project

    def s3fs_put(self, data: Path, name: str) -> str:
        import s3fs

        bucket = self.server.new_bucket()
        fs = s3fs.S3FileSystem(key=CREDENTIALS["AWS_ACCESS_KEY_ID"], secret=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], client_kwargs={"endpoint_url": self.server.endpoint, "region_name": "us-east-1"}, skip_instance_cache=True)
        target = f"{bucket}/{name}"
        if data.is_dir():
            self.measure_fn(f"push {name}", "s3fs", lambda: fs.put(str(data) + "/", target, recursive=True))
        else:
            self.measure_fn(f"push {name}", "s3fs", lambda: fs.put(str(data), target + "/" + data.name))
        return target


def make_small(root: Path, n: int, size: int) -> None:
    root.mkdir(parents=True)
    per_dir = 1000
    for i in range(n):
        d = root / f"d{i // per_dir:03d}"
        if i % per_dir == 0:
            d.mkdir()
        (d / f"f{i:06d}.bin").write_bytes(os.urandom(size))


def make_big(root: Path, mib: int) -> None:
    root.mkdir(parents=True)
    with open(root / "big.bin", "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchenv import compile_dsv

    compile_dsv()  # see scripts/benchenv.py
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--file-kib", type=int, default=4)
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    if not DVC.exists():
        raise SystemExit(f"{DVC} not found: run scripts/setup_bench.sh first")
    work = Path(tempfile.mkdtemp(prefix="dsv-bench-remote-"))
    server = S3Server(work)
    try:
        server.check_conditional_writes()
        b = Bench(work, server)
        print(f"# {args.files} files x {args.file_kib} KiB; one {args.big_mib} MiB file; moto S3 at {server.endpoint}", flush=True)
        small = work / "small-src"
        make_small(small, args.files, args.file_kib * 1024)
        for tool in ("dsv", "dvc", "s3fs"):
            shutil.copytree(small, work / tool / "small" / "data", symlinks=True)
        dsv_small = b.dsv_push(work / "dsv" / "small" / "data", "small")
        dvc_small = b.dvc_push(work / "dvc" / "small" / "data", "small")
        s3_small = b.s3fs_put(work / "s3fs" / "small" / "data", "small")
        # no-op push and pull
        b.measure("no-op push", "dsv", [*DSV, "-q", "push"], work / "dsv" / "small" / "data")
        b.measure("no-op push", "dvc", [str(DVC), "push"], dvc_small)
        b.measure("no-op pull", "dsv", [*DSV, "-q", "pull"], work / "dsv" / "small" / "data")
        b.measure("no-op pull", "dvc", [str(DVC), "pull"], dvc_small)
        # clone of the pushed version
        b.measure("clone small", "dsv", [*DSV, "-q", "clone", dsv_small, str(work / "dsv-clone"), "--option", f"endpoint_url={server.endpoint}"], work)
        fresh = work / "dvc-clone"
        fresh.mkdir()
        shutil.copytree(dvc_small / ".dvc", fresh / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))
        shutil.copy(dvc_small / "data.dvc", fresh / "data.dvc")
        b.measure("clone small", "dvc", [str(DVC), "pull"], fresh)

        def s3fs_get() -> None:
            import s3fs

            fs = s3fs.S3FileSystem(key=CREDENTIALS["AWS_ACCESS_KEY_ID"], secret=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], client_kwargs={"endpoint_url": server.endpoint, "region_name": "us-east-1"}, skip_instance_cache=True)
            fs.get(s3_small + "/", str(work / "s3fs-clone") + "/", recursive=True)

        b.measure_fn("clone small", "s3fs", s3fs_get)
        for tool in ("dsv", "dvc", "s3fs"):
            shutil.rmtree(work / tool / "small")
        shutil.rmtree(small)
        # one big file
        big = work / "big-src"
        make_big(big, args.big_mib)
        for tool in ("dsv", "dvc", "s3fs"):
            (work / tool / "big").mkdir(parents=True)
            shutil.copytree(big, work / tool / "big" / "data")
        shutil.rmtree(big)
        dsv_big = b.dsv_push(work / "dsv" / "big" / "data", "big")
        b.dvc_push(work / "dvc" / "big" / "data", "big")
        b.s3fs_put(work / "s3fs" / "big" / "data" / "big.bin", "big")
        # 1% edit of the big file, pushed again
        path = work / "dsv" / "big" / "data" / "big.bin"
        with open(path, "r+b") as f:
            f.seek(path.stat().st_size // 2)
            f.write(os.urandom(path.stat().st_size // 100))
        run([*DSV, "-q", "commit", "-m", "1% edit"], path.parent, b.env)
        b.measure("push 1% edit of big", "dsv", [*DSV, "-q", "push"], path.parent)
        del dsv_big
        print()
        print("| step | tool | seconds | requests | vs dsv (time) |")
        print("|---|---|---:|---:|---:|")
        by = {(r["step"], r["tool"]): r for r in b.rows}
        for r in b.rows:
            ref = by.get((r["step"], "dsv"))
            ratio = f"{float(r['seconds']) / float(ref['seconds']):.2f}x" if ref and r["tool"] != "dsv" and float(ref["seconds"]) > 0 else ""
            print(f"| {r['step']} | {r['tool']} | {r['seconds']:.2f} | {r['requests']} | {ratio} |")
        if args.json:
            args.json.write_text(json.dumps({"files": args.files, "file_kib": args.file_kib, "big_mib": args.big_mib, "rows": b.rows}, indent=2))
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
