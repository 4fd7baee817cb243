"""Smoothing strategies. Each turns counted n-gram tables into *back-off form* (as in an ARPA file):
a probability for every stored n-gram and a back-off weight for every stored context, so that

    p(w | h) = prob(h w)                      if h w is stored
             = bow(h) * p(w | h minus its first word)   otherwise   (bow of an unstored h is 1)

Interpolated smoothers are written as ``p_m(w|h) = alpha_m(h w) + gamma_m(h) * p_{m-1}(w|h')`` with the
uniform distribution below order 1; :func:`interpolated_to_backoff` turns (alpha, gamma) into back-off form
exactly (prob = the interpolated value, bow = gamma), the way KenLM and SRILM store interpolated models.
``<s>`` is context only: it gets probability 0 and the uniform base spreads over the other |V| - 1 words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lmbench.errors import ConfigError
from lmbench.models.ngram.counting import NgramTable, context_sums, followers

log = logging.getLogger(__name__)

# KenLM's --discount_fallback values for D1, D2, D3+ when count-of-counts leave them undefined.
DEFAULT_MKN_FALLBACK = (0.5, 1.0, 1.5)
DEFAULT_KN_FALLBACK = 0.75


@dataclass
class BackoffArrays:
    """Back-off form of one order: linear probabilities per stored n-gram, back-off weight per n-gram as context."""

    prob: np.ndarray  # float64 [rows]
    bow: np.ndarray  # float64 [rows]; 1.0 where the n-gram is never a context


def _uniform(vocab_size: int, bos_id: int) -> np.ndarray:
    u = np.full(vocab_size, 1.0 / (vocab_size - 1))
    u[bos_id] = 0.0
    return u


def interpolated_to_backoff(
    tables: list[NgramTable], alphas: list[np.ndarray], gammas: list[np.ndarray], *, bos_id: int
) -> list[BackoffArrays]:
    """Back-off form of an interpolated model.

    ``alphas[m-1]`` [rows of order m]: the mass an n-gram gets at its own order; ``gammas[m-1]`` [rows of order
    m-1, or 1 for m = 1]: the weight of the lower order after each context (1 for contexts never seen).
    """
    V = len(tables[0])
    out: list[BackoffArrays] = []
    lower = _uniform(V, bos_id)
    for m, table in enumerate(tables, start=1):
        gamma_ctx = gammas[m - 1][table.context]
        lower_of_suffix = lower if m == 1 else out[-1].prob[table.suffix]
        prob = alphas[m - 1] + gamma_ctx * lower_of_suffix
        if m == 1:
            prob[bos_id] = 0.0
        out.append(BackoffArrays(prob=prob, bow=np.ones(len(table))))
        if m > 1:
            out[m - 2].bow = gammas[m - 1]
    return out


def first_words(tables: list[NgramTable]) -> list[np.ndarray]:
    """First word of every stored n-gram, per order."""
    firsts = [tables[0].word]
    for table in tables[1:]:
        firsts.append(firsts[-1][table.context])
    return firsts


def adjusted_count(tables: list[NgramTable], m: int, firsts: np.ndarray, bos_id: int) -> np.ndarray:
    """Kneser-Ney counts of order m: raw at the top order and for n-grams that start with ``<s>`` (nothing
    can precede them); elsewhere the number of distinct words seen before the n-gram (continuation count).
    ``firsts``: the first word of every order-m n-gram."""
    table = tables[m - 1]
    if m == len(tables):
        return table.counts.astype(np.float64)
    cont = np.bincount(tables[m].suffix, minlength=len(table)).astype(np.float64)
    adjusted = np.where(firsts == bos_id, table.counts, cont).astype(np.float64)
    if m == 1:
        adjusted[bos_id] = 0.0
    return adjusted


def adjusted_counts(tables: list[NgramTable], bos_id: int) -> list[np.ndarray]:
    """:func:`adjusted_count` of every order."""
    return [adjusted_count(tables, m, f, bos_id) for m, f in enumerate(first_words(tables), start=1)]


def _num_contexts(tables: list[NgramTable], m: int) -> int:
    return 1 if m == 1 else len(tables[m - 2])


def _gamma(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den for contexts that were seen; 1 (pass everything to the lower order) where den == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)


def _count_of_counts(counts: np.ndarray, upto: int) -> np.ndarray:
    """n_k for k = 1..upto: how many n-grams have (adjusted) count exactly k."""
    c = counts[counts > 0].astype(np.int64)
    return np.bincount(np.minimum(c, upto + 1), minlength=upto + 2)[1 : upto + 1].astype(np.float64)


def mkn_discounts(counts: np.ndarray, order: int) -> tuple[float, float, float]:
    """Chen & Goodman's D1, D2, D3+ from the count-of-counts n1..n4 of one order's (adjusted) counts.

    Y = n1 / (n1 + 2 n2); D_k = k - (k + 1) Y n_{k+1} / n_k. Undefined or out-of-range values (no singletons,
    e.g. a vocabulary-capped corpus) fall back to KenLM's --discount_fallback 0.5, 1, 1.5 with a warning.
    """
    n1, n2, n3, n4 = _count_of_counts(counts, 4)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = n1 / (n1 + 2 * n2)
        d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(np.isfinite(x) and 0 < x <= k for k, x in enumerate(d, start=1)):
        log.warning(
            "order %d: count-of-counts n1..n4 = %s leave modified Kneser-Ney discounts undefined or out of "
            "range (%s); using the fallback D1, D2, D3+ = %s",
            order, [int(x) for x in (n1, n2, n3, n4)], [round(float(x), 4) for x in d], DEFAULT_MKN_FALLBACK,
        )  # fmt: skip
        return DEFAULT_MKN_FALLBACK
    return tuple(float(x) for x in d)  # type: ignore[return-value]


def single_discount(counts: np.ndarray, order: int) -> float:
    """Ney's estimate D = n1 / (n1 + 2 n2), falling back to 0.75 where undefined."""
    n1, n2 = _count_of_counts(counts, 2)
    if n1 <= 0 or n1 + 2 * n2 <= 0:
        log.warning("order %d: no singletons, discount undefined; using %s", order, DEFAULT_KN_FALLBACK)
        return DEFAULT_KN_FALLBACK
    return float(n1 / (n1 + 2 * n2))


