"""Walking what a ref needs: tags and metrics records to commits, commits to parents, manifests to chunks to files.

Transfers walk over a ``read(oid) -> bytes`` function rather than a store, so
the same walk runs over the local store, over records just fetched and not yet
stored, or over both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dsv.base.errors import CorruptMetadataError, ObjectNotFoundError
from dsv.base.hashing import is_object_id
from dsv.history.documents import Commit, document_type, parse_commit, parse_tag

if TYPE_CHECKING:
    import pyarrow as pa

Reader = Callable[[str], bytes]


def peel(read: Reader, oid: str) -> tuple[str, list[str]]:
    """The commit a ref value leads to, and the documents on the way (a tag or metrics record).

    Anything else (a commit, or an object that is not a document) is returned as is.
    """
    data = read(oid)
    kind = document_type(data)
    if kind == "tag":
        return parse_tag(data, what=f"tag {oid}").object, [oid]
    if kind == "metrics":
        try:
            commit = json.loads(data)["commit"]
        except (ValueError, KeyError, TypeError):
            raise CorruptMetadataError(f"metrics record {oid}", "names no commit") from None
        if not isinstance(commit, str) or not is_object_id(commit):
            raise CorruptMetadataError(f"metrics record {oid}", "names no commit")
        return commit, [oid]
    return oid, []


def read_commit_doc(read: Reader, oid: str) -> Commit:
    """Parse the commit ``oid``."""
    data = read(oid)
    if document_type(data) != "commit":
        raise CorruptMetadataError(f"commit {oid}", "is not a commit")
    return parse_commit(data, what=f"commit {oid}")


def ancestors(read: Reader, tips: Iterable[str], *, stop: set[str] | None = None, have: Callable[[str], bool] | None = None) -> Iterator[tuple[str, Commit]]:
    """Commits reachable from ``tips`` (each once), not entering ``stop``; ``have`` also stops the walk there."""
    stop = stop or set()
    seen: set[str] = set()
    todo = [t for t in tips]
    while todo:
        cid = todo.pop()
        if cid in seen or cid in stop:
            continue
        seen.add(cid)
        if have is not None and have(cid):
            continue
        commit = read_commit_doc(read, cid)
        yield cid, commit
        todo.extend(p for p in commit.parents if p not in seen and p not in stop)


def is_ancestor(read: Reader, ancestor: str, descendant: str) -> bool:
    """Whether ``ancestor`` is ``descendant`` or one of its ancestors (walks the local history)."""
    if ancestor == descendant:
        return True
    try:
        return any(cid == ancestor for cid, _ in ancestors(read, [descendant]))
    except ObjectNotFoundError:
        return False


def reachable_commits(read: Reader, tips: Iterable[str]) -> set[str]:
    """Every commit reachable from ``tips`` that ``read`` can reach (missing history ends the walk there)."""
    out: set[str] = set()
    todo = list(tips)
    while todo:
        cid = todo.pop()
        if cid in out:
            continue
        try:
            commit = read_commit_doc(read, cid)
        except (ObjectNotFoundError, CorruptMetadataError):
            continue
        out.add(cid)
        todo.extend(commit.parents)
    return out


def in_paths(path: str, paths: list[str] | None) -> bool:
    """Whether ``path`` is one of ``paths`` or below one of them (``None``: every path)."""
    if paths is None:
        return True
    return any(path == p or path.startswith(p + "/") for p in paths)


def root_chunks(root: "pa.Table", paths: list[str] | None) -> list[str]:
    """Chunk ids of a manifest root that can hold ``paths`` (all of them when ``None``)."""
    ids = [c.hex() for c in root.column("chunk").to_pylist()]
    if paths is None:
        return ids
    firsts = root.column("first").to_pylist()
    lasts = root.column("last").to_pylist()
    out = []
    for cid, f, last in zip(ids, firsts, lasts):
        if any(not (last < p or f >= p + "0") for p in paths):
            out.append(cid)
    return out


@dataclass
class Needs:
    """What a set of commits needs: documents and manifest objects, and file contents with their sizes."""

    meta: list[str] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)

    def add_meta(self, oid: str) -> bool:
        """Note a metadata object; return whether it is new."""
        if oid in self._seen:
            return False
        self._seen.add(oid)
        self.meta.append(oid)
        return True


def snapshot_needs(read: Reader, manifest: str, needs: Needs, *, paths: list[str] | None = None, skip_chunks: set[str] | None = None) -> None:
    """Add a manifest's root, its chunks (those that can hold ``paths``) and their files to ``needs``.

    Chunks in ``skip_chunks`` (known to be complete on the other side) are not read.
    """
    from dsv.manifest import decode_chunk, decode_root

    if not needs.add_meta(manifest):
        return
    root = decode_root(read(manifest), what=f"manifest {manifest}")
    for chunk in root_chunks(root, paths):
        if skip_chunks and chunk in skip_chunks:
            continue
        if not needs.add_meta(chunk):
            continue
        table = decode_chunk(read(chunk), what=f"manifest chunk {chunk}")
        for path, raw, size in zip(table.column("path").to_pylist(), table.column("oid").to_pylist(), table.column("size").to_pylist()):
            if in_paths(path, paths):
                needs.files.setdefault(raw.hex(), size)


def chunks_of_roots(read: Reader, manifests: Iterable[str]) -> set[str]:
    """Chunk ids named by these manifest roots (those readable)."""
    from dsv.manifest import decode_root

    out: set[str] = set()
    for m in manifests:
        try:
            root = decode_root(read(m), what=f"manifest {m}")
        except (ObjectNotFoundError, CorruptMetadataError):
            continue
        out.update(c.hex() for c in root.column("chunk").to_pylist())
    return out
