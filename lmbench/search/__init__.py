"""Tuning each model on validation before its final training: the search space (:mod:`.space`, read with the
config) and the studies that run it with Optuna (:mod:`.study`)."""

from lmbench.search.space import (
    Dimension,
    Limits,
    ModelSearch,
    SearchConfig,
    parse_model_search,
    parse_search_table,
)
from lmbench.search.study import SearchResult, budget_statement, run_search, tune_models

__all__ = [
    "Dimension", "Limits", "ModelSearch", "SearchConfig", "SearchResult", "budget_statement",
    "parse_model_search", "parse_search_table", "run_search", "tune_models",
]  # fmt: skip
