"""The n-gram family: counts of what followed the previous n - 1 words, smoothed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lmbench.models.family import Family

ORDER_NAMES = {1: "unigram", 2: "bigram", 3: "trigram", 4: "4-gram", 5: "5-gram"}


def smoothing_words(config: Mapping[str, Any]) -> str:
    """What an n-gram config's smoothing is, in words (a model read from ARPA names its file)."""
    from lmbench.models.ngram.smoothing import describe_smoothing

    if "smoothing" not in config:
        return "unrecorded smoothing"
    if config["smoothing"] is None and config.get("source"):
        return f"back-off estimates read from {config['source']}"
    return describe_smoothing(config["smoothing"])


@dataclass(frozen=True)
class NgramFamily(Family):
    """N-grams say what changed between two models from their order and smoothing."""

    def describe(self, name: str, config: Mapping[str, Any]) -> str:
        order = config.get("order")
        return f"a {ORDER_NAMES.get(order, f'{order}-gram')} model with {smoothing_words(config)}"

    def changes(self, before: Mapping[str, Any], config: Mapping[str, Any]) -> str:
        p, c = before, config
        changes = []
        if p.get("order") != c.get("order"):
            changes.append(
                f"the context grows from {p.get('order', 1) - 1} to {c.get('order', 1) - 1} previous words"
                if (c.get("order") or 0) > (p.get("order") or 0)
                else f"the context shrinks from {p.get('order', 1) - 1} to {c.get('order', 1) - 1} previous words"
            )
        if p.get("smoothing") != c.get("smoothing"):
            changes.append(f"the estimates switch from {smoothing_words(p)} to {smoothing_words(c)}")
        return (
            ("Compared with the previous model, " + " and ".join(changes) + ".")
            if changes
            else "Same model shape as the previous model."
        )

    def why_change(self, before: Mapping[str, Any], config: Mapping[str, Any]) -> str:
        if before.get("smoothing") == "mle" and config.get("smoothing") != "mle":
            return "Smoothing gives unseen n-grams some probability, so a single unseen pair no longer costs infinity"
        if (config.get("order") or 0) > (before.get("order") or 0):
            return (
                "More words of context sharpen the prediction wherever the longer n-gram was seen in training"
            )
        return "Better estimates of rare n-grams move probability to where the test text needs it"

    def window(self, config: Mapping[str, Any]) -> int | None:
        return config.get("order")


NGRAM = NgramFamily(
    "ngram",
    "lmbench.models.ngram.model:NgramLM",
    generation=0,
    adds="It counts how often each word follows the previous n - 1 words and smooths the counts.",
    why="Counts of what followed the same words in training are the most direct evidence of what comes next",
    counts=True,
    without_budget="counted once",
    compute="one counting pass, no gradient steps",
)
