"""What each model family adds over the step before it and why that should help, in words true of any corpus,
with a clause about the synthetic corpus's construction (openers, fillers, closers) that reports use only where
that corpus ran. Reports read these; nothing here looks at figures.

A new family adds one entry to :data:`FAMILIES`; a family without one is described by its name alone.
"""

from __future__ import annotations

from dataclasses import dataclass

# the order in which families usually form a ladder of model generations (n-grams first, attention last)
LADDER_ORDER = ("ngram", "rnn", "gru", "lstm", "transformer")


@dataclass(frozen=True)
class FamilyProse:
    """How a family describes itself in a report."""

    adds: str  # what it brings over the step before it (a sentence)
    why: str  # why that should lower perplexity, for any corpus (a clause, no full stop)
    synthetic: str = ""  # the same reason in terms of the synthetic corpus's construction (appended there)


FAMILIES = {
    "ngram": FamilyProse(
        adds="It counts how often each word follows the previous n - 1 words and smooths the counts.",
        why="Counts of what followed the same words in training are the most direct evidence of what comes next",
    ),
    "rnn": FamilyProse(
        adds="Counting stops here: the model learns dense word vectors and a hidden state updated at every word, "
        "which can in principle carry information from any distance.",
        why="Word vectors share evidence between words used alike, and the state is not limited to a fixed "
        "window of previous words",
        synthetic="here the state can carry a sentence's opener past any fixed window to its closer",
    ),
    "gru": FamilyProse(
        adds="Gates are added to the recurrent cell, so the hidden state can keep information over many steps "
        "without it vanishing.",
        why="Gates let the cell keep what matters over many steps instead of letting it fade step by step",
        synthetic="here: the opener, held across the fillers",
    ),
    "lstm": FamilyProse(
        adds="A gated memory cell (input, forget and output gates) keeps information over many steps without "
        "it vanishing.",
        why="Its memory cell keeps what matters over many steps instead of letting it fade step by step",
        synthetic="here: the opener, held across the fillers",
    ),
    "transformer": FamilyProse(
        adds="Recurrence is replaced by attention: every position looks directly at every earlier position in "
        "its window.",
        why="Attention reads any earlier word in the window directly, instead of hoping it survives in a "
        "recurrent state",
        synthetic="here: the opener, however far back it is inside the window",
    ),
    "pretrained": FamilyProse(
        adds="A model trained elsewhere on far more text, scored on this text through the same protocol.",
        why="What it learned from far more text transfers to this one, where their words and styles overlap",
    ),
}


def prose(family: str | None) -> FamilyProse | None:
    return FAMILIES.get(family or "")


def why_text(family: str | None, *, synthetic: bool) -> str:
    """Why a step to ``family`` should help: the corpus-neutral reason, and on the synthetic corpus the
    construction it targets."""
    p = prose(family)
    if p is None:
        return "The change is one of size or training, not of kind"
    return f"{p.why} ({p.synthetic})" if synthetic and p.synthetic else p.why


def is_ladder(families: list[str], orders: list[int | None]) -> bool:
    """Whether models in this order form a ladder: three or more, the families never going back in
    :data:`LADDER_ORDER` and at least two of them, n-gram orders never falling."""
    if len(families) < 3 or any(f not in LADDER_ORDER for f in families):
        return False
    ranks = [LADDER_ORDER.index(f) for f in families]
    if any(b < a for a, b in zip(ranks, ranks[1:], strict=False)) or len(set(ranks)) < 2:
        return False
    ngram_orders = [o or 0 for f, o in zip(families, orders, strict=True) if f == "ngram"]
    return all(b >= a for a, b in zip(ngram_orders, ngram_orders[1:], strict=False))
