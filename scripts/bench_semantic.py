#!/usr/bin/env python3
"""Semantic diff benchmark: ``dsv diff --table`` vs hand-written DuckDB, ``--folder`` vs plain diff.

Two measurements, side by side in one run:

1. Table source. Generates (pyarrow, vectorised, seeded) a ``--rows`` row Parquet
   table ``ann.parquet`` (id, label, split, region, score, note) and a second
   version with 1% of rows removed, 1% added, 1% relabeled and 1% modified
   (disjoint). Both are committed to a dsv repo (untimed setup). Then times
   ``dsv diff HEAD~1 HEAD --table ann.parquet --key id --label label --slice
   split --slice region --format json`` against a separate Python process that
   runs a hand-written DuckDB ``FULL OUTER JOIN`` over copies of the two files
   and computes the same totals, per-class counts, relabel matrix and per-slice
   counts. Wall time and peak RSS of each whole process are compared (targets:
   dsv <= 1.5x DuckDB on both) and the numbers are checked against each other
   and against the generator's ground truth.

2. Folder source. Generates ``--folder-files`` tiny files ``train/<class>/<id>.txt``
   (20 classes), commits, moves 1% to another class, deletes 0.5%, adds 0.5%,
   modifies 0.5%, commits. Times ``dsv diff HEAD~1 HEAD --stat --format json``
   (plain file-level diff) against ``dsv diff HEAD~1 HEAD --folder
   'train/{label}/*' --format json`` (target: with-folder < 2x plain) and checks
   the folder source's counts against the ground truth.

Prints machine facts, the command line and a Markdown table.

Usage:
    .venv/bin/python scripts/bench_semantic.py [--rows 10000000] [--folder-files 1000000]
        [--workdir /tmp/dsv-bench-sem] [--skip-table] [--skip-folder] [--reuse]
        [--repeat 1] [--json OUT]

Exit status: 0 all targets pass and numbers agree; 1 a correctness mismatch or a
failing command; 2 numbers agree but a performance target fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

N_CLASSES = 20
SEED = 20240601
GNU_TIME = "/usr/bin/time"

# The DuckDB peer: what a user would write by hand. Run as ``python -c PEER_CODE A B OUT``.
PEER_CODE = r'''
import json, sys
import duckdb

a, b, out = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute(f"""
CREATE TEMP TABLE j AS
SELECT a.id IS NOT NULL AS in_a, b.id IS NOT NULL AS in_b,
       a.label AS label_a, b.label AS label_b,
       a.split AS split_a, b.split AS split_b, a.region AS region_a, b.region AS region_b,
       a.id IS NOT NULL AND b.id IS NOT NULL AND a.label IS DISTINCT FROM b.label AS relabeled,
       a.id IS NOT NULL AND b.id IS NOT NULL AND (a.split IS DISTINCT FROM b.split
           OR a.region IS DISTINCT FROM b.region OR a.score IS DISTINCT FROM b.score
           OR a.note IS DISTINCT FROM b.note) AS modified
FROM read_parquet('{a}') a FULL OUTER JOIN read_parquet('{b}') b ON a.id = b.id
""")
t = con.execute("""
SELECT count(*) FILTER (in_a), count(*) FILTER (in_b),
       count(*) FILTER (in_b AND NOT in_a), count(*) FILTER (in_a AND NOT in_b),
       count(*) FILTER (relabeled), count(*) FILTER (modified),
       count(*) FILTER (in_a AND in_b AND NOT relabeled AND NOT modified)
