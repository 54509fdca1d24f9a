#!/usr/bin/env python3
"""Foundation benchmark: dsv side by side with git and DVC, in one run.

The benchmark generates a synthetic data set, gives every tool its own fresh
copy of it (``cp -a``; never hardlinks, since tools may write into the work
tree), flushes it to disk, warms the page cache by reading the copy once,
and then times the tool's commands. Every measured command runs as a fresh
child process so that its peak resident set size (``ru_maxrss`` from
``os.wait4``) belongs to that command and the processes it waited for, and
nothing else.

Data (generated under ``--workdir``, reused while the parameters match):

* ``data/small/train/class_<k>/<id>.bin``: ``--files`` files of 4 KiB of
  random bytes spread over 10 classes;
* ``data/big/big.bin``: one ``--big-gib`` GiB file of random bytes;
* ``data/mem/mem.bin``: one ``--mem-gib`` GiB file of random bytes.

Cases (``ratio`` is always dsv relative to the peer named in the target):

a. *first commit* of the small-file tree.
   git: ``git init -q`` (untimed), then ``git add -A`` + ``git commit -q -m x``;
   dvc: ``git init -q && dvc init -q`` (untimed), then ``dvc add train`` +
   ``git add train.dvc .gitignore`` + ``git commit -q -m x``;
   dsv: ``dsv init`` (untimed), then ``dsv commit -m x``.
   Targets: dsv <= 0.3x git, and dvc/dsv >= 10.
b. *status* with nothing changed, right after (a), 3 runs each, median time:
   ``git status --porcelain``, ``dvc status``, ``dsv status``.
   Targets: dsv <= 3x git, and dvc/dsv >= 10.
c. *big file*: ``cp`` of the file to a new name on the same file system (the
   reference), git add + commit, ``dvc add``, ``dsv commit``.
   Target: dsv <= 1.5x cp.
d. *peak memory* of dsv: the commit of the small-file tree (taken from (a))
   and ``dsv commit`` of the ``--mem-gib`` file.
   Targets: < 500 MB and < 512 MB.

A multi-command step (e.g. git add + commit) is timed as the sum of its
commands and its peak memory is the largest of theirs. "MB" in the report is
MiB (``ru_maxrss`` KiB / 1024). Linux charges a child with the peak RSS of the
image it was forked from, so a child forked straight from this (Python)
harness can never show less than the harness's own peak. Where GNU time is
installed (``/usr/bin/time``), each command is therefore started under
``/usr/bin/time -f %M``, which forks it from a tiny process and reports the
child tree's ``ru_maxrss`` (the ~1 ms this adds is inside every tool's
timing alike); otherwise the harness's own ``os.wait4`` figure is used. The
report states the method and the floor it measures for ``true``.

Virtual machines with free-page reporting (virtio-balloon) hand memory that
has been free for a few seconds back to the host, and the guest pays again to
touch it: on the reference VM a warm ``cp`` of 2 GiB takes ~6 s instead of
~0.6 s. That cost is real for anyone on such a VM and hits every tool, so it
is left in by default; ``--prefault`` touches (then frees) twice as much
memory as the step commits, in a child process, just before each timed
commit, to get figures closer to bare metal. The report says which was used.

Git is run with no system or global config, with automatic gc/maintenance
disabled (so no background gc disturbs the next measurement; this only ever
makes git faster, i.e. the targets stricter). DVC runs with analytics and the
update check off and with a site cache directory private to its work copy.

Progress goes to stderr; the report (Markdown, ready for docs/benchmarks.md)
goes to stdout, and ``--json OUT`` writes every figure as JSON. Each
command's output is kept in ``WORKDIR/logs/``. The exit status is 1 if a
measured command failed or a target was missed, else 0 (rows of a skipped or
missing tool count as neither).

Examples::

    scripts/setup_bench.sh                       # installs dvc into a venv
    python3 scripts/bench_foundation.py          # full size, all tools
    python3 scripts/bench_foundation.py --files 2000 --big-gib 0.05 \\
        --mem-gib 0.05 --json /tmp/bench.json    # quick smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

FILE_SIZE = 4096
CLASSES = 10
CHUNK = 1024 * 1024  # generation / read-back granularity; keeps our RSS small
GIB = 1024**3
DATA_FORMAT = 1  # bump when the generated layout changes, to force regeneration
MARKER = ".dsv-bench-params.json"
STATUS_RUNS = 3

# Targets: (kind, threshold). "max_ratio": dsv/peer <= threshold;
# "min_speedup": peer/dsv >= threshold; "max_mb": dsv peak MB < threshold.
TARGETS = {
    ("first_commit", "git"): ("max_ratio", 0.3),
    ("first_commit", "dvc"): ("min_speedup", 10.0),
    ("status", "git"): ("max_ratio", 3.0),
    ("status", "dvc"): ("min_speedup", 10.0),
    ("big_file", "cp"): ("max_ratio", 1.5),
    ("peak_mem_tree", "dsv"): ("max_mb", 500.0),
    ("peak_mem_file", "dsv"): ("max_mb", 512.0),
}

CASE_ORDER = ["first_commit", "status", "big_file", "peak_mem_tree", "peak_mem_file"]
TOOL_ORDER = ["dsv", "cp", "git", "dvc"]
CASE_TITLES = {
    "first_commit": "a. first commit, {files} x 4 KiB",
    "status": "b. status, unchanged (median of 3)",
    "big_file": "c. commit one {big_gib:g} GiB file",
    "peak_mem_tree": "d. peak memory, commit {files} files",
    "peak_mem_file": "d. peak memory, commit {mem_gib:g} GiB file",
}


def log(message: str) -> None:
    """Print a progress line to stderr (the report itself goes to stdout)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass
class Measurement:
    """The outcome of running one or more commands as a single timed step."""

    seconds: float | None = None
    peak_mb: float | None = None
    ok: bool = True
    error: str | None = None
    runs: list[dict] = field(default_factory=list)


@dataclass
class Row:
    """One line of the report: a tool's figures for one case."""

    case: str
    tool: str
    seconds: float | None
    peak_mb: float | None
    ok: bool = True
    note: str = ""
    ratio: float | None = None
    ratio_text: str = ""
    target: str = ""
    passed: bool | None = None
    runs: list[dict] = field(default_factory=list)


# --------------------------------------------------------------------------
# Running and measuring commands
# --------------------------------------------------------------------------


GNU_TIME = "/usr/bin/time"


def gnu_time_available() -> bool:
    """Return whether /usr/bin/time is GNU time (needed for ``-f %M -o``)."""
    try:
        out = subprocess.run([GNU_TIME, "--version"], capture_output=True, text=True)
    except OSError:
        return False
    return "GNU" in (out.stdout + out.stderr)


def read_gnu_time(path: Path) -> float | None:
    """Return the %M figure (KiB) that GNU time wrote to ``path``, in MiB."""
    try:
        lines = path.read_text().split()
    except OSError:
        return None
    numbers = [w for w in lines if w.isdigit()]
    return int(numbers[-1]) / 1024.0 if numbers else None


def run_measured(
    argv: list[str],
    cwd: Path,
    env: dict,
    log_path: Path,
    timeout: float | None,
    use_time: bool = False,
) -> dict:
    """Run ``argv`` as a fresh child and return its wall time and peak RSS.

    The child gets its own session so that a timeout can kill its whole
    process group. Its exit status and rusage come from ``os.wait4`` on its
    pid, so ``ru_maxrss`` covers the child and every descendant it waited for.
    With ``use_time`` the child is GNU time running ``argv``, and the peak is
    the one GNU time reports for ``argv`` (see the module docstring).
    Output is appended to ``log_path``.
    """
    rss_file = log_path.with_suffix(".rss")
    launch = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *argv] if use_time else argv
    with open(log_path, "ab") as out:
        out.write(f"$ {shlex.join(argv)}   (cwd={cwd})\n".encode())
        out.flush()
        timed_out = threading.Event()
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                launch,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            return {"argv": argv, "ok": False, "error": f"cannot start: {exc}"}

        def kill_group() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill_group) if timeout else None
        if timer:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer:
                timer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    peak_mb = usage.ru_maxrss / 1024.0
    if use_time:
        peak_mb = read_gnu_time(rss_file)
        rss_file.unlink(missing_ok=True)
        if peak_mb is None:  # GNU time itself failed: fall back, floor included
            peak_mb = usage.ru_maxrss / 1024.0
    result = {
        "argv": argv,
        "seconds": seconds,
        "peak_mb": peak_mb,
        "returncode": proc.returncode,
        "ok": proc.returncode == 0 and not timed_out.is_set(),
    }
    if timed_out.is_set():
        result["error"] = f"timed out after {timeout:g} s"
    elif proc.returncode != 0:
        result["error"] = f"exit status {proc.returncode}"
    return result


