"""Smoothing strategies. Each turns counted n-gram tables into *back-off form* (as in an ARPA file):
a probability for every stored n-gram and a back-off weight for every stored context, so that

    p(w | h) = prob(h w)                      if h w is stored
             = bow(h) * p(w | h minus its first word)   otherwise   (bow of an unstored h is 1)

Interpolated smoothers are written as ``p_m(w|h) = alpha_m(h w) + gamma_m(h) * p_{m-1}(w|h')`` with the
uniform distribution below order 1; :func:`interpolated_to_backoff` turns (alpha, gamma) into back-off form
exactly (prob = the interpolated value, bow = gamma), the way KenLM and SRILM store interpolated models.
``<s>`` is context only: it gets probability 0 and the uniform base spreads over the other |V| - 1 words.

Each smoother is a :class:`Smoother` subclass (its parameters are dataclass fields) registered in
:data:`SMOOTHERS` by :func:`register_smoother`; adding one is one class and that decorator, in this module or in
an installed package (an entry point in the ``lmbench.smoothers`` group naming the class, checked the same way).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lmbench.errors import ConfigError
from lmbench.models.ngram.counting import NgramTable, context_sums, followers
from lmbench.models.ngram.streaming import (
    StreamedFit,
    count_of_counts,
    discount_per_count,
    smooth_streamed,
)
from lmbench.models.ngram.streaming import gamma as _gamma
from lmbench.models.ngram.streaming import uniform as _uniform
from lmbench.registry import PluginError, Registry

log = logging.getLogger(__name__)
STUCK_MASS = 1e-12  # Katz: a lower order's mass left for unseen words at or below this counts as none

# KenLM's --discount_fallback values for D1, D2, D3+ when count-of-counts leave them undefined.
DEFAULT_MKN_FALLBACK = (0.5, 1.0, 1.5)
DEFAULT_KN_FALLBACK = 0.75


@dataclass
class BackoffArrays:
    """Back-off form of one order: linear probabilities per stored n-gram, back-off weight per n-gram as context."""

    prob: np.ndarray  # float64 [rows]
    bow: np.ndarray  # float64 [rows]; 1.0 where the n-gram is never a context


def interpolated_to_backoff(
    tables: list[NgramTable],
    alphas: list[np.ndarray],
    gammas: list[np.ndarray],
    *,
    bos_id: int,
    vocab_pad: int = 0,
) -> list[BackoffArrays]:
    """Back-off form of an interpolated model.

    ``alphas[m-1]`` [rows of order m]: the mass an n-gram gets at its own order; ``gammas[m-1]`` [rows of order
    m-1, or 1 for m = 1]: the weight of the lower order after each context (1 for contexts never seen).
    """
    V = len(tables[0])
    out: list[BackoffArrays] = []
    lower = _uniform(V, bos_id, vocab_pad)
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


def _num_contexts(tables: list[NgramTable], m: int) -> int:
    return 1 if m == 1 else len(tables[m - 2])


def _count_of_counts(counts: np.ndarray, upto: int) -> np.ndarray:
    """n_k for k = 1..upto: how many n-grams have (adjusted) count exactly k."""
    return count_of_counts(counts, upto).astype(np.float64)


def mkn_discounts_from(count_of_counts: np.ndarray, order: int) -> tuple[float, float, float]:
    """D1, D2, D3+ from n1..n4 (``count_of_counts[k-1]`` = n-grams seen exactly k times).

    Y = n1 / (n1 + 2 n2); D_k = k - (k + 1) Y n_{k+1} / n_k. Undefined or out-of-range values (no singletons,
    e.g. a vocabulary-capped corpus) fall back to KenLM's --discount_fallback 0.5, 1, 1.5 with a warning.
    """
    n1, n2, n3, n4 = np.asarray(count_of_counts[:4], dtype=np.float64)
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


def single_discount_from(count_of_counts: np.ndarray, order: int) -> float:
    """Ney's D from n1, n2 (``count_of_counts[k-1]`` = n-grams seen exactly k times)."""
    n1, n2 = np.asarray(count_of_counts[:2], dtype=np.float64)
    if n1 <= 0:  # (counts are never negative, so n1 > 0 also keeps n1 + 2 n2 above zero)
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
    vocab_pad: int = 0,
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
    lower = _uniform(V, bos_id, vocab_pad)  # the finished estimate of the order below, at this order's rows
    firsts = tables[0].word
    for m, table in enumerate(tables, start=1):
        if m > 1:
            firsts = firsts[table.context]
            if consume:  # order m-1 is done with: its own counts and rows, and its continuation counts
                tables[m - 2].release()
        c = count(m, firsts)  # float64
        d = discount(m, c)
        disc = discount_per_count(c, d)
        if m == 1 and not interpolate_unigrams:  # Kneser-Ney: continuation counts, not raw frequencies
            prob, gamma = c / c.sum(), np.zeros(1)
        else:  # alpha + gamma(h) * p_lower(w | h'), alpha = (c - D(c)) / S(h) where c > 0, else 0
            from lmbench.models.ngram.interpolation import interpolate

            suffix = np.arange(len(table)) if m == 1 else table.suffix
            prob, gamma = interpolate(c, disc, table.context, _num_contexts(tables, m), lower, suffix)
        del c, disc
        if m == 1:
            prob[bos_id] = 0.0
        if m > 1:  # order m-1 is final now: its back-off is this order's gamma
            out[m - 2] = finish(BackoffArrays(prob=lower, bow=gamma))
        lower = prob
        out.append(BackoffArrays(prob=prob, bow=np.ones(0)))
    out[-1] = finish(BackoffArrays(prob=lower, bow=np.ones(len(tables[-1]))))
    return out