FROM j""").fetchone()
totals = dict(zip(["before", "after", "added", "removed", "relabeled", "modified", "unchanged"], map(int, t)))

def per_value(col_a, col_b, names):
    rows = con.execute(f"""
    WITH sa AS (SELECT {col_a} AS v, count(*) AS before, count(*) FILTER (NOT in_b) AS removed,
                       count(*) FILTER (relabeled) AS rl_out
                FROM j WHERE in_a GROUP BY ALL),
         sb AS (SELECT {col_b} AS v, count(*) AS after, count(*) FILTER (NOT in_a) AS added,
                       count(*) FILTER (relabeled) AS rl_in, count(*) FILTER (modified) AS modified
                FROM j WHERE in_b GROUP BY ALL)
    SELECT coalesce(sa.v, sb.v) AS v, coalesce(before, 0), coalesce(after, 0), coalesce(added, 0),
           coalesce(removed, 0), coalesce(rl_in, 0), coalesce(rl_out, 0), coalesce(modified, 0)
    FROM sa FULL OUTER JOIN sb ON sa.v IS NOT DISTINCT FROM sb.v ORDER BY v NULLS LAST""").fetchall()
    return [dict(zip(names, [r[0], *map(int, r[1:])])) for r in rows]

cls_names = ["class", "before", "after", "added", "removed", "relabeled_in", "relabeled_out", "modified"]
classes = per_value("label_a", "label_b", cls_names)
slices = []
for col in ("split", "region"):
    for r in per_value(f"{col}_a", f"{col}_b", ["value", "before", "after", "added", "removed", "relabeled", "_out", "modified"]):
        r.pop("_out")
        slices.append({"column": col, **r})
relabels = [{"from": f, "to": t, "count": int(n)} for f, t, n in con.execute(
    "SELECT label_a, label_b, count(*) FROM j WHERE relabeled GROUP BY ALL ORDER BY 3 DESC, 1, 2").fetchall()]
with open(out, "w") as fh:
    json.dump({"totals": totals, "classes": classes, "relabels": relabels, "slices": slices}, fh)
'''


# -- helpers -----------------------------------------------------------------------------


def log(msg: str) -> None:
    """Progress message on stderr."""
    print(f"[bench_semantic] {msg}", file=sys.stderr, flush=True)


def dsv_binary(explicit: str | None) -> str:
    """The dsv CLI: ``--dsv``, else next to this interpreter, else on PATH."""
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "dsv"
    if beside.exists():
        return str(beside)
    found = shutil.which("dsv")
    if not found:
        raise SystemExit("cannot find the dsv CLI; pass --dsv PATH")
    return found


def run_setup(cmd: list[str], cwd: Path) -> str:
    """Run an untimed setup command; exit with its stderr on failure."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"setup command failed ({proc.returncode}): {shlex.join(cmd)}\n{proc.stderr}")
    return proc.stdout


def measure(cmd: list[str], cwd: Path, out_path: Path) -> dict[str, Any]:
    """Run ``cmd`` once; wall seconds of the whole process and its peak RSS (MiB).

    stdout goes to ``out_path`` (stderr beside it). Peak RSS comes from GNU
    ``/usr/bin/time -f %M`` when present, else from ``os.wait4``.
    """
    err_path = out_path.with_suffix(out_path.suffix + ".err")
    use_time = os.path.exists(GNU_TIME)
    rss_file = out_path.with_suffix(out_path.suffix + ".rss")
    full = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *cmd] if use_time else cmd
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, cwd=cwd, stdout=out, stderr=err)
        if use_time:
            rc = proc.wait()
            wall = time.perf_counter() - t0
            text = rss_file.read_text().strip().splitlines() if rss_file.exists() else []
            peak_kb = int(text[-1]) if text and text[-1].isdigit() else -1
        else:
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = rc = os.waitstatus_to_exitcode(status)
            peak_kb = usage.ru_maxrss
    return {"seconds": wall, "peak_rss_mib": peak_kb / 1024, "rc": rc, "stderr": err_path.read_text(errors="replace")}


