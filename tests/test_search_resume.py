"""Search resume is exact: a search killed with SIGKILL mid-trial resumes to the trials of an uninterrupted
search (the trial its dead process left RUNNING runs again with its settings, at once), and a damaged study
file is named, moved aside and rebuilt, with no word of ``--storage`` when the user never gave it."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lmbench import checksums
from lmbench.config import load_config
from lmbench.experiment import run_experiment

from .test_search import LSTM, NGRAM, cli, project

pytestmark = pytest.mark.skipif(importlib.util.find_spec("optuna") is None, reason="optuna not installed")
ROOT = Path(__file__).resolve().parents[1]

KILLER = """
import os, signal, sys
from lmbench.training import loop

trainers = []
init, evaluate = loop.Trainer.__init__, loop.Trainer._evaluate

def counted(self, *args, **kwargs):
    init(self, *args, **kwargs)
    trainers.append(self)

def killed_in_trial(self, *args, **kwargs):
    if len(trainers) > {trial} and self is trainers[{trial}]:  # the first validation pass of this trial: the process dies, no cleanup
        os.kill(os.getpid(), signal.SIGKILL)
    return evaluate(self, *args, **kwargs)

loop.Trainer.__init__, loop.Trainer._evaluate = counted, killed_in_trial
from lmbench.cli import main
main(["run", "exp.toml", "-o", "out"])
"""


def _trial_set(search):
    """What a search tried and found, independent of trial numbers, processes and time."""
    return sorted(
        (repr(sorted(t["settings"].items())), t["state"], repr(t["valid_perplexity"]))
        for t in search["trials"]
        if t["state"] != "fail"
    )


def _study_trials(db):
    import optuna

    url = f"sqlite:///{db}"
    (summary,) = optuna.get_all_study_summaries(url)
    return optuna.load_study(study_name=summary.study_name, storage=url).get_trials()


@pytest.mark.parametrize("trial", [2])
def test_a_search_killed_mid_trial_resumes_to_the_trials_of_an_uninterrupted_one(tmp_path, trial):
    project(tmp_path, LSTM.replace("[model.search]", "[model.search]\ntrials = 3"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(
        [sys.executable, "-c", KILLER.format(trial=trial)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = _study_trials(tmp_path / "runs" / "tune" / "lstm" / "search.db")
    assert [t.state.name for t in before] == ["COMPLETE"] * trial + ["RUNNING"]  # left by a dead process

    lines: list[str] = []
    config = load_config(tmp_path / "exp.toml")
    resumed = (
        run_experiment(config, tmp_path / "runs" / "tune", progress=lines.append).search["lstm"].to_dict()
    )
    fresh = run_experiment(config, tmp_path / "fresh").search["lstm"].to_dict()
    assert _trial_set(resumed) == _trial_set(fresh)
    assert (
        resumed["best"] == fresh["best"]
        and resumed["best_valid_perplexity"] == fresh["best_valid_perplexity"]
    )
    after = _study_trials(tmp_path / "runs" / "tune" / "lstm" / "search.db")
    assert after[trial].state.name == "FAIL"
    assert after[trial + 1].params == before[trial].params  # re-run at once with the dead trial's settings
    assert not any("--storage" in line for line in lines)


@pytest.mark.filterwarnings("ignore")
def test_a_running_trial_of_a_live_process_is_left_alone(tmp_path):
    """Only a dead process's trial is failed at once: a live one (another process on the study) runs on."""
    import optuna

    from lmbench.search import study as study_module

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        url = f"sqlite:///{tmp_path / 's.db'}"
        storage = study_module._storage(url)
        study = optuna.create_study(study_name="s", storage=storage)
        live, dead, reused, elsewhere = (study.ask() for _ in range(4))
        host, namespace = study_module._process_key().split(":")[:2]
        live.set_user_attr("process", study_module._process_key(sleeper.pid))
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
        dead.set_user_attr("process", f"{host}:{namespace}:{int(gone.stdout)}:1")
        # a live pid whose start time differs: the pid was given to another process
        reused.set_user_attr("process", f"{host}:{namespace}:{sleeper.pid}:1")
        # another machine's trial (or another container's): left to its heartbeat
        elsewhere.set_user_attr("process", f"{host}-other:{namespace}:{int(gone.stdout)}:1")
        study_module._fail_dead_trials(storage, study.get_trials())
        states = [t.state.name for t in study.get_trials()]
        assert states == ["RUNNING", "FAIL", "FAIL", "RUNNING"]
    finally:
        sleeper.kill()
        sleeper.wait()


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x04
    elif how == "header":
        data[3] ^= 0xFF
    elif how == "truncate":
        data = data[: len(data) // 3]
    elif how == "garbage":
        data = bytearray(os.urandom(len(data)))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["flip", "header", "truncate", "garbage"])
