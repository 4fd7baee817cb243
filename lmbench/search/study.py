"""Tuning on validation before the final training: ``[model.search]`` and ``[search]``, run with Optuna.

A search tries settings from a model's search space, each trial trained under a small ``trial_budget`` and
scored by validation perplexity (never test) through the one evaluation path. A TPE sampler seeded from the
experiment seed proposes the settings; a median pruner stops trials whose learning curve (the training
loop's validation points) is worse than the other trials' at the same point. The winner's settings are then
trained under the model's own budget and seeds like any other model.

The study lives in SQLite in the model's run folder (``runs/<experiment>/<model>/search.db``), or in any
database Optuna accepts (``--storage URL``), under a name that fingerprints everything that determines its
trials (search space, other settings, trial budget, data, vocabulary, sampler): an interrupted search
resumes without repeating a finished trial (an interrupted trial is run again with the same settings), a
finished search is not re-run, a changed search space starts a new study, and several processes sharing a
storage split the trials of one study between them.

Budgets: each model's search stops after ``trials`` finished trials, or, with ``budget = {tokens = ...}``
(or epochs, minutes), once its finished trials have spent that much. ``[search]`` at the top level gives
every searched model the same limits; the report states what each spent.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import lmbench
from lmbench.errors import ConfigError, TrainingDiverged, first_line
from lmbench.models.base import Budget, LanguageModel
from lmbench.results.run import SearchLimit, SearchSpent, SearchSummary, SearchTrial
from lmbench.runs import canonical_json, describe_change, fingerprint
from lmbench.search import study_file
from lmbench.search.space import Limits

if TYPE_CHECKING:
    from lmbench.config import ExperimentConfig, ModelConfig
    from lmbench.data.corpus import LoadedData, TokenizedCorpus
    from lmbench.executors import Executor

SAMPLER = {"name": "tpe", "n_startup_trials": 5}
PRUNER = {"name": "median", "n_startup_trials": 3, "n_warmup_steps": 0}
POLL_SECONDS = 2.0  # how often a process waiting for another's trials looks again
HEARTBEAT_SECONDS = 20  # a trial whose process stopped beating for 4x this is failed and run again


def search_identity(
    spec: ModelConfig, config: ExperimentConfig, loaded: LoadedData, trial_budget: Budget | None
) -> dict[str, Any]:
    """Everything that determines a study's trials (not its limits: raising ``trials`` extends a study)."""
    from lmbench.models.registry import create_model

    assert spec.search is not None
    c = config.corpus
    base = create_model(spec.family, **spec.params).get_params()
    for name in spec.search.space:
        base.pop(name, None)
    base.pop("seed", None)
    return {
        "family": spec.family,
        "space": {name: dim.to_dict() for name, dim in spec.search.space.items()},
        "params": base,
        "seed": trial_seed(spec, config),
        "trial_budget": trial_budget.to_dict() if trial_budget is not None else None,
        "objective": {"split": "valid", "context": config.evaluate.contexts[0]},
        "data": {split: loaded.corpus.checksums.get(split) for split in ("train", "valid")},
        "vocabulary": {"tokenizer": c.tokenizer, "min_count": c.min_count, "max_size": c.max_size},
        "sampler": {**SAMPLER, "seed": config.seed},
        "pruner": PRUNER,
        "lmbench": lmbench.__version__,
    }


def trial_seed(spec: ModelConfig, config: ExperimentConfig) -> int:
    """Trials train with the model's first seed."""
    return (spec.seeds or config.seeds or [config.seed])[0]


