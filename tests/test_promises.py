"""README's promises pinned by value, not by shape: each test here fails when the behaviour is wrong.

Metrics against hand-computed figures (bits, not nats), the paired bootstrap on hand-built log-probabilities with
a known sign and two-sided p, intervals at known values, divergence from an infinite gradient with clipping on and
from a non-finite validation loss, resumption with dropout on equal to the uninterrupted run weight for weight, and
the run identity: the training and validation text's checksums and the fingerprint written into results.json.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch

from lmbench.data import TokenStream, Vocabulary
from lmbench.errors import TrainingDiverged
from lmbench.evaluation import bits_per_char, bits_per_token, line_totals, perplexity, score
from lmbench.evaluation.bootstrap import (
    mean_interval,
    paired_difference,
    perplexity_interval,
    seeded_paired_difference,
    seeded_perplexity_interval,
)
from lmbench.models.base import Budget
from lmbench.models.registry import create_model
from lmbench.training.loop import Batch, TrainConfig, Trainer
from tests.test_trust import LSTM, cli, figures, write_project

LN2 = math.log(2.0)


def stream(lines: list[str]) -> TokenStream:
    tokens = [line.split() for line in lines]
    return TokenStream.from_lines(tokens, Vocabulary.build(tokens))


# ----------------------------------------------------------------------------------------------- metrics
def test_bits_are_log2_of_the_probabilities_by_hand():
    # p = 1/2, 1/4, 1/8: 1 + 2 + 3 = 6 bits over 3 tokens and 4 characters
    lp = np.log([0.5, 0.25, 0.125])
    assert bits_per_token(lp) == pytest.approx(2.0, abs=1e-12)
    assert bits_per_char(lp, 4) == pytest.approx(1.5, abs=1e-12)
    assert bits_per_char(lp, 0) != bits_per_char(lp, 0)  # nan: no text, no rate
    assert perplexity(np.log([0.5, 0.125])) == pytest.approx(4.0, abs=1e-12)  # geometric mean of 2 and 8
    assert perplexity(np.log([1 / 7] * 5)) == pytest.approx(7.0, abs=1e-12)
    assert perplexity(np.array([0.0, -np.inf])) == math.inf
    assert math.isnan(perplexity(np.array([])))


def test_score_counts_characters_with_newlines_and_leaves_oov_out_of_the_second_perplexity():
    train = stream(["a b", "b c"])
    test = TokenStream.from_lines([["a", "zz"], ["c"]], train.vocab)  # zz is <unk>
    # predicted: a zz </s> c </s>; characters: "a zz\n" + "c\n" = 7
    assert (test.num_predicted, test.num_chars, test.oov, test.num_words) == (5, 7, 1, 3)
    lp = np.log([0.5, 0.25, 0.5, 0.125, 0.5])  # bits 1 2 1 3 1 = 8
    s = score(lp, test)
    assert s.bits_per_char == pytest.approx(8 / 7, abs=1e-12)
    assert s.bits_per_token == pytest.approx(8 / 5, abs=1e-12)
    assert s.log_prob == pytest.approx(-8 * LN2, abs=1e-12)
    assert s.perplexity == pytest.approx(2 ** (8 / 5), abs=1e-12)
    assert s.perplexity_excl_oov == pytest.approx(
        2 ** (6 / 4), abs=1e-12
    )  # the <unk> prediction (2 bits) out
    assert (s.tokens, s.oov, s.oov_rate) == (5, 1, pytest.approx(1 / 3))
    with pytest.raises(ValueError, match="expected 5"):
        score(lp[:4], test)


def test_bits_and_perplexity_of_plain_lists_and_one_token():
    assert perplexity([math.log(0.5)]) == pytest.approx(
        2.0, abs=1e-12
    )  # one prediction is not "no prediction"
    assert bits_per_token([math.log(0.25)]) == pytest.approx(2.0, abs=1e-12)
    assert bits_per_char([math.log(0.25), math.log(0.5)], 2) == pytest.approx(1.5, abs=1e-12)
    data = stream(["a"])
    assert score([math.log(0.5), math.log(0.5)], data).perplexity == pytest.approx(2.0, abs=1e-12)


def test_line_totals_sum_each_lines_predictions():
    data = stream(["a b", "", "c"])  # predictions: a b </s> | </s> | c </s>
    lp = np.log([0.5, 0.5, 0.5, 0.25, 0.125, 0.5])
    np.testing.assert_allclose(line_totals(lp, data), np.log([0.125, 0.25, 0.0625]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(line_totals(list(lp), data), np.log([0.125, 0.25, 0.0625]), rtol=0, atol=1e-12)


def test_score_counts_no_oov_rate_in_text_without_words():
    data = TokenStream.from_lines([[], []], stream(["a"]).vocab)  # two empty lines: only </s> is predicted
    s = score(np.log([0.5, 0.5]), data)
    assert (s.tokens, s.oov, s.oov_rate, s.bits_per_char) == (2, 0, 0.0, pytest.approx(1.0))


# --------------------------------------------------------------------------------- intervals, paired tests
def two_lines(a: list[float], b: list[float]) -> tuple[TokenStream, np.ndarray]:
    """A stream of two lines of len(a) and len(b) predictions (words + </s>) and its log-probabilities a + b."""
    data = stream([" ".join(["w"] * (len(a) - 1)), " ".join(["w"] * (len(b) - 1))])
    return data, np.log(np.array(a + b))


def test_perplexity_interval_of_two_lines_is_their_own_perplexities():
    # resampling 2 lines: (1,1) and (2,2) each have probability 1/4 > 2.5%, so the 95% interval's ends are the
    # perplexity of line 1 alone and of line 2 alone
    data, lp = two_lines([0.5, 0.5], [0.1, 0.1])
    low, high = perplexity_interval(lp, data, n_resamples=4000, seed=3)
    assert low == pytest.approx(2.0, abs=1e-9) and high == pytest.approx(10.0, abs=1e-9)
    # a 10% interval is the middle: (1,2) has probability 1/2, its perplexity is sqrt(2 * 10)
    low, high = perplexity_interval(lp, data, n_resamples=4000, seed=3, level=0.1)
    assert low == pytest.approx(math.sqrt(20), abs=1e-9) == high
    # identical lines: nothing varies, the interval is the point
    same, lp_same = two_lines([0.25, 0.5], [0.25, 0.5])
    assert perplexity_interval(lp_same, same, n_resamples=200) == pytest.approx((perplexity(lp_same),) * 2)
    # one seed: the seeded interval is exactly the plain one
    assert seeded_perplexity_interval([lp], data, n_resamples=500, seed=1) == perplexity_interval(
        lp, data, n_resamples=500, seed=1
    )


def test_intervals_of_text_a_model_rules_out_are_infinite_not_resampled():
    """A token at probability 0 makes the perplexity infinite: the interval is that point, never the finite
    perplexity of resamples that happen to leave its line out, and the paired test has no p-value."""
    data, lp = two_lines([0.5, 0.5], [0.1, 0.1])
    lp[3] = -np.inf
    assert perplexity_interval(lp, data, n_resamples=400, seed=0) == (math.inf, math.inf)
    finite = np.log(np.full(len(lp), 0.5))
    for a, b in ((lp, finite), (finite, lp)):  # either side's infinity
        d = paired_difference(a, b, data, n_resamples=400, seed=0)
        assert math.isnan(d.p_value) and d.low == d.difference == d.high
    # one line: nothing to resample, the point estimate and no p-value
    one = stream(["w w"])
    d = paired_difference(np.log([0.5] * 3), np.log([0.25] * 3), one, n_resamples=400)
    assert (d.difference, d.low, d.high) == (pytest.approx(-2.0),) * 3 and math.isnan(d.p_value)


def test_intervals_are_the_same_from_float32_log_probabilities():
    """Unit sums are accumulated in float64 whatever the input type (a float32 sum of 50k terms drifts)."""
    data = stream([" ".join(["w"] * 999)] * 50)
    rng = np.random.default_rng(0)
    lp32 = np.log(rng.uniform(0.001, 1.0, data.num_predicted)).astype(np.float32)
    lp64 = lp32.astype(np.float64)
    for context in ("sentence", "stream"):
        assert perplexity_interval(lp32, data, context=context, n_resamples=300) == perplexity_interval(
            lp64, data, context=context, n_resamples=300
        )


def test_paired_interval_has_the_requested_level():
    """Two lines: the resampled differences are d(1,1) with probability 1/4, the mixed one with 1/2, d(2,2)
    with 1/4. A 60% interval reaches from d(1,1) to d(2,2) (its tails are 20% each); a 20% interval (tails of
    40%) is the mixed difference alone."""
    data, a = two_lines([0.5, 0.5], [0.125, 0.125])
    _, b = two_lines([0.25, 0.25], [1 / 6, 1 / 6])
    mixed = math.sqrt(2 * 8) - math.sqrt(4 * 6)
    wide = paired_difference(a, b, data, n_resamples=20000, seed=5, level=0.6)
    assert (wide.low, wide.high) == (pytest.approx(2.0 - 4.0), pytest.approx(8.0 - 6.0))
    narrow = paired_difference(a, b, data, n_resamples=20000, seed=5, level=0.2)
    assert (narrow.low, narrow.high) == (pytest.approx(mixed), pytest.approx(mixed))


def test_mean_interval_of_two_values_reaches_both():
    assert mean_interval(np.array([0.0, 1.0]), n_resamples=4000) == (0.0, 1.0)
    assert mean_interval(np.array([0.0, 1.0]), n_resamples=4000, level=0.1) == (0.5, 0.5)
    assert mean_interval(np.array([0.3])) == (0.3, 0.3)


def test_paired_difference_has_the_sign_of_a_minus_b_and_a_two_sided_p():
    # A gives every token p = 1/2, B p = 1/4: A is better on every line, by perplexity 2 - 4 = -2
    data = stream(["w w w", "w", "w w"])
    n = data.num_predicted
    a, b = np.full(n, math.log(0.5)), np.full(n, math.log(0.25))
    d = paired_difference(a, b, data, n_resamples=500, seed=0)
    assert d.difference == pytest.approx(-2.0, abs=1e-12)
    assert d.low == pytest.approx(-2.0) and d.high == pytest.approx(-2.0)  # no resample can disagree
    assert d.p_value == pytest.approx(1 / 500)  # floored at the bootstrap's resolution, never 0
    flipped = paired_difference(b, a, data, n_resamples=500, seed=0)
    assert flipped.difference == pytest.approx(2.0) and flipped.p_value == pytest.approx(1 / 500)


def test_paired_p_value_is_two_sided_on_a_known_split():
    # two lines of two predictions. Line 1: A 1/2 vs B 1/4 (A better); line 2: A 1/8 vs B 1/6 (A worse, less).
    # Resamples (1,1) p=1/4 and (1,2) p=1/2 favour A, (2,2) p=1/4 favours B: P(diff<=0) = 3/4, P(diff>=0) = 1/4,
    # so the two-sided p is 2 * 1/4 = 1/2 (one-sided would be 1/4 or 3/4)
    data, a = two_lines([0.5, 0.5], [0.125, 0.125])
    _, b = two_lines([0.25, 0.25], [1 / 6, 1 / 6])
    mixed = math.sqrt(2 * 8) - math.sqrt(4 * 6)  # each model's perplexity over both lines
    assert mixed < 0  # the (1,2) resample favours A
    d = paired_difference(a, b, data, n_resamples=20000, seed=5)
    assert d.difference == pytest.approx(mixed, abs=1e-12)
    assert d.p_value == pytest.approx(0.5, abs=0.03)
    assert d.low == pytest.approx(2.0 - 4.0) and d.high == pytest.approx(8.0 - 6.0)  # (1,1) and (2,2)
    # seeded with one seed each is exactly the plain paired bootstrap
    assert seeded_paired_difference([a], [b], data, n_resamples=20000, seed=5) == d
    # several seeds of identical models: the same difference, and the same two-sided p
    s = seeded_paired_difference([a, a], [b, b], data, n_resamples=20000, seed=5)
    assert s.difference == pytest.approx(mixed, abs=1e-12) and s.p_value == pytest.approx(0.5, abs=0.03)
    assert s.low == pytest.approx(-2.0) and s.high == pytest.approx(2.0)


def _random_lines(n_lines: int = 20, seed: int = 0) -> tuple[TokenStream, np.ndarray, np.ndarray]:
    """n_lines lines of 1-6 words, and two different models' log-probabilities for them."""
    rng = np.random.default_rng(seed)
    data = stream([" ".join(["w"] * int(k)) for k in rng.integers(1, 7, n_lines)])
    return (
        data,
        np.log(rng.uniform(0.05, 0.9, data.num_predicted)),
        np.log(rng.uniform(0.05, 0.9, data.num_predicted)),
    )