def run_step(
    commands: list[list[str]],
    cwd: Path,
    env: dict,
    log_path: Path,
    timeout: float | None,
    use_time: bool = False,
) -> Measurement:
    """Run commands one after another as one step: summed time, max peak RSS.

    Stops at the first failing command and records why.
    """
    m = Measurement(seconds=0.0, peak_mb=0.0)
    for argv in commands:
        r = run_measured(argv, cwd, env, log_path, timeout, use_time)
        m.runs.append(r)
        if "seconds" in r:
            m.seconds += r["seconds"]
            m.peak_mb = max(m.peak_mb, r["peak_mb"])
        if not r["ok"]:
            m.ok = False
            m.error = f"`{shlex.join(argv)}`: {r['error']} (log: {log_path})"
            log(f"FAILED {m.error}")
            break
    return m


def prefault(nbytes: int) -> None:
    """Touch, then free, ``nbytes`` of memory in a child process.

    Capped at half of MemAvailable. Used by ``--prefault`` (see the module
    docstring); a child is used so the harness's own peak RSS stays small.
    """
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f
                         if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return
    n = min(nbytes, avail // 2)
    if n > 0:
        subprocess.run([sys.executable, "-c", f"bytearray({n})"], check=False)


def run_setup(commands: list[list[str]], cwd: Path, env: dict, log_path: Path) -> str | None:
    """Run untimed setup commands; return an error message or None."""
    for argv in commands:
        with open(log_path, "ab") as out:
            out.write(f"$ {shlex.join(argv)}   (cwd={cwd}, untimed)\n".encode())
            out.flush()
            try:
                rc = subprocess.run(
                    argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=subprocess.STDOUT, check=False,
                ).returncode
            except OSError as exc:
                return f"`{shlex.join(argv)}`: cannot start: {exc}"
        if rc != 0:
            return f"`{shlex.join(argv)}`: exit status {rc} (log: {log_path})"
    return None


def tool_available(cmd: list[str]) -> bool:
    """Return whether the first word of ``cmd`` names an executable."""
    return bool(cmd) and shutil.which(cmd[0]) is not None


def tool_version(cmd: list[str], env: dict) -> str:
    """Return the first line of ``cmd --version``, or a note why not."""
    if not tool_available(cmd):
        return "not found"
    try:
        out = subprocess.run(
            cmd + ["--version"], env=env, capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else f"unknown (exit {out.returncode})"


# --------------------------------------------------------------------------
# Data generation and work copies
# --------------------------------------------------------------------------


def dataset_ready(root: Path, params: dict) -> bool:
    """Return whether ``root`` holds a complete data set made with ``params``."""
    try:
        return json.loads((root / MARKER).read_text()) == params
    except (OSError, ValueError):
        return False


def mark_dataset(root: Path, params: dict) -> None:
    """Record that ``root`` is complete; written last, after all the data."""
    (root / MARKER).write_text(json.dumps(params, sort_keys=True))


def generate_small(root: Path, files: int) -> Path:
    """Make ``files`` random 4 KiB files in ``root/train/class_<k>/``.

    One ``os.urandom`` call yields 1024 files' worth of bytes, which is sliced
    into files, so every file is distinct and generation is I/O bound.
    Returns the ``train`` directory; reuses it if the marker matches.
    """
    params = {"format": DATA_FORMAT, "files": files, "classes": CLASSES, "size": FILE_SIZE}
    train = root / "train"
    if dataset_ready(root, params):
        log(f"reusing {files} small files in {train}")
        return train
    shutil.rmtree(root, ignore_errors=True)
    class_dirs = [train / f"class_{k:02d}" for k in range(CLASSES)]
    for d in class_dirs:
        d.mkdir(parents=True)
    log(f"generating {files} x {FILE_SIZE} B files in {train}")
    per_chunk = CHUNK // FILE_SIZE
    start = time.perf_counter()
    for base in range(0, files, per_chunk):
        count = min(per_chunk, files - base)
        view = memoryview(os.urandom(count * FILE_SIZE))
        for j in range(count):
            i = base + j
            with open(class_dirs[i % CLASSES] / f"{i:07d}.bin", "wb") as f:
                f.write(view[j * FILE_SIZE:(j + 1) * FILE_SIZE])
    mark_dataset(root, params)
    log(f"generated small files in {time.perf_counter() - start:.1f} s")
    return train


def generate_big(root: Path, name: str, gib: float) -> Path:
    """Make one file of ``gib`` GiB of random bytes at ``root/name``.

    Written in 4 MiB pieces; reused if the marker matches.
    """
    size = int(gib * GIB)
    params = {"format": DATA_FORMAT, "name": name, "size": size}
    path = root / name
    if dataset_ready(root, params):
        log(f"reusing {path} ({size / GIB:g} GiB)")
        return path
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    log(f"generating {path} ({size / GIB:g} GiB)")
    start = time.perf_counter()
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(CHUNK, left)
            f.write(os.urandom(n))
            left -= n
    mark_dataset(root, params)
    log(f"generated {path.name} in {time.perf_counter() - start:.1f} s")
    return path


def warm_cache(path: Path) -> int:
    """Read every file under ``path`` once so timings start with a warm cache.

    Returns the number of bytes read.
    """
    total = 0
    buf = bytearray(CHUNK)
    paths = [path] if path.is_file() else (
        Path(d) / n for d, _, names in os.walk(path) for n in names
    )
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
    return total


def fresh_copy(src: Path, dest_dir: Path) -> Path:
    """``cp -a`` ``src`` into the new empty directory ``dest_dir``; warm it.

    The copy is flushed to disk (``sync``) so that writeback of it does not
    throttle the timed command, then read once so the page cache is warm.
    Returns the path of the copy.
    """
    shutil.rmtree(dest_dir, ignore_errors=True)
    dest_dir.mkdir(parents=True)
    subprocess.run(["cp", "-a", str(src), str(dest_dir)], check=True)
    os.sync()
    copy = dest_dir / src.name
    warm_cache(copy)
    return copy


# --------------------------------------------------------------------------
# Machine facts
# --------------------------------------------------------------------------


def filesystem_of(path: Path) -> str:
    """Return "fstype (device)" of the mount holding ``path``, via /proc/mounts."""
    real = os.path.realpath(path)
    best = ("", "unknown", "?")
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype = line.split()[:3]
                mnt = mnt.replace("\\040", " ")
                inside = real == mnt or real.startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best[0]):
                    best = (mnt, fstype, dev)
    except OSError:
        pass
    return f"{best[1]} ({best[2]} on {best[0] or '?'})"


def machine_facts(workdir: Path, env: dict, tools: dict, use_time: bool) -> dict:
    """Collect the facts that make the figures comparable between machines."""
    facts = {
        "nproc": len(os.sched_getaffinity(0)),
        "ram_gib": None,
        "cpu": platform.processor() or platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "filesystem": filesystem_of(workdir),
    }
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    facts["ram_gib"] = round(int(line.split()[1]) / 1024**2, 1)
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    facts["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for name, cmd in tools.items():
        facts[f"{name}_version"] = tool_version(cmd, env) if cmd else "skipped"
    floor = run_measured(["true"], workdir, env, workdir / "logs" / "floor.log", 60, use_time)
    facts["rss_method"] = f"{GNU_TIME} -f %M" if use_time else "os.wait4 ru_maxrss"
    facts["rss_floor_mb"] = round(floor.get("peak_mb") or 0.0, 1)
    return facts


# --------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------


class Bench:
    """Runs the cases for the selected tools and collects report rows."""

    def __init__(self, args: argparse.Namespace) -> None:
        """Resolve tool commands, paths and the child environment."""
        self.args = args
        self.workdir = Path(args.workdir).resolve()
        self.runs_dir = self.workdir / "runs"
        self.logs_dir = self.workdir / "logs"
        self.timeout = args.timeout or None
        self.use_time = args.rss == "time" or (args.rss == "auto" and gnu_time_available())
        self.data_bytes = {"small": args.files * FILE_SIZE, "big": int(args.big_gib * GIB),
                           "mem": int(args.mem_gib * GIB)}
        self.rows: list[Row] = []
        self.env = self._child_env()
        self.tools: dict[str, list[str] | None] = {
            "git": None if args.skip_git else shlex.split(args.git),
            "dvc": None if args.skip_dvc else shlex.split(args.dvc),
            "dsv": None if args.skip_dsv else shlex.split(args.dsv),
        }
        for name, cmd in self.tools.items():
            if cmd is not None and not tool_available(cmd):
                log(f"{name}: `{shlex.join(cmd)}` not found; skipping its rows")
                self.tools[name] = None
        self.git_bin = shlex.split(args.git)
        if not tool_available(self.git_bin):
            if self.tools["dvc"]:
                log("dvc needs git, which was not found; skipping dvc")
            self.tools["dvc"] = None

    def _child_env(self) -> dict:
        """Return the environment for every child: isolated git, quiet dvc."""
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
        })
        return env

    def _log(self, name: str) -> Path:
        """Return a fresh log file path for ``name`` under the logs directory."""
        path = self.logs_dir / f"{name}.log"
        path.unlink(missing_ok=True)
        return path

    def _cleanup(self, path: Path) -> None:
        """Remove a work copy unless --keep was given."""
        if not self.args.keep:
            shutil.rmtree(path, ignore_errors=True)

    def _timed(self, commands: list, wt: Path, env: dict, logf: Path, data: str) -> Measurement:
        """Run a timed step in ``wt``, after ``prefault`` if --prefault was given.

        ``data`` names the data set the step writes ("small", "big", "mem").
        """
        if self.args.prefault:
            prefault(2 * self.data_bytes[data])
        return run_step(commands, wt, env, logf, self.timeout, self.use_time)

    def _add(self, case: str, tool: str, m: Measurement | None, note: str = "") -> None:
        """Record a row; ``m`` None means the case was not measured."""
        if m is None:
            self.rows.append(Row(case, tool, None, None, ok=False, note=note))
        else:
            self.rows.append(Row(case, tool, m.seconds, m.peak_mb, ok=m.ok,
                                 note=note or (m.error or ""), runs=m.runs))

    # -- per-tool command recipes ------------------------------------------

    def _recipes(self, tool: str, target: str) -> tuple[list, list, list]:
        """Return (untimed setup, timed commit, status) commands for a tool.

        ``target`` is the path (relative to the work copy) being committed.
        """
        git = self.git_bin
        if tool == "git":
            return (
                [git + ["init", "-q"]],
                [git + ["add", "-A"], git + ["commit", "-q", "-m", "x"]],
                [git + ["status", "--porcelain"]],
            )
        if tool == "dvc":
            dvc = self.tools["dvc"]
            setup = [
                git + ["init", "-q"],
                dvc + ["init", "-q"],
                dvc + ["config", "core.analytics", "false"],
                dvc + ["config", "core.check_update", "false"],
            ]
            commit = [
                dvc + ["add", target],
                git + ["add", f"{target}.dvc", ".gitignore"],
                git + ["commit", "-q", "-m", "x"],
            ]
            return setup, commit, [dvc + ["status"]]
        dsv = self.tools["dsv"]
        return [dsv + ["init"]], [dsv + ["commit", "-m", "x"]], [dsv + ["status"]]

    def _env_for(self, run_dir: Path) -> dict:
        """Return the child environment with a DVC site cache private to run_dir."""
        env = dict(self.env)
        env["DVC_SITE_CACHE_DIR"] = str(run_dir / "dvc-site-cache")
        return env

    # -- cases ---------------------------------------------------------------

    def case_small_tree(self, train_src: Path) -> None:
        """Cases (a) first commit and (b) status, tool by tool."""
        for tool in ("git", "dvc", "dsv"):
            if self.tools[tool] is None:
                continue
            run_dir = self.runs_dir / f"small-{tool}"
            wt = run_dir / "wt"
            shutil.rmtree(run_dir, ignore_errors=True)
            log(f"[a/b] {tool}: copying the small-file tree")
            fresh_copy(train_src, wt)
            env = self._env_for(run_dir)
            setup, commit, status = self._recipes(tool, "train")
            logf = self._log(f"small-{tool}")
            err = run_setup(setup, wt, env, logf)
            if err:
                log(f"[a] {tool}: setup failed: {err}")
                self._add("first_commit", tool, None, f"setup failed: {err}")
                self._add("status", tool, None, "not run: setup failed")
                if tool == "dsv":
                    self._add("peak_mem_tree", tool, None, "not run: setup failed")
                self._cleanup(run_dir)
                continue
            log(f"[a] {tool}: first commit")
            m = self._timed(commit, wt, env, logf, "small")
            self._add("first_commit", tool, m)
            log(f"[a] {tool}: {m.seconds:.2f} s, {m.peak_mb:.0f} MB")
            if tool == "dsv":
                self._add("peak_mem_tree", tool, m)
            if not m.ok:
                self._add("status", tool, None, "not run: commit failed")
                self._cleanup(run_dir)
                continue
            runs = []
            for _ in range(STATUS_RUNS):
                s = run_step(status, wt, env, logf, self.timeout, self.use_time)
                runs.append(s)
                if not s.ok:
                    break
            ok = all(s.ok for s in runs)
            med = Measurement(
                seconds=statistics.median(s.seconds for s in runs),
                peak_mb=max(s.peak_mb for s in runs),
                ok=ok,
                error=next((s.error for s in runs if not s.ok), None),
                runs=[r for s in runs for r in s.runs],
            )
            self._add("status", tool, med)
            log(f"[b] {tool}: median {med.seconds:.3f} s, {med.peak_mb:.0f} MB")
            self._cleanup(run_dir)

    def case_big_file(self, big_src: Path) -> None:
        """Case (c): commit one big file, against a plain ``cp`` of it."""
        for tool in ("cp", "git", "dvc", "dsv"):
            if tool != "cp" and self.tools[tool] is None:
                continue
            run_dir = self.runs_dir / f"big-{tool}"
            wt = run_dir / "wt"
            shutil.rmtree(run_dir, ignore_errors=True)
            log(f"[c] {tool}: copying {big_src.name}")
            fresh_copy(big_src, wt)
            env = self._env_for(run_dir)
            logf = self._log(f"big-{tool}")
            if tool == "cp":
                setup, commit = [], [["cp", big_src.name, big_src.name + ".copy"]]
            else:
                setup, commit, _ = self._recipes(tool, big_src.name)
                if tool == "git":
                    commit = [self.git_bin + ["add", big_src.name],
                              self.git_bin + ["commit", "-q", "-m", "x"]]
                elif tool == "dvc":
                    commit = commit[:1]  # `dvc add` only
            err = run_setup(setup, wt, env, logf)
            if err:
                self._add("big_file", tool, None, f"setup failed: {err}")
            else:
                m = self._timed(commit, wt, env, logf, "big")
                self._add("big_file", tool, m)
                log(f"[c] {tool}: {m.seconds:.2f} s, {m.peak_mb:.0f} MB")
            self._cleanup(run_dir)

    def case_mem_file(self, mem_src: Path) -> None:
        """Case (d), second half: peak RSS of ``dsv commit`` of one large file."""
        run_dir = self.runs_dir / "mem-dsv"
        wt = run_dir / "wt"
        shutil.rmtree(run_dir, ignore_errors=True)
        log(f"[d] dsv: copying {mem_src.name}")
        fresh_copy(mem_src, wt)
        env = self._env_for(run_dir)
        setup, commit, _ = self._recipes("dsv", mem_src.name)
        logf = self._log("mem-dsv")
        err = run_setup(setup, wt, env, logf)
        if err:
            self._add("peak_mem_file", "dsv", None, f"setup failed: {err}")
        else:
            m = self._timed(commit, wt, env, logf, "mem")
            self._add("peak_mem_file", "dsv", m)
            log(f"[d] dsv: {m.seconds:.2f} s, {m.peak_mb:.0f} MB")
        self._cleanup(run_dir)

    def check_space(self) -> None:
        """Warn if the work directory's file system looks too small.

        At any time the data sets plus one tool's work copy and object store
        (about twice the data being committed) must fit.
        """
        a = self.args
        small = a.files * FILE_SIZE
        big = 0 if a.skip_big else int(a.big_gib * GIB)
        mem = 0 if (a.skip_mem or not self.tools["dsv"]) else int(a.mem_gib * GIB)
        need = small + big + mem + 2 * max(small, big, mem)
        free = shutil.disk_usage(self.workdir).free
        if free < need:
            log(f"warning: {free / GIB:.1f} GiB free in {self.workdir}, "
                f"about {need / GIB:.1f} GiB needed")

    def run(self) -> None:
        """Generate (or reuse) the data needed, then run the selected cases."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.check_space()
        data = self.workdir / "data"
        if any(self.tools.values()):
            train = generate_small(data / "small", self.args.files)
            self.case_small_tree(train)
        if not self.args.skip_big:
            big = generate_big(data / "big", "big.bin", self.args.big_gib)
            self.case_big_file(big)
        if self.tools["dsv"] and not self.args.skip_mem:
            mem = generate_big(data / "mem", "mem.bin", self.args.mem_gib)
            self.case_mem_file(mem)
        if not self.args.keep:
            shutil.rmtree(self.runs_dir, ignore_errors=True)
        self.score()

    # -- scoring and reporting ----------------------------------------------

    def _find(self, case: str, tool: str) -> Row | None:
        """Return the row of ``tool`` in ``case``, if any."""
        return next((r for r in self.rows if r.case == case and r.tool == tool), None)

    def score(self) -> None:
        """Fill in ratio, target and pass/fail on the rows that have a target.

        Speed targets go on the peer's row (comparing dsv to that peer);
        memory targets go on dsv's row.
        """
        for (case, tool), (kind, limit) in TARGETS.items():
            dsv = self._find(case, "dsv")
            row = self._find(case, tool)
            if row is None:
                continue
            if kind == "max_ratio":
                row.target = f"dsv <= {limit:g}x {tool}"
            elif kind == "min_speedup":
                row.target = f"{tool}/dsv >= {limit:g}"
            else:
                row.target = f"< {limit:g} MB"
            if kind == "max_mb":
                if row.ok and row.peak_mb is not None:
                    row.passed = row.peak_mb < limit
                continue
            if not (dsv and dsv.ok and row.ok and dsv.seconds and row.seconds):
                continue
            if kind == "max_ratio":
                row.ratio = dsv.seconds / row.seconds
                row.ratio_text = f"dsv/{tool} = {row.ratio:.3g}x"
                row.passed = row.ratio <= limit
            else:
                row.ratio = row.seconds / dsv.seconds
                row.ratio_text = f"{tool}/dsv = {row.ratio:.3g}x"
                row.passed = row.ratio >= limit
        # Informational ratios against cp for the other big-file rows.
        cp = self._find("big_file", "cp")
        for row in self.rows:
            if (row.case == "big_file" and row.tool in ("git", "dvc") and cp
                    and cp.ok and row.ok and cp.seconds):
                row.ratio = row.seconds / cp.seconds
                row.ratio_text = f"{row.tool}/cp = {row.ratio:.3g}x"

    def report(self, command: str, facts: dict) -> str:
        """Return the Markdown report: command, machine facts and the table."""
        a = self.args
        fmt = {"files": a.files, "big_gib": a.big_gib, "mem_gib": a.mem_gib}
        lines = [
            "## dsv foundation benchmark",
            "",
            f"Command: `{command}`",
            "",
            f"- machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['ram_gib']} GiB RAM, "
            f"Linux {facts['kernel']}",
            f"- python {facts['python']}; {facts['git_version']}; "
            f"dvc {facts['dvc_version']}; dsv {facts['dsv_version']}",
            f"- workdir {self.workdir}: {facts['filesystem']}",
            f"- peak MB = max RSS in MiB of the measured process tree, via "
            f"{facts['rss_method']} (floor, measured on `true`: {facts['rss_floor_mb']} MB); "
            "warm page cache; each tool on its own `cp -a` copy; "
            + ("memory prefaulted before each commit (`--prefault`)" if a.prefault
               else "no `--prefault`"),
            "",
            "| case | tool | seconds | peak MB | ratio | target | pass |",
            "| --- | --- | ---: | ---: | --- | --- | --- |",
        ]
        for r in sorted(self.rows, key=lambda r: (CASE_ORDER.index(r.case),
                                                  TOOL_ORDER.index(r.tool))):
            title = CASE_TITLES[r.case].format(**fmt)
            secs = f"{r.seconds:.3f}" if r.seconds is not None else "-"
            peak = f"{r.peak_mb:.0f}" if r.peak_mb is not None else "-"
            if not r.ok:
                secs = f"{secs} (failed)" if r.seconds is not None else "failed"
            verdict = {True: "PASS", False: "FAIL", None: "-" if not r.target else "n/a"}[r.passed]
            lines.append(
                f"| {title} | {r.tool} | {secs} | {peak} | {r.ratio_text or '-'} "
                f"| {r.target or '-'} | {verdict} |"
            )
        notes = [f"- {r.case}/{r.tool}: {r.note}" for r in self.rows if r.note]
        skipped = [name for name, cmd in self.tools.items() if cmd is None]
        if skipped:
            notes.append(f"- not measured (skipped or not found): {', '.join(skipped)}")
        if notes:
            lines += ["", "Notes:", ""] + notes
        return "\n".join(lines) + "\n"


def default_dvc() -> str:
    """Return the venv's dvc (see setup_bench.sh) if present, else ``dvc``."""
    venv = Path(os.environ.get("DSV_BENCH_VENV", "/work/bench-venv")) / "bin" / "dvc"
    return str(venv) if venv.exists() else "dvc"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        description="Benchmark dsv against git and DVC in one run and print ratios.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--workdir", default="/tmp/dsv-bench",
                   help="where data and work copies live (data is reused between runs)")
    p.add_argument("--files", type=int, default=100_000, help="number of 4 KiB files")
    p.add_argument("--big-gib", type=float, default=2.0, help="size of the big-file case")
    p.add_argument("--mem-gib", type=float, default=3.0, help="size of the peak-memory file")
    p.add_argument("--dsv", default="dsv", help="dsv command (may include arguments)")
    p.add_argument("--dvc", default=default_dvc(), help="dvc command")
    p.add_argument("--git", default="git", help="git command")
    p.add_argument("--skip-git", action="store_true", help="do not measure git")
    p.add_argument("--skip-dvc", action="store_true", help="do not measure dvc")
    p.add_argument("--skip-dsv", action="store_true",
                   help="do not measure dsv (peer figures only; no ratios)")
    p.add_argument("--skip-big", action="store_true", help="skip the big-file case (c)")
    p.add_argument("--skip-mem", action="store_true",
                   help="skip the --mem-gib file half of case (d)")
    p.add_argument("--rss", choices=["auto", "time", "wait4"], default="auto",
                   help="peak-RSS method: GNU /usr/bin/time -f %%M, or the harness's "
                        "own os.wait4 (floor = harness RSS); auto prefers time")
    p.add_argument("--prefault", action="store_true",
                   help="touch fresh memory right before each timed commit (VM "
                        "free-page-reporting workaround, see the module docstring)")
    p.add_argument("--timeout", type=float, default=3600.0,
                   help="kill a measured command after this many seconds (0: never)")
    p.add_argument("--json", metavar="OUT", help="also write all figures as JSON to OUT")
    p.add_argument("--keep", action="store_true", help="keep the work copies under WORKDIR/runs")
    args = p.parse_args(argv)
    if args.files < 1 or args.big_gib <= 0 or args.mem_gib <= 0:
        p.error("--files, --big-gib and --mem-gib must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the Markdown report and optionally write JSON."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchenv import compile_dsv

    compile_dsv()  # see scripts/benchenv.py
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name] + sys.argv)
    bench = Bench(args)
    bench.workdir.mkdir(parents=True, exist_ok=True)
    bench.logs_dir.mkdir(parents=True, exist_ok=True)
    facts = machine_facts(bench.workdir, bench.env, bench.tools, bench.use_time)
    bench.run()
    print(bench.report(command, facts), end="")
    if args.json:
        payload = {
            "command": command,
            "params": {k: v for k, v in vars(args).items() if k != "json"},
            "machine": facts,
            "rows": [asdict(r) for r in bench.rows],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0 if all(r.passed is not False and r.ok for r in bench.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