def _storage(url: str) -> Any:
    """Optuna's database storage, with heartbeats (a trial whose process died is run again). Several processes
    opening a new database at once race to create its tables: the loser tries again, and finds them."""
    import optuna

    engine_kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=4 * HEARTBEAT_SECONDS,
            )
        except Exception as e:
            if attempt == 4 or type(e).__name__ not in ("OperationalError", "IntegrityError"):
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _spent(trials: list[Any], train_tokens: int) -> SearchSpent:
    """What the finished ``trials`` spent together (``epochs``: their tokens over the training split's)."""
    tokens = sum(int(t.user_attrs.get("tokens", 0)) for t in trials)
    return SearchSpent(
        trials=len(trials),
        complete=sum(t.state.name == "COMPLETE" for t in trials),
        pruned=sum(t.state.name == "PRUNED" for t in trials),
        tokens=tokens,
        epochs=tokens / train_tokens if train_tokens else 0.0,
        seconds=float(sum(t.user_attrs.get("seconds", 0.0) for t in trials)),
    )


MIN_CUT = 0.5  # a last trial cut below this share of a full trial is not started: too short to compare


@dataclass
class NextTrial:
    """The budget of the next trial (``trial_budget`` or that budget cut to what the limits leave), or
    ``budget is None`` and ``stop`` saying why no further trial fits."""

    budget: Budget | None
    cut: str = ""  # "cut to tokens=12,345: what the search's limit leaves" (empty: a full trial)
    stop: str = ""


def trial_tokens(trial_budget: Budget | None, train_tokens: int) -> int | None:
    """Tokens one full trial trains on (None where only a wall-clock limit bounds it)."""
    if trial_budget is None:
        return train_tokens  # a family without a budget counts the training data once
    sizes = [trial_budget.tokens] if trial_budget.tokens else []
    if trial_budget.epochs:
        sizes.append(math.floor(trial_budget.epochs * train_tokens))
    return min(sizes) if sizes else None


def next_trial(
    limits: Limits, trial_budget: Budget | None, spent: SearchSpent, running: int, train_tokens: int,
    *, takes_budget: bool = True,
) -> NextTrial:  # fmt: skip
    """What the next trial may spend so that the search's total never exceeds its limits: a running trial
    is counted as a full one; a trial that does not fit whole is cut to what is left (tokens or minutes), or
    not started where less than ``MIN_CUT`` of a trial is left or the family cannot be cut (no budget)."""
    b = limits.budget
    if b is None:
        return NextTrial(trial_budget)
    full = trial_tokens(trial_budget, train_tokens)
    n = max(spent.trials, 1)
    pending = running * (full if full is not None else spent.tokens / n)
    caps: dict[str, float] = {}
    if b.tokens is not None:
        caps["tokens"] = b.tokens - spent.tokens - pending
    if b.epochs is not None:
        caps["tokens"] = min(
            caps.get("tokens", math.inf), math.floor(b.epochs * train_tokens) - spent.tokens - pending
        )
    if b.minutes is not None:
        caps["minutes"] = b.minutes - (spent.seconds + running * spent.seconds / n) / 60
    budget, cuts = trial_budget, []
    if "tokens" in caps:
        left = math.floor(caps["tokens"])
        if full is not None and left >= full:
            pass
        elif left <= 0 or (full is not None and (left < MIN_CUT * full or not takes_budget)):
            return NextTrial(
                None, stop=f"{max(left, 0):,} tokens of the limit left, less than a trial can use"
            )
        else:
            budget = Budget(**{**(budget.to_dict() if budget else {}), "tokens": left})
            cuts.append(f"tokens={left:,}")
    if "minutes" in caps:
        left_min = caps["minutes"]
        own = budget.minutes if budget is not None else None
        if left_min <= 0 or not takes_budget:
            return NextTrial(None, stop=f"{max(left_min, 0):.2f} minutes of the limit left")
        if own is None or left_min < own:
            budget = Budget(**{**(budget.to_dict() if budget else {}), "minutes": left_min})
            cuts.append(f"minutes={left_min:.2f}")
    cut = f"cut to {', '.join(cuts)}: what the search's limit leaves" if cuts else ""
    return NextTrial(budget, cut=cut)


