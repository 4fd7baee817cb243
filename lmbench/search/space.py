"""What a search may try: ``[model.search]`` (the space of one model's settings, its limits and trial budget)
and ``[search]`` (limits shared by every searched model), read from the config and checked before anything runs.

A setting's space is a list of choices (``dropout = [0.0, 0.1, 0.3]``) or a range
(``lr = {low = 1e-4, high = 1e-2, log = true}``; integer when both ends are: ``layers = {low = 1, high = 3}``).
Every value must be one the model's family accepts. Needs no Optuna.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lmbench.errors import ConfigError
from lmbench.models.base import Budget

DEFAULT_TRIALS = 20
SEARCH_KEYS = ("trials", "trial_budget", "budget")  # the rest of a [model.search] table are settings
RANGE_KEYS = ("low", "high", "log", "step")  # the keys of a range {low = ..., high = ...}


@dataclass(frozen=True)
class Dimension:
    """One setting to tune: a list of ``choices``, or a ``low``..``high`` range (int when both ends are)."""

    name: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    def suggest(self, trial: Any) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def to_dict(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log, "step": self.step, "int": self.integer}

    def describe(self) -> str:
        if self.choices is not None:
            return "{" + ", ".join(str(c) for c in self.choices) + "}"
        return (
            f"[{self.low:g}, {self.high:g}]" + (" log" if self.log else "") + (" int" if self.integer else "")
        )


@dataclass(frozen=True)
class Limits:
    """When a search stops: after ``trials`` finished trials and/or once finished trials spent ``budget``."""

    trials: int | None = None
    budget: Budget | None = None

    def describe(self) -> str:
        parts = []
        if self.trials is not None:
            parts.append(f"{self.trials} trials")
        if self.budget is not None:
            parts.append(f"{self.budget.describe()} in total")
        return " or ".join(parts)


@dataclass
class SearchConfig:
    """``[search]`` at the top level: limits and trial budget shared by every searched model."""

    trials: int | None = None
    budget: Budget | None = None
    trial_budget: Budget | None = None


@dataclass
class ModelSearch:
    """``[model.search]``: the space, this model's own limits (over ``[search]``'s) and per-trial budget."""

    space: dict[str, Dimension]
    trials: int | None = None
    budget: Budget | None = None
    trial_budget: Budget | None = None

    def limits(self, shared: SearchConfig | None) -> Limits:
        shared = shared or SearchConfig()
        trials, budget = self.trials, self.budget
        if trials is None and budget is None:
            trials, budget = shared.trials, shared.budget
        if trials is None and budget is None:
            trials = DEFAULT_TRIALS
        return Limits(trials, budget)


# ------------------------------------------------------------------------------------------ config checks
def _positive_int(source: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{source}: {key}: expected a whole number >= 1, got {value!r}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_dimension(source: str, key: str, name: str, value: Any) -> Dimension:
    """A list of choices or a ``{low, high[, log][, step]}`` table; anything else is a one-line error."""
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{source}: {key}: empty list of choices")
        for choice in value:
            if not (choice is None or isinstance(choice, (bool, int, float, str))):
                raise ConfigError(
                    f"{source}: {key}: choices must be numbers, strings or booleans, got {choice!r}"
                )
        if len(set(map(repr, value))) != len(value):
            raise ConfigError(f"{source}: {key}: choices must be distinct, got {value!r}")
        return Dimension(name, choices=tuple(value))
    if not isinstance(value, dict):
        raise ConfigError(
            f"{source}: {key}: expected a list of choices or a table {{low = ..., high = ...}}, got {value!r}"
        )
    unknown = sorted(set(value) - set(RANGE_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key '{key}.{unknown[0]}' (expected low, high, log, step)")
    for end in ("low", "high"):
        if end not in value:
            raise ConfigError(f"{source}: {key}: missing '{end}'")
        if not _number(value[end]) or not math.isfinite(value[end]):
            raise ConfigError(f"{source}: {key}.{end}: expected a number, got {value[end]!r}")
    low, high = value["low"], value["high"]
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{source}: {key}.log: expected true or false, got {log!r}")
    step = value.get("step")
    if step is not None and (not _number(step) or step <= 0):
        raise ConfigError(f"{source}: {key}.step: expected a positive number, got {step!r}")
    if low > high:
        raise ConfigError(f"{source}: {key}: low {low!r} is above high {high!r}")
    if low == high:
        raise ConfigError(
            f"{source}: {key}: empty range (low = high = {low!r}); set the value directly instead"
        )
    if log and low <= 0:
        raise ConfigError(f"{source}: {key}: a log range needs low > 0, got {low!r}")
    if log and step is not None:
        raise ConfigError(f"{source}: {key}: give 'log' or 'step', not both")
    integer = all(isinstance(v, int) for v in (low, high)) and (step is None or isinstance(step, int))
    if not integer:
        low, high = float(low), float(high)
    return Dimension(name, low=low, high=high, log=log, step=step, integer=integer)


def _budget_table(source: str, key: str, value: Any) -> Budget:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {key}: expected a table such as {{tokens = 1_000_000}}, got {value!r}")
    unknown = sorted(set(value) - {"epochs", "tokens", "minutes"})
    if unknown:
        raise ConfigError(f"{source}: unknown key '{key}.{unknown[0]}' (expected epochs, tokens or minutes)")
    for name, number in value.items():
        if not _number(number):
            raise ConfigError(f"{source}: {key}.{name}: expected a number, got {number!r}")
    try:
        budget = Budget(**value)
    except ConfigError as e:
        raise ConfigError(f"{source}: {key}.{e}") from None
    if budget.unlimited:
        raise ConfigError(f"{source}: {key}: expected at least one of epochs, tokens, minutes")
    return budget


def parse_search_table(source: str, table: Any) -> SearchConfig:
    """``[search]``: ``trials``, ``budget`` (total per model) and ``trial_budget``; unknown keys are errors."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: search: expected a table, got {table!r}")
    unknown = sorted(set(table) - set(SEARCH_KEYS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key 'search.{unknown[0]}' (expected trials, budget, trial_budget)"
        )
    out = SearchConfig()
    if "trials" in table:
        out.trials = _positive_int(source, "search.trials", table["trials"])
    if "budget" in table:
        out.budget = _budget_table(source, "search.budget", table["budget"])
    if "trial_budget" in table:
        out.trial_budget = _budget_table(source, "search.trial_budget", table["trial_budget"])
    return out


def parse_model_search(
    source: str, where: str, table: Any, family: str, params: dict[str, Any]
) -> ModelSearch:
    """``[model.search]`` of one model, checked against what its family accepts (``where``: ``model 'lstm'``)."""
    from lmbench.models.registry import create_model

    key = f"{where}.search"
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {key}: expected a table, got {table!r}")
    probe = create_model(family, **params)
    settings = probe.get_params()
    search = ModelSearch(space={})
    if "trials" in table:
        search.trials = _positive_int(source, f"{key}.trials", table["trials"])
    if "budget" in table:
        search.budget = _budget_table(source, f"{key}.budget", table["budget"])
    if "trial_budget" in table:
        search.trial_budget = _budget_table(source, f"{key}.trial_budget", table["trial_budget"])
        if probe.default_budget() is None:
            raise ConfigError(f"{source}: {key}.trial_budget: family {family!r} takes no training budget")
    for name, value in table.items():
        if name in SEARCH_KEYS:
            continue
        if name == "seed":
            raise ConfigError(f"{source}: {key}.seed: the seed is not a setting to tune (use 'seeds')")
        if name not in settings:
            expected = ", ".join(sorted(k for k in settings if k != "seed"))
            raise ConfigError(
                f"{source}: {key}.{name}: family {family!r} has no setting {name!r}; expected some of {expected}"
            )
        if name in params:
            raise ConfigError(
                f"{source}: {key}.{name}: {name!r} is both set in the model and searched; keep one"
            )
        dim = parse_dimension(source, f"{key}.{name}", name, value)
        values = list(dim.choices) if dim.choices is not None else [dim.low, dim.high]
        for v in values:  # every end of the range must be a value the family accepts
            try:
                create_model(family, **{**params, name: v})
            except ConfigError as e:
                raise ConfigError(f"{source}: {key}.{name}: value {v!r} is not accepted ({e})") from None
        search.space[name] = dim
    if not search.space:
        raise ConfigError(
            f"{source}: {key}: no setting to search (add e.g. lr = {{low = 1e-4, high = 1e-2, log = true}})"
        )
    return search
