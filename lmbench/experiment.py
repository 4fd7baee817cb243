"""config -> runs -> results: what ``lmbench run`` does.

One corpus and one vocabulary for every model; each model (once per seed where it is stochastic) is
fitted, saved under ``runs/<experiment>/<model>/[seed-<s>/]`` and scored through the one evaluation path
(``token_logprobs`` -> :func:`lmbench.evaluation.score`). A re-run reuses a fitted model or its scores only
where their identity (settings, seed, budget, data, vocabulary, evaluation settings, version; see
:mod:`lmbench.runs`) matches, and resumes a checkpoint only of the very same identity. Per-seed results are
combined into one row per model, split and context; the report is rendered from the collected results.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import resource
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import lmbench
from lmbench.checksums import Damaged
from lmbench.config import (
    ExperimentConfig,
    ModelConfig,
    check_settings_for_vocabulary,
    check_task_options,
    resolve_task_paths,
)
from lmbench.data.cards import load_card_corpus
from lmbench.data.corpus import Corpus, LoadedData, TokenizedCorpus, TokenStream, tokenize_corpus
from lmbench.data.subword import is_subword, make_subword_tokenizer, subword_identity
from lmbench.data.synthetic import SyntheticSource
from lmbench.data.tokenizers import get_tokenizer
from lmbench.errors import ConfigError, TrainingDiverged, first_line
from lmbench.evaluation import score
from lmbench.evaluation.bootstrap import (
    mean_cross_entropy,
    perplexity_interval,
    seeded_paired_difference,
    seeded_perplexity_interval,
)
from lmbench.executors import Executor
from lmbench.integrations.hf_datasets import load_hf_corpus
from lmbench.io import atomic_write_text, check_output_dir
from lmbench.models.base import Budget, LanguageModel, resolve_budget
from lmbench.models.registry import create_model, model_class
from lmbench.results import (
    AttentionExample,
    CombinedRow,
    CurveBaseline,
    EntropyFloor,
    ModelInfo,
    Provenance,
    Reference,
    ResultRow,
    RunResults,
    Sample,
    SearchSummary,
    TaskRow,
    WordBucket,
    main_view,
)
from lmbench.runs import SCORING_FILES, CacheMiss, RunFolder, check_scores, fingerprint
from lmbench.training import distributed
from lmbench.training.loop import progress_label

log = logging.getLogger(__name__)


def load_data(config: ExperimentConfig) -> LoadedData:
    """Read (or generate) the corpus and tokenize it once, vocabulary from the training split only."""
    c = config.corpus
    floor = None
    card: dict[str, Any] = {}
    external = c.external_tokenizer
    if c.name == "synthetic":
        source = SyntheticSource(c.synthetic)
        corpus = source.corpus()
        floor = source.floor(corpus.test)
        floor["valid_perplexity"] = source.floor(corpus.valid)["perplexity"]
    elif c.name is not None:
        corpus, corpus_card = load_card_corpus(c.name, c.data_dir)
        card = {"name": corpus_card.name, "licence": corpus_card.licence, "url": corpus_card.url}
        external = external or corpus_card.external_tokenizer or None
    elif c.hf is not None:
        corpus, dataset = load_hf_corpus(c.hf, source=config.source)
        card = {"name": corpus.name, "dataset": dataset}
    elif c.file is not None:
        corpus = Corpus.from_single_file(
            c.file, valid_fraction=c.valid_fraction, test_fraction=c.test_fraction
        )
    else:
        corpus = Corpus.from_files(c.train, c.valid, c.test)
    if is_subword(c.tokenizer):  # its vocabulary is the tokenizer's; outside text is cut the same way
        tokenizer = make_subword_tokenizer(c.tokenizer, corpus.train, vocab_size=c.vocab_size)
        external = None
    else:
        tokenizer = get_tokenizer(c.tokenizer)
    data = tokenize_corpus(corpus, tokenizer, min_count=c.min_count, max_size=c.max_size)
    data.external_tokenizer = get_tokenizer(external) if external else None
    return LoadedData(corpus, data, floor, card)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_name(model: LanguageModel | None = None) -> str:
    device = getattr(model, "device_", None)
    if device is not None and str(device) != "cpu":
        return str(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def git_commit() -> str | None:
    """The commit of the lmbench checkout this code runs from; None for an installed copy, so that a wheel
    installed inside some other git repository (a project's .venv) never reports that repository's commit."""
    package = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"],
            cwd=package,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() / "lmbench" != package:
        return None
    return lines[1]


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("numpy", "torch", "pandas", "nltk", "scikit-learn", "transformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def split_files(config: ExperimentConfig) -> dict[str, str]:
    """The file behind each split, for messages such as ``test.txt changed``."""
    c = config.corpus
    if c.train is not None and c.valid is not None and c.test is not None:
        return {"train": c.train.name, "valid": c.valid.name, "test": c.test.name}
    if c.file is not None:
        return {split: f"the {split} part of {c.file.name}" for split in ("train", "valid", "test")}
    return {}


@dataclass
class ModelRun:
    """One model trained with one seed (``seed`` is ``None`` for deterministic models), and its run folder."""

    spec: ModelConfig
    seed: int | None
    params: dict[str, Any]  # the constructor's settings after defaults, the seed included
    budget: Budget | None  # resolved: ``None`` for families that take no budget
    folder: RunFolder

    @property
    def label(self) -> str:
        return self.spec.name if self.seed is None else f"{self.spec.name} [seed {self.seed}]"

    def build(self) -> LanguageModel:
        """The unfitted model: every setting and the seed reach it through ``create_model`` alone."""
        return create_model(self.spec.family, **self.params)


def plan_runs(config: ExperimentConfig, runs_dir: Path) -> list[ModelRun]:
    """Every (model, seed) to train: stochastic models once per seed, deterministic ones once.

    Each model is built once here, to read its settings after defaults and its default budget; a seed's
    settings are those with ``seed`` replaced (a constructor stores its seed unchanged, scikit-learn's rule,
    which the conformance suite checks for every family), so nothing is built per seed.
    """
    runs = []
    for spec in config.models:
        probe = create_model(spec.family, **spec.params)
        budget = resolve_budget(spec.budget or config.budget, probe)
        params = probe.get_params()
        if not probe.stochastic:
            runs.append(ModelRun(spec, None, params, budget, RunFolder(runs_dir / spec.name)))
            continue
        for seed in spec.seeds or config.seeds or [config.seed]:
            folder = RunFolder(runs_dir / spec.name / f"seed-{seed}")
            runs.append(ModelRun(spec, seed, {**params, "seed": seed}, budget, folder))
    return runs


def training_identity(
    run: ModelRun, config: ExperimentConfig, loaded: LoadedData, model: LanguageModel | None = None
) -> dict[str, Any]:
    """Everything that determines a fitted model (see :mod:`lmbench.runs`); ``model``: the run's unfitted
    model where the caller has built it already (its runtime identity is read; else one is built)."""
    c, checksums = config.corpus, loaded.corpus.checksums
    return {
        "family": run.spec.family,
        "seed": run.seed,
        "params": run.params,
        "budget": run.budget.to_dict() if run.budget is not None else None,
        "data": {"train": checksums.get("train"), "valid": checksums.get("valid")},
        "vocabulary": {
            "tokenizer": c.tokenizer,
            "min_count": c.min_count,
            "max_size": c.max_size,
            "size": len(loaded.data.vocab),
            **subword_identity(loaded.data.tokenizer),
        },
        "lmbench": lmbench.__version__,
        **(model if model is not None else run.build()).runtime_identity(),
    }


def scoring_identity(model_fingerprint: str, config: ExperimentConfig, loaded: LoadedData) -> dict[str, Any]:
    """Everything that determines a fitted model's scores: the model, the evaluated text, ``[evaluate]``."""
    e = config.evaluate
    return {
        "model": model_fingerprint,
        "data": {split: loaded.corpus.checksums.get(split) for split in e.splits},
        "evaluate": {
            "splits": e.splits,
            "contexts": e.contexts,
            "bootstrap": e.bootstrap,
            "block_size": e.block_size,
            "seed": config.seed,
        },
    }


def fit_model(
    run: ModelRun, config: ExperimentConfig, loaded: LoadedData, say: Callable[[str], None]
) -> tuple[LanguageModel, dict[str, Any], bool]:
    """The fitted model of ``run`` and its fit record: reused from the run folder when its training identity
    matches, else trained (resuming a checkpoint of the very same identity). The bool says "reused"."""
    files = split_files(config)
    model = run.build()  # the run's one unfitted model: its runtime identity, and what trains on a miss
    identity = training_identity(run, config, loaded, model)
    try:
        fitted, info = _reuse_fitted(run, identity, files)
        return fitted, info, True
    except CacheMiss as miss:
        if not miss.absent:
            say(f"{run.label}: {miss}, retraining")
            run.folder.clear()
    _start_training(run, model, identity, files, say)
    data = loaded.data
    start = time.perf_counter()
    with progress_label(run.label):
        model.fit(data.train, data.valid, budget=run.budget, run_dir=run.folder.path)
    for note in getattr(model, "notes_", []):
        say(f"{run.label}: {note}")
    info = _fit_record(run, model, identity, time.perf_counter() - start, data)
    if distributed.is_main():
        _save_fitted(run, model, identity, info, loaded)
    return model, info, False


def _reuse_fitted(
    run: ModelRun, identity: dict[str, Any], files: dict[str, str]
) -> tuple[LanguageModel, dict[str, Any]]:
    """The saved model and fit record of ``run`` when ``fit.json`` holds this very identity and the model file
    is intact; else :class:`CacheMiss` saying why (a damaged or unreadable model is trained again)."""
    folder = run.folder
    record = folder.check("fit.json", "identity", identity, files)
    folder.verify(folder.model_file)
    try:
        model = model_class(run.spec.family).load(folder.model_file)
    except Damaged as e:  # a NaN weight: named as it is, and the model is trained again
        raise CacheMiss(str(e)) from None
    except Exception as e:  # truncated, empty, random bytes: train again, never crash the run
        raise CacheMiss(f"{folder.model_file} is unreadable ({first_line(e)})") from None
    return model, record["info"]


def _start_training(
    run: ModelRun,
    model: LanguageModel,
    identity: dict[str, Any],
    files: dict[str, str],
    say: Callable[[str], None],
) -> None:
    """Keep a checkpoint only when it was started for this very identity (then it resumes), say what trains,
    and record the identity the folder now trains for (``identity.json``)."""
    folder = run.folder
    try:  # an interrupted run resumes only when it was started for this very identity
        folder.check("identity.json", "identity", identity, files)
        if folder.checkpoint_file.exists():
            say(f"{run.label}: resuming from {folder.checkpoint_file}")
    except CacheMiss as miss:
        if not miss.absent:
            say(f"{run.label}: {miss}; the checkpoint there is not resumed, training from the start")
        folder.clear()
    runtime = "".join(f", {key} {value}" for key, value in model.runtime_identity().items())
    say(
        f"{run.label}: training ({run.spec.family}, budget {run.budget.describe() if run.budget else 'none'}{runtime})"
    )
    folder.path.mkdir(parents=True, exist_ok=True)
    if distributed.is_main():
        folder.write_json("identity.json", {"identity": identity})


def _fit_record(
    run: ModelRun, model: LanguageModel, identity: dict[str, Any], seconds: float, data: TokenizedCorpus
) -> dict[str, Any]:
    """The fit record (``fit.json``'s ``info``) of a model just trained in ``seconds`` here; a resumed neural
    model reports its training time across interruptions, not just this process's share."""
    train_seconds = getattr(model, "train_seconds_", seconds)
    train_tokens = int(getattr(model, "tokens_seen_", data.train.num_predicted))
    flops = model.train_flops_per_token()
    return {
        "name": run.spec.name,
        "family": run.spec.family,
        "seed": run.seed,
        "config": model.config(),
        "params": run.params,
        "parameters": model.num_parameters(),
        "budget": run.budget.describe() if run.budget is not None else "",
        "budget_kind": run.budget.kind if run.budget is not None else "",
        "train_seconds": train_seconds,
        "train_tokens": train_tokens,
        "train_flops": flops * train_tokens if flops is not None else float("nan"),
        "train_tokens_per_second": train_tokens / train_seconds if train_seconds > 0 else float("nan"),
        "device": device_name(model),
        "normalized": model.normalized,
        "learning_curve": getattr(model, "learning_curve_", None),
        "fingerprint": fingerprint(identity),
    }


def _save_fitted(
    run: ModelRun, model: LanguageModel, identity: dict[str, Any], info: dict[str, Any], loaded: LoadedData
) -> None:
    """Save the fitted model (with the tokenizer of a subword run) and then its fit record: a model file
    without ``fit.json`` is never reused, so an interruption in between only costs a retraining."""
    folder = run.folder
    model.save(folder.model_file)
    if loaded.data.tokenizer.subword:  # the folder carries the tokenizer its text was cut with
        loaded.data.tokenizer.save(folder.tokenizer_file)
    folder.record(folder.model_file)  # before fit.json: a model without fit.json is never reused
    folder.write_json("fit.json", {"identity": identity, "info": info})


def score_model(
    run: ModelRun,
    model: LanguageModel,
    info: dict[str, Any],
    config: ExperimentConfig,
    loaded: LoadedData,
    *,
    say: Callable[[str], None],
    explain: bool,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], bool]:
    """Per-split, per-context rows and log-probabilities of one fitted model, and whether they were reused:
    reused when the scoring identity matches, else computed (``explain``: say why the earlier ones are not)."""
    folder = run.folder
    identity = scoring_identity(info["fingerprint"], config, loaded)
    keys = [f"{split}/{context}" for split in config.evaluate.splits for context in config.evaluate.contexts]
    try:
        rows, logprobs = _reuse_scores(run, model, identity, keys, config, loaded.data)
        return rows, logprobs, True
    except CacheMiss as miss:
        if explain and not miss.absent:
            say(f"{run.label}: {miss}, re-scoring")
        folder.clear(SCORING_FILES)
    rows, logprobs = [], {}
    for key in keys:
        split, context = key.split("/")
        row, logprobs[key] = _score_view(run, model, info, config, loaded.data.split(split), split, context)
        rows.append(row)
    if distributed.is_main():
        folder.write_logprobs(logprobs)
        folder.write_json("metrics.json", {"identity": identity, "rows": rows})
    return rows, logprobs, False


