"""The pydantic-free reader of commits and tags (dsv.history.documents) agrees with the models that write them.

Every command reads commits through the light parser; the pydantic models
(dsv.history.objects) define the format. For valid documents and for every
kind of damage, both must give the same verdict, and the same fields.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest

from dsv.base.errors import CorruptMetadataError, FormatVersionError
from dsv.history import documents, objects

A, B = "a" * 32, "b" * 32
T = dt.datetime(2025, 3, 1, 14, 5, 9, tzinfo=dt.timezone(dt.timedelta(hours=1)))

COMMIT = json.loads(
    objects.Commit(manifest=A, parents=(B,), author="Ada", email="ada@example.org", time=T, message="m\n\nbody", summary=objects.CommitSummary(files=3, bytes=9, added=1)).to_json_bytes()
)
TAG = json.loads(objects.Tag(object=A, name="v1", tagger="T", time=T, message="exp", meta={"run": "42"}).to_json_bytes())

_MISSING = object()


def _variants(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The document, and each kind of damage to it."""
    bad_values: list[Any] = [None, True, 0, 1.5, "", "x", [], {}, [A], "2025-03-01T14:05:09", "2025-03-01", 1740834309, "A" * 32, "a" * 31]
    out = [("valid", doc)]
    for key in list(doc):
        d = copy.deepcopy(doc)
        del d[key]
        out.append((f"without {key}", d))
        for v in bad_values:
            d = copy.deepcopy(doc)
            d[key] = v
            out.append((f"{key}={v!r}", d))
    for key, v in [("extra", 1), ("format", 2), ("format", 0), ("format", "1"), ("format", False), ("time", "2025-03-01T14:05:09Z"), ("time", "2025-03-01 14:05:09+00:00"), ("time", "2025-03-01T14:05:09.123456-08:00")]:
        d = copy.deepcopy(doc)
        d[key] = v
        out.append((f"{key}={v!r}", d))
    for sub in ("summary", "meta"):
        if sub in doc:
            for key, v in [("extra", 1), ("files", True), ("files", 1.0), ("bytes", "9"), ("added", None), ("run", 42), ("run", None)]:
                d = copy.deepcopy(doc)
                d[sub] = dict(d[sub])
                d[sub][key] = v
                out.append((f"{sub}.{key}={v!r}", d))
    if "parents" in doc:
        for v in ([A, "nope"], [A, A], [1], (), [B, None]):
            d = copy.deepcopy(doc)
            d["parents"] = v
            out.append((f"parents={v!r}", d))
    return out


