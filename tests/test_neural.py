"""Recurrent and Transformer back-ends: they learn, save/load exactly, resume exactly, and reject bad
configs in one line."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lmbench.data import TokenStream, get_tokenizer, tokenize_corpus
from lmbench.data.synthetic import SyntheticConfig, make_synthetic_corpus
from lmbench.errors import ConfigError
from lmbench.evaluation import score
from lmbench.models.base import CONTEXTS, Budget
from lmbench.models.ngram import NgramLM
from lmbench.models.registry import create_model

from .test_conformance import protocol_items

SMALL = {
    "lstm": {
        "emb_size": 32,
        "hidden_size": 32,
        "layers": 1,
        "dropout": 0.0,
        "batch_size": 16,
        "seq_len": 32,
        "lr": 1e-2,
        "warmup_steps": 10,
    },
    "gru": {
        "emb_size": 32,
        "hidden_size": 32,
        "layers": 1,
        "dropout": 0.0,
        "batch_size": 16,
        "seq_len": 32,
        "lr": 1e-2,
        "warmup_steps": 10,
    },
    "rnn": {
        "emb_size": 32,
        "hidden_size": 32,
        "layers": 1,
        "dropout": 0.0,
        "batch_size": 16,
        "seq_len": 32,
        "lr": 5e-3,
        "warmup_steps": 10,
    },
    "transformer": {
        "d_model": 32,
        "n_heads": 2,
        "layers": 1,
        "window": 32,
        "dropout": 0.0,
        "batch_size": 16,
        "lr": 3e-3,
        "warmup_steps": 10,
    },
}


@pytest.fixture(scope="module")
def synthetic():
    torch.set_num_threads(1)
    corpus, _ = make_synthetic_corpus(SyntheticConfig(train_lines=1500, valid_lines=150, test_lines=150))
    return tokenize_corpus(corpus, get_tokenizer("whitespace"))


@pytest.mark.parametrize("family", list(SMALL))
def test_learns_well_below_the_unigram_baseline(family, synthetic):
    model = create_model(family, **SMALL[family]).fit(
        synthetic.train, synthetic.valid, budget=Budget(epochs=3)
    )
    unigram = NgramLM(1, "witten-bell").fit(synthetic.train)
    ours = score(model.token_logprobs(synthetic.test, context="stream"), synthetic.test).perplexity
    base = score(unigram.token_logprobs(synthetic.test), synthetic.test).perplexity
    assert ours < 0.6 * base, (ours, base)
    curve = model.learning_curve_
    assert curve and curve[-1]["tokens"] > 0 and "valid_perplexity" in curve[-1]


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_modes_predict_the_same_tokens_as_the_ngram_backend(family, synthetic):
    """Token id by token id: in both modes, the neural model's and the n-gram's score of every predicted token
    is its own next_token_logprobs at the id the protocol predicts there, so both predict the same ids."""
    model = create_model(family, **SMALL[family]).fit(synthetic.train, budget=Budget(tokens=2000))
    ngram = NgramLM(3).fit(synthetic.train)
    lines, length = [], 0  # the first test lines that fit one window: stream contexts are then whole
    for line in synthetic.test.lines():
        if length + len(line) + 2 > 32:
            break
        lines.append(synthetic.vocab.decode(line))
        length += len(line) + 2
    data = TokenStream.from_lines([*lines, []], synthetic.vocab)  # and an empty line: </s> only
    assert len(lines) >= 2
    for context in CONTEXTS:
        contexts, targets = protocol_items(data, context)
        for m in (model, ngram):
            expected = m.next_token_logprobs(contexts)[np.arange(len(targets)), targets]
            np.testing.assert_allclose(
                m.token_logprobs(data, context=context), expected, rtol=1e-5, atol=1e-5
            )
        assert (
            model.token_logprobs(synthetic.test, context=context).shape
            == ngram.token_logprobs(synthetic.test, context=context).shape
            == (synthetic.test.num_predicted,)
        )


@pytest.mark.parametrize("family", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("tie", [True, False])
def test_recurrent_parameters_counted_by_hand(family, tie, synthetic):
    """Embedding, the cell's gates (input and recurrent weights, two biases each) and the output layer (its
    weight shared with the embedding when tied)."""
    params = {**SMALL[family], "emb_size": 24, "hidden_size": 32 if not tie else 24, "layers": 2}
    model = create_model(family, **params, tie_weights=tie).fit(synthetic.train, budget=Budget(tokens=100))
    V, E, H = len(synthetic.vocab), 24, params["hidden_size"]
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[family]
    cell = gates * (E * H + H * H + 2 * H) + gates * (H * H + H * H + 2 * H)  # layer 1, layer 2
    output = V + (0 if tie else H * V)
    assert model.num_parameters() == V * E + cell + output


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_transformer_parameters_counted_by_hand(positions, synthetic):
    """Embedding (+ learned positions), per block two LayerNorms, qkv, projection and MLP, the final
    LayerNorm, and the tied output layer's bias."""
    model = create_model(
        "transformer", **{**SMALL["transformer"], "layers": 2, "d_ff": 48, "positions": positions}
    )
    model.fit(synthetic.train, budget=Budget(tokens=100))
    V, d, W, ff = len(synthetic.vocab), 32, 32, 48
    block = 2 * (2 * d) + (d * 3 * d + 3 * d) + (d * d + d) + (d * ff + ff + ff * d + d)
    pos = W * d if positions == "learned" else 0
    assert model.num_parameters() == V * d + pos + 2 * block + 2 * d + V


