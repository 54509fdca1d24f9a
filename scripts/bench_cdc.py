#!/usr/bin/env python3
"""Big-file benchmark (issue 9): content-defined chunking, dsv side by side with DVC and git-lfs.

One run measures, through the installed CLIs (``dsv init``/``dsv commit``,
``dvc add``, ``git lfs`` + ``git add``/``git commit``), what users pay for
versioning big files, and prints one Markdown report with the issue-9 targets
and PASS/FAIL. Sizes scale with ``--gib`` (default 1, the issue's figures), so
a run at ``--gib 0.1`` is a quick smoke test; ``GiB`` below means ``--gib`` GiB.

Cases (``--cases``, comma list; every tool works on its own copy of the data):

1. ``binary``: commit a GiB random binary file, overwrite 1% of its bytes in
   place (100 pieces of 1/10,000 of the file each, spread evenly over it, same
   bytes for every tool), commit again. Reported: the total size of the store
   (sum of file sizes under ``.dsv/objects``, ``.dvc/cache``,
   ``.git/lfs/objects``) after each commit. Target: dsv <= 1.1x the file size
   (1.1 GiB at ``--gib 1``).
2. ``parquet``: a table of ~12M rows per GiB (``id`` int64, ``label`` one of 10
   strings, four float64, one float32, a 32-character hex ``text``), written as
   a GiB of Parquet by ``dsv.write_parquet(table, path, key="id")`` (the row
   count is calibrated on a sample so the file is about GiB). Two edits, each
   committed on top of the original in a fresh repository: (a) ``relabel``:
   1% of rows, spread uniformly, get another label; (b) ``insert``: 1% new rows
   inserted in the middle. Each version is written again by the same writer.
   Targets: dsv <= 1.1x (relabel) and <= 1.15x (insert) of the first file's
   size. The same edits written by plain ``pyarrow.parquet.write_table(table,
   path)`` (default options) are committed into dsv for contrast (no target),
   and DVC and git-lfs commit the ``write_parquet`` files (they store whole
   files whichever writer made them).
3. ``commit_time``: committing one 2 x GiB file: ``cp`` to a new name followed
   by ``sync`` of the copy (the durable peer of a durable store: dsv fsyncs
   what it writes), ``dsv commit`` (median of ``--runs``, alternating with cp;
   the repository is removed and the disk synced between runs), and once each
   ``dvc add`` and ``git add`` + ``git commit`` under git-lfs for reference.
   Plain ``cp`` (no sync) is shown too. Target: dsv <= 1.5x cp + sync.
4. ``peak_mem``: peak RSS of ``dsv commit`` of a 3 x GiB file. Target: < 512 MB.

Every measured command is a fresh child started under GNU time
(``/usr/bin/time -f %M``), so its peak RSS is the high-water mark of that
command's process tree (dsv hashes and chunks on threads in one process), not
of this harness; the helpers come from ``scripts/bench_foundation.py``. Page
cache: caches cannot be dropped here, so every input is written, ``sync``-ed
and read once before it is measured (warm cache); the report records
MemAvailable and the load average (``uptime``) before and after, since the
machine may be shared. Oxen is not installed (and cannot be offline): the
report says so. Git runs with no system/global config and auto gc off; DVC
with analytics off and a private site cache.

Progress goes to stderr, the Markdown report to stdout, ``--json OUT`` gets
every figure. Exit status 1 if a command failed or a target was missed.

Examples::

    bash scripts/setup_bench.sh                     # DVC into /work/bench-venv
    .venv/bin/python scripts/bench_cdc.py --gib 0.1 # smoke run, ~1.5 minutes
    .venv/bin/python scripts/bench_cdc.py --json /tmp/bench_cdc.json  # full scale, ~10 minutes, ~10 GB of disk at peak
    .venv/bin/python scripts/bench_cdc.py --cases commit_time --runs 5  # just the timing case

The commit-time case is sensitive to the VM's memory state (see "The big-file
case depends on the VM's memory state" in docs/benchmarks.md): on the reference
VM dsv's run-to-run spread is up to 2x, so read the runs column, not only the
median.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_foundation as bf  # noqa: E402  (shared measuring helpers)

GIB = 1024**3
MIB = 1024**2
SEED = 9
EDIT_PLACES = 100
EDIT_FRACTION = 0.01
ROWS_PER_GIB = 12_000_000  # first guess; calibrated on a sample before writing
LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CASES = ["binary", "parquet", "commit_time", "peak_mem"]
TOOLS = ["dsv", "dvc", "git-lfs"]
STORE = {"dsv": ".dsv/objects", "dvc": ".dvc/cache", "git-lfs": ".git/lfs/objects"}
# case -> (kind, limit): "stored": stored / file size <= limit; "ratio": dsv / cp+sync <= limit;
# "mb": peak MB < limit.
TARGETS = {
    "binary": ("stored", 1.10),
    "parquet relabel": ("stored", 1.10),
    "parquet insert": ("stored", 1.15),
    "commit_time": ("ratio", 1.5),
    "peak_mem": ("mb", 512.0),
}

log = bf.log


@dataclass
class StoreRow:
    """Stored bytes of one tool on one edit case."""

    case: str
    tool: str
    file_bytes: int  # size of the first version
    stored_v1: int | None = None
    stored_v2: int | None = None
    commit_v1_s: float | None = None
    commit_v2_s: float | None = None
    peak_mb: float | None = None
    note: str = ""
    target: str = ""
    passed: bool | None = None
    ok: bool = True


@dataclass
class TimeRow:
    """Seconds (and peak MB) of one tool on a timing or memory case."""

    case: str
    tool: str
    seconds: float | None = None
    peak_mb: float | None = None
    runs: list | None = None
    note: str = ""
    ratio_text: str = ""
    target: str = ""
    passed: bool | None = None
    ok: bool = True


def store_bytes(path: Path) -> int:
    """Sum of the sizes of the regular files under ``path`` (0 if it does not exist)."""
    total = 0
    for d, _, names in os.walk(path):
        for n in names:
            st = os.lstat(os.path.join(d, n))
            total += st.st_size
    return total


def uptime() -> str:
    """The load averages, as ``uptime`` prints them."""
    out = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return out.split("load average:")[-1].strip() if "load average" in out else out


def meminfo() -> str:
    """MemAvailable and Cached from /proc/meminfo, in GiB."""
    vals = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            vals[k] = int(v.split()[0]) * 1024
    return f"MemAvailable {vals['MemAvailable'] / GIB:.1f} GiB, Cached {vals['Cached'] / GIB:.1f} GiB"


def gib(n: int | None) -> str:
    return "-" if n is None else f"{n / GIB:.3f}"


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def edit_in_place(path: Path, seed: int = SEED) -> int:
    """Overwrite 1% of ``path`` with random bytes in 100 evenly spread pieces; return bytes written."""
    size = path.stat().st_size
    piece = max(1, int(size * EDIT_FRACTION) // EDIT_PLACES)
    rng = random.Random(seed)
    written = 0
    with open(path, "r+b") as f:
        for i in range(EDIT_PLACES):
            lo = i * size // EDIT_PLACES
            hi = (i + 1) * size // EDIT_PLACES - piece
            f.seek(rng.randrange(lo, max(lo + 1, hi)))
            f.write(rng.randbytes(piece))
            written += piece
    return written


def make_table(n: int, seed: int, first_id: int = 0):  # type: ignore[no-untyped-def]
    """``n`` rows: id, label, f0..f3 (float64), score (float32), text (32 hex chars)."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    labels = pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, len(LABELS), n, dtype=np.int32)), pa.array(LABELS))
    hexdigits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    raw = rng.integers(0, 16, size=(n, 32), dtype=np.uint8)
    text = pa.StringArray.from_buffers(n, pa.py_buffer(np.arange(0, 32 * (n + 1), 32, dtype=np.int32)), pa.py_buffer(hexdigits[raw].tobytes()))
    cols = {"id": pa.array(np.arange(first_id, first_id + n, dtype=np.int64)), "label": labels.dictionary_decode()}
    for k in range(4):
        cols[f"f{k}"] = pa.array(rng.random(n))
    cols["score"] = pa.array(rng.random(n, dtype=np.float32))
    cols["text"] = text
    return pa.table(cols)


