"""Tuning on validation ([model.search]): config checks, the training loop's validation hook, searches that
resume without repeating a trial, studies keyed by their search space, equal budgets, shared storage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from lmbench.cli import main
from lmbench.config import load_config
from lmbench.errors import ConfigError
from lmbench.models.base import Budget
from lmbench.models.registry import create_model
from lmbench.reporting.search_plots import budget_statement
from lmbench.training import loop
from lmbench.training.loop import on_validation
from tests.conftest import import_or_fail

# searches need Optuna (extra [tune], also in [dev] and [test]); the config checks above run without it
needs_optuna = pytest.mark.usefixtures("optuna_installed")


@pytest.fixture
def optuna_installed() -> None:
    import_or_fail("optuna", "the tune extra: pip install -e '.[tune]'")


TRAIN = "\n".join(
    ["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog", "the dog and the cat"] * 8
)
NGRAM = """
[[model]]
name = "kn"
family = "ngram"
[model.search]
order = {low = 1, high = 3}
smoothing = ["modified-kneser-ney", "witten-bell", "add-k"]
"""
LSTM = """
[[model]]
name = "lstm"
family = "lstm"
emb_size = 8
hidden_size = 8
batch_size = 4
seq_len = 6
warmup_steps = 2
eval_every = 4
[model.search]
lr = {low = 1e-4, high = 3e-1, log = true}
layers = {low = 1, high = 2}
trial_budget = {tokens = 600}
"""


def project(root: Path, models: str, top: str = "", evaluate: str = "") -> Path:
    for name, text in (
        ("train.txt", TRAIN + "\n"),
        ("valid.txt", "the cat sat on the log\na dog saw the cat\n"),
        ("test.txt", "a dog sat on the mat\nthe cat saw the dog\n"),
    ):
        (root / name).write_text(text)
    config = root / "exp.toml"
    config.write_text(
        f'name = "tune"\n{top}\n[corpus]\ntrain = "train.txt"\nvalid = "valid.txt"\ntest = "test.txt"\n'
        f'[budget]\ntokens = 600\n{models}\n[evaluate]\n{evaluate}\nbootstrap = 0\n[report]\nformats = ["md", "csv", "json", "png"]\n'
    )
    return config


def cli(args: list[str], cwd: Path):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, args, catch_exceptions=False)
    finally:
        os.chdir(old)


def trials(root: Path, out: str = "out") -> pd.DataFrame:
    return pd.read_csv(root / out / "search.csv")


# ----------------------------------------------------------------------------------------- config checks
@pytest.mark.parametrize(
    "search, key, words",
    [
        ("lrr = {low = 1e-4, high = 1e-2}", "search.lrr", "has no setting 'lrr'"),
        ("dropout = []", "search.dropout", "empty list"),
        ("lr = {low = 1e-2, high = 1e-4}", "search.lr", "above high"),
        ("lr = {low = 0.01, high = 0.01}", "search.lr", "empty range"),
        ("lr = {low = 0.0, high = 0.1, log = true}", "search.lr", "low > 0"),
        ("lr = {low = 1e-4, high = 1e-2, scale = 2}", "search.lr.scale", "unknown key"),
        ("lr = {high = 1e-2}", "search.lr", "missing 'low'"),
        ("lr = 0.01", "search.lr", "expected a list of choices"),
        ("dropout = [0.1, 1.5]", "search.dropout", "1.5 is not accepted"),
        ("emb_size = [8, 16]", "search.emb_size", "both set in the model and searched"),
        ("seed = [0, 1]", "search.seed", "not a setting to tune"),
        ("trials = 0\nlr = [0.01]", "search.trials", "whole number >= 1"),
        ("trial_budget = {tokenz = 5}\nlr = [0.01]", "search.trial_budget.tokenz", "unknown key"),
        ("trials = 3", "search", "no setting to search"),
    ],
)
def test_bad_search_space_exits_2_naming_file_and_key(tmp_path, search, key, words):
    config = project(
        tmp_path, f'[[model]]\nname = "lstm"\nfamily = "lstm"\nemb_size = 8\n[model.search]\n{search}\n'
    )
    result = cli(["run", "exp.toml", "-o", "out"], tmp_path)
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert str(config.name) in line and key in line and words in line, line
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "models, top, words",
    [
        (NGRAM.replace("order =", "trial_budget = {tokens = 5}\norder ="), "", "takes no training budget"),
        (
            NGRAM.replace("order = {low = 1, high = 3}", "order = {low = 1, high = 99}"),
            "",
            "99 is not accepted",
        ),
        ('[[model]]\nname = "kn"\nfamily = "ngram"\n', "[search]\ntrials = 3", "no [model.search]"),
        (NGRAM, "[search]\nrounds = 3", "unknown key 'search.rounds'"),
        (NGRAM, "[search]\nbudget = {}", "search.budget: expected at least one"),
    ],
)
def test_bad_search_tables_are_config_errors(tmp_path, models, top, words):
    config = project(tmp_path, models, top)
    with pytest.raises(ConfigError, match=None) as err:
        load_config(config)
    assert words in str(err.value) and str(config) in str(err.value)


@needs_optuna
def test_bad_storage_url_exits_2(tmp_path):
    project(tmp_path, NGRAM.replace("[model.search]", "[model.search]\ntrials = 2"))
    result = cli(["run", "exp.toml", "-o", "out", "--storage", "nosuchdb://x/y"], tmp_path)
    assert result.exit_code == 2 and "--storage" in result.output and "Traceback" not in result.output


# ----------------------------------------------------------------------------------------- validation hook
def test_validation_hook_sees_each_point_but_the_closing_one_and_leaves_numbers_unchanged(
    tiny_train, tiny_test
):
    def fit(hook=None):
        model = create_model("lstm", emb_size=8, hidden_size=8, batch_size=2, seq_len=4, eval_every=3, seed=1)
        if hook is None:
            model.fit(tiny_train, tiny_test, budget=Budget(tokens=130))
        else:
            with on_validation(hook):
                model.fit(tiny_train, tiny_test, budget=Budget(tokens=130))
        return model

    import torch

    seen = []
    hooked, plain = fit(seen.append), fit()
    curve = plain.learning_curve_
    assert len(seen) >= 2 and len(curve) - 1 <= len(seen) <= len(curve)  # a closing pass is not reported
    assert [p["tokens"] for p in seen] == [p["tokens"] for p in curve[: len(seen)]]
    assert [p["valid_loss"] for p in seen] == [p["valid_loss"] for p in hooked.learning_curve_[: len(seen)]]
    for a, b in zip(hooked.net_.state_dict().values(), plain.net_.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    class Stop(Exception):
        pass

    def stop(point):
        raise Stop

    with pytest.raises(Stop):
        fit(stop)
    assert loop._VALIDATION_HOOK.get() is None  # the hook does not leak out of its block


# ----------------------------------------------------------------------------------------- end to end
@needs_optuna
def test_two_families_searched_then_trained_with_best_settings_and_reported_tuned(tmp_path):
    project(tmp_path, NGRAM + LSTM, "[search]\ntrials = 4")
    result = cli(["run", "exp.toml", "-o", "out"], tmp_path)
    assert result.exit_code == 0, result.output
    table = trials(tmp_path)
    assert table.groupby("model").size().to_dict() == {"kn": 4, "lstm": 4}
    assert set(table["state"]) <= {"complete", "pruned"}
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    for name in ("kn", "lstm"):
        search = results["search"][name]
        done = table[(table.model == name) & (table.state == "complete")]
        best_row = done.loc[done.valid_perplexity.idxmin()]
        assert json.loads(best_row.settings) == search["best"] == results["models"][name]["tuned"]
        assert search["best_valid_perplexity"] == pytest.approx(best_row.valid_perplexity)
        for key, value in search["best"].items():  # the final model was trained with the best settings
            assert results["models"][name]["params"][key] == value
    # the final kn's valid perplexity is the search's objective for those settings (same evaluation path)
    kn_valid = [r for r in results["rows"] if r["model"] == "kn" and r["split"] == "valid"][0]
    assert kn_valid["perplexity"] == pytest.approx(results["search"]["kn"]["best_valid_perplexity"])
    lstm_trials = table[table.model == "lstm"]
    assert (lstm_trials.tokens <= 600 + 4 * 6).all()  # the trial budget, not the full one
    report = (tmp_path / "out" / "report.md").read_text()
    assert "kn (tuned)" in report and "lstm (tuned)" in report and "## Tuning" in report
    for png in ("search_trials.png", "search_sensitivity.png"):
        assert (tmp_path / "out" / png).stat().st_size > 1000
    assert "(tuned)" in result.output

    again = cli(["run", "exp.toml", "-o", "out"], tmp_path)  # a finished search is not run again
    assert again.exit_code == 0 and "search finished earlier" in again.output
    assert "trial 0 (" not in again.output
    pd.testing.assert_frame_equal(trials(tmp_path), table)
    rerendered = cli(["report", "out"], tmp_path)  # from results.json alone
    assert rerendered.exit_code == 0 and "(tuned)" in rerendered.output
    pd.testing.assert_frame_equal(trials(tmp_path), table)
    assert (tmp_path / "out" / "search_trials.png").is_file()


@needs_optuna
def test_changing_the_search_space_starts_a_new_study(tmp_path):
    config = project(tmp_path, NGRAM.replace("[model.search]", "[model.search]\ntrials = 3"))
    assert cli(["run", "exp.toml", "-o", "out"], tmp_path).exit_code == 0
    first = json.loads((tmp_path / "out" / "results.json").read_text())["search"]["kn"]["study"]
    config.write_text(config.read_text().replace('"add-k"]', '"add-k", "absolute-discounting"]'))
    result = cli(["run", "exp.toml", "-o", "out"], tmp_path)
    assert result.exit_code == 0
    assert "search changed" in result.output and "starting a new study" in result.output
    second = json.loads((tmp_path / "out" / "results.json").read_text())["search"]["kn"]
    assert second["study"] != first and len(second["trials"]) == 3
    assert (tmp_path / "runs" / "tune" / "kn" / "search.db").is_file()


@needs_optuna
def test_an_interrupted_search_resumes_without_repeating_finished_trials(tmp_path, monkeypatch):
    import optuna

    project(tmp_path, LSTM.replace("[model.search]", "[model.search]\ntrials = 4"))
    config = load_config(tmp_path / "exp.toml")
    from lmbench.experiment import run_experiment

    trainers: list[int] = []
    original = loop.Trainer._evaluate

    def interrupt_in_third_trial(self, *args, **kwargs):
        if id(self) not in trainers:
            trainers.append(id(self))
        if len(trainers) == 3:  # the first validation pass of trial 2
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(loop.Trainer, "_evaluate", interrupt_in_third_trial)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, tmp_path / "runs")
    monkeypatch.setattr(loop.Trainer, "_evaluate", original)
    url = f"sqlite:///{tmp_path / 'runs' / 'lstm' / 'search.db'}"
    (summary,) = optuna.get_all_study_summaries(url)
    before = optuna.load_study(study_name=summary.study_name, storage=url).get_trials()
    assert [t.state.name for t in before] == ["COMPLETE", "COMPLETE", "FAIL"]

    lines: list[str] = []
    resumed = run_experiment(config, tmp_path / "runs", progress=lines.append)
    after = optuna.load_study(study_name=summary.study_name, storage=url).get_trials()
    assert [t.state.name for t in after[:2]] == ["COMPLETE", "COMPLETE"]
    assert [(t.number, t.value) for t in after[:2]] == [(t.number, t.value) for t in before[:2]]
    assert not any(line.startswith(("lstm: trial 0 (", "lstm: trial 1 (")) for line in lines)
    assert after[3].params == before[2].params  # the interrupted trial runs again with its settings
    finished = [t for t in after if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4

    # ... and proposes what an uninterrupted search proposes
    fresh = run_experiment(config, tmp_path / "fresh")
    settings = lambda search: [t.settings for t in search.trials if t.state != "fail"]  # noqa: E731
    assert settings(resumed.search["lstm"]) == settings(fresh.search["lstm"])
    assert resumed.search["lstm"].best == fresh.search["lstm"].best


@needs_optuna
def test_hopeless_trials_are_pruned_from_their_learning_curve(tmp_path):
    models = LSTM.replace("[model.search]", "[model.search]\ntrials = 8")
    project(tmp_path, models)
    assert cli(["run", "exp.toml", "-o", "out"], tmp_path).exit_code == 0
    table = trials(tmp_path)
    pruned = table[table.state == "pruned"]
    complete = table[table.state == "complete"]
    assert len(pruned) >= 1 and len(table) == 8
    assert (pruned.tokens < complete.tokens.min()).all()  # stopped before its trial budget
    assert pruned.last_reported_perplexity.notna().all()


@needs_optuna
def test_equal_total_budgets_across_families_are_stated(tmp_path):
    transformer = """