@pytest.mark.parametrize("recorded", [True, False])
def test_a_damaged_study_file_is_named_moved_aside_and_rebuilt(tmp_path, how, recorded):
    project(tmp_path, NGRAM.replace("[model.search]", "[model.search]\ntrials = 4"))
    first = cli(["run", "exp.toml", "-o", "out"], tmp_path)
    assert first.exit_code == 0, first.output
    import json

    clean = json.loads((tmp_path / "out" / "results.json").read_text())["search"]["kn"]
    db = tmp_path / "runs" / "tune" / "kn" / "search.db"
    assert checksums.verify(db)  # a finished search records its file
    if not recorded:  # as a search killed mid-way leaves it: SQLite's own check must find the damage
        checksums.record_path(db).unlink()
    _damage(db, how)
    damaged = db.read_bytes()
    again = cli(["run", "exp.toml", "-o", "out"], tmp_path)
    if not recorded and how == "flip":  # a flipped byte in a value SQLite cannot see: at worst a rebuild
        assert again.exit_code == 0
        return
    assert again.exit_code == 0, again.output
    assert "--storage" not in again.output
    (line,) = [line for line in again.output.splitlines() if "moved to" in line]
    assert "runs/tune/kn/search.db: " in line and "search starts again" in line
    aside = list(db.parent.glob("search.db.damaged-*"))
    assert [p.read_bytes() for p in aside if not p.name.endswith(".sha256")] == [
        damaged
    ]  # kept, never deleted
    rebuilt = json.loads((tmp_path / "out" / "results.json").read_text())["search"]["kn"]
    assert _trial_set(rebuilt) == _trial_set(clean) and rebuilt["best"] == clean["best"]
    assert checksums.verify(db)


def test_a_study_file_that_cannot_be_opened_says_so_without_storage(tmp_path):
    project(tmp_path, NGRAM.replace("[model.search]", "[model.search]\ntrials = 2"))
    db = tmp_path / "runs" / "tune" / "kn" / "search.db"
    db.mkdir(parents=True)  # a folder where the study file should be
    result = cli(["run", "exp.toml", "-o", "out"], tmp_path)
    assert result.exit_code == 2 and "--storage" not in result.output
    assert "runs/tune/kn/search.db: expected the search study file" in result.output
    assert db.is_dir() and not list(db.parent.glob("search.db.damaged-*"))  # not lmbench's: left as it is


def test_damage_sqlite_finds_only_mid_search_is_moved_aside_and_rebuilt_too(tmp_path, monkeypatch):
    import json

    from lmbench.search import study_file

    project(tmp_path, NGRAM.replace("[model.search]", "[model.search]\ntrials = 3"))
    assert cli(["run", "exp.toml", "-o", "out"], tmp_path).exit_code == 0
    clean = json.loads((tmp_path / "out" / "results.json").read_text())["search"]["kn"]
    db = tmp_path / "runs" / "tune" / "kn" / "search.db"
    db.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))  # a header, then nothing SQLite can read
    monkeypatch.setattr(study_file, "damage", lambda path: None)  # as if the check before opening passed
    again = cli(["run", "exp.toml", "-o", "out"], tmp_path)
    assert again.exit_code == 0, again.output
    assert "--storage" not in again.output
    (line,) = [line for line in again.output.splitlines() if "moved to" in line]
    assert "runs/tune/kn/search.db: SQLite:" in line
    rebuilt = json.loads((tmp_path / "out" / "results.json").read_text())["search"]["kn"]
    assert _trial_set(rebuilt) == _trial_set(clean)
