"""Downstream tasks. Each is one module with ``NAME``, ``DEFAULTS``, ``run(config, models, corpus, *,
seed, bootstrap) -> list[TaskRow]`` and optionally ``validate(options)`` (inputs checked before any training);
tasks speak to models only through the LanguageModel protocol."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from lmbench.data.corpus import TokenizedCorpus
from lmbench.errors import ConfigError, LmbenchError
from lmbench.tasks import classify, generate, minimal_pairs, next_word
from lmbench.tasks.base import TASK_COLUMNS, ModelEntry, TaskRow, options

log = logging.getLogger(__name__)

TASKS = {m.NAME: m for m in (next_word, minimal_pairs, classify, generate)}

__all__ = ["TASKS", "TASK_COLUMNS", "ModelEntry", "TaskRow", "run_tasks", "tie_warnings", "validate_task_configs",
           "validate_tasks"]  # fmt: skip
MOSTLY_TIES = 0.5  # a file (or corruption) where more than this share of pairs tie gets a warning


def validate_task_configs(configs: dict[str, Any]) -> None:
    """Check task names and option keys (before anything runs)."""
    for name, config in configs.items():
        if name not in TASKS:
            raise ConfigError(f"tasks.{name}: unknown task; expected one of {', '.join(TASKS)}")
        if not isinstance(config, dict):
            raise ConfigError(f"tasks.{name}: expected a table of options")
        options(name, config, TASKS[name].DEFAULTS)


def validate_tasks(configs: dict[str, Any], model_names: Sequence[str]) -> None:
    """Every task input checked before any training: option values, files (exist, parse: pair-file schema,
    labelled rows, labels that match), and models named by a task. Raises ConfigError / DataError (exit 2)
    naming the file and line or the key."""
    for name, config in configs.items():
        opts = options(name, config, TASKS[name].DEFAULTS)
        if name == generate.NAME:
            generate.validate(opts, model_names)
        elif hasattr(TASKS[name], "validate"):
            TASKS[name].validate(opts)


def tie_warnings(task_rows: list[dict[str, Any]]) -> list[str]:
    """One line per (model, file or corruption) whose pairs mostly tie: its accuracy measures nothing."""
    whole_file: dict[tuple, dict[str, Any]] = {}  # (model, file) -> its largest row: the whole file
    for r in task_rows:
        if r.get("file") and r.get("ties") is not None:
            key = (r["model"], r["file"])
            if key not in whole_file or (r.get("n") or 0) > (whole_file[key].get("n") or 0):
                whole_file[key] = r
    out = []
    for r in task_rows:
        whole = whole_file.get((r["model"], r["file"])) is r if r.get("file") else bool(r.get("corruption"))
        ties, n = r.get("ties"), r.get("n") or 0
        if whole and ties is not None and n and ties > MOSTLY_TIES * n:
            what = r["file"] if r.get("file") else f"corruption {r['corruption']}" + (
                f" at distance {r['distance']}" if r.get("distance") is not None else "")  # fmt: skip
            out.append(
                f"warning: {r['model']} on {what}: {ties:,} of {n:,} pairs tie (both sentences get the same "
                "probability: an order-blind model, probability 0 for both, or the differing words fall to <unk>); "
                "its accuracy measures nothing"
            )
    return out


def run_tasks(
    task_configs: dict[str, dict],
    models: dict[str, ModelEntry],
    corpus: TokenizedCorpus,
    *,
    seed: int,
    bootstrap: int,
) -> tuple[list[dict], list[str]]:
    """Run every configured task; a task that fails is reported in one line and the others still run."""
    rows: list[dict] = []
    errors: list[str] = []
    for name, config in task_configs.items():
        try:
            rows += [
                r.to_dict() for r in TASKS[name].run(config, models, corpus, seed=seed, bootstrap=bootstrap)
            ]
        except LmbenchError as e:
            errors.append(f"task {name}: {e}")
        except Exception as e:  # a broken task must not lose the run
            log.exception("task %s failed", name)
            errors.append(f"task {name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return rows, errors
