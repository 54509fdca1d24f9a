"""Turning the working tree into stored objects and manifest changes (the heart of commit).

Unchanged files (stat equal to the cache) reuse the cached id and are not read.
Every other file is read once, hashed and appended to the object writer in the
same pass. Small files are read on the calling thread (threads slow small reads
down on two cores); large files are streamed by a thread pool, which hashes on
every core since xxhash, pyfastcdc and file I/O release the GIL.

The result is a *change set* against the cached HEAD (rows upserted, paths
removed) and the patched stat cache: nothing per unchanged file is built, so a
ten-file commit in a million-file tree costs a walk plus ten files.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from dsv.base.forkjob import STORE_MIN_FILES, ChildFailed, ForkJob, fork_available
from dsv.base.moves import pair_moves
from dsv.base.progress import NullProgress, Progress
from dsv.base.records import Record
from dsv.store.base import ObjectWriter
from dsv.worktree.content import LOOSE_THRESHOLD, VANISHED, ReadResult, is_large, store_path
from dsv.worktree.ignore import IgnoreRules
from dsv.worktree.scan import Warn, scan
from dsv.worktree.statcache import KEY, NewRows, StatCache, StatKey


class Snapshot(Record):
    """The working tree as changes against the cached HEAD, and the stat cache that mirrors it."""

    __slots__ = ("cache", "upserts", "skipped", "removals", "added", "removed", "modified", "moved", "changed_while_reading", "files_read", "bytes_read")
    __hash__ = None  # type: ignore[assignment]

    cache: StatCache
    upserts: dict[str, tuple[bytes, int, int]]
    """New or changed files: path -> (16-byte id, size, mode)."""
    skipped: list[str]
    """Paths left out with a warning (FIFOs, names that are not UTF-8...)."""
    removals: list[str]
    """Paths of HEAD no longer in the tree."""
    added: int
    removed: int
    modified: int
    moved: int
    changed_while_reading: list[str]
    files_read: int
    bytes_read: int

    def __init__(
        self,
        cache: StatCache,
        upserts: dict[str, tuple[bytes, int, int]] | None = None,
        skipped: list[str] | None = None,
        removals: list[str] | None = None,
        added: int = 0,
        removed: int = 0,
        modified: int = 0,
        moved: int = 0,
        changed_while_reading: list[str] | None = None,
        files_read: int = 0,
        bytes_read: int = 0,
    ) -> None:
        self.cache = cache
        self.upserts = {} if upserts is None else upserts
        self.skipped = [] if skipped is None else skipped
        self.removals = [] if removals is None else removals
        self.added = added
        self.removed = removed
        self.modified = modified
        self.moved = moved
        self.changed_while_reading = [] if changed_while_reading is None else changed_while_reading
        self.files_read = files_read
        self.bytes_read = bytes_read

    @property
    def changed(self) -> bool:
        """Whether the tree differs from the cached HEAD."""
        return bool(self.added or self.removed or self.modified or self.moved)

    @property
    def files(self) -> int:
        """Files in the snapshot."""
        return len(self.cache)

    @property
    def total_bytes(self) -> int:
        """Sum of their sizes."""
        return sum(self.cache.sizes)


def take_snapshot(
    root: str,
    cache: StatCache,
    ignore: IgnoreRules | None,
    writer: ObjectWriter,
    warn: Warn,
    progress: Progress | None = None,
    *,
    changed: Iterable[str] | None = None,
) -> Snapshot:
    """Store every new or changed file through ``writer``; return the changes and the new cache.

    ``changed``: a file-system monitor's answer (only those paths are looked at).
    """
    progress = progress or NullProgress()
    result = scan(root, cache, ignore, warn, changed=changed)
    suspects: list[tuple[str, Any, int, int | None]] = [(cache.paths[r], st, m, r) for r, st, m in result.suspect]
    result.suspect.clear()
    # New files stay columnar (a first commit has one per file): items are made one at a time.
    new = result.new
    n_suspect = len(suspects)
    count = n_suspect + len(new)

    def item(i: int) -> tuple[str, Any, int, int | None]:
        if i < n_suspect:
            return suspects[i]
        j = i - n_suspect
        return new.paths[j], new.stat(j), new.modes[j], None

    def size_of(i: int) -> int:
        return int(suspects[i][1].st_size) if i < n_suspect else new.size(i - n_suspect)

    total_bytes = sum(size_of(i) for i in range(count))
    progress.start("hashing", count, total_bytes)
    snap = Snapshot(cache)
    snap.skipped = result.skipped
    large_jobs: list[tuple[str, os.stat_result, int, int | None, Future[ReadResult]]] = []
    prefix = root if root.endswith(os.sep) else root + os.sep
    changed_list = snap.changed_while_reading
    added = modified = files_read = bytes_read = 0
    key_of = KEY.pack
    pool: ThreadPoolExecutor | None = None
    gone: set[int] = set(result.missing)
    updated: dict[int, tuple[bytes, int, int, StatKey | None]] = {}
    appended = NewRows()
    # Only a commit on a parent manifest patches it (a first commit writes the table whole).
    keep_upserts = cache.manifest is not None
    todo: "Sequence[int]" = range(count)

    def results() -> Iterator[tuple[str, os.stat_result, int, int | None, ReadResult]]:
        nonlocal pool
        for i in todo:
            path, st, mode, row = item(i)
            if is_large(st):
                if pool is None:
                    pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="dsv-hash")
                large_jobs.append((path, st, mode, row, pool.submit(store_path, writer, prefix + path, st, mode)))
                continue
            yield path, st, mode, row, store_path(writer, prefix + path, st, mode)
        for path, st, mode, row, fut in large_jobs:
            yield path, st, mode, row, fut.result()

    # A second process stores half of the small files into its own pack.
    job: ForkJob | None = None
    theirs: "Sequence[int]" = ()
    small = array("q", (i for i in range(count) if size_of(i) < LOOSE_THRESHOLD))
    if len(small) >= STORE_MIN_FILES and getattr(writer, "supports_fork", False) and fork_available():
        half = len(small) // 2
        theirs = small[half:]
        todo = small[:half] + array("q", (i for i in range(count) if size_of(i) >= LOOSE_THRESHOLD))  # large files hash on threads here
        job = ForkJob(lambda: _store_in_child(writer, prefix, (item(i) for i in theirs)))
    del small

    try:
        for path, st, mode, row, res in _chain(results(), _child_results(job, theirs, item, writer, prefix)):
            if res.vanished:
                warn(f"{path} disappeared while committing; not included")
                if row is not None:
                    gone.add(row)
                continue
            size = res.size
            files_read += 1
            bytes_read += size
            if res.changed:
                # A file that changed while read gets no stat key: status will re-hash it.
                changed_list.append(path)
                key = None
            else:
                key = key_of(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, mode)
            if row is None:
                added += 1
                appended.add(path, res.raw_oid, size, mode, key)
                if keep_upserts:
                    snap.upserts[path] = (res.raw_oid, size, mode)
            else:
                updated[row] = (res.raw_oid, size, mode, key)
                if res.raw_oid != cache.oid(row) or mode != cache.modes[row]:
                    modified += 1
                    snap.upserts[path] = (res.raw_oid, size, mode)
            progress.advance(1, size)
    except BaseException:
        if job is not None:
            job.cancel()
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        progress.finish()
    snap.added, snap.modified, snap.files_read, snap.bytes_read = added, modified, files_read, bytes_read
    snap.removals = [cache.paths[r] for r in sorted(gone)]
    snap.removed = len(gone)
    if gone and snap.added:
        # Removed and added files with identical content are moves (the rule every command uses).
        pairs = pair_moves([(cache.paths[r], cache.oid(r)) for r in gone], appended.path_oids())
        snap.moved = len(pairs)
        snap.added -= snap.moved
        snap.removed -= snap.moved
    snap.cache = cache.patched(None, None, gone, updated, appended)
    return snap




def _store_in_child(writer: ObjectWriter, prefix: str, items: Iterable[tuple[str, Any, int, int | None]]) -> tuple[tuple[bytes, bytes, bytes], Any]:
    """Runs in the forked child: store ``items`` through a sibling writer; return the results as columns, and the packs.

    Columns (ids, sizes, flags), not a tuple per file: half a million of those
    cost the child, the pipe and the parent ~60 MB.
    """
    mine = writer.sibling()  # type: ignore[attr-defined]
    try:
        oids = bytearray()
        sizes = array("q")
        flags = bytearray()
        for path, st, mode, _row in items:
            r = store_path(mine, prefix + path, st, mode)
            oids += r.raw_oid if not r.vanished else bytes(16)
            sizes.append(r.size)
            flags.append((1 if r.changed else 0) | (2 if r.vanished else 0))
        return (bytes(oids), sizes.tobytes(), bytes(flags)), mine.detach()
    except BaseException:
        mine.abort()
        raise


def _child_results(
    job: ForkJob | None, items: "Sequence[int]", item: Callable[[int], tuple[str, Any, int, int | None]], writer: ObjectWriter, prefix: str
) -> Iterator[tuple[str, os.stat_result, int, int | None, ReadResult]]:
    """The child's share of the results, once it is done (or redone here if it died)."""
    if job is None:
        return
    try:
        (oids, size_bytes, flags), packs = job.result()
    except ChildFailed:
        for i in items:
            path, st, mode, row = item(i)
            yield path, st, mode, row, store_path(writer, prefix + path, st, mode)
        return
    writer.adopt(packs)  # type: ignore[attr-defined]
    sizes = array("q")
    sizes.frombytes(size_bytes)
    for k, i in enumerate(items):
        path, st, mode, row = item(i)
        f = flags[k]
        yield path, st, mode, row, (VANISHED if f & 2 else ReadResult(oids[16 * k : 16 * k + 16], sizes[k], bool(f & 1)))


def _chain(*iterators: Iterator[Any]) -> Iterator[Any]:
    for it in iterators:
        yield from it
