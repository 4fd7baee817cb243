"""Discounted interpolation (absolute discounting, Kneser-Ney, modified Kneser-Ney) streamed over row chunks.

The counted tables may be on disk (:class:`~lmbench.models.ngram.storage.DiskArray`); each order is read in
chunks of rows cut at context boundaries (rows are sorted by context, so a context's followers are one run of
rows and its sums are local to one chunk). What stays in memory while order m is smoothed: the finished
probabilities of order m-1 (float64, gathered at each row's suffix), order m's continuation counts and, below
the top order, its probabilities as they are made. Every value is computed with the same float64 operations
in the same order as the in-memory smoother, so the model is the same bit for bit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmbench.models.ngram.counting import NgramTable
from lmbench.models.ngram.storage import DiskArray, Sink, rows

log = logging.getLogger(__name__)

# float64/int work per row of a chunk: counts, discounts, alpha, denominator, lower, probability, rows
BYTES_PER_ROW = 96
MIN_ROWS = 1024
LN10 = math.log(10.0)


@dataclass
class StreamedFit:
    """Back-off form in log10, per order: arrays in memory or on disk (the top order has no back-offs)."""

    log10prob: list[np.ndarray | DiskArray]
    log10bow: list[np.ndarray | DiskArray]
    discounts: list = field(default_factory=list)


def uniform(vocab_size: int, bos_id: int, vocab_pad: int = 0, unk_id: int = 0) -> np.ndarray:
    """The base distribution below order 1: uniform over every word but ``<s>`` (never predicted).

    ``vocab_pad`` (lmplz's ``--vocab_pad``): a vocabulary of fewer words is padded with copies of ``<unk>`` up
    to that size, so each word gets 1/vocab_pad and ``<unk>`` the padding's share too; models whose
    vocabularies differ then spread the same base mass over the same number of words, and their perplexities
    (unknown words included) compare.
    """
    words = vocab_size - 1
    size = max(words, vocab_pad)
    u = np.full(vocab_size, 1.0 / size)
    u[unk_id] += (size - words) / size
    u[bos_id] = 0.0
    return u


def gamma(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den for contexts that were seen; 1 (pass everything to the lower order) where den == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)


def count_of_counts(counts: np.ndarray, upto: int) -> np.ndarray:
    """n_k for k = 1..upto (int64): how many of ``counts`` are exactly k."""
    c = counts[counts > 0].astype(np.int64)
    return np.bincount(np.minimum(c, upto + 1), minlength=upto + 2)[1 : upto + 1]


def discount_per_count(counts: np.ndarray, d: float | tuple[float, float, float]) -> np.ndarray:
    """What each n-gram gives up: one discount (never more than its count) or modified KN's D1, D2, D3+ by count;
    0 for n-grams that were not seen."""
    if isinstance(d, tuple):
        disc = np.full(len(counts), d[2])
        disc[counts == 2] = d[1]
        disc[counts == 1] = d[0]
    else:
        disc = np.minimum(counts, d)
    disc[counts <= 0] = 0.0
    return disc


def smooth_streamed(
    tables: list[NgramTable],
    *,
    continuation: bool,
    discount: Callable[[int, np.ndarray], float | tuple[float, float, float]],
    bos_id: int,
    interpolate_unigrams: bool = True,
    vocab_pad: int = 0,
    dtype: np.dtype | type = np.float32,
    memory: int,
    folder: str | Path | None = None,
    progress: bool = False,
) -> StreamedFit:
    """Interpolated discounting of ``tables`` (``smoothing.discounted_interpolation``, the same values bit
    for bit) order by order, with about ``memory`` bytes of chunk work; orders whose tables are on disk get
    their log10 values written to disk under ``folder`` too.

    ``continuation``: discount Kneser-Ney's continuation counts below the top order (else raw counts);
    ``discount(m, n)``: order m's D or (D1, D2, D3+) from its count-of-counts n1..n4; ``progress``: a bar on
    stderr.
    """
    from tqdm import tqdm

    N, V = len(tables), len(tables[0])
    chunk = max(MIN_ROWS, memory // BYTES_PER_ROW)
    fit = StreamedFit([], [])
    lower = uniform(V, bos_id, vocab_pad)  # finished probabilities of the order below (float64)
    bos_prev = np.asarray(tables[0].keys) == bos_id  # per row of order m-1: does the n-gram start with <s>
    bar = tqdm(
        total=sum(map(len, tables)), unit="n-gram", unit_scale=True, desc="smoothing", disable=not progress
    )
    for m, table in enumerate(tables, start=1):
        below_top = continuation and m < N
        cont = _continuation_counts(tables[m], len(table), max(chunk * 4, memory // 8)) if below_top else None
        counts = _OrderCounts(table, m, bos_id, cont, bos_prev, below_top and m > 1)
        d = discount(m, counts.count_of_counts(chunk))  # pass 1
        fit.discounts.append(d)
        prob_sink = Sink(dtype, folder, table.on_disk)
        bow_sink = Sink(dtype, folder, tables[m - 2].on_disk) if m > 1 else None
        n_ctx = 1 if m == 1 else len(tables[m - 2])
        lower = _interpolate_order(  # pass 2
            counts, d, lower, n_ctx, chunk, interpolate_unigrams, prob_sink, bow_sink, m == N, bar
        )
        fit.log10prob.append(prob_sink.result())
        if bow_sink is not None:
            fit.log10bow.append(bow_sink.result())
        if counts.bos_here is not None:
            bos_prev = counts.bos_here
    bar.close()
    fit.log10bow.append(np.zeros(0, dtype=dtype))  # no back-offs at the top order
    return fit


class _OrderCounts:
    """Order m's counts to discount, by row chunk: raw counts, or (``cont``, Kneser-Ney below the top order)
    continuation counts, except for n-grams that start with ``<s>``, which nothing can precede."""

    def __init__(
        self,
        table: NgramTable,
        m: int,
        bos_id: int,
        cont: np.ndarray | None,
        bos_prev: np.ndarray,
        mark_bos: bool,
    ):
        self.table, self.m, self.bos_id, self.cont = table, m, bos_id, cont
        self.bos_prev = bos_prev  # per row of order m-1 (at order 1: per word): does it start with <s>
        # the same per row of order m, filled by the first pass from its context's row in bos_prev
        self.bos_here = np.zeros(len(table), dtype=bool) if mark_bos else None

    def counts(self, a: int, b: int) -> np.ndarray:
        """Rows a .. b-1's counts to discount, as float64."""
        raw = rows(self.table.counts, a, b)
        if self.cont is None:  # raw counts: the top order, or absolute discounting
            return raw.astype(np.float64)
        if self.m == 1:
            c = np.where(self.bos_prev, raw, self.cont[a:b]).astype(np.float64)
            c[self.bos_id] = 0.0
            return c
        bos_rows = self.bos_here[a:b] if self.bos_here is not None else None
        return np.where(bos_rows, raw, self.cont[a:b]).astype(np.float64)

    def count_of_counts(self, chunk: int) -> np.ndarray:
        """n1..n4 of the counts (what the discounts are made of), read by chunks; marks ``bos_here``."""
        n_rows = len(self.table)
        step = chunk if self.m > 1 else max(n_rows, 1)  # order 1 (dense over the vocabulary): one chunk
        coc = np.zeros(4, dtype=np.int64)
        for a in range(0, n_rows, step):
            b = min(a + step, n_rows)
            if self.bos_here is not None:
                self.bos_here[a:b] = self.bos_prev[rows(self.table.context, a, b)]
            coc += count_of_counts(self.counts(a, b), 4)
        return coc


def _interpolate_order(
    counts: _OrderCounts,
    d: float | tuple[float, float, float],
    lower: np.ndarray,
    n_ctx: int,
    chunk: int,
    interpolate_unigrams: bool,
    prob_sink: Sink,
    bow_sink: Sink | None,
    top: bool,
    bar,
) -> np.ndarray | None:
    """Pass 2 over order m, by chunks of whole contexts: log10 probabilities into ``prob_sink`` and order
    m-1's back-off weights into ``bow_sink``; returns the linear probabilities (the next order's ``lower``),
    or None at the ``top`` order."""
    from lmbench.models.ngram.interpolation import interpolate

    table, m = counts.table, counts.m
    n_rows = len(table)
    new_lower = None if top else np.empty(n_rows)
    a = lo = 0
    while True:
        if m == 1:
            b, ctx = n_rows, np.zeros(n_rows, np.int64)
        else:
            b, ctx = _context_chunk(table.context, a, chunk)
        hi = n_ctx if b >= n_rows else int(rows(table.context, b, b + 1)[0])
        c = counts.counts(a, b)
        disc = discount_per_count(c, d)
        local = ctx - lo if lo else ctx
        if m == 1 and not interpolate_unigrams:  # Kneser-Ney: continuation counts, not raw frequencies
            prob, gammas = c / c.sum(), np.zeros(1)
        else:
            suffix = np.arange(n_rows) if m == 1 else rows(table.suffix, a, b)
            prob, gammas = interpolate(c, disc, local, hi - lo, lower, suffix)
        del c, disc
        if m == 1:
            prob[counts.bos_id] = 0.0
        prob_sink.append(_log10(prob, prob_sink.dtype))
        if new_lower is not None:
            new_lower[a:b] = prob
        if bow_sink is not None:  # order m-1's back-off weights: gamma of the contexts lo .. hi-1
            bow_sink.append(_log10(gammas, bow_sink.dtype))
        bar.update(b - a)
        lo, a = hi, b
        if b >= n_rows:
            return new_lower


def _continuation_counts(above: NgramTable, n_rows: int, chunk: int) -> np.ndarray:
    """Per row of order m: how many distinct words precede it (rows of order m+1 whose suffix it is)."""
    from lmbench.models.ngram.interpolation import tally

    cont = np.zeros(n_rows, dtype=np.int32 if len(above) <= np.iinfo(np.int32).max else np.int64)
    for a in range(0, len(above), chunk):
        tally(cont, rows(above.suffix, a, a + chunk))
    return cont


def _context_chunk(context: np.ndarray | DiskArray, a: int, chunk: int) -> tuple[int, np.ndarray]:
    """End ``b`` of the chunk starting at row ``a``: about ``chunk`` rows, cut where the context changes (a
    context with more followers than that makes a longer chunk), and the contexts of rows a .. b-1."""
    n = len(context)
    size = chunk
    while True:
        end = min(a + size, n)
        block = rows(context, a, min(end + 1, n))  # with row ``end`` itself, to see where its context starts
        if end >= n:
            return n, block.astype(np.int64)
        cut = int(np.searchsorted(block, block[-1], side="left"))
        if cut > 0:
            return a + cut, block[:cut].astype(np.int64)
        size *= 2


def _log10(linear: np.ndarray, dtype) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return (np.log(linear) / LN10).astype(dtype)
