"""Decoder-only Transformer language model (GPT-style; Radford et al. 2018), pre-LayerNorm, causal attention
through ``F.scaled_dot_product_attention``, learned or sinusoidal positions, weight tying, a context window W.

Stream-mode scoring rolls the window (:mod:`lmbench.models.windows`): every token is predicted exactly once with
at least W/2 tokens of context (except at the start); sentence mode scores each line alone (rolling within lines
longer than W).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmbench.errors import ConfigError
from lmbench.models.neural import NeuralLM
from lmbench.models.output import OutputKind, OutputLayer
from lmbench.models.windows import rolling_logprobs
from lmbench.training.loop import Batch


@dataclass
class TransformerConfig:
    vocab_size: int
    d_model: int = 256
    n_heads: int = 4
    layers: int = 4
    d_ff: int | None = None  # default 4 * d_model
    dropout: float = 0.1
    window: int = 128
    positions: Literal["learned", "sinusoidal"] = "learned"  # learned position embeddings or fixed sinusoids
    tie_weights: bool = True
    output: OutputKind = "full"  # full softmax, or adaptive softmax (Grave et al. 2017) with ``cutoffs``
    cutoffs: list[int] | None = None

    def __post_init__(self) -> None:
        for key in ("d_model", "n_heads", "layers", "window"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{key}: expected a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"n_heads: {self.n_heads} does not divide d_model {self.d_model}")
        if self.d_ff is not None and self.d_ff < 1:
            raise ConfigError(f"d_ff: expected a positive integer, got {self.d_ff!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout: expected a number in [0, 1), got {self.dropout!r}")
        if self.positions not in ("learned", "sinusoidal"):
            raise ConfigError(f"positions: expected 'learned' or 'sinusoidal', got {self.positions!r}")
        if self.output not in ("full", "adaptive"):
            raise ConfigError(f"output: expected 'full' or 'adaptive', got {self.output!r}")


class CausalSelfAttention(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.n_heads, self.dropout = c.n_heads, c.dropout
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model)
        self.proj = nn.Linear(c.d_model, c.d_model)
        self.resid_drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (
            t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v)
        )  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_drop(self.proj(y))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """softmax(QK^T / sqrt(d_head)) with the causal mask: (B, T, C) -> (B, nh, T, T); row i sums to 1
        over the positions j <= i that position i reads (what ``forward`` mixes V with, dropout aside)."""
        B, T, C = x.shape
        q, k, _ = self.qkv(x).split(C, dim=2)
        q, k = (
            t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k)
        )  # (B, nh, T, hs)
        scores = q @ k.transpose(-2, -1) / math.sqrt(C // self.n_heads)  # (B, nh, T, T)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        return scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)


class Block(nn.Module):
    """Pre-LayerNorm block (Xiong et al. 2020): x + attn(ln(x)), then x + mlp(ln(x)); trains stably without
    the careful warm-up post-LN needs."""

    def __init__(self, c: TransformerConfig):
        super().__init__()
        d_ff = c.d_ff or 4 * c.d_model
        self.ln1, self.ln2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.attn = CausalSelfAttention(c)
        self.mlp = nn.Sequential(
            nn.Linear(c.d_model, d_ff), nn.GELU(), nn.Linear(d_ff, c.d_model), nn.Dropout(c.dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


def sinusoidal_table(length: int, d: int) -> torch.Tensor:
    """Vaswani et al. (2017) position encodings, (length, d)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(length, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : d // 2]
    return table


class TransformerNet(nn.Module):
    def __init__(self, c: TransformerConfig, bos_id: int):
        super().__init__()
        self.config = c
        self.embedding = nn.Embedding(c.vocab_size, c.d_model)
        if c.positions == "learned":
            self.pos_emb = nn.Embedding(c.window, c.d_model)
        else:
            self.register_buffer("pos_table", sinusoidal_table(c.window, c.d_model), persistent=False)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.ln_f = nn.LayerNorm(c.d_model)
        self.output = OutputLayer(c.d_model, c.vocab_size, c.output, bos_id, c.cutoffs)
        self.apply(self._init)
        if c.tie_weights and c.output == "full":
            self.output.linear.weight = self.embedding.weight
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.layers))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, T) ids, T <= window -> (B, T, d_model) final hidden states; with ``targets`` and ``mask``, the
        summed loss over the masked positions (what DDP wraps)."""
        T = idx.shape[1]
        pos = self.pos_emb.weight[:T] if self.config.positions == "learned" else self.pos_table[:T]
        x = self.drop(self.embedding(idx) + pos)  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        h = self.ln_f(x)
        if targets is not None:
            return self.output.loss_sum(h[mask], targets[mask])
        return h

    def attention_maps(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, layers, nh, T, T) attention weights of every block, from the same forward pass
        that scoring runs (each block's output is computed by its own ``forward``)."""
        T = idx.shape[1]
        pos = self.pos_emb.weight[:T] if self.config.positions == "learned" else self.pos_table[:T]
        x = self.drop(self.embedding(idx) + pos)  # (B, T, C)
        maps = []
        for block in self.blocks:
            maps.append(block.attn.attention_weights(block.ln1(x)))  # (B, nh, T, T)
            x = block(x)
        return torch.stack(maps, dim=1)