def _reuse_scores(
    run: ModelRun,
    model: LanguageModel,
    identity: dict[str, Any],
    keys: list[str],
    config: ExperimentConfig,
    data: TokenizedCorpus,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The stored rows and log-probabilities of ``run`` when ``metrics.json`` holds this scoring identity and
    both files hold every ``split/context`` of ``keys`` with figures their log-probabilities give; else
    :class:`CacheMiss` saying why."""
    folder = run.folder
    metrics = folder.check("metrics.json", "identity", identity, split_files(config))
    logprobs = folder.read_logprobs()
    for key in keys:
        if key not in logprobs or len(logprobs[key]) != data.split(key.split("/")[0]).num_predicted:
            raise CacheMiss(f"{folder.path / 'logprobs.npz'} does not hold {key}")
    if len(metrics.get("rows", [])) != len(keys):
        raise CacheMiss(f"{folder.metrics_file} does not hold every split and context")
    check_scores(folder.metrics_file, metrics["rows"], logprobs, data, model.normalized,
                 bootstrap=bool(config.evaluate.bootstrap))  # fmt: skip
    return metrics["rows"], logprobs


def _score_view(
    run: ModelRun,
    model: LanguageModel,
    info: dict[str, Any],
    config: ExperimentConfig,
    stream: TokenStream,
    split: str,
    context: str,
) -> tuple[dict[str, Any], np.ndarray]:
    """One split in one context mode: its row (scores, fit figures, scoring speed, bootstrap interval) and
    the per-token log-probabilities, through the one evaluation path (``token_logprobs`` -> ``score``)."""
    start = time.perf_counter()
    lp = model.token_logprobs(stream, context=context)
    seconds = time.perf_counter() - start
    row = ResultRow(
        model=run.spec.name,
        family=run.spec.family,
        seed=run.seed,
        split=split,
        context=context,
        **score(lp, stream).to_dict(),
        zero_prob_tokens=int(np.isneginf(lp).sum()),
        budget=info["budget"],
        parameters=info["parameters"],
        train_tokens=info["train_tokens"],
        train_flops=info["train_flops"],
        train_seconds=info["train_seconds"],
        train_tokens_per_second=info["train_tokens_per_second"],
        score_tokens_per_second=stream.num_predicted / seconds if seconds > 0 else float("nan"),
        peak_rss_mb=peak_rss_mb(),
        device=info["device"],
    ).to_dict()
    if not model.normalized:  # scores that are not probabilities have no perplexity
        for name in (
            "perplexity",
            "bits_per_token",
            "bits_per_char",
            "perplexity_excl_oov",
            "word_perplexity",
        ):
            row[name] = float("nan")
    elif config.evaluate.bootstrap:
        row["perplexity_low"], row["perplexity_high"] = perplexity_interval(
            lp, stream, context=context, n_resamples=config.evaluate.bootstrap, seed=config.seed,
            block_size=config.evaluate.block_size,
        )  # fmt: skip
    return row, lp


def combine_seeds(
    seed_rows: list[list[dict[str, Any]]],
    seed_logprobs: list[dict[str, np.ndarray]],
    config: ExperimentConfig,
    data: TokenizedCorpus,
) -> list[dict[str, Any]]:
    """One row per (split, context) from a model's per-seed rows: the perplexity of the mean per-seed
    cross-entropy, ``seeds``, ``seed_sd`` (sd of the per-seed perplexities) and an interval that resamples
    seeds as well as lines or blocks. With one seed the row is that seed's row."""
    out = []
    for i, first in enumerate(seed_rows[0]):
        rows = [r[i] for r in seed_rows]
        row = {k: v for k, v in first.items() if k != "seed"}
        row.update(seeds=len(rows), seed_sd=float("nan"))
        if len(rows) > 1:
            key = f"{first['split']}/{first['context']}"
            lps = [lp[key] for lp in seed_logprobs]
            ppl = np.array([r["perplexity"] for r in rows], dtype=np.float64)
            for name in ("train_seconds", "train_tokens", "train_flops", "train_tokens_per_second",
                         "score_tokens_per_second", "bits_per_char", "log_prob"):  # fmt: skip
                row[name] = float(np.mean([r[name] for r in rows]))
            row["train_tokens"] = int(round(row["train_tokens"]))
            row["zero_prob_tokens"] = max(r["zero_prob_tokens"] for r in rows)
            row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rows)
            if np.all(np.isfinite(ppl)):
                row["seed_sd"] = float(np.std(ppl, ddof=1))
            if not np.isnan(ppl).any():
                cross_entropy = mean_cross_entropy(lps)
                with np.errstate(over="ignore"):
                    row["perplexity"] = float(np.exp(cross_entropy))
                row["bits_per_token"] = cross_entropy / np.log(2)
                words = data.split(first["split"]).num_word_predictions
                with np.errstate(over="ignore"):
                    row["word_perplexity"] = (
                        float(np.exp(-row["log_prob"] / words)) if words else float("nan")
                    )
                excl = np.array([r["perplexity_excl_oov"] for r in rows], dtype=np.float64)
                with np.errstate(divide="ignore"):
                    row["perplexity_excl_oov"] = float(np.exp(np.mean(np.log(excl))))
                if config.evaluate.bootstrap:
                    row["perplexity_low"], row["perplexity_high"] = seeded_perplexity_interval(
                        lps, data.split(first["split"]), context=first["context"],
                        n_resamples=config.evaluate.bootstrap, seed=config.seed,
                        block_size=config.evaluate.block_size,
                    )  # fmt: skip
        out.append(row)
    return out


