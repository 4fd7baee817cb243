"""Perplexity broken down by how often the predicted word was seen in training."""

from __future__ import annotations

import numpy as np

from lmbench.data.corpus import TokenStream
from lmbench.data.vocabulary import Vocabulary

# (label, lowest count, highest count) of training frequency; <unk> and </s> get their own buckets
BUCKETS = [("1", 1, 1), ("2-10", 2, 10), ("11-100", 11, 100), ("101-1000", 101, 1000), (">1000", 1001, None)]


def frequency_buckets(logprobs: np.ndarray, data: TokenStream, vocab: Vocabulary) -> list[dict]:
    """Perplexity and token share per training-frequency bucket of the predicted word."""
    targets = data.targets()
    counts = np.array([vocab.counts.get(t, 0) for t in vocab.tokens], dtype=np.int64)
    freq = counts[targets]
    groups = [("<unk>", targets == vocab.unk_id), ("</s>", targets == vocab.eos_id)]
    words = (targets != vocab.unk_id) & (targets != vocab.eos_id)
    for label, low, high in BUCKETS:
        groups.append((label, words & (freq >= low) & (freq <= (high if high is not None else np.inf))))
    out = []
    for label, mask in groups:
        n = int(mask.sum())
        if n:
            with np.errstate(over="ignore"):
                ppl = float(np.exp(-np.asarray(logprobs)[mask].mean()))
            out.append({"bucket": label, "tokens": n, "share": n / len(targets), "perplexity": ppl})
    return out