def test_a_backend_missing_a_hook_fails_at_once():
    """NeuralLM's hooks are abstract: a back-end without one cannot be instantiated (not a failure mid-run),
    and its NetConfig is checked when the class is created."""
    from dataclasses import dataclass

    from lmbench.models.neural import NeuralLM

    @dataclass
    class TinyConfig:
        vocab_size: int
        width: int = 4

    hooks = {
        "build_net": lambda self: nn.Linear(1, 1),
        "batch_loss": lambda self, net, batch, carry: (torch.zeros(()), 0, None),
        "hidden_states": lambda self, x: torch.zeros((*x.shape, 4)),
        "sequence_logprobs": lambda self, sequence: np.zeros(len(sequence)),
        "hidden_size": 4,
    }
    assert set(hooks) == NeuralLM.__abstractmethods__
    complete = type("Complete", (NeuralLM,), {"backend": "tiny", "NetConfig": TinyConfig, **hooks})
    assert complete(width=3).net_config.width == 3 and complete.net_fields == ("width",)
    for missing in hooks:
        incomplete = type("Incomplete", (NeuralLM,), {"backend": "tiny", "NetConfig": TinyConfig,
                                                      **{k: v for k, v in hooks.items() if k != missing}})  # fmt: skip
        with pytest.raises(TypeError, match=missing):
            incomplete()
    with pytest.raises(TypeError, match="vocab_size"):
        type("NoVocab", (NeuralLM,), {"backend": "tiny", "NetConfig": dataclass(type("C", (), {})), **hooks})