@pytest.mark.parametrize("level", [0.95, 0.6])
def test_seeded_interval_of_identical_seeds_is_the_one_seed_interval(level):
    """Resampling seeds that are all the same changes nothing: the several-seed interval is the unit bootstrap's,
    at every level (the same units are drawn from the same seed)."""
    data, lp, _ = _random_lines()
    one = perplexity_interval(lp, data, n_resamples=2000, seed=4, level=level)
    assert seeded_perplexity_interval([lp, lp.copy()], data, n_resamples=2000, seed=4, level=level) == one
    assert one[0] < math.exp(-lp.mean()) < one[1]
    two, lp2 = two_lines([0.5, 0.5], [0.1, 0.1])  # two units are enough to resample: the ends 2 and 10
    assert seeded_perplexity_interval([lp2, lp2], two, n_resamples=4000, seed=3) == (
        pytest.approx(2.0),
        pytest.approx(10.0),
    )


def test_seeded_interval_spans_the_seeds_and_has_its_level():
    """Two seeds whose perplexities differ: the perplexity of their mean cross-entropy lies inside a 20% interval,
    which lies inside the 95% one."""
    data, a, b = _random_lines(40)
    wide = seeded_perplexity_interval([a, b], data, n_resamples=4000, seed=1)
    narrow = seeded_perplexity_interval([a, b], data, n_resamples=4000, seed=1, level=0.2)
    point = math.exp((-a.mean() - b.mean()) / 2)
    assert wide[0] < narrow[0] <= point <= narrow[1] < wide[1]
    # nothing to resample (one line), or an impossible token: the point itself
    one = stream(["w w"])
    x, y = np.log([0.5] * 3), np.log([0.25] * 3)
    assert seeded_perplexity_interval([x, y], one) == (pytest.approx(math.sqrt(8)),) * 2
    y[1] = -np.inf
    assert seeded_perplexity_interval([x, y], one) == (math.inf, math.inf)


