#!/usr/bin/env python3
"""Audit benchmark: ``dsv audit`` of a table source vs a hand-written DuckDB query, of a folder source vs ``dsv diff``.

1. Table source. Generates (pyarrow, vectorised, seeded) a ``--rows`` row Parquet
   table ``ann.parquet`` (id, label, split, region, feat, score) whose ``feat``
   is drawn from a pool of 0.8 x rows values, so the same content (feat, score)
   recurs: conflicts, leakage between splits and duplicates are planted by the
   draw, and 0.5% of labels are empty. It is committed once (untimed). Then times
   ``dsv audit HEAD --json`` (dsv.toml: key id, label label, slices split and
   region) against a separate Python process running one hand-written DuckDB
   script that computes the same numbers (conflicts, leakage per split pair,
   duplicates within class and within split, class counts, small classes per
   slice value, missing labels). Target: dsv <= 1.5x DuckDB (wall time of the
   whole process); the numbers must agree.

2. Folder source. Reuses ``scripts/bench_semantic.py``'s folder setup:
   ``--folder-files`` tiny files ``train/<class>/<id>.txt``, two commits (1% moved
   to another class, 0.5% deleted, added and modified). Times ``dsv audit HEAD
   --json`` with ``[[folders]] pattern = "train/{label}/*"`` (both commits are in
   its default 10-version history) against ``dsv diff HEAD~1 HEAD --stat --format
   json`` (target: audit <= 2x the plain diff), and checks the audit's class
   counts against the ground truth.

Usage:
    .venv/bin/python scripts/bench_audit.py [--rows 10000000] [--folder-files 1000000]
        [--workdir /tmp/dsv-bench-audit] [--skip-table] [--skip-folder] [--reuse] [--repeat 1] [--json OUT]

Exit status: 0 all targets pass and numbers agree; 1 a mismatch or a failing command; 2 a target fails.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_semantic as bs  # noqa: E402  (the shared measuring helpers and folder setup)

SEED = 20241112
TOML_TABLE = '[[tables]]\npath = "ann.parquet"\nkey = "id"\nlabel = "label"\nslices = ["split", "region"]\nsplits = ["split"]\n'
TOML_FOLDER = '[[folders]]\npattern = "train/{label}/*"\n'

# The DuckDB peer: what a user would write by hand for the same audit. ``python -c PEER_CODE FILE OUT``.
PEER_CODE = r'''
import json, sys
import duckdb

path, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute(f"""CREATE TEMP TABLE s AS SELECT id, label, split, region, hash(feat, score) AS content FROM read_parquet('{path}')""")
res = {}
con.execute("""CREATE TEMP TABLE cf AS SELECT content FROM s WHERE label IS NOT NULL GROUP BY content HAVING count(DISTINCT label) > 1""")
res["conflicts"] = con.execute("SELECT (SELECT count(*) FROM cf), (SELECT count(*) FROM s JOIN cf USING (content))").fetchone()
con.execute("""CREATE TEMP TABLE lk AS SELECT content, list_sort(list(DISTINCT split)) AS vals FROM s WHERE split IS NOT NULL
               GROUP BY content HAVING count(DISTINCT split) > 1""")
res["leakage"] = con.execute("SELECT (SELECT count(*) FROM lk), (SELECT count(*) FROM s JOIN lk USING (content) WHERE s.split IS NOT NULL)").fetchone()
res["pairs"] = sorted(con.execute("""WITH x AS (SELECT content, unnest(vals) AS v FROM lk)
    SELECT x.v, y.v, count(*) FROM x JOIN x AS y ON x.content = y.content AND x.v < y.v GROUP BY ALL""").fetchall())
res["dup_class"] = con.execute("""SELECT count(*), coalesce(sum(n - 1), 0) FROM
    (SELECT count(*) AS n FROM s WHERE label IS NOT NULL GROUP BY content, label HAVING count(*) > 1)""").fetchone()
res["dup_split"] = con.execute("""SELECT count(*), coalesce(sum(n - 1), 0) FROM
    (SELECT count(*) AS n FROM s WHERE split IS NOT NULL GROUP BY content, split HAVING count(*) > 1)""").fetchone()
res["classes"] = sorted(con.execute("SELECT label, count(*) FROM s GROUP BY label").fetchall(), key=lambda r: (r[0] is None, r[0] or ""))
small = 0
for col in ("split", "region"):
    small += con.execute(f"""WITH cnt AS (SELECT {col} AS v, label AS c, count(*) AS n FROM s WHERE label IS NOT NULL GROUP BY ALL),
        u AS (SELECT DISTINCT label AS c FROM s WHERE label IS NOT NULL), vals AS (SELECT DISTINCT {col} AS v FROM s)
        SELECT count(*) FROM vals CROSS JOIN u LEFT JOIN cnt ON cnt.v IS NOT DISTINCT FROM vals.v AND cnt.c = u.c
        WHERE coalesce(cnt.n, 0) < 10""").fetchone()[0]
res["small_in_slices"] = small
res["missing"] = con.execute("SELECT count(*) FROM s WHERE label IS NULL").fetchone()[0]
with open(out, "w") as fh:
    json.dump(res, fh)
'''


def log(msg: str) -> None:
    print(f"[bench_audit] {msg}", file=sys.stderr, flush=True)


def make_table(n: int) -> Any:
    """The table: ids, a skewed label (0.5% empty), split, region, and content (feat, score) drawn from a pool."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n)), 1)
    _, label = bs._pick([f"class_{i:02d}" for i in range(bs.N_CLASSES)], bs._rand(n, SEED + 1), power=1.5)
    label = pc.if_else(pc.less(bs._rand(n, SEED + 5), 0.005), pa.scalar(None, pa.string()), label)
    _, split = bs._pick(["train"] * 8 + ["val", "test"], bs._rand(n, SEED + 2))
    _, region = bs._pick([f"region_{i}" for i in range(10)], bs._rand(n, SEED + 3))
    feat = pc.cast(pc.floor(pc.multiply(bs._rand(n, SEED + 4), int(n * 0.8))), pa.int64())
    score = pc.divide(pc.cast(feat, pa.float64()), 1000.0)
    return pa.table({"id": ids, "label": label, "split": split, "region": region, "feat": feat, "score": score})


