"""config -> runs -> results: what ``lmbench run`` does.

One corpus and one vocabulary for every model; each model is fitted, saved under
``runs/<experiment>/<model>/`` and scored through the one evaluation path (``token_logprobs`` ->
:func:`lmbench.evaluation.score`); a model whose ``metrics.json`` exists is skipped on a re-run, and
neural models resume from their own checkpoint there. The report is rendered from the collected results.
"""

from __future__ import annotations

import json
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
from lmbench.config import ExperimentConfig, ModelConfig
from lmbench.data.cards import load_card_corpus
from lmbench.data.corpus import Corpus, TokenizedCorpus, tokenize_corpus
from lmbench.data.synthetic import SyntheticSource
from lmbench.data.tokenizers import get_tokenizer
from lmbench.evaluation import score
from lmbench.evaluation.bootstrap import paired_difference, perplexity_interval
from lmbench.io import atomic_path, atomic_write_text
from lmbench.models.base import LanguageModel
from lmbench.models.registry import create_model, model_class
from lmbench.training import distributed

log = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "model", "family", "split", "context", "tokens", "oov", "oov_rate", "perplexity", "perplexity_low",
    "perplexity_high", "bits_per_token", "bits_per_char", "perplexity_excl_oov", "zero_prob_tokens",
    "train_seconds", "parameters", "train_tokens_per_second", "score_tokens_per_second", "peak_rss_mb", "device",
    "diff_vs_baseline", "diff_low", "diff_high", "p_value",
]  # fmt: skip


@dataclass
class LoadedData:
    corpus: Corpus
    data: TokenizedCorpus
    entropy_floor: dict[str, float] | None = None
    card: dict[str, Any] = field(default_factory=dict)


