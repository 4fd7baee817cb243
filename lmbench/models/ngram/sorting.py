"""Sorting and grouping n-gram keys: compiled (numba) kernels for the counting hot path.

Counting sorts every token position's int64 key and groups equal keys (``np.unique`` with first indices,
counts and the inverse). NumPy does that with a stable argsort, several times slower than a sort of values;
here a least-significant-digit radix sort carries the positions along (stable by construction, so the first
position of each key comes first), then one pass groups. The results are ``np.unique``'s, bit for bit.
Counting imports this module when it runs, so that loading lmbench does not load Numba.
"""

from __future__ import annotations

import numba
import numpy as np

RADIX_BITS = 11  # 2048 buckets: the counts fit in L1 cache, and 44-bit keys take 4 passes
RADIX = 1 << RADIX_BITS
MERGE_FAN_IN = 8  # runs merged in one pass (more: merged in groups of this many first)


@numba.njit(cache=True, nogil=True)
def _radix_sort(keys: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``keys`` (int64) sorted, and ``index`` permuted the same way; stable. Works in place: both inputs are
    overwritten, and the sorted arrays returned are either them or one scratch buffer each. One read counts
    every digit; a digit all keys share (the high ones, for keys in a narrow range) is not scattered."""
    n = len(keys)
    if n == 0:
        return keys, index
    low = keys.min()
    span = keys.max() - low
    digits = 0
    while digits * RADIX_BITS < 63 and (span >> (digits * RADIX_BITS)) > 0:
        digits += 1
    a = keys
    counts = np.zeros((max(digits, 1), RADIX), np.int64)
    for i in range(n):
        k = a[i] - low  # non-negative: the digits order the keys
        a[i] = k
        for j in range(digits):
            counts[j, (k >> (j * RADIX_BITS)) & (RADIX - 1)] += 1
    b = np.empty_like(a)
    i_a = index
    i_b = np.empty_like(i_a)
    for j in range(digits):
        offsets = counts[j]
        if offsets.max() == n:  # every key has the same digit here
            continue
        total = 0
        for d in range(RADIX):
            c = offsets[d]
            offsets[d] = total
            total += c
        shift = j * RADIX_BITS
        for i in range(n):
            d = (a[i] >> shift) & (RADIX - 1)
            p = offsets[d]
            offsets[d] = p + 1
            b[p] = a[i]
            i_b[p] = i_a[i]
        a, b = b, a
        i_a, i_b = i_b, i_a
    for i in range(n):
        a[i] += low
    return a, i_a


@numba.njit(cache=True, nogil=True)
def _group(sorted_keys, sorted_positions, start_rows, rows):
    """Distinct keys of ``sorted_keys`` (positions sorted stably with them), how often each occurs and
    ``start_rows[p + 1]`` at its first position p; ``rows[p]`` gets every key's group number when ``rows``
    is not empty."""
    n = len(sorted_keys)
    groups = 1 if n else 0
    for i in range(1, n):
        if sorted_keys[i] != sorted_keys[i - 1]:
            groups += 1
    uniq = np.empty(groups, np.int64)
    counts = np.zeros(groups, sorted_positions.dtype)  # a count fits where a position does
    suffix = np.empty(groups, start_rows.dtype)
    write_rows = len(rows) > 0
    g = -1
    for i in range(n):
        p = sorted_positions[i]
        if i == 0 or sorted_keys[i] != sorted_keys[i - 1]:
            g += 1
            uniq[g] = sorted_keys[i]
            suffix[g] = start_rows[p + 1]
        counts[g] += 1
        if write_rows:
            rows[p] = g
    return uniq, counts, suffix


def count_chunk(
    keys: np.ndarray, positions: np.ndarray, start_rows: np.ndarray, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A chunk of m-gram keys (``keys[i]`` starts at ``positions[i]``, ascending) counted into a run: the
    distinct keys (sorted), how often each occurs and its suffix row, ``start_rows[p + 1]`` at its first
    position p (the (m-1)-gram starting one position later). With ``rows``, ``rows[positions[i]]`` is set
    to the number of key i's group (``np.unique``'s inverse, written in place). ``keys`` and ``positions``
    are overwritten: the sort works in place."""
    # the positions travel through the sort themselves (not indices into them): no second random access
    sorted_keys, sorted_positions = _radix_sort(keys, positions)
    return _group(
        sorted_keys, sorted_positions, start_rows, rows if rows is not None else np.zeros(0, np.int32)
    )


@numba.njit(cache=True, nogil=True)
def _merge(keys, counts, suffix):
    """Merge sorted runs of distinct keys (tuples of one array per run: keys, counts, suffix rows) in one
    pass: each step takes the smallest head key and sums the counts of the runs that have it. The runs are
    read where they are: no concatenated copy."""
    runs = len(keys)
    heads = np.zeros(runs, np.int64)
    ends = np.zeros(runs, np.int64)
    for r in range(runs):
        ends[r] = len(keys[r])
    size = ends.sum()
    out_keys = np.empty(size, np.int64)
    out_counts = np.empty(size, counts[0].dtype)
    out_suffix = np.empty(size, suffix[0].dtype)
    k = 0
    while True:
        smallest = np.iinfo(np.int64).max
        found = False
        for r in range(runs):
            if heads[r] < ends[r] and (not found or keys[r][heads[r]] < smallest):
                smallest = keys[r][heads[r]]
                found = True
        if not found:
            break
        total = 0
        first = True
        for r in range(runs):
            h = heads[r]
            if h < ends[r] and keys[r][h] == smallest:
                if first:
                    out_suffix[k] = suffix[r][h]
                    first = False
                total += counts[r][h]
                heads[r] = h + 1
        out_keys[k] = smallest
        out_counts[k] = total
        k += 1
    return out_keys[:k].copy(), out_counts[:k].copy(), out_suffix[:k].copy()


Run = tuple[np.ndarray, np.ndarray, np.ndarray]  # sorted distinct keys, their counts, their suffix rows


def merge_runs(runs: list[Run]) -> Run:
    """Sorted runs of distinct keys (with counts and suffix rows) merged into one, counts of equal
    keys summed (the suffix row is a function of the n-gram, so any run's copy is the same), in one pass.
    Counts keep the runs' dtype (int32 while the corpus positions fit: a count never exceeds them)."""
    if not runs:
        raise ValueError("no runs to merge")
    while len(runs) > MERGE_FAN_IN:  # each step scans every run's head: merge many runs in groups first
        runs = [merge_runs(runs[i : i + MERGE_FAN_IN]) for i in range(0, len(runs), MERGE_FAN_IN)]
    count_dtype = np.result_type(*(r[1].dtype for r in runs))
    suffix_dtype = np.result_type(*(r[2].dtype for r in runs))
    keys, counts, suffix = (
        tuple(np.ascontiguousarray(r[i], dtype) for r in runs)
        for i, dtype in enumerate((np.int64, count_dtype, suffix_dtype))
    )
    if len(runs) == 1:
        return keys[0], counts[0], suffix[0]
    return _merge(keys, counts, suffix)


@numba.njit(cache=True, nogil=True)
def sorted_lookup(keys, queries):
    """``np.searchsorted(keys, queries)`` for ascending ``queries``: each search gallops forward from where
    the previous one ended (the queries are a chunk's distinct keys, a sparse ascending subset of ``keys``),
    so memory is read mostly in order."""
    n = len(keys)
    out = np.empty(len(queries), np.int64)
    pos = 0
    for i in range(len(queries)):
        q = queries[i]
        step = 1
        lo = pos
        while lo + step < n and keys[lo + step] < q:
            lo += step
            step *= 2
        hi = min(lo + step, n)  # keys[lo] < q or lo == pos; the answer is in [lo, hi]
        if lo < n and keys[lo] >= q:
            hi = lo
        while lo < hi:
            mid = (lo + hi) // 2
            if keys[mid] < q:
                lo = mid + 1
            else:
                hi = mid
        out[i] = lo
        pos = lo
    return out


@numba.njit(cache=True, nogil=True)
def chunk_keys(start_rows, seq, joined, a, b, m, vocab_size, position_dtype):
    """Start positions p in [a, b) whose m-gram stays inside its segment, and that m-gram's key
    ``start_rows[p] * V + seq[p + m - 1]`` (``start_rows[p]``: the row of the (m-1)-gram starting at p, -1
    where it leaves its segment; ``joined[p]``: positions p and p+1 are in one segment)."""
    valid = 0
    for p in range(a, b):
        if start_rows[p] >= 0 and joined[p + m - 2]:
            valid += 1
    pos = np.empty(valid, position_dtype)
    keys = np.empty(valid, np.int64)
    k = 0
    for p in range(a, b):
        if start_rows[p] >= 0 and joined[p + m - 2]:
            pos[k] = p
            keys[k] = np.int64(start_rows[p]) * vocab_size + seq[p + m - 1]
            k += 1
    return pos, keys


@numba.njit(cache=True, nogil=True)
def remap_rows(rows, a, b, mapping):
    """``rows[p] = mapping[rows[p]]`` for p in [a, b) where ``rows[p] >= 0``, in place (a chunk's group
    numbers -> rows of the merged table)."""
    for p in range(a, b):
        if rows[p] >= 0:
            rows[p] = mapping[rows[p]]
