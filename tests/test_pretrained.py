"""The `pretrained` back-end on a tiny locally built GPT-2: word-level mapping, windows, next-word by hand,
and the offline error."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmbench.data import Corpus, get_tokenizer, tokenize_corpus
from lmbench.errors import ConfigError
from lmbench.evaluation import score

from .conftest import TINY_TEST, TINY_TRAIN, import_or_fail

torch = import_or_fail("torch", "lmbench's dependencies")
import_or_fail("transformers", "the hf extra: pip install -e '.[hf]'")

from lmbench.models.pretrained import PretrainedLM  # noqa: E402


@pytest.fixture
def data():
    join = lambda lines: "\n".join(lines) + "\n"  # noqa: E731
    return tokenize_corpus(
        Corpus.from_texts("tiny", join(TINY_TRAIN), join(TINY_TEST), join(TINY_TEST)),
        get_tokenizer("whitespace"),
    )


def direct_total(model: PretrainedLM, text: str) -> float:
    """log p(text) straight from the model: [begin] + tokens, one full-context pass."""
    ids = [model.begin_id_, *model.tokenizer_(text, add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        logits = model.hf_model_(input_ids=torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits, dim=-1)
    return float(sum(lp[i - 1, ids[i]] for i in range(1, len(ids))))


def test_word_scores_sum_to_the_text_log_probability(tiny_hf_model, data):
    model = PretrainedLM(str(tiny_hf_model), window=64).fit(data.train)
    stream = model.token_logprobs(data.test, context="stream")
    assert stream.shape == (data.test.num_predicted,)
    text = "".join(line + "\n" for line in data.test.raw_lines)
    assert stream.sum() == pytest.approx(direct_total(model, text), rel=1e-9)
    sentence = model.token_logprobs(data.test, context="sentence")
    expected = sum(direct_total(model, line + "\n") for line in data.test.raw_lines)
    assert sentence.sum() == pytest.approx(expected, rel=1e-9)
    # the OOV word "zebra" is scored on its raw characters, so nothing is infinite
    assert np.all(np.isfinite(stream)) and math.isfinite(score(stream, data.test).bits_per_char)


def test_sliding_window_keeps_at_least_half_a_window(tiny_hf_model, data):
    """With a window smaller than the text, each token still sees >= W/2 tokens: the totals stay close to the
    full-context pass, and equal it for the first window (up to float32 rounding: the two passes multiply
    matrices of different lengths, which BLAS may block differently)."""
    full = PretrainedLM(str(tiny_hf_model), window=64).fit(data.train)
    small = PretrainedLM(str(tiny_hf_model), window=8).fit(data.train)
    ids = full.tokenizer_("the cat sat on the mat\nthe dog sat on the log\n", add_special_tokens=False)[
        "input_ids"
    ]
    a, b = full._token_logprobs_of_ids(ids), small._token_logprobs_of_ids(ids)
    assert a.shape == b.shape == (len(ids),)
    np.testing.assert_allclose(a[:8], b[:8], rtol=1e-6)


def test_next_word_distribution_by_hand(tiny_hf_model, data):
    """p(word | "the") = P(" word" tokens | [begin] "the"), computed here from the raw logits."""
    model = PretrainedLM(str(tiny_hf_model), window=64).fit(data.train)
    v = data.vocab
    row = model.next_token_logprobs([[v.bos_id, v.id("the")]])[0]
    ctx = [model.begin_id_, *model.tokenizer_("the", add_special_tokens=False)["input_ids"]]
    for word in ("cat", "mat", "and"):
        pieces = model.tokenizer_(" " + word, add_special_tokens=False)["input_ids"]
        seq = ctx + pieces
        with torch.no_grad():
            lp = torch.log_softmax(model.hf_model_(input_ids=torch.tensor([seq])).logits[0].double(), dim=-1)
        expected = sum(float(lp[len(ctx) - 1 + k, pieces[k]]) for k in range(len(pieces)))
        assert row[v.id(word)] == pytest.approx(expected, rel=1e-6)  # batched with padding: float32 rounding
    assert np.exp(row).sum() == pytest.approx(1.0, abs=1e-9)
    assert row[v.bos_id] == -np.inf and np.isfinite(row[v.unk_id])  # the leftover mass


def test_offline_without_a_copy_is_one_line(monkeypatch, data):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    with pytest.raises(ConfigError) as err:
        PretrainedLM("some-org/not-downloaded-model").fit(data.train)
    message = str(err.value)
    assert "\n" not in message and "some-org/not-downloaded-model" in message and "name_or_path" in message


def test_finetuning_goes_through_the_training_loop(tiny_hf_model, data):
    from lmbench.models.base import Budget

    base = PretrainedLM(str(tiny_hf_model), window=32).fit(data.train)
    tuned = PretrainedLM(
        str(tiny_hf_model), window=32, finetune=True, lr=3e-3, seq_len=16, train_batch_size=4, warmup_steps=1
    )
    tuned.fit(data.train, data.valid, budget=Budget(epochs=3))
    assert tuned.learning_curve_ and tuned.tokens_seen_ > 0
    before = score(base.token_logprobs(data.train, context="stream"), data.train).perplexity
    after = score(tuned.token_logprobs(data.train, context="stream"), data.train).perplexity
    assert after < before  # it learned the training text
