"""dsv.base.compute calls Arrow kernels without pyarrow.compute: each must equal pyarrow.compute's answer."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from dsv.base import compute

paths = st.lists(st.one_of(st.none(), st.text(alphabet="ab/é0 ", max_size=4)), max_size=30)
ints = st.lists(st.one_of(st.none(), st.integers(-(2**40), 2**40)), max_size=30)


@settings(max_examples=150, deadline=None)
@given(paths, paths, ints, st.integers(0, 3))
def test_every_kernel_equals_pyarrow_compute(values: list, value_set: list, numbers: list, chunks: int) -> None:
    arr = pa.array(values, pa.string())
    chunked = pa.chunked_array([arr[i::4] for i in range(chunks)] if chunks else [], pa.string()) if chunks else arr
    vs = pa.array([v for v in value_set if v is not None], pa.string())
    assert compute.is_in(arr, vs).equals(pc.is_in(arr, value_set=vs))
    assert compute.index_in(arr, vs).equals(pc.index_in(arr, value_set=vs))
    assert compute.is_in(chunked, vs).equals(pc.is_in(chunked, value_set=vs))
    mask = pc.is_in(arr, value_set=vs)
    assert compute.invert(mask).equals(pc.invert(mask))
    assert compute.is_valid(arr).equals(pc.is_valid(arr))
    assert compute.drop_null(arr).equals(pc.drop_null(arr))
    assert compute.indices_nonzero(mask).equals(pc.indices_nonzero(mask))
    assert compute.sort_indices(arr).equals(pc.sort_indices(arr))
    assert compute.sort_indices(chunked).equals(pc.sort_indices(chunked))
    assert compute.starts_with(arr, "a").equals(pc.starts_with(arr, "a"))
    other = pa.array(list(reversed(values)), pa.string())
    assert compute.equal(arr, other).equals(pc.equal(arr, other))
    assert compute.not_equal(arr, other).equals(pc.not_equal(arr, other))
    assert compute.less(arr, other).equals(pc.less(arr, other))
    m2 = pc.is_valid(other)
    assert compute.or_(mask, m2).equals(pc.or_(mask, m2))
    nums = pa.array(numbers, pa.int64())
    assert compute.sum_of(nums) == pc.sum(nums).as_py()
    assert compute.min_of(nums) == pc.min(nums).as_py()
    assert compute.subtract(nums, pa.scalar(3, pa.int64())).equals(pc.subtract(nums, pa.scalar(3, pa.int64())))
    if len(mask) and mask.null_count < len(mask):
        assert compute.all_true(mask) == pc.all(mask).as_py()
    assert compute.all_true(pa.array([], pa.bool_())) is True
    table = pa.table({"path": arr, "n": pa.array(range(len(values)), pa.int64())})
    assert compute.filter_rows(table, mask).equals(table.filter(mask))
    idx = pa.array(list(range(len(values)))[::-1], pa.int64())
    assert compute.take_rows(table, idx).equals(table.take(idx))
    assert compute.sort_by(table, "path").equals(table.sort_by("path"))
