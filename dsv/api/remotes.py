"""Remote porcelain for :class:`dsv.Repo`: remote add/list/remove, push, fetch, pull, clone, remote gc.

Kept apart from :mod:`dsv.api.repo` (which it extends as a mixin) so each file
stays one subject. The protocols themselves live in :mod:`dsv.remote`;
docs/remotes.md describes them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dsv.base.errors import (
    DsvError,
    PushRejectedError,
    RefExistsError,
    RemoteError,
    RepositoryExistsError,
    UnknownRemoteError,
    UnknownRevisionError,
    UsageError,
    WorktreeError,
)
from dsv.base.progress import Progress
from dsv.base.records import FrozenRecord, init_field
from dsv.base.secrets import mask_options, mask_url, register_options
from dsv.history.refs import HEADS, TAGS, check_ref_name

if TYPE_CHECKING:
    from dsv.api.repo import Repo
    from dsv.remote import FetchResult, PushResult, RemoteGcResult, RemoteRepo
    from dsv.repository import Repository

REMOTES = "refs/remotes"
SPARSE_FILE = "sparse.json"
"""``.dsv/sparse.json``: the paths a clone limited to paths checked out (docs/remotes.md)."""
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class RemoteInfo(FrozenRecord):
    """A configured remote: its name, URL and options, credentials masked."""

    __slots__ = ("name", "url", "options", "promisor")

    name: str
    url: str
    options: dict[str, str]
    promisor: bool

    def __init__(self, name: str, url: str, options: dict[str, str], promisor: bool = False) -> None:
        init_field(self, "name", name)
        init_field(self, "url", url)
        init_field(self, "options", options)
        init_field(self, "promisor", promisor)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (credentials masked)."""
        return {"name": self.name, "url": self.url, "options": dict(self.options), "promisor": self.promisor}


class PullResult(FrozenRecord):
    """A pull: the fetch, then the fast-forward of the branch and working tree."""

    __slots__ = ("fetch", "branch", "old", "new", "status", "written", "removed")

    fetch: "FetchResult"
    branch: str | None
    old: str | None
    new: str | None
    status: str
    """``up-to-date``, ``fast-forward`` or ``created``."""
    written: int
    removed: int

    def __init__(self, fetch: "FetchResult", branch: str | None, old: str | None, new: str | None, status: str, written: int = 0, removed: int = 0) -> None:
        init_field(self, "fetch", fetch)
        init_field(self, "branch", branch)
        init_field(self, "old", old)
        init_field(self, "new", new)
        init_field(self, "status", status)
        init_field(self, "written", written)
        init_field(self, "removed", removed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"fetch": self.fetch.to_dict(), "branch": self.branch, "old": self.old, "new": self.new, "status": self.status, "written": self.written, "removed": self.removed}


class CloneResult(FrozenRecord):
    """A clone: where, from where, which commit is checked out, and what was fetched."""

    __slots__ = ("path", "url", "commit", "branch", "fetch", "written", "partial", "paths", "depth")

    path: str
    url: str
    commit: str | None
    branch: str | None
    fetch: "FetchResult"
    written: int
    partial: bool
    paths: tuple[str, ...]
    depth: int | None

    def __init__(
        self,
        path: str,
        url: str,
        commit: str | None,
        branch: str | None,
        fetch: "FetchResult",
        written: int = 0,
        partial: bool = False,
        paths: tuple[str, ...] | None = None,
        depth: int | None = None,
    ) -> None:
        init_field(self, "path", path)
        init_field(self, "url", url)
        init_field(self, "commit", commit)
        init_field(self, "branch", branch)
        init_field(self, "fetch", fetch)
        init_field(self, "written", written)
        init_field(self, "partial", partial)
        init_field(self, "paths", () if paths is None else paths)
        init_field(self, "depth", depth)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "path": self.path,
            "url": self.url,
            "commit": self.commit,
            "branch": self.branch,
            "written": self.written,
            "partial": self.partial,
            "paths": list(self.paths),
            "depth": self.depth,
            "fetch": self.fetch.to_dict(),
        }


def normalize_url(url: str) -> str:
    """A remote URL as stored: a plain path becomes absolute (``file://`` paths too)."""
    if not _SCHEME.match(url):
        return os.path.abspath(os.path.expanduser(url))
    if url.startswith("file://"):
        return os.path.abspath(url[len("file://") :])
    return url


