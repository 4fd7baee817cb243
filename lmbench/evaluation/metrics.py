"""Token log-probabilities -> perplexity, cross-entropy, bits per character. One definition for every family."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from lmbench.data.corpus import TokenStream

LN2 = math.log(2.0)


def perplexity(logprobs: np.ndarray) -> float:
    """exp(-mean ln p) over all predicted tokens (token-weighted, full pass); inf if any p is 0."""
    logprobs = np.asarray(logprobs, dtype=np.float64)
    if logprobs.size == 0:
        return float("nan")
    with np.errstate(over="ignore"):
        return float(np.exp(-logprobs.mean()))


def bits_per_token(logprobs: np.ndarray) -> float:
    """Cross-entropy in bits per predicted token."""
    logprobs = np.asarray(logprobs, dtype=np.float64)
    return float(-logprobs.mean() / LN2) if logprobs.size else float("nan")


def bits_per_char(logprobs: np.ndarray, num_chars: int) -> float:
    """Total -log2 p divided by the characters of the evaluated text (newlines included).

    Compares models whose tokenizers differ, since the text is the same whatever the tokens are.
    """
    return (
        float(-np.asarray(logprobs, dtype=np.float64).sum() / LN2 / num_chars) if num_chars else float("nan")
    )


def word_perplexity(logprobs: np.ndarray, num_words: int) -> float:
    """exp(-total ln p / ``num_words``): the whole text's probability spread over its whitespace words (and
    line ends), as lm-evaluation-harness's ``word_perplexity``. Equal to :func:`perplexity` for a
    whitespace-tokenized run, and comparable across subword, character and word tokenizers of the same text."""
    if not num_words:
        return float("nan")
    with np.errstate(over="ignore"):
        return float(np.exp(-np.asarray(logprobs, dtype=np.float64).sum() / num_words))


def line_totals(logprobs: np.ndarray, data: TokenStream) -> np.ndarray:
    """Sum of log-probabilities per line (every line predicts at least its ``</s>``)."""
    return np.add.reduceat(np.asarray(logprobs, dtype=np.float64), data.target_line_starts())


@dataclass
class Scores:
    """Quality figures of one model on one split in one context mode."""

    tokens: int
    oov: int
    oov_rate: float
    log_prob: float  # total natural-log probability
    perplexity: float
    bits_per_token: float
    bits_per_char: float
    perplexity_excl_oov: float  # KenLM's second figure: <unk> predictions left out
    word_perplexity: float = float(
        "nan"
    )  # exp(-log_prob / (whitespace words + lines)): tokenizer-independent

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def score(logprobs: np.ndarray, data: TokenStream) -> Scores:
    """All quality figures from the token log-probabilities of ``data``."""
    logprobs = np.asarray(logprobs, dtype=np.float64)
    if logprobs.shape != (data.num_predicted,):
        raise ValueError(f"expected {data.num_predicted} log-probabilities, got shape {logprobs.shape}")
    known = data.targets() != data.vocab.unk_id
    return Scores(
        tokens=data.num_predicted,
        oov=data.oov,
        oov_rate=data.oov / data.num_words if data.num_words else 0.0,
        log_prob=float(logprobs.sum()),
        perplexity=perplexity(logprobs),
        bits_per_token=bits_per_token(logprobs),
        bits_per_char=bits_per_char(logprobs, data.num_chars),
        perplexity_excl_oov=perplexity(logprobs[known]),
        word_perplexity=word_perplexity(logprobs, data.num_word_predictions),
    )
