"""What recurrent and Transformer language models share: the LanguageModel wrapper around an ``nn.Module``.

The module maps token ids to hidden states; an output layer (:mod:`lmbench.models.output`) maps hidden states
to log-probabilities over the vocabulary with ``<s>`` masked out (it is context only, never predicted).
Training sequences are the lines as ``<s> w.. </s>`` back to back; the loss skips positions whose target
is ``<s>``, so training and scoring predict exactly the protocol's tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
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


class NeuralLM(LanguageModel):
    """Common wrapper: fit through the one Trainer, score with chunked output layers, save/load safely.

    Subclasses define ``NetConfig`` (a dataclass), ``build_net`` and the scoring of both context modes.
    """

    NetConfig: ClassVar[type]
    net_fields: ClassVar[tuple[str, ...]]

    @classmethod
    def settings_sources(cls) -> tuple[type, ...]:
        """The dataclasses whose fields are this family's settings (configs are checked against their types)."""
        return (cls.NetConfig, TrainConfig)

    def __init__(self, **params: Any):
        net_params = {k: params.pop(k) for k in list(params) if k in self.net_fields}
        train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = set(params) - train_fields
        if unknown:
            raise ConfigError(f"unknown key {sorted(unknown)[0]!r} for {type(self).__name__}")
        self.net_params = net_params
        self.train_params = params
        self.net_config = self.NetConfig(vocab_size=4, **net_params)  # validates now; resized in fit()
        self.train_config = TrainConfig(**params)

    @property
    def seed(self) -> int:
        return self.train_config.seed

    def get_params(self) -> dict[str, Any]:
        """Every network and training setting after defaults (``vocab_size`` comes from the data in fit)."""
        net = {k: v for k, v in dataclasses.asdict(self.net_config).items() if k != "vocab_size"}
        return {**net, **dataclasses.asdict(self.train_config)}

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

    def build_net(self, vocab_size: int) -> nn.Module:
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------- fitting
    def _init_net(self, vocab: Vocabulary) -> None:
        self.vocab_ = vocab
        self.net_config = dataclasses.replace(self.net_config, vocab_size=len(vocab))
        torch.manual_seed(self.train_config.seed)
        self.net_ = self.build_net(len(vocab))
        self.device_ = pick_device(self.train_config.device)
        self.net_.to(self.device_)

    def fit(
        self,
        train: TokenStream,
        valid: TokenStream | None = None,
        *,
        budget: Budget | None = None,
        run_dir: str | Path | None = None,
    ) -> NeuralLM:
        self._init_net(train.vocab)
        sequence = train.with_markers(bos=True)
        c = self.train_config
        token_counts = np.bincount(train.ids, minlength=len(train.vocab)).astype(np.float64)
        token_counts[train.vocab.eos_id] += train.num_lines
        self.flops_per_token_ = 3.0 * self._forward_flops_per_token(token_counts)

        def batches(epoch: int):
            return stream_batches(
                sequence, c.batch_size, c.seq_len, epoch=epoch, seed=c.seed, bos_id=train.vocab.bos_id
            )

        def valid_loss(net: nn.Module) -> float:
            lp = self.token_logprobs(valid, context="stream")
            return float(-lp.mean())

        has_valid = valid is not None and valid.num_predicted > 0
        identity = {  # a checkpoint resumes only for these exact settings, budget and data
            "class": type(self).__name__,
            "params": self.get_params(),
            "budget": budget.to_dict() if budget is not None else None,
            "train": stream_digest(train),
            "valid": stream_digest(valid) if has_valid else None,
        }
        trainer = Trainer(c, budget, run_dir, identity=identity)
        self.trainer_ = trainer
        state = trainer.fit(
            self.net_, batches, self.batch_loss, valid_loss if has_valid else None,
            epoch_tokens=train.num_predicted, device=self.device_, initial_carry=self.initial_carry,
            valid_tokens=valid.num_predicted if has_valid else 0,
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

    def initial_carry(self) -> Any:
        return None

    def batch_loss(self, net: nn.Module, batch: Batch, carry: Any) -> tuple[torch.Tensor, int, Any]:
        raise NotImplementedError

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
            return self._score_stream(data.with_markers(bos=True))

    def _score_sentences(self, data: TokenStream) -> np.ndarray:
        raise NotImplementedError

    def _score_stream(self, sequence: np.ndarray) -> np.ndarray:
        raise NotImplementedError

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
                h = self.last_hidden(x)  # (B, H)
                out[idx] = self.net_.output.log_probs(h).double().cpu().numpy()
        return out

    def last_hidden(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

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

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

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
