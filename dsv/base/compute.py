"""The Arrow compute kernels of the version-control paths, called without importing ``pyarrow.compute``.

``import pyarrow.compute`` costs ~30 ms: it wraps each of ~290 kernels in a
Python function and scrapes every options class's docstring. ``dsv checkout``
and ``dsv commit`` of 20,000 files take ~0.1-0.2 s in all, so that import was
a fifth of them, for the dozen kernels the manifest diff, patch and checks use.
Here each is one ``call_function`` on the kernel registry, which is what the
generated wrappers call in the end (``pyarrow._compute``, ~5 ms to import).
Should a pyarrow release move it, the public module is used instead; the
tests compare every function here with ``pyarrow.compute`` on the same input.

The semantic diff and the audits, which use many more kernels and are never
start-up bound, import ``pyarrow.compute`` as usual.
"""

from __future__ import annotations

from typing import Any

try:  # the kernel registry itself; pyarrow.compute re-exports these names
    from pyarrow._compute import (
        FilterOptions,
        MatchSubstringOptions,
        ScalarAggregateOptions,
        SetLookupOptions,
        SortOptions,
        TakeOptions,
        call_function,
    )
except ImportError:  # pragma: no cover - a pyarrow that moved its private module
    from pyarrow.compute import (  # type: ignore[attr-defined,no-redef]
        FilterOptions,
        MatchSubstringOptions,
        ScalarAggregateOptions,
        SetLookupOptions,
        SortOptions,
        TakeOptions,
        call_function,
    )

_AGGREGATE = ScalarAggregateOptions(skip_nulls=True, min_count=1)


def is_in(values: Any, value_set: Any) -> Any:
    """``pc.is_in(values, value_set=value_set)``: whether each value is in the set (nulls never match)."""
    return call_function("is_in", [values], SetLookupOptions(value_set, skip_nulls=False))


def index_in(values: Any, value_set: Any) -> Any:
    """``pc.index_in``: each value's position in the set, or null."""
    return call_function("index_in", [values], SetLookupOptions(value_set, skip_nulls=False))


def is_valid(values: Any) -> Any:
    """``pc.is_valid``: not null."""
    return call_function("is_valid", [values])


def invert(mask: Any) -> Any:
    """``pc.invert``: boolean not."""
    return call_function("invert", [mask])


def or_(a: Any, b: Any) -> Any:
    """``pc.or_``: boolean or (null if either is null)."""
    return call_function("or", [a, b])


def equal(a: Any, b: Any) -> Any:
    """``pc.equal``."""
    return call_function("equal", [a, b])


def not_equal(a: Any, b: Any) -> Any:
    """``pc.not_equal``."""
    return call_function("not_equal", [a, b])


def less(a: Any, b: Any) -> Any:
    """``pc.less``."""
    return call_function("less", [a, b])


def subtract(a: Any, b: Any) -> Any:
    """``pc.subtract`` (wrapping on overflow, as pyarrow's default)."""
    return call_function("subtract", [a, b])


def starts_with(values: Any, prefix: str) -> Any:
    """``pc.starts_with(values, prefix)``."""
    return call_function("starts_with", [values], MatchSubstringOptions(prefix))


def all_true(mask: Any) -> bool:
    """``pc.all(mask).as_py()`` as a bool (nulls skipped; an empty input is true)."""
    return bool(call_function("all", [mask], ScalarAggregateOptions(skip_nulls=True, min_count=0)).as_py())


def sum_of(values: Any) -> Any:
    """``pc.sum(values).as_py()``: the sum, or ``None`` for no (non-null) values."""
    return call_function("sum", [values], _AGGREGATE).as_py()


def min_of(values: Any) -> Any:
    """``pc.min(values).as_py()``: the minimum, or ``None`` for no (non-null) values."""
    return call_function("min", [values], _AGGREGATE).as_py()


def drop_null(values: Any) -> Any:
    """``pc.drop_null``."""
    return call_function("drop_null", [values])


def indices_nonzero(mask: Any) -> Any:
    """``pc.indices_nonzero``: positions of the true values."""
    return call_function("indices_nonzero", [mask])


def filter_rows(data: Any, mask: Any) -> Any:
    """``data.filter(mask)`` for a table or array (rows where the mask is null are dropped)."""
    return call_function("filter", [data, mask], FilterOptions("drop"))


def take_rows(data: Any, indices: Any) -> Any:
    """``data.take(indices)`` for a table or array."""
    return call_function("take", [data, indices], TakeOptions(boundscheck=True))


def sort_indices(data: Any, key: str | None = None) -> Any:
    """``pc.sort_indices``: ascending, nulls last; ``key`` names the column of a table (an array: ``None``)."""
    return call_function("sort_indices", [data], SortOptions([(key or "", "ascending")]))


def sort_by(table: Any, column: str) -> Any:
    """``table.sort_by(column)`` (ascending, stable)."""
    return take_rows(table, sort_indices(table, column))