def _record_failure(run: ModelRun, error: Exception, say: Callable[[str], None]) -> str:
    """One line for the console and the report; the traceback goes to the run folder's error.log."""
    if isinstance(error, TrainingDiverged):
        message = f"{run.label}: failed: {first_line(error)}"
    else:
        message = f"{run.label}: failed: {first_line(error, with_type=True)}"
    say(message)
    try:  # a failure to write the log must not stop the other models
        run.folder.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.folder.path / "error.log", traceback.format_exc())
    except OSError as e:
        say(f"{run.label}: could not write the error log ({e.strerror}); run with -v to see the traceback")
        log.info("traceback of the failure above:\n%s", traceback.format_exc())
    return message


def check_output_dirs(config: ExperimentConfig, runs_dir: Path) -> None:
    """Before any data is read or model trained: every run folder can be created and written."""
    check_output_dir(runs_dir, "runs folder")
    for spec in config.models:
        check_output_dir(runs_dir / spec.name, f"run folder of model '{spec.name}'")


def check_tasks(config: ExperimentConfig) -> dict[str, dict[str, Any]]:
    """The task tables with their file paths made absolute, every input checked (:func:`prepare_tasks`)."""
    return prepare_tasks(config).tables


@dataclass
class PreparedTasks:
    """The ``[tasks]`` tables as they run (file paths absolute, new tables) and the input files read, once,
    while checking them (task name -> :data:`lmbench.tasks.base.TaskInputs`), for the tasks to use."""

    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)


