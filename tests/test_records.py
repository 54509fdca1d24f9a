"""dsv.base.records: the value classes on the start-up paths behave as the dataclasses they replaced."""

from __future__ import annotations

import pytest

from dsv.api.status import StatusResult, Warnings
from dsv.base.records import FrozenRecord, Record, init_field
from dsv.history.refs import Head
from dsv.semantic.report import SourceDiff, Totals
from dsv.settings import Settings


class Point(FrozenRecord):
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int = 0) -> None:
        init_field(self, "x", x)
        init_field(self, "y", y)


class Box(Record):
    __slots__ = ("items",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, items: list[int]) -> None:
        self.items = items


def test_equality_hash_and_repr_come_from_the_fields() -> None:
    assert Point(1, 2) == Point(1, 2) and Point(1, 2) != Point(2, 1)
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert repr(Point(1, 2)) == "Point(x=1, y=2)"
    assert Point(1, 2) != (1, 2)  # a record is not a tuple
    assert Head("main", None) != Point(1, 2)
    assert {Head("main", "a" * 32), Head("main", "a" * 32)} == {Head("main", "a" * 32)}


def test_frozen_records_refuse_assignment_and_replace_makes_copies() -> None:
    p = Point(1, 2)
    with pytest.raises(AttributeError, match="immutable"):
        p.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        del p.y
    q = p.replace(y=7)
    assert (p, q) == (Point(1, 2), Point(1, 7))
    with pytest.raises(TypeError):
        p.replace(z=1)
    st = StatusResult("main", None, (), (), (), ())
    with pytest.raises(AttributeError):
        st.branch = "other"  # type: ignore[misc]
    assert st.replace(added=("a",)).added == ("a",) and st.clean
    with pytest.raises(AttributeError):
        Settings().lock_timeout = 1.0  # type: ignore[misc]


def test_mutable_records_are_unhashable_and_have_no_instance_dict() -> None:
    with pytest.raises(TypeError):
        hash(Box([1]))
    with pytest.raises(TypeError):
        hash(Warnings())
    assert Box([1]) == Box([1])
    with pytest.raises(AttributeError):
        Box([1]).other = 1  # type: ignore[attr-defined]


def test_result_records_keep_their_json_shapes() -> None:
    t = Totals(before=3, after=5, added=2)
    assert t.to_dict() == {"before": 3, "after": 5, "added": 2, "removed": 0, "relabeled": 0, "modified": 0, "unchanged": 0, "moved": 0}
    assert t.changed and not Totals().changed
    s = SourceDiff("labels", "table", read=True, totals=t)
    assert s.to_dict()["totals"] == t.to_dict() and s.changed
    assert s.replace(cells_truncated=True).to_dict()["rows"] == {"cells": [], "truncated": True}


@pytest.mark.parametrize(
    "value",
    [
        Point(1, 2),
        Totals(1, 2, 3),
        SourceDiff("labels", "table", read=True, totals=Totals(before=1)),
        StatusResult("main", "a" * 32, ("x",), (), (), (("a", "b"),), ("w",), "dsv checkout v1"),
        Settings(5.0, "me", None, True),
        Head("main", None),
        Box([1, 2]),
    ],
)
def test_records_pickle_and_copy_as_dataclasses_do(value: object) -> None:
    import copy
    import pickle

    for clone in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
        assert type(clone) is type(value) and clone == value


def test_every_frozen_record_takes_its_fields_in_slot_order() -> None:
    # __reduce__ (pickle, copy) passes the fields positionally in __slots__ order.
    import importlib
    import inspect
    import pkgutil

    import dsv

    for info in pkgutil.walk_packages(dsv.__path__, "dsv."):
        if not info.name.endswith("__main__"):  # that one runs the command
            importlib.import_module(info.name)
    todo, seen = list(FrozenRecord.__subclasses__()), []
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo += cls.__subclasses__()
        params = list(inspect.signature(cls.__init__).parameters)[1:]
        assert params[: len(cls.__slots__)] == list(cls.__slots__), cls
    assert {c.__name__ for c in seen} >= {"StatusResult", "Settings", "SemanticDiff", "SourceDiff", "Totals"}


def test_records_that_were_frozen_dataclasses_stay_frozen() -> None:
    from dsv.base.layout import RepoLayout
    from dsv.history.documents import Commit, CommitSummary
    from dsv.manifest.diff import ChangeKind, FileChange
    from dsv.store.local import StoredCopy

    for value, field in (
        (Head("main", None), "branch"),
        (RepoLayout("/tmp/x"), "root"),
        (StoredCopy("a" * 32, "loose", "/x", 1), "size"),
        (CommitSummary(1, 2), "files"),
        (FileChange(ChangeKind.ADDED, "a.txt"), "path"),
    ):
        with pytest.raises(AttributeError, match="immutable"):
            setattr(value, field, None)
        hash(value)
    assert Commit("m" * 32, "me", None, "msg", CommitSummary(1, 2)).parents == ()  # type: ignore[arg-type]


def test_lazy_package_exports_import_list_and_complete() -> None:
    # dsv.api and dsv.store load their names on first use (PEP 562); they still behave as eager exports.
    import dsv.api
    import dsv.store

    assert {"LocalObjectStore", "MemoryObjectStore", "ObjectStore", "ObjectWriter"} <= set(dir(dsv.store))
    assert "Repo" in dir(dsv.api)
    from dsv.api import Repo
    from dsv.store import LocalObjectStore, MemoryObjectStore

    assert Repo.__module__ == "dsv.api.repo" and LocalObjectStore.__module__ == "dsv.store.local"
    assert MemoryObjectStore.__module__ == "dsv.store.memory"
    with pytest.raises(AttributeError):
        dsv.store.NoSuchStore  # noqa: B018
    with pytest.raises(ImportError):
        from dsv.api import NoSuchThing  # noqa: F401


def test_records_match_positional_patterns_as_dataclasses_do() -> None:
    match StatusResult("main", None, ("a.txt",), (), (), ()):
        case StatusResult(branch, head, added):
            assert (branch, head, added) == ("main", None, ("a.txt",))
        case _:
            raise AssertionError("no match")
    match Head("dev", None):
        case Head("dev", None):
            pass
        case _:
            raise AssertionError("no match")