def _unigram_mle(alphas: list[np.ndarray], gammas: list[np.ndarray], counts: np.ndarray) -> None:
    """Replace the order-1 estimate by the undiscounted relative frequency of ``counts`` (raw counts, or
    Kneser-Ney's continuation counts), with no uniform floor, in place."""
    alphas[0] = counts / counts.sum()
    gammas[0] = np.zeros(1)


def discounted_interpolation(
    tables: list[NgramTable],
    count: Callable[[int, np.ndarray], np.ndarray],
    discount: Callable[[int, np.ndarray], float | tuple[float, float, float]],
    *,
    bos_id: int,
    interpolate_unigrams: bool = True,
    finish: Callable[[BackoffArrays], BackoffArrays] | None = None,
    consume: bool = False,
) -> list[BackoffArrays]:
    """Interpolated discounting (absolute, Kneser-Ney, modified Kneser-Ney share this):
    alpha = max(c - D(c), 0) / S(h), gamma(h) = (sum of the discounts taken after h) / S(h).

    Goes order by order so that only one order's float64 work arrays exist at a time: ``count(m, firsts)``
    gives order m's counts (``firsts``: the first word of each n-gram), ``discount(m, counts)`` its D or
    (D1, D2, D3+); ``finish`` turns an order whose probabilities and back-offs are final into its stored
    form (e.g. float32 log10) as soon as they are, so the float64 arrays of the other orders are freed;
    ``consume`` drops each table's counts, contexts and suffixes once the next order no longer needs them.
    """
    finish = finish or (lambda arrays: arrays)
    V = len(tables[0])
    out: list[BackoffArrays] = []
    lower = _uniform(V, bos_id)  # the finished estimate of the order below, at the rows of this order
    firsts = tables[0].word
    for m, table in enumerate(tables, start=1):
        if m > 1:
            firsts = firsts[table.context]
            if consume:  # order m-1 is done with: its own counts and rows, and its continuation counts
                tables[m - 2].release()
        c = count(m, firsts)  # float64, a fresh array: it becomes alpha in place below
        d = discount(m, c)
        if isinstance(d, tuple):  # D1, D2, D3+ by count
            disc = np.full(len(c), d[2])
            disc[c == 2] = d[1]
            disc[c == 1] = d[0]
        else:
            disc = np.minimum(c, d)
        disc[c <= 0] = 0.0
        n_ctx = _num_contexts(tables, m)
        total = context_sums(table, c, n_ctx)
        gamma = _gamma(context_sums(table, disc, n_ctx), total)
        if m == 1 and not interpolate_unigrams:  # Kneser-Ney: continuation counts, not raw frequencies
            alpha, gamma = c / c.sum(), np.zeros(1)
        else:  # alpha = (c - D(c)) / S(h) where c > 0, else 0; in place, one row-sized array at a time
            seen = c > 0
            alpha = np.subtract(c, disc, out=c)
            del disc
            denominator = total[table.context]
            denominator[denominator <= 0] = 1.0
            np.divide(alpha, denominator, out=alpha)
            del denominator
            alpha[~seen] = 0.0
            del seen
        del total, c
        prob = gamma[table.context]
        prob *= lower if m == 1 else lower[table.suffix]
        prob += alpha  # alpha + gamma(h) * p_lower(w | h')
        del alpha
        if m == 1:
            prob[bos_id] = 0.0
        if m > 1:  # order m-1 is final now: its back-off is this order's gamma
            out[m - 2] = finish(BackoffArrays(prob=lower, bow=gamma))
        lower = prob
        out.append(BackoffArrays(prob=prob, bow=np.ones(0)))
    out[-1] = finish(BackoffArrays(prob=lower, bow=np.ones(len(tables[-1]))))
    return out