def _verdict(parse: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "ok", parse(data)
    except FormatVersionError:
        return "newer", None
    except CorruptMetadataError:
        return "malformed", None


@pytest.mark.parametrize(
    ("model", "light", "doc", "fields"),
    [
        (objects.Commit, documents.parse_commit, COMMIT, ("manifest", "parents", "author", "email", "time", "message", "format", "type")),
        (objects.Tag, documents.parse_tag, TAG, ("object", "name", "tagger", "email", "time", "message", "meta", "format", "type")),
    ],
)
def test_the_light_reader_agrees_with_the_models(model: Any, light: Any, doc: dict[str, Any], fields: tuple[str, ...]) -> None:
    checked = 0
    for what, variant in _variants(doc):
        data = json.dumps(variant).encode()
        want = _verdict(lambda b: model.from_json_bytes(b, what="doc"), data)
        got = _verdict(lambda b: light(b, what="doc"), data)
        assert got[0] == want[0], (what, want[0], got[0])
        if want[0] == "ok":
            for f in fields:
                w, g = getattr(want[1], f), getattr(got[1], f)
                assert (dict(w) if isinstance(w, dict) else w) == g, (what, f, w, g)
            if model is objects.Commit:
                assert want[1].summary.model_dump() == {k: getattr(got[1].summary, k) for k in ("files", "bytes", "added", "removed", "modified", "moved")}
        checked += 1
    assert checked > 50
    for raw in (b"", b"[]", b"{", b'"x"', b"\xff\xfe", b"null"):
        assert _verdict(lambda b: light(b, what="doc"), raw)[0] == _verdict(lambda b: model.from_json_bytes(b, what="doc"), raw)[0] == "malformed"


def test_commands_read_commits_without_importing_pydantic(tmp_path: Any) -> None:
    """The point of the light reader: log/status/show start without pydantic (~80 ms)."""
    import subprocess
    import sys

    import dsv

    (tmp_path / "a.txt").write_text("x")
    dsv.Repo.init(tmp_path).commit("one")
    code = (
        "import sys\n"
        "sys.argv = ['dsv', 'log']\n"
        "from dsv.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('PYDANTIC' if 'pydantic' in sys.modules else 'CLEAN')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("CLEAN"), out


# -- the write path: commit and checkout-record documents written without pydantic -----------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_oids = st.text("0123456789abcdef", min_size=32, max_size=32)
_times = st.builds(
    lambda secs, micro, offset: dt.datetime(2000, 1, 1, tzinfo=dt.timezone(dt.timedelta(minutes=offset))) + dt.timedelta(seconds=secs, microseconds=micro),
    st.integers(0, 2_000_000_000),
    st.sampled_from([0, 0, 123, 999_999]),
    st.integers(-23 * 60, 23 * 60),
)


@settings(max_examples=300, deadline=None)
@given(_oids, st.lists(_oids, max_size=3), st.text(), st.text(), _times, st.text(), st.lists(st.integers(0, 2**62), min_size=6, max_size=6))
def test_commit_bytes_are_what_the_model_writes(manifest: str, parents: list[str], author: str, email: str, when: dt.datetime, message: str, n: list[int]) -> None:
    fast = documents.Commit(manifest, author, when, message, documents.CommitSummary(*n), tuple(parents), email)
    model = objects.Commit(
        manifest=manifest, parents=tuple(parents), author=author, email=email, time=when, message=message,
        summary=objects.CommitSummary(files=n[0], bytes=n[1], added=n[2], removed=n[3], modified=n[4], moved=n[5]),
    )
    assert documents.commit_bytes(fast) == model.to_json_bytes()
    assert documents.parse_commit(documents.commit_bytes(fast), what="c") == documents.parse_commit(model.to_json_bytes(), what="c")


def test_commit_bytes_refuse_what_the_model_refuses() -> None:
    summary = documents.CommitSummary(1, 1)
    with pytest.raises(ValueError):
        documents.commit_bytes(documents.Commit("A" * 32, "a", T, "m", summary))
    with pytest.raises(ValueError):
        documents.commit_bytes(documents.Commit(A, "a", T, "m", summary, ("nope",)))
    with pytest.raises(ValueError):
        documents.commit_bytes(documents.Commit(A, "a", T.replace(tzinfo=None), "m", summary))


@settings(max_examples=200, deadline=None)
@given(st.text(), _oids, st.none() | _oids, st.none() | st.lists(st.text(), max_size=3), _times)
def test_checkout_record_is_what_its_model_writes_and_reads(rev: str, commit: str, source: str | None, paths: list[str] | None, when: dt.datetime) -> None:
    from dsv.worktree.pending import CheckoutRecord
    from dsv.worktree.pending_model import CheckoutRecordModel

    record = CheckoutRecord(rev, commit, source, None if paths is None else tuple(paths), when)
    model = CheckoutRecordModel(rev=rev, commit=commit, source=source, paths=record.paths, started=when)
    assert record.to_json_bytes() == model.to_json_bytes()
    back = CheckoutRecordModel.from_json_bytes(record.to_json_bytes(), what="r")
    assert (back.rev, back.commit, back.source, back.paths, back.started) == (rev, commit, source, record.paths, when)