def run_search(
    spec: ModelConfig,
    config: ExperimentConfig,
    loaded: LoadedData,
    runs_dir: Path,
    *,
    storage: str | None = None,
    say: Callable[[str], None] = lambda message: None,
    executor: Executor | None = None,
) -> SearchSummary:
    """Run (or resume, or reuse) the study of one searched model and return its best settings; trials run
    through ``executor`` (default: one after another in this process; Ray: up to its ``jobs`` at once)."""
    from lmbench.executors import Executor

    try:
        import optuna
    except ImportError:
        raise ConfigError(
            f"{config.source}: model '{spec.name}'.search: tuning needs Optuna: pip install 'lmbench[tune]'"
        ) from None
    pool = executor or Executor()
    with warnings.catch_warnings():
        # heartbeats and stale-trial checks are marked experimental in Optuna; they are what makes resuming work
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return _run_search(spec, config, loaded, runs_dir, storage=storage, say=say, executor=pool)
        except (
            Exception
        ) as e:  # damage SQLite found only mid-search: the file is moved aside, the search rebuilt
            if storage is not None or not study_file.is_damage(e):
                raise
            path = runs_dir / spec.name / "search.db"
            study_file.move_aside(path, spec.name, f"SQLite: {first_line(e)}", say)
            return _run_search(spec, config, loaded, runs_dir, storage=storage, say=say, executor=pool)


@dataclass
class TrialPlan:
    """What one trial needs wherever it runs (a Ray task gets a pickled copy): the model, the experiment, the
    study's name and database, the trial's budget (``cut``: why it is less than a full trial) and the limits."""

    spec: ModelConfig
    config: ExperimentConfig
    study_name: str
    url: str  # SQLite paths absolute, so that a task in another folder opens the same file
    trial_budget: Budget | None
    limits: Limits
    cut: str = ""  # "cut to tokens=...: what the search's limit leaves" (see next_trial)
    ticket: str = ""  # names the submission, so the driver knows its own trials among the running ones


def _run_search(
    spec: ModelConfig,
    config: ExperimentConfig,
    loaded: LoadedData,
    runs_dir: Path,
    *,
    storage: str | None,
    say: Callable[[str], None],
    executor: Executor,
) -> SearchSummary:
    """Open (or create) the model's study, drive its trials to the limits and summarise what it found."""
    import optuna

    from lmbench.training import distributed

    assert spec.search is not None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # lmbench says what happened, one line a trial
    trial_budget = _trial_budget(spec, config)
    limits = spec.search.limits(config.search)
    identity = search_identity(spec, config, loaded, trial_budget)
    study_name = f"{spec.name}-{fingerprint(identity)}"
    path = runs_dir / spec.name / "search.db"
    url, store = _open_storage(path, storage, spec.name, say)
    _say_new_study(store, spec.name, study_name, identity, say)
    study = optuna.create_study(
        study_name=study_name, storage=store, direction="minimize", pruner=_pruner(), load_if_exists=True
    )
    study.set_user_attr("identity", canonical_json(identity))
    plan = TrialPlan(spec, config, study_name, _absolute_sqlite(url), trial_budget, limits)
    finished, spent = _TrialDriver(plan, study, store, loaded, executor, say, storage).run()
    summary = _summary(plan, study, finished, spent, storage=url if storage is not None else str(path))
    if storage is None and distributed.is_main():
        study_file.record_finished(path, store)  # verified before the next search opens it
    return summary


def _trial_budget(spec: ModelConfig, config: ExperimentConfig) -> Budget | None:
    """What one trial trains on: the search's ``trial_budget`` (the model's, else ``[search]``'s), else the
    model's own budget, else the experiment's, resolved for the family."""
    from lmbench.models.base import resolve_budget
    from lmbench.models.registry import create_model

    assert spec.search is not None
    shared = config.search
    return resolve_budget(
        spec.search.trial_budget or (shared.trial_budget if shared else None) or spec.budget or config.budget,
        create_model(spec.family, **spec.params),
    )


