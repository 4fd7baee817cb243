"""What recurrent and Transformer language models share: the LanguageModel wrapper around an ``nn.Module``.

The module maps token ids to hidden states; an output layer (:mod:`lmbench.models.output`) maps hidden states
to log-probabilities over the vocabulary with ``<s>`` masked out (it is context only, never predicted).
Training sequences are the lines as ``<s> w.. </s>`` back to back; the loss skips positions whose target
is ``<s>``, so training and scoring predict exactly the protocol's tokens.

A neural back-end is one subclass of :class:`NeuralLM`: a ``NetConfig`` dataclass (its fields are the
network's settings) and the abstract hooks ``build_net``, ``batch_loss``, ``hidden_states`` and
``sequence_logprobs``; a class missing one cannot be instantiated. Fitting, sentence-mode scoring,
next-token distributions, features, saving and loading are written once here.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from lmbench.data.corpus import TokenStream
from lmbench.data.vocabulary import Vocabulary
from lmbench.errors import ConfigError, DataError
from lmbench.io import atomic_path, atomic_write_text, load_tensors
from lmbench.models.base import Budget, Context, LanguageModel, check_context
from lmbench.training.loop import Batch, TrainConfig, Trainer, pick_device, stream_batches
from lmbench.training.precision import Precision, resolve_precision

SENTENCE_BATCH = 64  # lines per forward pass when scoring in sentence mode


@dataclass(frozen=True)
class TrainingPlan:
    """What one neural fit will cost, before it runs (``lmbench run --dry-run``)."""

    parameters: int
    precision: str  # the resolved precision and why, in one line
    flops_per_token: float  # forward + backward
    tokens: int | None  # training tokens the budget allows (None: a minutes-only budget)
    steps: int | None
    epochs: float | None
    step_seconds: float  # median of a few timed steps on this machine
    tokens_per_step: int
    minutes: float | None  # the budget's wall-clock limit, if any
    validation_passes: int | None  # validation passes during training, the closing one included

    @property
    def train_flops(self) -> float | None:
        return None if self.tokens is None else self.flops_per_token * self.tokens

    @property
    def train_seconds(self) -> float:
        """Estimated training time here: the planned steps at the timed speed (capped by a minutes budget)."""
        seconds = math.inf if self.steps is None else self.steps * self.step_seconds
        return min(seconds, 60.0 * self.minutes) if self.minutes else seconds


def stream_digest(stream: TokenStream) -> str:
    """sha256 of a token stream's ids and line offsets: identifies the data a checkpoint was trained on."""
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(stream.ids, dtype=np.int32).tobytes())
    digest.update(np.ascontiguousarray(stream.offsets, dtype=np.int64).tobytes())
    digest.update(str(len(stream.vocab)).encode())
    return digest.hexdigest()


def write_curve(path: Path, curve: list[dict[str, float]]) -> None:
    """The learning curve (tokens seen, train loss, valid perplexity, wall time) as CSV beside the run."""
    import pandas as pd

    columns = ["tokens", "step", "seconds", "train_loss", "valid_loss", "valid_perplexity"]
    atomic_write_text(path, pd.DataFrame(curve, columns=columns).to_csv(index=False))


def stream_validation(model: LanguageModel, valid: TokenStream | None) -> Callable[[nn.Module], float] | None:
    """The Trainer's full-pass validation loss for ``model``: the mean negative log-probability of every
    predicted token of ``valid`` in stream mode (``None`` without validation tokens: nothing to stop on)."""
    if valid is None or valid.num_predicted == 0:
        return None

    def valid_loss(net: nn.Module) -> float:  # noqa: ARG001 - the model scores through its own network
        return float(-model.token_logprobs(valid, context="stream").mean())

    return valid_loss


