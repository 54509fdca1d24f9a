"""The reachability graph fsck and gc share: refs and HEAD, to commits (and their
parents), to manifest roots, to chunks, to file objects. Chunks shared between
commits are read once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsv.base.errors import CorruptMetadataError, CorruptObjectError, DsvError, ObjectNotFoundError, StorageError, UnsafePathError
from dsv.history.documents import document_type, read_commit, read_tag
from dsv.history.refs import HEADS, TAGS
from dsv.manifest import decode_chunk, decode_root, row_problems
from dsv.repository import Repository
from dsv.worktree.paths import check_manifest_path

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class Problem:
    """One thing fsck found wrong."""

    kind: str  # corrupt-object, missing-object, bad-metadata, unsafe-path, bad-ref
    oid: str | None
    message: str
    expected: str | None = None
    actual: str | None = None
    location: str | None = None
    used_by: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "oid": self.oid,
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
            "location": self.location,
            "used_by": list(self.used_by),
        }


def ref_roots(repo: Repository, malformed: list[str] | None = None) -> Iterator[tuple[str, str]]:
    """``(ref name, object id)`` for HEAD and every branch, tag and metrics record.

    With ``malformed`` given, refs (and HEAD) that cannot be read are collected there.
    """
    try:
        head = repo.refs.head()
        if head.detached and head.commit:
            yield "HEAD", head.commit
    except CorruptMetadataError:
        if malformed is None:
            raise
        malformed.append("HEAD: does not name a branch or a commit")
    for name, oid in repo.refs.list(HEADS, malformed=malformed).items():
        yield f"branch {name}", oid
    for name, oid in repo.refs.list(TAGS, malformed=malformed).items():
        yield f"tag {name}", oid
    for name, oid in repo.refs.list("refs/metrics", malformed=malformed).items():
        yield f"metrics {name}", oid
    for name, oid in repo.refs.list("refs/remotes", malformed=malformed).items():
        yield f"remote branch {name}", oid


@dataclass
class Reachable:
    """What the refs reach, and who uses each object (first user found)."""

    objects: set[str] = field(default_factory=set)
    used_by: dict[str, str] = field(default_factory=dict)
    watched_users: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    """Size of each watched object that a manifest names (a file's content)."""
    commits: int = 0
    problems: list[Problem] = field(default_factory=list)


def walk_reachable(repo: Repository, *, check_paths: bool = False, watch: set[str] | None = None) -> Reachable:
    """Mark every object reachable from the refs; record problems met on the way.

    ``watch`` names objects whose users should be recorded in full (for fsck's
    report on corrupt objects).
    """
    out = Reachable()
    store = repo.store
    seen_chunks: set[str] = set()
    pending: list[tuple[str, str]] = []
    watch = watch or set()
    users: dict[str, list[str]] = {}

    def note(oid: str, user: str) -> None:
        if oid in watch:
            users.setdefault(oid, []).append(user)

    malformed: list[str] = []
    for ref, oid in ref_roots(repo, malformed):
        note(oid, ref)
        try:
            data = store.read(oid)
        except ObjectNotFoundError:
            out.problems.append(Problem("missing-object", oid, f"{ref} points at missing object {oid}", used_by=(ref,)))
            continue
        except (CorruptObjectError, CorruptMetadataError, StorageError) as err:
            out.problems.append(_unreadable(oid, err, ref))
            continue
        out.objects.add(oid)
        kind = document_type(data)
        if kind in _POINTERS:
            # Tags and metrics records keep the commit they name alive.
            try:
                target = _POINTERS[kind](store, oid)
            except DsvError as err:
                out.problems.append(Problem("bad-metadata", oid, f"{ref}: {err}", used_by=(ref,)))
                continue
            note(target, ref)
            pending.append((target, ref))
            if kind == "metrics":
                _attached(store, oid, ref, out, note)
        else:
            pending.append((oid, ref))
    done: set[str] = set()
    while pending:
        cid, user = pending.pop()
        if cid in done:
            continue
        done.add(cid)
        try:
            commit = read_commit(store, cid)
        except ObjectNotFoundError:
            out.problems.append(Problem("missing-object", cid, f"commit {cid} is missing", used_by=(user,)))
            continue
        except (CorruptObjectError, StorageError) as err:
            out.problems.append(_unreadable(cid, err, user))
            continue
        except DsvError as err:
            out.problems.append(Problem("bad-metadata", cid, str(err), used_by=(user,)))
            continue
        out.objects.add(cid)
        out.used_by.setdefault(cid, user)
        out.commits += 1
        for p in commit.parents:
            note(p, f"commit {cid}")
            if p not in done:
                pending.append((p, f"commit {cid}"))
        here = f"commit {cid}"
        note(commit.manifest, here)
        try:
            root = decode_root(store.read(commit.manifest), what=f"manifest {commit.manifest}")
        except ObjectNotFoundError:
            out.problems.append(Problem("missing-object", commit.manifest, f"manifest {commit.manifest} is missing", used_by=(here,)))
            continue
        except (CorruptObjectError, StorageError) as err:
            out.problems.append(_unreadable(commit.manifest, err, here))
            continue
        except CorruptMetadataError as err:
            out.problems.append(Problem("bad-metadata", commit.manifest, str(err), used_by=(here,)))
            continue
        out.objects.add(commit.manifest)
        if check_paths:
            out.problems.extend(_root_problems(commit.manifest, root, here))
        rows = zip(
            root.column("chunk").to_pylist(),
            root.column("first").to_pylist(),
            root.column("last").to_pylist(),
            root.column("files").to_pylist(),
            root.column("bytes").to_pylist(),
        )
        for raw, first, last, nfiles, nbytes in rows:
            chunk = raw.hex()
            note(chunk, here)
            if chunk in seen_chunks:
                continue
            seen_chunks.add(chunk)
            try:
                table = decode_chunk(store.read(chunk), what=f"manifest chunk {chunk}")
            except ObjectNotFoundError:
                out.problems.append(Problem("missing-object", chunk, f"manifest chunk {chunk} is missing", used_by=(here,)))
                continue
            except (CorruptObjectError, StorageError) as err:
                out.problems.append(_unreadable(chunk, err, here))
                continue
            except CorruptMetadataError as err:
                out.problems.append(Problem("bad-metadata", chunk, str(err), used_by=(here,)))
                continue
            out.objects.add(chunk)
            if check_paths:
                out.problems.extend(_chunk_problems(chunk, table, here, (first, last, nfiles, nbytes)))
            paths = table.column("path").to_pylist()
            oids = [r.hex() for r in table.column("oid").to_pylist()]
            sizes = table.column("size").to_pylist() if watch else []
            for i, (path, oid) in enumerate(zip(paths, oids)):
                out.objects.add(oid)
                if oid in watch:
                    users.setdefault(oid, []).append(f"{here}:{path}")
                    out.sizes[oid] = sizes[i]
                if check_paths:
                    try:
                        check_manifest_path(path)
                    except UnsafePathError as err:
                        out.problems.append(Problem("unsafe-path", chunk, str(err), used_by=(here,)))
                if oid not in out.used_by:
                    out.used_by[oid] = f"{here}:{path}"
    for entry in malformed:
        ref = entry.split(":", 1)[0].split(" ", 1)[0]
        out.problems.append(Problem("bad-ref", None, f"bad ref {entry}", location=ref))
    out.watched_users = {k: tuple(v[:5]) + ((f"(+{len(v) - 5} more)",) if len(v) > 5 else ()) for k, v in users.items()}
    return out


def _tag_target(store: Any, oid: str) -> str:
    return read_tag(store, oid).object


def _metrics_target(store: Any, oid: str) -> str:
    from dsv.metrics.records import read_record

    return read_record(store, oid).commit


def _attached(store: Any, oid: str, ref: str, out: "Reachable", note: Any) -> None:
    """Objects a metrics record names besides its commit (its predictions table) are reachable too."""
    from dsv.metrics.records import read_record

    pred = read_record(store, oid).predictions
    if pred is None:
        return
    note(pred.oid, ref)
    if not store.has(pred.oid):
        out.problems.append(Problem("missing-object", pred.oid, f"{ref}: predictions object {pred.oid} is missing", used_by=(ref,)))
        return
    out.objects.add(pred.oid)
    out.used_by.setdefault(pred.oid, f"{ref}:predictions")


_POINTERS = {"tag": _tag_target, "metrics": _metrics_target}
"""Document kinds a ref may point at besides commits, and how to find their commit."""


def _unreadable(oid: str, err: DsvError, user: str) -> Problem:
    """A reachable object that cannot be read back intact."""
    return Problem("corrupt-object", oid, str(err), oid, getattr(err, "actual", None), getattr(err, "location", None), (user,))


def _chunk_problems(chunk: str, table: "pa.Table", user: str, expected: tuple[str, str, int, int]) -> list[Problem]:
    """Invariants of one chunk: paths strictly increasing (sorted, unique), known modes,
    and the first/last path, file count and byte count its root row claims."""
    import pyarrow.compute as pc

    out = []
    paths = table.column("path").combine_chunks()
    n = len(paths)
    actual = (paths[0].as_py() if n else "", paths[n - 1].as_py() if n else "", n, pc.sum(table.column("size")).as_py() or 0)
    if actual != expected:
        out.append(Problem("bad-metadata", chunk, f"manifest chunk {chunk} does not match its root entry {expected} (found {actual})", used_by=(user,)))
    for problem in row_problems(table):
        out.append(Problem("bad-metadata", chunk, f"manifest chunk {chunk} {problem}", used_by=(user,)))
    return out


def _root_problems(oid: str, root: "pa.Table", user: str) -> list[Problem]:
    """Invariants of a manifest root that need no chunk: chunk ranges in order."""
    firsts = root.column("first").to_pylist()
    lasts = root.column("last").to_pylist()
    for i, (f, last) in enumerate(zip(firsts, lasts)):
        if f > last or (i and lasts[i - 1] >= f):
            return [Problem("bad-metadata", oid, f"manifest {oid} has overlapping or unordered chunks", used_by=(user,))]
    return []