def _summary(
    plan: TrialPlan, study: Any, finished: list[Any], spent: SearchSpent, *, storage: str
) -> SearchSummary:
    """The search's record: the best finished trial's settings (ties: the earlier trial), every trial but
    the surplus ones, the space, limits and what was spent."""
    spec, limits, trial_budget = plan.spec, plan.limits, plan.trial_budget
    assert spec.search is not None
    complete = [t for t in finished if t.state.name == "COMPLETE"]
    if not complete:
        raise RuntimeError(f"no trial of study {plan.study_name} finished (all pruned)")
    best = min(complete, key=lambda t: (t.value, t.number))
    return SearchSummary(
        family=spec.family,
        best=dict(best.params),
        best_valid_perplexity=float(best.value),
        space={name: dim.to_dict() for name, dim in spec.search.space.items()},
        limits=limits.describe(),
        trial_budget=trial_budget.describe() if trial_budget is not None else "full data",
        spent=spent,
        limit=SearchLimit(trials=limits.trials, **(limits.budget.to_dict() if limits.budget else {})),
        study=plan.study_name,
        storage=storage,
        trials=[
            _trial_row(spec.name, t)
            for t in study.get_trials(deepcopy=False)
            if not t.user_attrs.get("surplus")
        ],
        parallel=int(study.user_attrs.get("parallel", 1)),
    )


def _open_storage(path: Path, storage: str | None, model: str, say: Callable[[str], None]) -> tuple[str, Any]:
    """The study's database and its URL: ``storage``, or SQLite at ``path`` (checked before any write: a
    damaged file is named and moved aside)."""
    if storage is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        study_file.check_or_move_aside(path, model, say)
        url = f"sqlite:///{path}"
    else:
        url = storage
    try:
        return url, _storage(url)
    except Exception as e:  # a malformed URL, an unreachable server, a missing driver
        if (
            storage is None
        ):  # the study file checked out, yet SQLite cannot open it (a full disk, permissions)
            raise OSError(
                f"{path}: cannot open the search study ({type(e).__name__}: {first_line(e)})"
            ) from None
        raise ConfigError(f"--storage: cannot open {url!r} ({type(e).__name__}: {first_line(e)})") from None