def measure_best(cmd: list[str], cwd: Path, out_path: Path, repeat: int, label: str) -> dict[str, Any]:
    """``repeat`` runs of ``cmd``: the best wall time, the largest peak RSS; exit 1 if a run fails."""
    runs = []
    for i in range(repeat):
        r = measure(cmd, cwd, out_path)
        log(f"{label} run {i + 1}/{repeat}: {r['seconds']:.2f} s, peak RSS {r['peak_rss_mib']:.0f} MiB, rc {r['rc']}")
        if r["rc"] != 0:
            print(f"\n!!! {label} FAILED (exit {r['rc']}): {shlex.join(cmd)}\n{r['stderr'][-4000:]}", file=sys.stderr)
            if cmd and Path(cmd[0]).name == "dsv" and "--debug" not in cmd:
                dbg = subprocess.run([cmd[0], "--debug", *cmd[1:]], cwd=cwd, capture_output=True, text=True)
                print(f"--- with --debug:\n{dbg.stderr[-6000:]}", file=sys.stderr)
            raise SystemExit(1)
        runs.append(r)
    return {
        "seconds": min(r["seconds"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "all_seconds": [round(r["seconds"], 3) for r in runs],
    }


def machine_facts() -> dict[str, Any]:
    """CPU, memory, OS and library versions."""
    import duckdb
    import pyarrow

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "os": platform.platform(),
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory": mem,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
        "rss_via": "/usr/bin/time -f %M" if os.path.exists(GNU_TIME) else "os.wait4",
        "loadavg_at_start": "%.2f %.2f %.2f" % os.getloadavg(),
    }


def ratio(num: float, den: float) -> float:
    """num/den, infinity when den is 0."""
    return num / den if den else float("inf")


def compare(what: str, got: Any, want: Any, mismatches: list[str]) -> None:
    """Record a mismatch between two JSON-like values (lists of dicts are compared row by row)."""
    if got == want:
        return
    if isinstance(got, list) and isinstance(want, list):
        g = {json.dumps(x, sort_keys=True) for x in got}
        w = {json.dumps(x, sort_keys=True) for x in want}
        extra = sorted(g - w)[:5]
        missing = sorted(w - g)[:5]
        mismatches.append(f"{what}: {len(g - w)} rows only in dsv {extra}; {len(w - g)} rows only in reference {missing}")
    else:
        mismatches.append(f"{what}: dsv {got} != reference {want}")


# -- 1. table source ---------------------------------------------------------------------


def _rand(n: int, seed: int) -> Any:
    """n uniform doubles in [0, 1), seeded."""
    import pyarrow.compute as pc

    return pc.random(n, initializer=seed)


def _pick(names: list[str], u: Any, power: float = 1.0) -> Any:
    """Index ``names`` with floor(u**power * len(names)) (a skewed draw when power > 1)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    x = pc.power(u, power) if power != 1.0 else u
    idx = pc.cast(pc.floor(pc.multiply(x, len(names))), pa.int64())
    return idx, pc.take(pa.array(names), idx)


def make_rows(ids: Any, seed: int) -> Any:
    """A random annotation table for the given ids (vectorised, seeded)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(ids)
    classes = [f"class_{i:02d}" for i in range(N_CLASSES)]
    _, label = _pick(classes, _rand(n, seed + 1), power=1.5)
    _, split = _pick(["train"] * 8 + ["val", "test"], _rand(n, seed + 2))
    _, region = _pick([f"region_{i}" for i in range(10)], _rand(n, seed + 3))
    score = _rand(n, seed + 4)
    note = pc.binary_join_element_wise("note-", pc.cast(ids, pa.string()), "")
    return pa.table({"id": ids, "label": label, "split": split, "region": region, "score": score, "note": note})


def make_versions(n: int) -> tuple[Any, Any, dict[str, int]]:
    """Version A (``n`` rows) and B (1% removed/added/relabeled/modified, disjoint), and the truth."""
    import pyarrow as pa
    import pyarrow.compute as pc

    k = n // 100
    ids = pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n)), 1)
    a = make_rows(ids, SEED)
    rank = pc.rank(_rand(n, SEED + 10), tiebreaker="first")  # a random permutation, 1-based
    removed = pc.less_equal(rank, k)
    relabel = pc.and_(pc.greater(rank, k), pc.less_equal(rank, 2 * k))
    modify = pc.and_(pc.greater(rank, 2 * k), pc.less_equal(rank, 3 * k))
    # A different class for relabeled rows: shift the class index by 1..N_CLASSES-1.
    label_idx = pc.cast(pc.utf8_slice_codeunits(a["label"], 6), pa.int64())
    shift = pc.add(pc.cast(pc.floor(pc.multiply(_rand(n, SEED + 11), N_CLASSES - 1)), pa.int64()), 1)
    new_idx = pc.add(label_idx, shift)
    new_idx = pc.if_else(pc.greater_equal(new_idx, N_CLASSES), pc.subtract(new_idx, N_CLASSES), new_idx)
    new_label = pc.binary_join_element_wise("class_", pc.utf8_lpad(pc.cast(new_idx, pa.string()), 2, "0"), "")
    b = a.set_column(1, "label", pc.if_else(relabel, new_label, a["label"]))
    b = b.set_column(4, "score", pc.if_else(modify, pc.add(a["score"], 1.0), a["score"]))
    b = b.filter(pc.invert(removed))
    new_ids = pc.add(pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), k)), 1), n)
    b = pa.concat_tables([b, make_rows(new_ids, SEED + 20)])
    truth = {"before": n, "after": n, "added": k, "removed": k, "relabeled": k, "modified": k, "unchanged": n - 3 * k}
    return a, b, truth


