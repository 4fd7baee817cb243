"""Agreement with NLTK's nltk.lm where NLTK is right, and our correct value where it is known to be wrong.

NLTK is trained on exactly our event stream (each line as ``<s> words </s>``, every n-gram inside it), so
any difference comes from the estimators, not from padding conventions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import import_or_fail

nltk_lm = import_or_fail("nltk.lm", "nltk, a dependency of lmbench")
from nltk.util import everygrams  # noqa: E402

from lmbench.data import TokenStream, Vocabulary  # noqa: E402
from lmbench.evaluation import perplexity  # noqa: E402
from lmbench.models.ngram import NgramLM  # noqa: E402

TRAIN = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat saw a dog",
    "the mat was red and the log was brown",
    "a dog and a cat sat on a mat",
    "the cat was on the log",
]


def _fit_both(nltk_cls, ours: NgramLM, order: int, **nltk_kwargs):
    lines = [line.split() for line in TRAIN]
    vocab = Vocabulary.build(lines)
    model = ours.fit(TokenStream.from_lines(lines, vocab))
    padded = [["<s>", *line, "</s>"] for line in lines]
    reference = nltk_cls(order=order, **nltk_kwargs)
    # <s> is context only: it is not a unigram event (NLTK would count it and give it probability). NLTK's
    # vocabulary holds every word it saw, <s> included, plus its own <UNK>.
    events = [[g for g in everygrams(p, max_len=order) if g != ("<s>",)] for p in padded]
    reference.fit(events, [w for p in padded for w in p])
    return model, reference, vocab


def _ours(model: NgramLM, vocab: Vocabulary, word: str, context: tuple[str, ...]) -> float:
    ids = [vocab.id(w) for w in context]
    return float(np.exp(model.next_token_logprobs([ids])[0, vocab.id(word)]))


# (context, word) probes: seen and unseen n-grams, contexts after <s>, a word seen only once
PROBES = [
    (("the",), "cat"),
    (("the",), "red"),
    (("<s>",), "the"),
    (("on",), "the"),
    (("sat", "on"), "the"),
    (("sat", "on"), "a"),
    (("the", "cat"), "was"),
    (("a", "cat"), "sat"),
    (("was",), "brown"),
]


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize(
    "ours, nltk_name, kwargs",
    [
        (dict(smoothing="witten-bell"), "WittenBellInterpolated", {}),
        (
            dict(smoothing="absolute-discounting", discount=0.75),
            "AbsoluteDiscountingInterpolated",
            {"discount": 0.75},
        ),
    ],
)
def test_interpolated_smoothers_match_nltk(order, ours, nltk_name, kwargs):
    """NLTK's interpolated models end in plain unigram frequencies: ours with interpolate_unigrams=False."""
    model, ref, vocab = _fit_both(
        getattr(nltk_lm, nltk_name),
        NgramLM(order, interpolate_unigrams=False, **ours, precision="float64"),
        order,
        **kwargs,
    )
    for context, word in PROBES:
        context = context[-(order - 1) :]
        assert _ours(model, vocab, word, context) == pytest.approx(ref.score(word, list(context)), rel=1e-12)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_kneser_ney_matches_nltk_where_no_lower_order_context_starts_with_bos(order):
    """Interpolated KN (raw counts at the top order, continuation counts below, continuation unigrams at the
    bottom) agrees with NLTK's KneserNeyInterpolated wherever NLTK is right: every lower-order context the
    recursion visits must not start with <s> (there NLTK's continuation counts are 0; see the next test)."""
    d = 0.75
    model, ref, vocab = _fit_both(
        nltk_lm.KneserNeyInterpolated,
        NgramLM(order, "kneser-ney", discount=d, interpolate_unigrams=False, precision="float64"),
        order,
        discount=d,
    )
    probes = [*PROBES, ((), "the"), ((), "brown"), (("<s>", "the"), "cat"), (("on", "a", "dog"), "and")]
    compared = 0
    for context, word in probes:
        context = context[-(order - 1) :]
        if "<s>" in context[1:] or (len(context) < order - 1 and "<s>" in context):
            continue  # a lower-order context beginning with <s>: NLTK raises or returns 0 there
        assert _ours(model, vocab, word, context) == pytest.approx(ref.score(word, list(context)), rel=1e-12)
        compared += 1
    assert compared >= len(PROBES) - 2
    # continuation unigram at the bottom: N1+(. the) / N1+(. .), not the raw frequency of "the"
    assert _ours(model, vocab, "the", ()) == pytest.approx(ref.estimator.unigram_score("the"), rel=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("k", [1.0, 0.1])
def test_add_k_matches_nltk_up_to_the_mass_nltk_gives_to_bos(order, k):
    """NLTK's Lidstone counts ``<s>`` in |V| and gives it probability, though ``<s>`` is never predicted;
    we spread the k-mass over the |V| - 1 predictable words, so rows sum to 1 over what can occur:
    ours = (c + k) / (C + k(|V| - 1)) and NLTK = (c + k) / (C + k|V|) with the same counts."""
    name = "laplace" if k == 1.0 else "lidstone"
    model, ref, vocab = _fit_both(
        nltk_lm.Lidstone, NgramLM(order, name, k=k, precision="float64"), order, gamma=k
    )
    V = len(ref.vocab)  # NLTK: our words + </s> + <s> + its <UNK> == our |V|
    assert V == len(vocab)
    for context, word in PROBES:
        if order > 1 and len(context) != order - 1:
            continue  # NLTK scores shorter contexts with the same formula; compare the full-order case
        context = tuple(context) if order > 1 else ()
        counts = ref.counts[list(context)] if context else ref.counts.unigrams
        c, total = counts[word], counts.N()
        assert ref.score(word, list(context)) == pytest.approx((c + k) / (total + k * V), rel=1e-12)
        assert _ours(model, vocab, word, context) == pytest.approx((c + k) / (total + k * (V - 1)), rel=1e-12)
    np.testing.assert_allclose(np.exp(model.next_token_logprobs([[vocab.bos_id]])).sum(), 1.0, atol=1e-12)


def test_nltk_perplexity_is_infinite_on_oov_but_ours_is_finite():
    """NLTK issue #3065: an OOV word gets probability 0 from the unigram frequency at the bottom of NLTK's
    interpolation, so one unknown word makes the perplexity infinite. Our default interpolates unigrams with
    the uniform distribution, so <unk> keeps mass."""
    model, ref, vocab = _fit_both(
        nltk_lm.WittenBellInterpolated, NgramLM(2, "witten-bell", precision="float64"), 2
    )
    test = ["the", "zebra", "sat"]
    nltk_ppl = ref.perplexity([tuple(x) for x in [("<s>", "the"), ("the", "zebra"), ("zebra", "sat")]])
    assert math.isinf(nltk_ppl)
    stream = TokenStream.from_lines([test], vocab)
    ours = perplexity(model.token_logprobs(stream))
    assert math.isfinite(ours) and ours > 1


def test_kneser_ney_uses_raw_counts_after_bos_where_nltk_uses_zero_continuations():
    """Known NLTK KN defect: for a lower-order n-gram that starts with <s> nothing can precede it, so its
    continuation count is 0 in NLTK, which gives every sentence-initial word alpha = 0 at that order.
    Kneser-Ney (Chen & Goodman; KenLM) uses the raw count there. With order 3, p(the | <s>) in the bigram
    level: ours = (c(<s> the) - D) / c(<s> .) + ..., and NLTK's alpha is 0."""
    order, d = 3, 0.75
    model, ref, vocab = _fit_both(
        nltk_lm.KneserNeyInterpolated,
        NgramLM(order, "kneser-ney", discount=d, precision="float64"),
        order,
        discount=d,
    )
    bigram = ref.counts[["<s>"]]
    assert bigram["the"] == 4 and bigram.N() == 6
    # NLTK's estimator at the bigram level after <s>: the continuation counts of ("<s>", w) are all 0, so
    # its alpha is 0 / 0 (it raises) instead of using the raw count
    with pytest.raises(ZeroDivisionError):
        ref.estimator.alpha_gamma("the", ("<s>",))
    # ours: raw counts after <s>: alpha = (4 - D) / 6, plus the back-off share of the lower order
    lower = np.exp(model.next_token_logprobs([[]])[0, vocab.id("the")])
    gamma = d * len(bigram) / bigram.N()
    expected = (4 - d) / 6 + gamma * lower
    assert _ours(model, vocab, "the", ("<s>",)) == pytest.approx(expected, rel=1e-12)
