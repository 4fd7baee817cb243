"""Next-word prediction: top-1/top-5 accuracy and mean reciprocal rank of the true next token (test split)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lmbench.data.corpus import TokenizedCorpus
from lmbench.results import TaskResults
from lmbench.tasks.base import ModelEntry, metric_row, options

NAME = "next-word"
DEFAULTS = {"max_tokens": 5000, "context_length": 32, "batch_size": 256, "split": "test"}


def prediction_items(
    data, max_tokens: int, context_length: int, seed: int
) -> tuple[list[list[int]], np.ndarray]:
    """A seeded sample of (sentence-mode context, true next token) pairs."""
    seq = data.with_markers(bos=True)
    positions = np.flatnonzero(seq != data.vocab.bos_id)
    line_start = np.maximum.accumulate(np.where(seq == data.vocab.bos_id, np.arange(len(seq)), 0))
    if len(positions) > max_tokens:
        positions = np.sort(np.random.default_rng(seed).choice(positions, size=max_tokens, replace=False))
    contexts = [seq[max(line_start[t], t - context_length) : t].tolist() for t in positions]
    return contexts, seq[positions]


def run(
    config: dict[str, Any],
    models: dict[str, ModelEntry],
    corpus: TokenizedCorpus,
    *,
    seed: int,
    bootstrap: int,
) -> TaskResults:
    opts = options(NAME, config, DEFAULTS)
    contexts, targets = prediction_items(
        corpus.split(opts["split"]), opts["max_tokens"], opts["context_length"], seed
    )
    rows = []
    for name, entry in models.items():
        ranks = np.empty(len(targets), dtype=np.int64)
        for start in range(0, len(targets), opts["batch_size"]):
            logp = entry.model.next_token_logprobs(contexts[start : start + opts["batch_size"]])
            truth = targets[start : start + opts["batch_size"]]
            true_lp = logp[np.arange(len(truth)), truth]
            ranks[start : start + len(truth)] = 1 + (logp > true_lp[:, None]).sum(
                axis=1
            )  # ties favour the truth
        for metric, values in (("top1", ranks == 1), ("top5", ranks <= 5), ("mrr", 1.0 / ranks)):
            rows.append(metric_row(name, NAME, metric, values, bootstrap=bootstrap, seed=seed))
    return TaskResults(rows)