def setup_table(args: argparse.Namespace, dsv: str, root: Path) -> dict[str, Any]:
    """Write both versions, commit them to a fresh repo; reuse an identical earlier setup with --reuse."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    marker = root / "setup.json"
    want = {"rows": args.rows, "seed": SEED}
    if args.reuse and marker.exists():
        got = json.loads(marker.read_text())
        if got.get("params") == want:
            log(f"reusing table setup in {root}")
            return got
    if root.exists():
        shutil.rmtree(root)
    repo, peer = root / "repo", root / "peer"
    repo.mkdir(parents=True)
    peer.mkdir()
    t0 = time.perf_counter()
    a, b, truth = make_versions(args.rows)
    pq.write_table(a, peer / "a.parquet")
    pq.write_table(b, peer / "b.parquet")
    del a, b
    pa.default_memory_pool().release_unused()
    gen = time.perf_counter() - t0
    log(f"generated {args.rows:,} rows in {gen:.1f} s ({(peer / 'a.parquet').stat().st_size / 2**20:.0f} MiB per version)")
    t0 = time.perf_counter()
    shutil.copyfile(peer / "a.parquet", repo / "ann.parquet")
    run_setup([dsv, "-q", "init"], repo)
    run_setup([dsv, "-q", "commit", "-m", "a"], repo)
    shutil.copyfile(peer / "b.parquet", repo / "ann.parquet")
    run_setup([dsv, "-q", "commit", "-m", "b"], repo)
    log(f"committed both versions in {time.perf_counter() - t0:.1f} s")
    info = {"params": want, "truth": truth, "generate_s": round(gen, 2), "commit_s": round(time.perf_counter() - t0, 2),
            "parquet_mib": round((peer / "a.parquet").stat().st_size / 2**20, 1)}
    marker.write_text(json.dumps(info))
    return info


def dsv_source(path: Path) -> dict[str, Any]:
    """The first source of a ``dsv diff --format json`` output."""
    data = json.loads(path.read_text())
    if not data.get("sources"):
        raise SystemExit(f"dsv output {path} has no sources")
    return data["sources"][0]


def bench_table(args: argparse.Namespace, dsv: str, mismatches: list[str]) -> list[dict[str, Any]]:
    """Time dsv's table diff and the DuckDB peer; check their numbers; return result rows."""
    root = Path(args.workdir) / "table"
    info = setup_table(args, dsv, root)
    repo, peer = root / "repo", root / "peer"
    dsv_cmd = [dsv, "diff", "HEAD~1", "HEAD", "--table", "ann.parquet", "--key", "id", "--label", "label",
               "--slice", "split", "--slice", "region", "--format", "json"]
    peer_cmd = [sys.executable, "-c", PEER_CODE, str(peer / "a.parquet"), str(peer / "b.parquet"), str(peer / "peer.json")]
    out_dsv = root / "dsv.json"
    m_dsv, m_peer = None, None
    for _ in range(args.repeat):  # alternate so both see the same cache conditions
        r = measure_best(dsv_cmd, repo, out_dsv, 1, "table: dsv diff")
        m_dsv = r if m_dsv is None else _merge(m_dsv, r)
        r = measure_best(peer_cmd, peer, root / "peer.stdout", 1, "table: duckdb peer")
        m_peer = r if m_peer is None else _merge(m_peer, r)
    assert m_dsv is not None and m_peer is not None
    got = dsv_source(out_dsv)
    ref = json.loads((peer / "peer.json").read_text())
    truth = info["truth"]
    compare("table totals (dsv vs duckdb)", got["totals"], ref["totals"], mismatches)
    compare("table totals (dsv vs generator)", got["totals"], truth, mismatches)
    compare("table totals (duckdb vs generator)", ref["totals"], truth, mismatches)
    compare("table classes (dsv vs duckdb)", got["classes"], ref["classes"], mismatches)
    compare("table relabel matrix (dsv vs duckdb)", sorted(got["relabels"], key=json.dumps),
            sorted(ref["relabels"], key=json.dumps), mismatches)
    compare("table slices (dsv vs duckdb)", got["slices"], ref["slices"], mismatches)
    t = ratio(m_dsv["seconds"], m_peer["seconds"])
    m = ratio(m_dsv["peak_rss_mib"], m_peer["peak_rss_mib"])
    note = f"{args.rows:,} rows, {info['parquet_mib']} MiB Parquet per version"
    return [
        {"bench": "table", "metric": "wall time (s)", "dsv": m_dsv["seconds"], "baseline": m_peer["seconds"],
         "baseline_name": "hand-written DuckDB", "ratio": t, "target": "<= 1.5x", "pass": t <= 1.5, "note": note,
         "runs_dsv": m_dsv["all_seconds"], "runs_baseline": m_peer["all_seconds"]},
        {"bench": "table", "metric": "peak RSS (MiB)", "dsv": m_dsv["peak_rss_mib"], "baseline": m_peer["peak_rss_mib"],
         "baseline_name": "hand-written DuckDB", "ratio": m, "target": "<= 1.5x", "pass": m <= 1.5, "note": note},
    ]