def load_data(config: ExperimentConfig) -> LoadedData:
    """Read (or generate) the corpus and tokenize it once, vocabulary from the training split only."""
    c = config.corpus
    floor = None
    card: dict[str, Any] = {}
    if c.name == "synthetic":
        source = SyntheticSource(c.synthetic)
        corpus = source.corpus()
        floor = source.floor(corpus.test)
        floor["valid_perplexity"] = source.floor(corpus.valid)["perplexity"]
    elif c.name is not None:
        corpus, corpus_card = load_card_corpus(c.name, c.data_dir)
        card = {"name": corpus_card.name, "licence": corpus_card.licence, "url": corpus_card.url}
    elif c.file is not None:
        corpus = Corpus.from_single_file(
            c.file, valid_fraction=c.valid_fraction, test_fraction=c.test_fraction
        )
    else:
        corpus = Corpus.from_files(c.train, c.valid, c.test)
    data = tokenize_corpus(corpus, get_tokenizer(c.tokenizer), min_count=c.min_count, max_size=c.max_size)
    return LoadedData(corpus, data, floor, card)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_name(model: LanguageModel | None = None) -> str:
    device = getattr(model, "device_", None)
    if device is not None and str(device) != "cpu":
        return str(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("numpy", "torch", "pandas", "nltk", "scikit-learn", "transformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _write_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def model_file(run_dir: Path) -> Path:
    return run_dir / "model.bin"


def logprob_file(run_dir: Path) -> Path:
    return run_dir / "logprobs.npz"


def train_and_score(
    spec: ModelConfig, config: ExperimentConfig, loaded: LoadedData, run_dir: Path
) -> tuple[dict[str, Any], dict[str, np.ndarray], LanguageModel]:
    """Fit one model, save it, and score every configured split and context mode."""
    data = loaded.data
    model = create_model(spec.family, **spec.params)
    if "seed" in getattr(model, "__dict__", {}) and "seed" not in spec.params:
        model.seed = config.seed  # one seed flows into every model that takes one
    budget = spec.budget or config.budget
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model.fit(data.train, data.valid, budget=None if budget.unlimited else budget, run_dir=run_dir)
    # a resumed neural model reports its training time across interruptions, not just this process's share
    train_seconds = getattr(model, "train_seconds_", time.perf_counter() - start)
    trained_tokens = getattr(model, "tokens_seen_", data.train.num_predicted)
    if distributed.is_main():
        model.save(model_file(run_dir))
    info = {
        "name": spec.name,
        "family": spec.family,
        "config": model.config(),
        "parameters": model.num_parameters(),
        "train_seconds": train_seconds,
        "train_tokens_per_second": trained_tokens / train_seconds if train_seconds > 0 else float("nan"),
        "device": device_name(model),
        "normalized": model.normalized,
        "learning_curve": getattr(model, "learning_curve_", None),
    }
    rows, logprobs = [], {}
    for split in config.evaluate.splits:
        stream = data.split(split)
        for context in config.evaluate.contexts:
            start = time.perf_counter()
            lp = model.token_logprobs(stream, context=context)
            seconds = time.perf_counter() - start
            logprobs[f"{split}/{context}"] = lp
            s = score(lp, stream)
            row = {
                "model": spec.name,
                "family": spec.family,
                "split": split,
                "context": context,
                **s.to_dict(),
                "zero_prob_tokens": int(np.isneginf(lp).sum()),
                "train_seconds": train_seconds,
                "parameters": info["parameters"],
                "train_tokens_per_second": info["train_tokens_per_second"],
                "score_tokens_per_second": stream.num_predicted / seconds if seconds > 0 else float("nan"),
                "device": info["device"],
            }
            if model.normalized:
                low, high = perplexity_interval(
                    lp, stream, context=context, n_resamples=config.evaluate.bootstrap, seed=config.seed,
                    block_size=config.evaluate.block_size,
                ) if config.evaluate.bootstrap else (float("nan"), float("nan"))  # fmt: skip
                row.update(perplexity_low=low, perplexity_high=high)
            else:  # scores that are not probabilities have no perplexity
                for key in ("perplexity", "bits_per_token", "bits_per_char", "perplexity_excl_oov"):
                    row[key] = float("nan")
                row.update(perplexity_low=float("nan"), perplexity_high=float("nan"))
            rows.append(row)
    info["peak_rss_mb"] = peak_rss_mb()
    for row in rows:
        row["peak_rss_mb"] = info["peak_rss_mb"]
    return {"info": info, "rows": rows}, logprobs, model


def _save_logprobs(path: Path, logprobs: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **{k.replace("/", "__"): v for k, v in logprobs.items()})


def _load_logprobs(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k.replace("__", "/"): data[k] for k in data.files}


def run_experiment(
    config: ExperimentConfig,
    runs_dir: str | Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train and score every model of ``config``; returns the results dict that reports are rendered from."""
    say = progress or (lambda message: log.info(message))
    runs_dir = Path(runs_dir)
    loaded = load_data(config)
    data = loaded.data
    say(
        f"corpus {loaded.corpus.name}: {data.train.num_predicted:,} training tokens, |V| = {len(data.vocab):,}, "
        f"test OOV {data.test.oov:,}"
    )
    rows: list[dict[str, Any]] = []
    models: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    logprobs: dict[str, dict[str, np.ndarray]] = {}
    fitted: dict[str, LanguageModel] = {}
    for spec in config.models:
        run_dir = runs_dir / spec.name
        metrics_path = run_dir / "metrics.json"
        expected_config = {"family": spec.family, "params": spec.params, "vocab_size": len(data.vocab)}
        if metrics_path.exists():
            saved = json.loads(metrics_path.read_text(encoding="utf-8"))
            if saved.get("spec") == expected_config and logprob_file(run_dir).exists():
                say(f"{spec.name}: finished earlier, skipped (delete {run_dir} to retrain)")
                rows += saved["rows"]
                models[spec.name] = saved["info"]
                logprobs[spec.name] = _load_logprobs(logprob_file(run_dir))
                continue
        say(f"{spec.name}: training ({spec.family})")
        try:
            result, lps, model = train_and_score(spec, config, loaded, run_dir)
        except Exception as e:  # one model's failure must not lose the others
            message = f"{spec.name}: failed: {type(e).__name__}: {e}".splitlines()[0]
            failures.append(message)
            say(message)
            (run_dir / "error.log").write_text(traceback.format_exc(), encoding="utf-8")
            continue
        if distributed.is_main():  # under torchrun every process scores; one writes
            _save_logprobs(logprob_file(run_dir), lps)
            _write_json(
                run_dir / "config.json",
                {"name": spec.name, **expected_config, "tokenizer": config.corpus.tokenizer},  # for explore
            )
            _write_json(metrics_path, {"spec": expected_config, **result})
        rows += result["rows"]
        models[spec.name] = result["info"]
        logprobs[spec.name] = lps
        fitted[spec.name] = model
        first = result["rows"][-1]
        say(
            f"{spec.name}: {first['split']} perplexity {first['perplexity']:.2f} ({result['info']['train_seconds']:.1f} s)"
        )

    baseline = config.report.baseline
    if baseline and baseline in logprobs:
        for row in rows:
            key = f"{row['split']}/{row['context']}"
            if row["model"] == baseline or row["model"] not in logprobs:
                continue
            diff = paired_difference(
                logprobs[row["model"]][key], logprobs[baseline][key], data.split(row["split"]),
                context=row["context"], n_resamples=max(config.evaluate.bootstrap, 1), seed=config.seed,
                block_size=config.evaluate.block_size,
            )  # fmt: skip
            row.update(
                diff_vs_baseline=diff.difference, diff_low=diff.low, diff_high=diff.high, p_value=diff.p_value
            )

    task_rows: list[dict[str, Any]] = []
    if config.tasks:
        from lmbench.tasks import ModelEntry, run_tasks

        entries = {}
        for spec in config.models:
            if spec.name not in models:
                continue
            model = fitted.get(spec.name) or model_class(spec.family).load(model_file(runs_dir / spec.name))
            entries[spec.name] = ModelEntry(
                model=model,
                factory=lambda spec=spec: create_model(spec.family, **spec.params),
                budget=spec.budget or config.budget,
            )
        task_rows, task_errors = run_tasks(
            config.tasks, entries, data, seed=config.seed, bootstrap=config.evaluate.bootstrap
        )
        failures += task_errors

    attention = {}  # how each attention model's position predicting a line's last word looks back
    if "test" in config.evaluate.splits:
        from lmbench.reporting.attention import attention_example

        for spec in config.models:
            if spec.name in models and hasattr(model_class(spec.family), "attention_maps"):
                model = fitted.get(spec.name) or model_class(spec.family).load(
                    model_file(runs_dir / spec.name)
                )
                example = attention_example(model, data.test)
                if example is not None:
                    attention[spec.name] = example

    word_buckets = {}
    if "test" in config.evaluate.splits:
        from lmbench.evaluation.breakdown import frequency_buckets

        context = config.evaluate.contexts[0]
        for name, lps in logprobs.items():
            if models[name].get("normalized", True):
                word_buckets[name] = frequency_buckets(lps[f"test/{context}"], data.test, data.vocab)

    return {
        "experiment": config.name,
        "rows": rows,
        "tasks": task_rows,
        "models": models,
        "failures": failures,
        "entropy_floor": loaded.entropy_floor,
        "word_buckets": word_buckets,
        "attention": attention,
        "references": config.report.references,
        "curves": {
            name: info["learning_curve"] for name, info in models.items() if info.get("learning_curve")
        },
        "provenance": {
            "seed": config.seed,
            "lmbench_version": lmbench.__version__,
            "git_commit": git_commit(),
            "corpus": loaded.corpus.name,
            "corpus_checksums": loaded.corpus.checksums,
            "corpus_card": loaded.card,
            "tokenizer": config.corpus.tokenizer,
            "vocab_size": len(data.vocab),
            "contexts": config.evaluate.contexts,
            "bootstrap": config.evaluate.bootstrap,
            "device": device_name(),
            "libraries": library_versions(),
            "config_file": config.source,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        },
    }
