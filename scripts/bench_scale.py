#!/usr/bin/env python3
"""Scale benchmark (issue 9): dsv side by side with git (and DVC) on large trees.

One run measures, for each ``--files`` size, the whole life of a small
versioned data set in every tool and prints one table per size with seconds,
peak MB, the ratio to git, the issue-9 target and PASS/FAIL, then the peak
memory of every dsv command. It follows the conventions of
``scripts/bench_foundation.py`` (and imports its measuring helpers): each tool
gets its own fresh ``cp -a`` copy of the generated data, flushed to disk and
read once so the page cache is warm; every measured command is a fresh child
process started under ``/usr/bin/time -f %M`` for its peak RSS; git runs with
no system or global config and with auto gc/maintenance off; DVC runs with
analytics and the update check off and a private site cache.

Data (generated under ``--workdir``/data, reused while the parameters match):
N files of 4 KiB random bytes. Up to 100,000 files the layout is
``train/class_<k>/<id>.bin`` (10 classes); above that it is one level deeper,
``train/class_<k>/part_<pp>/<id>.bin`` (10 x 100 = 1,000 folders), so that no
folder holds more than ~1,000 files at a million.

Sequence (the timed steps are the cases; v1/v2 are dsv tags, and git's
HEAD~1/HEAD). Every tool keeps its work copy for the whole sequence; commits
run tool after tool, while the repeated cases (status, diff, log, checkout)
run in rounds that take each tool in turn, so that other load on a shared
machine falls on all tools alike. Beside wall time the report gives CPU time
(user + system of the process tree, from ``wait4``), which such load changes
least:

1. init (untimed);
2. ``first_commit``: commit the tree as v1. git: ``git add -A`` + ``git
   commit``; dvc: ``dvc add train`` + ``git add train.dvc .gitignore`` + ``git
   commit``; dsv: ``dsv commit -m v1`` (then ``dsv tag v1``);
3. ``status``: no-op status, one warm-up run then ``--runs`` (3) timed runs, median:
   ``git status --porcelain``, ``dvc status``, ``dsv status``;
4. change the tree (untimed, identical bytes for every tool, then ``sync``):
   up to 100,000 files, 1% of the files modified in place (new random bytes,
   same size), 5 added, 5 removed; above 100,000, 10 files modified;
5. ``commit2``: commit that as v2, same commands as (2). For dsv the growth
   of ``.dsv/objects`` minus the bytes of the new file contents is reported as
   the commit's new metadata;
6. ``diff``: file-level diff of v1 and v2, warm-up + median of ``--runs`` (3):
   ``git diff --stat HEAD~1 HEAD``, ``dvc diff HEAD~1 HEAD``, ``dsv diff v1 v2``;
7. ``log``: history of the two versions, warm-up + median of ``--runs`` (3): ``git log``,
   ``dsv log``;
8. ``checkout``: check out v1, median of ``--runs`` (3) (after each timed run the tool is
   returned to v2, untimed): ``git checkout -q HEAD~1`` / ``git checkout -q
   main``; dvc: the same plus ``dvc checkout``; ``dsv checkout v1`` / ``dsv
   checkout main``.

Targets (issue 9; "ratio" is dsv relative to git):

* up to 100,000 files: status <= 1.5x git; checkout <= 1x git; diff <= 0.2 s;
  second commit <= 0.7x git;
* above 100,000 files (the issue's 1,000,000): first commit <= 0.3x git;
  status <= 1.5x git; 10-file commit <= 1x git and < 1 MB of new metadata;
  diff and log < 1 s; peak memory < 1 GB for every dsv command.

Work copies deleted by an earlier run (or size) must be ``--age`` seconds
old (default 400) before new ones are built: the harness records when it
deletes them (``WORKDIR/runs/.deleted-at``), runs ``sync`` and waits out the
rest. On ext4 without a journal the inode allocator passes over every free
inode freed in the last 60 s, or the last 6 minutes while its inode table
block is dirty (``recently_deleted``); a run started seconds after the last
one deleted 2 x N files, the copies skipped those inodes and kept their
blocks dirty, and every tool's checkout then paid 0.12-0.4 ms per new file
for the harness's own deletions (traced with
``ext4:ext4_request_inode``/``ext4_allocate_inode``: git's too; 4-14 µs
after 5 minutes idle; still 30 ms per git checkout after 65 s), so ratios
swung between 1.0x and 1.9x from run to run. ``--age 0`` for quick runs. Before the rounds of timed cases (and again after the second commits)
it runs ``sync`` and waits ``--quiesce`` seconds (default 6), so no tool's
timed command meets the write-back of the set-up.

``--cases`` selects cases (comma list of first_commit, status, commit2, diff,
log, checkout); the steps a selected case needs still run, untimed rows are
simply not reported. DVC is measured unless ``--skip-dvc`` is given, and never
above ``--dvc-max-files`` (default 100,000: DVC needs minutes per command at a
million files).

``--profile DIR`` runs every dsv command under ``py-spy record --idle
--subprocesses`` (py-spy must be installed next to the dsv interpreter or on
PATH) and writes the raw stacks plus a per-function summary into DIR; the
timings of such a run include the profiler and are marked as profiled.

Progress goes to stderr; the report (Markdown, ready for docs/benchmarks.md)
goes to stdout; ``--json OUT`` writes every figure, run by run. The exit
status is 1 if a measured command failed or a target was missed, else 0.

Examples::

    .venv/bin/python scripts/bench_scale.py --files 20000,100000 --json /tmp/scale.json
    .venv/bin/python scripts/bench_scale.py --files 1000000 --skip-dvc --json /tmp/scale1m.json
    .venv/bin/python scripts/bench_scale.py --files 2000 --skip-dvc --cases status,diff  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_foundation as bf  # noqa: E402  (shared measuring helpers)

FILE_SIZE = bf.FILE_SIZE
CLASSES = 10
DEEP_PARTS = 100  # sub-folders per class in the deep layout (10 x 100 = 1,000 folders)
DEEP_ABOVE = 100_000  # more files than this: deep layout and the "large" targets
DATA_FORMAT = 1
RUNS = 3
SEED = 9
CASES = ["first_commit", "status", "commit2", "diff", "log", "checkout"]
NEEDS = {  # what each case needs done before it
    "first_commit": set(),
    "status": {"first_commit"},
    "commit2": {"first_commit"},
    "diff": {"first_commit", "commit2"},
    "log": {"first_commit", "commit2"},
    "checkout": {"first_commit", "commit2"},
}
TOOL_ORDER = ["dsv", "git", "dvc"]
ROW_ORDER = CASES + ["metadata", "peak_mem"]
MB_LIMIT = 1024.0
META_LIMIT = 1_000_000

# Targets per tier: case -> (kind, limit). "ratio": dsv/git <= limit (on git's
# row); "seconds": dsv <= limit s; "bytes": metadata < limit; "mb": peak < limit.
TARGETS = {
    "mid": {
        "status": ("ratio", 1.5),
        "checkout": ("ratio", 1.0),
        "diff": ("seconds", 0.2),
        "commit2": ("ratio", 0.7),
    },
    "large": {
        "first_commit": ("ratio", 0.3),
        "status": ("ratio", 1.5),
        "commit2": ("ratio", 1.0),
        "metadata": ("bytes", META_LIMIT),
        "diff": ("seconds", 1.0),
        "log": ("seconds", 1.0),
        "peak_mem": ("mb", MB_LIMIT),
    },
}

log = bf.log


def tier(files: int) -> str:
    """"mid" (the issue's 20,000/100,000 targets) or "large" (its 1,000,000 ones)."""
    return "large" if files > DEEP_ABOVE else "mid"


# --------------------------------------------------------------------------
# Data and the change between v1 and v2
# --------------------------------------------------------------------------


def file_path(train: Path, i: int, deep: bool) -> Path:
    """Where file number ``i`` lives."""
    k = i % CLASSES
    if deep:
        return train / f"class_{k:02d}" / f"part_{(i // CLASSES) % DEEP_PARTS:02d}" / f"{i:07d}.bin"
    return train / f"class_{k:02d}" / f"{i:07d}.bin"


def generate_tree(root: Path, files: int) -> Path:
    """Make ``files`` random 4 KiB files under ``root/train``; reuse a complete one.

    One ``os.urandom`` call yields 256 files' worth of bytes, sliced into files.
    """
    deep = files > DEEP_ABOVE
    params = {"format": DATA_FORMAT, "files": files, "classes": CLASSES, "size": FILE_SIZE,
              "deep": deep, "parts": DEEP_PARTS if deep else 0}
    train = root / "train"
    if bf.dataset_ready(root, params):
        log(f"reusing {files} files in {train}")
        return train
    shutil.rmtree(root, ignore_errors=True)
    made: set[Path] = set()
    log(f"generating {files} x {FILE_SIZE} B files in {train} ({'deep' if deep else 'flat'} layout)")
    start = time.perf_counter()
    per_chunk = bf.CHUNK // FILE_SIZE
    for base in range(0, files, per_chunk):
        count = min(per_chunk, files - base)
        view = memoryview(os.urandom(count * FILE_SIZE))
        for j in range(count):
            p = file_path(train, base + j, deep)
            if p.parent not in made:
                p.parent.mkdir(parents=True, exist_ok=True)
                made.add(p.parent)
            with open(p, "wb") as f:
                f.write(view[j * FILE_SIZE:(j + 1) * FILE_SIZE])
        if base // 100_000 != (base + count) // 100_000:
            log(f"  {base + count} files")
    os.sync()
    bf.mark_dataset(root, params)
    log(f"generated in {time.perf_counter() - start:.1f} s")
    return train


@dataclass
class ChangePlan:
    """The edit between v1 and v2: file numbers to modify and remove, names to add."""

    modify: list[int]
    remove: list[int]
    add: list[str]  # paths relative to the work copy

    def describe(self) -> str:
        """Human description for the report."""
        parts = [f"{len(self.modify)} modified"]
        if self.add:
            parts.append(f"{len(self.add)} added")
        if self.remove:
            parts.append(f"{len(self.remove)} removed")
        return ", ".join(parts)

    @property
    def content_bytes(self) -> int:
        """Bytes of new file content the second commit must store."""
        return (len(self.modify) + len(self.add)) * FILE_SIZE


def change_plan(files: int) -> ChangePlan:
    """The issue's change: 1% modified + 5 added + 5 removed, or 10 modified above 100,000.

    Modified files are spread evenly over the tree; removed ones sit between them.
    """
    deep = files > DEEP_ABOVE
    if deep:
        n_mod, n_add, n_rm = min(10, files), 0, 0
    else:
        n_mod, n_add, n_rm = max(1, files // 100), 5, 5
    step = max(1, files // n_mod)
    modify = [j * step for j in range(n_mod)]
    taken = set(modify)
    remove = []
    rstep = max(1, files // max(1, n_rm))
    for j in range(n_rm):
        i = (j * rstep + step // 2 + 1) % files
        while i in taken:
            i = (i + 1) % files
        taken.add(i)
        remove.append(i)
    add = []
    for j in range(n_add):
        k = j % CLASSES
        folder = f"train/class_{k:02d}" + (f"/part_{j % DEEP_PARTS:02d}" if deep else "")
        add.append(f"{folder}/new_{j:04d}.bin")
    return ChangePlan(modify, remove, add)


def apply_change(wt: Path, plan: ChangePlan, files: int) -> None:
    """Apply ``plan`` to the work copy ``wt`` (same bytes for every tool), then sync."""
    deep = files > DEEP_ABOVE
    train = wt / "train"
    for i in plan.modify:
        with open(file_path(train, i, deep), "r+b") as f:  # in place: same inode, new mtime
            f.write(random.Random(SEED * 1_000_003 + i).randbytes(FILE_SIZE))
            f.truncate()
    for i in plan.remove:
        file_path(train, i, deep).unlink()
    for j, rel in enumerate(plan.add):
        p = wt / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(random.Random(SEED * 7_000_003 + j).randbytes(FILE_SIZE))
    os.sync()


def tree_bytes(path: Path) -> int:
    """Total size of the regular files under ``path``."""
    total = 0
    for d, _, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(d, n)).st_size
            except FileNotFoundError:
                pass
    return total


# --------------------------------------------------------------------------
# Profiling (--profile)
# --------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*?)(?::\d+)?\)$")


def find_py_spy(dsv_cmd: list[str]) -> str | None:
    """py-spy next to the dsv executable, next to this interpreter, or on PATH."""
    cands = []
    exe = shutil.which(dsv_cmd[0]) if dsv_cmd else None
    if exe:
        cands.append(Path(exe).parent / "py-spy")
    cands.append(Path(sys.executable).parent / "py-spy")
    for c in cands:
        if c.exists():
            return str(c)
    return shutil.which("py-spy")


def _package_of(file: str) -> str:
    """Top-level package (or stdlib module) of a py-spy frame's file."""
    file = file.split(" ")[0]
    if file.startswith("<frozen"):
        return "importlib"
    head = file.split("/", 1)[0]
    return head[:-3] if head.endswith(".py") else head


def summarise_profile(raws: list[Path], wall: float, rate: int, top: int = 25) -> str:
    """Per-function inclusive and self time from py-spy raw (collapsed) stacks.

    ``raws`` are the runs of one command (their samples are added up; ``wall``
    is their summed wall time). Only the measured process's samples count
    towards the shares: with ``--idle`` every sample is wall time of that
    process. Forked children (stacks under a second ``process`` frame) are
    summed separately. "func (file)" merges a function's line numbers. Import
    time is also split by the package whose import it was: the outermost
    non-dsv module being imported, else the dsv module.
    """
    incl: Counter = Counter()
    self_: Counter = Counter()
    imports: Counter = Counter()
    child = 0
    total = 0
    for raw in raws:
        for line in raw.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            depth = 0
            while frames and frames[0].startswith("process "):
                frames = frames[1:]
                depth += 1
            if depth > 1:
                child += n
                continue
            total += n
            names = []
            mods = []
            in_import = False
            for fr in frames:
                m = _FRAME.match(fr)
                func, file = (m["func"], m["file"]) if m else (fr, "")
                names.append(f"{func} ({file})" if m else fr)
                if func == "_find_and_load":
                    in_import = True
                elif in_import and func == "<module>":
                    mods.append(_package_of(file))
            for name in set(names):
                incl[name] += n
            if names:
                self_[names[-1]] += n
            if in_import:
                outer = next((p for p in mods if p != "dsv"), None)
                imports[outer or (mods[0] if mods else "?")] += n
    sampled = total / rate
    lines = [f"{len(raws)} run(s), wall {wall:.3f} s in all; sampled in the measured process "
             f"{sampled:.3f} s ({total} samples at {rate} Hz); not sampled (interpreter start-up "
             f"before py-spy attaches, exit) ~{max(0.0, wall - sampled):.3f} s"]
    if child:
        lines.append(f"forked children (in parallel, not in the shares): {child / rate:.3f} s")
    if imports:
        lines.append("imports by package: " + ", ".join(
            f"{p} {c / rate:.3f} s ({c / max(total, 1):.0%})" for p, c in imports.most_common(8)))
    lines += ["", f"{'inclusive s':>11} {'share':>6}  function"]
    for name, n in incl.most_common(top):
        lines.append(f"{n / rate:11.3f} {n / max(total, 1):6.1%}  {name}")
    lines += ["", f"{'self s':>11} {'share':>6}  function"]
    for name, n in self_.most_common(top):
        lines.append(f"{n / rate:11.3f} {n / max(total, 1):6.1%}  {name}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------


@dataclass
class Row:
    """One line of a size's table."""

    case: str
    tool: str
    seconds: float | None
    peak_mb: float | None
    ok: bool = True
    note: str = ""
    value: float | None = None  # metadata bytes
    cpu: float | None = None  # user + system seconds of the process tree (median run)
    ratio: float | None = None
    ratio_text: str = ""
    target: str = ""
    passed: bool | None = None
    runs: list[dict] = field(default_factory=list)


@dataclass
class DsvCommand:
    """Every run of one dsv command line (for the peak-memory table)."""

    command: str
    case: str
    seconds: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    timed: bool = True


@dataclass
class ToolRun:
    """One tool's work copy and its running state."""

    run_dir: Path
    wt: Path
    env: dict
    logf: Path
    alive: bool = True


def run_measured(argv: list[str], cwd: Path, env: dict, log_path: Path, timeout: float | None,
                 use_time: bool) -> dict:
    """bench_foundation.run_measured, plus ``cpu``: user + system seconds of the process tree.

    The CPU figure comes from the rusage that ``os.wait4`` returns (the child
    and every descendant it waited for); it is what contention on a shared
    machine changes least, so it is reported beside wall time.
    """
    real_wait4 = os.wait4
    seen: dict = {}

    def wait4(pid: int, options: int):  # type: ignore[no-untyped-def]
        out = real_wait4(pid, options)
        seen["usage"] = out[2]
        return out

    os.wait4 = wait4  # bench_foundation.run_measured calls os.wait4 exactly once per command
    try:
        r = bf.run_measured(argv, cwd, env, log_path, timeout, use_time)
    finally:
        os.wait4 = real_wait4
    u = seen.get("usage")
    r["cpu"] = (u.ru_utime + u.ru_stime) if u is not None else 0.0
    return r


DELETED_AT = ".deleted-at"


def mark_deleted(runs_dir: Path) -> None:
    """Record that work copies were just deleted (their inodes are 'recently deleted' for a while)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    (runs_dir / DELETED_AT).write_text(f"{time.time()}\n")


def await_aged(runs_dir: Path, age: float) -> None:
    """Wait until the last deletion of work copies is ``age`` seconds old (after a sync)."""
    try:
        since = time.time() - float((runs_dir / DELETED_AT).read_text())
    except (OSError, ValueError):
        return
    if age > 0 and since < age:
        log(f"waiting {age - since:.0f} s: work copies deleted {since:.0f} s ago (--age)")
        os.sync()
        time.sleep(age - since)


class Scale:
    """Runs the sequence for one size and every selected tool."""

    def __init__(self, args: argparse.Namespace, files: int, env: dict, tools: dict,
                 use_time: bool, py_spy: str | None) -> None:
        self.args = args
        self.files = files
        self.tier = tier(files)
        self.env = env
        self.tools = dict(tools)
        if self.tools.get("dvc") and files > args.dvc_max_files:
            log(f"dvc: skipped at {files} files (> --dvc-max-files {args.dvc_max_files})")
            self.tools["dvc"] = None
            self.dvc_note = f"dvc not measured above {args.dvc_max_files} files"
        else:
            self.dvc_note = ""
        self.git = shlex.split(args.git)
        self.use_time = use_time
        self.py_spy = py_spy
        self.workdir = Path(args.workdir).resolve()
        self.runs_dir = self.workdir / "runs"
        self.logs_dir = self.workdir / "logs"
        self.prof_dir = Path(args.profile).resolve() if args.profile else None
        self.timeout = args.timeout or None
        self.cases = set(args.cases)
        self.needed = set(self.cases).union(*(NEEDS[c] for c in self.cases))
        self.plan = change_plan(files)
        self.rows: list[Row] = []
        self.dsv_cmds: dict[str, DsvCommand] = {}
        self.profiles: list[dict] = []
        self.load: list[float] = []  # 1-min load average at each phase: other work on the machine
        self.ctx: dict[str, ToolRun] = {}
        self._recipes: dict[str, dict] = {}

    # -- running -------------------------------------------------------------

    def _argv(self, tool: str, argv: list[str], case: str, wt: Path) -> list[str]:
        """Wrap a dsv command in py-spy when profiling."""
        if tool != "dsv" or not self.prof_dir or not self.py_spy:
            return argv
        self.prof_dir.mkdir(parents=True, exist_ok=True)
        n = sum(1 for p in self.profiles if p["case"] == case)
        out = self.prof_dir / f"{self.files}-{case}-{n}.txt"
        self.profiles.append({"case": case, "argv": argv, "raw": str(out)})
        return [self.py_spy, "record", "--idle", "--subprocesses", "-r", str(self.args.profile_rate),
                "-f", "raw", "-o", str(out), "--", *argv]

    def _note_dsv(self, case: str, argv: list[str], r: dict, timed: bool = True) -> None:
        cmd = shlex.join(["dsv", *argv[len(self.tools["dsv"]):]])
        d = self.dsv_cmds.setdefault(cmd, DsvCommand(cmd, case, timed=timed))
        if "seconds" in r:
            d.seconds.append(r["seconds"])
            d.peak_mb.append(r["peak_mb"])
        if self.profiles and self.profiles[-1]["argv"] == argv and "wall" not in self.profiles[-1]:
            self.profiles[-1]["wall"] = r.get("seconds")

    def step(self, tool: str, commands: list[list[str]], ctx: "ToolRun", case: str,
             timed: bool = True) -> bf.Measurement:
        """Run commands as one step (summed wall and CPU time, max peak); dsv runs are noted."""
        m = bf.Measurement(seconds=0.0, peak_mb=0.0)
        cpu = 0.0
        if timed and self.args.settle > 0:
            time.sleep(self.args.settle)  # any tool's background work after its last command is done
        for argv in commands:
            r = run_measured(self._argv(tool, argv, case, ctx.wt), ctx.wt, ctx.env, ctx.logf,
                             self.timeout, self.use_time)
            r["argv"] = argv
            m.runs.append(r)
            is_dsv = tool == "dsv" and argv[:len(self.tools["dsv"] or [])] == self.tools["dsv"]
            if is_dsv:
                self._note_dsv(case, argv, r, timed)
            if "seconds" in r:
                m.seconds += r["seconds"]
                m.peak_mb = max(m.peak_mb, r["peak_mb"])
                cpu += r["cpu"]
            if not r["ok"]:
                m.ok = False
                m.error = f"`{shlex.join(argv)}`: {r['error']} (log: {ctx.logf})"
                log(f"FAILED {m.error}")
                break
        m.cpu = cpu  # type: ignore[attr-defined]
        return m

    def rounds(self, case: str, key: str, warmup: bool = True, between: str | None = None) -> None:
        """Warm-up, then ``--runs`` rounds of ``key``'s commands, tool after tool in each round.

        Interleaving the tools spreads any other load on the machine over all of
        them alike. ``between`` names untimed commands run after each timed run
        (checkout's return to v2). Records the median wall time per tool.
        """
        tools = [t for t, c in self.ctx.items() if c.alive and self.recipe(t, key)]
        results: dict[str, list[bf.Measurement]] = {t: [] for t in tools}
        if warmup:
            for t in tools:
                w = self.step(t, self.recipe(t, key), self.ctx[t], case + ":warmup", timed=False)
                if not w.ok:
                    results[t].append(w)
        for _i in range(self.args.runs):
            for t in tools:
                if results[t] and not results[t][-1].ok:
                    continue
                s = self.step(t, self.recipe(t, key), self.ctx[t], case)
                results[t].append(s)
                if s.ok and between:
                    b = self.step(t, self.recipe(t, between), self.ctx[t], case + ":return", timed=False)
                    if not b.ok:
                        results[t].append(b)
        for t, runs in results.items():
            ok = all(s.ok for s in runs)
            m = bf.Measurement(
                seconds=statistics.median(s.seconds for s in runs),
                peak_mb=max(s.peak_mb for s in runs),
                ok=ok,
                error=next((s.error for s in runs if not s.ok), None),
                runs=[r for s in runs for r in s.runs],
            )
            m.cpu = statistics.median(getattr(s, "cpu", 0.0) for s in runs)  # type: ignore[attr-defined]
            self.add(case, t, m)
            log(f"[{self.files}] {t}: {case} median {m.seconds:.3f} s (cpu {m.cpu:.3f} s), {m.peak_mb:.0f} MB")

    def add(self, case: str, tool: str, m: bf.Measurement | None, note: str = "", value: float | None = None) -> None:
        """Record a row if its case was selected."""
        if case not in self.cases and case not in ("metadata", "peak_mem"):
            return
        if m is None:
            self.rows.append(Row(case, tool, None, None, ok=False, note=note, value=value))
        else:
            self.rows.append(Row(case, tool, m.seconds, m.peak_mb, ok=m.ok, note=note or (m.error or ""),
                                 value=value, runs=m.runs, cpu=getattr(m, "cpu", None)))

    # -- per-tool command recipes ------------------------------------------

    def recipes(self, tool: str) -> dict[str, list[list[str]]]:
        """Commands of every step for ``tool``."""
        git = self.git
        if tool == "git":
            return {
                "setup": [git + ["init", "-q"]],
                "commit1": [git + ["add", "-A"], git + ["commit", "-q", "-m", "v1"]],
                "tag1": [],
                "status": [git + ["status", "--porcelain"]],
                "commit2": [git + ["add", "-A"], git + ["commit", "-q", "-m", "v2"]],
                "tag2": [],
                "diff": [git + ["diff", "--stat", "HEAD~1", "HEAD"]],
                "log": [git + ["log"]],
                "checkout": [git + ["checkout", "-q", "HEAD~1"]],
                "return": [git + ["checkout", "-q", "main"]],
            }
        if tool == "dvc":
            dvc = self.tools["dvc"]
            return {
                "setup": [git + ["init", "-q"], dvc + ["init", "-q"],
                          dvc + ["config", "core.analytics", "false"],
                          dvc + ["config", "core.check_update", "false"]],
                "commit1": [dvc + ["add", "train"], git + ["add", "train.dvc", ".gitignore"],
                            git + ["commit", "-q", "-m", "v1"]],
                "tag1": [],
                "status": [dvc + ["status"]],
                "commit2": [dvc + ["add", "train"], git + ["add", "train.dvc"],
                            git + ["commit", "-q", "-m", "v2"]],
                "tag2": [],
                "diff": [dvc + ["diff", "HEAD~1", "HEAD"]],
                "log": [],
                "checkout": [git + ["checkout", "-q", "HEAD~1"], dvc + ["checkout"]],
                "return": [git + ["checkout", "-q", "main"], dvc + ["checkout"]],
            }
        dsv = self.tools["dsv"]
        return {
            "setup": [dsv + ["init"]] + ([dsv + ["fsmonitor", "on"]] if self.args.fsmonitor else [])
            + ([dsv + ["server", "on"]] if self.args.server else []),
            "commit1": [dsv + ["commit", "-m", "v1"]],
            "tag1": [dsv + ["tag", "v1"]],
            "status": [dsv + ["status"]],
            "commit2": [dsv + ["commit", "-m", "v2"]],
            "tag2": [dsv + ["tag", "v2"]],
            "diff": [dsv + ["diff", "v1", "v2"]],
            "log": [dsv + ["log"]],
            "checkout": [dsv + ["checkout", "v1"]],
            "return": [dsv + ["checkout", "main"]],
        }

    def recipe(self, tool: str, key: str) -> list[list[str]]:
        """One step's commands for ``tool`` (cached recipes)."""
        if tool not in self._recipes:
            self._recipes[tool] = self.recipes(tool)
        return self._recipes[tool][key]

    def env_for(self, run_dir: Path) -> dict:
        """The child environment with a DVC site cache private to ``run_dir``."""
        env = dict(self.env)
        env["DVC_SITE_CACHE_DIR"] = str(run_dir / "dvc-site-cache")
        return env

    # -- the sequence ----------------------------------------------------------

    def fail(self, tool: str, why: str) -> None:
        """Mark ``tool`` dead and record every selected case it has no row for yet."""
        self.ctx[tool].alive = False
        for c in CASES:
            if c in self.cases and not self.find(c, tool):
                self.add(c, tool, None, why)

    def prepare(self, tool: str, train_src: Path) -> None:
        """Fresh copy, untimed set-up, then the timed first commit (v1)."""
        run_dir = self.runs_dir / f"{self.files}-{tool}"
        shutil.rmtree(run_dir, ignore_errors=True)
        log(f"[{self.files}] {tool}: copying the tree")
        bf.fresh_copy(train_src, run_dir / "wt")
        logf = self.logs_dir / f"{self.files}-{tool}.log"
        logf.unlink(missing_ok=True)
        ctx = self.ctx[tool] = ToolRun(run_dir, run_dir / "wt", self.env_for(run_dir), logf)
        err = bf.run_setup(self.recipe(tool, "setup"), ctx.wt, ctx.env, logf)
        if err:
            return self.fail(tool, f"setup failed: {err}")
        log(f"[{self.files}] {tool}: first commit")
        m = self.step(tool, self.recipe(tool, "commit1"), ctx, "first_commit")
        self.add("first_commit", tool, m)
        log(f"[{self.files}] {tool}: first commit {m.seconds:.2f} s, {m.peak_mb:.0f} MB")
        if m.ok and self.recipe(tool, "tag1"):
            m = self.step(tool, self.recipe(tool, "tag1"), ctx, "tag", timed=False)
        if not m.ok:
            self.fail(tool, "not run: first commit failed")

    def second_commit(self, tool: str) -> None:
        """Apply the change (untimed), then the timed second commit (v2) and dsv's metadata growth."""
        ctx = self.ctx[tool]
        apply_change(ctx.wt, self.plan, self.files)
        before = tree_bytes(ctx.wt / ".dsv" / "objects") if tool == "dsv" else 0
        log(f"[{self.files}] {tool}: second commit ({self.plan.describe()})")
        m = self.step(tool, self.recipe(tool, "commit2"), ctx, "commit2")
        self.add("commit2", tool, m)
        log(f"[{self.files}] {tool}: second commit {m.seconds:.2f} s, {m.peak_mb:.0f} MB")
        if tool == "dsv" and m.ok:
            grown = tree_bytes(ctx.wt / ".dsv" / "objects") - before
            meta = grown - self.plan.content_bytes
            self.add("metadata", tool, None, value=meta,
                     note=f".dsv/objects grew {grown} B, of which {self.plan.content_bytes} B file content")
            self.rows[-1].ok = True
            log(f"[{self.files}] dsv: new metadata {meta} B")
        if m.ok and self.recipe(tool, "tag2"):
            m = self.step(tool, self.recipe(tool, "tag2"), ctx, "tag", timed=False)
        if not m.ok:
            self.fail(tool, "not run: second commit failed")

    def quiesce(self) -> None:
        """Write back what set-up dirtied and wait, so the timed rounds do not pay for the harness's own deletions."""
        if self.args.quiesce > 0:
            os.sync()
            time.sleep(self.args.quiesce)

    def cleanup(self, run_dir: Path) -> None:
        """Stop dsv's monitor daemon; remove a work copy unless --keep."""
        if self.args.fsmonitor and (run_dir / "wt" / ".dsv").is_dir():
            subprocess.run(self.tools["dsv"] + ["fsmonitor", "off"], cwd=run_dir / "wt", capture_output=True, env=self.env)
        if self.args.server and (run_dir / "wt" / ".dsv").is_dir():
            subprocess.run(self.tools["dsv"] + ["server", "off"], cwd=run_dir / "wt", capture_output=True, env=self.env)
        if not self.args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
            mark_deleted(self.runs_dir)

    def alive(self) -> list[str]:
        """Tools still running the sequence."""
        return [t for t, c in self.ctx.items() if c.alive]

    def run(self) -> None:
        """Generate (or reuse) the data, then run the sequence, tools interleaved case by case.

        Commits run tool after tool (each is one long step); the repeated
        read-only cases and checkout run in rounds that take every tool in turn.
        """
        train = generate_tree(self.workdir / "data" / f"scale-{self.files}", self.files)
        self.load.append(os.getloadavg()[0])
        for tool in ("git", "dvc", "dsv"):
            if self.tools.get(tool) and (self.runs_dir / f"{self.files}-{tool}").exists():
                shutil.rmtree(self.runs_dir / f"{self.files}-{tool}", ignore_errors=True)
                mark_deleted(self.runs_dir)
        await_aged(self.runs_dir, self.args.age)
        for tool in ("git", "dvc", "dsv"):
            if self.tools.get(tool):
                self.prepare(tool, train)
        self.load.append(os.getloadavg()[0])
        self.quiesce()
        if "status" in self.needed:
            self.rounds("status", "status")
        if self.needed & {"commit2", "diff", "log", "checkout"}:
            for tool in self.alive():
                self.second_commit(tool)
            self.load.append(os.getloadavg()[0])
            self.quiesce()
            for case in ("diff", "log"):
                if case in self.cases:
                    self.rounds(case, case)
            if "checkout" in self.cases:
                self.rounds("checkout", "checkout", warmup=False, between="return")
        self.load.append(os.getloadavg()[0])
        for c in self.ctx.values():
            self.cleanup(c.run_dir)
        dsv_rows = [d for d in self.dsv_cmds.values() if d.peak_mb]
        if self.tools.get("dsv") and dsv_rows:
            peak = max(max(d.peak_mb) for d in dsv_rows)
            worst = max(dsv_rows, key=lambda d: max(d.peak_mb))
            self.add("peak_mem", "dsv", bf.Measurement(seconds=None, peak_mb=peak),
                     note=f"largest: `{worst.command}`")
        self.score()
        if self.prof_dir:
            self.summarise_profiles()

    def summarise_profiles(self) -> None:
        """One summary per timed case, over its timed runs (not warm-ups or returns)."""
        by_case: dict[str, list[dict]] = {}
        for p in self.profiles:
            if ":" not in p["case"] and p["case"] != "tag" and Path(p["raw"]).exists() and p.get("wall"):
                by_case.setdefault(p["case"], []).append(p)
        for case, runs in by_case.items():
            text = summarise_profile([Path(p["raw"]) for p in runs], sum(p["wall"] for p in runs),
                                     self.args.profile_rate)
            out = self.prof_dir / f"{self.files}-{case}.summary.txt"
            out.write_text(f"$ {shlex.join(runs[0]['argv'])}\n{text}")
            for p in runs:
                p["summary"] = str(out)

    # -- scoring and reporting ----------------------------------------------

    def find(self, case: str, tool: str) -> Row | None:
        """The row of ``tool`` in ``case``."""
        return next((r for r in self.rows if r.case == case and r.tool == tool), None)

    def score(self) -> None:
        """Ratios to git (and dvc), targets and pass/fail."""
        targets = TARGETS[self.tier]
        for case in ROW_ORDER:
            dsv = self.find(case, "dsv")
            for peer in ("git", "dvc"):
                row = self.find(case, peer)
                if not (row and dsv and row.ok and dsv.ok and row.seconds and dsv.seconds):
                    continue
                cpu = ""
                if row.cpu and dsv.cpu:
                    c = dsv.cpu / row.cpu if peer == "git" else row.cpu / dsv.cpu
                    cpu = f" (cpu {c:.3g}x)"
                if peer == "git":
                    row.ratio = dsv.seconds / row.seconds
                    row.ratio_text = f"dsv/git = {row.ratio:.3g}x{cpu}"
                else:
                    row.ratio = row.seconds / dsv.seconds
                    row.ratio_text = f"dvc/dsv = {row.ratio:.3g}x{cpu}"
            kind, limit = targets.get(case, (None, None))
            if kind == "ratio":
                row = self.find(case, "git")
                if row:
                    row.target = f"dsv <= {limit:g}x git"
                    if row.ratio is not None:
                        row.passed = row.ratio <= limit
            elif kind == "seconds" and dsv:
                dsv.target = f"<= {limit:g} s" if case == "diff" and limit < 1 else f"< {limit:g} s"
                if dsv.ok and dsv.seconds is not None:
                    dsv.passed = dsv.seconds <= limit if limit < 1 else dsv.seconds < limit
            elif kind == "bytes" and dsv:
                dsv.target = f"< {limit / 1e6:g} MB"
                if dsv.value is not None:
                    dsv.passed = dsv.value < limit
            elif kind == "mb" and dsv:
                dsv.target = f"< {limit / 1024:g} GiB"
                if dsv.peak_mb is not None:
                    dsv.passed = dsv.peak_mb < limit
        meta = self.find("metadata", "dsv")
        if meta and meta.value is not None:
            meta.ratio_text = f"{meta.value / 1e3:,.1f} KB new metadata"

    def title(self, case: str, tool: str) -> str:
        """Row title: the case and, for peers, their command."""
        n = self.args.runs
        t = {
            "first_commit": f"first commit (v1), {self.files:,} files",
            "status": f"no-op status (median of {n} after warm-up)",
            "commit2": f"second commit (v2: {self.plan.describe()})",
            "metadata": "new metadata of the second commit",
            "diff": f"diff v1 v2, file level (median of {n})",
            "log": f"log of the two versions (median of {n})",
            "checkout": f"checkout v1 from v2 (median of {n})",
            "peak_mem": "peak memory, every dsv command (max)",
        }[case]
        return t

    def dsv_setup_note(self) -> str:
        """How dsv was set up beyond ``init`` (the opt-in daemons), for the section title."""
        on = [f"`dsv {name} on`" for name, flag in (("fsmonitor", self.args.fsmonitor), ("server", self.args.server)) if flag]
        return f" (dsv with {' and '.join(on)})" if on else ""

    def report(self) -> str:
        """Markdown: the table and the dsv per-command peak memory table."""
        layout = ("train/class_<k>/part_<pp>/<id>.bin (1,000 folders)" if self.files > DEEP_ABOVE
                  else "train/class_<k>/<id>.bin (10 folders)")
        lines = [
            f"### {self.files:,} files" + self.dsv_setup_note(),
            "",
            f"Layout `{layout}`; change v1 -> v2: {self.plan.describe()}; "
            f"targets: issue 9, {'1,000,000' if self.tier == 'large' else '20,000/100,000'}-file list.",
            "",
            "| case | tool | seconds | cpu s | peak MB | ratio | target | pass |",
            "| --- | --- | ---: | ---: | ---: | --- | --- | --- |",
        ]
        for r in sorted(self.rows, key=lambda r: (ROW_ORDER.index(r.case), TOOL_ORDER.index(r.tool))):
            secs = f"{r.seconds:.3f}" if r.seconds is not None else "-"
            cpu = f"{r.cpu:.3f}" if r.cpu is not None and r.seconds is not None else "-"
            peak = f"{r.peak_mb:.0f}" if r.peak_mb is not None else "-"
            if not r.ok:
                secs = f"{secs} (failed)" if r.seconds is not None else "failed"
            verdict = {True: "PASS", False: "FAIL", None: "-" if not r.target else "n/a"}[r.passed]
            lines.append(f"| {self.title(r.case, r.tool)} | {r.tool} | {secs} | {cpu} | {peak} | "
                         f"{r.ratio_text or '-'} | {r.target or '-'} | {verdict} |")
        if self.dsv_cmds:
            limit = "< 1024" if self.tier == "large" else "-"
            lines += ["", "Every dsv command (warm-up and untimed runs included):", "",
                      "| dsv command | runs | median s | peak MB (max) | target MB |",
                      "| --- | ---: | ---: | ---: | --- |"]
            for d in self.dsv_cmds.values():
                if not d.seconds:
                    continue
                lines.append(f"| `{d.command}` | {len(d.seconds)} | {statistics.median(d.seconds):.3f} | "
                             f"{max(d.peak_mb):.0f} | {limit} |")
        notes = [f"- {r.case}/{r.tool}: {r.note}" for r in self.rows if r.note]
        if self.dvc_note:
            notes.append(f"- {self.dvc_note}")
        if self.load:
            notes.append("- 1-minute load average at start, after the first commits, after the second "
                         "commits and at the end (2 CPUs; ~1-2 is the benchmark itself, more means other "
                         "work shared the machine): " + ", ".join(f"{x:.2f}" for x in self.load))
        if self.prof_dir:
            notes.append(f"- PROFILED run (dsv under py-spy at {self.args.profile_rate} Hz): "
                         "dsv timings include the profiler")
        if notes:
            lines += ["", "Notes:", ""] + notes
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict:
        """Every figure of this size."""
        return {
            "files": self.files,
            "tier": self.tier,
            "change": asdict(self.plan) | {"describe": self.plan.describe()},
            "rows": [asdict(r) for r in self.rows],
            "dsv_commands": [asdict(d) for d in self.dsv_cmds.values()],
            "profiles": self.profiles,
            "loadavg": self.load,
        }


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def child_env() -> dict:
    """The environment of every child: isolated git, quiet dvc (as bench_foundation)."""
    env = dict(os.environ)
    env.update({
        "GIT_AUTHOR_NAME": "dsv bench",
        "GIT_AUTHOR_EMAIL": "bench@dsv.invalid",
        "GIT_COMMITTER_NAME": "dsv bench",
        "GIT_COMMITTER_EMAIL": "bench@dsv.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_COUNT": "3",
        "GIT_CONFIG_KEY_0": "gc.auto",
        "GIT_CONFIG_VALUE_0": "0",
        "GIT_CONFIG_KEY_1": "maintenance.auto",
        "GIT_CONFIG_VALUE_1": "false",
        "GIT_CONFIG_KEY_2": "init.defaultBranch",
        "GIT_CONFIG_VALUE_2": "main",
        "DVC_NO_ANALYTICS": "1",
        "DSV_AUTHOR_NAME": "dsv bench",
        "DSV_AUTHOR_EMAIL": "bench@dsv.invalid",
    })
    return env


def dsv_source(dsv_cmd: list[str], env: dict) -> str:
    """Where the measured dsv's package lives and, if in git, its commit."""
    exe = shutil.which(dsv_cmd[0]) if dsv_cmd else None
    if not exe:
        return "unknown"
    try:
        first = Path(exe).read_bytes()[:400].split(b"\n", 1)[0].decode()
        py = first[2:].strip() if first.startswith("#!") else sys.executable
        out = subprocess.run(shlex.split(py) + ["-c", "import dsv, os; print(os.path.dirname(dsv.__file__))"],
                             capture_output=True, text=True, env=env, timeout=60)
        pkg = out.stdout.strip()
        if not pkg:
            return "unknown"
        rev = subprocess.run(["git", "-C", pkg, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", pkg, "status", "--porcelain", "--", "."], capture_output=True, text=True)
        commit = rev.stdout.strip()
        if commit and dirty.stdout.strip():
            commit += " (modified)"
        return f"{pkg} at {commit}" if commit else pkg
    except (OSError, UnicodeDecodeError, subprocess.TimeoutExpired):
        return "unknown"


def parse_files(values: list[str]) -> list[int]:
    """``20000,100000`` / ``1M`` / ``100k``, repeatable."""
    out = []
    for v in values:
        for part in v.split(","):
            part = part.strip().lower().replace("_", "")
            if not part:
                continue
            mult = {"k": 1_000, "m": 1_000_000}.get(part[-1], 1)
            n = int(float(part[:-1]) * mult) if mult > 1 else int(part)
            if n < 100:
                raise argparse.ArgumentTypeError(f"--files {part}: at least 100 files")
            out.append(n)
    return out


def default_dsv() -> str:
    """The dsv next to this interpreter (a venv's), else ``dsv`` on PATH."""
    here = Path(sys.executable).parent / "dsv"
    return str(here) if here.exists() else "dsv"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        description="Issue-9 scale benchmark: dsv against git (and DVC) at 20k..1M files.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--files", action="append", metavar="N[,N...]",
                   help="tree size(s); repeatable or a comma list; k/M suffixes accepted "
                        "(default: 20000,100000)")
    p.add_argument("--dsv", default=default_dsv(), help="dsv executable to measure (may include arguments)")
    p.add_argument("--git", default="git", help="git command")
    p.add_argument("--dvc", default=bf.default_dvc(), help="dvc command")
    p.add_argument("--skip-dvc", action="store_true", help="do not measure DVC")
    p.add_argument("--skip-git", action="store_true", help="do not measure git (no ratios)")
    p.add_argument("--dvc-max-files", type=int, default=100_000,
                   help="never run DVC on trees larger than this")
    p.add_argument("--workdir", default="/tmp/dsv-scale",
                   help="where data and work copies live (data is reused between runs)")
    p.add_argument("--cases", default=",".join(CASES),
                   help=f"comma list of cases: {', '.join(CASES)}")
    p.add_argument("--runs", type=int, default=RUNS, help="timed runs of status/diff/log/checkout (median)")
    p.add_argument("--rss", choices=["auto", "time", "wait4"], default="auto",
                   help="peak-RSS method (see bench_foundation.py)")
    p.add_argument("--timeout", type=float, default=3600.0, help="kill a command after this many seconds (0: never)")
    p.add_argument("--profile", metavar="DIR", help="run dsv commands under py-spy; raw stacks + summaries into DIR")
    p.add_argument("--profile-rate", type=int, default=500, help="py-spy samples per second")
    p.add_argument("--json", metavar="OUT", help="also write all figures as JSON to OUT")
    p.add_argument("--keep", action="store_true", help="keep the work copies under WORKDIR/runs")
    p.add_argument("--server", action="store_true",
                   help="run dsv with its command server on (dsv server on after init; git stays plain)")
    p.add_argument("--fsmonitor", action="store_true",
                   help="run dsv with its file-system monitor on (dsv fsmonitor on after init; git stays plain)")
    p.add_argument("--settle", type=float, default=None, metavar="S",
                   help="pause this long before every timed step of every tool, so that no tool's background work "
                        "(the command server prepares its next process 0.5 s after a command; the fsmonitor "
                        "coalesces events) overlaps another's timed command (default: 1.0 with --server, else 0)")
    p.add_argument("--age", type=float, default=400.0, metavar="S",
                   help="build work copies only once those an earlier run deleted are this old (sync, then wait the "
                        "rest; see above)")
    p.add_argument("--quiesce", type=float, default=6.0, metavar="S",
                   help="sync, then pause this long before the rounds of timed cases (after set-up and after the "
                        "second commits), so that no tool pays for the harness's own mass deletions (see above)")
    args = p.parse_args(argv)
    if args.settle is None:
        args.settle = 1.0 if args.server else 0.0
    try:
        args.files = parse_files(args.files or ["20000,100000"])
    except (ValueError, argparse.ArgumentTypeError) as exc:
        p.error(str(exc))
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in args.cases if c not in CASES]
    if bad or not args.cases:
        p.error(f"unknown case(s) {bad}; choose from {', '.join(CASES)}")
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every size, print the report and optionally write JSON."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchenv import compile_dsv

    compile_dsv()  # see scripts/benchenv.py
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name] + sys.argv)
    workdir = Path(args.workdir).resolve()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    (workdir / "runs").mkdir(parents=True, exist_ok=True)
    env = child_env()
    use_time = args.rss == "time" or (args.rss == "auto" and bf.gnu_time_available())
    tools: dict[str, list[str] | None] = {
        "git": None if args.skip_git else shlex.split(args.git),
        "dvc": None if args.skip_dvc else shlex.split(args.dvc),
        "dsv": shlex.split(args.dsv),
    }
    for name, cmd in tools.items():
        if cmd is not None and not bf.tool_available(cmd):
            log(f"{name}: `{shlex.join(cmd)}` not found; skipping its rows")
            tools[name] = None
    if tools["dvc"] and not bf.tool_available(shlex.split(args.git)):
        tools["dvc"] = None
    py_spy = find_py_spy(tools["dsv"] or []) if args.profile else None
    if args.profile and not py_spy:
        log("--profile: py-spy not found (pip install py-spy); measuring without it")
    facts = bf.machine_facts(workdir, env, tools, use_time)
    facts["dsv_source"] = dsv_source(tools["dsv"] or [], env)
    need = max(args.files) * FILE_SIZE * 4
    free = shutil.disk_usage(workdir).free
    if free < need:
        log(f"warning: {free / bf.GIB:.1f} GiB free in {workdir}, about {need / bf.GIB:.1f} GiB needed")
    sizes = []
    for n in args.files:
        s = Scale(args, n, env, tools, use_time, py_spy)
        s.run()
        sizes.append(s)
        if not args.keep:
            shutil.rmtree(workdir / "runs", ignore_errors=True)
            (workdir / "runs").mkdir(parents=True, exist_ok=True)
            mark_deleted(workdir / "runs")
    out = [
        "## dsv scale benchmark (issue 9)",
        "",
        f"Command: `{command}`",
        "",
        f"- machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['ram_gib']} GiB RAM, Linux {facts['kernel']}",
        f"- python {facts['python']}; {facts['git_version']}; dvc {facts['dvc_version']}; "
        f"dsv {facts['dsv_version']} ({facts['dsv_source']})",
        f"- workdir {workdir}: {facts['filesystem']}",
        f"- peak MB = max RSS in MiB of the measured process tree via {facts['rss_method']} "
        f"(floor, `true`: {facts['rss_floor_mb']} MB); warm page cache; each tool on its own `cp -a` copy; "
        "multi-command steps are summed; cpu s = user + system time of the process tree "
        "(dsv's forked helper included), the figure least changed by other load; tools interleaved "
        "run by run in status/diff/log/checkout"
        + (f"; a {args.settle:g} s pause before every timed step of every tool (`--settle`)" if args.settle else "")
        + (f"; `sync` and a {args.quiesce:g} s pause before the rounds of timed cases (`--quiesce`)" if args.quiesce else "")
        + (f"; work copies built only once those deleted before are {args.age:g} s old (`--age`)" if args.age else ""),
        "",
    ]
    if args.server:
        out[-1:] = ["- with `--server` each dsv command runs in a process forked by the command server: "
                    "seconds are the whole command as the user waits for it, but cpu s and peak MB count only the "
                    "client process (the forked process is not its child); take memory figures from a run "
                    "without `--server`", ""]
    for s in sizes:
        out.append(s.report())
    print("\n".join(out), end="")
    if args.json:
        payload = {"command": command, "params": {k: v for k, v in vars(args).items() if k != "json"},
                   "machine": facts, "sizes": [s.to_json() for s in sizes]}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
        log(f"wrote {args.json}")
    ok = all(r.passed is not False and r.ok for s in sizes for r in s.rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
