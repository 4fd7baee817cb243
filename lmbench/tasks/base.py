"""What every task shares: the model entry it receives and the row it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lmbench.errors import ConfigError
from lmbench.evaluation.bootstrap import mean_interval
from lmbench.models.base import Budget, LanguageModel


@dataclass
class ModelEntry:
    """A fitted model, a factory for fresh unfitted copies (tasks that train per class), and its budget."""

    model: LanguageModel
    factory: Callable[[], LanguageModel]
    budget: Budget | None = None


def metric_row(
    model: str, task: str, metric: str, values: np.ndarray, *, detail: str = "", bootstrap: int, seed: int
) -> dict[str, Any]:
    """Mean of per-item values with its bootstrap interval."""
    values = np.asarray(values, dtype=np.float64)
    low, high = mean_interval(values, n_resamples=bootstrap, seed=seed) if bootstrap else (float("nan"),) * 2
    return {"model": model, "task": task, "metric": metric, "value": float(values.mean()) if len(values) else float("nan"),
            "low": low, "high": high, "n": int(len(values)), "detail": detail}  # fmt: skip


def options(task: str, config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Task options with defaults; an unknown key is a ConfigError naming it."""
    unknown = set(config) - set(defaults)
    if unknown:
        raise ConfigError(
            f"tasks.{task}: unknown key {', '.join(sorted(unknown))}; expected some of {', '.join(sorted(defaults))}"
        )
    return {**defaults, **config}
