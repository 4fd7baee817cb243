"""lm-evaluation-harness tasks on every model of an experiment (``[tasks.lm-eval] tasks = [...]``).

Each model answers lm-eval's requests through :class:`lmbench.integrations.lm_eval.LmbenchLM` (raw text cut
the corpus's way, as the other tasks cut outside text); every figure lm-eval reports becomes a ``tasks.csv`` row
(``subtask`` the lm-eval task, ``metric`` its metric) with lm-eval's standard error and the interval
value ± 1.96 standard errors. Local task YAML (``include_path``) and the datasets cache work offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmbench.data.corpus import TokenizedCorpus
from lmbench.errors import ConfigError
from lmbench.results import TaskResults, TaskRow
from lmbench.tasks.base import ModelEntry, options, text_tokenizer

NAME = "lm-eval"
FILE_OPTIONS = ("include_path",)
DEFAULTS: dict[str, Any] = {
    "tasks": [],
    "include_path": None,  # a folder of lm-eval task YAML files
    "limit": None,  # at most this many documents per task (lm-eval's --limit)
    "num_fewshot": None,
    "context": "sentence",  # LmbenchLM's context mode
    "eos": True,  # a continuation that ends the text predicts </s> too (lmbench's sentence scores)
    "bootstrap_iters": 1000,  # lm-eval's bootstrap for the standard errors of non-mean metrics
}
_MANAGERS: dict[tuple, Any] = {}  # the TaskManager built while validating, reused by run (indexing is slow)


def check_options(opts: dict[str, Any]) -> None:
    tasks = opts["tasks"]
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) and t for t in tasks):
        raise ConfigError(
            f"tasks.{NAME}.tasks: expected a non-empty list of lm-eval task names, got {tasks!r}"
        )
    limit = opts["limit"]
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0):
        raise ConfigError(f"tasks.{NAME}.limit: expected a positive number, got {limit!r}")
    if opts["context"] not in ("sentence", "stream"):
        raise ConfigError(f"tasks.{NAME}.context: expected 'sentence' or 'stream', got {opts['context']!r}")
    if not isinstance(opts["eos"], bool):
        raise ConfigError(f"tasks.{NAME}.eos: expected true or false, got {opts['eos']!r}")


def _manager(opts: dict[str, Any]) -> Any:
    from lmbench.integrations.lm_eval import task_manager

    key = (tuple(opts["tasks"]), opts["include_path"])
    if key not in _MANAGERS:
        _MANAGERS[key] = task_manager(opts["tasks"], opts["include_path"])
    return _MANAGERS[key]


def validate(opts: dict[str, Any], model_names: Sequence[str] = ()) -> None:
    """Before any training: lm-eval is installed, the include folder exists, every task name is known."""
    check_options(opts)
    from lmbench.integrations.lm_eval import require_lm_eval

    try:
        require_lm_eval()
        if opts["include_path"] is not None and not Path(opts["include_path"]).is_dir():
            raise ConfigError(
                f"include_path: {opts['include_path']}: not a folder (expected lm-eval task YAML)"
            )
        _manager(opts)
    except ConfigError as e:
        raise ConfigError(
            f"tasks.{NAME}.{e}" if str(e).startswith(("tasks:", "include_path:")) else str(e)
        ) from None


def run(
    config: dict[str, Any],
    models: dict[str, ModelEntry],
    corpus: TokenizedCorpus,
    *,
    seed: int,
    bootstrap: int,
) -> TaskResults:
    from lmbench.integrations.lm_eval import LmbenchLM, evaluate

    opts = options(NAME, config, DEFAULTS)
    check_options(opts)
    manager = _manager(opts)
    tokenizer = text_tokenizer(corpus, None)
    rows = []
    for name, entry in models.items():
        lm = LmbenchLM(model=entry.model, text_tokenizer=tokenizer, name=name, context=opts["context"],
                       eos=opts["eos"])  # fmt: skip
        scores, _ = evaluate(lm, opts["tasks"], limit=opts["limit"], seed=seed, manager=manager,
                             num_fewshot=opts["num_fewshot"], bootstrap_iters=opts["bootstrap_iters"])  # fmt: skip
        for s in scores:
            half = 1.96 * s.stderr if s.stderr is not None and math.isfinite(s.stderr) else math.nan
            rows.append(TaskRow(name, NAME, s.metric, s.value, s.value - half, s.value + half, s.n,
                                subtask=s.task, stderr=s.stderr, oov_items=None,
                                detail=f"{lm.oov_tokens} of {lm.counts.tokens} tokens outside the vocabulary"))  # fmt: skip
    return TaskResults(rows)
