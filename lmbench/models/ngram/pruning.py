"""Count pruning of a fitted back-off model, with lmplz's ``--prune`` thresholds, keeping it normalised.

Thresholds are given per order as lmplz takes them: ``(0, 1, 1)`` drops bigrams and trigrams seen at most once;
fewer values than orders repeat the last one; unigrams are never pruned (the first value must be 0) and the
values may not decrease (otherwise an n-gram would lose a shorter n-gram inside it). An n-gram's count is the
count its smoother estimates from: raw counts, and for Kneser-Ney below the top order the continuation counts
(lmplz too sees only those). An n-gram that is the context (its first m-1 words) or the back-off suffix (its last
m-1 words) of a kept longer n-gram is kept whatever its count, so the model stays a valid ARPA model.

The model is pruned after it is estimated: discounts and every kept n-gram's probability are those of the
unpruned model, and the back-off weight of each context that lost n-grams is recomputed so that its
distribution sums to one again (SRILM's way for pruned models):
``bow(h) = (1 - sum of p(w|h) over kept w) / (1 - sum of p_lower(w|h') over kept w)``.
lmplz instead moves a pruned n-gram's discounted mass into its context's interpolation weight, which also
shifts the kept n-grams' probabilities; both are normalised, and their perplexities differ slightly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmbench.errors import ConfigError
from lmbench.models.ngram.counting import NgramTable
from lmbench.models.ngram.smoothing import BackoffArrays, Smoother, adjusted_count


def check_thresholds(prune: Sequence[int] | None, order: int) -> tuple[int, ...] | None:
    """The thresholds for orders 1..``order`` (the last given value repeated), or None for no pruning;
    a one-line :class:`ConfigError` for values lmplz refuses."""
    if prune is None:
        return None
    if isinstance(prune, (str, bytes)) or not isinstance(prune, Sequence):
        raise ConfigError(f"prune: expected a list of counts, one per order (e.g. [0, 1, 1]), got {prune!r}")
    values = list(prune)
    if not values:
        return None
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in values):
        raise ConfigError(f"prune: expected counts >= 0 (integers), got {values}")
    if len(values) > order:
        raise ConfigError(f"prune: {len(values)} thresholds given for a model of order {order}")
    if values[0] != 0:
        raise ConfigError(f"prune: unigrams are never pruned, so the first threshold must be 0, got {values}")
    if any(b < a for a, b in zip(values, values[1:], strict=False)):
        raise ConfigError(
            f"prune: thresholds must not decrease ({values}); a longer n-gram would outlive one inside it"
        )
    values += [values[-1]] * (order - len(values))
    return tuple(values) if any(values) else None


def keep_masks(counts: Sequence[np.ndarray], tables: Sequence[NgramTable], thresholds: Sequence[int]) -> list:
    """Per order, which rows survive: count above the order's threshold, or the context or suffix of a
    longer n-gram that survives (orders are decided from the top down)."""
    n = len(tables)
    keep = [np.asarray(c) > t for c, t in zip(counts, thresholds, strict=True)]
    keep[0] = np.ones(len(tables[0]), dtype=bool)
    for m in range(n, 2, -1):  # order m's kept rows hold their contexts and suffixes at order m - 1
        kept = keep[m - 1]
        keep[m - 2][np.asarray(tables[m - 1].context)[kept]] = True
        keep[m - 2][np.asarray(tables[m - 1].suffix)[kept]] = True
    return keep


def prune_backoff(
    tables: Sequence[NgramTable], arrays: Sequence[BackoffArrays], keep: Sequence[np.ndarray]
) -> tuple[list[np.ndarray], list[BackoffArrays]]:
    """The kept rows' keys and back-off arrays (linear, float64), with the back-off weight of every context
    that lost an n-gram recomputed so that its distribution sums to one (orders from the bottom up, so each
    order backs off to the already-pruned order below)."""
    n = len(tables)
    V = tables[0].vocab_size
    bows = [np.array(a.bow, dtype=np.float64) for a in arrays]
    for m in range(2, n + 1):
        table, prob, lower = tables[m - 1], arrays[m - 1].prob, arrays[m - 2].prob
        context, suffix, kept = np.asarray(table.context), np.asarray(table.suffix), keep[m - 1]
        n_ctx = len(tables[m - 2])
        lost = np.bincount(context[~kept], minlength=n_ctx) > 0
        if not lost.any():
            continue
        seen = np.bincount(context[kept], weights=prob[kept], minlength=n_ctx)
        seen_lower = np.bincount(context[kept], weights=lower[suffix[kept]], minlength=n_ctx)
        num, den = 1.0 - seen, 1.0 - seen_lower
        ok = lost & (den > 1e-12) & (num > 0)
        bows[m - 2][ok] = num[ok] / den[ok]
    new_row = [np.cumsum(k) - 1 for k in keep]
    keys, out = [], []
    for m in range(1, n + 1):
        table, kept = tables[m - 1], keep[m - 1]
        if m == 1:
            keys.append(np.asarray(table.keys))
        else:  # keys are context row x V + word: the context rows are renumbered, their order is unchanged
            word = np.asarray(table.keys)[kept] % V
            keys.append(new_row[m - 2][np.asarray(table.context)[kept]].astype(np.int64) * V + word)
        bow = bows[m - 1][kept] if m < n else np.ones(int(kept.sum()))
        out.append(BackoffArrays(prob=np.asarray(arrays[m - 1].prob)[kept], bow=bow))
    return keys, out


def decision_counts(tables: Sequence[NgramTable], smoother: Smoother, bos_id: int) -> list[np.ndarray]:
    """The count each n-gram is pruned by: what its smoother estimates from (Kneser-Ney's continuation
    counts below the top order, as lmplz; raw counts otherwise)."""
    if not getattr(smoother, "continuation_counts", False):
        return [np.asarray(t.counts) for t in tables]
    out, firsts = [], tables[0].word
    for m, table in enumerate(tables, start=1):
        if m > 1:
            firsts = firsts[np.asarray(table.context)]
        out.append(adjusted_count(list(tables), m, firsts, bos_id))
    return out