[[model]]
name = "transformer"
family = "transformer"
d_model = 8
n_heads = 2
layers = 1
window = 8
batch_size = 4
seq_len = 6
warmup_steps = 2
eval_every = 4
[model.search]
lr = {low = 1e-4, high = 3e-1, log = true}
dropout = [0.0, 0.2]
trial_budget = {tokens = 600}
"""
    project(tmp_path, LSTM + transformer, "[search]\nbudget = {tokens = 1500}")
    result = cli(["run", "exp.toml", "-o", "out"], tmp_path)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    for name, search in results["search"].items():
        spent = search["spent"]["tokens"]
        assert spent <= 1500, name  # the total never exceeds the limit
        # 600-token trials: two whole ones, then the last cut to what is left (300 >= half a trial)
        cut = [t for t in search["trials"] if "cut to tokens=" in t["note"]]
        assert len(cut) == 1 and cut[0]["trial"] == max(t["trial"] for t in search["trials"]), name
        assert 1500 - spent < 50, name  # the cut trial used what was left, to within one batch column
        assert f"{spent:,} / 1,500 tokens" in (tmp_path / "out" / "report.md").read_text()
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Tuned with equal budgets: each search was limited to tokens=1,500 in total" in report


def test_budget_statement_says_what_differed_and_what_was_not_tuned():
    from lmbench.results import SearchSpent, SearchSummary

    def search(limits, trial_budget="tokens=600"):
        spent = SearchSpent(trials=3, pruned=1, tokens=1800, seconds=2.0)
        return SearchSummary(family="lstm", best={}, best_valid_perplexity=9.0, space={}, limits=limits,
                             trial_budget=trial_budget, spent=spent, study="s", storage="search.db")  # fmt: skip

    equal = budget_statement({"a": search("5 trials"), "b": search("5 trials")}, ["kn"])
    assert equal.startswith("Tuned with equal budgets") and "Not tuned (settings as written): kn" in equal
    differed = budget_statement({"a": search("5 trials"), "b": search("9 trials")}, [])
    assert (
        differed.startswith("Tuning budgets differed")
        and "a: 5 trials" in differed
        and "b: 9 trials" in differed
    )
    assert budget_statement({}, ["kn"]) == ""


@needs_optuna
def test_two_processes_sharing_a_storage_split_the_trials_of_one_study(tmp_path):
    project(tmp_path, NGRAM.replace("[model.search]", "[model.search]\ntrials = 20"))
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lmbench.cli",
                "run",
                "exp.toml",
                "-o",
                f"out{i}",
                "--runs-dir",
                f"runs{i}",
                "--storage",
                storage,
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for i in (0, 1)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    a = trials(tmp_path, "out0")
    done = a[a.state == "complete"]
    assert len(done) == 20 and sorted(done.trial) == sorted(set(done.trial))  # one study, no trial twice
    assert done.worker.nunique() == 2  # both processes ran trials
    ran = [sum(line.startswith("kn: trial ") for line in out.splitlines()) for out in outputs]
    assert sum(ran) == len(a) and min(ran) >= 1
    best = [
        json.loads((tmp_path / f"out{i}" / "results.json").read_text())["search"]["kn"]["best"]
        for i in (0, 1)
    ]
    assert best[0] == best[1]
    assert not (tmp_path / "runs0" / "kn" / "search.db").exists()  # the study lives in the shared storage


@needs_optuna
def test_the_search_objective_is_the_final_models_validation_perplexity(tmp_path):
    """With the trial budget equal to the final one, the final model is the best trial's model: its reported
    validation perplexity (stream mode: read from the learning curve during the search) is the objective."""
    models = LSTM.replace("trial_budget = {tokens = 600}", "trials = 3")
    project(tmp_path, models, evaluate='context = ["stream"]')
    assert cli(["run", "exp.toml", "-o", "out"], tmp_path).exit_code == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    (valid,) = [r for r in results["rows"] if r["split"] == "valid"]
    assert valid["perplexity"] == pytest.approx(results["search"]["lstm"]["best_valid_perplexity"], rel=1e-9)


def test_a_search_without_optuna_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    project(tmp_path, NGRAM.replace("[model.search]", "[model.search]\ntrials = 2"))
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    result = cli(["run", "exp.toml", "-o", "out"], tmp_path)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "model 'kn'.search" in result.output and "lmbench[tune]" in result.output
    assert not (tmp_path / "out").exists()


def test_spend_is_printed_against_its_limit_and_an_overspend_is_named():
    import dataclasses

    from lmbench.reporting.search_plots import spend_text
    from lmbench.results import SearchLimit, SearchSpent, SearchSummary

    limit = SearchLimit(trials=None, tokens=1_500_000, epochs=None, minutes=None)
    within = SearchSpent(trials=5, pruned=1, tokens=1_484_510, epochs=9.5, seconds=383.0)
    search = SearchSummary(family="kn", best={}, best_valid_perplexity=9.0, space={}, limits="", trial_budget="",
                           spent=within, limit=limit, study="s", storage="search.db")  # fmt: skip
    assert spend_text(search) == "5 trials (1 pruned), 1,484,510 / 1,500,000 tokens, 383 s"
    over = spend_text(dataclasses.replace(search, spent=dataclasses.replace(within, tokens=1_784_930)))
    assert "1,784,930 / 1,500,000 tokens" in over and "OVER its tokens limit" in over


class _Later:
    """A submitted trial that runs only when it is collected (no equality: handles are told apart by identity)."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args


