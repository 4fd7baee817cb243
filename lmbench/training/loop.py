"""The one training loop for every neural family.

A model hands the loop three things: its ``nn.Module``, a way to turn a batch into a summed loss (so the
loop never branches on the family), and a full-pass validation loss. The loop owns the rest: AdamW, warm-up
then cosine/plateau/constant learning rate, gradient clipping, the budget (epochs, tokens or wall-clock
minutes, whichever ends first), early stopping that keeps the best weights, a learning curve, checkpoints at
intervals and on SIGINT/SIGTERM, and exact resumption (model, optimiser, RNG, data position, carried state).
"""

from __future__ import annotations

import copy
import logging
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import nn

from lmbench import checksums
from lmbench.checksums import recorded_path
from lmbench.errors import ConfigError, DataError, TrainingDiverged, first_line
from lmbench.io import load_tensors
from lmbench.training import distributed
from lmbench.training.budget import Budget
from lmbench.training.precision import Precision, PrecisionName, resolve_precision

log = logging.getLogger(__name__)

# Called with each learning-curve point of a validation pass during training (not the closing pass); it may
# raise to stop training (a search prunes a hopeless trial this way). Absent, training is unchanged.
_VALIDATION_HOOK: ContextVar[Callable[[dict[str, float]], None] | None] = ContextVar(
    "lmbench_validation_hook", default=None
)


# The name the off-terminal progress lines start with (the experiment sets it to the run's label).
_PROGRESS_LABEL: ContextVar[str] = ContextVar("lmbench_progress_label", default="training")
STATUS_SECONDS = 30.0  # off a terminal: one progress line this often
CURVE_POINTS = 20  # the default eval_every aims at about this many learning-curve points


@contextmanager
def progress_label(label: str) -> Iterator[None]:
    """Start the off-terminal progress lines of the Trainers created inside this block with ``label``."""
    token = _PROGRESS_LABEL.set(label)
    try:
        yield
    finally:
        _PROGRESS_LABEL.reset(token)


@contextmanager
def on_validation(hook: Callable[[dict[str, float]], None]) -> Iterator[None]:
    """Call ``hook(point)`` after every validation pass of the Trainers created inside this block."""
    token = _VALIDATION_HOOK.set(hook)
    try:
        yield
    finally:
        _VALIDATION_HOOK.reset(token)


Schedule = Literal["cosine", "plateau", "constant", "step"]
Optimizer = Literal["adamw", "sgd"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)


# a validation loss above log(float max) ~ 709.8 nats a token has no representable perplexity; no model that
# learns comes near it (a uniform guess over a million words costs 13.8), so reaching it is divergence
OVERFLOW_LOSS = math.log(sys.float_info.max)


