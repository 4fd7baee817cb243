"""Downstream tasks. Each is one module of this package (found there by :data:`TASKS`, so a new task is one new
file) or of an installed package (an entry point in the ``lmbench.tasks`` group naming the module). A task
module declares:

- ``NAME`` (the ``[tasks.NAME]`` table of a config) and ``DEFAULTS`` (every option with its default);
- ``run(config, models, corpus, *, seed, bootstrap) -> TaskResults``: metric rows (:class:`TaskRow`, built
  with :func:`lmbench.tasks.base.metric_row` where a figure is a mean over items) and any generated samples;
- optionally ``FILE_OPTIONS`` (option keys naming files, resolved against the config's folder) and
  ``validate(options, model_names)`` (inputs checked before any training), or instead
  ``load_inputs(options, model_names) -> TaskInputs``: the input files checked and read once, before any
  training, and handed to ``run(..., inputs=...)`` (a file is read once per run, and the task cache hashes
  the bytes that were read).

Tasks speak to models only through the LanguageModel protocol."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from lmbench.data.corpus import TokenizedCorpus
from lmbench.errors import ConfigError, LmbenchError
from lmbench.registry import PluginError, Registry
from lmbench.results import TASK_COLUMNS, Sample, TaskResults, TaskRow
from lmbench.tasks.base import ModelEntry, TaskInputs, options, run_task

log = logging.getLogger(__name__)


def _is_task(obj: Any) -> bool:
    return isinstance(getattr(obj, "NAME", None), str) and callable(getattr(obj, "run", None))


def _adapt(name: str, task: Any) -> Any:
    """A task as the registry keeps it: the module (or any object) itself, once its declarations are checked."""
    if not _is_task(task) or not isinstance(getattr(task, "DEFAULTS", None), dict):
        raise PluginError("expected a task module declaring NAME, DEFAULTS (a dict) and run()")
    if task.NAME != name:
        raise PluginError(f"the task is named {task.NAME!r}, not {name!r}")
    return task


TASKS: Registry[Any] = Registry(
    "task",
    "lmbench.tasks",
    builtins="lmbench.tasks",  # every module of this package that declares NAME and run() is a task
    collect=lambda module: {module.NAME: module} if _is_task(module) else {},
    adapt=_adapt,
)

__all__ = ["TASKS", "TASK_COLUMNS", "ModelEntry", "Sample", "TaskResults", "TaskRow", "file_options", "run_tasks",
           "task_warnings", "tie_warnings", "validate_task_configs", "validate_tasks"]  # fmt: skip
MOSTLY_TIES = 0.5  # a file (or corruption) where more than this share of pairs tie gets a warning


def file_options(name: str) -> tuple[str, ...]:
    """The option keys of task ``name`` that name files (a str or a list of str)."""
    return tuple(getattr(TASKS[name], "FILE_OPTIONS", ()))


def validate_task_configs(configs: dict[str, Any]) -> None:
    """Check task names and option keys (before anything runs)."""
    for name, config in configs.items():
        if name not in TASKS:
            TASKS.lookup(name, where=f"tasks.{name}")  # raises: unknown (the known names), or a broken plugin
        if not isinstance(config, dict):
            raise ConfigError(f"tasks.{name}: expected a table of options")
        options(name, config, TASKS[name].DEFAULTS)


def validate_tasks(configs: dict[str, Any], model_names: Sequence[str]) -> dict[str, TaskInputs]:
    """Every task input checked before any training: option values, files (exist, parse: pair-file schema,
    labelled rows, labels that match), and models named by a task. Raises ConfigError / DataError (exit 2)
    naming the file and line or the key. Returns the files of each task that loads them (``load_inputs``),
    read once here, for :func:`run_tasks` (``inputs``)."""
    inputs: dict[str, TaskInputs] = {}
    for name, config in configs.items():
        opts = options(name, config, TASKS[name].DEFAULTS)
        if hasattr(TASKS[name], "load_inputs"):
            inputs[name] = TASKS[name].load_inputs(opts, model_names)
        elif hasattr(TASKS[name], "validate"):
            TASKS[name].validate(opts, model_names)
    return inputs


def tie_warnings(task_rows: Sequence[TaskRow]) -> list[str]:
    """One line per (model, file or corruption) whose pairs mostly tie: its accuracy measures nothing."""
    whole_file: dict[tuple, TaskRow] = {}  # (model, file) -> its largest row: the whole file
    for r in task_rows:
        if r.file and r.ties is not None:
            key = (r.model, r.file)
            if key not in whole_file or (r.n or 0) > (whole_file[key].n or 0):
                whole_file[key] = r
    out = []
    for r in task_rows:
        whole = whole_file.get((r.model, r.file)) is r if r.file else bool(r.corruption)
        ties, n = r.ties, r.n or 0
        if whole and ties is not None and n and ties > MOSTLY_TIES * n:
            what = r.file if r.file else f"corruption {r.corruption}" + (
                f" at distance {r.distance}" if r.distance is not None else "")  # fmt: skip
            out.append(
                f"warning: {r.model} on {what}: {ties:,} of {n:,} pairs tie (both sentences get the same "
                "probability: an order-blind model, probability 0 for both, or the differing words fall to <unk>); "
                "its accuracy measures nothing"
            )
    return out


def task_warnings(task_rows: Sequence[TaskRow]) -> list[str]:
    """Every warning about task figures, one line each: files whose pairs mostly tie, then each figure a task
    marked suspect (``TaskRow.warning``: many unknown words, one class for every text), once per model and item."""
    out = tie_warnings(task_rows)
    for r in task_rows:
        line = f"warning: {r.model} on {r.task}" + (f" ({r.group()})" if r.group() else "") + f": {r.warning}"
        if r.warning and line not in out:
            out.append(line)
    return out


def run_tasks(
    task_configs: dict[str, dict],
    models: dict[str, ModelEntry],
    corpus: TokenizedCorpus,
    *,
    seed: int,
    bootstrap: int,
    inputs: dict[str, TaskInputs] | None = None,
) -> TaskResults:
    """Run every configured task: its rows, its samples, and one line for each task that failed (a task that
    fails is reported in ``errors`` and the others still run). ``inputs``: the files :func:`validate_tasks`
    read (a task without them reads its own)."""
    out = TaskResults()
    for name, config in task_configs.items():
        try:
            out.extend(run_task(TASKS[name], config, models, corpus, seed=seed, bootstrap=bootstrap,
                                inputs=(inputs or {}).get(name)))  # fmt: skip
        except LmbenchError as e:
            out.errors.append(f"task {name}: {e}")
        except Exception as e:  # a broken task must not lose the run
            log.exception("task %s failed", name)
            out.errors.append(f"task {name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return out
