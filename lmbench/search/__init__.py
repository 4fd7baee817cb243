"""Tuning each model on validation before its final training: the search space (:mod:`.space`, read with the
config) and the studies that run it with Optuna (:mod:`.study`, imported by the experiment that runs them: it
needs the experiment's settings and data, so this package's top level stays light enough for the config reader)."""

from lmbench.search.space import (
    Dimension,
    Limits,
    ModelSearch,
    SearchConfig,
    parse_model_search,
    parse_search_table,
)

__all__ = ["Dimension", "Limits", "ModelSearch", "SearchConfig", "parse_model_search", "parse_search_table"]
