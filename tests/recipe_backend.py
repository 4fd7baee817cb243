"""A neural back-end written from the recipe in docs/extending.md, as a user would: this one file, registered per
test by the conformance suite (``MODELS["recipe-mean"] = ("tests.recipe_backend:MeanLM", {})``); the plugin
test (tests/test_plugins.py) installs a copy of it as an outside package's family, through an entry point.

The model predicts from the running mean of the embeddings read so far: order-blind and tiny, but a real
causal language model that every part of the protocol (training loop, both context modes, next-token
distributions, save/load) has to serve without knowing it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from lmbench.models.neural import NeuralLM
from lmbench.models.output import OutputLayer
from lmbench.training.loop import Batch


@dataclass
class MeanConfig:
    vocab_size: int
    emb_size: int = 16


class MeanNet(nn.Module):
    """Causal mean of the embeddings read so far -> output layer."""

    def __init__(self, c: MeanConfig, bos_id: int):
        super().__init__()
        self.embedding = nn.Embedding(c.vocab_size, c.emb_size)
        self.output = OutputLayer(c.emb_size, c.vocab_size, "full", bos_id)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embedding(idx)  # (B, T, E)
        return x.cumsum(1) / torch.arange(1, idx.shape[1] + 1, device=idx.device)[None, :, None]


class MeanLM(NeuralLM):
    backend: ClassVar[str] = "mean"
    NetConfig = MeanConfig

    @property
    def hidden_size(self) -> int:
        return self.net_config.emb_size

    def build_net(self) -> nn.Module:
        return MeanNet(self.net_config, self.vocab_.bos_id)

    def batch_loss(self, net: nn.Module, batch: Batch, carry: Any):
        x, y, m = (t.to(self.device_) for t in (batch.inputs, batch.targets, batch.mask))
        return self.net_.output.loss_sum(net(x)[m], y[m]), int(m.sum()), None

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        return self.net_(x)

    def sequence_logprobs(self, sequence: np.ndarray) -> np.ndarray:
        seq = torch.from_numpy(np.asarray(sequence, dtype=np.int64)).to(self.device_)
        out = np.zeros(len(seq))
        if len(seq) > 1:
            hidden = self.net_(seq[None, :-1])[0]
            out[1:] = self.net_.output.target_log_probs(hidden, seq[1:]).double().cpu().numpy()
        return out
