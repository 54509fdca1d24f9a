"""Commit and tag documents, refs with compare-and-swap, revision parsing and walks."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from dsv.base.errors import (
    AmbiguousRevisionError,
    CorruptMetadataError,
    FormatVersionError,
    InvalidRefNameError,
    RefConflictError,
    RefExistsError,
    UnknownRevisionError,
)
from dsv.history.objects import Commit, CommitSummary, Tag, read_commit
from dsv.history.refs import HEADS, RefStore, check_ref_name
from dsv.history.revisions import History
from dsv.store import MemoryObjectStore

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _commit(store: MemoryObjectStore, parents: tuple[str, ...] = (), n: int = 0) -> str:
    c = Commit(
        manifest="a" * 32, parents=parents, author="A", time=T0 + dt.timedelta(minutes=n), message=f"c{n}", summary=CommitSummary(files=n, bytes=0)
    )
    w = store.begin_write()
    oid = w.add_bytes(c.to_json_bytes())
    w.commit()
    return oid


@pytest.fixture
def hist(tmp_path: Path) -> History:
    (tmp_path / "refs" / "heads").mkdir(parents=True)
    (tmp_path / "refs" / "tags").mkdir(parents=True)
    (tmp_path / "HEAD").write_text("ref: refs/heads/main\n")
    return History(MemoryObjectStore(), RefStore(str(tmp_path)))


def test_commit_json_is_canonical_and_round_trips() -> None:
    store = MemoryObjectStore()
    oid = _commit(store)
    data = store.objects[oid]
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    c = read_commit(store, oid)
    assert c.message == "c0" and c.format == 1


def test_newer_format_is_refused() -> None:
    doc = json.loads(Commit(manifest="a" * 32, author="A", time=T0, message="m", summary=CommitSummary(files=0, bytes=0)).to_json_bytes())
    doc["format"] = 2
    with pytest.raises(FormatVersionError):
        Commit.from_json_bytes(json.dumps(doc).encode(), what="commit")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("manifest"),
        lambda d: d.update(manifest="not-an-id"),
        lambda d: d.update(time="2026-01-01T00:00:00"),  # no UTC offset
        lambda d: d.update(extra_field=1),
        lambda d: d.update(parents=["zz"]),
    ],
)
def test_malformed_commit_is_refused(mutate) -> None:
    doc = json.loads(Commit(manifest="a" * 32, author="A", time=T0, message="m", summary=CommitSummary(files=0, bytes=0)).to_json_bytes())
    mutate(doc)
    with pytest.raises(CorruptMetadataError):
        Commit.from_json_bytes(json.dumps(doc).encode(), what="commit")


def test_reading_a_data_blob_as_commit_fails_clearly() -> None:
    store = MemoryObjectStore()
    w = store.begin_write()
    oid = w.add_bytes(b"\x89PNG not json")
    w.commit()
    with pytest.raises(CorruptMetadataError):
        read_commit(store, oid)


@pytest.mark.parametrize("name", ["", "HEAD", "-x", ".hidden", "a..b", "a b", "x.lock", "x.lock.stale-1", "a.lock/b", "a/.b", "a/", "a//b", "a~1", "a^", "a:b", "0" * 32])
def test_bad_ref_names(name: str) -> None:
    with pytest.raises(InvalidRefNameError):
        check_ref_name(name)


@pytest.mark.parametrize("name", ["main", "v1.0", "exp/42", "data-2026_01", "x.tmp-1", "a.stale-2"])
def test_good_ref_names(name: str) -> None:
    assert check_ref_name(name) == name


def test_ref_compare_and_swap(hist: History) -> None:
    refs = hist.refs
    a, b = "a" * 32, "b" * 32
    refs.update(f"{HEADS}/main", a, expected=None)
    with pytest.raises(RefConflictError):
        refs.update(f"{HEADS}/main", b, expected=None)
    refs.update(f"{HEADS}/main", b, expected=a)
    assert refs.read(f"{HEADS}/main") == b
    with pytest.raises(RefExistsError):
        refs.create("refs/heads", "main", a)
    refs.create("refs/heads", "main", a, force=True)
    assert refs.read(f"{HEADS}/main") == a


def test_listing_shows_every_valid_name(hist: History) -> None:
    for name in ("main", "x.tmp-1", "a.stale-2", "exp/42"):
        hist.refs.create("refs/heads", name, "a" * 32)
    assert list(hist.refs.list("refs/heads")) == ["a.stale-2", "exp/42", "main", "x.tmp-1"]


def test_corrupt_ref_is_reported(hist: History, tmp_path: Path) -> None:
    (tmp_path / "refs" / "heads" / "main").write_text("garbage\n")
    with pytest.raises(CorruptMetadataError):
        hist.refs.read(f"{HEADS}/main")


def test_revision_grammar(hist: History) -> None:
    c0 = _commit(hist.store, (), 0)
    c1 = _commit(hist.store, (c0,), 1)
    c2 = _commit(hist.store, (c1,), 2)
    side = _commit(hist.store, (c0,), 3)
    merge = _commit(hist.store, (c2, side), 4)
    hist.refs.update(f"{HEADS}/main", merge, expected=None)
    hist.refs.update("refs/tags/v1", c1, expected=None)
    assert hist.resolve("HEAD").commit_id == merge
    assert hist.resolve("main").commit_id == merge
    assert hist.resolve("HEAD~1").commit_id == c2
    assert hist.resolve("HEAD~3").commit_id == c0
    assert hist.resolve("HEAD^").commit_id == c2
    assert hist.resolve("HEAD^2").commit_id == side
    assert hist.resolve("HEAD^2~1").commit_id == c0
    assert hist.resolve("main~1^").commit_id == c1
    assert hist.resolve("v1").commit_id == c1
    assert hist.resolve(c1[:8]).commit_id == c1
    assert hist.resolve(c1).commit_id == c1
    for bad in ("nope", "HEAD~9", "HEAD^3", "v1~5", "~1"):
        with pytest.raises(UnknownRevisionError):
            hist.resolve(bad)
    order = [oid for oid, _ in hist.walk(merge)]
    assert order == [merge, side, c2, c1, c0]
    assert [oid for oid, _ in hist.walk(merge, limit=2)] == [merge, side]


def test_annotated_tag_resolves_through_tag_object(hist: History) -> None:
    c0 = _commit(hist.store)
    tag = Tag(object=c0, name="v1", tagger="T", time=T0, message="exp-42", meta={"run_id": "abc"})
    w = hist.store.begin_write()
    tid = w.add_bytes(tag.to_json_bytes())
    w.commit()
    hist.refs.update("refs/tags/v1", tid, expected=None)
    r = hist.resolve("v1")
    assert r.commit_id == c0 and r.tag is not None and r.tag.meta == {"run_id": "abc"} and r.tag_name == "v1"


def test_ambiguous_prefix(hist: History) -> None:
    seen: dict[str, str] = {}
    n = 0
    while True:  # birthday bound: a 4-digit collision comes within a few hundred commits
        oid = _commit(hist.store, (), n)
        n += 1
        if oid[:4] in seen:
            break
        seen[oid[:4]] = oid
    with pytest.raises(AmbiguousRevisionError):
        hist.resolve(oid[:4])
    assert hist.resolve(oid[:12]).commit_id == oid
    with pytest.raises(UnknownRevisionError):
        hist.resolve(oid[:3])  # prefixes need at least 4 digits
