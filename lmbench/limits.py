"""Stated bounds on a config: its file size, its nesting depth, and every count and size that decides how much
memory or time a run takes. Checked when the config is read, before any data is loaded or model built, so a
typo such as ``bootstrap = 1000000000000`` or ``train_lines = 10000000000`` is exit 2 naming the key and its
bound, not a MemoryError after an hour of work.

The bounds are far above any run this project makes on one machine (the largest committed example uses a
tenth or less of each) and far below what would exhaust memory before a single step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lmbench.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: the largest example config is under 4 KiB
MAX_DEPTH = 16  # tables and arrays inside one another (the deepest a config needs is 4: [[model]].search.x)
MAX_MODELS = 256  # [[model]] tables
MAX_LIST = 10_000  # items in any one list (seeds, distances, prompts, cutoffs, choices, formats)
MAX_STRING = 4_096  # characters in any one string (PATH_MAX: the longest path a system takes)

# top-level keys, as dotted paths
TOP = {
    "evaluate.bootstrap": 100_000,  # resamples; 1,000 is the default and plenty for 95% intervals
    "evaluate.block_size": 10_000_000,  # tokens per bootstrap block
    "corpus.max_size": 100_000_000,  # vocabulary entries
    "corpus.min_count": 1_000_000_000,
    "corpus.topics": 10_000,  # synthetic corpus
    "corpus.fillers": 100_000,
    "corpus.min_len": 10_000,
    "corpus.max_len": 10_000,
    "corpus.train_lines": 100_000_000,
    "corpus.valid_lines": 10_000_000,
    "corpus.test_lines": 10_000_000,
    "search.trials": 100_000,
}
SYNTHETIC_TABLES = 50_000_000  # corpus.topics x corpus.fillers^2 transition probabilities (400 MB)
# model settings (any family that has them) and the budget of a model or of the experiment
MODEL = {
    "emb_size": 65_536,
    "hidden_size": 65_536,
    "d_model": 65_536,
    "d_ff": 262_144,
    "layers": 1_024,
    "n_heads": 1_024,
    "window": 1_000_000,
    "seq_len": 1_000_000,
    "stride": 1_000_000,
    "batch_size": 1_000_000,
    "train_batch_size": 1_000_000,
    "warmup_steps": 1_000_000_000,
    "eval_every": 1_000_000_000,
    "patience": 1_000_000,
    "trials": 100_000,
}
BUDGET = {"tokens": 10_000_000_000_000, "epochs": 1_000_000, "minutes": 10_000_000}
TASK = {
    "max_tokens": 100_000_000,
    "context_length": 1_000_000,
    "batch_size": 1_000_000,
    "sentences": 10_000_000,
    "samples": 100_000,
    "prompt_tokens": 10_000,
    "top_k": 100_000_000,
    "show": 10_000,
    "max_train": 100_000_000,
    "max_test": 100_000_000,
    "min_length": 1_000_000,
    "distances": 1_000_000,
}


def check_config_size(source: str, size: int) -> None:
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{source}: the config file is larger than {MAX_CONFIG_BYTES:,} bytes (the bound on a config); "
            "expected a TOML experiment config"
        )


def check_depth(source: str, data: Any) -> None:
    """Tables and arrays nested at most ``MAX_DEPTH`` deep (walked without recursion)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, key, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"{source}: {key or 'the config'}: nested more than {MAX_DEPTH} tables or arrays deep "
                f"(the bound on a config)"
            )
        if isinstance(value, dict):
            stack += [(v, f"{key}.{k}" if key else str(k), depth + 1) for k, v in value.items()]
        elif isinstance(value, str) and len(value) > MAX_STRING:
            raise ConfigError(
                f"{source}: {key}: a string of {len(value):,} characters; the bound is {MAX_STRING:,}"
            )
        elif isinstance(value, list):
            if len(value) > MAX_LIST:
                raise ConfigError(
                    f"{source}: {key}: a list of {len(value):,} items; the bound is {MAX_LIST:,}"
                )
            stack += [(v, f"{key}[{i}]", depth + 1) for i, v in enumerate(value)]


def _numbers(value: Any) -> Iterator[float]:
    items = value if isinstance(value, list) else [value]
    for v in items:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            yield v
        elif isinstance(v, dict):  # a search range: {low, high}, or choices
            yield from _numbers([v.get("low"), v.get("high"), *(v.get("choices") or [])])


def _check(source: str, key: str, value: Any, bound: float) -> None:
    for number in _numbers(value):
        if number > bound:
            raise ConfigError(
                f"{source}: {key}: {number!r} is above the bound of {bound:,} (limits in lmbench/limits.py)"
            )


def check_limits(source: str, data: dict[str, Any]) -> None:
    """Every bounded count and size of a parsed config (before its keys are read; types are checked later)."""
    check_depth(source, data)
    for dotted, bound in TOP.items():
        table, _, key = dotted.partition(".")
        section = data.get(table)
        if isinstance(section, dict) and key in section:
            _check(source, dotted, section[key], bound)
    corpus = data.get("corpus")
    if isinstance(corpus, dict):
        topics, fillers = corpus.get("topics", 4), corpus.get("fillers", 60)
        if all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (topics, fillers)):
            if topics * fillers * fillers > SYNTHETIC_TABLES:
                raise ConfigError(
                    f"{source}: corpus.topics x corpus.fillers^2 = {topics * fillers * fillers:,} transition "
                    f"probabilities; the bound is {SYNTHETIC_TABLES:,}"
                )
    for name, bound in BUDGET.items():
        budget = data.get("budget")
        if isinstance(budget, dict) and name in budget:
            _check(source, f"budget.{name}", budget[name], bound)
    models = data.get("model")
    if isinstance(models, list):
        if len(models) > MAX_MODELS:
            raise ConfigError(
                f"{source}: model: {len(models):,} [[model]] tables; the bound is {MAX_MODELS:,}"
            )
        for i, table in enumerate(models, start=1):
            if not isinstance(table, dict):
                continue
            where = f"model '{table['name']}'" if isinstance(table.get("name"), str) else f"model #{i}"
            for key, bound in MODEL.items():
                if key in table:
                    _check(source, f"{where}: {key}", table[key], bound)
            search = table.get("search")
            if isinstance(search, dict):
                for key, bound in MODEL.items():
                    if key in search:
                        _check(source, f"{where}: search.{key}", search[key], bound)
            budget = table.get("budget")
            if isinstance(budget, dict):
                for key, bound in BUDGET.items():
                    if key in budget:
                        _check(source, f"{where}: budget.{key}", budget[key], bound)
    tasks = data.get("tasks")
    if isinstance(tasks, dict):
        for task, options in tasks.items():
            if isinstance(options, dict):
                for key, bound in TASK.items():
                    if key in options:
                        _check(source, f"tasks.{task}.{key}", options[key], bound)