def witten_bell(
    tables: list[NgramTable], *, bos_id: int, interpolate_unigrams: bool = True
) -> list[BackoffArrays]:
    """Interpolated Witten-Bell: alpha = c / (c(h) + T(h)), gamma = T(h) / (c(h) + T(h)), T = distinct followers."""
    alphas, gammas = [], []
    for m, table in enumerate(tables, start=1):
        c = table.counts.astype(np.float64)
        n_ctx = _num_contexts(tables, m)
        total = context_sums(table, c, n_ctx)
        types = followers(table, n_ctx, table.counts > 0).astype(np.float64)
        den = total + types
        alphas.append(c / np.where(den[table.context] > 0, den[table.context], 1.0))
        gammas.append(_gamma(types, den))
    if not interpolate_unigrams:
        _unigram_mle(alphas, gammas, tables[0].counts.astype(np.float64))
    return interpolated_to_backoff(tables, alphas, gammas, bos_id=bos_id)


def add_k(tables: list[NgramTable], k: float, *, bos_id: int) -> list[BackoffArrays]:
    """Add-k at the top order: (c + k) / (c(h) + k |V'|), |V'| = the predictable words (all but ``<s>``).

    Written as c/(c(h)+k|V'|) + [k|V'|/(c(h)+k|V'|)] * uniform; lower orders pass straight through to the
    uniform distribution, so an unseen context gives 1/|V'| (as NLTK's Lidstone does).
    """
    V = len(tables[0])
    alphas, gammas = [], []
    for m, table in enumerate(tables, start=1):
        n_ctx = _num_contexts(tables, m)
        if m < len(tables):
            alphas.append(np.zeros(len(table)))
            gammas.append(np.ones(n_ctx))
            continue
        c = table.counts.astype(np.float64)
        total = context_sums(table, c, n_ctx)
        den = total + k * (V - 1)
        alphas.append(c / den[table.context])
        gammas.append(k * (V - 1) / den)
    return interpolated_to_backoff(tables, alphas, gammas, bos_id=bos_id)