class _TrialDriver:
    """Submits one study's trials through ``executor``, up to its ``jobs`` at once, each with the budget
    :func:`next_trial` leaves (trials in flight counted as full ones), until the limits are reached and no
    trial runs."""

    def __init__(
        self,
        plan: TrialPlan,
        study: Any,
        store: Any,
        loaded: LoadedData,
        executor: Executor,
        say: Callable[[str], None],
        storage: str | None,
    ) -> None:
        from lmbench.models.registry import create_model

        self.plan, self.study, self.store, self.executor, self.say = plan, study, store, executor, say
        self.storage = storage
        self.train_tokens = loaded.data.train.num_predicted
        self.here = executor.kind == "local"  # trials in this process share its open storage
        self.data_handle = executor.share(loaded)
        self.resources = executor.resources(create_model(plan.spec.family, **plan.spec.params).get_params())
        self.pending: list[Any] = []  # the handles of trials submitted and not yet collected
        self.tickets: list[str] = []  # and their tickets
        self.errors: list[Exception] = []
        self.started = self.stop_said = False

    def run(self) -> tuple[list[Any], SearchSpent]:
        """Drive the study to its limits; returns its finished trials and what they spent."""
        plan, limits = self.plan, self.plan.limits
        while True:
            trials, finished, running, spent = self._look()
            busy = _in_flight(trials, set(self.tickets))
            nxt = next_trial(
                limits, plan.trial_budget, spent, busy, self.train_tokens,
                takes_budget=plan.trial_budget is not None,
            )  # fmt: skip
            if nxt.stop and not self.stop_said and not busy:
                self.say(f"{plan.spec.name}: no further trial: {nxt.stop} ({limits.describe()})")
                self.stop_said = True
            trials_left = limits.trials is None or spent.trials + busy < limits.trials
            if not self.errors and len(self.pending) < self.executor.jobs and trials_left and not nxt.stop:
                self._submit(nxt, spent, busy, len(finished))
            elif self.pending:  # collect one finished trial, then look at the study again
                self._collect()
            elif self.errors:
                raise self.errors[0]
            elif running:  # another process is on the last trials: their results decide the best settings
                time.sleep(POLL_SECONDS)
            else:
                break
        if not self.started:
            self.say(
                f"{plan.spec.name}: search finished earlier ({spent.trials} trials in study {plan.study_name}), "
                "reused"
            )
        return finished, spent

    def _look(self) -> tuple[list[Any], list[Any], list[Any], SearchSpent]:
        """The study now, after failing dead trials and queueing interrupted ones again: all its trials, the
        finished ones, the running ones and what the finished ones spent."""
        import optuna

        optuna.storages.fail_stale_trials(self.study)
        _fail_dead_trials(self.store, self.study.get_trials(deepcopy=False))
        trials = self.study.get_trials(deepcopy=False)
        _retry_interrupted(self.study, trials)
        finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
        running = [t for t in trials if t.state.name == "RUNNING"]
        return trials, finished, running, _spent(finished, self.train_tokens)

    def _submit(self, nxt: NextTrial, spent: SearchSpent, busy: int, finished: int) -> None:
        """Submit one trial with the budget ``nxt`` leaves (the first submission says what is searched)."""
        plan = self.plan
        if not self.started:
            _check_not_distributed(plan, self.storage)
            self.say(_search_line(plan, self.executor.jobs, finished))
            self.started = True
        ticket = secrets.token_hex(8)
        seed = _sampler_seed(plan.config.seed, int(spent.trials), others_running=busy > 0)
        trial = replace(plan, trial_budget=nxt.budget, cut=nxt.cut, ticket=ticket)
        handle = self.executor.submit(
            run_trial, trial, self.data_handle, seed, self.store if self.here else None,
            resources=self.resources,
        )  # fmt: skip
        self.pending.append(handle)
        self.tickets.append(ticket)
        _note_parallel(self.study, len(self.pending))

    def _collect(self) -> None:
        """Wait for one submitted trial and say its lines; an error stops further submissions, as in a
        sequential search (the trials in flight finish first)."""
        i = self.pending.index(self.executor.wait(self.pending))
        handle, _ = self.pending.pop(i), self.tickets.pop(i)
        try:
            for line in self.executor.result(handle):
                self.say(line)
        except Exception as e:
            self.errors.append(e)


def _in_flight(trials: list[Any], mine: set[str]) -> int:
    """Trials running now: this driver's submissions not yet finished in the study (a task may not have
    created its trial yet) and other processes' running trials."""
    done = {t.user_attrs.get("ticket") for t in trials if t.state.name not in ("RUNNING", "WAITING")}
    others = sum(t.state.name == "RUNNING" and t.user_attrs.get("ticket") not in mine for t in trials)
    return len(mine - done) + others


def _check_not_distributed(plan: TrialPlan, storage: str | None) -> None:
    from lmbench.training import distributed

    if distributed.world_size() > 1:  # each rank would train a different trial in one DDP group
        raise ConfigError(
            f"{plan.config.source}: model '{plan.spec.name}'.search: trials do not run under torchrun; run the "
            + ("search in one process (or several sharing --storage)" if storage else "search first")
            + ", then torchrun reuses the finished study"
        )


def _search_line(plan: TrialPlan, jobs: int, finished: int) -> str:
    """``lstm: searching lr in [...] (limits, budget a trial; n finished earlier; 2 trials at a time)``."""
    assert plan.spec.search is not None
    space = ", ".join(f"{n} in {d.describe()}" for n, d in plan.spec.search.space.items())
    budget = plan.trial_budget.describe() if plan.trial_budget else "full data"
    return (
        f"{plan.spec.name}: searching {space} ({plan.limits.describe()}, {budget} a trial"
        + (f"; {finished} finished earlier" if finished else "")
        + (f"; {jobs} trials at a time" if jobs > 1 else "")
        + ")"
    )