def check_remote_name(name: str) -> str:
    """A remote name follows the branch-name rules and has no ``/``."""
    check_ref_name(name)
    if "/" in name:
        raise UsageError(f"invalid remote name {name!r}: contains '/'")
    return name


class RemoteCommands:
    """The remote methods of :class:`dsv.Repo` (a mixin: ``self._repo`` is the :class:`Repository`)."""

    _repo: "Repository"

    @classmethod
    def clone(
        cls,
        url: str,
        path: str | os.PathLike[str] | None = None,
        *,
        rev: str | None = None,
        depth: int | None = None,
        paths: Sequence[str] | None = None,
        options: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> "Repo":
        """Clone the remote ``url`` (any fsspec URL or folder) into ``path`` and check out ``rev``.

        ``depth`` and ``paths`` make a partial clone: only those revisions and
        paths are fetched now, the rest on demand from the remote (recorded as
        ``origin``). The clone's details are in ``repo.cloned``
        (:class:`dsv.api.remotes.CloneResult`).
        """
        repo, result = clone(url, path, rev=rev, depth=depth, paths=paths, options=options, progress=progress)
        repo.cloned = result
        return repo

    # -- configuration ---------------------------------------------------------------

    def remotes(self) -> list[RemoteInfo]:
        """Every configured remote, credentials masked."""
        cfg = self._repo.config
        return [RemoteInfo(n, mask_url(r.url), mask_options(r.options), cfg.promisor == n) for n, r in sorted(cfg.remotes.items())]

    def add_remote(self, name: str, url: str, options: dict[str, str] | None = None) -> RemoteInfo:
        """Configure remote ``name`` at ``url`` (an fsspec URL or a folder); ``options`` go to its filesystem.

        A config holding a credential is written with mode 0600.
        """
        from dsv.config import RemoteConfig

        check_remote_name(name)
        opts = {str(k): str(v) for k, v in (options or {}).items()}
        register_options(opts)
        stored = RemoteConfig(url=normalize_url(url), options=opts)

        def change(cfg: Any) -> Any:
            if name in cfg.remotes:
                raise RefExistsError(f"remote {name}")
            return cfg.model_copy(update={"remotes": {**cfg.remotes, name: stored}})

        self._repo.update_config(change)
        return RemoteInfo(name, mask_url(stored.url), mask_options(opts))

    def remove_remote(self, name: str) -> RemoteInfo:
        """Forget remote ``name``: its config, its remote-tracking refs and cached indexes."""
        cfg = self._repo.config
        if name not in cfg.remotes:
            raise UnknownRemoteError(name)
        old = cfg.remotes[name]

        def change(c: Any) -> Any:
            remotes = {k: v for k, v in c.remotes.items() if k != name}
            return c.model_copy(update={"remotes": remotes, "promisor": None if c.promisor == name else c.promisor})

        self._repo.update_config(change)
        refs = self._repo.refs
        for short in refs.list(f"{REMOTES}/{name}"):
            refs.update(f"{REMOTES}/{name}/{short}", None, expected=None, check=False)
        import shutil

        shutil.rmtree(os.path.join(self._repo.layout.refs, "remotes", name), ignore_errors=True)  # folders left empty
        shutil.rmtree(os.path.join(self._repo.layout.dsv, "remotes", name), ignore_errors=True)  # cached indexes
        return RemoteInfo(name, mask_url(old.url), mask_options(old.options))

    def _remote(self, name: str | None) -> "RemoteRepo":
        if name is None:
            remotes = self._repo.config.remotes
            if "origin" in remotes or not remotes:
                name = "origin"
            elif len(remotes) == 1:
                name = next(iter(remotes))
            else:
                raise UsageError("several remotes are configured: name one", hint="dsv push NAME ...; see 'dsv remote list'")
        return self._repo.open_remote(name)

    # -- push ------------------------------------------------------------------------

    def push(
        self,
        remote: str | None = None,
        refs: Sequence[str] = (),
        *,
        all_branches: bool = False,
        tags: bool = False,
        force: bool = False,
        force_with_lease: bool = False,
        progress: Progress | None = None,
    ) -> "PushResult":
        """Push branches and tags (default: the current branch) and the metrics records of their commits.

        A ref whose remote tip is not an ancestor of the local one is rejected
        (:class:`PushRejectedError`, carrying the result as ``.result``) unless
        ``force``; ``force_with_lease`` forces only while the remote still holds
        what ``refs/remotes/<remote>/<branch>`` says it held. Every ref moves by
        compare-and-swap, so even a forced push never overwrites a push that
        landed after it read the remote.
        """
        from dsv.remote import PushSpec
        from dsv.remote import push as do_push
        from dsv.remote.graph import peel, reachable_commits

        repo = self._repo
        rem = self._remote(remote)
        local_refs = repo.refs
        names: list[str] = []
        if all_branches:
            # The current branch first: the first branch a push creates becomes the remote's default (clone's checkout).
            current = local_refs.head().branch
            names += sorted((f"{HEADS}/{b}" for b in local_refs.list(HEADS)), key=lambda n: n != f"{HEADS}/{current}")
        if tags:
            names += [f"{TAGS}/{t}" for t in local_refs.list(TAGS)]
        for r in refs:
            names.append(self._full_ref(r))
        if not names:
            head = local_refs.head()
            if head.branch is None or head.commit is None:
                raise UsageError("nothing to push: HEAD is not on a branch with commits", hint="dsv push REMOTE BRANCH")
            names.append(f"{HEADS}/{head.branch}")
        names = list(dict.fromkeys(names))
        specs = []
        for full in names:
            value = local_refs.read(full)
            lease: Any = None
            if force_with_lease and full.startswith(HEADS + "/"):
                lease = local_refs.read(f"{REMOTES}/{rem.name}/{full[len(HEADS) + 1:]}")
                specs.append(PushSpec(full, value, force=True, lease=lease))
            else:
                specs.append(PushSpec(full, value, force=force or force_with_lease))
        # Metrics records travel with the commits they describe.
        commits = []
        for s in specs:
            if s.new is not None:
                try:
                    commits.append(peel(repo.store.read, s.new)[0])
                except DsvError:
                    continue
        reach = reachable_commits(repo.store.read, commits)
        for short, oid in local_refs.list("refs/metrics").items():
            if short.split("/", 1)[0] in reach:
                specs.append(PushSpec(f"refs/metrics/{short}", oid))
        try:
            result = do_push(repo.store, rem, specs, progress=progress)
        finally:
            rem.close()
        for u in result.refs:
            if u.ref.startswith(HEADS + "/") and u.status.value in ("created", "fast-forward", "forced", "up-to-date") and u.new:
                tracking = f"{REMOTES}/{rem.name}/{u.ref[len(HEADS) + 1:]}"
                if local_refs.read(tracking) != u.new:
                    local_refs.update(tracking, u.new, expected=None, check=False)
        rejected = [u for u in result.rejected if not u.ref.startswith("refs/metrics/")]
        if rejected:
            first = rejected[0]
            hint = None
            if "non-fast-forward" in (first.reason or "") or "fetch first" in (first.reason or ""):
                hint = f"fetch first: run 'dsv pull {rem.name}' and push again, or --force to replace the remote history"
            elif "stale" in (first.reason or ""):
                hint = f"run 'dsv fetch {rem.name}' and check what changed before forcing"
            elif first.reason == "already exists":
                hint = "the remote already has a different one; --force replaces it"
            err = PushRejectedError(rem.display, first.ref, first.reason or "rejected", hint=hint)
            err.result = result  # type: ignore[attr-defined]
            raise err
        return result

    def _full_ref(self, name: str) -> str:
        refs = self._repo.refs
        if name.startswith(("refs/heads/", "refs/tags/")):
            return name
        if refs.read(f"{HEADS}/{name}") is not None:
            return f"{HEADS}/{name}"
        if refs.read(f"{TAGS}/{name}") is not None:
            return f"{TAGS}/{name}"
        raise UnknownRevisionError(name, detail="no local branch or tag of that name")

    # -- fetch and pull --------------------------------------------------------------

    def fetch(self, remote: str | None = None, *, progress: Progress | None = None) -> "FetchResult":
        """Fetch every ref of the remote: branches as ``<remote>/<branch>``, new tags and metrics records.

        In a partial clone, only commits and manifest roots come now; file
        contents are fetched when a checkout or diff needs them.
        """
        from dsv.remote import fetch as do_fetch

        repo = self._repo
        rem = self._remote(remote)
        partial = repo.config.promisor == rem.name
        try:
            with repo.write_lock():
                return do_fetch(repo.local_store, repo.refs, rem, depth=1 if partial else None, paths=[] if partial else None, progress=progress)
        finally:
            rem.close()

    def pull(self, remote: str | None = None, branch: str | None = None, *, progress: Progress | None = None) -> PullResult:
        """Fetch, then fast-forward the current branch (and the working tree) to ``<remote>/<branch>``.

        Refuses a branch that has diverged, and local changes the update would
        overwrite (as a checkout does): nothing changes then.
        """
        from dsv.remote.graph import is_ancestor

        self_repo: "Repo" = self  # type: ignore[assignment]
        repo = self._repo
        head = repo.refs.head()
        branch = branch or head.branch
        if branch is None:
            raise UsageError("HEAD is detached: name the branch to pull", hint="dsv pull REMOTE BRANCH")
        fetched = self.fetch(remote, progress=progress)
        target = repo.refs.read(f"{REMOTES}/{fetched.remote}/{branch}")
        if target is None:
            raise RemoteError(fetched.url, f"has no branch {branch!r}", hint=f"see 'dsv branch --list'; push it first with 'dsv push {fetched.remote} {branch}'")
        current = repo.refs.read(f"{HEADS}/{branch}")
        if current == target:
            return PullResult(fetched, branch, current, target, "up-to-date")
        if current is not None and not is_ancestor(repo.store.read, current, target):
            if is_ancestor(repo.store.read, target, current):
                return PullResult(fetched, branch, current, target, "up-to-date")
            raise RemoteError(
                fetched.url,
                f"cannot fast-forward {branch}: it and {fetched.remote}/{branch} have diverged",
                hint=f"dsv has no merge: keep your commits on another branch ('dsv branch mine'), then 'dsv checkout -f {fetched.remote}/{branch}'",
            )
        on_branch = head.branch == branch
        if on_branch:
            # The tree first (refuses to clobber local edits, changes nothing then), then the branch.
            res = self_repo.checkout(target, progress=progress)
            with repo.write_lock():
                repo.refs.update(f"{HEADS}/{branch}", target, expected=current)
                repo.refs.set_head(branch=branch)
            return PullResult(fetched, branch, current, target, "created" if current is None else "fast-forward", res.written, res.removed)
        with repo.write_lock():
            repo.refs.update(f"{HEADS}/{branch}", target, expected=current)
        return PullResult(fetched, branch, current, target, "created" if current is None else "fast-forward")

    # -- remote gc ---------------------------------------------------------------------

    def gc_remote(self, remote: str | None = None, grace_seconds: float = 14 * 86400) -> "RemoteGcResult":
        """Prune packs of the remote that no remote ref reaches (see docs/remotes.md for the protocol)."""
        from dsv.remote.gc import gc_remote

        if grace_seconds < 0:
            raise UsageError("grace period must not be negative")
        rem = self._remote(remote)
        try:
            return gc_remote(rem, grace_seconds)
        finally:
            rem.close()

    # -- partial clones ------------------------------------------------------------------

    def _refuse_commit_in_sparse_clone(self) -> None:
        """A clone limited to paths lacks the other files: a commit would record them as deleted."""
        path = os.path.join(self._repo.layout.dsv, SPARSE_FILE)
        if os.path.exists(path):
            try:
                with open(path, "rb") as f:
                    paths = json.loads(f.read()).get("paths", [])
            except (OSError, ValueError, AttributeError):
                paths = []
            raise WorktreeError(
                f"this clone holds only {', '.join(paths) or 'some paths'}: a commit would record every other file as removed",
                hint="run 'dsv checkout -f HEAD' to check out every path (fetched on demand), then commit",
            )

    def _after_full_checkout(self) -> None:
        """A whole-tree checkout ends a clone's path limit."""
        try:
            os.unlink(os.path.join(self._repo.layout.dsv, SPARSE_FILE))
        except FileNotFoundError:
            pass


def clone(
    url: str,
    path: str | os.PathLike[str] | None = None,
    *,
    rev: str | None = None,
    depth: int | None = None,
    paths: Sequence[str] | None = None,
    options: dict[str, str] | None = None,
    remote_name: str = "origin",
    progress: Progress | None = None,
) -> tuple["Repo", CloneResult]:
    """Clone ``url`` into ``path`` (default: the URL's last component); see :meth:`dsv.Repo.clone`."""
    from dsv.api.repo import Repo, _repo_relative
    from dsv.remote import RemoteRepo
    from dsv.remote import fetch as do_fetch
    from dsv.remote.graph import peel
    from dsv.repository import Repository

    check_remote_name(remote_name)
    url_n = normalize_url(url)
    opts = {str(k): str(v) for k, v in (options or {}).items()}
    register_options(opts)
    if depth is not None and depth < 1:
        raise UsageError("--depth must be at least 1")
    rel_paths = [p for p in (_repo_relative(p) for p in paths) if p] if paths else None
    if paths and not rel_paths:
        rel_paths = None
    if path is None:
        base = url_n.rstrip("/").rsplit("/", 1)[-1] or "dataset"
        path = base[:-4] if base.endswith(".dsv") else base
    dest = os.path.abspath(os.fspath(path))
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        what = "a dsv repository" if os.path.isdir(os.path.join(dest, ".dsv")) else "not an empty folder" if os.path.isdir(dest) else "a file"
        raise RepositoryExistsError(dest, message=f"cannot clone into {dest}: it exists and is {what}", hint="name another folder, or empty this one")
    # The remote is read before anything is created: a wrong URL or credentials change nothing here.
    probe = RemoteRepo(remote_name, url_n, opts)
    try:
        doc, token = probe.refs.read()
        if token is None:
            probe.check_is_repository()
    finally:
        probe.close()
    heads = {n[len(HEADS) + 1 :]: v for n, v in doc.refs.items() if n.startswith(HEADS + "/")}
    branch: str | None = None
    ref: str | None = None
    if rev is None:
        branch = doc.head if doc.head in heads else (sorted(heads)[0] if heads else None)
        ref = f"{HEADS}/{branch}" if branch else None
    elif rev in heads:
        branch, ref = rev, f"{HEADS}/{rev}"
    elif f"{TAGS}/{rev}" in doc.refs:
        ref = f"{TAGS}/{rev}"
    else:
        raise UnknownRevisionError(rev, detail=f"no branch or tag of that name on {mask_url(url_n)}")
    partial = depth is not None or rel_paths is not None
    created = not os.path.exists(dest)
    try:
        Repository.init(dest, branch=branch or doc.head or "main")
        repo = Repo(dest)
        repo.add_remote(remote_name, url_n, opts)
        if partial:
            repo.repository.update_config(lambda c: c.model_copy(update={"promisor": remote_name}))
            repo = Repo(dest)  # reopened: its store now fetches what it lacks from the promisor
        inner = repo.repository
        rem = inner.open_remote(remote_name)
        try:
            with inner.write_lock():
                fetched = do_fetch(inner.local_store, inner.refs, rem, only=None if not partial else [ref] if ref else [], depth=depth, paths=rel_paths, progress=progress)
        finally:
            rem.close()
        commit = None
        written = 0
        if ref is not None:
            commit = peel(inner.store.read, doc.refs[ref])[0]
            if rel_paths is not None:
                with open(os.path.join(inner.layout.dsv, SPARSE_FILE), "w") as f:
                    json.dump({"format": 1, "paths": rel_paths}, f)
            source = f"{remote_name}/{branch}" if branch else rev
            res = repo.checkout(source, rel_paths, progress=progress)
            written = res.written
            if branch is not None:
                inner.refs.create(HEADS, branch, commit)
                inner.refs.set_head(branch=branch)
    except BaseException:
        import shutil

        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for name in os.listdir(dest):
                full = os.path.join(dest, name)
                if os.path.isdir(full) and not os.path.islink(full):
                    shutil.rmtree(full, ignore_errors=True)
                else:
                    try:
                        os.unlink(full)
                    except OSError:
                        pass
        raise
    result = CloneResult(dest, mask_url(url_n), commit, branch, fetched, written, partial, tuple(rel_paths or ()), depth)
    return Repo(dest), result
