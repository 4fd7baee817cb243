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
from typing import Any

import numpy as np
import torch
from torch import nn

from lmbench import checksums
from lmbench.checksums import recorded_path
from lmbench.errors import ConfigError, DataError, TrainingDiverged, first_line
from lmbench.io import load_tensors
from lmbench.training import distributed
from lmbench.training.budget import Budget

log = logging.getLogger(__name__)

# Called with each learning-curve point of a validation pass during training (not the closing pass); it may
# raise to stop training (a search prunes a hopeless trial this way). Absent, training is unchanged.
_VALIDATION_HOOK: ContextVar[Callable[[dict[str, float]], None] | None] = ContextVar(
    "lmbench_validation_hook", default=None
)


@contextmanager
def on_validation(hook: Callable[[dict[str, float]], None]) -> Iterator[None]:
    """Call ``hook(point)`` after every validation pass of the Trainers created inside this block."""
    token = _VALIDATION_HOOK.set(hook)
    try:
        yield
    finally:
        _VALIDATION_HOOK.reset(token)


@dataclass
class TrainConfig:
    """Optimisation settings shared by every neural family (all appear in the model's config)."""

    lr: float = 3e-3
    weight_decay: float = 0.01
    batch_size: int = 32
    seq_len: int = 64  # BPTT length (recurrent) / training window (Transformer)
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine | plateau | constant
    min_lr_ratio: float = 0.1
    clip: float = 1.0
    epochs: float = 3.0  # used when no budget is given
    eval_every: int = 0  # steps between validation passes (0: once per epoch)
    patience: int = 3  # validation passes without improvement before stopping (0: never stop early)
    checkpoint_seconds: float = 120.0
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        positive = ("lr", "batch_size", "seq_len", "epochs", "checkpoint_seconds")
        for key in positive:
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}: expected a positive number, got {getattr(self, key)!r}")
        for key in ("weight_decay", "warmup_steps", "clip", "eval_every", "patience", "seed"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: expected a number >= 0, got {getattr(self, key)!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"min_lr_ratio: expected a number in [0, 1], got {self.min_lr_ratio!r}")
        if self.schedule not in ("cosine", "plateau", "constant"):
            raise ConfigError(f"schedule: expected cosine, plateau or constant, got {self.schedule!r}")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device: expected auto, cpu, cuda[:N] or mps, got {self.device!r}")


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
        self._valid_tokens = 0
        self.progress = sys.stderr.isatty() if progress is None else progress
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

    def _closing_eval_estimate(self, state: TrainState) -> float:
        """Seconds the closing validation pass will take: the last pass's duration, or before any pass, the
        validation tokens at three times the training speed so far (a forward pass without gradients)."""
        if self._eval_seconds is not None:
            return self._eval_seconds
        if not self._valid_tokens or state.tokens == 0 or state.seconds <= 0:
            return 0.0
        return self._valid_tokens / (3.0 * state.tokens / state.seconds)

    def _lr(self, state: TrainState, epoch_tokens: int, plateau_scale: float) -> float:
        c = self.config
        if state.step < c.warmup_steps:
            return c.lr * (state.step + 1) / c.warmup_steps
        if c.schedule == "cosine":
            done = self._fraction_done(state, epoch_tokens)
            return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * done)))
        if c.schedule == "plateau":
            return c.lr * plateau_scale
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
            "train_config": asdict(self.config),
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
        torch.manual_seed(self.config.seed)
        module.to(device)
        trained, batches = self._distribute(module, batches, device)
        optimizer, groups = self._optimizer(module)
        run = _Run(module, trained, batches, loss_fn, valid_loss, initial_carry, epoch_tokens, device,
                   optimizer, groups, carry=initial_carry())  # fmt: skip
        self._resume(run)
        with self._signals_caught(), self._progress_bar() as bar:
            run.bar = bar
            run.clock = time.perf_counter() - run.state.seconds  # resumed runs count their earlier time
            run.last_checkpoint = time.perf_counter()
            while not self._train_epoch(run):
                pass
            self._finish(run)
        return run.state

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
        """AdamW with weight decay on weight matrices only (not on biases, norms or embeddings)."""
        c = self.config
        decay = [p for n, p in module.named_parameters() if p.dim() >= 2 and "emb" not in n]
        no_decay = [p for n, p in module.named_parameters() if p.dim() < 2 or "emb" in n]
        groups = [
            {"params": decay, "weight_decay": c.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        try:
            return torch.optim.AdamW(groups, lr=c.lr, fused=True), groups
        except (RuntimeError, TypeError):
            return torch.optim.AdamW(groups, lr=c.lr, foreach=True), groups

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
            run.optimizer = type(run.optimizer)(run.groups, **run.optimizer.defaults)
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
    def _progress_bar(self) -> Iterator[Any]:
        if not self.progress:
            yield None
            return
        from tqdm import tqdm

        bar = tqdm(total=None, unit="tok", unit_scale=True, leave=False)
        try:
            yield bar
        finally:
            bar.close()

    def _train_epoch(self, run: _Run) -> bool:
        """Train on the rest of the current epoch; True when training is over (budget spent or early stop)."""
        c, state = self.config, run.state
        run.module.train()
        for batch in run.batches(state.epoch):
            if batch.position < state.position:
                continue  # resuming inside an epoch: skip what was already trained on
            if self._fraction_done(state, run.epoch_tokens) >= 1.0:
                return True  # e.g. resumed from a checkpoint written at the end of the budget
            if not self._step(run, batch):
                continue  # no target to learn from in this batch
            stop = False
            if c.eval_every and state.step % c.eval_every == 0:
                stop = self._validate(run)
            out_of_budget = self._fraction_done(state, run.epoch_tokens) >= 1.0
            self._checkpoint_or_interrupt(run)
            if stop or out_of_budget:
                return True
        state.epoch += 1
        state.position = 0
        run.carry = run.initial_carry()
        stop = self._validate(run) if not c.eval_every else False
        return stop or self._fraction_done(state, run.epoch_tokens) >= 1.0

    def _step(self, run: _Run, batch: Batch) -> int:
        """One optimisation step on ``batch``; returns the target tokens over all processes (0: skipped)."""
        c, state = self.config, run.state
        lr = self._lr(state, run.epoch_tokens, run.plateau_scale)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        run.optimizer.zero_grad(set_to_none=True)
        # bf16 autocast only on CUDA: on a CPU bf16 matrix work is ~100x slower than fp32
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=run.device.type == "cuda"):
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
        (loss_sum * distributed.world_size() / global_tokens).backward()
        if c.clip > 0:
            norm = nn.utils.clip_grad_norm_(run.module.parameters(), c.clip)
            if not torch.isfinite(norm).item():
                raise TrainingDiverged(
                    f"training diverged at step {state.step + 1}: gradient norm is {float(norm):g}",
                    state.step + 1,
                )
        run.optimizer.step()
        state.step += 1
        state.position = batch.position + 1
        state.tokens += global_tokens
        state.train_loss_sum += distributed.all_reduce_sum(float(loss_sum.detach()), run.device)
        state.train_loss_tokens += global_tokens
        state.seconds = time.perf_counter() - run.clock
        if run.bar is not None:
            run.bar.update(n_tokens)
            run.bar.set_postfix(loss=f"{state.train_loss_sum / state.train_loss_tokens:.3f}", lr=f"{lr:.2e}")
        return global_tokens

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
        }
        stop = False
        if valid_loss is not None:
            module.eval()
            started = time.perf_counter()
            with torch.no_grad():
                loss = float(valid_loss(module))
            self._eval_seconds = time.perf_counter() - started
            module.train()
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"training diverged by step {state.step}: validation loss is {loss:g}", state.step
                )
            point["valid_loss"] = loss
            point["valid_perplexity"] = math.exp(min(loss, 700))
            if loss < state.best_loss - 1e-6:
                state.best_loss, state.bad_evals = loss, 0
                best = copy.deepcopy(module.state_dict())
            else:
                state.bad_evals += 1
                if self.config.schedule == "plateau":
                    plateau_scale *= 0.25
                stop = self.config.patience > 0 and state.bad_evals >= self.config.patience
            log.info(
                "step %d: train loss %.4f, valid ppl %.2f", state.step, train_loss, point["valid_perplexity"]
            )
        state.curve.append(point)
        if self.on_validation is not None and not closing:
            self.on_validation(dict(point))
        return best, plateau_scale, stop


def _canonical(identity: dict[str, Any] | None) -> str | None:
    """An identity as one JSON string (what a checkpoint stores and compares; weights_only loads strings)."""
    from lmbench.runs import canonical_json

    return None if identity is None else canonical_json(identity)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
