"""Mixed precision, published recipes (SGD, step and plateau schedules, uniform init), `--dry-run`, progress
lines and budgets: each promise checked against values worked out by hand, and each bad setting refused before
any training with one line naming its key."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lmbench.cli import main
from lmbench.config import load_config
from lmbench.data import TokenStream, Vocabulary
from lmbench.errors import ConfigError
from lmbench.models.base import Budget
from lmbench.models.output import OutputLayer
from lmbench.models.registry import create_model
from lmbench.training import precision as precision_module
from lmbench.training.loop import TrainConfig, Trainer, TrainState
from lmbench.training.precision import resolve_precision

from .test_cli import run as _cli  # CliRunner in a working folder

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = {"emb_size": 16, "hidden_size": 16, "layers": 1, "dropout": 0.0, "batch_size": 4, "seq_len": 8}


def _stream(n_lines: int = 60, seed: int = 0) -> TokenStream:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(30)]
    lines = [[words[j] for j in rng.integers(0, 30, rng.integers(3, 12))] for _ in range(n_lines)]
    return TokenStream.from_lines(lines, Vocabulary.build(lines))


# ------------------------------------------------------------------------------------------------ precision
@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_exactly_where_the_cpu_has_it(monkeypatch, native):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    chosen = resolve_precision("auto", torch.device("cpu"))
    assert chosen.name == ("bfloat16" if native else "float32")
    assert chosen.dtype is (torch.bfloat16 if native else None)
    assert chosen.describe().startswith(f"precision: {chosen.name} (auto")


def test_float16_needs_cuda_and_bf16_needs_native_support(monkeypatch):
    with pytest.raises(ConfigError, match="precision: float16 trains on CUDA only"):
        TrainConfig(precision="float16", device="cpu")
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(ConfigError, match="precision: bfloat16 is not native here"):
        TrainConfig(precision="bfloat16", device="cpu")
    with pytest.raises(ConfigError, match="precision: expected one of auto, float32, bfloat16, float16"):
        TrainConfig(precision="fp8")


@pytest.mark.parametrize("kind", ["full", "adaptive"])
def test_mixed_precision_loss_and_gradients_stay_float32_and_close(kind):
    torch.manual_seed(0)
    out = OutputLayer(48, 3000, kind, bos_id=1)
    h = torch.randn(200, 48, requires_grad=True)
    targets = torch.randint(2, 3000, (200,))
    exact = out.loss_sum(h, targets)
    exact.backward()
    grads = [h.grad.clone(), *(p.grad.clone() for p in out.parameters())]
    h.grad = None
    out.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = out.loss_sum(h.bfloat16(), targets)  # the network hands a bf16 state under autocast
    assert mixed.dtype == torch.float32
    mixed.backward()
    assert abs(float(mixed.detach()) - float(exact.detach())) / float(exact.detach()) < 2e-3
    for got, want in zip([h.grad, *(p.grad for p in out.parameters())], grads, strict=True):
        assert got.dtype == torch.float32
        assert float((got - want).norm() / want.norm()) < 2e-2


def test_a_bf16_trained_model_scores_in_float32_without_autocast():
    train = _stream()
    model = create_model("lstm", **TINY, precision="bfloat16", lr=1e-2).fit(train, budget=Budget(tokens=2000))
    assert all(p.dtype == torch.float32 for p in model.net_.parameters())  # master weights
    seen = []
    original = model.net_.output.target_log_probs

    def spy(h, targets):
        seen.append((h.dtype, torch.is_autocast_enabled("cpu")))
        return original(h, targets)

    model.net_.output.target_log_probs = spy
    lp = model.token_logprobs(train, context="stream")
    assert lp.dtype == np.float64 and np.isfinite(lp).all()
    assert seen and all(dtype == torch.float32 and not autocast for dtype, autocast in seen)


def test_the_resolved_precision_is_part_of_the_training_identity(monkeypatch):
    model = create_model("lstm", **TINY)  # precision = "auto"
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    on_bf16 = model.runtime_identity()
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    assert on_bf16 == {"precision": "bfloat16"} and model.runtime_identity() == {"precision": "float32"}


# ------------------------------------------------------------------------------------------------ recipes
def test_sgd_with_momentum_and_nesterov_is_what_trains():
    trainer = Trainer(TrainConfig(optimizer="sgd", lr=0.5, momentum=0.9, nesterov=True))
    optimizer, _ = trainer._optimizer(torch.nn.Linear(3, 3))
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["momentum"] == 0.9 and optimizer.defaults["nesterov"] is True
    assert all(g["weight_decay"] == 0.0 for g in optimizer.param_groups)  # SGD: no decay unless asked


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"optimizer": "sgd", "betas": [0.9, 0.98]}, "betas: an AdamW setting, but optimizer = 'sgd'"),
        ({"momentum": 0.9}, "momentum: an SGD setting, but optimizer = 'adamw'"),
        ({"optimizer": "sgd", "nesterov": True}, "nesterov: needs momentum > 0"),
        ({"lr_decay": 0.5}, "lr_decay: a setting of schedule = 'step', but schedule = 'cosine'"),
        ({"plateau_factor": 0.5, "schedule": "step"}, "plateau_factor: a setting of schedule = 'plateau'"),
        ({"schedule": "step", "lr_decay": 1.5}, "lr_decay: expected a number in (0, 1]"),
        ({"optimizer": "adam"}, "optimizer: expected one of adamw, sgd"),
        ({"init_range": 0}, "init_range: expected a positive number"),
    ],
)
def test_a_key_of_another_optimizer_or_schedule_is_refused_by_name(settings, message):
    with pytest.raises(ConfigError) as error:
        TrainConfig(**settings)
    assert message in str(error.value)


def test_step_schedule_halves_every_epoch_after_decay_after():
    trainer = Trainer(TrainConfig(lr=1.0, schedule="step", lr_decay=0.5, decay_after=4, warmup_steps=0))
    rates = [trainer._lr(TrainState(step=10, epoch=e), 100, 1.0) for e in range(7)]
    assert rates == [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]  # Zaremba et al.: epochs 1-4 at lr, then halved


def test_plateau_divides_by_its_factor_after_a_pass_without_improvement():
    trainer = Trainer(TrainConfig(schedule="plateau", plateau_factor=0.1, patience=0))
    losses = iter([2.0, 2.5])
    state = TrainState()
    module = torch.nn.Linear(2, 2)
    _, scale, _ = trainer._evaluate(module, lambda m: next(losses), state, None, 1.0)
    _, scale, _ = trainer._evaluate(module, lambda m: next(losses), state, None, scale)
    assert scale == pytest.approx(0.1)


def test_init_range_draws_every_parameter_from_the_interval():
    model = create_model("lstm", **TINY, init_range=0.05)
    model._init_net(_stream().vocab)
    values = torch.cat([p.detach().flatten() for p in model.net_.parameters()])
    assert values.abs().max() <= 0.05 and values.abs().max() > 0.04  # U(-r, r), not the family's default


def test_the_recipes_load_and_say_their_published_figure():
    for name, figure in [
        ("zaremba-small", "114.5"),
        ("zaremba-medium", "82.7"),
        ("pytorch-example-lstm", None),
    ]:
        path = EXAMPLES / "recipes" / f"{name}.toml"
        config = load_config(path)
        neural = [m for m in config.models if m.family == "lstm"][0]
        model = create_model("lstm", **neural.params)
        assert model.train_config.optimizer == "sgd" and model.train_config.warmup_steps == 0
        header = path.read_text().split("\nname =")[0]
        assert "Expected time" in header
        if figure:
            assert figure in header and config.corpus.name == "ptb"


# ------------------------------------------------------------------------------------------------ the loop
def test_default_eval_every_gives_about_twenty_curve_points():
    train = _stream(200)
    valid = train.subset(range(20))
    model = create_model("lstm", **TINY, patience=0, precision="float32")
    model.fit(train, valid, budget=Budget(tokens=40 * 32 * 8))  # 40 steps of 32 tokens
    points = [p for p in model.learning_curve_ if "valid_perplexity" in p]
    assert 19 <= len(points) <= 22
    assert all(p["lr"] > 0 for p in model.learning_curve_)


def test_off_a_terminal_progress_lines_say_tokens_speed_loss_and_eta(capsys):
    train = _stream(100)
    valid = train.subset(range(10))  # the same vocabulary
    config = TrainConfig(**{k: v for k, v in TINY.items() if k in ("batch_size", "seq_len")}, eval_every=5)
    model = create_model("lstm", **TINY, eval_every=5, precision="float32")
    model._init_net(train.vocab)
    trainer = Trainer(config, Budget(tokens=600), progress=False)
    trainer.status_seconds = 1e-9
    trainer.fit(
        model.net_, model._training_batches(train), model.batch_loss,
        lambda m: float(-model.token_logprobs(valid, context="stream").mean()),
        epoch_tokens=train.num_predicted, device=torch.device("cpu"), valid_tokens=valid.num_predicted,
    )  # fmt: skip
    lines = [line for line in capsys.readouterr().err.splitlines() if "tok/s" in line]
    assert lines and "/600 tokens (" in lines[-1] and "loss " in lines[-1] and "ETA " in lines[-1]
    assert "valid ppl " in lines[-1] and "valid ppl -" not in lines[-1]


def test_on_a_terminal_the_bar_shows_loss_lr_and_the_last_validation_perplexity(monkeypatch):
    """The tqdm bar advances by the tokens trained and its postfix carries the running loss, the learning rate
    and the latest validation perplexity ("-" before the first pass)."""
    import tqdm

    bars = []

    class Recorder:
        def __init__(self, *args, **kwargs):
            self.total, self.n, self.postfixes = kwargs.get("total"), 0, []
            bars.append(self)

        def update(self, n):
            self.n += n

        def set_postfix(self, **kwargs):
            self.postfixes.append(kwargs)

        def close(self):
            pass

    monkeypatch.setattr(tqdm, "tqdm", Recorder)
    train = _stream(100)
    config = TrainConfig(**{k: v for k, v in TINY.items() if k in ("batch_size", "seq_len")}, eval_every=4)
    model = create_model("lstm", **TINY, precision="float32")
    model._init_net(train.vocab)
    passes = iter([2.0, 1.0, 0.5, 0.25, 0.125])
    state = Trainer(config, Budget(tokens=480), progress=True).fit(
        model.net_, model._training_batches(train), model.batch_loss, lambda m: next(passes),
        epoch_tokens=train.num_predicted, device=torch.device("cpu"), valid_tokens=100,
    )  # fmt: skip
    (bar,) = bars
    assert bar.total == 480 and bar.n == state.tokens and 400 < state.tokens <= 480
    first, last = bar.postfixes[0], bar.postfixes[-1]
    assert first["valid_ppl"] == "-" and float(first["loss"]) > 0 and float(first["lr"]) > 0
    # every pass during training is shown once it has run (the closing pass comes after the last step)
    shown = {p["valid_ppl"] for p in bar.postfixes}
    assert shown == {"-", *(f"{math.exp(loss):.1f}" for loss in (2.0, 1.0, 0.5, 0.25))}
    assert last["valid_ppl"] == f"{math.exp(0.25):.1f}"


def test_a_minutes_budget_survives_a_slow_first_step():
    """The closing-pass reserve once came from the first step alone: a slow start stopped training at step 1."""
    import time

    train = _stream(200)
    model = create_model("lstm", **TINY, precision="float32", eval_every=0)
    model._init_net(train.vocab)
    calls = {"n": 0}

    def loss_fn(net, batch, carry):
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(0.5)  # a cold first step
        return model.batch_loss(net, batch, carry)

    trainer = Trainer(model.train_config, Budget(minutes=0.04), progress=False)
    state = trainer.fit(
        model.net_, model._training_batches(train), loss_fn, lambda m: 1.0,
        epoch_tokens=train.num_predicted, device=torch.device("cpu"), valid_tokens=10_000_000,
    )  # fmt: skip
    assert state.step > 5
    assert state.seconds < 0.04 * 60 * 2  # and it still stops near its limit


def test_a_minutes_budget_keeps_back_the_closing_pass_measured_from_recent_steps():
    """The reserve for the closing validation pass: valid tokens at three times the median speed of the last
    20 steps (the first two left out), nothing before three such steps, at most half the budget, and the last
    pass's own duration once one has run; the schedule's fraction done counts it."""
    train = _stream(200)
    model = create_model("lstm", **TINY, precision="float32", eval_every=0)
    model._init_net(train.vocab)
    trainer = Trainer(model.train_config, Budget(tokens=27 * 32, minutes=10.0), progress=False)
    state = trainer.fit(
        model.net_, model._training_batches(train), model.batch_loss, lambda m: 1.0,
        epoch_tokens=train.num_predicted, device=torch.device("cpu"), valid_tokens=500,
    )  # fmt: skip
    assert state.step >= 27  # at most 4 x 8 tokens a step (fewer where a batch holds padding)
    times = trainer._recent_step_seconds
    assert len(times) == 20  # steps 3-27 measured, the last 20 kept
    assert all(0 < t < state.seconds for t in times)
    short = Trainer(model.train_config, Budget(tokens=8 * 32, minutes=10.0), progress=False)
    steps = short.fit(
        model.net_, model._training_batches(train), model.batch_loss, lambda m: 1.0,
        epoch_tokens=train.num_predicted, device=torch.device("cpu"), valid_tokens=500,
    ).step  # fmt: skip
    assert 8 <= steps < 20 and len(short._recent_step_seconds) == steps - 2
    assert 0 < trainer._tokens_per_step <= 32  # the last step's tokens (that step may be cut to the budget)

    trainer._eval_seconds = None  # as before any validation pass
    trainer._recent_step_seconds, trainer._tokens_per_step = [0.2, 0.1, 0.1, 0.3], 32  # median 0.15 s
    state.seconds, state.tokens = 60.0, 0
    assert trainer._closing_eval_estimate(state) == pytest.approx(500 / (3 * 32 / 0.15))
    assert trainer._fraction_done(state, 10**9) == pytest.approx((60.0 + 500 / (3 * 32 / 0.15)) / 600)
    trainer._valid_tokens = 10**9  # a huge validation split: at most half the budget is kept back
    assert trainer._closing_eval_estimate(state) == 300.0
    trainer._valid_tokens, trainer._recent_step_seconds = 500, [0.2, 0.3, 0.1]  # three steps: median 0.2
    assert trainer._closing_eval_estimate(state) == pytest.approx(500 / (3 * 32 / 0.2))
    trainer._tokens_per_step = 1
    assert trainer._closing_eval_estimate(state) == pytest.approx(500 / (3 * 1 / 0.2))
    trainer._tokens_per_step = 0  # no step measured yet
    assert trainer._closing_eval_estimate(state) == 0.0
    trainer._valid_tokens, trainer._tokens_per_step = 10**9, 32
    trainer._recent_step_seconds = [0.2, 0.1]  # too few steps to trust: nothing kept back yet
    assert trainer._closing_eval_estimate(state) == 0.0
    trainer._eval_seconds = 4.5  # a pass has run: its duration is the estimate
    assert trainer._closing_eval_estimate(state) == 4.5
    trainer._eval_seconds = 400.0
    assert trainer._closing_eval_estimate(state) == 300.0
    without_minutes = Trainer(model.train_config, Budget(tokens=400), progress=False)
    without_minutes._eval_seconds = 4.5
    assert without_minutes._closing_eval_estimate(state) == 0.0
    state.tokens = 50
    assert without_minutes._fraction_done(state, 100) == 0.125  # of the token budget
    assert Trainer(model.train_config, Budget(epochs=2), progress=False)._fraction_done(state, 100) == 0.25
    state.tokens = 500  # past the budget (the last step is cut to it): never more than all of it
    assert without_minutes._fraction_done(state, 100) == 1.0


# ------------------------------------------------------------------------------------------------ the CLI
@pytest.fixture
def project(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    for name, n in (("train.txt", 300), ("valid.txt", 30), ("test.txt", 30)):
        lines = [" ".join(words[j] for j in rng.integers(0, 40, 8)) for _ in range(n)]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    config = tmp_path / "exp.toml"
    config.write_text(
        """