def test_transformer_sliding_window_gives_every_token_at_least_half_a_window(synthetic):
    """Each position's stream score equals a direct pass over some context of W/2..W previous tokens."""
    W = 16
    model = create_model("transformer", **{**SMALL["transformer"], "window": W}).fit(
        synthetic.train, budget=Budget(tokens=2000)
    )
    seq = synthetic.test.with_markers()[:70].astype(np.int64)
    windowed = model.sequence_logprobs(seq)
    with torch.no_grad():
        for p in range(1, len(seq)):
            if seq[p] == model.vocab.bos_id:
                continue  # never predicted
            candidates = []
            for ctx in range(min(W // 2, p), min(W, p) + 1):
                x = torch.from_numpy(seq[p - ctx : p])[None]
                lp = model.net_.output.log_probs(model.net_(x)[:, -1])[0, seq[p]].item()
                candidates.append(lp)
            assert min(abs(windowed[p] - c) for c in candidates) < 1e-5, p


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_resumed_training_equals_uninterrupted(family, synthetic, tmp_path):
    params = {**SMALL[family], "eval_every": 20, "patience": 0}
    budget = Budget(epochs=2)
    full = create_model(family, **params).fit(
        synthetic.train, synthetic.valid, budget=budget, run_dir=tmp_path / "a"
    )
    interrupted = create_model(family, **params)
    from lmbench.training import loop

    original = loop.Trainer.__init__

    def stop_early(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.stop_after_steps = 37

    loop.Trainer.__init__ = stop_early
    try:
        with pytest.raises(KeyboardInterrupt):
            interrupted.fit(synthetic.train, synthetic.valid, budget=budget, run_dir=tmp_path / "b")
    finally:
        loop.Trainer.__init__ = original
    assert (tmp_path / "b" / "checkpoint.pt").exists()
    resumed = create_model(family, **params).fit(
        synthetic.train, synthetic.valid, budget=budget, run_dir=tmp_path / "b"
    )
    assert resumed.learning_curve_[-1]["valid_loss"] == pytest.approx(
        full.learning_curve_[-1]["valid_loss"], rel=1e-6
    )
    np.testing.assert_allclose(
        resumed.token_logprobs(synthetic.test, context="stream"),
        full.token_logprobs(synthetic.test, context="stream"),
        rtol=1e-5,
        atol=1e-6,
    )
    # fitting again over a finished run's checkpoint trains nothing and adds no learning-curve point
    again = create_model(family, **params).fit(
        synthetic.train, synthetic.valid, budget=budget, run_dir=tmp_path / "a"
    )
    assert again.learning_curve_ == full.learning_curve_


@pytest.mark.parametrize(
    "family, params, key",
    [
        ("lstm", {"cell": "transformer"}, "cell"),
        ("lstm", {"hidden_size": -3}, "hidden_size"),
        ("gru", {"dropout": 1.5}, "dropout"),
        ("transformer", {"window": 0}, "window"),
        ("transformer", {"n_heads": 3, "d_model": 32}, "n_heads"),
        ("transformer", {"wibble": 1}, "wibble"),
        ("lstm", {"lr": -1.0}, "lr"),
        ("lstm", {"output": "hierarchical"}, "output"),
    ],
)
def test_bad_configs_give_one_line_errors(family, params, key):
    with pytest.raises(ConfigError, match=key) as err:
        create_model(family, **params)
    assert "\n" not in str(err.value)


def test_adaptive_softmax_rows_sum_to_one(synthetic):
    model = create_model("lstm", **{**SMALL["lstm"], "output": "adaptive", "cutoffs": [20, 50]}).fit(
        synthetic.train, budget=Budget(tokens=2000)
    )
    logp = model.next_token_logprobs([[1], [1, 5, 6, 7]])
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, atol=1e-9)
    assert np.all(np.isneginf(logp[:, model.vocab.bos_id]))


def test_sentence_features_are_pooled_hidden_states(synthetic):
    model = create_model("gru", **SMALL["gru"]).fit(synthetic.train, budget=Budget(tokens=1000))
    feats = model.sentence_features([synthetic.test.line(0), synthetic.test.line(1)])
    assert feats.shape == (2, 32) and np.all(np.isfinite(feats))


@pytest.mark.parametrize("row_block,vocab_block", [(1024, 1024), (256, 16), (600, 1)])
def test_fused_linear_cross_entropy_matches_autograd(row_block, vocab_block):
    """Loss and gradients of the blocked output layer equal log_softmax + NLL through autograd, whether the
    rows and the vocabulary fit one block or many (vocab_block=1 makes a block of the masked row alone)."""
    import torch.nn.functional as F

    from lmbench.models import output

    torch.manual_seed(0)
    h = torch.randn(600, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    b = torch.randn(50, dtype=torch.float64, requires_grad=True)
    t = torch.randint(2, 50, (600,))
    t[:5] = 7  # repeated targets inside one block exercise index_add
    logits = (h @ w.t() + b).clone()
    logits[:, 1] = float("-inf")
    reference = F.cross_entropy(logits, t, reduction="sum")
    expected = torch.autograd.grad(reference * 3.0, [h, w, b])
    with torch.no_grad():
        loss, *grads = output.fused_linear_cross_entropy(
            h, w, b, t, 1, row_block=row_block, vocab_block=vocab_block
        )
    assert float(loss) == pytest.approx(float(reference.detach()), rel=1e-12)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got * 3.0, want, rtol=1e-9, atol=1e-9)
    # the autograd wrapper scales the saved gradients by the incoming gradient
    fused = output.LinearCrossEntropy.apply(h, w, b, t, 1, None)
    for got, want in zip(torch.autograd.grad(fused * 3.0, [h, w, b]), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_fused_loss_survives_logits_far_above_the_first_blocks(dtype):
    """The kernel shifts every token's logits by their maximum over the first vocabulary block; a later word
    whose logit lies hundreds of nats above it (exp would overflow) must be redone against its own maximum,
    and the loss and gradients still equal the plain log_softmax's (exactly in float64, to bf16 rounding)."""
    import torch.nn.functional as F

    from lmbench.models import output

    torch.manual_seed(1)
    h = torch.randn(300, 16, dtype=torch.float64, requires_grad=True)
    w = (torch.randn(40, 16, dtype=torch.float64) * 0.1).requires_grad_()
    b = torch.zeros(40, dtype=torch.float64)
    b[33] = 300.0  # far above every first-block logit: exp(300) overflows even float64's range in bfloat16
    b[20] = 40.0  # above them too, but within the shared shift's limit
    b = b.requires_grad_()
    t = torch.randint(2, 40, (300,))
    logits = h @ w.t() + b
    logits = logits.masked_fill(torch.arange(40) == 1, float("-inf"))
    reference = F.cross_entropy(logits, t, reduction="sum")
    expected = torch.autograd.grad(reference, [h, w, b])
    with torch.no_grad():
        args = (h.float(), w.float(), b.float()) if dtype == torch.bfloat16 else (h, w, b)
        loss, *grads = output.fused_linear_cross_entropy(
            *args, t, 1, vocab_block=8, matmul_dtype=dtype if dtype == torch.bfloat16 else None
        )
    rel = 1e-12 if dtype == torch.float64 else 2e-3
    assert math.isfinite(float(loss))
    assert float(loss) == pytest.approx(float(reference.detach()), rel=rel)
    for got, want in zip(grads, expected, strict=True):
        assert torch.isfinite(got).all()
        assert float((got.double() - want).norm() / want.norm()) < (1e-10 if dtype == torch.float64 else 2e-2)


def test_full_softmax_target_log_probs_match_log_softmax():
    """Scoring takes the normaliser block by block; it must equal log_softmax over the whole vocabulary."""
    from lmbench.models.output import OutputLayer

    torch.manual_seed(0)
    layer = OutputLayer(8, 3000, "full", bos_id=1).double()
    h = torch.randn(2500, 8, dtype=torch.float64) * 3
    t = torch.randint(2, 3000, (2500,))
    with torch.no_grad():
        got = layer.target_log_probs(h, t)
        want = layer.log_probs(h).gather(1, t[:, None]).squeeze(1)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_attention_maps_are_the_causal_softmax_that_forward_mixes_values_with(synthetic):
    model = create_model("transformer", **{**SMALL["transformer"], "layers": 2}).fit(
        synthetic.train, budget=Budget(tokens=2000)
    )
    ids = [synthetic.vocab.bos_id, *synthetic.test.line(0).tolist()]
    maps = model.attention_maps(ids)
    T = len(ids)
    assert maps.shape == (2, 2, T, T)
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-6)
    assert np.all(np.triu(maps, k=1) == 0)  # causal: nothing from later positions
    # softmax(QK^T/sqrt(d)) V, projected, is what the first block's attention actually outputs
    net = model.net_
    with torch.no_grad():
        x = torch.tensor([ids])
        h = net.blocks[0].ln1(net.embedding(x) + net.pos_emb.weight[:T])
        B, _, C = h.shape
        v = net.blocks[0].attn.qkv(h).split(C, dim=2)[2].view(B, T, 2, C // 2).transpose(1, 2)
        mixed = (torch.from_numpy(maps[0]).float()[None] @ v).transpose(1, 2).reshape(B, T, C)
        expected = net.blocks[0].attn(h)
    torch.testing.assert_close(net.blocks[0].attn.proj(mixed), expected, atol=1e-5, rtol=1e-4)
    # a sequence longer than the window keeps its last `window` ids
    long = (ids * 10)[:50]
    np.testing.assert_allclose(model.attention_maps(long), model.attention_maps(long[-32:]))


def test_transformer_never_scores_with_untrained_positions(tiny_train, tiny_test):
    """With seq_len < window the positions past seq_len were never trained: scoring must not reach them."""
    model = create_model(
        "transformer", d_model=16, n_heads=2, layers=1, window=16, seq_len=4, batch_size=2, warmup_steps=1
    ).fit(tiny_train, budget=Budget(tokens=200))
    assert model.context_window == 4
    before = {c: model.token_logprobs(tiny_test, context=c) for c in ("sentence", "stream")}
    with torch.no_grad():
        model.net_.pos_emb.weight[4:] = 1e3  # garbage in every position the model never trained
    for context, lp in before.items():
        np.testing.assert_array_equal(model.token_logprobs(tiny_test, context=context), lp)


def test_a_training_split_shorter_than_seq_len_still_gives_batches():
    """The epoch's random offset is drawn below seq_len; on a split shorter than that, every epoch still
    trains on all of it (it used to leave an empty batch and fail with a reshape error)."""
    from lmbench.training.loop import stream_batches

    sequence = np.arange(1, 11)  # 10 tokens: 9 (input, target) pairs
    for epoch in range(20):
        batches = list(stream_batches(sequence, 32, 128, epoch=epoch, seed=0, bos_id=1))
        assert batches and sum(int(b.mask.sum()) for b in batches) >= 1
        for b in batches:
            np.testing.assert_array_equal(
                b.targets.numpy(), b.inputs.numpy() + 1
            )  # each target follows its input


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_a_token_budget_is_never_exceeded(family, synthetic):
    """A budget of N tokens trains at most N: the last batch is cut to the columns that fit (fewer than one
    column, batch_size tokens, short of N)."""
    budget = 16 * 32 * 3 + 100  # three whole batches and a part of a fourth
    model = create_model(family, **SMALL[family]).fit(synthetic.train, budget=Budget(tokens=budget))
    assert budget - SMALL[family]["batch_size"] < model.tokens_seen_ <= budget
