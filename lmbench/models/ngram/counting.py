"""Vectorised n-gram counting within a memory budget.

An n-gram table of order m is a sorted array of int64 keys, ``key = context_row * V + word``, where
``context_row`` is the row of the (m-1)-gram context in the order m-1 table (order 1: ``key = word``).
Keys fit in int64 for any realistic vocabulary and lookups are ``np.searchsorted``.

Counting goes order by order. For order m every position carries the row of the (m-1)-gram starting there
(int32, -1 where it would leave its segment); the keys of a chunk of positions are sorted and counted into a
*run* (unique keys + counts). Runs stay in memory while they fit the budget and are spilled to ``.npy``
files otherwise; merging them is one sort-and-reduce per key range, so memory stays bounded either way and
the merged table is the same, bit for bit, whichever path produced it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmbench.errors import ConfigError

log = logging.getLogger(__name__)

INT32_MAX = np.iinfo(np.int32).max
# bytes of work per counted position in one chunk: the int64 key, its sort permutation and sorted copy,
# the unique flags and the per-position row written back
BYTES_PER_CHUNK_POSITION = 40
MIN_CHUNK = 256
# bytes per entry of a run held in memory (int64 key, count and suffix row)
BYTES_PER_RUN_ENTRY = 24


def parse_memory(value: str | int | float | None) -> int:
    """Bytes from a KenLM-style size: ``"4G"``, ``"512M"``, ``"64K"``, ``"1.5G"``, ``"50%"`` (of physical
    memory), or a number of bytes. ``None``: half of the machine's physical memory.

    >>> parse_memory("4G"), parse_memory("64K"), parse_memory(1000)
    (4294967296, 65536, 1000)
    """
    if value is None:
        return physical_memory() // 2
    if isinstance(value, bool):
        raise ConfigError(f"memory: expected a size such as '4G', '512M' or '50%', got {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ConfigError(f"memory: expected a positive size, got {value!r}")
        return int(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGTkmgt%]?)(?:i?[Bb])?\s*", str(value))
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"memory: expected a size such as '4G', '512M' or '50%', got {value!r}")
    number, unit = float(match.group(1)), match.group(2).upper()
    if unit == "%":
        return int(physical_memory() * number / 100)
    return int(number * 1024 ** " KMGT".index(unit or " "))


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def index_dtype(n: int) -> type:
    """int32 where every value fits (halves the per-position and per-row arrays), else int64."""
    return np.int32 if n <= INT32_MAX else np.int64


@dataclass
class NgramTable:
    """All distinct n-grams of one order m with their statistics (row i is one n-gram)."""

    order: int
    keys: np.ndarray  # int64 [rows], sorted: context_row * V + word (order 1: word)
    counts: np.ndarray  # int32/int64 [rows]: raw occurrence counts
    context: np.ndarray  # int32/int64 [rows]: row of the first m-1 words in the order m-1 table (order 1: 0)
    suffix: np.ndarray  # int32/int64 [rows]: row of the last m-1 words in the order m-1 table (order 1: 0)
    vocab_size: int

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def word(self) -> np.ndarray:
        """The last word of every n-gram (computed from the keys: not stored)."""
        return self.keys % self.vocab_size

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.keys, self.counts, self.context, self.suffix) if a is not None)

    def release(self) -> None:
        """Drop all but the keys (what the fitted model keeps), once smoothing is past this order."""
        self.counts = self.context = self.suffix = None  # type: ignore[assignment]


@dataclass
class CountingStats:
    """What counting did, for logs and tests: chunks counted and runs spilled to disk."""

    chunks: int = 0
    spilled_runs: int = 0
    spill_bytes: int = 0
    budget: int = 0
    per_order_chunks: list[int] = field(default_factory=list)


def lookup(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Row of each query key in the sorted ``keys``, or -1 where absent."""
    if len(keys) == 0:
        return np.full(len(queries), -1, dtype=np.int64)
    pos = np.searchsorted(keys, queries)
    pos_clipped = np.minimum(pos, len(keys) - 1)
    return np.where(keys[pos_clipped] == queries, pos_clipped, -1).astype(np.int64)