def test_seeded_paired_difference_takes_every_seed_of_either_side():
    """One seed against two different seeds: the difference is of the mean cross-entropies (not of the first
    seed alone), its interval holds it, and with one line there is no p-value."""
    data, a, b = _random_lines(30)
    c = b + 0.3  # a second seed of model B, better everywhere
    d = seeded_paired_difference([a], [b, c], data, n_resamples=2000, seed=2)
    expected = math.exp(-a.mean()) - math.exp((-b.mean() - c.mean()) / 2)
    assert d.difference == pytest.approx(expected, rel=1e-12)
    assert d.low < d.difference < d.high and 0 < d.p_value <= 1
    one = stream(["w w"])
    d = seeded_paired_difference([np.log([0.5] * 3)], [np.log([0.25] * 3)] * 2, one)
    assert d.low == d.difference == d.high == pytest.approx(-2.0) and math.isnan(d.p_value)


def test_paired_difference_p_value_at_its_extremes():
    """Identical models: every resampled difference is 0, p = 1 (not above it). A model worse on every line by
    less than one perplexity point: no resample crosses zero, p is the resolution floor 1/n_resamples."""
    data, a, _ = _random_lines(30)
    same = paired_difference(a, a.copy(), data, n_resamples=500, seed=0)
    assert same.difference == same.low == same.high == 0.0 and same.p_value == 1.0
    worse = paired_difference(a - 0.001, a, data, n_resamples=500, seed=0)
    assert 0 < worse.low <= worse.difference <= worse.high < 1 and worse.p_value == 1 / 500