def maximum_likelihood(tables: list[NgramTable], *, bos_id: int) -> list[BackoffArrays]:
    """Relative frequencies: an unseen word after a seen context has probability 0 (infinite perplexity).

    Only a context never seen in training falls back to the next lower order (there is no estimate at all).
    """
    alphas, gammas = [], []
    for m, table in enumerate(tables, start=1):
        c = table.counts.astype(np.float64)
        n_ctx = _num_contexts(tables, m)
        total = context_sums(table, c, n_ctx)
        alphas.append(c / np.where(total[table.context] > 0, total[table.context], 1.0))
        gammas.append(np.where(total > 0, 0.0, 1.0))
    return interpolated_to_backoff(tables, alphas, gammas, bos_id=bos_id)


def good_turing_discounts(counts: np.ndarray, order: int, max_count: int = 5) -> np.ndarray:
    """Katz's discount ratios d_r for r = 1..max_count (index r), 1 above (Katz 1987, as in SRILM).

    d_r = (r*/r - (k+1) n_{k+1}/n_1) / (1 - (k+1) n_{k+1}/n_1), r* = (r+1) n_{r+1}/n_r. Values outside (0, 1]
    (sparse count-of-counts) fall back to absolute discounting with D = 0.5 for that r, with a warning.
    """
    k = max_count
    n = _count_of_counts(counts, k + 1)  # n[0] = n_1
    d = np.ones(k + 1)
    bad = []
    for r in range(1, k + 1):
        with np.errstate(divide="ignore", invalid="ignore"):
            r_star = (r + 1) * n[r] / n[r - 1]
            common = (k + 1) * n[k] / n[0]
            value = (r_star / r - common) / (1 - common)
        if np.isfinite(value) and 0 < value <= 1:
            d[r] = value
        else:
            d[r] = (r - 0.5) / r
            bad.append(r)
    if bad:
        log.warning(
            "order %d: Good-Turing discount undefined for counts %s; using absolute discount 0.5", order, bad
        )
    return d


def katz(tables: list[NgramTable], *, bos_id: int, max_count: int = 5) -> list[BackoffArrays]:
    """Katz back-off with Good-Turing discounts; back-off weights renormalise the unseen words' mass.

    bow(h) = (1 - sum_{w seen after h} p(w|h)) / (1 - sum_{w seen after h} p_lower(w|h')). Unigrams are
    discounted too and the freed mass is spread uniformly, so unseen words (``<unk>``) get probability.
    """
    V = len(tables[0])
    out: list[BackoffArrays] = []
    for m, table in enumerate(tables, start=1):
        c = table.counts.astype(np.float64)
        d = good_turing_discounts(c, m, max_count)
        ratio = np.where(c <= max_count, d[np.minimum(c, max_count).astype(np.int64)], 1.0)
        n_ctx = _num_contexts(tables, m)
        total = context_sums(table, c, n_ctx)
        prob = ratio * c / np.where(total[table.context] > 0, total[table.context], 1.0)
        if m == 1:
            leftover = max(1.0 - prob.sum(), 0.0)
            prob = prob + leftover * _uniform(V, bos_id)
            prob[bos_id] = 0.0
            out.append(BackoffArrays(prob=prob, bow=np.ones(len(table))))
            continue
        lower = out[-1].prob[table.suffix]
        seen_mass = context_sums(table, prob, n_ctx)
        lower_mass = context_sums(table, lower, n_ctx)
        with np.errstate(divide="ignore", invalid="ignore"):
            bow = np.where(total > 0, (1.0 - seen_mass) / np.maximum(1.0 - lower_mass, 1e-300), 1.0)
        out[-1].bow = np.maximum(bow, 0.0)
        out.append(BackoffArrays(prob=prob, bow=np.ones(len(table))))
    return out


