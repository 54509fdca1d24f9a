"""dsv.write_parquet keeps inserts local; measured through the real chunked store."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dsv
from dsv.base.errors import UsageError
from dsv.store.local import LocalObjectStore


def _table(ids: list[int], rng: random.Random) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "label": pa.array([rng.choice(["cat", "dog", "bird", "fish"]) for _ in ids]),
            "score": pa.array([rng.random() for _ in ids]),
            "note": pa.array([f"sample {i} " + "x" * (i % 17) for i in ids]),
        }
    )


def _stored_growth(tmp_path: Path, first: Path, second: Path) -> tuple[int, int]:
    store = LocalObjectStore.create(str(tmp_path / "objects"))

    def packed() -> int:
        return sum(os.path.getsize(os.path.join(store.packs_dir, n)) for n in os.listdir(store.packs_dir) if n.endswith(".pack"))

    for f in (first, second):
        w = store.begin_write()
        w.add_bytes(f.read_bytes())
        w.commit()
        if f is first:
            base = packed()
    return base, packed() - base


def test_an_insert_stays_local_with_the_writer_and_not_without(tmp_path: Path) -> None:
    n, k = 600_000, 6000
    # 1% new rows inserted in the middle of a table sorted by id.
    before = _table(list(range(0, n // 2)) + list(range(n // 2 + k, n + k)), random.Random(2))
    after = pa.concat_tables([before, _table(list(range(n // 2, n // 2 + k)), random.Random(3))]).sort_by("id")
    growth = {}
    for how in ("plain", "dsv"):
        a, b = tmp_path / f"{how}-a.parquet", tmp_path / f"{how}-b.parquet"
        if how == "plain":
            pq.write_table(before, a)
            pq.write_table(after, b)
        else:
            dsv.write_parquet(before, a, key="id", rows_per_group=16384)
            dsv.write_parquet(after, b, key="id", rows_per_group=16384)
        assert pq.read_table(b).equals(after)
        assert os.path.getsize(a) > 8 * 1024 * 1024  # large enough to be stored as chunks
        base, grown = _stored_growth(tmp_path / how, a, b)
        growth[how] = grown / base
    # At this small scale one row group is a tenth of the file; at 1 GiB see docs/benchmarks.md.
    assert growth["dsv"] < 0.2, growth
    assert growth["dsv"] < growth["plain"] / 2, growth


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    t = pa.table({"id": [1, 2, 3]})
    with pytest.raises(UsageError):
        dsv.write_parquet(t, tmp_path / "x.parquet", key="nope")
    with pytest.raises(UsageError):
        dsv.write_parquet(t, tmp_path / "x.parquet", rows_per_group=1000)
    assert dsv.write_parquet(t.slice(0, 0), tmp_path / "empty.parquet") == 1
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0


def test_a_failed_write_leaves_the_previous_file_and_no_half_written_one(tmp_path: Path) -> None:
    # pyarrow cannot write a dictionary of nulls: the writer used to leave an unreadable file behind.
    bad = pa.table({"id": [1], "label": pa.array([None]).dictionary_encode()})
    target = tmp_path / "x.parquet"
    with pytest.raises(pa.ArrowNotImplementedError):
        dsv.write_parquet(bad, target, key="id")
    assert not target.exists()
    good = pa.table({"id": [1, 2], "label": ["a", "b"]})
    dsv.write_parquet(good, target, key="id")
    with pytest.raises(pa.ArrowNotImplementedError):
        dsv.write_parquet(bad, target, key="id")
    assert pq.read_table(target).equals(good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.parquet"]


@pytest.mark.parametrize("rows_per_group", [4, 64])
def test_row_groups_stay_within_the_documented_bounds(tmp_path: Path, rows_per_group: int) -> None:
    from dsv.api.parquet import MAX_GROUP_FACTOR, MIN_GROUP_FACTOR

    ids = random.Random(7).sample(range(10**9), 20_000)
    path = tmp_path / "t.parquet"
    dsv.write_parquet(pa.table({"id": ids}), path, key="id", rows_per_group=rows_per_group)
    meta = pq.ParquetFile(path).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert max(sizes) <= rows_per_group * MAX_GROUP_FACTOR
    assert min(sizes[:-1]) >= max(1, int(rows_per_group * MIN_GROUP_FACTOR))  # (the last one ends with the table)
    assert sum(sizes) == len(ids)