def test_stream_mode_resamples_blocks_of_the_given_size():
    # blocks of 2 tokens: block 1 at p 1/2, block 2 at p 1/10 -> the interval ends are 2 and 10
    data, lp = two_lines([0.5, 0.5], [0.1, 0.1])
    low, high = perplexity_interval(lp, data, context="stream", block_size=2, n_resamples=4000)
    assert (low, high) == (pytest.approx(2.0), pytest.approx(10.0))
    # one block holding everything: nothing to resample, the point
    assert (
        perplexity_interval(lp, data, context="stream", block_size=4) == (pytest.approx(math.sqrt(20)),) * 2
    )


# ------------------------------------------------------------------------------------------- divergence
def one_weight_batches(epoch):  # noqa: ARG001
    for i in range(20):
        yield Batch(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1, dtype=torch.long),
                    torch.ones(1, 1, dtype=torch.bool), i)  # fmt: skip


def test_an_infinite_gradient_with_clipping_on_diverges_at_that_step():
    """A finite loss whose gradient is infinite (d sqrt(x)/dx at 0): clipping would scale it to NaN weights;
    the loop must stop at once, naming the gradient norm."""
    net = torch.nn.Linear(1, 1)

    def loss(module, batch, carry):  # noqa: ARG001
        x = module.weight.sum() - module.weight.sum().detach()  # value 0, gradient 1
        return x.clamp(min=0).sqrt() + 1.0, 1, None

    trainer = Trainer(TrainConfig(warmup_steps=0, clip=1.0), Budget(tokens=10))
    with pytest.raises(TrainingDiverged, match="diverged at step 1: gradient norm is inf") as e:
        trainer.fit(net, one_weight_batches, loss, None, epoch_tokens=20, device=torch.device("cpu"))
    assert e.value.step == 1
    assert torch.isfinite(net.weight).all()  # stopped before the optimiser step


def test_a_non_finite_training_loss_diverges_at_its_step_before_any_update():
    net = torch.nn.Linear(1, 1)
    before = net.weight.detach().clone()

    def loss(module, batch, carry):  # noqa: ARG001
        return module.weight.sum() * float("nan"), 1, None

    with pytest.raises(TrainingDiverged, match="diverged at step 1: loss is nan") as e:
        Trainer(TrainConfig(warmup_steps=0), Budget(tokens=10)).fit(
            net, one_weight_batches, loss, None, epoch_tokens=20, device=torch.device("cpu")
        )
    assert e.value.step == 1 and torch.equal(net.weight, before)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 800.0])
def test_a_non_finite_validation_loss_diverges(bad):
    """NaN, infinity, and a finite loss whose perplexity overflows (a GRU at lr 1e6 once reported test
    perplexity inf instead of stopping)."""
    net = torch.nn.Linear(1, 1)
    passes = []

    def loss(module, batch, carry):  # noqa: ARG001
        return (module.weight**2).sum(), 1, None

    def valid(module):  # noqa: ARG001
        passes.append(1)
        return 1.0 if len(passes) == 1 else bad

    trainer = Trainer(TrainConfig(warmup_steps=0, eval_every=2, patience=0), Budget(tokens=20))
    with pytest.raises(TrainingDiverged, match=f"validation loss is {bad:g}") as e:
        trainer.fit(net, one_weight_batches, loss, valid, epoch_tokens=20, device=torch.device("cpu"))
    assert e.value.step == 4 and len(passes) == 2


def test_an_sgd_step_follows_the_gradient_of_the_mean_loss_at_the_scheduled_rate():
    """One plain SGD step (no clipping, no decay) moves a weight by lr_t x d(mean loss)/dw, where lr_t is the
    schedule's rate at that step (half of lr in the first of two warm-up steps) and the loss sum is divided by
    the batch's token count."""
    net = torch.nn.Linear(1, 1, bias=False)
    before = float(net.weight.detach())

    def loss(module, batch, carry):  # noqa: ARG001
        return 4 * module.weight.sum(), 4, None  # four tokens, each of loss w: the mean loss is w

    def batches(epoch):  # noqa: ARG001
        for i in range(5):
            yield Batch(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long),
                        torch.ones(1, 4, dtype=torch.bool), i)  # fmt: skip

    config = TrainConfig(optimizer="sgd", lr=0.5, warmup_steps=2, schedule="constant", clip=0.0, eval_every=0)
    Trainer(config, Budget(tokens=4)).fit(
        net, batches, loss, None, epoch_tokens=20, device=torch.device("cpu")
    )
    assert float(net.weight.detach()) == pytest.approx(before - 0.25, abs=1e-7)


