"""Results as tables: every summary of the API converts to Arrow and pandas.

A :class:`ResultTable` holds rows (plain dicts, as in the ``--json`` output) and
a fixed column list, so an empty result still has its columns and types.
pyarrow is imported when a table is asked for; pandas only by ``to_pandas``,
which raises a clear error when pandas is not installed (it is optional).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

Column = tuple[str, str]
"""A column: name and type (``string``, ``int64``, ``float64``, ``bool``, ``timestamp``)."""


class ResultTable:
    """Rows of one summary, with ``to_arrow()``, ``to_pandas()`` and ``to_pylist()``.

    >>> t = ResultTable([{"class": "cat", "n": 3}], [("class", "string"), ("n", "int64")])
    >>> t.to_arrow().column("n").to_pylist()
    [3]
    >>> len(t), t.to_pylist()
    (1, [{'class': 'cat', 'n': 3}])
    """

    def __init__(self, rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
        self.rows = list(rows)
        self.columns = list(columns)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __repr__(self) -> str:
        return f"ResultTable({len(self.rows)} rows: {', '.join(c for c, _ in self.columns)})"

    def to_pylist(self) -> list[dict[str, Any]]:
        """The rows as a list of dicts."""
        return [dict(r) for r in self.rows]

    def schema(self) -> "pa.Schema":
        """The Arrow schema of :meth:`to_arrow`."""
        import pyarrow as pa

        types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC")}
        return pa.schema([pa.field(name, types[kind]) for name, kind in self.columns])

    def to_arrow(self) -> "pa.Table":
        """An Arrow table (columns in order, types fixed even when empty)."""
        import pyarrow as pa

        schema = self.schema()
        return pa.table({name: pa.array([r.get(name) for r in self.rows], type=schema.field(name).type) for name, _ in self.columns}, schema=schema)

    def to_pandas(self) -> Any:
        """A pandas DataFrame (pandas is optional: ``pip install pandas``)."""
        try:
            import pandas  # noqa: F401
        except ImportError as err:
            raise ImportError("to_pandas() needs pandas: pip install pandas (or use to_arrow())") from err
        return self.to_arrow().to_pandas()


class ResultList(list):  # type: ignore[type-arg]
    """A list of results (``log``, ``metrics``, ``changelog``) that is also a table.

    Subclasses say how one item becomes rows (:meth:`rows_of`) and which columns
    the table has (:attr:`columns`).
    """

    columns: Sequence[Column] = ()

    def rows_of(self, item: Any) -> list[dict[str, Any]]:
        """The table rows one item contributes."""
        raise NotImplementedError

    @property
    def table(self) -> ResultTable:
        """All items as one table."""
        return ResultTable([row for item in self for row in self.rows_of(item)], self.columns)

    def to_arrow(self) -> "pa.Table":
        """:attr:`table` as an Arrow table."""
        return self.table.to_arrow()

    def to_pandas(self) -> Any:
        """:attr:`table` as a pandas DataFrame (pandas is optional)."""
        return self.table.to_pandas()


__all__ = ["Column", "ResultList", "ResultTable"]