def _pruner() -> Any:
    import optuna

    return optuna.pruners.MedianPruner(
        n_startup_trials=PRUNER["n_startup_trials"], n_warmup_steps=PRUNER["n_warmup_steps"]
    )


def _absolute_sqlite(url: str) -> str:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return f"sqlite:///{Path(url.removeprefix('sqlite:///')).absolute()}"
    return url


def _note_parallel(study: Any, running: int) -> None:
    """The most trials this study ever had in flight at once, for the report."""
    if running > int(study.user_attrs.get("parallel", 1)):
        study.set_user_attr("parallel", running)


def run_trial(plan: TrialPlan, loaded: LoadedData, sampler_seed: int, store: Any = None) -> list[str]:
    """Run one trial of the plan's study (here, or in a Ray task that opens the storage itself) and return its
    report line. The sampler is seeded with ``sampler_seed``; the pruner compares with the study's other trials."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        if store is None:
            _check_reachable(plan.url)
            store = _storage(plan.url)
        study = optuna.load_study(
            study_name=plan.study_name,
            storage=store,
            sampler=optuna.samplers.TPESampler(
                n_startup_trials=SAMPLER["n_startup_trials"], seed=sampler_seed
            ),
            pruner=_pruner(),
        )
        lines: list[str] = []
        try:
            study.optimize(
                _objective(plan, study, loaded),
                n_trials=1,
                catch=(),
                gc_after_trial=False,
                callbacks=[lambda _, trial: lines.append(_trial_line(plan.spec.name, trial))],
            )
        except _Surplus:
            pass
        return lines


def _check_reachable(url: str) -> None:
    """A task on another machine must open the driver's study, never create an empty one of its own."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise ConfigError(
                f"{path}: the study's SQLite file is not on {socket.gethostname()}; on a cluster give the runs "
                "folder shared storage, or every node one database: --storage postgresql://..."
            )


def _objective(plan: TrialPlan, study: Any, loaded: LoadedData) -> Callable[[Any], float]:
    """The trial function: train under the trial budget and return validation perplexity (or prune)."""
    import optuna

    from lmbench.models.registry import create_model

    spec = plan.spec
    assert spec.search is not None
    probe = create_model(spec.family, **spec.params)
    data = loaded.data
    seed = trial_seed(spec, plan.config)
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: Any) -> float:
        _claim(trial, plan, study)
        settings = {name: dim.suggest(trial) for name, dim in spec.search.space.items()}
        params = {**spec.params, **settings}
        if probe.stochastic:
            params["seed"] = seed
        model = create_model(spec.family, **params)
        trial.set_user_attr("worker", worker)
        if plan.cut:
            trial.set_user_attr("note", plan.cut)
        start = time.perf_counter()
        tokens = _fit_trial(trial, model, data, plan.trial_budget, start)
        perplexity = _valid_perplexity(model, data, plan.config.evaluate.contexts[0])
        _finish(trial, tokens, time.perf_counter() - start)
        if not math.isfinite(perplexity):
            trial.set_user_attr("note", f"validation perplexity is {perplexity}")
            raise optuna.TrialPruned(f"validation perplexity is {perplexity}")
        return float(perplexity)

    return objective


def _claim(trial: Any, plan: TrialPlan, study: Any) -> None:
    """Mark a new trial as this process's and this submission's; drop it (:class:`_Surplus`) where another
    process started the last trial the limit allows at the same moment."""
    trial.set_user_attr("process", _process_key())  # first: a killed run's trial is failed at once on resume
    trial.set_user_attr("ticket", plan.ticket)  # the driver counts it as its own while it runs
    if plan.limits.trials is not None:
        earlier = [
            t for t in study.get_trials(deepcopy=False)
            if t.number < trial.number and t.state.name in ("COMPLETE", "PRUNED", "RUNNING")
        ]  # fmt: skip
        if len(earlier) >= plan.limits.trials:
            trial.set_user_attr("surplus", True)
            raise _Surplus


