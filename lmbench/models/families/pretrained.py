"""Pretrained causal language models (Hugging Face ``transformers``), scored through the same protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lmbench.models.family import Family


@dataclass(frozen=True)
class PretrainedFamily(Family):
    def describe(self, name: str, config: Mapping[str, Any]) -> str:
        return f"the pretrained model {config.get('name_or_path', name)}"


PRETRAINED = PretrainedFamily(
    "pretrained",
    "lmbench.models.pretrained:PretrainedLM",
    generation=5,
    ladder=False,  # trained elsewhere: not a step of this run's ladder
    adds="A model trained elsewhere on far more text, scored on this text through the same protocol.",
    why="What it learned from far more text transfers to this one, where their words and styles overlap",
)
