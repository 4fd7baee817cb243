"""The Transformer family: causal self-attention over a window of previous words."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lmbench.models.families.recurrent import FROM_COUNTS
from lmbench.models.family import Family


@dataclass(frozen=True)
class TransformerFamily(Family):
    def describe(self, name: str, config: Mapping[str, Any]) -> str:
        return (
            f"a Transformer ({config.get('layers', '?')} layers, width {config.get('d_model', '?')}, "
            f"window {config.get('window', '?')})"
        )


TRANSFORMER = TransformerFamily(
    "transformer",
    "lmbench.models.transformer:TransformerLM",
    generation=4,
    adds="Recurrence is replaced by attention: every position looks directly at every earlier position in "
    "its window.",
    from_counts=FROM_COUNTS,
    why="Attention reads any earlier word in the window directly, instead of hoping it survives in a "
    "recurrent state",
    synthetic="here: the opener, however far back it is inside the window",
)