def relabel(table, seed: int):  # type: ignore[no-untyped-def]
    """Give 1% of rows, chosen uniformly, another label."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    rng = np.random.default_rng(seed + 1)
    rows = rng.choice(n, size=int(n * EDIT_FRACTION), replace=False)
    codes = pc.index_in(table.column("label"), value_set=pa.array(LABELS)).to_numpy().copy()
    codes[rows] = (codes[rows] + 1 + rng.integers(0, len(LABELS) - 1, rows.size)) % len(LABELS)
    new = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(LABELS)).dictionary_decode()
    return table.set_column(table.column_names.index("label"), "label", new)


def insert_rows(table, seed: int):  # type: ignore[no-untyped-def]
    """Insert 1% new rows (fresh ids) in the middle."""
    import pyarrow as pa

    n = table.num_rows
    extra = make_table(int(n * EDIT_FRACTION), seed + 2, first_id=n)
    mid = n // 2
    return pa.concat_tables([table.slice(0, mid), extra, table.slice(mid)])


def write_with(writer: str, table, path: Path) -> None:  # type: ignore[no-untyped-def]
    """Write ``table`` with ``dsv.write_parquet`` ("dsv") or default ``pq.write_table`` ("pyarrow")."""
    if writer == "dsv":
        import dsv

        dsv.write_parquet(table, path, key="id")
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, path)


def generate_parquet(root: Path, size: int) -> dict:
    """Write v1/relabel/insert with both writers into ``root``; return file sizes and row counts."""
    params = {"format": 1, "size": size, "seed": SEED}
    info_path = root / "info.json"
    if bf.dataset_ready(root, params) and info_path.exists():
        log(f"reusing Parquet files in {root}")
        return json.loads(info_path.read_text())
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    sample_rows = 200_000
    write_with("dsv", make_table(sample_rows, SEED), root / "sample.parquet")
    per_row = (root / "sample.parquet").stat().st_size / sample_rows
    (root / "sample.parquet").unlink()
    n = max(sample_rows, int(size / per_row))
    log(f"Parquet: {per_row:.1f} B/row in a sample; generating {n:,} rows")
    t0 = time.perf_counter()
    v1 = make_table(n, SEED)
    versions = {"v1": v1, "relabel": relabel(v1, SEED), "insert": insert_rows(v1, SEED)}
    info: dict = {"rows": n, "bytes_per_row": per_row, "files": {}, "write_s": {}}
    for writer in ("dsv", "pyarrow"):
        for name, table in versions.items():
            path = root / f"{writer}-{name}.parquet"
            t = time.perf_counter()
            write_with(writer, table, path)
            info["write_s"][path.name] = round(time.perf_counter() - t, 2)
            info["files"][path.name] = path.stat().st_size
            log(f"wrote {path.name}: {path.stat().st_size / GIB:.3f} GiB in {info['write_s'][path.name]:.1f} s")
    del versions, v1
    os.sync()
    info_path.write_text(json.dumps(info))
    bf.mark_dataset(root, params)
    log(f"generated Parquet files in {time.perf_counter() - t0:.1f} s")
    return info


# --------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(args.workdir).resolve()
        self.runs_dir = self.workdir / "runs"
        self.logs_dir = self.workdir / "logs"
        self.data_dir = self.workdir / "data"
        for d in (self.runs_dir, self.logs_dir, self.data_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.use_time = bf.gnu_time_available()
        self.git = shlex.split(args.git)
        self.tools: dict[str, list[str] | None] = {
            "dsv": shlex.split(args.dsv),
            "dvc": None if args.skip_dvc else shlex.split(args.dvc),
            "git-lfs": None if args.skip_lfs else self.git + ["lfs"],
        }
        for name, cmd in self.tools.items():
            if cmd is None:
                continue
            probe = cmd + ["version"] if name == "git-lfs" else cmd + ["--version"]
            if subprocess.run(probe, capture_output=True).returncode != 0:
                log(f"{name}: `{shlex.join(probe)}` failed; skipping its rows")
                self.tools[name] = None
        self.env = self._child_env()
        self.store_rows: list[StoreRow] = []
        self.time_rows: list[TimeRow] = []
        self.failed = False

    def _child_env(self) -> dict:
        env = dict(os.environ)
        env.update({
            "GIT_AUTHOR_NAME": "dsv bench", "GIT_AUTHOR_EMAIL": "bench@dsv.invalid",
            "GIT_COMMITTER_NAME": "dsv bench", "GIT_COMMITTER_EMAIL": "bench@dsv.invalid",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_COUNT": "3",
            "GIT_CONFIG_KEY_0": "gc.auto", "GIT_CONFIG_VALUE_0": "0",
            "GIT_CONFIG_KEY_1": "maintenance.auto", "GIT_CONFIG_VALUE_1": "false",
            "GIT_CONFIG_KEY_2": "init.defaultBranch", "GIT_CONFIG_VALUE_2": "main",
            "DVC_NO_ANALYTICS": "1",
            "DSV_AUTHOR_NAME": "dsv bench", "DSV_AUTHOR_EMAIL": "bench@dsv.invalid",
        })
        return env

    def env_for(self, run_dir: Path) -> dict:
        env = dict(self.env)
        env["DVC_SITE_CACHE_DIR"] = str(run_dir / "dvc-site-cache")
        return env

    def cleanup(self, path: Path) -> None:
        if not self.args.keep:
            shutil.rmtree(path, ignore_errors=True)

    # -- recipes ---------------------------------------------------------

    def setup_cmds(self, tool: str) -> list[list[str]]:
        git = self.git
        if tool == "dsv":
            return [self.tools["dsv"] + ["init"]]
        if tool == "dvc":
            dvc = self.tools["dvc"]
            return [git + ["init", "-q"], dvc + ["init", "-q"], dvc + ["config", "core.analytics", "false"],
                    dvc + ["config", "core.check_update", "false"], git + ["commit", "-q", "-m", "dvc init"]]
        return [git + ["init", "-q"], git + ["lfs", "install", "--local"],
                git + ["lfs", "track", "*.bin", "*.parquet"], git + ["add", ".gitattributes"],
                git + ["commit", "-q", "-m", "lfs"]]

    def commit_cmds(self, tool: str, name: str, msg: str, dvc_add_only: bool = False) -> list[list[str]]:
        git = self.git
        if tool == "dsv":
            return [self.tools["dsv"] + ["-q", "commit", "-m", msg]]
        if tool == "dvc":
            add = [self.tools["dvc"] + ["add", "-q", name]]
            return add if dvc_add_only else add + [git + ["add", f"{name}.dvc", ".gitignore"], git + ["commit", "-q", "-m", msg]]
        return [git + ["add", name], git + ["commit", "-q", "-m", msg]]

    def timed(self, commands: list, cwd: Path, env: dict, logf: Path, nbytes: int) -> bf.Measurement:
        if self.args.prefault:
            bf.prefault(2 * nbytes)
        m = bf.run_step(commands, cwd, env, logf, self.args.timeout or None, self.use_time)
        if not m.ok:
            self.failed = True
        return m

    # -- cases 1 and 2: stored bytes after an edit ------------------------

    def store_case(self, case: str, tool: str, v1: Path, v2: Path | None, name: str, label: str) -> None:
        """Commit ``v1`` as ``name``; then ``v2`` (copied over it) or, if None, the in-place edit."""
        run_dir = self.runs_dir / f"{case}-{label}".replace(" ", "-")
        wt = run_dir / "wt"
        shutil.rmtree(run_dir, ignore_errors=True)
        wt.mkdir(parents=True)
        row = StoreRow(case, label, v1.stat().st_size)
        self.store_rows.append(row)
        env = self.env_for(run_dir)
        logf = self.logs_dir / f"{run_dir.name}.log"
        logf.unlink(missing_ok=True)
        subprocess.run(["cp", str(v1), str(wt / name)], check=True)
        err = bf.run_setup(self.setup_cmds(tool), wt, env, logf)
        if err:
            row.ok, row.note = False, f"setup failed: {err}"
            self.failed = True
            self.cleanup(run_dir)
            return
        os.sync()
        bf.warm_cache(wt / name)
        m1 = self.timed(self.commit_cmds(tool, name, "v1"), wt, env, logf, row.file_bytes)
        row.commit_v1_s, row.peak_mb = m1.seconds, m1.peak_mb
        row.stored_v1 = store_bytes(wt / STORE[tool])
        if not m1.ok:
            row.ok, row.note = False, m1.error or "commit failed"
            self.cleanup(run_dir)
            return
        if v2 is None:
            edit_in_place(wt / name)
        else:
            subprocess.run(["cp", str(v2), str(wt / name)], check=True)  # cp onto it rewrites it in place
        os.sync()
        bf.warm_cache(wt / name)
        m2 = self.timed(self.commit_cmds(tool, name, "v2"), wt, env, logf, row.file_bytes)
        row.commit_v2_s, row.peak_mb = m2.seconds, max(row.peak_mb or 0, m2.peak_mb or 0)
        row.stored_v2 = store_bytes(wt / STORE[tool])
        if not m2.ok:
            row.ok, row.note = False, m2.error or "commit failed"
        log(f"[{case}] {label}: stored {gib(row.stored_v1)} -> {gib(row.stored_v2)} GiB "
            f"(file {gib(row.file_bytes)} GiB), commits {m1.seconds:.2f} s / {m2.seconds:.2f} s")
        self.cleanup(run_dir)

    def case_binary(self) -> None:
        src = bf.generate_big(self.data_dir / "binary", "data.bin", self.args.gib)
        for tool in TOOLS:
            if self.tools[tool] is not None:
                self.store_case("binary", tool, src, None, "data.bin", tool)
        if not self.args.keep_data:
            shutil.rmtree(self.data_dir / "binary", ignore_errors=True)

    def case_parquet(self) -> None:
        root = self.data_dir / "parquet"
        self.parquet_info = generate_parquet(root, int(self.args.gib * GIB))
        for edit in ("relabel", "insert"):
            case = f"parquet {edit}"
            v1, v2 = root / "dsv-v1.parquet", root / f"dsv-{edit}.parquet"
            self.store_case(case, "dsv", v1, v2, "data.parquet", "dsv (dsv.write_parquet)")
            self.store_case(case, "dsv", root / "pyarrow-v1.parquet", root / f"pyarrow-{edit}.parquet",
                            "data.parquet", "dsv (pq.write_table)")
            for tool in ("dvc", "git-lfs"):
                if self.tools[tool] is not None:
                    self.store_case(case, tool, v1, v2, "data.parquet", f"{tool} (dsv.write_parquet)")
        if not self.args.keep_data:
            shutil.rmtree(root, ignore_errors=True)

    # -- case 3: commit time of a 2 x GiB file ----------------------------

    def case_commit_time(self) -> None:
        src = bf.generate_big(self.data_dir / "time", "big.bin", 2 * self.args.gib)
        nbytes = src.stat().st_size
        run_dir = self.runs_dir / "time"
        wt = bf.fresh_copy(src, run_dir / "wt").parent
        env = self.env_for(run_dir)
        logf = self.logs_dir / "commit_time.log"
        logf.unlink(missing_ok=True)
        dsv = self.tools["dsv"]
        results: dict[str, list[bf.Measurement]] = {"cp": [], "cp + sync": [], "dsv": []}
        commands = {
            "cp": [["cp", "big.bin", "big.copy"]],
            "cp + sync": [["sh", "-c", "cp big.bin big.copy && sync big.copy"]],
            "dsv": [dsv + ["-q", "commit", "-m", "x"]],
        }
        for r in range(self.args.runs):
            order = ["cp", "cp + sync", "dsv"] if r % 2 == 0 else ["dsv", "cp + sync", "cp"]
            for tool in order:
                if tool == "dsv":
                    bf.run_setup([dsv + ["init"]], wt, env, logf)
                m = self.timed(commands[tool], wt, env, logf, nbytes)
                results[tool].append(m)
                log(f"[commit_time] run {r + 1} {tool}: {m.seconds:.2f} s, {m.peak_mb:.0f} MB")
                (wt / "big.copy").unlink(missing_ok=True)
                shutil.rmtree(wt / ".dsv", ignore_errors=True)
                os.sync()
        for tool, ms in results.items():
            ok = [m for m in ms if m.ok]
            med = statistics.median(m.seconds for m in ok) if ok else None
            self.time_rows.append(TimeRow("commit_time", tool, med, max((m.peak_mb for m in ok), default=None),
                                          runs=[round(m.seconds, 3) for m in ms], ok=len(ok) == len(ms)))
        self.cleanup(run_dir)
        for tool in ("dvc", "git-lfs"):
            if self.tools[tool] is None:
                continue
            tdir = self.runs_dir / f"time-{tool}"
            twt = bf.fresh_copy(src, tdir / "wt").parent
            tenv = self.env_for(tdir)
            err = bf.run_setup(self.setup_cmds(tool), twt, tenv, logf)
            if err:
                self.time_rows.append(TimeRow("commit_time", tool, note=f"setup failed: {err}", ok=False))
                self.failed = True
            else:
                m = self.timed(self.commit_cmds(tool, "big.bin", "x", dvc_add_only=True), twt, tenv, logf, nbytes)
                label = "dvc (`dvc add`)" if tool == "dvc" else "git-lfs (add + commit)"
                self.time_rows.append(TimeRow("commit_time", label, m.seconds, m.peak_mb, runs=[round(m.seconds, 3)], ok=m.ok))
                log(f"[commit_time] {tool}: {m.seconds:.2f} s, {m.peak_mb:.0f} MB")
            self.cleanup(tdir)
        if not self.args.keep_data:
            shutil.rmtree(self.data_dir / "time", ignore_errors=True)

    # -- case 4: peak memory, 3 x GiB -----------------------------------

    def case_peak_mem(self) -> None:
        src = bf.generate_big(self.data_dir / "mem", "mem.bin", 3 * self.args.gib)
        run_dir = self.runs_dir / "mem"
        nbytes = src.stat().st_size
        wt = bf.fresh_copy(src, run_dir / "wt").parent
        if not self.args.keep_data:
            shutil.rmtree(self.data_dir / "mem", ignore_errors=True)
        env = self.env_for(run_dir)
        logf = self.logs_dir / "peak_mem.log"
        logf.unlink(missing_ok=True)
        bf.run_setup([self.tools["dsv"] + ["init"]], wt, env, logf)
        m = self.timed([self.tools["dsv"] + ["-q", "commit", "-m", "x"]], wt, env, logf, nbytes)
        self.time_rows.append(TimeRow("peak_mem", "dsv", m.seconds, m.peak_mb, runs=[round(m.seconds or 0, 3)], ok=m.ok))
        log(f"[peak_mem] dsv: {m.seconds:.2f} s, {m.peak_mb:.0f} MB")
        self.cleanup(run_dir)

    # -- scoring and report ----------------------------------------------

    def score(self) -> None:
        for row in self.store_rows:
            if row.tool not in ("dsv", "dsv (dsv.write_parquet)"):
                continue  # targets are dsv's (with its Parquet writer); the rest is for contrast
            _, limit = TARGETS[row.case]
            row.target = f"<= {limit:g}x file"
            if row.ok and row.stored_v2 is not None:
                row.passed = row.stored_v2 <= limit * row.file_bytes
        rows = {r.tool: r for r in self.time_rows if r.case == "commit_time"}
        base = rows.get("cp + sync")
        for r in self.time_rows:
            if r.case == "commit_time" and base and base.seconds and r.seconds is not None and r.tool != "cp + sync":
                r.ratio_text = f"{r.seconds / base.seconds:.2f}x cp + sync"
                if r.tool == "dsv":
                    r.target = "<= 1.5x cp + sync"
                    r.passed = r.ok and r.seconds <= TARGETS["commit_time"][1] * base.seconds
            if r.case == "peak_mem":
                r.target = "< 512 MB"
                r.passed = r.ok and r.peak_mb is not None and r.peak_mb < TARGETS["peak_mem"][1]
        if any(r.passed is False for r in [*self.store_rows, *self.time_rows]):
            self.failed = True

    def report(self, command: str, facts: dict) -> str:
        a = self.args
        g = a.gib
        verdict = {True: "PASS", False: "FAIL", None: "-"}
        lines = [
            "## Big files (issue 9): content-defined chunking",
            "",
            "Command:",
            "",
            "```",
            command,
            "```",
            "",
            f"- machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['ram_gib']} GiB RAM, Linux {facts['kernel']}, "
            f"{facts['filesystem']}; shared with other work: load average {facts['load_before']} before, "
            f"{facts['load_after']} after",
            f"- {facts['dsv_version']}; dvc {facts['dvc_version']}; {facts['lfs_version']}; Oxen: not measured "
            "(not installed, and not installable offline)",
            f"- page cache: cannot be dropped here; every input was synced and read once before its command "
            f"(warm cache); {facts['mem_before']} at the start. Peak MB: {facts['rss_method']} "
            f"(floor on `true`: {facts['rss_floor_mb']} MB). "
            + ("Memory prefaulted before each timed command (`--prefault`)." if a.prefault else "No `--prefault`."),
            "- stored = sum of file sizes under `.dsv/objects`, `.dvc/cache`, `.git/lfs/objects` after the second commit; "
            f"edits: binary 1% overwritten in {EDIT_PLACES} pieces; Parquet relabel 1% of rows (uniform), insert 1% rows in the middle",
        ]
        if hasattr(self, "parquet_info"):
            pi = self.parquet_info
            lines.append(f"- Parquet: {pi['rows']:,} rows (id, label, f0-f3 float64, score float32, 32-char text); "
                         f"write_parquet {pi['files']['dsv-v1.parquet'] / GIB:.3f} GiB in {pi['write_s']['dsv-v1.parquet']:.0f} s, "
                         f"pq.write_table {pi['files']['pyarrow-v1.parquet'] / GIB:.3f} GiB in {pi['write_s']['pyarrow-v1.parquet']:.0f} s")
        if self.store_rows:
            lines += [
                "",
                f"Stored bytes (GiB) after committing a {g:g} GiB file, then the edit:",
                "",
                "| case | tool | file | stored after v1 | stored after edit | added by edit | stored / file | commit v1 s | commit edit s | peak MB | target | pass |",
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
            ]
            for r in self.store_rows:
                added = None if r.stored_v1 is None or r.stored_v2 is None else r.stored_v2 - r.stored_v1
                ratio = f"{r.stored_v2 / r.file_bytes:.3f}x" if r.stored_v2 is not None else "-"
                added_s = "-" if added is None else f"{added / GIB:.3f} ({100 * added / r.file_bytes:.1f}%)"
                s1 = "-" if r.commit_v1_s is None else f"{r.commit_v1_s:.2f}"
                s2 = "-" if r.commit_v2_s is None else f"{r.commit_v2_s:.2f}"
                pk = "-" if r.peak_mb is None else f"{r.peak_mb:.0f}"
                case = {"binary": "1. binary, 1% in place", "parquet relabel": "2a. Parquet, relabel 1%",
                        "parquet insert": "2b. Parquet, insert 1%"}[r.case]
                tool = r.tool if r.ok else f"{r.tool} (failed)"
                lines.append(f"| {case} | {tool} | {gib(r.file_bytes)} | {gib(r.stored_v1)} | {gib(r.stored_v2)} | {added_s} "
                             f"| {ratio} | {s1} | {s2} | {pk} | {r.target or '-'} | {verdict[r.passed]} |")
        if self.time_rows:
            lines += [
                "",
                f"Commit time of one {2 * g:g} GiB file (median of {a.runs} for cp, cp + sync and dsv) and peak memory of "
                f"committing a {3 * g:g} GiB file:",
                "",
                "| case | tool | seconds | runs | peak MB | ratio | target | pass |",
                "| --- | --- | ---: | --- | ---: | --- | --- | --- |",
            ]
            for r in self.time_rows:
                case = f"3. commit {2 * g:g} GiB" if r.case == "commit_time" else f"4. peak memory, {3 * g:g} GiB"
                secs = "-" if r.seconds is None else f"{r.seconds:.2f}"
                runs = ", ".join(f"{s:.2f}" for s in r.runs or [])
                pk = "-" if r.peak_mb is None else f"{r.peak_mb:.0f}"
                tool = r.tool if r.ok else f"{r.tool} (failed)"
                lines.append(f"| {case} | {tool} | {secs} | {runs} | {pk} | {r.ratio_text or '-'} | {r.target or '-'} | {verdict[r.passed]} |")
        notes = [f"- {r.case}/{r.tool}: {r.note}" for r in [*self.store_rows, *self.time_rows] if r.note]
        skipped = [t for t, c in self.tools.items() if c is None]
        if skipped:
            notes.append(f"- not measured (skipped or not found): {', '.join(skipped)}")
        if notes:
            lines += ["", "Notes:", ""] + notes
        return "\n".join(lines) + "\n"

    def facts(self) -> dict:
        f = bf.machine_facts(self.workdir, self.env, {}, self.use_time)
        f["dsv_version"] = bf.tool_version(self.tools["dsv"], self.env)
        f["dvc_version"] = bf.tool_version(self.tools["dvc"], self.env) if self.tools["dvc"] else "skipped"
        lfs = subprocess.run(self.git + ["lfs", "version"], capture_output=True, text=True)
        f["lfs_version"] = lfs.stdout.strip().split(" (")[0] if self.tools["git-lfs"] and lfs.returncode == 0 else "git-lfs skipped"
        return f


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gib", type=float, default=1.0, help="scale: binary and Parquet files of GIB GiB, 2x for commit time, 3x for memory")
    ap.add_argument("--workdir", default="/tmp/dsv-bench-cdc")
    here = Path(sys.executable).parent
    ap.add_argument("--dsv", default=str(here / "dsv"), help="dsv command (default: the dsv next to this interpreter)")
    ap.add_argument("--dvc", default=str(Path(os.environ.get("DSV_BENCH_VENV", "/work/bench-venv")) / "bin" / "dvc"))
    ap.add_argument("--git", default="git")
    ap.add_argument("--skip-dvc", action="store_true")
    ap.add_argument("--skip-lfs", action="store_true")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--runs", type=int, default=3, help="runs of cp, cp + sync and dsv in the commit-time case (median)")
    ap.add_argument("--prefault", action="store_true", help="touch 2x the data's size in memory before each timed command")
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work copies")
    ap.add_argument("--keep-data", action="store_true", help="keep the generated inputs (reused by the next run)")
    args = ap.parse_args(argv)
    bad = set(args.cases.split(",")) - set(CASES)
    if bad:
        ap.error(f"unknown case(s): {', '.join(sorted(bad))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python scripts/bench_cdc.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    b = Bench(args)
    load_before, mem_before = uptime(), meminfo()
    log(f"load average {load_before}; {mem_before}")
    cases = args.cases.split(",")
    t0 = time.perf_counter()
    for case in CASES:
        if case in cases:
            log(f"== {case}")
            getattr(b, f"case_{case}")()
    b.score()
    facts = b.facts()
    facts.update(load_before=load_before, load_after=uptime(), mem_before=mem_before)
    log(f"done in {time.perf_counter() - t0:.0f} s; load average {facts['load_after']}")
    print(b.report(command.strip(), facts))
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args), "facts": facts,
                                         "parquet": getattr(b, "parquet_info", None),
                                         "stored": [asdict(r) for r in b.store_rows],
                                         "times": [asdict(r) for r in b.time_rows]}, indent=2, default=str))
    if not args.keep:
        shutil.rmtree(b.runs_dir, ignore_errors=True)
    return 1 if b.failed else 0


if __name__ == "__main__":
    sys.exit(main())
