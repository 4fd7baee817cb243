"""Recurrent language models: tanh RNN, GRU or LSTM (Elman 1990; Cho et al. 2014; Hochreiter & Schmidhuber 1997).

Stream mode trains with truncated back-propagation through time over ``batch_size`` parallel streams and
carries the hidden state across batches; sentence mode scores each line from ``<s>`` with a fresh state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from lmbench.errors import ConfigError
from lmbench.models.neural import NeuralLM
from lmbench.models.output import OutputKind, OutputLayer
from lmbench.training.loop import Batch

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


@dataclass
class RNNConfig:
    vocab_size: int
    cell: Literal["rnn", "gru", "lstm"] = "lstm"
    emb_size: int = 256
    hidden_size: int = 256
    layers: int = 2
    dropout: float = 0.2
    tie_weights: bool = True
    output: OutputKind = "full"  # full softmax, or adaptive softmax (Grave et al. 2017) with ``cutoffs``
    cutoffs: list[int] | None = None

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ConfigError(f"cell: unknown cell {self.cell!r}; expected one of {', '.join(CELLS)}")
        for key in ("emb_size", "hidden_size", "layers"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{key}: expected a positive integer, got {value!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout: expected a number in [0, 1), got {self.dropout!r}")
        if self.output not in ("full", "adaptive"):
            raise ConfigError(f"output: expected 'full' or 'adaptive', got {self.output!r}")


class RNNNet(nn.Module):
    """Embedding -> dropout -> stacked recurrent cell -> dropout -> (projection) -> output layer."""

    def __init__(self, config: RNNConfig, bos_id: int):
        super().__init__()
        c = config
        self.config = c
        self.embedding = nn.Embedding(c.vocab_size, c.emb_size)
        self.drop = nn.Dropout(c.dropout)
        kwargs = {"nonlinearity": "tanh"} if c.cell == "rnn" else {}
        self.rnn = CELLS[c.cell](
            c.emb_size,
            c.hidden_size,
            c.layers,
            batch_first=True,
            dropout=c.dropout if c.layers > 1 else 0.0,
            **kwargs,
        )
        out_size = c.emb_size if c.tie_weights else c.hidden_size
        # weight tying (Press & Wolf 2017) needs the output input size to equal the embedding size
        self.proj = (
            nn.Linear(c.hidden_size, c.emb_size) if c.tie_weights and c.hidden_size != c.emb_size else None
        )
        self.output = OutputLayer(out_size, c.vocab_size, c.output, bos_id, c.cutoffs)
        if c.tie_weights and c.output == "full":
            self.output.linear.weight = self.embedding.weight
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)

    def forward(
        self,
        idx: torch.Tensor,
        state: Any = None,
        targets: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """(B, T) ids -> (B, T, H_out) hidden states and the new recurrent state; with ``targets`` (B, T) and
        ``mask`` the summed loss over the masked positions instead of the hidden states (what DDP wraps)."""
        x = self.drop(self.embedding(idx))  # (B, T, E)
        h, state = self.rnn(x, state)  # (B, T, H)
        h = self.drop(h)
        if self.proj is not None:
            h = self.proj(h)
        if targets is not None:
            return self.output.loss_sum(h[mask], targets[mask]), state
        return h, state


def _detach(state: Any) -> Any:
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


class RecurrentLM(NeuralLM):
    """RNN/GRU/LSTM language model (registered as ``rnn``, ``gru``, ``lstm``).

    Hyper-parameters: those of :class:`RNNConfig` (cell, emb_size, hidden_size, layers, dropout, tie_weights,
    output, cutoffs) and of :class:`lmbench.training.loop.TrainConfig` (lr, batch_size, seq_len = BPTT length, ...).
    """

    backend: ClassVar[str] = "rnn"
    NetConfig = RNNConfig

    def __init__(self, **params: Any):
        params.setdefault("lr", 3e-3)
        params.setdefault("seq_len", 35)
        params.setdefault("batch_size", 20)
        super().__init__(**params)

    @property
    def hidden_size(self) -> int:
        return self.net_config.emb_size if self.net_config.tie_weights else self.net_config.hidden_size

    def build_net(self) -> nn.Module:
        return RNNNet(self.net_config, self.vocab_.bos_id)

    def batch_loss(self, net: nn.Module, batch: Batch, carry: Any) -> tuple[torch.Tensor, int, Any]:
        x, y, m = (t.to(self.device_) for t in (batch.inputs, batch.targets, batch.mask))
        if carry is not None and carry_batch(carry) != x.shape[0]:
            carry = None  # the last, shorter batch of an epoch
        loss, state = net(x, carry, targets=y, mask=m)  # positions whose target is <s> are left out
        return loss, int(m.sum()), _detach(state)

    # ---------------------------------------------------------------------------------- scoring
    def sequence_logprobs(self, sequence: np.ndarray, segments: int = 16, burn_in: int = 128) -> np.ndarray:
        """The whole sequence, cut into ``segments`` parallel pieces for speed; each piece first reads the
        ``burn_in`` tokens before it (scores discarded) so its state carries context across the cut."""
        seq = torch.from_numpy(sequence.astype(np.int64))
        n = len(seq)
        bounds = np.unique(np.linspace(1, n, min(segments, max(n - 1, 1)) + 1).astype(np.int64))
        # piece (a, lo, hi): feed seq[a : hi-1]; output j predicts position a + j + 1; keep lo <= pos < hi
        pieces = [
            (max(int(lo) - 1 - burn_in, 0), int(lo), int(hi))
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        longest = max(hi - 1 - a for a, _, hi in pieces)
        inputs = torch.full((len(pieces), longest), self.vocab.eos_id, dtype=torch.long)
        keep = torch.zeros((len(pieces), longest), dtype=torch.bool)
        for r, (a, lo, hi) in enumerate(pieces):
            inputs[r, : hi - 1 - a] = seq[a : hi - 1]
            keep[r, lo - a - 1 : hi - a - 1] = True
        first_input = torch.tensor([a for a, _, _ in pieces], dtype=torch.long)
        per_position = np.zeros(n, dtype=np.float64)
        state, window = None, 512
        for s in range(0, longest, window):
            h, state = self.net_(inputs[:, s : s + window].to(self.device_), state)  # (P, w, H)
            m = keep[:, s : s + window]
            rows, cols = torch.nonzero(m, as_tuple=True)
            positions = first_input[rows] + cols + s + 1
            lp = self.net_.output.target_log_probs(h[m.to(self.device_)], seq[positions].to(self.device_))
            per_position[positions.numpy()] = lp.double().cpu().numpy()
        return per_position

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        return self.net_(x)[0]


def carry_batch(state: Any) -> int:
    return (state[0] if isinstance(state, tuple) else state).shape[1]