def prepare_tasks(config: ExperimentConfig) -> PreparedTasks:
    """Before any data is read or model trained: every task's name, options and input files (pair files,
    labelled data, the models a task names), each file read once. Raises ConfigError / DataError naming the
    file and the key."""
    if not config.tasks:
        return PreparedTasks()
    from lmbench.tasks import TASKS, file_options, validate_task_configs, validate_tasks

    names = [spec.name for spec in config.models]
    files = {name: file_options(name) for name in TASKS}
    check_task_options(
        config.source, config.tasks, {n: task.DEFAULTS for n, task in TASKS.items()}, files, names
    )
    tasks = resolve_task_paths(
        config.source, config.tasks, base=config.base, data_dir=config.corpus.data_dir, file_options=files
    )
    try:
        validate_task_configs(tasks)
        inputs = validate_tasks(tasks, names)
    except ConfigError as err:
        raise ConfigError(f"{config.source}: {err}") from None
    return PreparedTasks(tasks, inputs)


@dataclass
class SeedResult:
    """One finished (model, seed): its run, fit record, per-split rows and log-probabilities."""

    run: ModelRun
    info: dict[str, Any]
    rows: list[dict[str, Any]]
    logprobs: dict[str, np.ndarray]


@dataclass
class Trained:
    """What the training step leaves: each model's finished seeds in order, the fitted model of its first
    seed (tasks and examples use it), and the models with a failed seed (they get no combined row)."""

    seeds: dict[str, list[SeedResult]] = field(default_factory=dict)
    first_models: dict[str, LanguageModel] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)


