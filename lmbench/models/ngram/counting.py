"""Vectorised n-gram counting within a memory budget.

An n-gram table of order m is a sorted array of int64 keys, ``key = context_row * V + word``, where
``context_row`` is the row of the (m-1)-gram context in the order m-1 table (order 1: ``key = word``).
Keys fit in int64 for any realistic vocabulary and lookups are ``np.searchsorted``.

Counting goes order by order. For order m every position carries the row of the (m-1)-gram starting there
(int32, -1 where it would leave its segment); the keys of a chunk of positions are sorted and counted into a
*run* (unique keys + counts). Runs stay in memory while they fit the budget and are spilled to anonymous
temporary files (:class:`~lmbench.models.ngram.storage.DiskArray`) otherwise; merging them is one
sort-and-reduce per key range, so memory stays bounded either way. A merged table that would not fit the
budget is written to disk piece by piece as it is merged (its arrays are then ``DiskArray``), and the next
stages read it by row ranges. The tables are the same, bit for bit, whichever path produced them.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmbench.errors import ConfigError
from lmbench.models.ngram.storage import DiskArray, Sink, in_memory

log = logging.getLogger(__name__)

INT32_MAX = np.iinfo(np.int32).max
# bytes of work per counted position in one chunk: the int64 key, its sort permutation and sorted copy,
# the unique flags and the per-position row written back
BYTES_PER_CHUNK_POSITION = 40
MIN_CHUNK = 256
# at most this many chunks per order (and key ranges per merge), however small the budget: below what the
# corpus arrays need anyway, smaller pieces only multiply the work (they cost at most 96 / MAX_CHUNKS bytes
# per position)
MAX_CHUNKS = 64
# orders with at least this many positions are counted a chunk per thread, on up to MAX_THREADS cores
PARALLEL_POSITIONS = 1 << 22
MAX_THREADS = 2
# bytes per entry of a run held in memory (int64 key, count and suffix row)
BYTES_PER_RUN_ENTRY = 24
# bytes of work per entry merged from disk: the pieces read (key, count, suffix), the sort permutation, the
# sorted copies and the reduced output
BYTES_PER_MERGE_ENTRY = 96
# bytes per row of a finished table in memory (int64 key, int32 count, context and suffix)
BYTES_PER_TABLE_ENTRY = 20
MIN_WORK = MIN_CHUNK * BYTES_PER_CHUNK_POSITION * 4
# every SPARSE-th key of a spilled run stays in memory, to find key ranges in it
SPARSE = 4096


def parse_memory(value: str | int | float | None) -> int:
    """Bytes from a KenLM-style size: ``"4G"``, ``"512M"``, ``"64K"``, ``"1.5G"``, ``"50%"`` (of physical
    memory), or a number of bytes. ``None``: half of the machine's physical memory.

    >>> parse_memory("4G"), parse_memory("64K"), parse_memory(1000)
    (4294967296, 65536, 1000)
    """
    if value is None:
        return default_memory()
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


def default_memory() -> int:
    """The budget when none is given: half of the machine's physical memory (KenLM's default share)."""
    return physical_memory() // 2


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def resident_memory() -> int:
    """Bytes of memory this process holds now (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):  # pragma: no cover - not Linux
        return 0


def index_dtype(n: int) -> type:
    """int32 where every value fits (halves the per-position and per-row arrays), else int64."""
    return np.int32 if n <= INT32_MAX else np.int64


@dataclass
class NgramTable:
    """All distinct n-grams of one order m with their statistics (row i is one n-gram)."""

    order: int
    # each array is in memory, or a DiskArray when the tables do not fit the memory budget
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
        return in_memory(self.keys) % self.vocab_size

    @property
    def on_disk(self) -> bool:
        return isinstance(self.keys, DiskArray)

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (arrays on disk count 0)."""
        arrays = (self.keys, self.counts, self.context, self.suffix)
        return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))

    def load(self) -> NgramTable:
        """This table with every array in memory (for the smoothers that do not stream)."""
        arrays = (
            in_memory(a) if a is not None else None
            for a in (self.keys, self.counts, self.context, self.suffix)
        )
        return NgramTable(self.order, *arrays, self.vocab_size)  # type: ignore[arg-type]

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
    disk_orders: list[int] = field(default_factory=list)  # orders whose tables were written to disk


SORTED_LOOKUP = 1 << 16  # queries above this many are sorted first (see lookup)


def lookup(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Row of each query key in the sorted ``keys``, or -1 where absent.

    Many queries in random order are sorted first: a binary search over sorted needles walks ``keys`` in
    order (NumPy narrows each search from the previous hit), five times faster than cache-missing searches
    from scratch, sort included (reading a KenLM ARPA file, whose n-grams are not in lmbench's key order).
    """
    if len(keys) == 0:
        return np.full(len(queries), -1, dtype=np.int64)
    if len(queries) > SORTED_LOOKUP and not np.all(queries[1:] >= queries[:-1]):
        order = np.argsort(queries)
        pos = np.empty(len(queries), dtype=np.intp)
        pos[order] = np.searchsorted(keys, queries[order])
    else:
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


