"""Trackers ([report] trackers): TensorBoard scalars and hparams, one MLflow run per model, all offline; a
tracker that cannot start is one warning line and the experiment still reports."""

from __future__ import annotations

import builtins
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from lmbench.cli import main
from lmbench.config import load_config
from lmbench.errors import ConfigError
from lmbench.reporting import trackers
from lmbench.results import RunResults

from .conftest import import_or_fail

CURVE = [
    {"tokens": 100, "step": 1, "seconds": 0.1, "train_loss": 5.0, "valid_loss": 4.5, "valid_perplexity": 90.0, "lr": 1e-3},
    {"tokens": 200, "step": 2, "seconds": 0.2, "train_loss": 4.0, "valid_loss": 4.2, "valid_perplexity": 66.7, "lr": 5e-4},
    {"tokens": 300, "step": 3, "seconds": 0.3, "train_loss": 3.5, "valid_loss": math.nan, "valid_perplexity": None},
]  # fmt: skip


def _results() -> RunResults:
    models = {
        "lstm": {
            "family": "lstm",
            "seed": 3,
            "budget": "tokens=300",
            "parameters": 1234,
            "params": {"hidden_size": 16, "dropout": 0.1, "cutoffs": None},
            "learning_curve": CURVE,
        },
        "kn3": {"family": "ngram", "seed": None, "budget": "", "parameters": 99, "params": {"order": 3}},
    }
    rows = [
        {
            "model": m,
            "split": s,
            "context": "sentence",
            "perplexity": p,
            "bits_per_char": 1.5,
            "oov_rate": 0.0,
        }
        for m, p in (("lstm", 70.0), ("kn3", 80.0))
        for s in ("valid", "test")
    ]
    return RunResults.from_dict(
        {"experiment": "tiny", "models": models, "rows": rows, "curves": {"lstm": CURVE}, "provenance": {}}
    )


@pytest.fixture
def report_dir(tmp_path) -> Path:
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "report.md").write_text("# report\n")
    (folder / "results.csv").write_text("model,perplexity\nlstm,70\n")
    return folder


def test_tensorboard_scalars_and_hparams(tmp_path, report_dir):
    import_or_fail("tensorboard", "the track extra: pip install -e '.[track]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    warnings: list[str] = []
    done = trackers.log_to_trackers(
        _results(), report_dir, tmp_path / "runs", ["tensorboard"], warnings.append
    )
    assert warnings == [] and Path(done["tensorboard"]) == tmp_path / "runs" / "tensorboard"
    events = EventAccumulator(str(tmp_path / "runs" / "tensorboard" / "lstm")).Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert scalars["train/loss"] == [(100, 5.0), (200, 4.0), (300, 3.5)]  # x-axis: training tokens
    assert scalars["valid/perplexity"] == [(100, 90.0), (200, pytest.approx(66.7))]  # NaN/None left out
    assert [s for s, _ in scalars["train/learning_rate"]] == [100, 200]
    assert scalars["test/sentence/perplexity"] == [(300, 70.0)]
    hparams = EventAccumulator(str(tmp_path / "runs" / "tensorboard" / "lstm")).Reload()
    assert "_hparams_/session_start_info" in hparams.summary_metadata or any(
        "hparams" in p for p in hparams.PluginTagToContent("hparams")
    )
    # a second run replaces the model's event files instead of doubling its curves
    trackers.log_to_trackers(_results(), report_dir, tmp_path / "runs", ["tensorboard"], warnings.append)
    again = EventAccumulator(str(tmp_path / "runs" / "tensorboard" / "lstm")).Reload()
    assert len(again.Scalars("train/loss")) == 3


def test_mlflow_one_run_per_model_with_params_metrics_and_artefacts(tmp_path, report_dir, monkeypatch):
    import_or_fail("mlflow", "the track extra: pip install -e '.[track]'")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    warnings: list[str] = []
    done = trackers.log_to_trackers(_results(), report_dir, tmp_path / "runs", ["mlflow"], warnings.append)
    assert warnings == []
    assert done["mlflow"] == f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=done["mlflow"])
    experiment = client.get_experiment_by_name("tiny")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"lstm", "kn3"}
    lstm = runs["lstm"]
    assert lstm.data.params["family"] == "lstm" and lstm.data.params["hidden_size"] == "16"
    assert lstm.data.params["cutoffs"] == "" and lstm.data.params["seed"] == "3"
    assert lstm.data.metrics["test_sentence_perplexity"] == 70.0
    history = client.get_metric_history(lstm.info.run_id, "valid_perplexity")
    assert [(m.step, m.value) for m in history] == [(100, 90.0), (200, pytest.approx(66.7))]
    assert [m.value for m in client.get_metric_history(lstm.info.run_id, "lr")] == [1e-3, 5e-4]
    artefacts = {Path(a.path).name for a in client.list_artifacts(lstm.info.run_id, "report")}
    assert artefacts == {"report.md", "results.csv"}
    assert runs["kn3"].data.metrics["valid_sentence_perplexity"] == 80.0


