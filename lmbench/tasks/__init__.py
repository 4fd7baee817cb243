"""Downstream tasks. Each is one module with ``NAME``, ``DEFAULTS`` and ``run(config, models, corpus, *,
seed, bootstrap) -> rows``; tasks speak to models only through the LanguageModel protocol."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lmbench.data.corpus import TokenizedCorpus
from lmbench.errors import ConfigError, LmbenchError
from lmbench.tasks import classify, generate, minimal_pairs, next_word
from lmbench.tasks.base import ModelEntry, options

log = logging.getLogger(__name__)

TASKS = {m.NAME: m for m in (next_word, minimal_pairs, classify, generate)}

__all__ = ["TASKS", "ModelEntry", "run_tasks", "validate_task_configs"]


def validate_task_configs(configs: dict[str, Any], *, base: Path | None = None) -> None:
    """Check task names and option keys (before anything runs); relative file paths resolve against ``base``."""
    for name, config in configs.items():
        if name not in TASKS:
            raise ConfigError(f"tasks.{name}: unknown task; expected one of {', '.join(TASKS)}")
        if not isinstance(config, dict):
            raise ConfigError(f"tasks.{name}: expected a table of options")
        options(name, config, TASKS[name].DEFAULTS)
        if base is not None:
            for key in ("train", "test"):
                if isinstance(config.get(key), str):
                    config[key] = (
                        str((base / config[key]).resolve())
                        if not Path(config[key]).is_absolute()
                        else config[key]
                    )
            if isinstance(config.get("files"), list):
                config["files"] = [str(base / f) if not Path(f).is_absolute() else f for f in config["files"]]


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
            rows += TASKS[name].run(config, models, corpus, seed=seed, bootstrap=bootstrap)
        except LmbenchError as e:
            errors.append(f"task {name}: {e}")
        except Exception as e:  # a broken task must not lose the run
            log.exception("task %s failed", name)
            errors.append(f"task {name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return rows, errors
