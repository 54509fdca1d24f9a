"""``dsv checkout``: check, stage, then switch the working tree (:meth:`dsv.Repo.checkout` delegates here).

The planning (what to write, delete and keep) is :mod:`dsv.api.checkout_plan`;
the writing is :mod:`dsv.worktree.checkout`. This module holds the order of a
checkout under its locks: the stopped-checkout record, the plan, staging, the
record, the switch, HEAD, the stat cache.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dsv.api.worktree_results import CheckoutResult, Warnings
from dsv.base.errors import CheckoutInProgressError, CorruptMetadataError, DsvError, UncommittedChangesError, UsageError
from dsv.base.progress import Progress
from dsv.history.refs import HEADS
from dsv.worktree.status import worktree_status

if TYPE_CHECKING:
    from dsv.api.repo import Repo
    from dsv.manifest import Manifest


def checkout(
    api: Repo, rev: str | None = None, paths: Sequence[str] | None = None, *, force: bool = False, progress: Progress | None = None
) -> CheckoutResult:
    """:meth:`dsv.Repo.checkout` (see there)."""
    from dsv.api.checkout_plan import file_folder_clashes, plan_full, plan_paths, plan_switch
    from dsv.api.repo import _repo_relative
    from dsv.history.documents import now
    from dsv.worktree.checkout import prepare, remove_leftovers, stage, staging_folder, sweep_staging, switch
    from dsv.worktree.pending import CheckoutRecord, clear_record, write_record

    repo = api._repo
    warn = Warnings()
    if rev is None:
        if not paths:
            raise UsageError("checkout needs a revision or paths", hint="dsv checkout REV, or dsv checkout [REV] -- PATH...")
        rev = "HEAD"
    rel = [_repo_relative(p) for p in paths] if paths else None
    with repo.write_lock():
        # HEAD's lock first: a checkout that could not move HEAD must not touch the tree.
        with repo.refs.head_lock(timeout=repo.settings.lock_timeout):
            repo.store.refresh()
            sweep_staging(repo.layout.dsv)
            target = api.resolve(rev)
            try:
                pending = api._pending_checkout(locked=True)
            except CorruptMetadataError:
                if not force:
                    raise
                pending = None  # a garbled record: --force checks out over it
            record_paths = tuple(rel) if rel else None
            if pending is not None and not force and (pending.commit != target.commit_id or pending.paths != record_paths):
                raise CheckoutInProgressError(pending.rev, pending.command(), hint="finish it first, or pass --force to check out another version")
            head = repo.refs.head()
            cache = repo.load_statcache(head.commit)
            ignore = repo.ignore_rules()
            target_manifest = api._manifest(target.commit)
            head_manifest = api._manifest(api._repo.history.commit(head.commit)) if head.commit else None
            switching = rel is None and not force and pending is None
            # A switch writes only what differs from HEAD: chunks HEAD holds too need no check.
            _refuse_malformed(target_manifest, rev, head_manifest if switching else None)
            monitor = None
            if switching:
                # The common switch: only the paths HEAD and the target disagree on are looked at.
                plan = plan_switch(api.root, cache, head_manifest, target_manifest)
                # Asked before the switch writes anything; what it reports stays pending (below).
                monitor = repo.monitor_session(cache)
            else:
                status = worktree_status(api.root, cache, ignore, warn)
                if status.leftovers:
                    remove_leftovers(api.root, status.leftovers)
                if rel is not None:
                    plan = plan_paths(api.root, cache, status, target_manifest, rel)
                else:
                    pending_manifest = None
                    if pending is not None and pending.paths is None:
                        pending_manifest = api._manifest(api._repo.history.commit(pending.commit))
                    plan = plan_full(api.root, cache, status, head_manifest, target_manifest, force=force, pending=pending_manifest, ignore=ignore)
            if plan.conflicts:
                raise UncommittedChangesError(sorted(plan.conflicts))
            clash = file_folder_clashes(target_manifest, plan.writes)
            if clash:
                from dsv.base.errors import UnsafePathError

                raise UnsafePathError(clash[1], f"'{clash[0]}' is also a file in {rev}; nothing in the working tree was changed")
            if rel is None and head.branch is None and head.commit and head.commit != target.commit_id and not api._reachable_from_refs(head.commit):
                warn(
                    f"leaving commit {head.commit[:10]}, which no branch or tag reaches; keep it with "
                    f"'dsv branch NAME {head.commit[:10]}' (gc removes it after the grace period)"
                )
            # Where HEAD goes: a branch name attaches it; 'HEAD' keeps the current branch.
            branch = head.branch
            if rel is None:
                branch = None
                if rev in ("HEAD", "@") and head.branch is not None:
                    branch = head.branch  # 'dsv checkout -f HEAD' discards changes; it does not leave the branch
                elif re.fullmatch(r"[^~^]+", rev) and repo.refs.read(f"{HEADS}/{rev}") is not None:
                    branch = rev
            writing_from_ns = time.time_ns()  # the stat keys of the files written are taken after this
            prepared = prepare(api.root, repo.store, plan.writes, plan.removals, force=force)
            staged = stage(prepared, repo.store, staging_folder(api.root), progress)
            # The record names what re-running means: the branch, or the commit (never 'HEAD~1').
            record = CheckoutRecord(
                rev=branch if rel is None and branch else target.commit_id, commit=target.commit_id, source=head.commit, paths=record_paths, started=now()
            )
            try:
                repo.upgrade_format()  # a format-1 dsv must not miss the record below
                write_record(repo.layout.dsv, record)
                keys, removed = switch(staged)
                if rel is None:
                    if branch is not None:
                        repo.refs.set_head(branch=branch, locked=True)
                    else:
                        repo.refs.set_head(commit=target.commit_id, locked=True)
            except DsvError as err:
                if os.path.exists(os.path.join(repo.layout.dsv, "CHECKOUT")):
                    err.hint = f"the checkout stopped part-way: fix the cause, then run `{record.command()}` to finish it"
                raise
            finally:
                staged.discard()
            if rel is None:
                new_cache = plan.new_cache(keys, target.commit_id, target.commit.manifest)
                new_cache.opened_ns = min(new_cache.opened_ns, writing_from_ns)
                repo.save_statcache(new_cache)
                if monitor is not None and monitor.changed is not None:
                    # The switch looked only at what it wrote: every other path the monitor
                    # reported is still to be looked at, so status stays monitored.
                    monitor.record(new_cache.identity, monitor.changed)
                api._after_full_checkout()  # dsv.api.remotes: a whole tree ends a clone's path limit
            else:
                plan.refresh_cache(cache, keys)
                if head.commit is not None:
                    repo.save_statcache(cache)
            clear_record(repo.layout.dsv)
    return CheckoutResult(
        target.commit_id,
        branch,
        len(plan.writes),
        removed,
        sum(w.size for w in plan.writes),
        tuple(paths or ()),
        tuple(warn.items),
        tuple(sorted(plan.overwritten)),
    )


def _refuse_malformed(manifest: "Manifest", rev: str, trusted: "Manifest | None" = None) -> None:
    """A forged or damaged snapshot (paths repeated or unsorted, unknown modes) is never written.

    ``trusted``: HEAD's manifest in a switch, whose shared chunks are not read again.
    """
    from dsv.base.errors import CorruptMetadataError
    from dsv.manifest import manifest_problems

    problems = manifest_problems(manifest, trusted)
    if problems:
        raise CorruptMetadataError(
            f"the snapshot of {rev}", problems[0], hint="run 'dsv fsck'; nothing in the working tree was changed"
        )