def ending_rows(keys: Sequence[np.ndarray], seq: np.ndarray, vocab_size: int) -> list[np.ndarray]:
    """For every order m and position t, the row of the m-gram ``seq[t-m+1 .. t]`` (or -1 if not stored).

    ``rows[m-1][t]``; ``keys[m-1]``: order m's sorted keys (order 1 is the word itself: unigram tables are
    dense over the vocabulary).
    """
    seq = np.asarray(seq, dtype=np.int64)
    rows = [seq.copy()]
    for order_keys in keys[1:]:
        prev = np.empty_like(seq)
        prev[0] = -1
        prev[1:] = rows[-1][:-1]
        found = np.full(len(seq), -1, dtype=np.int64)
        ok = prev >= 0
        found[ok] = lookup(order_keys, prev[ok] * vocab_size + seq[ok])
        rows.append(found)
    return rows


def reduce_sorted_runs(
    keys: np.ndarray, counts: np.ndarray, suffix: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique keys (sorted), summed counts and the suffix row of concatenated runs (the suffix is a function
    of the n-gram, so any run's copy is the same)."""
    if len(keys) == 0:
        return keys.astype(np.int64), counts.astype(np.int64), suffix
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return keys[starts], np.add.reduceat(counts[order], starts).astype(np.int64), suffix[order[starts]]


class _Runs:
    """Sorted runs of (key, count) for one order: in memory while they fit ``budget`` bytes, else on disk."""

    def __init__(self, budget: int, spill_dir: Callable[[], Path], stats: CountingStats, order: int):
        self.budget, self.spill_dir, self.stats, self.order = budget, spill_dir, stats, order
        self.memory: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.files: list[tuple[Path, Path, Path]] = []
        self.held = 0

    def add(self, keys: np.ndarray, counts: np.ndarray, suffix: np.ndarray) -> None:
        self.memory.append((keys, counts.astype(np.int64), suffix))
        self.held += len(keys) * BYTES_PER_RUN_ENTRY
        if self.held > self.budget:
            self.spill()

    def spill(self) -> None:
        """Merge the runs held in memory into one sorted run and write it to disk."""
        if not self.memory:
            return
        arrays = reduce_sorted_runs(*(np.concatenate(parts) for parts in zip(*self.memory, strict=True)))
        self.memory, self.held = [], 0
        folder = self.spill_dir()
        stem = f"order{self.order}.run{len(self.files)}"
        paths = tuple(folder / f"{stem}.{name}.npy" for name in ("keys", "counts", "suffix"))
        for p, a in zip(paths, arrays, strict=True):
            np.save(p, a)
        self.files.append(paths)  # type: ignore[arg-type]
        self.stats.spilled_runs += 1
        self.stats.spill_bytes += sum(a.nbytes for a in arrays)

    def merge(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All runs merged: sorted unique keys, their total counts and suffix rows."""
        if not self.files and len(self.memory) == 1:  # one run: already sorted and unique
            return self.memory.pop()
        if not self.files and not self.memory:  # no n-gram of this order fits in any line
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
        if not self.files:
            merged = reduce_sorted_runs(*(np.concatenate(parts) for parts in zip(*self.memory, strict=True)))
            self.memory = []
            return merged
        self.spill()  # what is left in memory joins the runs on disk
        runs = [tuple(np.load(p, mmap_mode="r") for p in paths) for paths in self.files]
        total = sum(len(r[0]) for r in runs)
        # key ranges that each hold about budget / 32 entries over all runs (sort + reduce temporaries)
        per_range = max(MIN_CHUNK, self.budget // 32)
        n_ranges = max(1, -(-total // per_range))
        sample = np.sort(np.concatenate([np.asarray(r[0][:: max(1, len(r[0]) // 1024)]) for r in runs]))
        cuts = np.unique(sample[np.linspace(0, len(sample) - 1, n_ranges + 1).astype(np.int64)[1:-1]])
        bounds = [None, *cuts.tolist(), None]
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            pieces = []
            for run in runs:
                i0 = 0 if lo is None else int(np.searchsorted(run[0], lo, side="left"))
                i1 = len(run[0]) if hi is None else int(np.searchsorted(run[0], hi, side="left"))
                pieces.append(tuple(np.asarray(a[i0:i1]) for a in run))
            out.append(reduce_sorted_runs(*(np.concatenate(parts) for parts in zip(*pieces, strict=True))))
        del runs
        for paths in self.files:
            for p in paths:
                p.unlink(missing_ok=True)
        return tuple(np.concatenate(parts) for parts in zip(*out, strict=True))  # type: ignore[return-value]


def count_ngrams(
    sequences: np.ndarray,
    segment_starts: np.ndarray,
    order: int,
    vocab_size: int,
    *,
    skip_first: int | None = None,
    memory: int | None = None,
    spill_dir: str | Path | None = None,
    progress: bool | None = None,
    stats: CountingStats | None = None,
) -> list[NgramTable]:
    """Count every n-gram of orders 1..order that lies inside one segment (line) of ``sequences``.

    Args:
        sequences: int [n] ids of all segments back to back (e.g. ``<s> w1 .. wn </s>`` per line).
        segment_starts: int [segments] the position where each segment begins (ascending).
        skip_first: an id (``<s>``) not counted as a unigram event, since it is never predicted.
        memory: bytes the counting may use in all (the corpus arrays and finished tables included); runs
            beyond it spill to ``spill_dir`` (default: ``$TMPDIR``) and are merged from disk.
        progress: a progress bar on stderr (default: when stderr is a terminal and the corpus is large).

    The unigram table is dense (row = word id) so that every vocabulary word has a row even when unseen.
    """
    seq = np.asarray(sequences)
    if seq.dtype != np.int32 and len(seq) and int(seq.max()) <= INT32_MAX:
        seq = seq.astype(np.int32)
    n = len(seq)
    V = vocab_size
    budget = parse_memory(memory)
    stats = stats if stats is not None else CountingStats()
    stats.budget = budget
    # joined[p]: positions p and p+1 belong to the same segment
    joined = np.ones(max(n - 1, 0), dtype=bool)
    starts = np.asarray(segment_starts, dtype=np.int64)
    joined[starts[(starts > 0) & (starts < n)] - 1] = False

    counts1 = np.bincount(seq, minlength=V).astype(np.int64)
    if skip_first is not None:
        counts1[skip_first] = 0
    words = np.arange(V, dtype=np.int64)
    zeros = np.zeros(V, dtype=index_dtype(V))
    tables = [NgramTable(1, words, counts1, zeros, zeros.copy(), V)]
    if order == 1:
        return tables

    tmp: tempfile.TemporaryDirectory | None = None

    def make_spill_dir() -> Path:
        nonlocal tmp
        if tmp is None:
            if spill_dir is not None:
                Path(spill_dir).mkdir(parents=True, exist_ok=True)
            tmp = tempfile.TemporaryDirectory(prefix="lmbench-ngram-", dir=spill_dir)
            log.info("counting spills sorted runs to %s", tmp.name)
        return Path(tmp.name)

    show = progress if progress is not None else (sys.stderr.isatty() and n > 5_000_000)
    from tqdm import tqdm

    bar = tqdm(total=n * (order - 1), unit="pos", unit_scale=True, desc="counting", disable=not show)
    try:
        start_rows = seq  # row of the (m-1)-gram starting at each position (-1: leaves its segment)
        for m in range(2, order + 1):
            fixed = seq.nbytes + joined.nbytes + 2 * n * 4 + sum(t.nbytes for t in tables)
            work = budget - fixed
            if work < MIN_CHUNK * BYTES_PER_CHUNK_POSITION * 4:
                if m == 2:
                    log.warning(
                        "memory budget %d MiB is below what the corpus arrays and tables need (%d MiB); "
                        "counting in minimal chunks",
                        budget >> 20,
                        fixed >> 20,
                    )
                work = MIN_CHUNK * BYTES_PER_CHUNK_POSITION * 4
            chunk = max(MIN_CHUNK, work // 2 // BYTES_PER_CHUNK_POSITION)
            runs = _Runs(work // 2, make_spill_dir, stats, m)
            last = max(n - m + 1, 0)  # start positions 0 .. last-1
            # one chunk below the top order: np.unique's inverse gives every position's row directly
            single = last <= chunk and m < order
            chunks = 0
            pos = inverse = np.zeros(0, dtype=np.int64)
            for a in range(0, last, chunk):
                b = min(a + chunk, last)
                pos, keys = _chunk_keys(start_rows, seq, joined, a, b, m, V)
                if single:
                    uniq, first, inverse, cnt = np.unique(
                        keys, return_index=True, return_inverse=True, return_counts=True
                    )
                else:
                    uniq, first, cnt = np.unique(keys, return_index=True, return_counts=True)
                # suffix: the (m-1)-gram starting one position later, whose row the previous order recorded
                runs.add(uniq, cnt, start_rows[pos[first] + 1])
                chunks += 1
                bar.update(b - a)
            keys, cnt, suffix = runs.merge()
            stats.chunks += chunks
            stats.per_order_chunks.append(chunks)
            dtype = index_dtype(max(len(keys), n))
            context = (keys // V).astype(index_dtype(len(tables[-1])))
            suffix = suffix.astype(index_dtype(len(tables[-1])))
            tables.append(NgramTable(m, keys, cnt.astype(dtype), context, suffix, V))
            if m < order:  # rows of the m-grams starting at each position, for the next order
                new_rows = np.full(n, -1, dtype=index_dtype(len(keys)))
                if single:
                    new_rows[pos] = inverse.reshape(-1)
                else:
                    for a in range(0, last, chunk):
                        b = min(a + chunk, last)
                        pos, q = _chunk_keys(start_rows, seq, joined, a, b, m, V)
                        uniq, inverse = np.unique(q, return_inverse=True)
                        new_rows[pos] = np.searchsorted(keys, uniq)[inverse.reshape(-1)]
                start_rows = new_rows
            del pos
            bar.update(n - max(last, 0))
    finally:
        bar.close()
        if tmp is not None:
            tmp.cleanup()
    if stats.spilled_runs:
        log.info(
            "counting: %d chunks, %d runs spilled (%.1f MiB)",
            stats.chunks,
            stats.spilled_runs,
            stats.spill_bytes / 2**20,
        )
    return tables


def _chunk_keys(
    start_rows: np.ndarray, seq: np.ndarray, joined: np.ndarray, a: int, b: int, m: int, V: int
) -> tuple[np.ndarray, np.ndarray]:
    """Start positions in [a, b) whose m-gram stays in its segment, and the keys of those m-grams."""
    prev = start_rows[a:b]
    ok = (prev >= 0) & joined[a + m - 2 : b + m - 2]
    pos = np.flatnonzero(ok)
    keys = prev[pos].astype(np.int64) * V + seq[pos + a + m - 1]
    return pos + a, keys


def followers(table: NgramTable, num_contexts: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Per context row: how many distinct words follow it (optionally only rows where ``mask``)."""
    ctx = table.context if mask is None else table.context[mask]
    return np.bincount(ctx, minlength=num_contexts).astype(np.int64)


def context_sums(table: NgramTable, values: np.ndarray, num_contexts: int) -> np.ndarray:
    """Per context row: the sum of ``values`` over the n-grams with that context."""
    return np.bincount(table.context, weights=values, minlength=num_contexts)
