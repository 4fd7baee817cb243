"""The compiled counting kernels against NumPy's definitions of the same results."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lmbench.models.ngram.sorting import (
    _radix_sort,
    chunk_keys,
    count_chunk,
    merge_runs,
    remap_rows,
    sorted_lookup,
)

# keys from a narrow range (many ties), a wide one (every radix digit used) and near the int64 limit
key_arrays = st.one_of(
    st.lists(st.integers(0, 20), max_size=300),
    st.lists(st.integers(0, 2**62), max_size=300),
    st.lists(st.integers(2**62, 2**63 - 1), max_size=50),
    st.lists(st.integers(10**9, 10**9 + 3000), max_size=300),
).map(lambda xs: np.array(xs, dtype=np.int64))


@settings(max_examples=200, deadline=None)
@given(key_arrays)
def test_sort_with_order_is_a_stable_sort(keys):
    sorted_keys, order = _radix_sort(keys.copy(), np.arange(len(keys), dtype=np.int32))  # sorts in place
    assert np.array_equal(sorted_keys, np.sort(keys))
    assert np.array_equal(order, np.argsort(keys, kind="stable"))


@settings(max_examples=200, deadline=None)
@given(key_arrays, st.integers(0, 5))
def test_count_chunk_is_np_unique_through_positions(keys, gap):
    positions = (np.arange(len(keys)) * (gap + 1) + 3).astype(np.int32)  # ascending, not 0..n-1
    size = len(keys) * (gap + 1) + 4
    start_rows = np.random.default_rng(len(keys)).integers(-1, 1000, size).astype(np.int32)
    rows = np.full(size, -1, dtype=np.int32)
    uniq, counts, suffix = count_chunk(keys.copy(), positions.copy(), start_rows, rows)
    ref_uniq, ref_index, ref_inverse, ref_counts = np.unique(
        keys, return_index=True, return_inverse=True, return_counts=True
    )
    assert np.array_equal(uniq, ref_uniq)
    assert np.array_equal(counts, ref_counts)
    assert np.array_equal(suffix, start_rows[positions[ref_index] + 1])  # at each key's first position
    assert np.array_equal(rows[positions], ref_inverse.reshape(-1))
    untouched = np.ones(len(rows), dtype=bool)
    untouched[positions] = False
    assert (rows[untouched] == -1).all()
    # without rows: the same groups
    again = count_chunk(keys.copy(), positions.copy(), start_rows)
    assert all(np.array_equal(x, y) for x, y in zip(again, (uniq, counts, suffix), strict=True))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.integers(0, 60), max_size=40), min_size=1, max_size=7))
def test_merge_runs_sums_counts_of_equal_keys(raw_runs):
    runs = []
    for values in raw_runs:
        keys, counts = np.unique(np.array(values, dtype=np.int64), return_counts=True)
        runs.append((keys, counts, (keys * 7 % 11).astype(np.int32)))  # suffix: a function of the key
    keys, counts, suffix = merge_runs(runs)
    everything = np.array([v for values in raw_runs for v in values], dtype=np.int64)
    ref_keys, ref_counts = np.unique(everything, return_counts=True)
    assert np.array_equal(keys, ref_keys)
    assert np.array_equal(counts, ref_counts)
    assert np.array_equal(suffix, ref_keys * 7 % 11)
    assert suffix.dtype == np.int32


def test_chunk_keys_and_remap_rows_match_numpy():
    rng = np.random.default_rng(0)
    n, V, m = 500, 37, 3
    seq = rng.integers(0, V, n).astype(np.int32)
    joined = rng.random(n - 1) > 0.1
    start_rows = rng.integers(-1, 100, n).astype(np.int32)
    a, b = 17, n - m + 1
    pos, keys = chunk_keys(start_rows, seq, joined, a, b, m, V, np.dtype(np.int32))
    p = np.arange(a, b)
    ok = (start_rows[p] >= 0) & joined[p + m - 2]
    assert np.array_equal(pos, p[ok])
    assert np.array_equal(keys, start_rows[p[ok]].astype(np.int64) * V + seq[p[ok] + m - 1])

    rows = rng.integers(-1, 10, n).astype(np.int32)
    mapping = rng.integers(0, 1000, 10)
    expected = rows.copy()
    inside = np.zeros(n, dtype=bool)
    inside[a:b] = True
    expected[inside & (rows >= 0)] = mapping[rows[inside & (rows >= 0)]]
    remap_rows(rows, a, b, mapping)
    assert np.array_equal(rows, expected)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10**6), max_size=300), st.lists(st.integers(-5, 10**6 + 5), max_size=100))
def test_sorted_lookup_is_searchsorted(keys, queries):
    keys = np.unique(np.array(keys, dtype=np.int64))
    queries = np.sort(np.array(queries, dtype=np.int64))
    assert np.array_equal(sorted_lookup(keys, queries), np.searchsorted(keys, queries))
