"""Compiled (Numba) loops of interpolated discounting: the per-row arithmetic of
``smoothing.discounted_interpolation`` and ``streaming.smooth_streamed``, and the continuation-count tally.

Like every kernel module, it is imported where its kernels run, so that loading lmbench (every CLI command)
does not load Numba (~0.3 s, ~110 MiB).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def interpolate(counts, discounts, contexts, n_contexts, lower, suffix):
    """One chunk of rows (whole contexts ``contexts``, numbered from 0): the interpolated probability
    ``alpha + gamma(h) * lower[suffix]`` of every row, alpha = (c - D(c)) / S(h) where c > 0, and each
    context's gamma(h) = (sum of D(c) after h) / S(h), 1 where S(h) = 0. Both smoothing paths call it, so
    the in-memory and streamed fits agree bit for bit; its float64 operations are those of the NumPy form
    it replaced (sums in row order, then divide, multiply, add), so no fitted value changed."""
    n = len(counts)
    total = np.zeros(n_contexts)
    taken = np.zeros(n_contexts)
    for i in range(n):
        total[contexts[i]] += counts[i]
        taken[contexts[i]] += discounts[i]
    gammas = np.empty(n_contexts)
    for h in range(n_contexts):
        gammas[h] = taken[h] / total[h] if total[h] > 0 else 1.0
    prob = np.empty(n)
    for i in range(n):
        h = contexts[i]
        alpha = 0.0
        if counts[i] > 0:
            denominator = total[h] if total[h] > 0 else 1.0
            alpha = (counts[i] - discounts[i]) / denominator
        prob[i] = gammas[h] * lower[suffix[i]] + alpha
    return prob, gammas


@numba.njit(cache=True, nogil=True)
def tally(totals, rows):
    """``totals[r] += 1`` for every r in ``rows``, in place (a bincount without a new array per chunk)."""
    for r in rows:
        totals[r] += 1