def setup_table(args: argparse.Namespace, dsv: str, root: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    marker = root / "setup.json"
    want = {"rows": args.rows, "seed": SEED}
    if args.reuse and marker.exists() and json.loads(marker.read_text()).get("params") == want:
        log(f"reusing table setup in {root}")
        return json.loads(marker.read_text())
    if root.exists():
        shutil.rmtree(root)
    repo, peer = root / "repo", root / "peer"
    repo.mkdir(parents=True)
    peer.mkdir()
    t0 = time.perf_counter()
    pq.write_table(make_table(args.rows), peer / "ann.parquet")
    log(f"generated {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")
    shutil.copyfile(peer / "ann.parquet", repo / "ann.parquet")
    (repo / "dsv.toml").write_text(TOML_TABLE)
    bs.run_setup([dsv, "-q", "init"], repo)
    bs.run_setup([dsv, "-q", "commit", "-m", "table"], repo)
    info = {"params": want, "parquet_mib": round((peer / "ann.parquet").stat().st_size / 2**20, 1)}
    marker.write_text(json.dumps(info))
    return info


def bench_table(args: argparse.Namespace, dsv: str, mismatches: list[str]) -> list[dict[str, Any]]:
    root = Path(args.workdir) / "table"
    info = setup_table(args, dsv, root)
    repo, peer = root / "repo", root / "peer"
    dsv_cmd = [dsv, "audit", "HEAD", "--json"]
    peer_cmd = [sys.executable, "-c", PEER_CODE, str(peer / "ann.parquet"), str(peer / "peer.json")]
    m_dsv = m_peer = None
    for _ in range(args.repeat):
        r = bs.measure_best(dsv_cmd, repo, root / "dsv.json", 1, "table: dsv audit")
        m_dsv = r if m_dsv is None else bs._merge(m_dsv, r)
        r = bs.measure_best(peer_cmd, peer, root / "peer.stdout", 1, "table: duckdb peer")
        m_peer = r if m_peer is None else bs._merge(m_peer, r)
    assert m_dsv is not None and m_peer is not None
    got = json.loads((root / "dsv.json").read_text())["sources"][0]
    ref = json.loads((peer / "peer.json").read_text())
    bs.compare("conflicts", [got["conflicts"]["contents"], got["conflicts"]["samples"]], ref["conflicts"], mismatches)
    leak = got["leakage"][0]
    bs.compare("leakage", [leak["contents"], leak["samples"]], ref["leakage"], mismatches)
    bs.compare("leakage pairs", sorted([*p["values"], p["contents"]] for p in leak["pairs"]), ref["pairs"], mismatches)
    dups = {d["column"]: d for d in got["duplicates"]}
    bs.compare("duplicates in class", [dups[None]["groups"], dups[None]["extra"]], ref["dup_class"], mismatches)
    bs.compare("duplicates in split", [dups["split"]["groups"], dups["split"]["extra"]], ref["dup_split"], mismatches)
    bs.compare("classes", [[c["class"], c["count"]] for c in got["coverage"]["classes"]], ref["classes"], mismatches)
    bs.compare("small classes in slices", got["coverage"]["small_in_slices"]["count"], ref["small_in_slices"], mismatches)
    bs.compare("missing labels", got["coverage"]["missing_labels"]["count"], ref["missing"], mismatches)
    t = bs.ratio(m_dsv["seconds"], m_peer["seconds"])
    return [{"bench": "table", "metric": "wall time (s)", "dsv": m_dsv["seconds"], "baseline": m_peer["seconds"],
             "baseline_name": "hand-written DuckDB", "ratio": t, "target": "<= 1.5x", "pass": t <= 1.5,
             "note": f"{args.rows:,} rows, {info['parquet_mib']} MiB Parquet; {got['conflicts']['contents']:,} conflicts, "
                     f"{leak['contents']:,} leaked contents", "peak_rss_dsv": m_dsv["peak_rss_mib"], "peak_rss_peer": m_peer["peak_rss_mib"],
             "runs_dsv": m_dsv["all_seconds"], "runs_baseline": m_peer["all_seconds"]}]


def bench_folder(args: argparse.Namespace, dsv: str, mismatches: list[str]) -> list[dict[str, Any]]:
    root = Path(args.workdir) / "folder"
    info = bs.setup_folder(args, dsv, root)
    repo = root / "repo"
    # The declaration is given on the side of the audit: written untracked into the working tree would
    # change HEAD's files, so it is committed once as a third, data-free commit.
    if not (repo / "dsv.toml").exists():
        (repo / "dsv.toml").write_text(TOML_FOLDER)
        bs.run_setup([dsv, "-q", "commit", "-m", "declare the folder source"], repo)
    audit_cmd = [dsv, "audit", "HEAD", "--json"]
    plain_cmd = [dsv, "diff", "HEAD~2", "HEAD~1", "--stat", "--format", "json"]
    m_audit = m_plain = None
    for _ in range(args.repeat):
        r = bs.measure_best(plain_cmd, repo, root / "plain.json", 1, "folder: plain dsv diff")
        m_plain = r if m_plain is None else bs._merge(m_plain, r)
        r = bs.measure_best(audit_cmd, repo, root / "audit.json", 1, "folder: dsv audit")
        m_audit = r if m_audit is None else bs._merge(m_audit, r)
    assert m_audit is not None and m_plain is not None
    got = json.loads((root / "audit.json").read_text())["sources"][0]
    bs.compare("folder classes", {c["class"]: c["count"] for c in got["coverage"]["classes"]}, {c["class"]: c["after"] for c in info["classes"]}, mismatches)
    bs.compare("folder samples", got["samples"], info["truth"]["after"], mismatches)
    t = bs.ratio(m_audit["seconds"], m_plain["seconds"])
    return [{"bench": "folder", "metric": "wall time (s)", "dsv": m_audit["seconds"], "baseline": m_plain["seconds"],
             "baseline_name": "plain dsv diff", "ratio": t, "target": "<= 2x", "pass": t <= 2.0,
             "note": f"{args.folder_files:,} files, history of {got['history_conflicts']['versions']} versions",
             "peak_rss_dsv": m_audit["peak_rss_mib"], "peak_rss_peer": m_plain["peak_rss_mib"],
             "runs_dsv": m_audit["all_seconds"], "runs_baseline": m_plain["all_seconds"]}]


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchenv import compile_dsv

    compile_dsv()  # see scripts/benchenv.py
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--folder-files", type=int, default=1_000_000)
    ap.add_argument("--workdir", default="/tmp/dsv-bench-audit")
    ap.add_argument("--skip-table", action="store_true")
    ap.add_argument("--skip-folder", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="reuse an identical earlier setup in --workdir")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--dsv", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    dsv = bs.dsv_binary(args.dsv)
    facts = bs.machine_facts()
    mismatches: list[str] = []
    rows: list[dict[str, Any]] = []
    if not args.skip_table:
        rows += bench_table(args, dsv, mismatches)
    if not args.skip_folder:
        rows += bench_folder(args, dsv, mismatches)
    facts["loadavg_at_end"] = "%.2f %.2f %.2f" % __import__("os").getloadavg()
    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {facts}")
    print("| bench | dsv (s) | baseline | baseline (s) | ratio | target | pass | note |")
    print("|---|---:|---|---:|---:|---|---|---|")
    for r in rows:
        print(f"| {r['bench']} | {r['dsv']:.2f} | {r['baseline_name']} | {r['baseline']:.2f} | {r['ratio']:.2f}x | {r['target']} | "
              f"{'yes' if r['pass'] else 'NO'} | {r['note']} |")
    for m in mismatches:
        print(f"MISMATCH: {m}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": facts, "results": rows, "mismatches": mismatches}, indent=2))
    if mismatches:
        return 1
    return 0 if all(r["pass"] for r in rows) else 2


if __name__ == "__main__":
    sys.exit(main())
