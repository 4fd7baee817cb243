"""``--executor ray``: (model, seed) fits and search trials as Ray tasks on a local cluster give what a sequential
run gives, byte for byte; a failed run is reported as sequentially; a parallel search stores every trial once and
resumes after its process is killed. The option checks run without Ray.

Ray runs go through a subprocess (bounded by a timeout; the cluster it starts is stopped with it). Marked ``ray``:
skipped with the reason where the ray extra is absent, and a failure under ``CI=true``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from lmbench.cli import main
from lmbench.errors import ConfigError
from lmbench.executors import ExecutorSettings, RayExecutor

ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = (
    900  # seconds for one lmbench run in a subprocess (~30 s on a quiet 2-core machine; 7 min at load 15)
)


@pytest.fixture
def ray_extra() -> None:
    if importlib.util.find_spec("ray") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but Ray is not installed: pip install -e '.[ray]'")
        pytest.skip("the ray extra is not installed (pip install -e '.[ray]')")


EXPERIMENT = """
name = "scale"
seed = 0
[corpus]
name = "synthetic"
tokenizer = "whitespace"
train_lines = 120
valid_lines = 20
test_lines = 20
[budget]
tokens = 1200
[[model]]
name = "kn3"
family = "ngram"
order = 3
[[model]]
name = "wb2"
family = "ngram"
order = 2
smoothing = "witten-bell"
[[model]]
name = "lstm"
family = "lstm"
emb_size = 8
hidden_size = 8
batch_size = 4
seq_len = 8
seeds = [0, 1]
[[model]]
name = "transformer"
family = "transformer"
d_model = 8
n_heads = 2
layers = 1
window = 8
batch_size = 4
[[model]]
name = "diverges"
family = "gru"
emb_size = 8
hidden_size = 8
batch_size = 4
seq_len = 8
lr = 1e30  # overflows at once: with 1e6 the kept-budget loop stops early on a finite, huge loss
clip = 0
[evaluate]
bootstrap = 10
[tasks.next-word]
max_tokens = 200
[tasks.minimal-pairs]
sentences = 10
distances = [1, 2]
[report]
formats = ["md", "csv", "json"]
baseline = "kn3"
"""


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def lmbench(args: list[str], cwd: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lmbench.cli", *args], cwd=cwd, env=env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen,
    )  # fmt: skip


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL) if proc.pid else None
        raise
    return proc.returncode, out


def run_cli(args: list[str], cwd: Path) -> tuple[int, str]:
    return finish(lmbench(args, cwd, start_new_session=True))


def artefacts(runs: Path) -> dict[str, list[str]]:
    """Each run folder and the files in it."""
    return {
        str(folder.relative_to(runs)): sorted(f.name for f in folder.iterdir() if f.is_file())
        for folder in sorted(runs.rglob("*"))
        if folder.is_dir() and any(f.is_file() for f in folder.iterdir())
    }


# ------------------------------------------------------------------------------------- options (no Ray needed)
@pytest.mark.parametrize(
    "args, words",
    [
        (["--jobs", "2"], "--jobs 2 needs --executor ray"),
        (["--address", "auto"], "--address needs --executor ray"),
    ],
)
def test_ray_options_without_the_ray_executor_exit_2_before_anything(tmp_path, args, words):
    (tmp_path / "exp.toml").write_text(EXPERIMENT)
    result = CliRunner().invoke(main, ["run", str(tmp_path / "exp.toml"), "-o", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and words in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_ray_executor_without_ray_is_one_line_naming_the_install(tmp_path, monkeypatch):
    (tmp_path / "exp.toml").write_text(EXPERIMENT)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = CliRunner().invoke(
        main, ["run", str(tmp_path / "exp.toml"), "-o", str(tmp_path / "out"), "--executor", "ray"]
    )
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert len(line.splitlines()) == 1 and "pip install 'lmbench[ray]'" in line and "Traceback" not in line
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_a_model_pinned_to_one_gpu_is_refused_under_ray_before_training(tmp_path):
    """(The devices are put into the loaded config: this machine's config check refuses a GPU it lacks.)"""
    import dataclasses

    from lmbench.config import load_config

    (tmp_path / "exp.toml").write_text(EXPERIMENT)
    config = load_config(tmp_path / "exp.toml")

    def with_device(device: str):
        models = [
            dataclasses.replace(m, params={**m.params, "device": device}) if m.name == "lstm" else m
            for m in config.models
        ]
        return dataclasses.replace(config, models=models)

    executor = RayExecutor(ray=None, settings=ExecutorSettings("ray"))
    with pytest.raises(ConfigError, match=r"model 'lstm': device = 'cuda:1' names one GPU"):
        executor.check(with_device("cuda:1"))
    with pytest.raises(ConfigError, match="the Ray cluster has no GPU"):
        executor.check(with_device("cuda"))
    executor.check(with_device("auto"))
    executor.threads = 3
    assert executor.resources({"device": "cuda"}).gpus == 1
    assert executor.resources({"device": "auto"}).gpus == 0  # no GPU in the cluster: auto stays on CPU
    executor.gpus_in_cluster = 2
    executor.check(with_device("cuda"))
    assert executor.resources({"device": "auto"}) == executor.resources({"device": "cuda"})
    assert executor.resources({"order": 3}).gpus == 0 and executor.resources({}).threads == 3


# ----------------------------------------------------------------------------------------- runs on Ray
@pytest.mark.ray
def test_ray_jobs_2_gives_the_sequential_results_byte_for_byte(tmp_path, ray_extra):
    (tmp_path / "exp.toml").write_text(EXPERIMENT)
    runner = CliRunner()
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        seq = runner.invoke(main, ["run", "exp.toml", "-o", "seq", "--runs-dir", "runs-seq"])
    finally:
        os.chdir(old)
    assert seq.exit_code == 1, seq.output  # the diverging model fails, the others are reported
    code, out = run_cli(["run", "exp.toml", "-o", "ray", "--runs-dir", "runs-ray", "--executor", "ray",
                         "--jobs", "2"], tmp_path)  # fmt: skip
    assert code == 1, out
    assert "ray: a local Ray cluster" in out and "2 tasks at a time, 1 thread each" in out
    for name in ("results.csv", "results_by_seed.csv", "tasks.csv"):
        assert (tmp_path / "seq" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes(), name
    failure = "diverges [seed 0]: failed: training diverged"
    assert failure in seq.output and failure in out
    seq_json, ray_json = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("seq", "ray"))
    assert seq_json["failures"] == ray_json["failures"] and len(ray_json["failures"]) == 1
    assert seq_json["provenance"]["fingerprints"] == ray_json["provenance"]["fingerprints"]
    assert artefacts(tmp_path / "runs-seq") == artefacts(tmp_path / "runs-ray")  # same files, error.log too
    assert "error.log" in artefacts(tmp_path / "runs-ray")["diverges/seed-0"]
    # the run's lines name the run folder as given, not as the task saw it
    assert str(tmp_path) not in out.replace(str(tmp_path / "ray"), "")

    # a re-run on Ray reuses every cached fit and score, and gives the same tables again
    first = (tmp_path / "ray" / "results.csv").read_bytes()
    code, again = run_cli(["run", "exp.toml", "-o", "ray", "--runs-dir", "runs-ray", "--executor", "ray"],
                          tmp_path)  # fmt: skip
    assert code == 1, again
    assert again.count("finished earlier with the same settings and data, skipped") == 5  # kn3 wb2 lstm x2 tf
    assert "training (" not in again.replace("diverges [seed 0]: training (", "")
    assert (tmp_path / "ray" / "results.csv").read_bytes() == first


@pytest.mark.ray
def test_without_shared_storage_artefacts_come_back_through_the_object_store(tmp_path, ray_extra):
    """A node that does not see the runs folder works in a temporary copy and returns what it wrote."""
    experiment = EXPERIMENT.split('[[model]]\nname = "transformer"')[0] + "[evaluate]\nbootstrap = 10\n"
    experiment += '[report]\nformats = ["csv"]\n'
    (tmp_path / "exp.toml").write_text(experiment)
    script = """
import sys
from pathlib import Path
from lmbench.config import load_config
from lmbench.executors import ExecutorSettings, open_executor
from lmbench.experiment import run_experiment
from lmbench.reporting import render_report

config = load_config(Path("exp.toml"))
settings = ExecutorSettings("ray", jobs=2)
for runs, out, shared in (("runs-seq", "seq", None), ("runs-copy", "copy", False)):
    if shared is None:
        results = run_experiment(config, runs)
    else:
        with open_executor(settings) as executor:
            executor.shared_runs = shared
            results = run_experiment(config, runs, executor=executor)
    render_report(results, Path(out), ["csv"])
"""
    code, out = finish(
        subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=env(), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    )  # fmt: skip
    assert code == 0, out
    assert (tmp_path / "seq/results.csv").read_bytes() == (tmp_path / "copy/results.csv").read_bytes()
    assert artefacts(tmp_path / "runs-seq") == artefacts(tmp_path / "runs-copy")
    for name in ("fit.json", "metrics.json"):  # the identities the next run checks are the same
        a = json.loads((tmp_path / "runs-seq/lstm/seed-1" / name).read_text())
        b = json.loads((tmp_path / "runs-copy/lstm/seed-1" / name).read_text())
        assert a["identity"] == b["identity"]


# ------------------------------------------------------------------------------------- searches on Ray
SEARCH = """
name = "tune"
[corpus]
name = "synthetic"
tokenizer = "whitespace"
train_lines = 120
valid_lines = 20
test_lines = 20
[budget]
tokens = 800
[[model]]
name = "lstm"
family = "lstm"
emb_size = 8
hidden_size = 8
batch_size = 4
seq_len = 8
warmup_steps = 2
eval_every = 20
[model.search]
trials = 4
lr = {low = 1e-3, high = 3e-2, log = true}
layers = {low = 1, high = 2}
trial_budget = {tokens = 400}
[evaluate]
bootstrap = 0
[report]
formats = ["md", "csv", "json"]
"""


def study_trials(db: Path) -> list[tuple[int, str, bool]]:
    """(number, state, in its objective) of every trial in the study database (read directly: no Optuna, no
    locks held); "in its objective": the trial recorded its process, the first thing its objective does, and
    has proposed all its settings (on a loaded machine a kill can land between any two of these)."""
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
        try:
            rows = con.execute(
                "SELECT number, state, EXISTS (SELECT 1 FROM trial_user_attributes a WHERE a.trial_id = t.trial_id "
                "AND a.key = 'process') AND (SELECT COUNT(*) FROM trial_params p WHERE p.trial_id = t.trial_id) >= 2 "
                "FROM trials t ORDER BY number"  # 2: lr and layers, the search's settings
            )
            return [(n, state, bool(started)) for n, state, started in rows]
        except sqlite3.OperationalError:  # the tables are not there yet
            return []


def session_processes(sid: int) -> list[int]:
    """The processes still alive in session ``sid`` (the run started with start_new_session)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            alive.append(int(stat.parent.name))
    return alive


def signal_all(pids: list[int], signum: int) -> None:
    """Send ``signum`` to each of ``pids`` that is still there."""
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


@pytest.mark.ray
def test_a_parallel_search_stores_every_trial_once_and_resumes_after_a_kill(tmp_path, ray_extra):
    (tmp_path / "exp.toml").write_text(SEARCH)
    db = tmp_path / "runs/tune/lstm/search.db"
    args = ["run", "exp.toml", "-o", "out", "--executor", "ray", "--jobs", "2"]
    proc = lmbench(args, tmp_path, start_new_session=True)
    deadline = time.monotonic() + RUN_TIMEOUT
    # kill the whole run (driver, local cluster, workers: everything in its session, as a job scheduler or a
    # lost machine does) just after a trial started behind a finished one

    def behind_a_finished_one(trials: list[tuple[int, str, bool]]) -> bool:
        return any(state == "COMPLETE" for _, state, _ in trials) and any(
            n >= 2 and state == "RUNNING" and started for n, state, started in trials
        )

    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if behind_a_finished_one(study_trials(db)):
                # freeze the session, then look again: on a starved machine the trial seen running may have
                # finished between the look and the kill, which would leave nothing interrupted
                signal_all(session_processes(proc.pid), signal.SIGSTOP)
                if behind_a_finished_one(study_trials(db)):
                    break
                signal_all(session_processes(proc.pid), signal.SIGCONT)
            time.sleep(0.05)  # a trial of this tiny search lasts about a second: look often enough to see one
        assert proc.poll() is None, proc.communicate()[0]
    finally:
        signal_all(
            session_processes(proc.pid), signal.SIGKILL
        )  # Ray's workers run in process groups of their own
        proc.communicate()
    deadline = time.monotonic() + 30
    while session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    before = study_trials(db)
    killed = [n for n, state, _ in before if state == "RUNNING"]
    done = [n for n, state, _ in before if state == "COMPLETE"]
    assert killed and done, before

    code, out = run_cli(args, tmp_path)
    assert code == 0, out
    import optuna

    url = f"sqlite:///{db}"
    (summary,) = optuna.get_all_study_summaries(url)
    trials = optuna.load_study(study_name=summary.study_name, storage=url).get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4  # the limit, not more: a trial started twice at once is dropped
    assert not [t for t in trials if t.state.name == "RUNNING"]
    for n in done:  # finished before the kill: kept, never run again
        assert trials[n].state.name == "COMPLETE" and f"lstm: trial {n} (" not in out
    for n in killed:  # interrupted by the kill: failed, then run once more with the same settings
        assert trials[n].state.name == "FAIL"
        again = [t for t in trials if t.user_attrs.get("retry_of") == n]
        if trials[n].params:  # (a trial killed before its objective proposed anything has nothing to repeat)
            assert len(again) == 1 and again[0].params == trials[n].params
    assert any(trials[n].params for n in killed)  # the one killed in its objective
    table = pd.read_csv(tmp_path / "out/search.csv")
    assert sorted(table.trial) == sorted(set(table.trial)) and (table.state != "running").all()
    assert "2 trials at a time" in out
    results = json.loads((tmp_path / "out/results.json").read_text())
    assert results["search"]["lstm"]["parallel"] == 2
    assert "Trials ran in parallel (lstm up to 2 at a time)" in (tmp_path / "out/report.md").read_text()


@pytest.mark.ray
def test_a_search_on_ray_with_jobs_1_proposes_what_the_sequential_search_proposes(tmp_path, ray_extra):
    search = SEARCH.replace('family = "lstm"', 'family = "ngram"').replace(
        "lr = {low = 1e-3, high = 3e-2, log = true}\nlayers = {low = 1, high = 2}\ntrial_budget = {tokens = 400}",
        'order = {low = 1, high = 4}\nsmoothing = ["modified-kneser-ney", "witten-bell", "add-k"]',
    )
    search = "\n".join(line for line in search.splitlines() if not line.startswith(("emb_", "hidden_", "batch_",
                       "seq_", "warmup_", "eval_")))  # fmt: skip
    (tmp_path / "exp.toml").write_text(search)
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        seq = CliRunner().invoke(main, ["run", "exp.toml", "-o", "seq", "--runs-dir", "runs-seq"])
    finally:
        os.chdir(old)
    assert seq.exit_code == 0, seq.output
    code, out = run_cli(["run", "exp.toml", "-o", "ray", "--runs-dir", "runs-ray", "--executor", "ray",
                         "--jobs", "1"], tmp_path)  # fmt: skip
    assert code == 0, out
    a, b = (pd.read_csv(tmp_path / d / "search.csv") for d in ("seq", "ray"))
    columns = ["trial", "settings", "valid_perplexity", "state"]
    pd.testing.assert_frame_equal(a[columns], b[columns])
    assert (tmp_path / "seq/results.csv").read_bytes() == (tmp_path / "ray/results.csv").read_bytes()
    assert "Trials ran in parallel" not in (tmp_path / "ray/report.md").read_text()


# ------------------------------------------------------------------------------ torchrun beside Ray (CPU)
def test_the_ray_executor_under_torchrun_is_refused(tmp_path, monkeypatch):
    (tmp_path / "exp.toml").write_text(EXPERIMENT)
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets in every process it starts
    result = CliRunner().invoke(
        main, ["run", str(tmp_path / "exp.toml"), "-o", str(tmp_path / "out"), "--executor", "ray"]
    )
    assert result.exit_code == 2 and "does not run under torchrun" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_torchrun_with_two_gloo_processes_runs_an_experiment_like_one_process(tmp_path):
    """The whole CLI under torchrun on CPU: rank 0 writes the report, and each model's figures are those of a
    single process with the same global batch (within float tolerance; DDP sums gradients in another order)."""
    experiment = EXPERIMENT.split('[[model]]\nname = "transformer"')[0].replace("seeds = [0, 1]", "")
    (tmp_path / "exp.toml").write_text(
        experiment + '[evaluate]\nbootstrap = 0\n[report]\nformats = ["csv"]\n'
    )
    code, single = run_cli(["run", "exp.toml", "-o", "one", "--runs-dir", "runs-one"], tmp_path)
    assert code == 0, single
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
         "--master_addr=127.0.0.1", "-m", "lmbench.cli", "run", "exp.toml", "-o", "two", "--runs-dir", "runs-two"],
        cwd=tmp_path, env=env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    code, out = finish(proc)
    assert code == 0, out
    one, two = (pd.read_csv(tmp_path / d / "results.csv") for d in ("one", "two"))
    assert list(one.model) == list(two.model) == ["kn3", "kn3", "wb2", "wb2", "lstm", "lstm"]
    pd.testing.assert_series_equal(one.perplexity[:4], two.perplexity[:4])  # n-grams: not split, the same
    assert two.perplexity[4:].tolist() == pytest.approx(one.perplexity[4:].tolist(), rel=1e-3)