@dataclass
class Collected:
    """Per-model results as the report reads them: combined rows, per-seed rows, fit records, log-probs."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    rows_by_seed: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    logprobs: dict[str, list[dict[str, np.ndarray]]] = field(default_factory=dict)


def run_experiment(
    config: ExperimentConfig,
    runs_dir: str | Path,
    *,
    progress: Callable[[str], None] | None = None,
    storage: str | None = None,
    executor: Executor | None = None,
) -> RunResults:
    """Train and score every model of ``config``; returns the :class:`RunResults` that reports are rendered from.

    Models with a ``[model.search]`` are tuned on validation first (:mod:`lmbench.search`; ``storage``: the
    database URL of the studies, default SQLite in each model's run folder) and trained with the best settings.
    ``executor`` (:mod:`lmbench.executors`): where fits and trials run; default one after another here.
    Steps: check tasks and output folders, load the data, tune, plan and fit every (model, seed), combine seeds,
    compare with the baseline, run the tasks, then gather the report's extras and provenance.
    """
    say = progress or (lambda message: log.info(message))
    runs_dir = Path(runs_dir)
    tasks = prepare_tasks(config)  # task files resolved to absolute paths, read and checked once
    config = dataclasses.replace(config, tasks=tasks.tables)
    check_output_dirs(config, runs_dir)
    executor = executor or Executor()
    executor.check(config)
    loaded = load_data(config)
    data = loaded.data
    check_settings_for_vocabulary(config, len(data.vocab))  # before the first model trains
    say(
        f"corpus {loaded.corpus.name}: {data.train.num_predicted:,} training tokens, |V| = {len(data.vocab):,}, "
        f"test OOV {data.test.oov:,}"
    )
    failures: list[str] = []
    runs = plan_runs(config, runs_dir)
    check_budgets_have_data(runs, loaded)
    tuned, searches = tune(
        config, loaded, runs_dir, storage=storage, say=say, failures=failures, executor=executor
    )
    if tuned is not config:  # planned again only where a search changed the settings
        config, runs = tuned, plan_runs(tuned, runs_dir)
    trained = fit_and_score(runs, config, loaded, say=say, failures=failures, executor=executor)
    collected = collect(trained, config, data, searches)
    add_baseline_differences(collected, config, data)
    task_rows, samples = run_configured_tasks(
        config, trained, collected, loaded, failures, runs_dir=runs_dir, say=say, inputs=tasks.inputs
    )
    return run_results(config, loaded, trained, collected, task_rows, samples, failures, searches)


def check_budgets_have_data(runs: list[ModelRun], loaded: LoadedData) -> None:
    """An epochs or tokens budget over a training split without a single token would never end (or end at
    once with an untrained model): refuse it before any training, naming the budget."""
    if loaded.data.train.num_predicted > 0:
        return
    for run in runs:
        if run.budget is not None and (run.budget.epochs or run.budget.tokens):
            kind = "epochs" if run.budget.epochs else "tokens"
            raise ConfigError(
                f"{run.spec.name}: budget.{kind}: the train split holds no tokens "
                f"({loaded.corpus.name or 'corpus'}); an {kind} budget needs text to train on"
            )


def dry_run_experiment(config: ExperimentConfig, runs_dir: str | Path) -> str:
    """Check ``config`` and its data as :func:`run_experiment` does before its first training, and return the
    plan (:mod:`lmbench.plan`): every model's size, budget, FLOPs, precision and estimated time here. Nothing
    is trained, and nothing is written."""
    from lmbench.plan import format_plan, plan_experiment

    config = dataclasses.replace(config, tasks=check_tasks(config))
    check_output_dirs(config, Path(runs_dir))
    loaded = load_data(config)
    check_settings_for_vocabulary(config, len(loaded.data.vocab))
    runs = plan_runs(config, Path(runs_dir))
    check_budgets_have_data(runs, loaded)
    return format_plan(plan_experiment(config, loaded, runs), config, loaded)


def tune(
    config: ExperimentConfig,
    loaded: LoadedData,
    runs_dir: Path,
    *,
    storage: str | None,
    say: Callable[[str], None],
    failures: list[str],
    executor: Executor | None = None,
) -> tuple[ExperimentConfig, dict[str, SearchSummary]]:
    """The config with the best settings found for every model with a ``[model.search]``, and each search's
    record; a failed search is added to ``failures`` (its model trains with the settings as written)."""
    if not any(spec.search is not None for spec in config.models):
        return config, {}
    from lmbench.search.study import tune_models

    config, found, search_errors = tune_models(
        config, loaded, runs_dir, storage=storage, say=say, executor=executor
    )
    for name, error in search_errors:
        failures.append(f"{name}: search failed: {first_line(error, with_type=True)}")
        say(failures[-1])
    return config, found


@dataclass
class RunOutcome:
    """One (model, seed) fitted and scored, or its failure (the one-line message). ``model`` is None where the
    fit ran in another process (a Ray task): the fitted model is then read from the run folder when needed."""

    run: ModelRun
    info: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    logprobs: dict[str, np.ndarray] = field(default_factory=dict)
    model: LanguageModel | None = None
    failure: str | None = None

    def fitted_model(self) -> LanguageModel:
        if self.model is None:
            self.model = model_class(self.run.spec.family).load(self.run.folder.model_file)
        return self.model


def fit_and_score_run(
    run: ModelRun, config: ExperimentConfig, loaded: LoadedData, say: Callable[[str], None]
) -> RunOutcome:
    """Fit (or reuse) and score one run, saying what happened; a failure is recorded, never raised."""
    try:
        model, info, reused = fit_model(run, config, loaded, say)
        rows, lps, scores_reused = score_model(run, model, info, config, loaded, say=say, explain=reused)
    except Exception as e:  # one model's failure must not lose the others
        return RunOutcome(run, failure=_record_failure(run, e, say))
    (run.folder.path / "error.log").unlink(missing_ok=True)  # an earlier failure's log is stale now
    split, context = main_view([ResultRow.from_dict(r) for r in rows])  # the figure the report heads with
    last = next(r for r in rows if r["split"] == split and r["context"] == context)
    if reused and scores_reused:
        say(
            f"{run.label}: finished earlier with the same settings and data, skipped (delete {run.folder.path} to retrain)"
        )
    elif reused:
        say(f"{run.label}: fitted earlier with the same settings and data, scored now: {split} "
            f"perplexity {last['perplexity']:.2f} ({context} context)")  # fmt: skip
    else:
        say(
            f"{run.label}: {split} perplexity {last['perplexity']:.2f} ({context} context; "
            f"{info['train_tokens']:,} tokens, {info['train_seconds']:.1f} s)"
        )
    return RunOutcome(run, info, rows, lps, model)


def fit_and_score(
    runs: list[ModelRun],
    config: ExperimentConfig,
    loaded: LoadedData,
    *,
    say: Callable[[str], None],
    failures: list[str],
    executor: Executor | None = None,
) -> Trained:
    """Fit (or reuse) and score every run, in order here or as tasks of ``executor`` (:mod:`lmbench.executors`);
    outcomes are taken in plan order wherever they ran. One run's failure is recorded and the others go on."""
    trained = Trained()
    outcomes = (executor or Executor()).map_runs(
        fit_and_score_run,
        runs,
        (config, loaded),
        say,
        lambda run, e, say: RunOutcome(run, failure=_record_failure(run, e, say)),
    )
    for outcome in outcomes:
        name = outcome.run.spec.name
        if outcome.failure is not None:
            failures.append(outcome.failure)
            trained.failed.add(name)
            continue
        trained.seeds.setdefault(name, []).append(
            SeedResult(outcome.run, outcome.info, outcome.rows, outcome.logprobs)
        )
        if name not in trained.first_models:
            trained.first_models[name] = outcome.fitted_model()
    return trained


def collect(
    trained: Trained, config: ExperimentConfig, data: TokenizedCorpus, searches: dict[str, SearchSummary]
) -> Collected:
    """One combined row per (model, split, context) over the model's seeds, in config order, with each model's
    fit record; a model with a failed seed has no combined row, only its finished seeds' rows."""
    out = Collected()
    for spec in config.models:
        if spec.name in trained.failed or spec.name not in trained.seeds:
            continue  # a model with a failed seed has no aggregate row; its finished seeds are in results_by_seed
        done = trained.seeds[spec.name]
        out.rows_by_seed += [r for seed in done for r in seed.rows]
        out.logprobs[spec.name] = [seed.logprobs for seed in done]
        out.rows += combine_seeds([seed.rows for seed in done], out.logprobs[spec.name], config, data)
        info = dict(done[0].info)
        info["seeds"] = [seed.run.seed for seed in done if seed.run.seed is not None]
        if spec.name in searches:
            info["tuned"] = searches[spec.name].best
        out.models[spec.name] = info
    for name in trained.failed:
        out.rows_by_seed += [r for seed in trained.seeds.get(name, []) for r in seed.rows]
    return out


def add_baseline_differences(collected: Collected, config: ExperimentConfig, data: TokenizedCorpus) -> None:
    """Each combined row gets its paired-bootstrap perplexity difference against ``report.baseline``."""
    baseline, logprobs = config.report.baseline, collected.logprobs
    if not baseline or baseline not in logprobs:
        return
    for row in collected.rows:
        key = f"{row['split']}/{row['context']}"
        if row["model"] == baseline or row["model"] not in logprobs:
            continue
        diff = seeded_paired_difference(
            [lp[key] for lp in logprobs[row["model"]]], [lp[key] for lp in logprobs[baseline]],
            data.split(row["split"]), context=row["context"], n_resamples=max(config.evaluate.bootstrap, 1),
            seed=config.seed, block_size=config.evaluate.block_size,
        )  # fmt: skip
        row.update(
            diff_vs_baseline=diff.difference, diff_low=diff.low, diff_high=diff.high, p_value=diff.p_value
        )


def run_configured_tasks(
    config: ExperimentConfig,
    trained: Trained,
    collected: Collected,
    loaded: LoadedData,
    failures: list[str],
    *,
    runs_dir: Path,
    say: Callable[[str], None],
    inputs: dict[str, Any] | None = None,
) -> tuple[list[TaskRow], list[Sample]]:
    """The ``[tasks]`` rows and generated samples over every model that finished (each through its first seed's
    fitted model, and a factory of fresh copies with its settings for tasks that train); each (task, model)
    reused where its identity matches (:mod:`lmbench.tasks.cache`); a failed task is added to ``failures``.
    ``inputs``: the task files :func:`prepare_tasks` read (tasks without them read their own)."""
    if not config.tasks:
        return [], []
    from lmbench.tasks import ModelEntry
    from lmbench.tasks.cache import run_tasks_cached

    entries, fingerprints, folders = {}, {}, {}
    for name in collected.models:
        first = trained.seeds[name][0]  # tasks use each model's first seed
        entries[name] = ModelEntry(
            model=trained.first_models[name], factory=first.run.build, budget=first.run.budget
        )
        fingerprints[name] = first.info["fingerprint"]
        folders[name] = first.run.folder
    start = time.perf_counter()
    task_results = run_tasks_cached(
        config.tasks, entries, loaded.data, seed=config.seed, bootstrap=config.evaluate.bootstrap,
        fingerprints=fingerprints, checksums=loaded.corpus.checksums, folders=folders,
        shared_folder=RunFolder(runs_dir / ".tasks"), say=say, inputs=inputs,
    )  # fmt: skip
    say(f"tasks: {time.perf_counter() - start:.1f} s")
    failures += task_results.errors
    return task_results.rows, task_results.samples


def attention_examples(
    config: ExperimentConfig, trained: Trained, collected: Collected, data: TokenizedCorpus
) -> dict[str, AttentionExample]:
    """How each attention model's position predicting a test line's last word looks back."""
    attention: dict[str, AttentionExample] = {}
    if "test" in config.evaluate.splits:
        from lmbench.reporting.attention import attention_example

        for name in collected.models:
            example = attention_example(trained.first_models[name], data.test)  # None without attention
            if example is not None:
                attention[name] = example
    return attention


def curve_baseline(
    config: ExperimentConfig, trained: Trained, collected: Collected, data: TokenizedCorpus
) -> CurveBaseline | None:
    """The n-gram that learning curves are read against: its validation perplexity in stream context (how the
    curves are measured). ``[report] baseline`` where that is an n-gram, else the n-gram with the lowest such
    perplexity; None without learning curves or n-grams."""
    if not any(info.get("learning_curve") for info in collected.models.values()):
        return None
    ngrams = [name for name, info in collected.models.items() if info.get("family") == "ngram"]
    chosen = config.report.baseline if config.report.baseline in ngrams else None
    found: dict[str, float] = {}
    for name in [chosen] if chosen else ngrams:
        stored = [
            r
            for r in collected.rows
            if r["model"] == name and r["split"] == "valid" and r["context"] == "stream"
        ]
        if stored:
            found[name] = float(stored[0]["perplexity"])
        elif collected.models[name].get("normalized", True):
            lp = trained.first_models[name].token_logprobs(data.valid, context="stream")
            found[name] = float(np.exp(-lp.mean())) if len(lp) else float("nan")
    found = {k: v for k, v in found.items() if np.isfinite(v)}
    if not found:
        return None
    name = min(found, key=found.get)
    why = (
        "the report's baseline" if chosen else f"the best of the run's {len(ngrams)} n-gram(s) on validation"
    )
    return CurveBaseline(model=name, split="valid", context="stream", perplexity=found[name], why=why)


def word_frequency_buckets(
    config: ExperimentConfig, collected: Collected, data: TokenizedCorpus
) -> dict[str, list[WordBucket]]:
    """Each normalised model's test perplexity by word-frequency bucket (first context mode, first seed)."""
    word_buckets: dict[str, list[WordBucket]] = {}
    if "test" in config.evaluate.splits:
        from lmbench.evaluation.breakdown import frequency_buckets

        context = config.evaluate.contexts[0]
        for name, lps in collected.logprobs.items():
            if collected.models[name].get("normalized", True):
                buckets = frequency_buckets(lps[0][f"test/{context}"], data.test, data.vocab)
                word_buckets[name] = [WordBucket.read(b, f"word_buckets.{name}") for b in buckets]
    return word_buckets


def run_results(
    config: ExperimentConfig,
    loaded: LoadedData,
    trained: Trained,
    collected: Collected,
    task_rows: list[TaskRow],
    samples: list[Sample],
    failures: list[str],
    searches: dict[str, SearchSummary],
) -> RunResults:
    """The :class:`RunResults` that reports are rendered from (and ``results.json`` holds), with its provenance.
    The fit records, kept as dicts while the run goes on, become typed records here."""
    data, models = loaded.data, collected.models
    return RunResults(
        experiment=config.name,
        rows=[CombinedRow.read(r, f"rows[{i}]") for i, r in enumerate(collected.rows)],
        rows_by_seed=[ResultRow.read(r, f"rows_by_seed[{i}]") for i, r in enumerate(collected.rows_by_seed)],
        tasks=task_rows,
        samples=samples,  # generated texts, apart from the figures
        models={name: ModelInfo.read(info, f"models.{name}") for name, info in models.items()},
        failures=failures,
        entropy_floor=EntropyFloor.read(loaded.entropy_floor, "entropy_floor")
        if loaded.entropy_floor
        else None,
        word_buckets=word_frequency_buckets(config, collected, data),
        attention=attention_examples(config, trained, collected, data),
        references=[Reference.read(r, f"references[{i}]") for i, r in enumerate(config.report.references)],
        search=searches,
        curves={
            name: ModelInfo.read(info, f"models.{name}").learning_curve or []
            for name, info in models.items()
            if info.get("learning_curve")
        },
        curve_baseline=curve_baseline(config, trained, collected, data),
        provenance=Provenance(
            seed=config.seed,
            seeds=config.seeds,
            lmbench_version=lmbench.__version__,
            git_commit=git_commit(),
            corpus=loaded.corpus.name,
            corpus_checksums=loaded.corpus.checksums,
            corpus_card=loaded.card,
            tokenizer=config.corpus.tokenizer,
            external_tokenizer=data.external_tokenizer.name
            if data.external_tokenizer
            else config.corpus.tokenizer,
            vocab_size=len(data.vocab),
            tokenizer_sha256=subword_identity(data.tokenizer).get("tokenizer_sha256"),
            contexts=config.evaluate.contexts,
            bootstrap=config.evaluate.bootstrap,
            budgets={name: info["budget"] for name, info in models.items()},
            fingerprints={
                name: [seed.info["fingerprint"] for seed in trained.seeds[name]] for name in models
            },
            device=device_name(),
            libraries=library_versions(),
            config_file=config.source,
            date=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        ),
    )