def _fit_trial(
    trial: Any, model: LanguageModel, data: TokenizedCorpus, budget: Budget | None, start: float
) -> int:
    """Fit ``model`` under the trial's budget, reporting each validation point to the pruner (which may stop
    it: ``optuna.TrialPruned``, as does a diverging fit); returns the tokens it trained on."""
    import optuna

    from lmbench.training.loop import on_validation

    reports = {"tokens": 0, "step": 0}

    def report(point: dict[str, float]) -> None:
        reports["tokens"] = int(point["tokens"])
        if "valid_perplexity" not in point:
            return
        trial.report(point["valid_perplexity"], reports["step"])  # step: the n-th validation point
        reports["step"] += 1
        if trial.should_prune():
            _finish(trial, reports["tokens"], time.perf_counter() - start)
            raise optuna.TrialPruned(
                f"validation perplexity {point['valid_perplexity']:.2f} at {point['tokens']:,} tokens"
            )

    try:
        with on_validation(report):
            model.fit(data.train, data.valid, budget=budget, run_dir=None)
    except TrainingDiverged as e:  # a diverging setting is a bad setting, not a broken search
        _finish(trial, reports["tokens"], time.perf_counter() - start, note=str(e))
        raise optuna.TrialPruned(str(e)) from None
    return int(getattr(model, "tokens_seen_", data.train.num_predicted))


def _valid_perplexity(model: LanguageModel, data: TokenizedCorpus, context: str) -> float:
    """The fitted model's validation perplexity in ``context`` (the objective: never test)."""
    from lmbench.evaluation import score

    curve = [
        p["valid_perplexity"]
        for p in getattr(model, "learning_curve_", None) or []
        if "valid_perplexity" in p
    ]
    if context == "stream" and curve:  # the fitted model holds the weights of its best stream-mode pass
        return min(curve)
    return score(model.token_logprobs(data.valid, context=context), data.valid).perplexity


def _fail_dead_trials(store: Any, trials: list[Any]) -> None:
    """Fail each running trial whose process is gone: at once where it ran on this machine (a killed run),
    rather than after the heartbeat's grace period; and a trial whose process never reached its objective (killed
    between creating the trial and its first heartbeat) once the grace period has passed since it started.
    Trials of other machines (or containers) wait for their heartbeat to go stale."""
    from datetime import datetime

    from optuna.trial import TrialState

    grace = 4 * HEARTBEAT_SECONDS
    for t in trials:
        if t.state.name != "RUNNING":
            continue
        key = str(t.user_attrs.get("process", ""))
        if key:  # set first thing in the objective
            dead = _process_gone(key)
        else:
            dead = (
                t.datetime_start is not None and (datetime.now() - t.datetime_start).total_seconds() > grace
            )
        if dead:
            try:
                store.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except Exception:  # another process failed it first
                pass


def _process_key(pid: int | None = None) -> str:
    """``host:pid-namespace:pid:start-time`` of a process (empty where /proc is not there): what tells a
    process that died from one that lives, or from a later process that got the same pid."""
    pid = pid or os.getpid()
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    start = stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command name in parentheses
    return f"{socket.gethostname()}:{namespace}:{pid}:{start}"


def _process_gone(key: str) -> bool:
    """Whether the process ``key`` names ran on this machine and in this pid namespace, and is gone."""
    parts = key.split(":")
    here = _process_key()
    if len(parts) != 4 or not here or here.split(":")[:2] != parts[:2] or not parts[2].isdigit():
        return False
    return _process_key(int(parts[2])) != key


def _finish(trial: Any, tokens: int, seconds: float, note: str | None = None) -> None:
    trial.set_user_attr("tokens", int(tokens))
    trial.set_user_attr("seconds", float(seconds))
    if note:
        earlier = trial.user_attrs.get("note")
        trial.set_user_attr("note", f"{earlier}; {note}" if earlier else note)


