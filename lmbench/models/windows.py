"""Rolling-window scoring: the log-probability of every token of a sequence longer than a model's window.

The contract is lm-evaluation-harness's ``loglikelihood_rolling``: the predicted positions ``1 .. n-1`` of a
sequence are cut into **disjoint** prediction spans, in order; each span is scored by one forward pass over at most
``window`` inputs that end just before its last position. Consecutive windows start ``stride`` apart (default
``window // 2``), so every token is scored exactly once and, once the first window is used up, with at least
``window - stride + 1`` tokens before it in its pass (``window / 2 + 1`` by default); a token in the first window
sees everything before it. Every windowed back-end (the Transformer, pretrained models) scores through here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

# (B, T) inputs, (B, T) targets, (B, T) bool keep -> log p of targets[keep], (K,) in row-major order
WindowScorer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Window:
    """One forward pass: inputs ``sequence[start:end]`` predict positions ``start + 1 .. end``, of which this
    window keeps ``first .. end`` (the positions before ``first`` were scored by the window before)."""

    start: int
    first: int
    end: int

    def context(self, position: int) -> int:
        """How many tokens precede ``position`` in this window's pass."""
        return position - self.start


def plan_windows(n: int, window: int, stride: int | None = None) -> list[Window]:
    """The windows that score positions ``1 .. n-1`` of an ``n``-token sequence, each exactly once.

    >>> plan_windows(4, 8)
    [Window(start=0, first=1, end=3)]
    >>> [(w.start, w.first, w.end) for w in plan_windows(10, 4)]
    [(0, 1, 4), (2, 5, 6), (4, 7, 8), (6, 9, 9)]
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    stride = stride or max(window // 2, 1)
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be in 1..window = {window}, got {stride}")
    starts = [0] if n <= window + 1 else list(range(0, n - 1 - window + stride, stride))
    if starts[-1] + window < n - 1:
        starts.append(n - 1 - window)  # the last window ends exactly at the last position
    windows, scored = [], 0  # positions 1 .. scored are done
    for start in starts:
        end = min(start + window, n - 1)
        first = max(scored + 1, start + 1)
        if first <= end:
            windows.append(Window(start, first, end))
            scored = end
    return windows


def rolling_logprobs(
    sequence: np.ndarray,
    window: int,
    score: WindowScorer,
    *,
    stride: int | None = None,
    batch_size: int = 32,
    pad_id: int = 0,
) -> np.ndarray:
    """log p of every position of ``sequence`` given what precedes it in its window: float64 [n], entry 0 is 0
    (the first token is context only).

    ``score(inputs, targets, keep)`` runs the model on ``batch_size`` windows at a time, right-padded with
    ``pad_id`` (a causal model never reads the padding), and returns the log-probabilities of ``targets`` at the
    ``keep`` positions.
    """
    seq = torch.from_numpy(np.asarray(sequence, dtype=np.int64))
    out = np.zeros(len(seq), dtype=np.float64)
    windows = plan_windows(len(seq), window, stride)
    for b in range(0, len(windows), batch_size):
        chunk: Sequence[Window] = windows[b : b + batch_size]
        longest = max(w.end - w.start for w in chunk)
        inputs = torch.full((len(chunk), longest), pad_id, dtype=torch.long)  # (B, T)
        targets = torch.full((len(chunk), longest), pad_id, dtype=torch.long)  # (B, T)
        keep = torch.zeros((len(chunk), longest), dtype=torch.bool)  # (B, T)
        for r, w in enumerate(chunk):
            inputs[r, : w.end - w.start] = seq[w.start : w.end]
            targets[r, : w.end - w.start] = seq[w.start + 1 : w.end + 1]
            keep[r, w.first - 1 - w.start : w.end - w.start] = True
        positions = np.concatenate([np.arange(w.first, w.end + 1) for w in chunk])
        out[positions] = score(inputs, targets, keep).double().cpu().numpy()
    return out
