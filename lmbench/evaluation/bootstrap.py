"""Bootstrap intervals for perplexity, and a paired bootstrap for the difference between two models.

Resampling units are lines in sentence mode (lines are scored independently) and fixed-size blocks of
consecutive tokens in stream mode (context crosses lines, so neighbouring tokens are dependent). A model
trained with several seeds is resampled hierarchically: each resample draws seeds with replacement as well
as units, so the interval covers training randomness as well as the choice of test text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmbench.data.corpus import TokenStream
from lmbench.evaluation.metrics import perplexity


def _units(
    logprobs: np.ndarray, data: TokenStream, context: str, block_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit (sum of log-probabilities, token count): lines in sentence mode, blocks in stream mode."""
    logprobs = np.asarray(logprobs, dtype=np.float64)
    if context == "sentence":
        starts = data.target_line_starts()
    else:
        starts = np.arange(0, len(logprobs), block_size, dtype=np.int64)
    sums = np.add.reduceat(logprobs, starts) if len(logprobs) else np.zeros(0)
    counts = np.diff(np.append(starts, len(logprobs)))
    return sums, counts


def _resample_indices(n_units: int, n_resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_units, size=(n_resamples, n_units))


def perplexity_interval(
    logprobs: np.ndarray,
    data: TokenStream,
    *,
    context: str = "sentence",
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    block_size: int = 256,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the perplexity (token-weighted within each resample)."""
    sums, counts = _units(logprobs, data, context, block_size)
    if len(sums) < 2 or not np.all(np.isfinite(sums)):
        # nothing to resample: the interval is the point estimate, computed exactly as `perplexity` does
        value = perplexity(np.asarray(logprobs, dtype=np.float64)) if counts.sum() else float("nan")
        return value, value
    alpha = (1.0 - level) / 2.0
    idx = _resample_indices(len(sums), n_resamples, seed)
    ppl = np.exp(-sums[idx].sum(axis=1) / counts[idx].sum(axis=1))
    low, high = np.quantile(ppl, [alpha, 1.0 - alpha])
    return float(low), float(high)


@dataclass
class PairedDifference:
    """Perplexity of A minus perplexity of B on the same text, its interval and a two-sided p-value."""

    difference: float
    low: float
    high: float
    p_value: float


def paired_difference(
    logprobs_a: np.ndarray,
    logprobs_b: np.ndarray,
    data: TokenStream,
    *,
    context: str = "sentence",
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    block_size: int = 256,
) -> PairedDifference:
    """Paired bootstrap: both models are resampled on the *same* units, so shared difficulty cancels out.

    The p-value is the two-sided share of resampled differences on the other side of zero
    (Koehn 2004's paired bootstrap), floored at 1/n_resamples.
    """
    sums_a, counts = _units(logprobs_a, data, context, block_size)
    sums_b, _ = _units(logprobs_b, data, context, block_size)
    total = counts.sum()
    diff = float(np.exp(-sums_a.sum() / total) - np.exp(-sums_b.sum() / total))
    if len(counts) < 2 or not (np.all(np.isfinite(sums_a)) and np.all(np.isfinite(sums_b))):
        return PairedDifference(diff, diff, diff, float("nan"))
    idx = _resample_indices(len(counts), n_resamples, seed)
    n = counts[idx].sum(axis=1)
    diffs = np.exp(-sums_a[idx].sum(axis=1) / n) - np.exp(-sums_b[idx].sum(axis=1) / n)
    return _paired_result(diff, diffs, level, n_resamples)


def _paired_result(diff: float, diffs: np.ndarray, level: float, n_resamples: int) -> PairedDifference:
    """Percentile interval of the resampled differences and the two-sided share on the other side of zero
    (Koehn 2004), floored at the bootstrap's resolution 1/n_resamples."""
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
    p = 2.0 * min(np.mean(diffs <= 0.0), np.mean(diffs >= 0.0))
    return PairedDifference(diff, float(low), float(high), float(max(min(p, 1.0), 1.0 / n_resamples)))


def mean_interval(
    values: np.ndarray, *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean (accuracies, reciprocal ranks: one value per item)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        v = float(values.mean()) if len(values) else float("nan")
        return v, v
    idx = _resample_indices(len(values), n_resamples, seed)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values[idx].mean(axis=1), [alpha, 1.0 - alpha])
    return float(low), float(high)


def _seed_sums(
    logprobs_by_seed: list[np.ndarray], data: TokenStream, context: str, block_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(seeds, units) sums of log-probabilities and the units' token counts (the same for every seed)."""
    pairs = [_units(lp, data, context, block_size) for lp in logprobs_by_seed]
    return np.stack([p[0] for p in pairs]), pairs[0][1]


def _resampled_cross_entropy(
    sums: np.ndarray, counts: np.ndarray, units: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Per resample: the mean over seeds drawn with replacement of each seed's cross-entropy on the
    resampled units ``units`` (n_resamples, n_units). One seed: the plain unit bootstrap."""
    k = sums.shape[0]
    per_seed = np.stack([s[units].sum(axis=1) for s in sums])  # (k, B)
    n = counts[units].sum(axis=1)  # (B,)
    if k == 1:
        return -per_seed[0] / n
    picks = rng.integers(0, k, size=(units.shape[0], k))  # (B, k) seeds drawn per resample
    weights = np.stack([np.bincount(row, minlength=k) for row in picks])  # (B, k)
    return -(weights * per_seed.T).sum(axis=1) / (k * n)


def mean_cross_entropy(logprobs_by_seed: list[np.ndarray]) -> float:
    """Mean over seeds of each seed's cross-entropy (nats per token); exp of it is the reported perplexity."""
    return float(np.mean([-np.mean(np.asarray(lp, dtype=np.float64)) for lp in logprobs_by_seed]))


def seeded_perplexity_interval(
    logprobs_by_seed: list[np.ndarray],
    data: TokenStream,
    *,
    context: str = "sentence",
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    block_size: int = 256,
) -> tuple[float, float]:
    """Interval of the perplexity of the mean per-seed cross-entropy, resampling seeds and units.

    With one seed this is exactly :func:`perplexity_interval`.
    """
    if len(logprobs_by_seed) == 1:
        return perplexity_interval(
            logprobs_by_seed[0], data, context=context, n_resamples=n_resamples, seed=seed, level=level,
            block_size=block_size,
        )  # fmt: skip
    sums, counts = _seed_sums(logprobs_by_seed, data, context, block_size)
    if sums.shape[1] < 2 or not np.all(np.isfinite(sums)):
        value = float(np.exp(mean_cross_entropy(logprobs_by_seed)))
        return value, value
    units = _resample_indices(sums.shape[1], n_resamples, seed)
    ppl = np.exp(_resampled_cross_entropy(sums, counts, units, np.random.default_rng([seed, 1])))
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(ppl, [alpha, 1.0 - alpha])
    return float(low), float(high)


def seeded_paired_difference(
    logprobs_a: list[np.ndarray],
    logprobs_b: list[np.ndarray],
    data: TokenStream,
    *,
    context: str = "sentence",
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    block_size: int = 256,
) -> PairedDifference:
    """Paired bootstrap of perplexity(A) - perplexity(B) where either model may have several seeds: the same
    units for both, each model's seeds drawn independently. One seed each: exactly :func:`paired_difference`."""
    if len(logprobs_a) == 1 and len(logprobs_b) == 1:
        return paired_difference(
            logprobs_a[0], logprobs_b[0], data, context=context, n_resamples=n_resamples, seed=seed,
            level=level, block_size=block_size,
        )  # fmt: skip
    sums_a, counts = _seed_sums(logprobs_a, data, context, block_size)
    sums_b, _ = _seed_sums(logprobs_b, data, context, block_size)
    diff = float(np.exp(mean_cross_entropy(logprobs_a)) - np.exp(mean_cross_entropy(logprobs_b)))
    if len(counts) < 2 or not (np.all(np.isfinite(sums_a)) and np.all(np.isfinite(sums_b))):
        return PairedDifference(diff, diff, diff, float("nan"))
    units = _resample_indices(len(counts), n_resamples, seed)
    ce_a = _resampled_cross_entropy(sums_a, counts, units, np.random.default_rng([seed, 1]))
    ce_b = _resampled_cross_entropy(sums_b, counts, units, np.random.default_rng([seed, 2]))
    diffs = np.exp(ce_a) - np.exp(ce_b)
    return _paired_result(diff, diffs, level, n_resamples)
