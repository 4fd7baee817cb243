"""The n-gram back-end: proper distributions for every smoother and order, MLE's infinities, discount
fall-backs, ARPA and config errors."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmbench.data import TokenStream, Vocabulary
from lmbench.errors import ConfigError, DataError
from lmbench.evaluation import score
from lmbench.models.ngram import NgramLM
from lmbench.models.ngram.smoothing import SMOOTHERS

NORMALISED = [s for s in SMOOTHERS if s != "stupid-backoff"]

corpora = st.lists(st.lists(st.integers(0, 5), min_size=0, max_size=8), min_size=1, max_size=8)


def _stream(lines: list[list[int]]) -> TokenStream:
    words = [[f"w{i}" for i in line] for line in lines]
    vocab = Vocabulary.build(words)
    return TokenStream.from_lines(words, vocab)


@settings(max_examples=60, deadline=None)
@given(lines=corpora, order=st.integers(1, 6), smoothing=st.sampled_from(NORMALISED), data=st.data())
def test_rows_sum_to_one_and_match_token_scores(lines, order, smoothing, data):
    train = _stream(lines)
    if train.num_words == 0:
        return
    model = NgramLM(order, smoothing, precision="float64").fit(train)  # sums checked to 1e-9
    V = len(train.vocab)
    contexts = data.draw(st.lists(st.lists(st.integers(0, V - 1), max_size=7), min_size=1, max_size=4))
    logp = model.next_token_logprobs(contexts)
    with np.errstate(under="ignore"):
        np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, atol=1e-9)
    assert np.all(np.isneginf(logp[:, train.vocab.bos_id]))
    # token_logprobs is the matching entry of next_token_logprobs for the same context
    test = _stream(data.draw(corpora))
    test = TokenStream.from_lines([test.vocab.decode(x) for x in test.lines()], train.vocab)
    for context_mode in ("sentence", "stream"):
        scores = model.token_logprobs(test, context=context_mode)
        assert scores.shape == (test.num_predicted,)
    seq = test.with_markers()
    targets = np.flatnonzero(seq != train.vocab.bos_id)
    ctxs = [seq[max(0, t - order + 1) : t].tolist() for t in targets]
    expected = model.next_token_logprobs(ctxs)[np.arange(len(targets)), seq[targets]]
    np.testing.assert_allclose(model.token_logprobs(test), expected, rtol=1e-12, atol=1e-12)


def test_stream_trained_model_uses_context_across_lines():
    lines = [["a", "b"], ["c", "d"]] * 20
    vocab = Vocabulary.build(lines)
    data = TokenStream.from_lines(lines, vocab)
    sentence = NgramLM(3, "witten-bell").fit(data)
    stream = NgramLM(3, "witten-bell", train_context="stream").fit(data)
    # sentence-trained: both modes give the same scores (no n-gram spans "</s> <s>")
    np.testing.assert_array_equal(
        sentence.token_logprobs(data, context="stream"), sentence.token_logprobs(data)
    )
    # stream-trained: after "b </s>" comes "c" deterministically, which only the stream model can know
    assert (
        score(stream.token_logprobs(data, context="stream"), data).perplexity
        < score(sentence.token_logprobs(data, context="stream"), data).perplexity
    )


def test_mle_gives_infinite_perplexity_on_unseen_bigram_without_crashing(tiny_train, tiny_vocab):
    model = NgramLM(2, "mle").fit(tiny_train)
    test = TokenStream.from_lines([["the", "sat"]], tiny_vocab)  # "the sat" never occurs in training
    logp = model.token_logprobs(test)
    assert np.isneginf(logp[1]) and np.all(np.isfinite(logp[[0]]))
    assert math.isinf(score(logp, test).perplexity)


def test_modified_kn_discount_fallback_warns_instead_of_crashing(caplog):
    # every word occurs exactly twice: no singletons, so D1..D3+ are undefined (KenLM aborts here)
    lines = [["a", "b", "c", "d"], ["a", "b", "c", "d"]]
    vocab = Vocabulary.build(lines)
    with caplog.at_level(logging.WARNING):
        model = NgramLM(3, "modified-kneser-ney", precision="float64").fit(
            TokenStream.from_lines(lines, vocab)
        )
    assert "fallback" in caplog.text
    assert model.discounts_[-1] == (0.5, 1.0, 1.5)
    np.testing.assert_allclose(np.exp(model.next_token_logprobs([[1, 3]])).sum(), 1.0, atol=1e-12)


def test_stupid_backoff_is_marked_unnormalised(tiny_train):
    model = NgramLM(3, "stupid-backoff").fit(tiny_train)
    assert model.normalized is False
    assert NgramLM(3, "kneser-ney").normalized is True


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"order": 0}, "order"),
        ({"order": 11}, "order"),
        ({"smoothing": "magic"}, "smoothing"),
        ({"k": -1}, "k"),
        ({"discount": 1.5}, "discount"),
        ({"train_context": "paragraph"}, "context"),
    ],
)
def test_bad_hyper_parameters_raise_one_line_config_errors(kwargs, key):
    with pytest.raises(ConfigError, match=key) as err:
        NgramLM(**kwargs)
    assert "\n" not in str(err.value)


def test_higher_order_kn_beats_lower_order_on_repetitive_text():
    lines = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "sat", "on", "the", "log"]] * 30
    vocab = Vocabulary.build(lines)
    data = TokenStream.from_lines(lines, vocab)
    ppl = [
        score(NgramLM(n, "modified-kneser-ney").fit(data).token_logprobs(data), data).perplexity
        for n in (1, 2, 3)
    ]
    assert ppl[0] > ppl[1] > ppl[2]


def test_arpa_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\ta\n\\end\\\n")
    with pytest.raises(DataError, match="bad.arpa"):
        NgramLM.from_arpa(bad)
    with pytest.raises(DataError, match="not found"):
        NgramLM.from_arpa(tmp_path / "missing.arpa")


def test_arpa_round_trip_for_every_smoother(tiny_train, tiny_test, tmp_path):
    for smoothing in NORMALISED:
        model = NgramLM(3, smoothing).fit(tiny_train)
        model.to_arpa(tmp_path / "m.arpa")
        back = NgramLM.from_arpa(tmp_path / "m.arpa", tiny_train.vocab)
        np.testing.assert_allclose(back.token_logprobs(tiny_test), model.token_logprobs(tiny_test), atol=1e-5)


@pytest.mark.parametrize("smoothing", ["modified-kneser-ney", "katz", "witten-bell", "mle", "stupid-backoff"])
def test_backoff_path_sums_to_the_next_token_logprob(tiny_train, smoothing):
    model = NgramLM(4, smoothing).fit(tiny_train)
    V = len(model.vocab)
    bos = model.vocab.bos_id
    contexts = [[bos], [bos, *model.vocab.encode("the cat sat".split())], [bos, 0, 0, 0], [2, 2]]
    found_orders = set()
    for context in contexts:
        full = model.next_token_logprobs([context])[0]
        for word in range(V):
            path = model.backoff_path(context, word)
            assert [s.order for s in path] == list(range(min(len(context), 3) + 1, path[-1].order - 1, -1))
            assert path[-1].found and not any(s.found for s in path[:-1])
            found_orders.add(path[-1].order)
            total = sum(s.value for s in path)
            if np.isneginf(full[word]):
                assert np.isneginf(total)
            else:
                assert total == pytest.approx(full[word], abs=1e-12)
    assert found_orders >= {1, 2, 3, 4}  # every order is reached by some word
    cat = model.vocab.id("cat")
    path = model.backoff_path([bos, model.vocab.id("the"), cat], model.vocab.id("sat"))
    assert path[0].order == 4 and path[0].found and path[0].context == (bos, model.vocab.id("the"), cat)