def _merge(x: dict[str, Any], y: dict[str, Any]) -> dict[str, Any]:
    """Combine two measurements: best time, largest RSS, all times."""
    return {"seconds": min(x["seconds"], y["seconds"]), "peak_rss_mib": max(x["peak_rss_mib"], y["peak_rss_mib"]),
            "all_seconds": x["all_seconds"] + y["all_seconds"]}


# -- 2. folder source --------------------------------------------------------------------


def _cls(c: int) -> str:
    return f"c{c:02d}"


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def setup_folder(args: argparse.Namespace, dsv: str, root: Path) -> dict[str, Any]:
    """Write, commit, change (move/delete/add/modify) and commit ``--folder-files`` tiny files.

    Returns the ground truth: totals and per-class counts the folder source should report.
    """
    marker = root / "setup.json"
    want = {"files": args.folder_files, "seed": SEED}
    if args.reuse and marker.exists():
        got = json.loads(marker.read_text())
        if got.get("params") == want:
            log(f"reusing folder setup in {root}")
            return got
    if root.exists():
        shutil.rmtree(root)
    repo = root / "repo"
    n = args.folder_files
    train = repo / "train"
    for c in range(N_CLASSES):
        (train / _cls(c)).mkdir(parents=True)
    t0 = time.perf_counter()
    base = str(train)
    for i in range(n):
        _write(f"{base}/{_cls(i % N_CLASSES)}/{i:08d}.txt", b"sample %d\n" % i)
    gen = time.perf_counter() - t0
    log(f"generated {n:,} files in {gen:.1f} s")
    t0 = time.perf_counter()
    run_setup([dsv, "-q", "init"], repo)
    run_setup([dsv, "-q", "commit", "-m", "a"], repo)
    c1 = time.perf_counter() - t0
    log(f"first commit in {c1:.1f} s")
    rng = random.Random(SEED)
    k_move, k_del, k_add, k_mod = n // 100, n // 200, n // 200, n // 200
    picked = rng.sample(range(n), k_move + k_del + k_mod)
    moves, dels, mods = picked[:k_move], picked[k_move:k_move + k_del], picked[k_move + k_del:]
    classes = {_cls(c): {"class": _cls(c), "before": 0, "after": 0, "added": 0, "removed": 0,
                         "relabeled_in": 0, "relabeled_out": 0, "modified": 0} for c in range(N_CLASSES)}
    for i in range(n):
        classes[_cls(i % N_CLASSES)]["before"] += 1
        classes[_cls(i % N_CLASSES)]["after"] += 1
    for i in moves:
        src = i % N_CLASSES
        dst = (src + 1 + rng.randrange(N_CLASSES - 1)) % N_CLASSES
        os.rename(f"{base}/{_cls(src)}/{i:08d}.txt", f"{base}/{_cls(dst)}/{i:08d}.txt")
        classes[_cls(src)]["relabeled_out"] += 1
        classes[_cls(src)]["after"] -= 1
        classes[_cls(dst)]["relabeled_in"] += 1
        classes[_cls(dst)]["after"] += 1
    for i in dels:
        os.unlink(f"{base}/{_cls(i % N_CLASSES)}/{i:08d}.txt")
        classes[_cls(i % N_CLASSES)]["removed"] += 1
        classes[_cls(i % N_CLASSES)]["after"] -= 1
    for i in mods:
        _write(f"{base}/{_cls(i % N_CLASSES)}/{i:08d}.txt", b"sample %d modified\n" % i)
        classes[_cls(i % N_CLASSES)]["modified"] += 1
    for j in range(k_add):
        i = n + j
        c = rng.randrange(N_CLASSES)
        _write(f"{base}/{_cls(c)}/{i:08d}.txt", b"sample %d\n" % i)
        classes[_cls(c)]["added"] += 1
        classes[_cls(c)]["after"] += 1
    t0 = time.perf_counter()
    run_setup([dsv, "-q", "commit", "-m", "b"], repo)
    c2 = time.perf_counter() - t0
    log(f"second commit in {c2:.1f} s")
    truth = {"before": n, "after": n - k_del + k_add, "added": k_add, "removed": k_del, "relabeled": k_move,
             "modified": k_mod, "unchanged": n - k_del - k_move - k_mod}
    info = {"params": want, "truth": truth, "classes": list(classes.values()), "generate_s": round(gen, 2),
            "commit1_s": round(c1, 2), "commit2_s": round(c2, 2)}
    marker.write_text(json.dumps(info))
    return info