@dataclass
class TrainConfig:
    """Optimisation settings shared by every neural family (all appear in the model's config).

    Settings that belong to one optimiser or one schedule are ``None`` until resolved: AdamW's ``betas`` and
    SGD's ``momentum``/``nesterov``; ``plateau_factor`` for ``schedule = "plateau"``; ``lr_decay`` and
    ``decay_after`` for ``schedule = "step"``. Setting one for another optimiser or schedule is an error, so
    a recipe cannot silently carry a key that does nothing.
    """

    lr: float = 3e-3
    optimizer: Optimizer = "adamw"  # AdamW, or SGD (momentum, nesterov) as in the recipes of the papers
    weight_decay: float | None = None  # AdamW: decoupled decay, default 0.01; SGD: L2 penalty, default 0
    betas: list[float] | None = None  # AdamW only, default [0.9, 0.999]
    momentum: float | None = None  # SGD only, default 0
    nesterov: bool | None = None  # SGD only, default false
    batch_size: int = 32
    seq_len: int = 64  # BPTT length (recurrent) / training window (Transformer)
    warmup_steps: int = 100
    schedule: Schedule = "cosine"  # the learning rate after warm-up: cosine, plateau, constant or step decay
    min_lr_ratio: float = 0.1
    plateau_factor: float | None = (
        None  # plateau: lr *= factor after a pass without improvement (default 1/4)
    )
    lr_decay: float | None = None  # step: lr *= lr_decay every epoch after decay_after (default 0.5)
    decay_after: int | None = None  # step: epochs at the full rate (default 4; Zaremba et al. 2014)
    clip: float = 1.0
    init_range: float | None = (
        None  # uniform(-r, r) for every parameter (the papers' init); None: the family's
    )
    precision: PrecisionName = "auto"  # see lmbench.training.precision
    epochs: float = 3.0  # used when no budget is given
    eval_every: int | None = None  # steps between validation passes (0: once per epoch; None: ~20 per run)
    patience: int = 3  # validation passes without improvement before stopping (0: never stop early)
    checkpoint_seconds: float = 120.0
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        positive = ("lr", "batch_size", "seq_len", "epochs", "checkpoint_seconds")
        for key in positive:
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}: expected a positive number, got {getattr(self, key)!r}")
        for key in ("warmup_steps", "clip", "patience", "seed"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: expected a number >= 0, got {getattr(self, key)!r}")
        for key in ("weight_decay", "eval_every", "momentum", "decay_after"):
            if getattr(self, key) is not None and getattr(self, key) < 0:
                raise ConfigError(f"{key}: expected a number >= 0, got {getattr(self, key)!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"min_lr_ratio: expected a number in [0, 1], got {self.min_lr_ratio!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device: expected auto, cpu, cuda[:N] or mps, got {self.device!r}")
        if self.init_range is not None and not self.init_range > 0:
            raise ConfigError(f"init_range: expected a positive number, got {self.init_range!r}")
        self._resolve_optimizer()
        self._resolve_schedule()
        from lmbench.training.precision import precision_problem

        problem = precision_problem(self.precision, pick_device(self.device))
        if problem:
            raise ConfigError(f"precision: {problem}")

    def _resolve_optimizer(self) -> None:
        """Fill the chosen optimiser's defaults; refuse the other optimiser's settings by name."""
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.optimizer == "sgd":
            if self.betas is not None:
                raise ConfigError(
                    "betas: an AdamW setting, but optimizer = 'sgd' (SGD takes lr, momentum, nesterov, weight_decay)"
                )
            self.momentum = 0.0 if self.momentum is None else self.momentum
            self.nesterov = False if self.nesterov is None else self.nesterov
            self.weight_decay = 0.0 if self.weight_decay is None else self.weight_decay
            if self.nesterov and not self.momentum > 0:
                raise ConfigError("nesterov: needs momentum > 0 (Nesterov momentum with none is plain SGD)")
            return
        for key in ("momentum", "nesterov"):
            if getattr(self, key) is not None:
                raise ConfigError(
                    f"{key}: an SGD setting, but optimizer = 'adamw' (set optimizer = 'sgd' to use it)"
                )
        self.weight_decay = 0.01 if self.weight_decay is None else self.weight_decay
        self.betas = [0.9, 0.999] if self.betas is None else list(self.betas)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas: expected two numbers in [0, 1), got {self.betas!r}")

    def _resolve_schedule(self) -> None:
        """Fill the chosen schedule's defaults; refuse another schedule's settings by name."""
        owners = {"plateau_factor": "plateau", "lr_decay": "step", "decay_after": "step"}
        for key, schedule in owners.items():
            if getattr(self, key) is not None and self.schedule != schedule:
                raise ConfigError(
                    f"{key}: a setting of schedule = '{schedule}', but schedule = '{self.schedule}'"
                )
        if self.schedule == "plateau":
            self.plateau_factor = 0.25 if self.plateau_factor is None else self.plateau_factor
            if not 0 < self.plateau_factor < 1:
                raise ConfigError(f"plateau_factor: expected a number in (0, 1), got {self.plateau_factor!r}")
        if self.schedule == "step":
            self.lr_decay = 0.5 if self.lr_decay is None else self.lr_decay
            self.decay_after = 4 if self.decay_after is None else self.decay_after
            if not 0 < self.lr_decay <= 1:
                raise ConfigError(f"lr_decay: expected a number in (0, 1], got {self.lr_decay!r}")


def pick_device(name: str) -> torch.device:
    """auto: CUDA, then Apple MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


@dataclass
class Batch:
    inputs: torch.Tensor  # (B, T) int64
    targets: torch.Tensor  # (B, T) int64
    mask: torch.Tensor  # (B, T) bool: which targets count (never <s>)
    position: int  # index of this batch within its epoch (for resuming)


def stream_batches(
    sequence: np.ndarray, batch_size: int, seq_len: int, *, epoch: int, seed: int, bos_id: int
) -> Iterator[Batch]:
    """The split as ``batch_size`` parallel streams cut into windows of ``seq_len`` (word_language_model's
    batchify), from an epoch-dependent random offset so window boundaries move between epochs."""
    offset = int(np.random.default_rng([seed, epoch]).integers(0, seq_len))
    if offset >= len(sequence) - 1:  # a split shorter than the offset: no (input, target) pair would be left
        offset = 0
    seq = torch.from_numpy(np.ascontiguousarray(sequence[offset:], dtype=np.int64))
    rows = max((len(seq) - 1) // batch_size, 1)
    batch_size = min(batch_size, max((len(seq) - 1) // rows, 1))
    data = seq[: rows * batch_size + 1]
    inputs = data[:-1][: rows * batch_size].view(batch_size, rows)  # (B, rows)
    targets = data[1:][: rows * batch_size].view(batch_size, rows)
    for position, start in enumerate(range(0, rows, seq_len)):
        x = inputs[:, start : start + seq_len]
        y = targets[:, start : start + seq_len]
        yield Batch(x, y, y != bos_id, position)


@dataclass
class TrainState:
    """Everything needed to resume exactly where training stopped."""

    step: int = 0
    epoch: int = 0
    position: int = 0  # batches of the current epoch already done
    tokens: int = 0
    seconds: float = 0.0
    best_loss: float = math.inf
    bad_evals: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)
    train_loss_sum: float = 0.0
    train_loss_tokens: int = 0


@dataclass(frozen=True)
class EvalSchedule:
    """When validation passes run: every ``every`` steps, tokens or seconds, or once per epoch."""

    kind: str  # steps | tokens | seconds | epoch
    every: float

    def passes(self, steps: int | None, tokens: int | None, epochs: float | None) -> int | None:
        """How many passes a run of that length makes (the closing one included); None where unknown."""
        if self.kind == "steps" and steps is not None:
            return int(steps // self.every) + 1
        if self.kind == "tokens" and tokens is not None:
            return int(tokens // self.every) + 1
        if self.kind == "epoch" and epochs is not None:
            return math.ceil(epochs) + 1
        return CURVE_POINTS if self.kind == "seconds" else None


@dataclass
class _Run:
    """What one call of :meth:`Trainer.fit` works on, passed between its steps."""

    module: nn.Module
    trained: nn.Module  # the module, or its DistributedDataParallel wrapper
    batches: Callable[[int], Iterator[Batch]]
    loss_fn: Callable[[nn.Module, Batch, Any], tuple[torch.Tensor, int, Any]]
    valid_loss: Callable[[nn.Module], float] | None
    initial_carry: Callable[[], Any]
    epoch_tokens: int
    device: torch.device
    optimizer: torch.optim.Optimizer
    groups: list[dict[str, Any]]
    state: TrainState = field(default_factory=TrainState)
    best: dict | None = None  # the best weights so far (by validation loss)
    plateau_scale: float = 1.0
    carry: Any = None
    bar: Any = None
    clock: float = 0.0  # perf_counter() at which the run (with its earlier, resumed time) started
    last_checkpoint: float = 0.0
    last_status: float = 0.0  # perf_counter() of the last off-terminal progress line
    last_eval_seconds: float = 0.0  # state.seconds at the last validation pass (time-based eval_every)
    evals: EvalSchedule = field(default_factory=lambda: EvalSchedule("epoch", 0))
    planned_tokens: int | None = None  # the budget in tokens, where it is known before training
    precision: Precision | None = None
    scaler: Any = None  # float16's gradient scaler
    step_seconds: list[float] = field(default_factory=list)  # recent steps' durations (minutes budgets)


class Trainer:
    """Runs :class:`TrainConfig` + :class:`Budget` over a model's batches; model-agnostic."""

    def __init__(
        self,
        config: TrainConfig,
        budget: Budget | None = None,
        run_dir: str | Path | None = None,
        *,
        progress: bool | None = None,
        identity: dict[str, Any] | None = None,
    ):
        self.config = config
        # one meaning of "no budget": an empty Budget() is no budget, and both mean the config's epochs
        self.budget = budget if budget is not None and not budget.unlimited else Budget(epochs=config.epochs)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.identity = identity  # what the checkpoint must have been written for, to be resumed
        self.notes: list[str] = []  # one-line notes for the user (e.g. why a checkpoint was not resumed)
        self._eval_seconds: float | None = None  # duration of the last validation pass
        self._recent_step_seconds: list[float] = []  # the last few steps' durations (first two left out)
        self._tokens_per_step = 0.0
        self._epoch_tokens = 1  # set by fit(): the schedule's epoch length in tokens
        self._valid_tokens = 0
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.status_seconds = STATUS_SECONDS  # off a terminal, a progress line this often (0: none)
        self.label = _PROGRESS_LABEL.get()
        self.precision: Precision | None = None  # resolved in fit()
        self._stop_signal: int | None = None
        self.stop_after_steps: int | None = None  # for tests: simulate an interruption
        self.on_validation = _VALIDATION_HOOK.get()  # see on_validation()

    # ------------------------------------------------------------------------------ schedule
    def _fraction_done(self, state: TrainState, epoch_tokens: int) -> float:
        b = self.budget
        fractions = [0.0]
        if b.epochs:
            fractions.append(state.tokens / (b.epochs * epoch_tokens))
        if b.tokens:
            fractions.append(state.tokens / b.tokens)
        if b.minutes:
            # a minutes budget bounds the whole fit: keep back the closing validation pass's time
            fractions.append((state.seconds + self._closing_eval_estimate(state)) / (60.0 * b.minutes))
        return min(max(fractions), 1.0)

    def _within_budget(
        self, batch: Batch, state: TrainState, device: torch.device, epoch_tokens: int
    ) -> Batch | None:
        """``batch`` cut to its first columns so that a token or epoch budget is never exceeded (a budget of N
        tokens trains at most N, fewer by less than one column); None when not one column fits."""
        b, caps = self.budget, []
        if b.tokens:
            caps.append(b.tokens)
        if b.epochs:
            caps.append(math.floor(b.epochs * epoch_tokens))
        left = min(caps) - state.tokens if caps else None
        if left is None or left >= batch.mask.numel() * distributed.world_size():
            return batch
        per_column = batch.mask.sum(dim=0).to(device=device, dtype=torch.float64)  # (T,)
        if distributed.world_size() > 1:  # the ranks hold rows of one global batch: count them all
            torch.distributed.all_reduce(per_column)
        keep = int((per_column.cumsum(0) <= left).sum())
        if keep == 0:
            return None
        return Batch(batch.inputs[:, :keep], batch.targets[:, :keep], batch.mask[:, :keep], batch.position)

    def _closing_eval_estimate(self, state: TrainState) -> float:
        """Seconds the closing validation pass will take: the last pass's duration, or before any pass, the
        validation tokens at three times the training speed (a forward pass without gradients) measured over
        the recent steps. The first steps are slow (allocation, caches) and are not trusted: before a few steps
        nothing is reserved, and never more than half the budget, so a loaded machine still trains."""
        if not self.budget.minutes:
            return 0.0
        cap = 30.0 * self.budget.minutes
        if self._eval_seconds is not None:
            return min(self._eval_seconds, cap)
        times = self._recent_step_seconds
        if not self._valid_tokens or len(times) < 3 or self._tokens_per_step <= 0:
            return 0.0
        step = float(np.median(times))
        return min(self._valid_tokens / (3.0 * self._tokens_per_step / step), cap)

    def _lr(self, state: TrainState, epoch_tokens: int, plateau_scale: float) -> float:
        c = self.config
        if state.step < c.warmup_steps:
            return c.lr * (state.step + 1) / c.warmup_steps
        if c.schedule == "cosine":
            done = self._fraction_done(state, epoch_tokens)
            return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * done)))
        if c.schedule == "plateau":
            return c.lr * plateau_scale
        if (
            c.schedule == "step"
        ):  # Zaremba et al. (2014): full rate for decay_after epochs, then x lr_decay each
            return c.lr * c.lr_decay ** max(0, state.epoch + 1 - c.decay_after)
        return c.lr

    # ------------------------------------------------------------------------------ checkpoints
    def _checkpoint_path(self) -> Path | None:
        return self.run_dir / "checkpoint.pt" if self.run_dir else None

    def _save(
        self,
        module: nn.Module,
        optimizer,
        state: TrainState,
        best: dict | None,
        carry: Any,
        plateau_scale: float,
    ) -> None:
        path = self._checkpoint_path()
        if path is None or not distributed.is_main():
            return
        payload = {
            "model": module.state_dict(),
            "optimizer": optimizer.state_dict(),
            "state": asdict(state),
            "best": best,
            "carry": carry,
            "torch_rng": torch.get_rng_state(),
            "plateau_scale": plateau_scale,
            "identity": _canonical(self.identity),
        }
        with recorded_path(path) as tmp:  # its sha256 recorded beside it, verified before a resume
            torch.save(payload, tmp)

    def _load(self) -> dict | None:
        """The checkpoint to resume from, or ``None`` (with a note) when it is unreadable or was written for
        other settings, data or budget: a stale checkpoint is never resumed."""
        path = self._checkpoint_path()
        if path is None or not path.exists():
            return None
        try:
            checksums.verify(path)
            payload = load_tensors(path, "lmbench training checkpoint")
            if not isinstance(payload, dict) or not {"model", "optimizer", "state"} <= set(payload):
                raise DataError(f"{path}: not an lmbench training checkpoint")
            checksums.check_finite_tensors(  # a NaN weight would only ever resume into "diverged"
                {k: payload.get(k) for k in ("model", "optimizer", "best", "carry")}, path
            )
        except DataError as e:  # damaged, truncated, empty or foreign bytes: start fresh, never unpickle
            self.notes.append(f"unreadable checkpoint: {e}; training from the start")
            return None
        saved = payload.get("identity")
        if self.identity is not None and saved != _canonical(self.identity):
            self.notes.append(f"{path}: written for other settings or data; training from the start")
            return None
        return payload

    # ------------------------------------------------------------------------------ signals
    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002
        self._stop_signal = signum

    # ------------------------------------------------------------------------------ the loop
    def fit(
        self,
        module: nn.Module,
        batches: Callable[[int], Iterator[Batch]],
        loss_fn: Callable[[nn.Module, Batch, Any], tuple[torch.Tensor, int, Any]],
        valid_loss: Callable[[nn.Module], float] | None,
        *,
        epoch_tokens: int,
        device: torch.device,
        initial_carry: Callable[[], Any] = lambda: None,
        valid_tokens: int = 0,
    ) -> TrainState:
        """Train ``module`` in place; on return it holds the best weights seen (by validation loss).

        ``batches(epoch)`` yields the epoch's batches; ``loss_fn(module, batch, carry)`` returns the summed
        loss, the number of target tokens and the state carried to the next batch (RNN hidden state).
        """
        self._valid_tokens = valid_tokens
        self._epoch_tokens = epoch_tokens
        torch.manual_seed(self.config.seed)
        module.to(device)
        trained, batches = self._distribute(module, batches, device)
        run = self.start_run(module, batches, loss_fn, device=device, trained=trained, valid_loss=valid_loss,
                             initial_carry=initial_carry, epoch_tokens=epoch_tokens)  # fmt: skip
        log.info("%s: %s", self.label, self.precision.describe())
        run.planned_tokens = self.planned_tokens(epoch_tokens)
        run.evals = self.eval_schedule(run.planned_tokens)
        self._resume(run)
        with self._signals_caught(), self._progress_bar(run.planned_tokens) as bar:
            run.bar = bar
            run.clock = time.perf_counter() - run.state.seconds  # resumed runs count their earlier time
            run.last_checkpoint = run.last_status = time.perf_counter()
            if bar is not None and run.state.tokens:
                bar.update(run.state.tokens)
            while not self._train_epoch(run):
                pass
            self._finish(run)
        return run.state

    def start_run(
        self,
        module: nn.Module,
        batches: Callable[[int], Iterator[Batch]],
        loss_fn: Callable[[nn.Module, Batch, Any], tuple[torch.Tensor, int, Any]],
        *,
        device: torch.device,
        trained: nn.Module | None = None,
        valid_loss: Callable[[nn.Module], float] | None = None,
        initial_carry: Callable[[], Any] = lambda: None,
        epoch_tokens: int = 1,
    ) -> _Run:
        """A fresh run of ``module``: the precision resolved for ``device``, its optimiser, and float16's gradient
        scaler; what :meth:`fit`, :meth:`measure_step_seconds` and benchmarks step through :meth:`_step`."""
        self.precision = resolve_precision(self.config.precision, device)
        optimizer, groups = self._optimizer(module)
        run = _Run(module, trained if trained is not None else module, batches, loss_fn, valid_loss,
                   initial_carry, epoch_tokens, device, optimizer, groups, carry=initial_carry(),
                   precision=self.precision)  # fmt: skip
        if self.precision.scaled:
            run.scaler = torch.amp.GradScaler(device.type)
        return run

    def measure_step_seconds(
        self,
        module: nn.Module,
        batches: Callable[[int], Iterator[Batch]],
        loss_fn: Callable[[nn.Module, Batch, Any], tuple[torch.Tensor, int, Any]],
        *,
        device: torch.device,
        initial_carry: Callable[[], Any] = lambda: None,
        steps: int = 6,
    ) -> tuple[float, int]:
        """Median seconds of a real optimisation step (precision, optimiser and clipping as configured) and the
        target tokens per step, over ``steps`` steps after two warm-up steps; ``module`` is trained by them,
        so pass a throw-away copy. What ``lmbench run --dry-run`` estimates training time from."""
        module.to(device)
        run = self.start_run(module, batches, loss_fn, device=device, initial_carry=initial_carry)
        run.clock = time.perf_counter()
        durations, tokens = [], []
        module.train()
        for i, batch in enumerate(batches(0)):
            if i >= steps + 2:
                break
            started = time.perf_counter()
            n = self._step(run, batch)
            if i >= 2 and n:
                durations.append(time.perf_counter() - started)
                tokens.append(n)
        if not durations:
            raise DataError("too little training data to time a step")
        return float(np.median(durations)), int(np.median(tokens))

    def planned_tokens(self, epoch_tokens: int) -> int | None:
        """Training tokens the budget allows, where known before training (a minutes-only budget is not)."""
        limits = []
        if self.budget.tokens:
            limits.append(self.budget.tokens)
        if self.budget.epochs:
            limits.append(int(math.ceil(self.budget.epochs * epoch_tokens)))
        return min(limits) if limits else None

    def eval_schedule(self, planned_tokens: int | None) -> EvalSchedule:
        """When validation passes run: every ``eval_every`` steps as configured (0: once per epoch), or by
        default :data:`CURVE_POINTS` passes spread evenly over the budget (its tokens, or its minutes)."""
        c = self.config
        if c.eval_every is not None:
            return EvalSchedule("steps", c.eval_every) if c.eval_every else EvalSchedule("epoch", 0)
        if planned_tokens is None:
            return EvalSchedule("seconds", 60.0 * (self.budget.minutes or 0) / CURVE_POINTS)
        return EvalSchedule("tokens", planned_tokens / CURVE_POINTS)

    def _eval_due(self, run: _Run) -> bool:
        state, evals = run.state, run.evals
        if evals.kind == "steps":
            return state.step % evals.every == 0
        if evals.kind == "tokens":  # from the last curve point, so a resumed run keeps the same points
            last = state.curve[-1]["tokens"] if state.curve else 0
            return state.tokens - last >= evals.every * (1 - 1e-9)
        if evals.kind == "seconds":
            return state.seconds - run.last_eval_seconds >= evals.every
        return False

    def _distribute(
        self, module: nn.Module, batches: Callable[[int], Iterator[Batch]], device: torch.device
    ) -> tuple[nn.Module, Callable[[int], Iterator[Batch]]]:
        """Under ``torchrun``, the DDP wrapper to train through and each process's rows of every global batch
        (rows rank, rank + world, ...); in one process, the module and the batches unchanged."""
        world, rank = distributed.world_size(), distributed.rank()
        if world == 1:
            return module, batches
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None
        )

        def sharded(epoch: int) -> Iterator[Batch]:
            for b in batches(epoch):
                yield Batch(b.inputs[rank::world], b.targets[rank::world], b.mask[rank::world], b.position)

        return wrapped, sharded

    def _optimizer(self, module: nn.Module) -> tuple[torch.optim.Optimizer, list[dict[str, Any]]]:
        """AdamW or SGD, with weight decay on weight matrices only (not on biases, norms or embeddings)."""
        c = self.config
        decay = [p for n, p in module.named_parameters() if p.dim() >= 2 and "emb" not in n]
        no_decay = [p for n, p in module.named_parameters() if p.dim() < 2 or "emb" in n]
        groups = [
            {"params": decay, "weight_decay": c.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if c.optimizer == "sgd":
            kwargs = {"lr": c.lr, "momentum": c.momentum, "nesterov": c.nesterov}
            return torch.optim.SGD(groups, **kwargs, foreach=True), groups
        try:
            return torch.optim.AdamW(groups, lr=c.lr, betas=tuple(c.betas), fused=True), groups
        except (RuntimeError, TypeError):
            return torch.optim.AdamW(groups, lr=c.lr, betas=tuple(c.betas), foreach=True), groups

    def _resume(self, run: _Run) -> None:
        """Continue from the run folder's checkpoint when it fits this model and identity; otherwise (with a
        note) start fresh, exactly as if there had been no checkpoint."""
        resumed = self._load()
        if resumed is None:
            return
        fresh_model = copy.deepcopy(run.module.state_dict())
        try:
            run.module.load_state_dict(resumed["model"])
            run.optimizer.load_state_dict(resumed["optimizer"])
            run.state = TrainState(**resumed["state"])
            run.best, run.carry = resumed["best"], resumed["carry"]
            torch.set_rng_state(resumed["torch_rng"])
            run.plateau_scale = resumed["plateau_scale"]
            log.info("resumed from %s at step %d", self._checkpoint_path(), run.state.step)
        except Exception as e:  # shapes or fields that do not fit this model: start fresh
            self.notes.append(
                f"{self._checkpoint_path()}: does not fit this model ({first_line(e, with_type=True)}); training from the start"
            )
            run.module.load_state_dict(fresh_model)
            # built as fit() builds it: rebuilding from .defaults passed keys AdamW's __init__ rejects
            run.optimizer, run.groups = self._optimizer(run.module)
            run.state, run.best, run.plateau_scale, run.carry = TrainState(), None, 1.0, run.initial_carry()
            torch.manual_seed(self.config.seed)

    @contextmanager
    def _signals_caught(self) -> Iterator[None]:
        """SIGINT/SIGTERM set a flag (the loop checkpoints, then stops) instead of killing mid-step."""
        if not _in_main_thread():  # signal handlers can only be installed from the main thread
            yield
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in previous:
            signal.signal(s, self._on_signal)
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    @contextmanager
    def _progress_bar(self, total: int | None) -> Iterator[Any]:
        """A tqdm bar on a terminal (tokens; the planned total where the budget gives one), else ``None``."""
        if not self.progress:
            yield None
            return
        from tqdm import tqdm

        bar = tqdm(total=total, desc=self.label, unit="tok", unit_scale=True, leave=False)
        try:
            yield bar
        finally:
            bar.close()

    def _train_epoch(self, run: _Run) -> bool:
        """Train on the rest of the current epoch; True when training is over (budget spent or early stop)."""
        state = run.state
        run.module.train()
        for batch in run.batches(state.epoch):
            if batch.position < state.position:
                continue  # resuming inside an epoch: skip what was already trained on
            if self._fraction_done(state, run.epoch_tokens) >= 1.0:
                return True  # e.g. resumed from a checkpoint written at the end of the budget
            batch = self._within_budget(batch, state, run.device, run.epoch_tokens)
            if batch is None:
                return True  # not one more column fits the token budget
            if not self._step(run, batch):
                continue  # no target to learn from in this batch
            stop = False
            if self._eval_due(run):
                stop = self._validate(run)
            out_of_budget = self._fraction_done(state, run.epoch_tokens) >= 1.0
            self._report_status(run)
            self._checkpoint_or_interrupt(run)
            if stop or out_of_budget:
                return True
        state.epoch += 1
        state.position = 0
        run.carry = run.initial_carry()
        stop = self._validate(run) if run.evals.kind == "epoch" else False
        return stop or self._fraction_done(state, run.epoch_tokens) >= 1.0

    def _report_status(self, run: _Run) -> None:
        """Off a terminal, one line every ``status_seconds``: tokens, speed, loss, last validation, ETA."""
        now = time.perf_counter()
        if run.bar is not None or not self.status_seconds or now - run.last_status < self.status_seconds:
            return
        run.last_status = now
        state = run.state
        speed = state.tokens / state.seconds if state.seconds > 0 else 0.0
        if state.train_loss_tokens:  # the training loss since the last validation pass (or that pass's)
            loss = state.train_loss_sum / state.train_loss_tokens
        else:
            loss = state.curve[-1]["train_loss"] if state.curve else float("nan")
        valid = next((p["valid_perplexity"] for p in reversed(state.curve) if "valid_perplexity" in p), None)
        done = self._fraction_done(state, run.epoch_tokens)
        eta = state.seconds * (1 - done) / done if done > 0 else float("nan")
        total = f"/{run.planned_tokens:,}" if run.planned_tokens else ""
        parts = [
            f"{self.label}: {state.tokens:,}{total} tokens ({100 * done:.0f}%)",
            f"{speed:,.0f} tok/s",
            f"loss {loss:.3f}",
            f"valid ppl {valid:.1f}" if valid is not None else "valid ppl -",
            f"ETA {_minutes(eta)}",
        ]
        print(", ".join(parts), file=sys.stderr, flush=True)

    def _step(self, run: _Run, batch: Batch) -> int:
        """One optimisation step on ``batch``; returns the target tokens over all processes (0: skipped)."""
        state = run.state
        lr = self._lr(state, run.epoch_tokens, run.plateau_scale)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        run.optimizer.zero_grad(set_to_none=True)
        started = time.perf_counter()
        # mixed precision: the network's matrix work in bf16/fp16; the output layer returns a float32 loss
        # (see lmbench.models.output) and the weights and optimiser state stay float32
        low = run.precision.dtype if run.precision is not None else None
        with torch.autocast(run.device.type, dtype=low or torch.bfloat16, enabled=low is not None):
            loss_sum, n_tokens, run.carry = run.loss_fn(run.trained, batch, run.carry)
        # normalise by the global token count: DDP averages gradients over processes, so this
        # gives exactly the gradient of (sum of losses / tokens) over the whole global batch
        global_tokens = int(distributed.all_reduce_sum(n_tokens, run.device))
        if global_tokens == 0:
            state.position = batch.position + 1
            return 0
        if not torch.isfinite(loss_sum.detach()).item():
            raise TrainingDiverged(
                f"training diverged at step {state.step + 1}: loss is {float(loss_sum.detach()):g}",
                state.step + 1,
            )
        self._backward_and_update(run, loss_sum, global_tokens)
        if state.step >= 2:  # the first steps allocate and warm caches: not their steady speed
            self._recent_step_seconds = [*self._recent_step_seconds[-19:], time.perf_counter() - started]
            self._tokens_per_step = global_tokens
        state.step += 1
        state.position = batch.position + 1
        state.tokens += global_tokens
        state.train_loss_sum += distributed.all_reduce_sum(float(loss_sum.detach()), run.device)
        state.train_loss_tokens += global_tokens
        state.seconds = time.perf_counter() - run.clock
        if run.bar is not None:
            self._show_progress(run, n_tokens, lr)
        return global_tokens

    def _backward_and_update(self, run: _Run, loss_sum: torch.Tensor, global_tokens: int) -> None:
        """Back-propagate the mean loss over the global batch and step the optimiser: gradients unscaled
        (float16), clipped to ``clip``; a non-finite gradient norm is :class:`TrainingDiverged`."""
        state = run.state
        loss = loss_sum.float() * distributed.world_size() / global_tokens
        (run.scaler.scale(loss) if run.scaler is not None else loss).backward()
        if run.scaler is not None:
            run.scaler.unscale_(run.optimizer)  # clip and check the true gradients, not the scaled ones
        if self.config.clip > 0:
            norm = nn.utils.clip_grad_norm_(run.module.parameters(), self.config.clip)
            # float16's scaler skips a step with an overflow and lowers its scale: that is not divergence
            if not torch.isfinite(norm).item() and run.scaler is None:
                raise TrainingDiverged(
                    f"training diverged at step {state.step + 1}: gradient norm is {float(norm):g}",
                    state.step + 1,
                )
        if run.scaler is not None:
            run.scaler.step(run.optimizer)
            run.scaler.update()
        else:
            run.optimizer.step()

    @staticmethod
    def _show_progress(run: _Run, n_tokens: int, lr: float) -> None:
        """Advance the progress bar and show the running training loss, the learning rate and the last
        validation perplexity."""
        state = run.state
        run.bar.update(n_tokens)
        valid = next((p["valid_perplexity"] for p in reversed(state.curve) if "valid_perplexity" in p), None)
        run.bar.set_postfix(
            loss=f"{state.train_loss_sum / state.train_loss_tokens:.3f}",
            lr=f"{lr:.2e}",
            valid_ppl="-" if valid is None else f"{valid:.1f}",
        )

    def _checkpoint_or_interrupt(self, run: _Run) -> None:
        """Checkpoint every ``checkpoint_seconds`` and on a signal (or a test's ``stop_after_steps``); after a
        signal, stop with KeyboardInterrupt: running again resumes from that checkpoint."""
        interrupted = self._stop_signal is not None or (
            self.stop_after_steps is not None and run.state.step >= self.stop_after_steps
        )
        if interrupted or time.perf_counter() - run.last_checkpoint > self.config.checkpoint_seconds:
            self._save(run.module, run.optimizer, run.state, run.best, run.carry, run.plateau_scale)
            run.last_checkpoint = time.perf_counter()
        if interrupted:
            raise KeyboardInterrupt(f"training interrupted at step {run.state.step}; resume by running again")

    def _validate(self, run: _Run, *, closing: bool = False) -> bool:
        """A validation pass over ``run``; True when early stopping says stop."""
        run.last_eval_seconds = run.state.seconds
        run.best, run.plateau_scale, stop = self._evaluate(
            run.module, run.valid_loss, run.state, run.best, run.plateau_scale, closing=closing
        )
        return stop

    def _finish(self, run: _Run) -> None:
        """The closing validation pass (unless the last one was at this very point: a resumed, finished run),
        the best weights back into the module, and the final checkpoint."""
        state = run.state
        if not state.curve or state.curve[-1]["tokens"] != state.tokens:
            self._validate(run, closing=True)
        if run.best is not None:
            run.module.load_state_dict(run.best)
        state.seconds = time.perf_counter() - run.clock
        self._save(run.module, run.optimizer, state, run.best, None, run.plateau_scale)

    def _evaluate(
        self, module, valid_loss, state: TrainState, best, plateau_scale: float, *, closing: bool = False
    ):
        """Validation pass: learning-curve point, best-weights bookkeeping, plateau decay, early stop; then
        the validation hook, if any, sees the point (except the closing pass, which ends training anyway)."""
        train_loss = state.train_loss_sum / max(state.train_loss_tokens, 1)
        state.train_loss_sum, state.train_loss_tokens = 0.0, 0
        point = {
            "tokens": state.tokens,
            "step": state.step,
            "seconds": state.seconds,
            "train_loss": train_loss,
            "lr": self._lr(state, self._epoch_tokens, plateau_scale),
        }
        stop = False
        if valid_loss is not None:
            module.eval()
            started = time.perf_counter()
            with torch.no_grad():
                loss = float(valid_loss(module))
            self._eval_seconds = time.perf_counter() - started
            module.train()
            if not math.isfinite(loss) or loss > OVERFLOW_LOSS:
                overflow = (
                    f" nats a token (its perplexity e^{loss:.0f} overflows)" if math.isfinite(loss) else ""
                )
                raise TrainingDiverged(
                    f"training diverged by step {state.step}: validation loss is {loss:g}{overflow}",
                    state.step,
                )
            point["valid_loss"] = loss
            point["valid_perplexity"] = math.exp(min(loss, 700))
            if loss < state.best_loss - 1e-6:
                state.best_loss, state.bad_evals = loss, 0
                best = copy.deepcopy(module.state_dict())
            else:
                state.bad_evals += 1
                if self.config.schedule == "plateau":  # the PyTorch example's rule: lr /= 4
                    plateau_scale *= self.config.plateau_factor
                stop = self.config.patience > 0 and state.bad_evals >= self.config.patience
            log.info(
                "step %d: train loss %.4f, valid ppl %.2f", state.step, train_loss, point["valid_perplexity"]
            )
        state.curve.append(point)
        if self.on_validation is not None and not closing:
            self.on_validation(dict(point))
        return best, plateau_scale, stop


def _minutes(seconds: float) -> str:
    """``1h05m`` / ``12m30s`` / ``-`` for an ETA."""
    if not math.isfinite(seconds):
        return "-"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _canonical(identity: dict[str, Any] | None) -> str | None:
    """An identity as one JSON string (what a checkpoint stores and compares; weights_only loads strings)."""
    from lmbench.runs import canonical_json

    return None if identity is None else canonical_json(identity)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