def _sampler_seed(seed: int, finished: int, *, others_running: bool) -> int:
    """A fresh seed per trial, from the experiment seed and how many trials finished: a resumed search
    proposes what an uninterrupted one would have; a second process on the same study mixes in its id so
    two processes never propose the same random start points."""
    entropy = [seed, finished] + ([os.getpid(), time.time_ns() % 2**32] if others_running else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


class _Surplus(Exception):
    """A trial started by two processes at once past the trial limit: dropped before it proposes anything."""


def _retry_interrupted(study: Any, trials: list[Any]) -> None:
    """Queue each failed (interrupted, or its process died) trial once more with the same settings."""
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        if (
            t.state.name == "FAIL"
            and t.number not in retried
            and t.params
            and not t.user_attrs.get("surplus")
        ):
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})


def _say_new_study(
    store: Any, model: str, name: str, identity: dict[str, Any], say: Callable[[str], None]
) -> None:
    """When this model had a study for another space, settings or data, say what changed."""
    import json

    import optuna

    try:
        earlier = [s for s in optuna.get_all_study_summaries(store) if s.study_name.startswith(f"{model}-")]
    except Exception:  # an empty new database
        return
    if not earlier or any(s.study_name == name for s in earlier):
        return
    latest = max(earlier, key=lambda s: s.datetime_start or 0)
    old = latest.user_attrs.get("identity")
    if isinstance(old, str):
        change = describe_change(json.loads(old), json.loads(canonical_json(identity)))
        say(f"{model}: search changed ({change}): starting a new study")


def _trial_row(model: str, trial: Any) -> SearchTrial:
    """One trial as a search.csv row (a pruned trial keeps the last perplexity it reported)."""
    value = trial.value if trial.state.name == "COMPLETE" else float("nan")
    if trial.state.name == "PRUNED" and trial.intermediate_values:
        last = trial.intermediate_values[max(trial.intermediate_values)]
    else:
        last = float("nan")
    return SearchTrial(
        model=model,
        trial=trial.number,
        settings=dict(trial.params),
        valid_perplexity=float(value) if value is not None else float("nan"),
        last_reported_perplexity=float(last),
        state=trial.state.name.lower(),
        tokens=int(trial.user_attrs.get("tokens", 0)),
        seconds=float(trial.user_attrs.get("seconds", float("nan"))),
        worker=trial.user_attrs.get("worker", ""),
        note=trial.user_attrs.get("note", ""),
    )


def _trial_line(model: str, trial: Any) -> str:
    settings = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    if trial.state.name == "COMPLETE":
        outcome = f"valid perplexity {trial.value:.2f}"
        if trial.user_attrs.get("note"):
            outcome += f" ({trial.user_attrs['note']})"
    elif trial.state.name == "PRUNED":
        outcome = "pruned" + (f" ({trial.user_attrs['note']})" if trial.user_attrs.get("note") else "")
    else:
        outcome = trial.state.name.lower()
    return f"{model}: trial {trial.number} ({settings}): {outcome}"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def tune_models(
    config: ExperimentConfig,
    loaded: LoadedData,
    runs_dir: Path,
    *,
    storage: str | None = None,
    say: Callable[[str], None],
    executor: Executor | None = None,
) -> tuple[ExperimentConfig, dict[str, SearchSummary], list[tuple[str, Exception]]]:
    """Search every model with a ``[model.search]``; returns the config with each searched model's best
    settings written in, the search results, and the (model, error) of searches that failed."""
    results: dict[str, SearchSummary] = {}
    failed: list[tuple[str, Exception]] = []
    models = []
    for spec in config.models:
        if spec.search is None:
            models.append(spec)
            continue
        try:
            result = run_search(spec, config, loaded, runs_dir, storage=storage, say=say, executor=executor)
        except ConfigError:
            raise
        except Exception as e:  # one model's search failing must not lose the others
            failed.append((spec.name, e))
            continue
        results[spec.name] = result
        settings = ", ".join(f"{k}={_short(v)}" for k, v in result.best.items())
        say(f"{spec.name}: best settings {settings} (valid perplexity {result.best_valid_perplexity:.2f})")
        models.append(replace(spec, params={**spec.params, **result.best}))
    return replace(config, models=models), results, failed
