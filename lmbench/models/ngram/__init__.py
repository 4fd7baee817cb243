"""The n-gram family: vectorised counting, smoothing strategies, ARPA I/O, and the model itself."""

from lmbench.models.ngram.model import NgramLM

__all__ = ["NgramLM"]