# ------------------------------------------------------------------------------------- strategy and registry
@dataclass
class Smoother(abc.ABC):
    """A smoothing strategy (nltk.lm's ``Smoothing``, vectorised over whole tables).

    Its parameters are its dataclass fields, each with a default; they are settings of :class:`NgramLM`
    (``NgramLM(smoothing="add-k", k=0.5)``) and round-trip through its ``get_params``. A subclass sets
    ``name`` (what ``smoothing = "..."`` selects) and ``description`` (the phrase reports use), checks its
    fields in :meth:`validate` and turns counted tables into back-off form in :meth:`estimate`.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    normalized: ClassVar[bool] = True  # False: scores are not probabilities (no perplexity)

    def __post_init__(self) -> None:
        self.validate()
        self.discounts_: list | None = None  # the constants estimated per order (for reports), if any

    def validate(self) -> None:  # noqa: B027 (a hook: a smoother without parameters has nothing to check)
        """Raise a one-line :class:`ConfigError` naming a parameter whose value is out of range."""

    @abc.abstractmethod
    def estimate(self, tables: list[NgramTable], *, bos_id: int) -> list[BackoffArrays]:
        """Back-off form of ``tables``: per order, linear probabilities of the stored n-grams and back-off
        weights of the n-grams as contexts (``<s>`` gets probability 0; it is never predicted)."""

    def to_backoff(
        self,
        tables: list[NgramTable],
        *,
        bos_id: int,
        finish: Callable[[BackoffArrays], BackoffArrays] | None = None,
        consume: bool = False,
    ) -> list[BackoffArrays]:
        """:meth:`estimate` with each order passed through ``finish`` (e.g. to float32 log10 storage).

        ``consume`` allows dropping what a table no longer needs; smoothers that go order by order
        (the discounting ones) override this to finish each order as soon as it is final, bounding memory.
        """
        arrays = self.estimate(tables, bos_id=bos_id)
        return [finish(a) for a in arrays] if finish else arrays

    @classmethod
    def params(cls) -> dict[str, Any]:
        """The smoother's parameters and their defaults."""
        return {f.name: f.default for f in fields(cls)}


# NgramLM's own settings: no smoother parameter may take one of these names
MODEL_SETTINGS = frozenset(
    {"order", "smoothing", "train_context", "memory", "progress", "precision", "prune"}
)


def _check_smoother(name: str, cls: Any) -> type[Smoother]:
    """A smoother class as the registry takes it. NgramLM has one setting per parameter name, so a parameter
    that another smoother already declares must have the same default there."""
    if not (isinstance(cls, type) and issubclass(cls, Smoother)):
        raise PluginError(f"expected a Smoother subclass, got {cls!r}")
    if cls.name != name:
        raise PluginError(f"the smoother is named {cls.name!r}, not {name!r}")
    for f in fields(cls):
        if f.default is MISSING:
            raise ValueError(f"smoother {cls.name!r}: parameter {f.name!r} needs a default")
        if f.name in MODEL_SETTINGS:
            raise ValueError(f"smoother {cls.name!r}: parameter {f.name!r} is already a setting of NgramLM")
    known = _params(c for n, c in SMOOTHERS.registered().items() if n != name)
    for key, default in cls.params().items():
        if key in known and known[key] != default:
            raise ValueError(
                f"smoother {cls.name!r}: parameter {key!r} defaults to {default!r}, but another smoother "
                f"gives the same setting the default {known[key]!r}"
            )
    return cls