@needs_optuna
def test_trials_in_flight_count_against_the_limit_so_parallel_trials_never_overspend(tmp_path):
    """Two trials submitted at once (as with --jobs 2), each run only when collected: a trial submitted but not
    yet in the study is counted as a full one, so the total stays within the limit and the last trial is cut."""
    from lmbench.config import load_config
    from lmbench.executors import Executor
    from lmbench.experiment import run_experiment

    class Deferred(Executor):
        jobs = 2

        def submit(self, fn, *args, resources):
            return _Later(fn, args)

        def result(self, handle):
            return handle.fn(*handle.args)

    project(tmp_path, LSTM, "[search]\nbudget = {tokens = 1500}")
    lines: list[str] = []
    results = run_experiment(
        load_config(tmp_path / "exp.toml"), tmp_path / "runs", progress=lines.append, executor=Deferred()
    )
    search = results.search["lstm"]
    assert search.spent.tokens <= 1500 and search.parallel == 2
    assert search.limit.tokens == 1500
    cut = [t for t in search.trials if "cut to tokens=" in t.note]
    assert len(cut) == 1 and cut[0].trial == max(t.trial for t in search.trials)
    assert any("2 trials at a time" in line for line in lines)


@needs_optuna
def test_a_search_result_is_a_typed_record_that_round_trips_through_results_json(tmp_path):
    """The search hands the experiment its typed record (no dict converted on the way): trials, spend and limits
    are records, and results.json stores and reads it back unchanged, as the strict reader would build it."""
    from lmbench.experiment import load_data
    from lmbench.results import RunResults, SearchLimit, SearchSpent, SearchSummary, SearchTrial
    from lmbench.search.study import tune_models

    project(tmp_path, NGRAM.replace("[model.search]", "[model.search]\ntrials = 3"))
    config = load_config(tmp_path / "exp.toml")
    tuned, found, failed = tune_models(config, load_data(config), tmp_path / "runs", say=lambda line: None)
    assert failed == [] and list(found) == ["kn"]
    search = found["kn"]
    assert isinstance(search, SearchSummary) and isinstance(search.spent, SearchSpent)
    assert isinstance(search.limit, SearchLimit) and search.limit.trials == 3 and search.limit.tokens is None
    assert [type(t) for t in search.trials] == [SearchTrial] * 3 and search.spent.trials == 3
    assert [t.trial for t in search.trials] == [0, 1, 2] and search.parallel == 1
    assert tuned.models[0].params["order"] == search.best["order"]
    stored = RunResults(search=found).to_json()
    again = RunResults.from_dict(json.loads(stored))
    assert again.to_json() == stored
    as_read = SearchSummary.read(json.loads(json.dumps(search.to_dict())), "search.kn")
    assert json.dumps(as_read.to_dict()) == json.dumps(search.to_dict())  # (nan != nan: compared as text)
    assert list(json.loads(stored)["search"]["kn"]) == [
        "family", "best", "best_valid_perplexity", "space", "limits", "trial_budget", "spent", "limit", "study",
        "storage", "trials", "parallel",
    ]  # fmt: skip
