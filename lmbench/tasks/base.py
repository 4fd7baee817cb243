"""What every task shares: the model entry it receives, how it builds its rows, and small helpers.

The rows themselves (:class:`~lmbench.results.TaskRow`, :class:`~lmbench.results.Sample`) live in
:mod:`lmbench.results`, shared with the experiment and the reports."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.data.corpus import TokenizedCorpus, TokenStream
from lmbench.data.tokenizers import Tokenizer, get_tokenizer
from lmbench.errors import ConfigError
from lmbench.evaluation.bootstrap import mean_interval
from lmbench.evaluation.metrics import line_totals
from lmbench.models.base import Budget, LanguageModel
from lmbench.results import TaskRow

TIE_TOLERANCE = 1e-9  # two sentence totals closer than this, relative to their size, are a tie


@dataclass(frozen=True)
class TaskFile:
    """An input file of a task read once, before any training: what it holds (parsed and checked by the task)
    and the sha256 of the bytes that was parsed from (the file's identity in the task cache)."""

    path: Path
    sha256: str
    contents: Any


# what a task's ``load_inputs(opts, model_names)`` returns and its ``run(..., inputs=...)`` receives: each
# input file, keyed by the path as the task's options name it
TaskInputs = dict[str, TaskFile]


def run_task(
    task: Any,
    config: dict[str, Any],
    models: dict[str, ModelEntry],
    corpus: TokenizedCorpus,
    *,
    seed: int,
    bootstrap: int,
    inputs: TaskInputs | None = None,
) -> Any:
    """``task.run(...)``, handing it ``inputs`` (the files its ``load_inputs`` read before any training)
    where there are any: a task without ``load_inputs`` is called as the protocol says, without it."""
    extra = {"inputs": inputs} if inputs is not None else {}
    return task.run(config, models, corpus, seed=seed, bootstrap=bootstrap, **extra)


def read_task_file(path: Path) -> tuple[bytes, str]:
    """A task file's bytes, read once, and their sha256."""
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


@dataclass
class ModelEntry:
    """A fitted model, a factory for fresh unfitted copies (tasks that train per class), and its budget."""

    model: LanguageModel
    factory: Callable[[], LanguageModel]
    budget: Budget | None = None
    reference_only: bool = False  # given to a task only as another model's reference (e.g. generate's)


def metric_row(
    model: str, task: str, metric: str, values: np.ndarray, *, bootstrap: int, seed: int, **fields: Any
) -> TaskRow:
    """Mean of per-item values with its bootstrap interval."""
    values = np.asarray(values, dtype=np.float64)
    low, high = (
        mean_interval(values, n_resamples=bootstrap, seed=seed)
        if bootstrap and len(values)
        else (math.nan,) * 2
    )
    value = float(values.mean()) if len(values) else math.nan
    return TaskRow(model, task, metric, value, low, high, int(len(values)), **fields)  # fmt: skip


def options(task: str, config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Task options with defaults; an unknown key is a ConfigError naming it."""
    unknown = set(config) - set(defaults)
    if unknown:
        raise ConfigError(
            f"tasks.{task}: unknown key {', '.join(sorted(unknown))}; expected some of {', '.join(sorted(defaults))}"
        )
    return {**defaults, **config}


def sentence_totals(
    model: LanguageModel, lines: TokenStream | Sequence[np.ndarray], vocab=None
) -> np.ndarray:
    """Total natural-log probability of each line (sentence context, ``</s>`` included): the one way every
    task scores whole sentences. ``lines``: a token stream, or id arrays (then ``vocab`` builds the stream)."""
    stream = lines if isinstance(lines, TokenStream) else TokenStream.from_ids(lines, vocab)
    return line_totals(model.token_logprobs(stream, context="sentence"), stream)


def text_tokenizer(corpus: TokenizedCorpus, name: str | None) -> Tokenizer:
    """The tokenizer for raw outside text: ``name`` if given, else the corpus's external one, else its own."""
    if name:
        return get_tokenizer(name)
    return corpus.external_tokenizer or corpus.tokenizer


def file_labels(paths: Sequence[str | Path]) -> dict[str, str]:
    """The shortest trailing part of each path that tells the files apart (``pairs.jsonl``, ``a/pairs.jsonl``)."""
    parts = {str(p): Path(p).parts for p in paths}
    labels = {}
    for path, p in parts.items():
        for k in range(1, len(p) + 1):
            tail = p[-k:]
            if all(q == p or q[-k:] != tail for q in parts.values()):
                break
        labels[path] = str(Path(*tail))
    return labels