def stupid_backoff(tables: list[NgramTable], *, backoff: float = 0.4) -> list[BackoffArrays]:
    """Brants et al. (2007): relative frequency, else ``backoff`` x the lower order. Scores, not probabilities."""
    out = []
    for m, table in enumerate(tables, start=1):
        c = table.counts.astype(np.float64)
        total = context_sums(table, c, _num_contexts(tables, m))
        prob = c / np.where(total[table.context] > 0, total[table.context], 1.0)
        if out:
            out[-1].bow = np.full(len(out[-1].prob), backoff)
        out.append(BackoffArrays(prob=prob, bow=np.ones(len(table))))
    return out


SMOOTHERS = (
    "mle",
    "add-k",
    "laplace",
    "lidstone",
    "katz",
    "witten-bell",
    "absolute-discounting",
    "kneser-ney",
    "modified-kneser-ney",
    "stupid-backoff",
)


def smooth(
    tables: list[NgramTable],
    smoothing: str,
    *,
    bos_id: int,
    k: float = 1.0,
    discount: float | None = None,
    backoff: float = 0.4,
    interpolate_unigrams: bool = True,
    finish: Callable[[BackoffArrays], BackoffArrays] | None = None,
    consume: bool = False,
) -> tuple[list[BackoffArrays], dict]:
    """Back-off form of ``tables`` under ``smoothing``, and the estimated constants (discounts) for reports.

    ``interpolate_unigrams=False`` (interpolated smoothers only) makes order 1 an undiscounted relative
    frequency of that smoother's counts (continuation counts for Kneser-Ney), as NLTK does; unseen words then
    get probability 0. (KenLM's ``--interpolate_unigrams 0`` differs: it gives the discounted mass to <unk>.)
    ``finish`` (the discounting smoothers) stores each order as soon as it is final, and ``consume`` lets them
    drop what a table no longer needs as they go (the tables keep only their keys), to bound memory.
    """
    iu = interpolate_unigrams
    info: dict = {}
    done = finish or (lambda arrays: arrays)
    if smoothing == "mle":
        return [done(a) for a in maximum_likelihood(tables, bos_id=bos_id)], info
    if smoothing in ("add-k", "laplace", "lidstone"):
        return [done(a) for a in add_k(tables, 1.0 if smoothing == "laplace" else k, bos_id=bos_id)], info
    if smoothing == "katz":
        return [done(a) for a in katz(tables, bos_id=bos_id)], info
    if smoothing == "witten-bell":
        return [done(a) for a in witten_bell(tables, bos_id=bos_id, interpolate_unigrams=iu)], info
    if smoothing == "absolute-discounting":
        ds: list = []

        def fixed_or_ney(m: int, c: np.ndarray) -> float:
            ds.append(discount if discount is not None else single_discount(c, m))
            return ds[-1]

        raw = lambda m, firsts: tables[m - 1].counts.astype(np.float64)  # noqa: E731
        info["discounts"] = ds
        arrays = discounted_interpolation(
            tables, raw, fixed_or_ney, bos_id=bos_id, interpolate_unigrams=iu, finish=finish, consume=consume
        )
        return arrays, info
    if smoothing in ("kneser-ney", "modified-kneser-ney"):
        ds = []

        def estimate(m: int, c: np.ndarray) -> float | tuple[float, float, float]:
            if smoothing == "modified-kneser-ney":
                ds.append(mkn_discounts(c, m))
            else:
                ds.append(discount if discount is not None else single_discount(c, m))
            return ds[-1]

        adjusted = lambda m, firsts: adjusted_count(tables, m, firsts, bos_id)  # noqa: E731
        info["discounts"] = ds
        arrays = discounted_interpolation(
            tables, adjusted, estimate, bos_id=bos_id, interpolate_unigrams=iu, finish=finish, consume=consume
        )
        return arrays, info
    if smoothing == "stupid-backoff":
        return [done(a) for a in stupid_backoff(tables, backoff=backoff)], info
    raise ConfigError(f"smoothing: unknown smoother {smoothing!r}; expected one of {', '.join(SMOOTHERS)}")