class _Run:
    """A sorted run spilled to disk, with every ``SPARSE``-th key in memory to find key ranges in it."""

    def __init__(self, arrays: tuple[np.ndarray, np.ndarray, np.ndarray], folder: Path):
        self.keys, self.counts, self.suffix = (DiskArray.from_array(a, folder) for a in arrays)
        self.sparse = np.array(arrays[0][::SPARSE])

    def __len__(self) -> int:
        return len(self.keys)

    def position(self, key: int | None) -> int:
        """Index of the first key >= ``key`` (``None``: the end)."""
        if key is None:
            return len(self.keys)
        j = int(np.searchsorted(self.sparse, key, side="left"))
        if j == 0:
            return 0
        lo = (j - 1) * SPARSE
        return lo + int(np.searchsorted(self.keys.read(lo, lo + SPARSE), key, side="left"))

    def close(self) -> None:
        for a in (self.keys, self.counts, self.suffix):
            a.close()


class _ChunkKeys:
    """Each chunk's sorted distinct keys, in memory until its run is spilled, then in one file for the order."""

    def __init__(self, spill_dir: Callable[[], Path]):
        self.spill_dir = spill_dir
        self.parts: list[np.ndarray | tuple[int, int]] = []  # an array, or its span in ``self.file``
        self.file: DiskArray | None = None

    def append(self, keys: np.ndarray) -> None:
        self.parts.append(keys)

    def spill(self) -> None:
        """Move the chunks held in memory to the file."""
        for i, part in enumerate(self.parts):
            if isinstance(part, np.ndarray):
                self.file = self.file or DiskArray(np.int64, self.spill_dir())
                start = len(self.file)
                self.file.append(part)
                self.parts[i] = (start, len(self.file))

    def __getitem__(self, i: int) -> np.ndarray:
        part = self.parts[i]
        return part if isinstance(part, np.ndarray) else self.file.read(*part)  # type: ignore[union-attr]

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        self.parts = []


