"""Vectorised n-gram counting.

An n-gram table of order m is a sorted array of int64 keys, ``key = context_index * V + word``, where
``context_index`` is the row of the (m-1)-gram context in the order m-1 table (order 1: ``key = word``).
Keys fit in int64 for any realistic vocabulary, lookups are ``np.searchsorted``, and counting is
``np.unique`` over one key per position — no Python loop over tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class NgramTable:
    """All distinct n-grams of one order m with their statistics (row i is one n-gram)."""

    order: int
    keys: np.ndarray  # int64 [rows], sorted: context_row * V + word (order 1: word)
    counts: np.ndarray  # int64 [rows]: raw occurrence counts
    context: np.ndarray  # int64 [rows]: row of the first m-1 words in the order m-1 table (order 1: 0)
    word: np.ndarray  # int64 [rows]: the last word
    suffix: np.ndarray  # int64 [rows]: row of the last m-1 words in the order m-1 table (order 1: 0)

    def __len__(self) -> int:
        return len(self.keys)


def lookup(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Row of each query key in the sorted ``keys``, or -1 where absent."""
    if len(keys) == 0:
        return np.full(len(queries), -1, dtype=np.int64)
    pos = np.searchsorted(keys, queries)
    pos_clipped = np.minimum(pos, len(keys) - 1)
    return np.where(keys[pos_clipped] == queries, pos_clipped, -1).astype(np.int64)


def ending_rows(tables: list[NgramTable], seq: np.ndarray, vocab_size: int) -> list[np.ndarray]:
    """For every order m and position t, the row of the m-gram ``seq[t-m+1 .. t]`` (or -1 if not stored).

    ``rows[m-1][t]``; order 1 is the word itself (unigram tables are dense over the vocabulary).
    """
    seq = np.asarray(seq, dtype=np.int64)
    rows = [seq.copy()]
    for table in tables[1:]:
        prev = np.empty_like(seq)
        prev[0] = -1
        prev[1:] = rows[-1][:-1]
        found = np.full(len(seq), -1, dtype=np.int64)
        ok = prev >= 0
        found[ok] = lookup(table.keys, prev[ok] * vocab_size + seq[ok])
        rows.append(found)
    return rows


def count_ngrams(
    sequences: np.ndarray,
    segment_ids: np.ndarray,
    order: int,
    vocab_size: int,
    *,
    skip_first: int | None = None,
) -> list[NgramTable]:
    """Count every n-gram of orders 1..order that lies inside one segment (line) of ``sequences``.

    ``sequences`` holds segments back to back (e.g. ``<s> w1 .. wn </s>`` per line) and ``segment_ids`` says
    which segment each position belongs to. The unigram table is dense (row = word id) so that every
    vocabulary word has a row even when unseen; ``skip_first`` (the ``<s>`` id) is not counted as a unigram
    event since it is never predicted.
    """
    seq = np.asarray(sequences, dtype=np.int64)
    seg = np.asarray(segment_ids, dtype=np.int64)
    n = len(seq)
    V = vocab_size
    counts1 = np.bincount(seq, minlength=V).astype(np.int64)
    if skip_first is not None:
        counts1[skip_first] = 0
    words = np.arange(V, dtype=np.int64)
    tables = [NgramTable(1, words.copy(), counts1, np.zeros(V, np.int64), words, np.zeros(V, np.int64))]
    start_rows = seq.copy()  # row of the (m-1)-gram starting at each position
    for m in range(2, order + 1):
        valid = np.flatnonzero(seg[: n - m + 1] == seg[m - 1 :]) if n >= m else np.zeros(0, np.int64)
        keys = start_rows[valid] * V + seq[valid + m - 1]
        uniq, first, inverse, cnt = np.unique(
            keys, return_index=True, return_inverse=True, return_counts=True
        )
        first_pos = valid[first]
        # suffix: the (m-1)-gram starting one position later, whose row the previous order recorded
        suffix = start_rows_prev_for_suffix(start_rows, first_pos + 1)
        table = NgramTable(m, uniq, cnt.astype(np.int64), uniq // V, uniq % V, suffix)
        tables.append(table)
        new_rows = np.full(n, -1, dtype=np.int64)
        new_rows[valid] = inverse.reshape(-1)
        start_rows = new_rows
    return tables


def start_rows_prev_for_suffix(start_rows: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Rows (in the previous order's table) of the (m-1)-grams starting at ``positions``."""
    rows = start_rows[positions]
    if np.any(rows < 0):  # cannot happen: a suffix of an in-segment n-gram is itself in-segment
        raise AssertionError("n-gram suffix missing from the lower-order table")
    return rows


def followers(table: NgramTable, num_contexts: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Per context row: how many distinct words follow it (optionally only rows where ``mask``)."""
    ctx = table.context if mask is None else table.context[mask]
    return np.bincount(ctx, minlength=num_contexts).astype(np.int64)


def context_sums(table: NgramTable, values: np.ndarray, num_contexts: int) -> np.ndarray:
    """Per context row: the sum of ``values`` over the n-grams with that context."""
    return np.bincount(table.context, weights=values, minlength=num_contexts)