def test_mlflow_honours_the_tracking_uri(tmp_path, report_dir, monkeypatch):
    import_or_fail("mlflow", "the track extra: pip install -e '.[track]'")
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # a store named by the user keeps MLflow's own artefact default: ./mlruns
    done = trackers.log_to_trackers(_results(), report_dir, tmp_path / "runs", ["mlflow"], print)
    assert done["mlflow"] == uri and (tmp_path / "elsewhere.db").is_file()
    assert not (tmp_path / "runs" / "mlflow.db").exists() and (tmp_path / "mlruns").is_dir()


def test_a_tracker_that_cannot_start_is_one_warning(tmp_path, report_dir, monkeypatch):
    real_import = builtins.__import__

    def no_mlflow(name, *args, **kwargs):
        if name.split(".")[0] == "mlflow":
            raise ImportError(f"No module named {name!r}", name="mlflow")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    warnings: list[str] = []
    trackers.log_to_trackers(_results(), report_dir, tmp_path / "runs", ["mlflow"], warnings.append)
    assert warnings == ['tracker mlflow: not started (mlflow is missing: pip install "lmbench[track]")']
    monkeypatch.setattr(builtins, "__import__", real_import)

    def broken(*_args):
        raise RuntimeError("database is locked\nsecond line")

    monkeypatch.setitem(trackers.TRACKERS, "mlflow", ("mlflow", broken))
    warnings.clear()
    trackers.log_to_trackers(_results(), report_dir, tmp_path / "runs", ["mlflow"], warnings.append)
    assert warnings == ["tracker mlflow: failed (RuntimeError: database is locked); the report is written"]
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None)
    assert trackers.missing_packages(["tensorboard"]) == [
        'tracker tensorboard: tensorboard is not installed (pip install "lmbench[track]"); it will be skipped'
    ]


CONFIG = """
name = "tracked"
[corpus]
train = "train.txt"
valid = "valid.txt"
test = "test.txt"
[[model]]
name = "kn2"
family = "ngram"
order = 2
[evaluate]
bootstrap = 20
[report]
formats = ["md", "csv", "json"]
trackers = {trackers}
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "train.txt").write_text("the cat sat\nthe dog sat\na cat saw a dog\n" * 5)
    (tmp_path / "valid.txt").write_text("the cat sat\n")
    (tmp_path / "test.txt").write_text("a dog sat\n")
    return tmp_path


def _run(project: Path, trackers_toml: str):
    config = project / "exp.toml"
    config.write_text(CONFIG.format(trackers=trackers_toml))
    args = ["run", str(config), "-o", str(project / "report"), "--runs-dir", str(project / "runs")]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_config_names_trackers_and_refuses_unknown_ones(project):
    config = project / "exp.toml"
    config.write_text(CONFIG.format(trackers='["mlflow", "tensorboard"]'))
    assert load_config(config).report.trackers == ["mlflow", "tensorboard"]
    config.write_text(CONFIG.format(trackers='["wandb"]'))
    with pytest.raises(ConfigError, match="report.trackers: expected values from 'tensorboard', 'mlflow'"):
        load_config(config)


def test_run_sends_models_to_trackers_and_survives_a_broken_one(project, monkeypatch):
    import_or_fail("mlflow", "the track extra: pip install -e '.[track]'")
    import_or_fail("tensorboard", "the track extra: pip install -e '.[track]'")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = _run(project, '["tensorboard", "mlflow"]')
    assert result.exit_code == 0, result.output
    assert (project / "runs" / "mlflow.db").is_file() and (project / "runs" / "tensorboard" / "kn2").is_dir()
    # an MLflow store that cannot be opened: one warning, the report is still there
    (project / "a-file").write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'a-file' / 'x.db'}")
    result = _run(project, '["mlflow"]')
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if "tracker mlflow" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: tracker mlflow: failed")
    assert (project / "report" / "report.md").is_file()
