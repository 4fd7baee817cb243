"""The recurrent families: one class (:class:`~lmbench.models.rnn.RecurrentLM`), three cells."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lmbench.models.family import Family

MODEL = "lmbench.models.rnn:RecurrentLM"
FROM_COUNTS = "Counting stops here: the model learns dense word vectors instead of counts."
HELD = "here: the opener, held across the fillers"


@dataclass(frozen=True)
class RecurrentFamily(Family):
    """A recurrent cell, described with its layers and units."""

    cell_words: str = "a recurrent network"

    def describe(self, name: str, config: Mapping[str, Any]) -> str:
        return f"{self.cell_words} ({config.get('layers', '?')} layer(s) of {config.get('hidden_size', '?')} units)"


RNN = RecurrentFamily(
    "rnn",
    MODEL,
    {"cell": "rnn"},
    generation=1,
    adds="Counting stops here: the model learns dense word vectors and a hidden state updated at every word, "
    "which can in principle carry information from any distance.",
    why="Word vectors share evidence between words used alike, and the state is not limited to a fixed "
    "window of previous words",
    synthetic="here the state can carry a sentence's opener past any fixed window to its closer",
    cell_words="a plain (tanh) RNN",
)
GRU = RecurrentFamily(
    "gru",
    MODEL,
    {"cell": "gru"},
    generation=2,
    adds="Gates are added to the recurrent cell, so the hidden state can keep information over many steps "
    "without it vanishing.",
    from_counts=FROM_COUNTS,
    why="Gates let the cell keep what matters over many steps instead of letting it fade step by step",
    synthetic=HELD,
    cell_words="a GRU",
)
LSTM = RecurrentFamily(
    "lstm",
    MODEL,
    {"cell": "lstm"},
    generation=3,
    adds="A gated memory cell (input, forget and output gates) keeps information over many steps without "
    "it vanishing.",
    from_counts=FROM_COUNTS,
    why="Its memory cell keeps what matters over many steps instead of letting it fade step by step",
    synthetic=HELD,
    cell_words="an LSTM",
)