class NeuralLM(LanguageModel):
    """Common wrapper: fit through the one Trainer, score with chunked output layers, save/load safely.

    A subclass sets ``backend`` and ``NetConfig`` (a dataclass with a ``vocab_size`` field; its other fields are
    the network's settings, the rest of ``**params`` are :class:`TrainConfig`'s) and implements the
    abstract hooks below. ``context_window`` (the longest context the network reads; ``None``: unbounded) and
    ``initial_carry`` have defaults.
    """

    NetConfig: ClassVar[type]
    net_fields: ClassVar[tuple[str, ...]]  # NetConfig's fields but vocab_size, derived at class creation

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        config = cls.__dict__.get("NetConfig")
        if config is None:
            return  # inherited (or an abstract intermediate class): checked where it is declared
        names = [f.name for f in dataclasses.fields(config)] if dataclasses.is_dataclass(config) else []
        if "vocab_size" not in names:
            raise TypeError(f"{cls.__name__}.NetConfig must be a dataclass with a vocab_size field")
        cls.net_fields = tuple(name for name in names if name != "vocab_size")

    @classmethod
    def settings_sources(cls) -> tuple[type, ...]:
        """The dataclasses whose fields are this family's settings (configs are checked against their types)."""
        return (cls.NetConfig, TrainConfig)

    def __init__(self, **params: Any):
        if not hasattr(type(self), "NetConfig"):
            raise TypeError(f"{type(self).__name__} declares no NetConfig dataclass")
        net_params = {k: params.pop(k) for k in list(params) if k in self.net_fields}
        train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = set(params) - train_fields
        if unknown:
            raise ConfigError(f"unknown key {sorted(unknown)[0]!r} for {type(self).__name__}")
        self.net_params = net_params
        self.train_params = params
        self.net_config = self.NetConfig(vocab_size=4, **net_params)  # validates now; resized in fit()
        self.train_config = TrainConfig(**params)

    # ---------------------------------------------------------------------------------------- the hooks
    @abc.abstractmethod
    def build_net(self) -> nn.Module:
        """The network for ``self.net_config`` (``vocab_size`` set) and ``self.vocab_``, with an ``output``
        attribute (an :class:`~lmbench.models.output.OutputLayer`)."""

    @abc.abstractmethod
    def batch_loss(self, net: nn.Module, batch: Batch, carry: Any) -> tuple[torch.Tensor, int, Any]:
        """Summed loss over ``batch``'s masked targets, their number, and the state carried to the next batch
        (``net`` may be the DDP wrapper of ``self.net_``: call it, do not reach into it)."""

    @abc.abstractmethod
    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) ids read from a fresh state -> (B, T, H) final hidden states, H = ``hidden_size``
        (contexts longer than ``context_window`` keep their last ``context_window`` ids)."""

    @abc.abstractmethod
    def sequence_logprobs(self, sequence: np.ndarray) -> np.ndarray:
        """log p of every position of one marked sequence of any length given what the network reads before
        it: float64 [n], entry 0 is 0. Stream mode, and sentence mode for lines longer than the window."""

    @property
    @abc.abstractmethod
    def hidden_size(self) -> int:
        """Width of the hidden states (and of :meth:`sentence_features`)."""

    @property
    def context_window(self) -> int | None:
        """The longest context the network reads in one pass (``None``: unbounded, a recurrent state)."""
        return None

    def initial_carry(self) -> Any:
        """The state carried into the first batch of each epoch (a recurrent state; ``None`` for none)."""
        return None

    # ---------------------------------------------------------------------------------------- settings
    @property
    def seed(self) -> int:
        return self.train_config.seed

    def get_params(self) -> dict[str, Any]:
        """Every network and training setting after defaults (``vocab_size`` comes from the data in fit)."""
        net = {k: v for k, v in dataclasses.asdict(self.net_config).items() if k != "vocab_size"}
        return {**net, **dataclasses.asdict(self.train_config)}

    def training_precision(self) -> Precision:
        """The precision this model trains in on this machine (``precision = "auto"`` resolved)."""
        return resolve_precision(self.train_config.precision, pick_device(self.train_config.device))

    def runtime_identity(self) -> dict[str, Any]:
        """What this machine decides about training that the settings do not: the resolved precision."""
        return {"precision": self.training_precision().name}

    def default_budget(self) -> Budget:
        return Budget(epochs=self.train_config.epochs)

    def train_flops_per_token(self) -> float | None:
        """Forward + backward arithmetic per training token, 3 x the forward pass (Kaplan et al. 2020).

        The forward pass is 2 FLOPs per multiply-add of every weight matrix a token passes through
        (embeddings are look-ups, not counted), plus attention's scores and mixing for Transformers; an
        adaptive softmax's tail clusters count in proportion to the training tokens that reach them.
        """
        return getattr(self, "flops_per_token_", None)

    def _forward_flops_per_token(self, token_counts: np.ndarray) -> float:
        skip = ("embedding.", "pos_emb.", "output.")
        body = sum(
            p.numel() for n, p in self.net_.named_parameters() if p.dim() >= 2 and not n.startswith(skip)
        )
        return 2.0 * (body + self.net_.output.matmul_params(token_counts)) + self._attention_flops_per_token()

    def _attention_flops_per_token(self) -> float:
        return 0.0

    def config(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            **dataclasses.asdict(self.net_config),
            **dataclasses.asdict(self.train_config),
        } | {"vocab_size": len(self.vocab_) if self.vocab_ is not None else None}

    # ---------------------------------------------------------------------------------------- fitting
    def _init_net(self, vocab: Vocabulary) -> None:
        self.vocab_ = vocab
        self.net_config = dataclasses.replace(self.net_config, vocab_size=len(vocab))
        torch.manual_seed(self.train_config.seed)
        self.net_ = self.build_net()
        if self.train_config.init_range is not None:  # the papers' init: every parameter ~ U(-r, r)
            r = self.train_config.init_range
            for parameter in self.net_.parameters():
                nn.init.uniform_(parameter, -r, r)
        self.device_ = pick_device(self.train_config.device)
        self.net_.to(self.device_)

    def _training_batches(self, train: TokenStream) -> Callable[[int], Any]:
        """``batches(epoch)``: the training split as the Trainer reads it (lines back to back, ``<s>`` first)."""
        sequence = train.with_markers(bos=True)
        c = self.train_config

        def batches(epoch: int):
            return stream_batches(
                sequence, c.batch_size, c.seq_len, epoch=epoch, seed=c.seed, bos_id=train.vocab.bos_id
            )

        return batches

    def _token_counts(self, train: TokenStream) -> np.ndarray:
        """How often each id is a training target (``</s>`` once per line): the adaptive softmax's FLOPs."""
        counts = np.bincount(train.ids, minlength=len(train.vocab)).astype(np.float64)
        counts[train.vocab.eos_id] += train.num_lines
        return counts

    def plan(self, train: TokenStream, budget: Budget | None, *, steps: int = 6) -> TrainingPlan:
        """What fitting on ``train`` under ``budget`` will cost, from a network built for this vocabulary and a
        few real (timed, then discarded) optimisation steps: ``lmbench run --dry-run``."""
        self._init_net(train.vocab)
        flops = 3.0 * self._forward_flops_per_token(self._token_counts(train))
        trainer = Trainer(self.train_config, budget, progress=False)
        seconds, tokens_per_step = trainer.measure_step_seconds(
            self.net_, self._training_batches(train), self.batch_loss, device=self.device_,
            initial_carry=self.initial_carry, steps=steps,
        )  # fmt: skip
        planned = trainer.planned_tokens(train.num_predicted)
        planned_steps = None if planned is None else math.ceil(planned / max(tokens_per_step, 1))
        epochs = None if planned is None else planned / max(train.num_predicted, 1)
        plan = TrainingPlan(
            parameters=sum(p.numel() for p in self.net_.parameters()),
            precision=f"{trainer.precision.name} ({trainer.precision.reason})",
            flops_per_token=flops,
            tokens=planned,
            steps=planned_steps,
            epochs=epochs,
            step_seconds=seconds,
            tokens_per_step=tokens_per_step,
            minutes=trainer.budget.minutes,
            validation_passes=trainer.eval_schedule(planned).passes(planned_steps, planned, epochs),
        )
        self.net_ = None  # the timed steps changed the weights: nothing of them is kept
        return plan

    def fit(
        self,
        train: TokenStream,
        valid: TokenStream | None = None,
        *,
        budget: Budget | None = None,
        run_dir: str | Path | None = None,
    ) -> NeuralLM:
        self._init_net(train.vocab)
        c = self.train_config
        self.flops_per_token_ = 3.0 * self._forward_flops_per_token(self._token_counts(train))
        batches = self._training_batches(train)

        valid_loss = stream_validation(self, valid)
        identity = {  # a checkpoint resumes only for these exact settings, budget and data
            "class": type(self).__name__,
            "params": self.get_params(),
            "budget": budget.to_dict() if budget is not None else None,
            "train": stream_digest(train),
            "valid": stream_digest(valid) if valid_loss is not None else None,
            **self.runtime_identity(),
        }
        trainer = Trainer(c, budget, run_dir, identity=identity)
        self.trainer_ = trainer
        state = trainer.fit(
            self.net_, batches, self.batch_loss, valid_loss,
            epoch_tokens=train.num_predicted, device=self.device_, initial_carry=self.initial_carry,
            valid_tokens=valid.num_predicted if valid_loss is not None else 0,
        )  # fmt: skip
        self.notes_ = trainer.notes
        self.learning_curve_ = state.curve
        self.tokens_seen_ = state.tokens
        self.train_seconds_ = state.seconds  # training time across interruptions and resumes
        if run_dir is not None:
            write_curve(Path(run_dir) / "curve.csv", state.curve)
        self.net_.output.release_scratch()
        self.net_.eval()
        return self

    # ---------------------------------------------------------------------------------------- scoring
    def _check_vocab(self, data: TokenStream) -> None:
        if len(data.vocab) != len(self.vocab):
            raise DataError(
                f"token stream vocabulary has {len(data.vocab)} entries, the model {len(self.vocab)}"
            )

    def token_logprobs(self, data: TokenStream, *, context: Context = "sentence") -> np.ndarray:
        self._check_fitted()
        check_context(context)
        self._check_vocab(data)
        self.net_.eval()
        with torch.no_grad():
            if context == "sentence":
                return self._score_sentences(data)
            sequence = data.with_markers(bos=True)
            predicted = np.flatnonzero(sequence != self.vocab.bos_id)  # every token but <s>
            return self.sequence_logprobs(sequence)[predicted[predicted > 0]]

    def _score_sentences(self, data: TokenStream) -> np.ndarray:
        """Each line alone from ``<s>``: lines that fit the window are batched by length (padding at the end
        never reaches earlier positions of a causal network), longer ones go through ``sequence_logprobs``."""
        bos, eos = data.vocab.bos_id, data.vocab.eos_id
        lines = [np.concatenate([[bos], line, [eos]]).astype(np.int64) for line in data.lines()]
        out = np.empty(data.num_predicted, dtype=np.float64)
        starts = data.target_line_starts()
        W = self.context_window
        fits = [i for i, x in enumerate(lines) if W is None or len(x) - 1 <= W]
        for i in (i for i, x in enumerate(lines) if W is not None and len(x) - 1 > W):
            out[starts[i] : starts[i] + len(lines[i]) - 1] = self.sequence_logprobs(lines[i])[1:]
        fits.sort(key=lambda i: len(lines[i]))  # stable: equal lengths keep their order
        for b in range(0, len(fits), SENTENCE_BATCH):
            idx = fits[b : b + SENTENCE_BATCH]
            longest = max(len(lines[i]) - 1 for i in idx)
            x = torch.full((len(idx), longest), eos, dtype=torch.long)  # (B, T) inputs
            y = torch.full((len(idx), longest), eos, dtype=torch.long)  # (B, T) targets
            keep = torch.zeros((len(idx), longest), dtype=torch.bool)
            for r, i in enumerate(idx):
                n = len(lines[i]) - 1
                x[r, :n] = torch.from_numpy(lines[i][:-1])
                y[r, :n] = torch.from_numpy(lines[i][1:])
                keep[r, :n] = True
            h = self.hidden_states(x.to(self.device_))  # (B, T, H)
            keep = keep.to(self.device_)
            lp = self.net_.output.target_log_probs(h[keep], y.to(self.device_)[keep]).double().cpu().numpy()
            pos = 0
            for i in idx:
                n = len(lines[i]) - 1
                out[starts[i] : starts[i] + n] = lp[pos : pos + n]
                pos += n
        return out

    def next_token_logprobs(self, contexts: Sequence[Sequence[int]]) -> np.ndarray:
        self._check_fitted()
        self.net_.eval()
        out = np.empty((len(contexts), len(self.vocab)), dtype=np.float64)
        groups: dict[int, list[int]] = {}
        for i, ctx in enumerate(contexts):
            groups.setdefault(len(ctx), []).append(i)
        with torch.no_grad():
            for length, idx in groups.items():
                rows = [list(contexts[i]) if length else [self.vocab.bos_id] for i in idx]
                x = torch.tensor(rows, dtype=torch.long, device=self.device_)
                h = self.hidden_states(x)[:, -1]  # (B, H)
                out[idx] = self.net_.output.log_probs(h).double().cpu().numpy()
        return out

    def sentence_features(self, lines: Sequence[Sequence[int]]) -> np.ndarray:
        """Mean of the final layer's hidden states over ``<s> line`` (one vector per line)."""
        self._check_fitted()
        self.net_.eval()
        feats = []
        with torch.no_grad():
            for line in lines:
                x = torch.tensor([[self.vocab.bos_id, *list(line)]], dtype=torch.long, device=self.device_)
                feats.append(self.hidden_states(x).mean(dim=1)[0].double().cpu().numpy())
        return np.stack(feats) if feats else np.zeros((0, self.hidden_size))

    # ---------------------------------------------------------------------------------------- size, I/O
    def num_parameters(self) -> int:
        self._check_fitted()
        return sum(p.numel() for p in self.net_.parameters())

    def save(self, path: str | Path) -> None:
        self._check_fitted()
        path = Path(path)
        payload = {
            "net_params": self.net_params,
            "train_params": self.train_params,
            "vocab": self.vocab.tokens,
            "state_dict": {k: v.detach().cpu() for k, v in self.net_.state_dict().items()},
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | Path) -> NeuralLM:
        payload = load_tensors(path, "lmbench neural model")
        if not isinstance(payload, dict) or not {"net_params", "train_params", "vocab", "state_dict"} <= set(
            payload
        ):
            raise DataError(f"{path}: not an lmbench neural model (fields missing)")
        model = cls(**payload["net_params"], **payload["train_params"])
        model._init_net(Vocabulary(payload["vocab"]))
        try:
            model.net_.load_state_dict(payload["state_dict"])
        except RuntimeError as e:
            raise DataError(
                f"{path}: weights do not fit the saved settings ({str(e).splitlines()[0]})"
            ) from None
        model.net_.eval()
        return model