class _Runs:
    """Sorted runs of (key, count) for one order: in memory while they fit ``budget`` bytes, else on disk."""

    def __init__(
        self, budget: int, spill_dir: Callable[[], Path], stats: CountingStats, order: int, keep_chunks: bool
    ):
        self.budget, self.spill_dir, self.stats, self.order = budget, spill_dir, stats, order
        self.memory: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.files: list[_Run] = []
        self.held = 0
        # keep_chunks: every chunk's own sorted keys, kept (beside its run in memory, or on disk once the run
        # is spilled) to map the chunk's positions to rows of the merged table afterwards without sorting again
        self.chunk_keys = _ChunkKeys(spill_dir) if keep_chunks else None

    @property
    def entries(self) -> int:
        """Entries over all runs: an upper bound on the merged table's rows."""
        return sum(len(r[0]) for r in self.memory) + sum(len(r) for r in self.files)

    def add(self, keys: np.ndarray, counts: np.ndarray, suffix: np.ndarray) -> None:
        self.memory.append((keys, counts, suffix))
        if self.chunk_keys is not None:
            self.chunk_keys.append(keys)
        self.held += len(keys) * BYTES_PER_RUN_ENTRY
        if self.held > self.budget:
            self.spill()

    def spill(self) -> None:
        """Merge the runs held in memory into one sorted run and write it to disk."""
        from lmbench.models.ngram import sorting  # compiled kernels: Numba loads only when counting runs

        if not self.memory:
            return
        arrays = sorting.merge_runs(self.memory)
        self.memory, self.held = [], 0
        if self.chunk_keys is not None:
            self.chunk_keys.spill()
        self.files.append(_Run(arrays, self.spill_dir()))
        self.stats.spilled_runs += 1
        self.stats.spill_bytes += sum(a.nbytes for a in arrays)

    def merge(self, work: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """All runs merged, in pieces of ascending keys: sorted unique keys, their total counts and suffix
        rows. From disk, each piece is one key range of about ``work`` bytes of sort-and-reduce work."""
        from lmbench.models.ngram import sorting

        if not self.files and len(self.memory) == 1:  # one run: already sorted and unique
            yield self.memory.pop()
            return
        if not self.files and not self.memory:  # no n-gram of this order fits in any line
            return
        if not self.files:
            merged = sorting.merge_runs(self.memory)
            self.memory = []
            yield merged
            return
        self.spill()  # what is left in memory joins the runs on disk
        runs, self.files = self.files, []
        entries = sum(len(r) for r in runs)
        per_range = max(MIN_CHUNK, work // BYTES_PER_MERGE_ENTRY, -(-entries // MAX_CHUNKS))
        n_ranges = max(1, -(-entries // per_range))
        sample = np.sort(np.concatenate([r.sparse for r in runs]))
        cuts = np.unique(sample[np.linspace(0, len(sample) - 1, n_ranges + 1).astype(np.int64)[1:-1]])
        bounds: list[int | None] = [None, *cuts.tolist(), None]
        starts = [0] * len(runs)
        for hi in bounds[1:]:
            stops = [run.position(hi) for run in runs]
            pieces = [
                (run.keys.read(a, b), run.counts.read(a, b), run.suffix.read(a, b))
                for run, a, b in zip(runs, starts, stops, strict=True)
            ]
            starts = stops
            yield sorting.merge_runs(pieces)
            del pieces
        for run in runs:
            run.close()


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
    threads: int | None = None,
) -> list[NgramTable]:
    """Count every n-gram of orders 1..order that lies inside one segment (line) of ``sequences``.

    Args:
        sequences: int [n] ids of all segments back to back (e.g. ``<s> w1 .. wn </s>`` per line).
        segment_starts: int [segments] the position where each segment begins (ascending).
        skip_first: an id (``<s>``) not counted as a unigram event, since it is never predicted.
        memory: bytes the counting may use in all (the corpus arrays and finished tables included; parsed
            once by the caller, see :func:`parse_memory`; default :func:`default_memory`); runs beyond it spill to ``spill_dir`` (default: ``$TMPDIR``) and are merged from disk, and tables that
            would not fit in it are written there too (their arrays are then :class:`DiskArray`).
        progress: a progress bar on stderr (default: when stderr is a terminal and the corpus is large).
        threads: chunks counted at once in orders of ``PARALLEL_POSITIONS`` or more (default: the cores this
            process may use, at most ``MAX_THREADS``); the tables are the same whatever it is.

    The unigram table is dense (row = word id) so that every vocabulary word has a row even when unseen.
    """
    from tqdm import tqdm

    seq, joined = _ids_and_joins(sequences, segment_starts)
    n = len(seq)
    stats = stats if stats is not None else CountingStats()
    stats.budget = memory if memory is not None else default_memory()
    tables = [_unigram_table(seq, vocab_size, skip_first)]
    if order == 1:
        return tables
    show = progress if progress is not None else (sys.stderr.isatty() and n > 5_000_000)
    bar = tqdm(total=n * (order - 1), unit="pos", unit_scale=True, desc="counting", disable=not show)
    workers = threads or _default_threads()
    pool = ThreadPoolExecutor(workers)
    counter = _Counter(seq, joined, vocab_size, stats, _SpillFolder(spill_dir), pool, workers, bar)
    try:
        start_rows = seq  # row of the (m-1)-gram starting at each position (-1: leaves its segment)
        for m in range(2, order + 1):
            table, start_rows = counter.count_order(m, start_rows, tables, top=m == order)
            tables.append(table)
    finally:
        bar.close()
        pool.shutdown()
    _log_spills(stats)
    return tables


class _Counter:
    """Counts one order after another over the same positions, within one memory budget."""

    def __init__(
        self,
        seq: np.ndarray,
        joined: np.ndarray,
        vocab_size: int,
        stats: CountingStats,
        spill: _SpillFolder,
        pool: ThreadPoolExecutor,
        workers: int,
        bar,
    ):
        self.seq, self.joined, self.vocab_size = seq, joined, vocab_size
        self.budget, self.stats, self.spill = stats.budget, stats, spill
        self.pool, self.workers, self.bar = pool, workers, bar
        self.disk = False  # once one order's table goes to disk, the larger ones above it do too

    def count_order(
        self, m: int, start_rows: np.ndarray, tables: list[NgramTable], top: bool
    ) -> tuple[NgramTable, np.ndarray]:
        """Order m's table from chunks of positions counted into runs and merged, and (below the ``top``
        order) each position's row in it: the next order's start rows."""
        n, stats = len(self.seq), self.stats
        work = _work_budget(self.budget, self.seq, self.joined, start_rows, tables, m)
        last = max(n - m + 1, 0)  # start positions 0 .. last-1
        # a quarter for the runs held in memory (merging them takes ~2.5x), a quarter for the work of the
        # chunks counted at once (one per thread: the kernels release the GIL)
        parallel = self.workers if last >= PARALLEL_POSITIONS else 1
        chunk = max(MIN_CHUNK, work // 4 // BYTES_PER_CHUNK_POSITION // parallel, -(-n // MAX_CHUNKS))
        runs = _Runs(work // 4, self.spill, stats, m, keep_chunks=not top)
        # the next order's start rows: first each chunk's group numbers, then rows of the merged table
        new_rows = None if top else np.full(n, -1, dtype=index_dtype(n))
        bounds = [(a, min(a + chunk, last)) for a in range(0, last, chunk)]
        count = _chunk_counter(self.seq, self.joined, start_rows, new_rows, m, self.vocab_size)
        for i in range(0, len(bounds), parallel):
            batch = bounds[i : i + parallel]
            for run in self.pool.map(count, batch) if parallel > 1 else map(count, batch):
                runs.add(*run)  # in chunk order, so the tables do not depend on the threads
            self.bar.update(sum(b - a for a, b in batch))
        # the merged table: in memory while the tables fit a quarter of the budget, else on disk
        held = sum(t.nbytes for t in tables) + runs.entries * BYTES_PER_TABLE_ENTRY
        self.disk = self.disk or bool(runs.files) or held > self.budget // 4
        folder = self.spill() if self.disk else None
        table = _merge_table(runs, m, self.vocab_size, work, n, len(tables[-1]), folder)
        stats.chunks += len(bounds)
        stats.per_order_chunks.append(len(bounds))
        if self.disk:
            stats.disk_orders.append(m)
        self.bar.update(n - max(last, 0))
        if new_rows is None:
            return table, start_rows
        return table, _table_rows(table, bounds, runs.chunk_keys, new_rows)


def _ids_and_joins(sequences: np.ndarray, segment_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ids as int32 where they fit (half the memory of int64), and ``joined[p]``: positions p and p+1
    belong to the same segment (an n-gram may span them)."""
    seq = np.asarray(sequences)
    if seq.dtype != np.int32 and len(seq) and int(seq.max()) <= INT32_MAX:
        seq = seq.astype(np.int32)
    n = len(seq)
    joined = np.ones(max(n - 1, 0), dtype=bool)
    starts = np.asarray(segment_starts, dtype=np.int64)
    joined[starts[(starts > 0) & (starts < n)] - 1] = False
    return seq, joined


def _unigram_table(seq: np.ndarray, vocab_size: int, skip_first: int | None) -> NgramTable:
    """The dense order-1 table (row = word id, so unseen words have a row too) from one bincount."""
    counts1 = np.bincount(seq, minlength=vocab_size).astype(np.int64)
    if skip_first is not None:
        counts1[skip_first] = 0
    words = np.arange(vocab_size, dtype=np.int64)
    zeros = np.zeros(vocab_size, dtype=index_dtype(vocab_size))
    return NgramTable(1, words, counts1, zeros, zeros.copy(), vocab_size)


class _SpillFolder:
    """Where runs and tables go once they do not fit: made (and logged) only when first needed."""

    def __init__(self, spill_dir: str | Path | None):
        self.spill_dir, self.folder = spill_dir, None

    def __call__(self) -> Path:
        if self.folder is None:
            self.folder = Path(self.spill_dir) if self.spill_dir is not None else Path(tempfile.gettempdir())
            self.folder.mkdir(parents=True, exist_ok=True)
            log.info("counting writes sorted runs and tables to %s (anonymous temporary files)", self.folder)
        return self.folder


def _default_threads() -> int:
    """The cores this process may use, at most ``MAX_THREADS``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return min(MAX_THREADS, cores)


def _work_budget(
    budget: int,
    seq: np.ndarray,
    joined: np.ndarray,
    start_rows: np.ndarray,
    tables: list[NgramTable],
    m: int,
) -> int:
    """Bytes order m's chunks and runs may use: the budget less what the process holds now (the caller's
    text, the ids, the joins, the start rows, the tables in memory) and the next order's start rows."""
    n = len(seq)
    counted = seq.nbytes + joined.nbytes + n * start_rows.itemsize + sum(t.nbytes for t in tables)
    fixed = max(counted, resident_memory()) + n * 4
    work = budget - fixed
    if work >= MIN_WORK:
        return work
    if m == 2:
        log.warning(
            "memory budget %d MiB is below what the corpus arrays and tables need (%d MiB); "
            "counting in minimal chunks",
            budget >> 20,
            fixed >> 20,
        )
    return MIN_WORK


def _chunk_counter(
    seq: np.ndarray,
    joined: np.ndarray,
    start_rows: np.ndarray,
    new_rows: np.ndarray | None,
    m: int,
    vocab_size: int,
) -> Callable[[tuple[int, int]], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A function counting one chunk (a span of start positions) of order m into a run; ``new_rows`` gets
    its positions' group numbers (chunks never overlap, so threads may share it)."""
    from lmbench.models.ngram import sorting  # compiled kernels: Numba loads only when counting runs

    position_dtype = np.dtype(index_dtype(len(seq)))

    def count_range(span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos, keys = sorting.chunk_keys(start_rows, seq, joined, *span, m, vocab_size, position_dtype)
        # suffix: the (m-1)-gram starting one position later, whose row the previous order recorded
        return sorting.count_chunk(keys, pos, start_rows, new_rows)

    return count_range


def _table_rows(
    table: NgramTable, bounds: list[tuple[int, int]], chunk_keys: _ChunkKeys, new_rows: np.ndarray
) -> np.ndarray:
    """Each position's row in the merged ``table`` (the next order's start rows), from its group number in
    its chunk and the chunk's own sorted keys: no sort of the positions again."""
    from lmbench.models.ngram import sorting

    if len(bounds) > 1:  # one chunk: its groups are the table's rows already
        table_keys = in_memory(table.keys)
        for i, (a, b) in enumerate(bounds):
            sorting.remap_rows(new_rows, a, b, sorting.sorted_lookup(table_keys, chunk_keys[i]))
        del table_keys
    chunk_keys.close()
    return new_rows.astype(index_dtype(len(table)), copy=False)


def _log_spills(stats: CountingStats) -> None:
    """One log line when counting went to disk, saying how much."""
    if stats.spilled_runs or stats.disk_orders:
        log.info(
            "counting: %d chunks, %d runs spilled (%.1f MiB), orders %s on disk",
            stats.chunks,
            stats.spilled_runs,
            stats.spill_bytes / 2**20,
            stats.disk_orders,
        )


def _merge_table(
    runs: _Runs, m: int, V: int, work: int, n: int, n_lower: int, folder: Path | None
) -> NgramTable:
    """Order m's table from its runs: in memory, or written piece by piece to ``folder`` when given.

    The dtypes are the same either way (counts fit ``n`` positions, rows the ``n_lower`` rows below), so the
    tables are equal bit for bit whichever path made them."""
    count_dtype, row_dtype = index_dtype(n), index_dtype(n_lower)
    sinks = [Sink(np.int64, folder, folder is not None)] + [
        Sink(dt, folder, folder is not None) for dt in (count_dtype, row_dtype, row_dtype)
    ]
    for keys, cnt, suffix in runs.merge(work):
        for sink, values in zip(sinks, (keys, cnt, keys // V, suffix), strict=True):
            sink.append(values)
    keys, counts, context, suffix = (s.result() for s in sinks)
    return NgramTable(m, keys, counts, context, suffix, V)


def followers(table: NgramTable, num_contexts: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Per context row: how many distinct words follow it (optionally only rows where ``mask``)."""
    ctx = table.context if mask is None else table.context[mask]
    return np.bincount(ctx, minlength=num_contexts).astype(np.int64)


def context_sums(table: NgramTable, values: np.ndarray, num_contexts: int) -> np.ndarray:
    """Per context row: the sum of ``values`` over the n-grams with that context."""
    return np.bincount(table.context, weights=values, minlength=num_contexts)
