"""The one rolling-window scorer (lmbench.models.windows): its plan scores every position once with at least half a
window of context, and every windowed back-end's scores equal direct passes over such contexts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmbench.models.windows import plan_windows, rolling_logprobs
from tests.conftest import import_or_fail


@pytest.mark.parametrize("window", [1, 2, 3, 4, 7, 8, 16])
@pytest.mark.parametrize("stride", [None, 1, "half", "full"])
def test_plan_scores_every_position_once_with_enough_context(window, stride):
    stride = {"half": max(window // 2, 1), "full": window}.get(stride, stride)
    least = window - (stride or max(window // 2, 1)) + 1  # context after the first window
    for n in range(0, 60):
        windows = plan_windows(n, window, stride)
        scored = [p for w in windows for p in range(w.first, w.end + 1)]
        assert scored == list(range(1, n)), (n, windows)  # each position once, in order
        for w in windows:
            assert 0 <= w.start < w.first <= w.end and w.end - w.start <= window  # at most W inputs
            for p in range(w.first, w.end + 1):
                assert w.context(p) >= min(p, least), (n, w, p)
                if stride is None:
                    assert w.context(p) >= min(p, window // 2)


def test_plan_rejects_bad_windows():
    with pytest.raises(ValueError, match="window"):
        plan_windows(10, 0)
    with pytest.raises(ValueError, match="stride"):
        plan_windows(10, 4, 5)


def test_rolling_logprobs_hands_each_window_its_inputs_and_targets():
    """With a scorer that reports (input length, target id), each position gets its own target, once."""
    seq = np.arange(100, 123)

    def score(x, y, keep):
        read = torch.arange(1, x.shape[1] + 1).expand_as(x)  # (B, T): inputs read when predicting y[:, t]
        return (read * 1000 + y).double()[keep]

    out = rolling_logprobs(seq, 6, score, batch_size=2, pad_id=-1)
    assert out[0] == 0
    np.testing.assert_array_equal(out[1:] % 1000, seq[1:])  # the target of position p is seq[p]
    assert np.all(out[1:] // 1000 >= np.minimum(np.arange(1, 23), 3))  # >= W/2 tokens read


def assert_each_score_is_a_direct_pass(scores, seq, window, direct, least, never_predicted=None):
    """``scores[p]`` equals ``direct(seq[p - c : p], seq[p])`` for some context length c from
    min(p, least) to min(p, window): the reference scores each token with its own explicit window."""
    for p in range(1, len(seq)):
        if seq[p] == never_predicted:
            continue
        candidates = [direct(seq[p - c : p], seq[p]) for c in range(min(p, least), min(p, window) + 1)]
        assert min(abs(scores[p] - c) for c in candidates) < 1e-5, (p, scores[p], candidates)


def test_transformer_rolls_with_at_least_half_a_window(tiny_train):
    from lmbench.data import get_tokenizer, tokenize_corpus
    from lmbench.data.synthetic import SyntheticConfig, make_synthetic_corpus
    from lmbench.models.base import Budget
    from lmbench.models.registry import create_model

    corpus, _ = make_synthetic_corpus(SyntheticConfig(train_lines=300, valid_lines=20, test_lines=20))
    data = tokenize_corpus(corpus, get_tokenizer("whitespace"))
    W = 8
    model = create_model("transformer", d_model=16, n_heads=2, layers=1, window=W, dropout=0.0,
                         batch_size=8, warmup_steps=2).fit(data.train, budget=Budget(tokens=1500))  # fmt: skip
    seq = data.test.with_markers()[:60].astype(np.int64)

    def direct(context, target):
        with torch.no_grad():
            h = model.net_(torch.from_numpy(context)[None])[:, -1]  # (1, d_model)
            return model.net_.output.log_probs(h)[0, target].item()

    scores = model.sequence_logprobs(seq)
    assert_each_score_is_a_direct_pass(scores, seq, W, direct, W // 2, data.vocab.bos_id)
    # and stream mode is these scores at the predicted (non-<s>) positions
    stream = model.token_logprobs(data.test, context="stream")
    full = model.sequence_logprobs(data.test.with_markers())
    predicted = np.flatnonzero(data.test.with_markers() != data.vocab.bos_id)
    np.testing.assert_array_equal(stream, full[predicted[predicted > 0]])


@pytest.mark.parametrize("window, stride", [(8, None), (12, 3)])
def test_pretrained_rolls_with_at_least_half_a_window(tiny_hf_model, tiny_train, window, stride):
    import_or_fail("transformers", "the hf extra: pip install -e '.[hf]'")
    from lmbench.models.pretrained import PretrainedLM

    model = PretrainedLM(str(tiny_hf_model), window=window, stride=stride).fit(tiny_train)
    text = "the cat sat on the mat\nthe dog sat on the log\na cat saw a dog\n" * 2
    ids = model.tokenizer_(text, add_special_tokens=False)["input_ids"]
    seq = np.asarray([model.begin_id_, *ids])
    assert len(seq) > 2 * window  # several windows

    def direct(context, target):
        with torch.no_grad():
            logits = model.hf_model_(input_ids=torch.from_numpy(context)[None]).logits[0, -1].double()
            return torch.log_softmax(logits, dim=-1)[target].item()

    scores = np.concatenate([[0.0], model._token_logprobs_of_ids(ids)])
    assert_each_score_is_a_direct_pass(scores, seq, window, direct, window - (stride or window // 2) + 1)