class TransformerLM(NeuralLM):
    """GPT-style Transformer language model (registered as ``transformer``).

    Hyper-parameters: those of :class:`TransformerConfig` and of :class:`lmbench.training.loop.TrainConfig`
    (``seq_len`` defaults to the window).
    """

    backend: ClassVar[str] = "transformer"
    NetConfig = TransformerConfig

    def __init__(self, **params: Any):
        params.setdefault("lr", 1e-3)
        params.setdefault("warmup_steps", 200)
        super().__init__(**params)
        if "seq_len" not in params:  # the training window defaults to the model's context window
            self.train_config = replace(self.train_config, seq_len=self.net_config.window)
        elif self.train_config.seq_len > self.net_config.window:  # never clamped silently
            raise ConfigError(
                f"seq_len: {self.train_config.seq_len} is longer than the context window {self.net_config.window}; "
                "give seq_len <= window (or leave it out: it defaults to the window)"
            )

    @property
    def context_window(self) -> int:
        """The longest context the model is asked about: the window, or the training length if shorter.

        Positions beyond ``seq_len`` were never trained (a learned position embedding there is still its
        random initialisation), so scoring never uses them; with the default ``seq_len = window`` this is the
        window.
        """
        return min(self.net_config.window, self.train_config.seq_len)

    def _attention_flops_per_token(self) -> float:
        # scores q.k and the weighted sum of values: 2 x layers x context x d_model multiply-adds per token
        # (Kaplan et al. 2020's 2 n_layer n_ctx d_attn, with n_ctx the training window)
        c = self.net_config
        return 2.0 * c.layers * self.train_config.seq_len * c.d_model

    @property
    def hidden_size(self) -> int:
        return self.net_config.d_model

    def build_net(self) -> nn.Module:
        return TransformerNet(self.net_config, self.vocab_.bos_id)

    def batch_loss(self, net: nn.Module, batch: Batch, carry: Any) -> tuple[torch.Tensor, int, Any]:
        x, y, m = (t.to(self.device_) for t in (batch.inputs, batch.targets, batch.mask))
        return net(x, targets=y, mask=m), int(m.sum()), None

    # ---------------------------------------------------------------------------------- scoring
    @torch.no_grad()
    def sequence_logprobs(self, sequence: np.ndarray) -> np.ndarray:
        """Rolling windows of ``context_window`` tokens, 32 windows per forward pass."""

        def score(x: torch.Tensor, y: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
            h = self.net_(x.to(self.device_))  # (B, T, d_model)
            keep = keep.to(self.device_)
            return self.net_.output.target_log_probs(h[keep], y.to(self.device_)[keep])

        return rolling_logprobs(sequence, self.context_window, score, pad_id=self.vocab.eos_id)

    @torch.no_grad()
    def attention_maps(self, ids: Sequence[int]) -> np.ndarray:
        """Attention weights for one sequence of ids: float64 [layers, heads, T, T], row i the distribution
        position i (which predicts token i + 1) puts over positions 0..i. Sequences longer than the window
        keep their last ``window`` ids, as :meth:`next_token_logprobs` does."""
        self._check_fitted()
        ids = list(ids)[-self.context_window :]
        if not ids:
            raise ValueError("attention_maps needs at least one id")
        self.net_.eval()
        x = torch.tensor([ids], dtype=torch.long, device=self.device_)
        return self.net_.attention_maps(x)[0].double().cpu().numpy()

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        return self.net_(x[:, -self.context_window :])
