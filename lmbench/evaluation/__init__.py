"""Token scores -> perplexity, bits per character, bootstrap intervals."""

from lmbench.evaluation.metrics import (
    Scores,
    bits_per_char,
    bits_per_token,
    line_totals,
    perplexity,
    score,
    word_perplexity,
)

__all__ = [
    "Scores",
    "bits_per_char",
    "bits_per_token",
    "line_totals",
    "perplexity",
    "score",
    "word_perplexity",
]
