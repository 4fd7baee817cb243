"""The n-gram family: vectorised counting, smoothing strategies, ARPA I/O, and the model itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lmbench.models.ngram.model import NgramLM

__all__ = ["NgramLM"]


def __getattr__(name: str):
    """``NgramLM`` on first use: scoring an ARPA file (:mod:`.query`) needs none of the model's imports."""
    if name == "NgramLM":
        from lmbench.models.ngram.model import NgramLM

        return NgramLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
