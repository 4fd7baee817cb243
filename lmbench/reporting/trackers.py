"""Experiment trackers (``[report] trackers = ["tensorboard", "mlflow"]``, the ``track`` extra).

After a report is written, every model of the run is sent to the chosen trackers: its learning curve (training
loss, validation loss and perplexity, learning rate where recorded; the x-axis is training tokens, the same for
every family), its final figures on each split and its settings. TensorBoard event files go to
``<runs dir>/tensorboard/<model>/`` (scalars and hparams); MLflow gets one run per model (settings as params,
figures as metrics, the report files as artefacts) at ``$MLFLOW_TRACKING_URI``, by default a SQLite store
``<runs dir>/mlflow.db`` with artefacts beside it. The runs folder, not the report folder, holds them: a report
is replaced whole each time it is rendered. A tracker that cannot start or fails is a one-line warning: the
experiment and its report are never lost to it.

A package adds a tracker through an entry point in the ``lmbench.trackers`` group, naming a :class:`Tracker` or
simply its function ``log(results, report_dir, runs_dir) -> str`` (where it wrote).
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmbench.registry import PluginError, Registry
from lmbench.results import CombinedRow, CurvePoint, RunResults

INSTALL = 'pip install "lmbench[track]"'
CURVE_METRICS = ("train_loss", "valid_loss", "valid_perplexity", "lr")
ROW_METRICS = ("perplexity", "perplexity_excl_oov", "bits_per_token", "bits_per_char", "oov_rate")


def _curve_values(point: CurvePoint) -> tuple[float | None, ...]:
    """A curve point's figures in the order of :data:`CURVE_METRICS`."""
    return point.train_loss, point.valid_loss, point.valid_perplexity, point.lr


def _row_values(row: CombinedRow) -> tuple[float | None, ...]:
    """A row's figures in the order of :data:`ROW_METRICS`."""
    return row.perplexity, row.perplexity_excl_oov, row.bits_per_token, row.bits_per_char, row.oov_rate


@dataclass(frozen=True)
class ModelRecord:
    """What a tracker logs for one model: settings, learning-curve points and final figures."""

    name: str
    family: str
    params: dict[str, Any]
    curve: list[CurvePoint]
    metrics: dict[str, float]  # "<split>/<context>/<metric>" -> value


def model_records(results: RunResults) -> list[ModelRecord]:
    """One record per model of a run's results: its settings (family, seed, budget and hyper-parameters),
    learning curve and the figures of its rows (one per split and context)."""
    records = []
    for name, info in results.models.items():
        params = {
            "family": info.family,
            "seed": info.seed,
            "budget": info.budget,
            "parameters": info.parameters,
            **(info.params or info.config),
        }
        metrics = {}
        for row in results.rows:
            if row.model != name:
                continue
            for key, figure in zip(ROW_METRICS, _row_values(row), strict=True):
                value = _number(figure)
                if value is not None:
                    metrics[f"{row.split}/{row.context}/{key}"] = value
        curve = results.curves.get(name) or info.learning_curve or []
        records.append(ModelRecord(name, info.family, params, list(curve), metrics))
    return records


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _scalar(value: Any) -> int | float | str | bool:
    """A setting as a tracker stores it: numbers and booleans as they are, anything else as text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return "" if value is None else str(value)


def _curve_points(curve: Sequence[CurvePoint]) -> Iterator[tuple[int, str, float]]:
    """(training tokens, metric, value) for every recorded number of a learning curve."""
    for point in curve:
        step = int(point.tokens or point.step or 0)
        for key, figure in zip(CURVE_METRICS, _curve_values(point), strict=True):
            value = _number(figure)
            if value is not None:
                yield step, key, value


def _final_step(record: ModelRecord) -> int:
    steps = [int(p.tokens or p.step or 0) for p in record.curve]
    return max(steps, default=0)


# --------------------------------------------------------------------------------------------- TensorBoard
def log_tensorboard(results: RunResults, report_dir: Path, runs_dir: Path) -> str:
    """Scalars and hparams per model under ``runs_dir/tensorboard/<model>/`` (replaced on each run)."""
    from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

    root = runs_dir / "tensorboard"
    for record in model_records(results):
        folder = root / record.name
        if folder.is_dir():  # written by an earlier run of this experiment: its curves would double
            shutil.rmtree(folder)
        with SummaryWriter(log_dir=str(folder)) as writer:
            for step, key, value in _curve_points(record.curve):
                tag = {"train_loss": "train/loss", "lr": "train/learning_rate"}.get(
                    key, key.replace("_", "/", 1)
                )
                writer.add_scalar(tag, value, global_step=step)
            final = _final_step(record)
            for key, value in record.metrics.items():
                writer.add_scalar(key, value, global_step=final)
            hparams = {k: _scalar(v) for k, v in record.params.items()}
            metric_dict = {f"hparam/{k}": v for k, v in record.metrics.items()}
            writer.add_hparams(hparams, metric_dict or {"hparam/none": 0.0}, run_name=".")
    return str(root)


# --------------------------------------------------------------------------------------------- MLflow
def mlflow_uri(runs_dir: Path) -> tuple[str, str | None]:
    """The tracking URI ($MLFLOW_TRACKING_URI, else a SQLite file in the runs folder) and, for that default,
    where artefacts go (beside it)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri, None
    runs_dir = runs_dir.resolve()
    return f"sqlite:///{runs_dir / 'mlflow.db'}", (runs_dir / "mlartifacts").as_uri()


