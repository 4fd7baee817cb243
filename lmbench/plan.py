"""``lmbench run CONFIG --dry-run``: check a config and its data and say what the run will cost, training nothing.

For each (model, seed): parameters, the budget in tokens, steps and epochs, training FLOPs, the precision it
will train in, and an estimated time on this machine. Neural estimates come from a few real optimisation steps
(timed, then thrown away) plus the validation and scoring passes; n-gram estimates from fitting a slice of the
training text and scaling by its size. The estimate is for this machine at this moment: a loaded machine gives
a longer one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from lmbench.config import ExperimentConfig
from lmbench.data.corpus import LoadedData
from lmbench.models.base import LanguageModel

NGRAM_SAMPLE_LINES = 2000  # lines an n-gram is fitted on to time it
FORWARD_SPEEDUP = 3.0  # a forward pass without gradients runs about 3x a training step's tokens per second


@dataclass(frozen=True)
class ModelPlan:
    """One row of the plan."""

    label: str
    family: str
    parameters: int | None
    budget: str
    tokens: int | None
    steps: int | None
    epochs: float | None
    train_flops: float | None
    precision: str
    seconds: float  # estimated training + evaluation time here
    searched: bool = False  # the settings will be tuned first (the estimate is for the settings as written)


def plan_experiment(
    config: ExperimentConfig, loaded: LoadedData, runs: list, *, steps: int = 6
) -> list[ModelPlan]:
    """The plan of every planned (model, seed) of ``config`` on ``loaded`` (``runs``: from ``plan_runs``)."""
    plans = []
    for run in runs:
        model = run.build()
        if hasattr(model, "plan"):
            plans.append(_neural_plan(run, model, config, loaded, steps))
        else:
            plans.append(_counted_plan(run, model, config, loaded))
    return plans


def _scored_tokens(config: ExperimentConfig, loaded: LoadedData) -> int:
    """Tokens the closing evaluation scores: every configured split in every context."""
    data = loaded.data
    return sum(data.split(s).num_predicted for s in config.evaluate.splits) * len(config.evaluate.contexts)


def _neural_plan(run, model, config: ExperimentConfig, loaded: LoadedData, steps: int) -> ModelPlan:
    data = loaded.data
    plan = model.plan(data.train, run.budget, steps=steps)
    train_speed = plan.tokens_per_step / plan.step_seconds
    forward_speed = FORWARD_SPEEDUP * train_speed
    # a minutes-only budget holds its validation passes inside its limit
    passes = 0 if plan.minutes and plan.steps is None else (plan.validation_passes or 1)
    valid_seconds = passes * data.valid.num_predicted / forward_speed
    scoring_seconds = _scored_tokens(config, loaded) / forward_speed
    return ModelPlan(
        label=run.label,
        family=run.spec.family,
        parameters=plan.parameters,
        budget=run.budget.describe() if run.budget is not None else "none",
        tokens=plan.tokens,
        steps=plan.steps,
        epochs=plan.epochs,
        train_flops=plan.train_flops,
        precision=plan.precision,
        seconds=plan.train_seconds + valid_seconds + scoring_seconds,
        searched=run.spec.search is not None,
    )


def _counted_plan(run, model: LanguageModel, config: ExperimentConfig, loaded: LoadedData) -> ModelPlan:
    """A count-based (or pretrained) model: fit it on the first lines and scale the time by the tokens."""
    train = loaded.data.train
    lines = min(NGRAM_SAMPLE_LINES, train.num_lines)
    sample = train.subset(range(lines))
    started = time.perf_counter()
    model.fit(sample, loaded.data.valid, budget=run.budget)
    seconds = (time.perf_counter() - started) * train.num_predicted / max(sample.num_predicted, 1)
    return ModelPlan(
        label=run.label,
        family=run.spec.family,
        parameters=None,
        budget=run.budget.describe() if run.budget is not None else "none",
        tokens=train.num_predicted,
        steps=None,
        epochs=1.0,
        train_flops=None,
        precision="-",
        seconds=seconds,
        searched=run.spec.search is not None,
    )


def format_plan(plans: list[ModelPlan], config: ExperimentConfig, loaded: LoadedData) -> str:
    """The plan as a table and a total, in the words of the run's own console lines."""
    from lmbench.reporting.tables import render

    data = loaded.data
    rows = [
        {
            "model": p.label,
            "family": p.family,
            "parameters": "-" if p.parameters is None else f"{p.parameters:,}",
            "budget": p.budget,
            "tokens": "-" if p.tokens is None else f"{p.tokens:,}",
            "steps": "-" if p.steps is None else f"{p.steps:,}",
            "epochs": "-" if p.epochs is None else f"{p.epochs:.2f}",
            "train FLOPs": "-" if p.train_flops is None else f"{p.train_flops:.2e}",
            "precision": p.precision,
            "est. time": _duration(p.seconds) + (" + search" if p.searched else ""),
        }
        for p in plans
    ]
    total = sum(p.seconds for p in plans)
    lines = [
        f"plan for {config.name}: corpus {loaded.corpus.name}, {data.train.num_predicted:,} training tokens, "
        f"|V| = {len(data.vocab):,}",
        render(rows, "simple"),
        f"estimated total: {_duration(total)} on this machine now (training and evaluation; tasks and "
        "searches not included); nothing was trained or written",
    ]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