def test_early_stopping_keeps_the_best_weights_of_a_validation_loss_that_stops_improving():
    """An improvement is a fall of more than 1e-6; after ``patience`` passes without one, training stops and the
    weights of the best pass come back. The validation hook sees every pass but the closing one."""
    net = torch.nn.Linear(1, 1)
    losses = iter([1.0, 1.0 - 1.5e-6, 1.0 - 2.0e-6, 0.5, 0.25])
    weights, hooked = [], []

    def loss(module, batch, carry):  # noqa: ARG001
        return (module.weight**2).sum(), 1, None

    def valid(module):
        weights.append(module.weight.detach().clone())
        return next(losses)

    trainer = Trainer(TrainConfig(warmup_steps=0, eval_every=2, patience=1), Budget(tokens=20))
    trainer.on_validation = hooked.append
    state = trainer.fit(net, one_weight_batches, loss, valid, epoch_tokens=20, device=torch.device("cpu"))
    # passes at steps 2, 4, 6: 1.0, then a fall of 1.5e-6 (an improvement), then of 5e-7 (none): stop at step 6
    assert [p["step"] for p in state.curve] == [2, 4, 6] and state.step == 6 and state.bad_evals == 1
    assert torch.equal(net.weight, weights[1])  # the best pass's weights, not the last ones
    assert [p["step"] for p in hooked] == [2, 4, 6]

    losses = iter([1.0, 1.0, 0.8])  # a pass without improvement, but patience 0 never stops early
    hooked.clear()
    trainer = Trainer(TrainConfig(warmup_steps=0, eval_every=2, patience=0), Budget(tokens=5))
    trainer.on_validation = hooked.append
    state = trainer.fit(net, one_weight_batches, loss, valid, epoch_tokens=20, device=torch.device("cpu"))
    # passes at steps 2 and 4, then the closing pass at the budget's end (step 5), which the hook does not see
    assert [p["step"] for p in state.curve] == [2, 4, 5] and [p["step"] for p in hooked] == [2, 4]


def test_the_learning_curve_holds_the_training_loss_and_time_it_measured():
    """Each curve point's train_loss is the mean loss per token since the previous point (here a constant 2 nats),
    and the training time is positive and within the wall-clock time of the call."""
    import time

    net = torch.nn.Linear(1, 1)

    def loss(module, batch, carry):  # noqa: ARG001
        return module.weight.sum() * 0.0 + 2.0, 1, None

    started = time.perf_counter()
    state = Trainer(TrainConfig(warmup_steps=0, eval_every=3, patience=0), Budget(tokens=12)).fit(
        net, one_weight_batches, loss, lambda module: 1.5, epoch_tokens=20, device=torch.device("cpu")
    )
    elapsed = time.perf_counter() - started
    assert len(state.curve) >= 4 and state.tokens == 12
    for point in state.curve:
        assert point["train_loss"] == pytest.approx(2.0) and point["valid_loss"] == 1.5
    assert 0 < state.seconds <= elapsed
    assert all(0 < p["seconds"] <= state.seconds for p in state.curve)


# ----------------------------------------------------------------------------------------------- resume
SYNTH = [" ".join(f"w{(i * 7 + j * 3) % 23}" for j in range(5 + i % 4)) for i in range(160)]