def bench_folder(args: argparse.Namespace, dsv: str, mismatches: list[str]) -> list[dict[str, Any]]:
    """Time a plain file diff and a folder-source diff of the same two commits; check counts."""
    root = Path(args.workdir) / "folder"
    info = setup_folder(args, dsv, root)
    repo = root / "repo"
    if (repo / "dsv.toml").exists():
        raise SystemExit(f"{repo / 'dsv.toml'} exists; the plain diff must run without sources")
    plain_cmd = [dsv, "diff", "HEAD~1", "HEAD", "--stat", "--format", "json"]
    folder_cmd = [dsv, "diff", "HEAD~1", "HEAD", "--folder", "train/{label}/*", "--format", "json"]
    m_plain, m_fold = None, None
    for _ in range(args.repeat):
        r = measure_best(plain_cmd, repo, root / "plain.json", 1, "folder: plain diff")
        m_plain = r if m_plain is None else _merge(m_plain, r)
        r = measure_best(folder_cmd, repo, root / "folder.json", 1, "folder: --folder diff")
        m_fold = r if m_fold is None else _merge(m_fold, r)
    assert m_plain is not None and m_fold is not None
    plain = json.loads((root / "plain.json").read_text())
    if plain.get("sources"):
        mismatches.append(f"plain diff reported sources: {[s.get('name') for s in plain['sources']]}")
    got = dsv_source(root / "folder.json")
    compare("folder totals (dsv vs generator)", got["totals"], info["truth"], mismatches)
    compare("folder classes (dsv vs generator)", got["classes"], info["classes"], mismatches)
    t = ratio(m_fold["seconds"], m_plain["seconds"])
    m = ratio(m_fold["peak_rss_mib"], m_plain["peak_rss_mib"])
    note = f"{args.folder_files:,} files; file counts {plain['files']['counts']}"
    return [
        {"bench": "folder", "metric": "wall time (s)", "dsv": m_fold["seconds"], "baseline": m_plain["seconds"],
         "baseline_name": "dsv diff --stat (no sources)", "ratio": t, "target": "< 2x", "pass": t < 2.0, "note": note,
         "runs_dsv": m_fold["all_seconds"], "runs_baseline": m_plain["all_seconds"]},
        {"bench": "folder", "metric": "peak RSS (MiB)", "dsv": m_fold["peak_rss_mib"], "baseline": m_plain["peak_rss_mib"],
         "baseline_name": "dsv diff --stat (no sources)", "ratio": m, "target": "(info)", "pass": None, "note": note},
    ]