name = "tiny"
[corpus]
train = "train.txt"
valid = "valid.txt"
test = "test.txt"
[budget]
tokens = 3000
[[model]]
name = "kn3"
family = "ngram"
order = 3
smoothing = "modified-kneser-ney"
[[model]]
name = "lstm"
family = "lstm"
emb_size = 16
hidden_size = 16
layers = 1
batch_size = 4
seq_len = 8
"""
    )
    return tmp_path, config


def test_dry_run_prints_the_plan_and_writes_nothing(project):
    root, config = project
    result = _cli(["run", str(config), "--dry-run"], root)
    assert result.exit_code == 0, result.output
    for column in ("parameters", "tokens", "steps", "epochs", "train FLOPs", "precision", "est. time"):
        assert column in result.output
    lstm_row = next(line for line in result.output.splitlines() if line.startswith("lstm"))
    assert "3,000" in lstm_row and "e+" in lstm_row  # the token budget and its FLOPs
    assert "estimated total" in result.output
    assert not (root / "runs").exists() and not (root / "reports").exists()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace("seq_len = 8", 'seq_len = 8\nprecision = "float16"'), "precision: float16"),
        (
            lambda t: t.replace("seq_len = 8", 'seq_len = 8\noptimizer = "sgd"\nbetas = [0.9, 0.99]'),
            "betas: an AdamW setting",
        ),
        (lambda t: t.replace("seq_len = 8", "seq_len = 8\nlr_decay = 0.5"), "lr_decay"),
        (lambda t: t.replace("tokens = 3000", "epochs = 2"), "train.txt: training data is empty"),
    ],
)
@pytest.mark.parametrize("dry_run", [False, True])
def test_bad_training_settings_exit_2_before_training(project, edit, message, dry_run):
    root, config = project
    config.write_text(edit(config.read_text()))
    if "training data is empty" in message:
        (root / "train.txt").write_text("\n\n")  # lines, but not a single token: an epoch is empty
    result = _cli(["run", str(config), *(["--dry-run"] if dry_run else [])], root)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert not (root / "runs").exists() and not (root / "reports").exists()


@pytest.mark.slow
def test_the_pytorch_example_recipe_plans_on_wikitext2():
    from .conftest import require_shared

    corpora = require_shared("corpora")
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(EXAMPLES / "recipes" / "pytorch-example-lstm.toml"),
            "--dry-run",
            "--data-dir",
            str(corpora),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("lstm"))
    assert "40.00" in row and "float32" in row  # 40 epochs, as the example
    assert math.isfinite(float(row.split("e+")[0].split()[-1]))
