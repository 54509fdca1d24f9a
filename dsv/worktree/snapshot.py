"""Turning the working tree into stored objects and a manifest table (the heart of commit).

Unchanged files (stat equal to the cache) reuse the cached id and are not read.
Every other file is read once, hashed and appended to the object writer in the
same pass. Small files are read on the calling thread (threads slow small reads
down on two cores); large files are streamed by a thread pool, which hashes on
every core since xxhash and file I/O release the GIL.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa

from dsv.base.progress import NullProgress, Progress
from dsv.manifest import entries_table
from dsv.store.base import ObjectWriter
from dsv.worktree.content import ReadResult, is_large, store_path
from dsv.worktree.ignore import IgnoreRules
from dsv.worktree.scan import Warn, scan
from dsv.worktree.statcache import StatCache, StatKey, stat_key


@dataclass
class Snapshot:
    """The result of snapshotting a working tree."""

    table: pa.Table
    cache: StatCache
    added: int = 0
    removed: int = 0
    modified: int = 0
    moved: int = 0
    changed_while_reading: list[str] = field(default_factory=list)
    files_read: int = 0
    bytes_read: int = 0

    @property
    def changed(self) -> bool:
        """Whether the tree differs from the cached HEAD."""
        return bool(self.added or self.removed or self.modified or self.moved)


def take_snapshot(
    root: str,
    cache: StatCache,
    ignore: IgnoreRules | None,
    writer: ObjectWriter,
    warn: Warn,
    progress: Progress | None = None,
) -> Snapshot:
    """Store every new or changed file through ``writer`` and return the full tree."""
    progress = progress or NullProgress()
    result = scan(root, cache, ignore, warn)
    paths: list[str] = []
    oids: list[bytes] = []
    sizes: list[int] = []
    modes: list[int] = []
    keys: list[StatKey | None] = []
    cpaths, coids, csizes, cmodes, ckeys = cache.paths, cache.oids, cache.sizes, cache.modes, cache.keys
    for row in result.clean:
        paths.append(cpaths[row])
        oids.append(coids[row])
        sizes.append(csizes[row])
        modes.append(cmodes[row])
        keys.append(ckeys[row])

    todo: list[tuple[str, os.stat_result, int, int | None]] = [(cache.paths[r], st, m, r) for r, st, m in result.suspect]
    todo.extend((p, st, m, None) for p, st, m in result.new)
    total_bytes = sum(t[1].st_size for t in todo)
    progress.start("hashing", len(todo), total_bytes)
    snap = Snapshot(pa.table({}), cache)
    large_jobs: list[tuple[str, os.stat_result, int, int | None, Future[ReadResult]]] = []
    join = os.path.join
    sep_root = root

    def record(path: str, st: os.stat_result, mode: int, row: int | None, res: ReadResult) -> None:
        if res.vanished:
            warn(f"{path} disappeared while committing; not included")
            return
        snap.files_read += 1
        snap.bytes_read += res.size
        if res.changed:
            snap.changed_while_reading.append(path)
        paths.append(path)
        oids.append(res.raw_oid)
        sizes.append(res.size)
        modes.append(mode)
        # A file that changed while read gets no stat key: status will re-hash it.
        keys.append(None if res.changed else stat_key(st, mode))
        if row is None:
            snap.added += 1
        elif res.raw_oid != cache.oids[row] or mode != cache.modes[row]:
            snap.modified += 1

    pool: ThreadPoolExecutor | None = None
    try:
        for path, st, mode, row in todo:
            abs_path = join(sep_root, *path.split("/")) if "/" in path else join(sep_root, path)
            if is_large(st):
                if pool is None:
                    pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="dsv-hash")
                large_jobs.append((path, st, mode, row, pool.submit(store_path, writer, abs_path, st, mode)))
                continue
            res = store_path(writer, abs_path, st, mode)
            record(path, st, mode, row, res)
            progress.advance(1, res.size)
        for path, st, mode, row, fut in large_jobs:
            res = fut.result()
            record(path, st, mode, row, res)
            progress.advance(1, res.size)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        progress.finish()

    snap.removed = len(result.missing)
    if result.missing and snap.added:
        # Pair removed and added files with identical content into moves.
        missing_oids: dict[bytes, int] = {}
        for r in result.missing:
            missing_oids[cache.oids[r]] = missing_oids.get(cache.oids[r], 0) + 1
        new_paths = {p for p, _, _ in result.new}
        for p, o in zip(paths, oids):
            if p in new_paths and missing_oids.get(o, 0) > 0:
                missing_oids[o] -= 1
                snap.moved += 1
        snap.added -= snap.moved
        snap.removed -= snap.moved
    snap.table = entries_table(paths, oids, sizes, modes)
    snap.cache = StatCache(None, None, paths, oids, sizes, modes, keys)
    return snap