@pytest.mark.parametrize(
    "family, params",
    [
        ("lstm", {"emb_size": 16, "hidden_size": 16, "layers": 2, "dropout": 0.5}),
        ("transformer", {"d_model": 16, "n_heads": 2, "layers": 1, "window": 12, "dropout": 0.3}),
    ],
)
def test_resume_with_dropout_on_equals_the_uninterrupted_run_exactly(family, params, tmp_path, monkeypatch):
    """Dropout draws from torch's RNG: unless the checkpoint restores it, the resumed run draws other masks and
    its weights differ. Weights, learning curve and scores must be equal, not close."""
    lines = [line.split() for line in SYNTH]
    vocab = Vocabulary.build(lines)
    train = TokenStream.from_lines(lines[:140], vocab)
    valid = TokenStream.from_lines(lines[140:], vocab)
    settings = {**params, "batch_size": 4, "seq_len": 8, "lr": 3e-3, "warmup_steps": 3, "eval_every": 7,
                "patience": 0, "seed": 3}  # fmt: skip
    budget = Budget(tokens=1600)
    full = create_model(family, **settings).fit(train, valid, budget=budget, run_dir=tmp_path / "full")

    original = Trainer.__init__

    def stop_after_19_steps(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.stop_after_steps = 19  # between validation passes, so the carried state matters too

    monkeypatch.setattr(Trainer, "__init__", stop_after_19_steps)
    with pytest.raises(KeyboardInterrupt):
        create_model(family, **settings).fit(train, valid, budget=budget, run_dir=tmp_path / "cut")
    monkeypatch.setattr(Trainer, "__init__", original)
    torch.manual_seed(12345)  # whatever the process's RNG holds now, the checkpoint's must be used
    resumed = create_model(family, **settings).fit(train, valid, budget=budget, run_dir=tmp_path / "cut")

    a, b = full.net_.state_dict(), resumed.net_.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key

    def curve(model):
        return [{k: v for k, v in point.items() if k != "seconds"} for point in model.learning_curve_]

    assert curve(resumed) == curve(full) and len(curve(full)) >= 3
    np.testing.assert_array_equal(resumed.token_logprobs(valid), full.token_logprobs(valid))


# -------------------------------------------------------------------------------------------- identity
def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def swap_words(path) -> None:
    """Same words, same counts, same length, other text: only a checksum can tell."""
    text = path.read_text()
    path.write_text(text.replace("cat", "\0").replace("dog", "cat").replace("\0", "dog"))


@pytest.mark.parametrize("split", ["train", "valid"])
def test_editing_the_training_or_validation_text_retrains(tmp_path, split):
    models = LSTM.format(extra="") + '[[model]]\nname = "kn2"\nfamily = "ngram"\norder = 2\n'
    config = write_project(tmp_path, models=models)
    assert cli(["run", str(config), "-o", "out"], tmp_path).exit_code == 0
    before = figures(tmp_path)
    swap_words(tmp_path / f"{split}.txt")
    again = cli(["run", str(config), "-o", "out"], tmp_path)
    assert again.exit_code == 0, again.output
    assert f"lstm [seed 0]: {split}.txt changed, retraining" in again.output
    assert f"kn2: {split}.txt changed, retraining" in again.output
    assert "finished earlier" not in again.output and "fitted earlier" not in again.output
    after = figures(tmp_path)
    if split == "train":  # the models learned from other text (a validation edit may pick the same weights)
        for name in ("lstm", "kn2"):
            ppl = [f[(f.model == name) & (f.split == "test")].perplexity.iloc[0] for f in (before, after)]
            assert ppl[0] != ppl[1], name
    # and the re-trained figures are a fresh run's on the edited text, not a mix
    assert cli(["run", str(config), "-o", "fresh", "--runs-dir", "runs2"], tmp_path).exit_code == 0
    assert figures(tmp_path, "fresh").perplexity.tolist() == after.perplexity.tolist()


def test_the_fingerprint_in_results_json_is_the_hash_of_the_recorded_identity(tmp_path):
    models = LSTM.format(extra="") + '[[model]]\nname = "kn2"\nfamily = "ngram"\norder = 2\n'
    config = write_project(tmp_path, models=models, top="seeds = [0, 1]")
    assert cli(["run", str(config), "-o", "out"], tmp_path).exit_code == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    printed = results["provenance"]["fingerprints"]
    folders = {"lstm": ["runs/trust/lstm/seed-0", "runs/trust/lstm/seed-1"], "kn2": ["runs/trust/kn2"]}
    for name, paths in folders.items():
        expected = []
        for path in paths:
            identity = json.loads((tmp_path / path / "fit.json").read_text())["identity"]
            # the training text and validation text are part of what a model is: their sha256, byte for byte
            assert identity["data"] == {"train": sha256(tmp_path / "train.txt"),
                                        "valid": sha256(tmp_path / "valid.txt")}  # fmt: skip
            assert json.loads((tmp_path / path / "identity.json").read_text())["identity"] == identity
            canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
            expected.append(hashlib.sha256(canonical.encode()).hexdigest()[:16])
        assert printed[name] == expected
    assert len(set(printed["lstm"])) == 2  # two seeds, two models


# ------------------------------------------------------------------------------- a real interrupted run
# `lmbench run` in its own process, each training step slowed by a sleep and announced on stderr, so that the
# signal lands mid-training whatever the machine's load; nothing else about the run differs.
SLOWED_RUN = """
import sys, time
from lmbench.training import loop

step = loop.Trainer._step

def slow_step(self, run, batch):
    time.sleep(0.03)
    done = step(self, run, batch)
    print(f"test-step {run.state.step}", file=sys.stderr, flush=True)
    return done

loop.Trainer._step = slow_step
from lmbench.cli import main

main(prog_name="lmbench")
"""
INTERRUPTED_MODELS = LSTM.format(extra="dropout = 0.3\npatience = 0")


def lmbench_process(root, args, *, slowed=False, **popen):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip
    code = ["-c", SLOWED_RUN] if slowed else ["-m", "lmbench.cli"]
    return subprocess.Popen([sys.executable, *code, *args], cwd=root, env=env, text=True, **popen)


def finish(process, timeout=240) -> tuple[int, str]:
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    import subprocess

    root = tmp_path_factory.mktemp("uninterrupted")
    config = write_project(root, models=INTERRUPTED_MODELS, budget="tokens = 2400")
    process = lmbench_process(
        root, ["run", str(config), "-o", "out"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    code, err = finish(process)
    assert code == 0, err
    return root


@pytest.mark.timeout(900)
@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_real_run_interrupted_by_a_signal_resumes_to_the_uninterrupted_results(
    tmp_path, uninterrupted, signum
):
    import signal
    import subprocess

    config = write_project(tmp_path, models=INTERRUPTED_MODELS, budget="tokens = 2400")
    args = ["run", str(config), "-o", "out"]
    process = lmbench_process(tmp_path, args, slowed=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = []
    for line in process.stderr:  # wait until training is under way: 8 steps done (of 100)
        seen.append(line)
        if line.startswith("test-step 8"):
            process.send_signal(getattr(signal, signum))
            break
    else:
        pytest.fail("training never reached step 8:\n" + "".join(seen))
    code, err = finish(process)
    run = tmp_path / "runs" / "trust" / "lstm" / "seed-0"
    last = max(int(line.split()[1]) for line in (*seen, *err.splitlines()) if line.startswith("test-step"))
    assert code != 0 and last < 100, err  # stopped early, by the signal, and said so by its exit status
    assert (run / "checkpoint.pt").is_file() and not (run / "fit.json").exists(), err
    assert not (tmp_path / "out" / "results.csv").exists()

    code, err = finish(lmbench_process(tmp_path, args, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    assert code == 0 and "resuming from" in err, err
    ours, theirs = (
        json.loads((root / "out" / "results.json").read_text()) for root in (tmp_path, uninterrupted)
    )

    def figures_of(results):
        return [
            {k: row[k] for k in ("model", "split", "perplexity", "tokens", "log_prob")}
            for row in results["rows"]
        ]

    def curve_of(root):
        info = json.loads((root / "runs/trust/lstm/seed-0/fit.json").read_text())["info"]
        return [{k: v for k, v in p.items() if k != "seconds"} for p in info["learning_curve"]]

    assert figures_of(ours) == figures_of(theirs)
    assert curve_of(tmp_path) == curve_of(uninterrupted) and len(curve_of(tmp_path)) >= 10
    assert ours["provenance"]["fingerprints"] == theirs["provenance"]["fingerprints"]


def test_the_training_and_scoring_identities_hold_every_input_by_value(tmp_path):
    """Without training: each input that decides a fitted model (or its scores) is in its identity, with the
    value it has, and each change gives another fingerprint."""
    from lmbench.config import load_config
    from lmbench.experiment import load_data, plan_runs, scoring_identity, training_identity
    from lmbench.runs import canonical_json, fingerprint

    models = LSTM.format(extra="") + '[[model]]\nname = "kn2"\nfamily = "ngram"\norder = 2\n'
    config = load_config(write_project(tmp_path, models=models, top="seeds = [0, 1]"))
    loaded = load_data(config)
    runs = plan_runs(config, tmp_path / "runs")
    assert [(r.spec.name, r.seed) for r in runs] == [("lstm", 0), ("lstm", 1), ("kn2", None)]
    lstm0, lstm1, kn2 = (training_identity(r, config, loaded) for r in runs)
    data = {"train": sha256(tmp_path / "train.txt"), "valid": sha256(tmp_path / "valid.txt")}
    assert lstm0["data"] == data == kn2["data"]
    assert (lstm0["family"], lstm0["seed"], kn2["family"], kn2["seed"]) == ("lstm", 0, "ngram", None)
    assert lstm0["params"] == runs[0].params and lstm0["params"]["hidden_size"] == 8
    assert lstm0["budget"] == {**lstm0["budget"], "tokens": 600}
    assert lstm0["vocabulary"] == {"tokenizer": config.corpus.tokenizer, "min_count": config.corpus.min_count,
                                   "max_size": config.corpus.max_size, "size": len(loaded.data.vocab)}  # fmt: skip
    import lmbench

    assert lstm0["lmbench"] == lmbench.__version__
    # the fingerprint is sha256 of the canonical JSON (sorted keys, no spaces), 16 hex digits
    canonical = json.dumps(lstm0, sort_keys=True, separators=(",", ":"))
    assert canonical_json(lstm0) == canonical
    assert fingerprint(lstm0) == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert fingerprint({"b": 1, "a": 2}) == fingerprint({"a": 2, "b": 1})
    assert len({fingerprint(lstm0), fingerprint(lstm1), fingerprint(kn2)}) == 3
    assert canonical_json({"x": np.float32(0.5), "n": np.int64(3), "p": tmp_path}) == (
        f'{{"n":3,"p":{json.dumps(str(tmp_path))},"x":0.5}}'
    )
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        canonical_json({"x": object()})
    # scoring: the model's fingerprint, every evaluated split's sha256 and the [evaluate] settings
    scoring = scoring_identity("f" * 16, config, loaded)
    e = config.evaluate
    assert scoring == {
        "model": "f" * 16,
        "data": {split: sha256(tmp_path / f"{split}.txt") for split in e.splits},
        "evaluate": {"splits": e.splits, "contexts": e.contexts, "bootstrap": 100, "block_size": e.block_size,
                     "seed": config.seed},
    }  # fmt: skip
    # the valid text decides the model (early stopping, best weights): editing it changes the identity
    swap_words(tmp_path / "valid.txt")
    edited = training_identity(runs[0], config, load_data(config))
    assert edited["data"]["valid"] != lstm0["data"]["valid"] and fingerprint(edited) != fingerprint(lstm0)


def test_a_run_folder_accepts_only_its_own_identity(tmp_path):
    from lmbench.checksums import record_path
    from lmbench.runs import CacheMiss, RunFolder

    folder = RunFolder(tmp_path / "run")
    identity = {"seed": 0, "params": {"lr": 0.003}, "data": {"train": "a", "valid": "b"}}
    with pytest.raises(CacheMiss) as missing:
        folder.check("fit.json", "identity", identity, {})
    assert missing.value.absent  # a first run: nothing to explain
    folder.path.mkdir()
    folder.write_json("fit.json", {"identity": identity, "info": {"x": 1}})
    assert folder.check("fit.json", "identity", json.loads(json.dumps(identity)), {})["info"] == {"x": 1}
    for changed, words in [
        ({**identity, "seed": 1}, "seed 0 -> 1"),
        ({**identity, "data": {"train": "a", "valid": "c"}}, "valid.txt changed"),
        ({**identity, "data": {"train": "z", "valid": "b"}}, "train.txt changed"),
    ]:
        with pytest.raises(CacheMiss, match=words) as stale:
            folder.check("fit.json", "identity", changed, {"train": "train.txt", "valid": "valid.txt"})
        assert not stale.value.absent
    for payload, words in (("[1, 2]", "not an lmbench run file"), ("{not json", "unreadable"),
                           ('{"info": {}}', "has no identity")):  # fmt: skip
        (folder.path / "fit.json").write_text(payload)
        record_path(folder.path / "fit.json").unlink(
            missing_ok=True
        )  # as an older lmbench left it: no record
        with pytest.raises(CacheMiss, match=words) as broken:
            folder.check("fit.json", "identity", identity, {})
        assert not broken.value.absent
    # a file lmbench recorded, edited afterwards (still valid JSON, even with the same identity): not trusted
    folder.write_json("fit.json", {"identity": identity, "info": {"x": 1}})
    (folder.path / "fit.json").write_text(json.dumps({"identity": identity, "info": {"x": 2}}))
    with pytest.raises(CacheMiss, match="fit.json") as edited:
        folder.check("fit.json", "identity", identity, {})
    assert not edited.value.absent


def test_the_reported_difference_is_model_minus_baseline_with_its_paired_bootstrap(tmp_path):
    models = ('[[model]]\nname = "u"\nfamily = "ngram"\norder = 1\n'
              '[[model]]\nname = "kn2"\nfamily = "ngram"\norder = 2\n')  # fmt: skip
    config = write_project(
        tmp_path, models=models, evaluate='context = ["sentence", "stream"]\nblock_size = 3'
    )
    config.write_text(config.read_text().replace("[report]\n", '[report]\nbaseline = "u"\n'))
    assert cli(["run", str(config), "-o", "out"], tmp_path).exit_code == 0
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    run = tmp_path / "runs" / "trust"
    for row in (r for r in rows if r["model"] == "kn2"):
        key = f"{row['split']}__{row['context']}"
        with np.load(run / "kn2" / "logprobs.npz") as a, np.load(run / "u" / "logprobs.npz") as b:
            ppl_a, ppl_b = perplexity(a[key]), perplexity(b[key])
        assert row["diff_vs_baseline"] == pytest.approx(ppl_a - ppl_b, rel=1e-12)
        # the bigram beats the unigram: a negative difference (model minus baseline, not the other way)
        assert ppl_a < ppl_b and row["diff_vs_baseline"] < 0
        assert row["diff_low"] <= row["diff_vs_baseline"] <= row["diff_high"]
        assert 1 / 100 <= row["p_value"] <= 1  # bootstrap = 100: floored at its resolution
        assert row["perplexity"] == pytest.approx(ppl_a, rel=1e-12)
        assert row["perplexity_low"] < row["perplexity"] < row["perplexity_high"]
    assert all(r.get("diff_vs_baseline") is None for r in rows if r["model"] == "u")  # none against itself


@pytest.mark.parametrize("payload", [{"weights": [1.0]}, {"model": {}, "state": {}}, [1, 2, 3]])
def test_a_foreign_checkpoint_is_named_as_such_and_training_starts_fresh(tmp_path, payload):
    """A torch file that is not an lmbench checkpoint (a dict without its keys, a list) is never resumed and the
    note says what it is, not that it "does not fit this model"."""
    torch.save(payload, tmp_path / "checkpoint.pt")
    net = torch.nn.Linear(1, 1)

    def loss(module, batch, carry):  # noqa: ARG001
        return (module.weight**2).sum(), 1, None

    trainer = Trainer(TrainConfig(warmup_steps=0), Budget(tokens=3), run_dir=tmp_path)
    state = trainer.fit(net, one_weight_batches, loss, None, epoch_tokens=20, device=torch.device("cpu"))
    assert state.step == 3
    assert len(trainer.notes) == 1 and "not an lmbench training checkpoint" in trainer.notes[0], trainer.notes


def toy_fit(run_dir, *, stop_after=None, schedule="plateau", net=None):
    """A one-weight model whose validation loss worsens at every pass, so the plateau schedule decays the
    learning rate as it trains: a resumed run must carry that decay on, not start again from the full rate."""
    torch.manual_seed(0)
    net = net or torch.nn.Linear(1, 1)

    def loss(module, batch, carry):  # noqa: ARG001
        return -module.weight.sum(), 1, None

    def valid(module):
        return float(module.weight.sum())

    config = TrainConfig(warmup_steps=0, schedule=schedule, eval_every=3, patience=0, lr=0.1)
    trainer = Trainer(config, Budget(tokens=15), run_dir=run_dir)
    trainer.stop_after_steps = stop_after
    state = trainer.fit(net, one_weight_batches, loss, valid, epoch_tokens=20, device=torch.device("cpu"))
    trainer.curve = [{k: v for k, v in point.items() if k != "seconds"} for point in state.curve]
    return net, trainer


def test_a_resumed_checkpoint_carries_the_plateau_decay_on(tmp_path):
    """(The weights kept are the best pass's, the first; the training losses after it show the rate used.)"""
    _, full = toy_fit(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        toy_fit(tmp_path / "cut", stop_after=8)  # two decays in, between passes
    _, resumed = toy_fit(tmp_path / "cut")
    assert resumed.notes == [] and len(full.curve) == 5  # passes at steps 3, 6, 9, 12 and 15
    assert resumed.curve == full.curve
    _, constant = toy_fit(tmp_path / "constant", schedule="constant")
    assert constant.curve[1:] != full.curve[1:]  # the decay shows in the training losses


def test_a_checkpoint_that_does_not_fit_is_a_fresh_start_with_nothing_of_it_kept(tmp_path):
    """A checkpoint whose model and optimiser load but whose training state does not: training starts from the
    start with a fresh optimiser (no momentum from the checkpoint), exactly as without a checkpoint."""
    fresh, _ = toy_fit(tmp_path / "fresh")
    with pytest.raises(KeyboardInterrupt):
        toy_fit(tmp_path / "cut", stop_after=8)
    from lmbench.checksums import record_path

    path = tmp_path / "cut" / "checkpoint.pt"
    payload = torch.load(path, weights_only=True)
    payload["state"] = {**payload["state"], "no_such_field": 1}
    torch.save(payload, path)
    record_path(path).unlink(missing_ok=True)  # edited by hand: its sha256 record would name it damaged first
    again, trainer = toy_fit(tmp_path / "cut")
    assert len(trainer.notes) == 1 and "does not fit this model (TypeError:" in trainer.notes[0], (
        trainer.notes
    )
    assert torch.equal(again.weight, fresh.weight) and torch.equal(again.bias, fresh.bias)