def log_mlflow(results: RunResults, report_dir: Path, runs_dir: Path) -> str:
    """One MLflow run per model in the experiment named after the run: settings as params, figures and
    learning curves as metrics, the report's files as artefacts."""
    import logging

    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    for talker in ("alembic", "mlflow.store.db.utils"):  # a new SQLite store's set-up talks at INFO
        logging.getLogger(talker).setLevel(logging.WARNING)
    uri, artifacts = mlflow_uri(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=uri)
    name = str(results.experiment or report_dir.name)
    experiment = client.get_experiment_by_name(name)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(name, artifact_location=artifacts)
    )
    now = int(time.time() * 1000)
    for record in model_records(results):
        tags = {"lmbench.family": record.family, "lmbench.git_commit": results.provenance.git_commit or ""}
        run = client.create_run(experiment_id, run_name=record.name, tags=tags)
        run_id = run.info.run_id
        params = [Param(str(k), str(_scalar(v))[:6000]) for k, v in record.params.items()]
        metrics = [Metric(key, value, now, step) for step, key, value in _curve_points(record.curve)]
        final = _final_step(record)
        metrics += [Metric(key.replace("/", "_"), v, now, final) for key, v in record.metrics.items()]
        for a in range(0, len(params), 100):  # MLflow's limits per batch: 100 params, 1000 metrics
            client.log_batch(run_id, params=params[a : a + 100])
        for a in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[a : a + 1000])
        if report_dir.is_dir():
            client.log_artifacts(run_id, str(report_dir), artifact_path="report")
        client.set_terminated(run_id)
    return uri


@dataclass(frozen=True)
class Tracker:
    """A tracker: what logs a run (returning where it wrote), and the package it needs (None: none)."""

    log: Callable[[RunResults, Path, Path], str]
    package: str | None = None
    install: str = INSTALL  # the pip install that brings the package


def _adapt(name: str, obj: Any) -> Tracker:
    """A registry entry: a :class:`Tracker`, a logging function, or a ``(package, function)`` pair."""
    if isinstance(obj, tuple) and len(obj) == 2 and callable(obj[1]):
        return Tracker(obj[1], obj[0])
    if isinstance(obj, Tracker):
        return obj
    if callable(obj):
        return Tracker(obj)
    raise PluginError(f"expected a Tracker or a function log(results, report_dir, runs_dir), got {obj!r}")


TRACKERS: Registry[Tracker] = Registry("tracker", "lmbench.trackers", adapt=_adapt)
TRACKERS.register("tensorboard", Tracker(log_tensorboard, "tensorboard"))
TRACKERS.register("mlflow", Tracker(log_mlflow, "mlflow"))


def missing_packages(names: Sequence[str]) -> list[str]:
    """One line per chosen tracker whose package is not installed, naming the pip install that fixes it."""
    return [
        f"tracker {name}: {TRACKERS[name].package} is not installed ({TRACKERS[name].install}); it will be skipped"
        for name in names
        if name in TRACKERS
        and TRACKERS[name].package is not None
        and importlib.util.find_spec(TRACKERS[name].package) is None
    ]


def log_to_trackers(
    results: RunResults,
    report_dir: str | Path,
    runs_dir: str | Path,
    names: Sequence[str],
    warn: Callable[[str], None],
) -> dict[str, str]:
    """Send the run to each tracker in ``names``; where each wrote, by name. A tracker that is missing or
    fails costs one ``warn`` line and nothing else."""
    done = {}
    for name in names:
        tracker = TRACKERS[name]
        try:
            done[name] = tracker.log(results, Path(report_dir), Path(runs_dir))
        except ImportError as e:
            warn(f"tracker {name}: not started ({e.name or tracker.package} is missing: {tracker.install})")
        except Exception as e:  # a tracker must never cost the experiment
            detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
            warn(f"tracker {name}: failed ({type(e).__name__}: {detail}); the report is written")
    return done