# -- main --------------------------------------------------------------------------------


def print_report(facts: dict[str, Any], rows: list[dict[str, Any]], mismatches: list[str]) -> None:
    """Machine facts, the command line, the Markdown table, and any mismatches."""
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print("machine: " + "; ".join(f"{k} {v}" for k, v in facts.items()))
    print()
    print("| benchmark | metric | dsv | baseline | baseline is | ratio | target | result |")
    print("|---|---|---:|---:|---|---:|---|---|")
    for r in rows:
        res = "-" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL")
        print(f"| {r['bench']} ({r['note']}) | {r['metric']} | {r['dsv']:.2f} | {r['baseline']:.2f} | "
              f"{r['baseline_name']} | {r['ratio']:.2f}x | {r['target']} | {res} |")
    print()
    if mismatches:
        print("!!! CORRECTNESS MISMATCHES !!!")
        for m in mismatches:
            print(f"!!! {m}")
    else:
        print("correctness: all counts agree (dsv, DuckDB peer and generator ground truth)")


def main() -> None:
    """Parse arguments, run the selected benchmarks, print and save the results."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchenv import compile_dsv

    compile_dsv()  # see scripts/benchenv.py
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows of the annotation table (default 10,000,000)")
    ap.add_argument("--folder-files", type=int, default=1_000_000, help="files of the folder source (default 1,000,000)")
    ap.add_argument("--workdir", default="/tmp/dsv-bench-sem", help="scratch directory (recreated)")
    ap.add_argument("--skip-table", action="store_true", help="skip the table benchmark")
    ap.add_argument("--skip-folder", action="store_true", help="skip the folder benchmark")
    ap.add_argument("--reuse", action="store_true", help="reuse repos from an earlier run with the same sizes")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs of each command (best time is reported)")
    ap.add_argument("--dsv", help="dsv CLI to run (default: next to this python)")
    ap.add_argument("--json", dest="json_out", metavar="OUT", help="also save the figures as JSON")
    args = ap.parse_args()
    if args.rows < 100 or args.folder_files < 200:
        ap.error("--rows must be >= 100 and --folder-files >= 200")
    os.environ.setdefault("DSV_AUTHOR_NAME", "bench")
    os.environ.setdefault("DSV_AUTHOR_EMAIL", "bench@example.com")
    dsv = dsv_binary(args.dsv)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    facts = machine_facts()
    facts["dsv"] = run_setup([dsv, "--version"], Path(args.workdir)).strip()
    mismatches: list[str] = []
    rows: list[dict[str, Any]] = []
    if not args.skip_table:
        rows += bench_table(args, dsv, mismatches)
    if not args.skip_folder:
        rows += bench_folder(args, dsv, mismatches)
    facts["loadavg_at_end"] = "%.2f %.2f %.2f" % os.getloadavg()
    print_report(facts, rows, mismatches)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {"command": [sys.executable, *sys.argv], "machine": facts, "results": rows, "mismatches": mismatches}, indent=2))
    if mismatches:
        raise SystemExit(1)
    if any(r["pass"] is False for r in rows):
        raise SystemExit(2)


if __name__ == "__main__":
    main()
