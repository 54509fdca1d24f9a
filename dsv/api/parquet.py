"""``dsv.write_parquet``: Parquet files whose bytes change only where their rows change.

Byte-level chunking (how dsv stores big files) dedups a Parquet file well when
values change in place, but an inserted row moves every later row group:
row groups are cut every N rows, so each boundary after the insert shifts and
every later group is re-encoded. Measured in docs/benchmarks.md. This writer
keeps inserts local by cutting in two content-defined ways:

* **row groups** end after a row whose key hash has its low bits all zero (on
  average every ``rows_per_group`` rows, at least a quarter and at most eight
  times that: a forced cut at eight times is rare, e^-8 of the gaps), so a
  boundary depends on the row at it, not on its position;
* **data pages** inside each column chunk are cut by Arrow's content-defined
  chunking (``use_content_defined_chunking``, 32-128 KiB pages), so a changed
  value re-encodes only the pages around it;
* **dictionary encoding** only for low-cardinality columns (at most 10% distinct
  values: labels, splits): the dictionary of an id or float column holds every
  value of the row group, and one inserted value renumbers all later ones.

The file is ordinary Parquet: any reader reads it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dsv.base.errors import StorageError, UsageError

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_ROWS_PER_GROUP = 64 * 1024
PAGE_CHUNKING = {"min_chunk_size": 32 * 1024, "max_chunk_size": 128 * 1024}
DICTIONARY_MAX_DISTINCT = 0.10
MIN_GROUP_FACTOR = 0.25
"""A row group (but the last) holds at least this many times ``rows_per_group`` rows..."""
MAX_GROUP_FACTOR = 8
"""...and at most this many times."""


def row_group_bounds(table: "pa.Table", key: Sequence[str], rows_per_group: int) -> list[tuple[int, int]]:
    """``(start, stop)`` row ranges, cut where the hash of ``key`` columns has its low bits zero."""
    import duckdb
    import pyarrow.compute as pc

    n = table.num_rows
    if n == 0:
        return []
    if rows_per_group < 4 or rows_per_group & (rows_per_group - 1):
        raise UsageError(f"rows_per_group must be a power of two of at least 4, not {rows_per_group}")
    missing = [k for k in key if k not in table.column_names]
    if missing:
        raise UsageError(f"no column {missing[0]!r} in the table", hint="key names the columns whose hash places row-group boundaries")
    con = duckdb.connect()
    try:
        con.register("t", table.select(list(key)))
        cols = ", ".join('"' + k.replace('"', '""') + '"' for k in key)
        cut = con.sql(f"SELECT (hash({cols}) & {rows_per_group - 1}) = 0 AS cut FROM t").to_arrow_table()
    finally:
        con.close()
    candidates = pc.indices_nonzero(cut.column(0)).to_pylist()
    lo, hi = int(rows_per_group * MIN_GROUP_FACTOR), rows_per_group * MAX_GROUP_FACTOR
    bounds = []
    start = 0
    for c in candidates:
        end = c + 1
        while end - start > hi:  # a long stretch without a candidate: cut at the maximum
            bounds.append((start, start + hi))
            start += hi
        if end - start >= lo:
            bounds.append((start, end))
            start = end
    while n - start > hi:
        bounds.append((start, start + hi))
        start += hi
    if start < n:
        bounds.append((start, n))
    return bounds


def _dictionary_columns(table: "pa.Table") -> list[str] | bool:
    """Columns worth dictionary-encoding: few distinct values (labels, splits, flags)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return True
    out = []
    for name in table.column_names:
        col = table.column(name)
        try:
            distinct = pc.count_distinct(col).as_py()
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            continue  # nested types: leave them to the writer's default
        if distinct <= DICTIONARY_MAX_DISTINCT * table.num_rows:
            out.append(name)
    return out


def write_parquet(
    table: "pa.Table",
    path: str | os.PathLike[str],
    *,
    key: str | Sequence[str] | None = None,
    rows_per_group: int = DEFAULT_ROWS_PER_GROUP,
    **parquet_options: Any,
) -> int:
    """Write ``table`` to ``path`` as Parquet laid out for versioning; return the number of row groups.

    ``key`` names the column(s) whose values place row-group boundaries (an id
    column is best; default: every column). Other keyword arguments go to
    :class:`pyarrow.parquet.ParquetWriter` (``compression``, ...).

    The file is written beside ``path`` and renamed onto it when complete: a
    write that fails leaves whatever was at ``path`` as it was.

    Writing takes ~4-5x as long as :func:`pyarrow.parquet.write_table` (the
    boundaries are found by hashing the key, and many small row groups are
    written); in exchange, inserting 1% of the rows stores a few percent, not
    half the file again (docs/benchmarks.md).

    >>> import pyarrow as pa, tempfile, os
    >>> t = pa.table({"id": list(range(1000)), "label": ["cat", "dog"] * 500})
    >>> path = os.path.join(tempfile.mkdtemp(), "train.parquet")
    >>> write_parquet(t, path, key="id", rows_per_group=64) > 1
    True
    """
    import pyarrow.parquet as pq

    keys = [key] if isinstance(key, str) else list(key) if key is not None else list(table.column_names)
    bounds = row_group_bounds(table, keys, rows_per_group) or [(0, 0)]
    options = {"use_content_defined_chunking": PAGE_CHUNKING, "use_dictionary": _dictionary_columns(table), **parquet_options}
    target = os.fspath(path)
    # Written beside the target and renamed onto it once complete: a reader never sees half a
    # file, and a write that fails (a type the writer refuses, a full disk) leaves what was there.
    folder, name = os.path.split(os.path.abspath(target))
    tmp = os.path.join(folder, f".{name}.tmp-{os.urandom(6).hex()}")
    try:
        try:
            with pq.ParquetWriter(tmp, table.schema, **options) as writer:
                for start, stop in bounds:
                    writer.write_table(table.slice(start, stop - start), row_group_size=max(1, stop - start))
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as err:
        raise StorageError("write", target, err) from err
    return len(bounds)
