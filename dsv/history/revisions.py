"""Revision expressions and history walks.

Grammar (a subset of git's ``gitrevisions``)::

    rev    := base suffix*
    base   := HEAD | @ | <branch> | <tag> | <remote>/<branch> | <commit id> | <unique id prefix, 4+ hex>
    suffix := ~N | ~ | ^N | ^        (N-th first-parent ancestor; N-th parent)

Names resolve in the order: full id, HEAD, branch, tag, remote branch (``origin/main``), id prefix.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dsv.base.errors import AmbiguousRevisionError, ObjectNotFoundError, UnknownRevisionError
from dsv.base.hashing import is_object_id
from dsv.base.records import FrozenRecord, init_field
from dsv.history.documents import Commit, Tag, document_type, read_commit, read_tag
from dsv.history.refs import HEADS, REMOTES, TAGS, RefStore

if TYPE_CHECKING:
    from dsv.store.base import ObjectStore

_SUFFIX = re.compile(r"(~|\^)(\d*)")
_HEX = re.compile(r"[0-9a-f]{4,32}")


class Resolved(FrozenRecord):
    """A resolved revision: the commit, and the tag it came through (if any)."""

    __slots__ = ("commit_id", "commit", "tag", "tag_name")

    commit_id: str
    commit: Commit
    tag: Tag | None
    tag_name: str | None

    def __init__(self, commit_id: str, commit: Commit, tag: Tag | None = None, tag_name: str | None = None) -> None:
        init_field(self, "commit_id", commit_id)
        init_field(self, "commit", commit)
        init_field(self, "tag", tag)
        init_field(self, "tag_name", tag_name)


class History:
    """Reads commits and resolves revisions against a store and its refs."""

    def __init__(self, store: "ObjectStore", refs: RefStore) -> None:
        self.store = store
        self.refs = refs

    def commit(self, oid: str) -> Commit:
        """Read one commit."""
        return read_commit(self.store, oid)

    def _peel(self, oid: str, name: str) -> tuple[str, Tag | None]:
        """Follow a tag object to its commit."""
        try:
            data = self.store.read(oid)
        except ObjectNotFoundError as err:
            missing = UnknownRevisionError(name, detail=f"it points at missing object {oid}")
            if err.hint != ObjectNotFoundError.default_hint:
                missing.hint = err.hint  # the store knows why (a damaged pack index, a quarantined copy)
            raise missing from None
        if document_type(data) == "tag":
            tag = read_tag(self.store, oid)
            return tag.object, tag
        return oid, None

    def _by_prefix(self, prefix: str) -> list[str]:
        matches = []
        for oid in self.store.ids_with_prefix(prefix):  # type: ignore[attr-defined]
            try:
                if self.store.size(oid) > 1 << 20:
                    continue
                if document_type(self.store.read(oid)) in ("commit", "tag"):
                    matches.append(oid)
            except ObjectNotFoundError:
                continue
        return sorted(set(matches))

    def _base(self, name: str) -> tuple[str, Tag | None, str | None]:
        if name in ("HEAD", "@"):
            head = self.refs.head()
            if head.commit is None:
                raise UnknownRevisionError(name, detail=f"branch '{head.branch}' has no commits yet")
            return head.commit, None, None
        if is_object_id(name):
            oid, tag = self._peel(name, name)
            return oid, tag, None
        branch = self.refs.read(f"{HEADS}/{name}") if _valid_lookup(name) else None
        if branch:
            return branch, None, None
        tag_target = self.refs.read(f"{TAGS}/{name}") if _valid_lookup(name) else None
        if tag_target:
            oid, tag = self._peel(tag_target, name)
            return oid, tag, name
        remote = self.refs.read(f"{REMOTES}/{name}") if "/" in name and _valid_lookup(name) else None
        if remote:
            oid, tag = self._peel(remote, name)
            return oid, tag, None
        hex_name = name.lower()  # ids are written in lowercase; typed (or pasted) in either case, as git reads them
        if is_object_id(hex_name):
            oid, tag = self._peel(hex_name, name)
            return oid, tag, None
        if _HEX.fullmatch(hex_name):
            found = self._by_prefix(hex_name)
            if len(found) > 1:
                raise AmbiguousRevisionError(name, found)
            if found:
                oid, tag = self._peel(found[0], name)
                return oid, tag, None
        unknown = UnknownRevisionError(name)
        if ".." in name:
            unknown.hint = "give the two revisions as two arguments ('dsv diff A B'); only 'dsv changelog' reads A..B"
        elif re.fullmatch(r"[0-9a-fA-F]{1,3}", name):
            unknown.hint = "a commit id prefix needs at least 4 hex digits"
        raise unknown

    def resolve(self, rev: str) -> Resolved:
        """Resolve a revision expression to a commit."""
        rev = rev.strip()
        m = re.search(r"(?:[~^]\d*)+$", rev)
        base_name, suffixes = (rev[: m.start()], m.group(0)) if m else (rev, "")
        if not base_name:
            raise UnknownRevisionError(rev)
        oid, tag, tag_name = self._base(base_name)
        try:
            commit = self.commit(oid)
        except ObjectNotFoundError:
            # The name exists; the commit it names does not (lost or set aside as corrupt): data, not usage.
            raise ObjectNotFoundError(oid, context=f"revision '{rev}'") from None
        for op, num in _SUFFIX.findall(suffixes):
            n = int(num) if num else 1
            if op == "~":
                for _ in range(n):
                    if not commit.parents:
                        raise UnknownRevisionError(rev, detail="history is not that deep")
                    oid = commit.parents[0]
                    commit = self.commit(oid)
            else:
                if n == 0:
                    continue
                if len(commit.parents) < n:
                    raise UnknownRevisionError(rev, detail=f"commit {oid[:10]} has no parent {n}")
                oid = commit.parents[n - 1]
                commit = self.commit(oid)
            tag, tag_name = None, None
        return Resolved(oid, commit, tag, tag_name)

    def walk(self, start: str | list[str], *, limit: int | None = None) -> Iterator[tuple[str, Commit]]:
        """Ancestors of ``start`` (inclusive), newest first, each once."""
        starts = [start] if isinstance(start, str) else list(start)
        seen: set[str] = set()
        heap: list[tuple[float, int, str, Commit]] = []
        counter = 0
        for s in starts:
            if s not in seen:
                seen.add(s)
                c = self.commit(s)
                heapq.heappush(heap, (-c.time.timestamp(), counter, s, c))
                counter += 1
        emitted = 0
        while heap and (limit is None or emitted < limit):
            _, _, oid, commit = heapq.heappop(heap)
            yield oid, commit
            emitted += 1
            for p in commit.parents:
                if p not in seen:
                    seen.add(p)
                    pc = self.commit(p)
                    counter += 1
                    heapq.heappush(heap, (-pc.time.timestamp(), counter, p, pc))


def _valid_lookup(name: str) -> bool:
    return bool(name) and ".." not in name and not name.startswith("/") and "\x00" not in name