SMOOTHERS: Registry[type[Smoother]] = Registry("smoother", "lmbench.smoothers", adapt=_check_smoother)


def register_smoother(cls: type[Smoother]) -> type[Smoother]:
    """Class decorator: make ``cls`` selectable as ``smoothing = cls.name`` (a name already taken is refused)."""
    SMOOTHERS.register(cls.name, cls)
    return cls


def all_smoother_params() -> dict[str, Any]:
    """Every registered smoother's parameters with their defaults, in registration order."""
    return _params(SMOOTHERS.values())


def _params(classes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cls in classes:
        for key, default in cls.params().items():
            out.setdefault(key, default)
    return out


def smoother_class(name: str) -> type[Smoother]:
    """The registered smoother called ``name``, or a one-line :class:`ConfigError`."""
    return SMOOTHERS.lookup(name, where="smoothing")


def describe_smoothing(name: str | None) -> str:
    """The phrase reports use for a smoothing setting (``None``: tables given to ``NgramLM.from_tables``)."""
    if name is None:
        return "given back-off estimates (no lmbench smoother)"
    cls = SMOOTHERS.get(name)
    return cls.description if cls is not None else str(name)


def _check_number(key: str, value: Any, ok: Callable[[float], bool], expected: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")


def _check_vocab_pad(vocab_pad: Any, interpolate_unigrams: bool) -> None:
    _check_number("vocab_pad", vocab_pad, lambda v: isinstance(v, int) and v >= 0, "an integer >= 0")
    if vocab_pad and not interpolate_unigrams:
        raise ConfigError(
            "vocab_pad: pads the uniform distribution that unigrams are interpolated with; "
            "it needs interpolate_unigrams = true (as lmplz's --vocab_pad does)"
        )


def _check_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")


# ------------------------------------------------------------------------------------------- the smoothers
@register_smoother
@dataclass
class MaximumLikelihood(Smoother):
    """Relative frequencies: an unseen word after a seen context has probability 0 (infinite perplexity).

    Only a context never seen in training falls back to the next lower order (there is no estimate at all).
    """

    name: ClassVar[str] = "mle"
    description: ClassVar[str] = "maximum likelihood (raw relative frequencies)"

    def estimate(self, tables: list[NgramTable], *, bos_id: int) -> list[BackoffArrays]:
        alphas, gammas = [], []
        for m, table in enumerate(tables, start=1):
            c = table.counts.astype(np.float64)
            n_ctx = _num_contexts(tables, m)
            total = context_sums(table, c, n_ctx)
            alphas.append(c / np.where(total[table.context] > 0, total[table.context], 1.0))
            gammas.append(np.where(total > 0, 0.0, 1.0))
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


@register_smoother
@dataclass
class AddK(Smoother):
    """Add ``k`` to every count of the top order (:func:`add_k`)."""

    name: ClassVar[str] = "add-k"
    description: ClassVar[str] = "add-k smoothing"
    k: float = 1.0

    def validate(self) -> None:
        _check_number("k", self.k, lambda k: k > 0, "a positive number")

    def estimate(self, tables: list[NgramTable], *, bos_id: int) -> list[BackoffArrays]:
        return add_k(tables, self.k, bos_id=bos_id)


@register_smoother
@dataclass
class Laplace(Smoother):
    """Add one to every count of the top order."""

    name: ClassVar[str] = "laplace"
    description: ClassVar[str] = "add-one (Laplace) smoothing"

    def estimate(self, tables: list[NgramTable], *, bos_id: int) -> list[BackoffArrays]:
        return add_k(tables, 1.0, bos_id=bos_id)


@register_smoother
@dataclass
class Lidstone(AddK):
    """Lidstone's name for add-k."""

    name: ClassVar[str] = "lidstone"
    description: ClassVar[str] = "Lidstone (add-k) smoothing"


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


@register_smoother
@dataclass
class Katz(Smoother):
    """Katz back-off with Good-Turing discounts; back-off weights renormalise the unseen words' mass.

    bow(h) = (1 - sum_{w seen after h} p(w|h)) / (1 - sum_{w seen after h} p_lower(w|h')). Unigrams are
    discounted too and the freed mass is spread uniformly, so unseen words (``<unk>``) get probability.
    """

    name: ClassVar[str] = "katz"
    description: ClassVar[str] = "Katz back-off with Good-Turing discounts"
    max_count: ClassVar[int] = 5  # counts above it are trusted as they are

    def estimate(self, tables: list[NgramTable], *, bos_id: int) -> list[BackoffArrays]:
        V = len(tables[0])
        out: list[BackoffArrays] = []
        for m, table in enumerate(tables, start=1):
            c = table.counts.astype(np.float64)
            d = good_turing_discounts(c, m, self.max_count)
            ratio = np.where(c <= self.max_count, d[np.minimum(c, self.max_count).astype(np.int64)], 1.0)
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
            # a context whose seen words hold all of the lower order's mass has nowhere to send the mass its
            # discounts free (the unseen words get 0 below): its seen probabilities are scaled to sum to one
            # instead, as SRILM does ("BOW denominator ... is zero")
            stuck = (total > 0) & (1.0 - lower_mass <= STUCK_MASS) & (seen_mass < 1.0)
            if stuck.any():
                log.warning(
                    "katz order %d: %d contexts back off to a lower order with no mass left for their unseen "
                    "words; their seen probabilities are scaled to sum to one",
                    m,
                    int(stuck.sum()),
                )
                prob = prob / np.where(stuck, seen_mass, 1.0)[table.context]
            with np.errstate(divide="ignore", invalid="ignore"):
                bow = np.where(
                    (total > 0) & ~stuck, (1.0 - seen_mass) / np.maximum(1.0 - lower_mass, 1e-300), 1.0
                )
            out[-1].bow = np.maximum(bow, 0.0)
            out.append(BackoffArrays(prob=prob, bow=np.ones(len(table))))
        return out


@register_smoother
@dataclass
class WittenBell(Smoother):
    """Interpolated Witten-Bell: alpha = c / (c(h) + T(h)), gamma = T(h) / (c(h) + T(h)), T = distinct followers.

    ``interpolate_unigrams=False`` ends in undiscounted unigram frequencies instead of the uniform floor.
    """

    name: ClassVar[str] = "witten-bell"
    description: ClassVar[str] = "Witten-Bell interpolation"
    interpolate_unigrams: bool = True
    vocab_pad: int = 0  # lmplz's --vocab_pad: the uniform base distribution as if over this many words

    def validate(self) -> None:
        _check_bool("interpolate_unigrams", self.interpolate_unigrams)
        _check_vocab_pad(self.vocab_pad, self.interpolate_unigrams)

    def estimate(self, tables: list[NgramTable], *, bos_id: int) -> list[BackoffArrays]:
        alphas, gammas = [], []
        for m, table in enumerate(tables, start=1):
            c = table.counts.astype(np.float64)
            n_ctx = _num_contexts(tables, m)
            total = context_sums(table, c, n_ctx)
            types = followers(table, n_ctx, table.counts > 0).astype(np.float64)
            den = total + types
            alphas.append(c / np.where(den[table.context] > 0, den[table.context], 1.0))
            gammas.append(_gamma(types, den))
        if not self.interpolate_unigrams:
            _unigram_mle(alphas, gammas, tables[0].counts.astype(np.float64))
        return interpolated_to_backoff(tables, alphas, gammas, bos_id=bos_id, vocab_pad=self.vocab_pad)


@dataclass
class _Discounting(Smoother):
    """Interpolated discounting (:func:`discounted_interpolation`): a subclass says which counts it discounts
    and by how much; the estimated discounts are kept in ``discounts_`` for reports.

    ``interpolate_unigrams=False`` makes order 1 an undiscounted relative frequency of the smoother's counts
    (continuation counts for Kneser-Ney), as NLTK does; unseen words then get probability 0. (KenLM's
    ``--interpolate_unigrams 0`` differs: it gives the discounted mass to <unk>.)
    """

    interpolate_unigrams: bool = True
    vocab_pad: int = 0  # lmplz's --vocab_pad: the uniform base distribution as if over this many words

    def validate(self) -> None:
        _check_bool("interpolate_unigrams", self.interpolate_unigrams)
        _check_vocab_pad(self.vocab_pad, self.interpolate_unigrams)

    continuation_counts: ClassVar[bool] = False  # Kneser-Ney's counts below the top order, else raw counts

    def counts(self, tables: list[NgramTable], m: int, firsts: np.ndarray, bos_id: int) -> np.ndarray:
        """Order m's counts to discount, float64 (a fresh array); ``firsts``: each n-gram's first word."""
        if self.continuation_counts:
            return adjusted_count(tables, m, firsts, bos_id)
        return tables[m - 1].counts.astype(np.float64)

    @abc.abstractmethod
    def discount_from(self, m: int, count_of_counts: np.ndarray) -> float | tuple[float, float, float]:
        """Order m's discount D, or (D1, D2, D3+) by count, from the count-of-counts n1..n4 of its counts
        (all the discount needs, so the in-memory and the streamed estimates share it)."""

    def to_backoff_streamed(
        self,
        tables: list[NgramTable],
        *,
        bos_id: int,
        dtype: np.dtype,
        memory: int,
        folder: Path | None,
        progress: bool = False,
    ) -> StreamedFit:
        """The same estimate as :meth:`to_backoff` with ``finish`` storing log10 values of ``dtype``, made
        over chunks of rows of tables that may be on disk (:func:`~lmbench.models.ngram.streaming.smooth_streamed`)."""
        fit = smooth_streamed(
            tables,
            continuation=self.continuation_counts,
            discount=self.discount_from,
            bos_id=bos_id,
            interpolate_unigrams=self.interpolate_unigrams,
            vocab_pad=self.vocab_pad,
            dtype=dtype,
            memory=memory,
            folder=folder,
            progress=progress,
        )
        self.discounts_ = fit.discounts
        return fit

    def estimate(self, tables: list[NgramTable], *, bos_id: int) -> list[BackoffArrays]:
        return self.to_backoff(tables, bos_id=bos_id)

    def to_backoff(
        self,
        tables: list[NgramTable],
        *,
        bos_id: int,
        finish: Callable[[BackoffArrays], BackoffArrays] | None = None,
        consume: bool = False,
    ) -> list[BackoffArrays]:
        discounts: list = []

        def estimated(m: int, c: np.ndarray) -> float | tuple[float, float, float]:
            discounts.append(self.discount_from(m, count_of_counts(c, 4)))
            return discounts[-1]

        self.discounts_ = discounts
        return discounted_interpolation(
            tables,
            lambda m, firsts: self.counts(tables, m, firsts, bos_id),
            estimated,
            bos_id=bos_id,
            interpolate_unigrams=self.interpolate_unigrams,
            vocab_pad=self.vocab_pad,
            finish=finish,
            consume=consume,
        )


def _check_discount(discount: Any) -> None:
    if discount is not None:
        _check_number("discount", discount, lambda d: 0 < d < 1, "a number in (0, 1)")


@register_smoother
@dataclass
class AbsoluteDiscounting(_Discounting):
    """Interpolated absolute discounting of raw counts: a fixed ``discount``, else Ney's n1/(n1+2 n2)."""

    name: ClassVar[str] = "absolute-discounting"
    description: ClassVar[str] = "interpolated absolute discounting"
    discount: float | None = None

    def validate(self) -> None:
        super().validate()
        _check_discount(self.discount)

    def discount_from(self, m: int, count_of_counts: np.ndarray) -> float:
        return self.discount if self.discount is not None else single_discount_from(count_of_counts, m)


@register_smoother
@dataclass
class KneserNey(AbsoluteDiscounting):
    """Interpolated Kneser-Ney: absolute discounting of continuation counts below the top order."""

    name: ClassVar[str] = "kneser-ney"
    description: ClassVar[str] = "interpolated Kneser-Ney"
    continuation_counts: ClassVar[bool] = True


@register_smoother
@dataclass
class ModifiedKneserNey(_Discounting):
    """Chen & Goodman's modified Kneser-Ney (KenLM's lmplz): three discounts per order, estimated."""

    name: ClassVar[str] = "modified-kneser-ney"
    description: ClassVar[str] = "modified Kneser-Ney (three discounts per order)"
    continuation_counts: ClassVar[bool] = True

    def discount_from(self, m: int, count_of_counts: np.ndarray) -> tuple[float, float, float]:
        return mkn_discounts_from(count_of_counts, m)


@register_smoother
@dataclass
class StupidBackoff(Smoother):
    """Brants et al. (2007): relative frequency, else ``backoff`` x the lower order. Scores, not probabilities."""

    name: ClassVar[str] = "stupid-backoff"
    description: ClassVar[str] = "stupid back-off"
    normalized: ClassVar[bool] = False
    backoff: float = 0.4

    def validate(self) -> None:
        _check_number("backoff", self.backoff, lambda b: 0 < b <= 1, "a number in (0, 1]")

    def estimate(self, tables: list[NgramTable], *, bos_id: int) -> list[BackoffArrays]:
        out = []
        for m, table in enumerate(tables, start=1):
            c = table.counts.astype(np.float64)
            total = context_sums(table, c, _num_contexts(tables, m))
            prob = c / np.where(total[table.context] > 0, total[table.context], 1.0)
            if out:
                out[-1].bow = np.full(len(out[-1].prob), self.backoff)
            out.append(BackoffArrays(prob=prob, bow=np.ones(len(table))))
        return out
