"""Results you can trust: run identity, seeds that reach every model, reproducible budgets, failures.

Each test here failed on the code before run fingerprints: a re-run reused stale results, the seed never
reached neural models, a diverged model counted as a success.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from lmbench.cli import main
from lmbench.config import load_config
from lmbench.errors import ConfigError, TrainingDiverged
from lmbench.experiment import run_experiment
from lmbench.models.base import Budget
from lmbench.models.registry import available_models, create_model
from lmbench.training.loop import TrainConfig, Trainer

TRAIN = "\n".join(
    ["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog", "the dog and the cat"] * 8
)
LSTM = """
[[model]]
name = "lstm"
family = "lstm"
emb_size = 8
hidden_size = 8
layers = 1
batch_size = 4
seq_len = 6
warmup_steps = 2
eval_every = 5
{extra}
"""


def write_project(
    root,
    *,
    models: str,
    top: str = "",
    evaluate: str = 'context = ["sentence"]',
    budget: str = "tokens = 600",
):
    for name, text in (
        ("train.txt", TRAIN + "\n"),
        ("valid.txt", "the cat sat on the log\na dog saw the cat\n"),
        ("test.txt", "a dog sat on the mat\nthe cat saw the dog\n"),
    ):
        if not (root / name).exists():
            (root / name).write_text(text)
    config = root / "exp.toml"
    config.write_text(
        f'name = "trust"\n{top}\n[corpus]\ntrain = "train.txt"\nvalid = "valid.txt"\ntest = "test.txt"\n'
        f"[budget]\n{budget}\n{models}\n[evaluate]\n{evaluate}\nbootstrap = 100\n"
        '[report]\nformats = ["md", "csv", "json", "png"]\n'
    )
    return config


def cli(args, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, args, catch_exceptions=False)
    finally:
        os.chdir(old)


def figures(root, out="out"):
    return pd.read_csv(root / out / "results.csv")


def test_the_seed_reaches_a_neural_model_and_a_seed_change_retrains(tmp_path):
    config = write_project(tmp_path, models=LSTM.format(extra=""), top="seed = 0")
    first = cli(["run", str(config), "-o", "out"], tmp_path)
    assert first.exit_code == 0, first.output
    ppl0 = figures(tmp_path).perplexity.tolist()
    config.write_text(config.read_text().replace("seed = 0", "seed = 1"))
    second = cli(["run", str(config), "-o", "out"], tmp_path)
    assert second.exit_code == 0, second.output
    assert "skipped" not in second.output
    ppl1 = figures(tmp_path).perplexity.tolist()
    assert ppl0 != ppl1  # the LSTM trained with seed 1, not the default 0
    fit = json.loads((tmp_path / "runs/trust/lstm/seed-1/fit.json").read_text())
    assert fit["identity"]["params"]["seed"] == 1 and fit["info"]["config"]["seed"] == 1
    # and the API path agrees: the same seed gives the same model through create_model alone
    assert create_model("lstm", seed=1).get_params()["seed"] == 1


def test_a_rerun_with_nothing_changed_reuses_and_a_budget_change_retrains(tmp_path):
    config = write_project(tmp_path, models=LSTM.format(extra=""))
    assert cli(["run", str(config), "-o", "out"], tmp_path).exit_code == 0
    same = cli(["run", str(config), "-o", "out"], tmp_path)
    assert "lstm [seed 0]: finished earlier" in same.output
    config.write_text(config.read_text().replace("tokens = 600", "tokens = 900"))
    changed = cli(["run", str(config), "-o", "out"], tmp_path)
    assert "budget tokens=600 -> tokens=900, retraining" in changed.output
    assert 600 < figures(tmp_path).train_tokens.iloc[0] <= 900  # the new budget, kept (never passed)


def test_editing_a_data_file_changes_the_rerun_figures(tmp_path):
    models = '[[model]]\nname = "kn3"\nfamily = "ngram"\norder = 3\n'
    config = write_project(tmp_path, models=models)
    assert cli(["run", str(config), "-o", "out"], tmp_path).exit_code == 0
    before = figures(tmp_path)
    test = tmp_path / "test.txt"
    test.write_text(test.read_text().replace(" the ", " cat "))  # same token count, other words
    again = cli(["run", str(config), "-o", "out"], tmp_path)
    assert again.exit_code == 0 and "kn3: test.txt changed, re-scoring" in again.output
    after = figures(tmp_path)
    t0, t1 = (f[f.split == "test"].perplexity.iloc[0] for f in (before, after))
    assert t0 != pytest.approx(t1)
    # a fresh run in another folder gives exactly the re-run's figures
    fresh = cli(["run", str(config), "-o", "fresh", "--runs-dir", "runs2"], tmp_path)
    assert fresh.exit_code == 0
    assert figures(tmp_path, "fresh").perplexity.tolist() == after.perplexity.tolist()
    # a test file of another length is re-scored too, never an IndexError
    test.write_text(test.read_text() + "the dog sat\n")
    assert cli(["run", str(config), "-o", "out"], tmp_path).exit_code == 0
    assert figures(tmp_path)[lambda f: f.split == "test"].tokens.iloc[0] == 17


def test_changing_evaluate_settings_rescores_without_retraining(tmp_path):
    models = '[[model]]\nname = "kn3"\nfamily = "ngram"\norder = 3\n'
    config = write_project(tmp_path, models=models)
    assert cli(["run", str(config), "-o", "out"], tmp_path).exit_code == 0
    config.write_text(
        config.read_text().replace('context = ["sentence"]', 'context = ["sentence", "stream"]')
    )
    both = cli(["run", str(config), "-o", "out"], tmp_path)
    assert both.exit_code == 0 and "re-scoring" in both.output and "retraining" not in both.output
    assert set(figures(tmp_path).context) == {"sentence", "stream"}
    config.write_text(config.read_text().replace('context = ["sentence", "stream"]', 'context = "stream"'))
    stream = cli(["run", str(config), "-o", "out"], tmp_path)
    assert stream.exit_code == 0, stream.output
    assert set(figures(tmp_path).context) == {"stream"}


def test_changing_lr_or_size_after_an_interrupt_starts_fresh(tmp_path):
    from lmbench.data import Corpus, get_tokenizer, tokenize_corpus

    data = tokenize_corpus(
        Corpus.from_texts("t", TRAIN, "the cat sat", "a dog sat"), get_tokenizer("whitespace")
    )
    run_dir = tmp_path / "run"
    params = {"emb_size": 8, "hidden_size": 8, "layers": 1, "batch_size": 4, "seq_len": 6, "warmup_steps": 1}

    def interrupted(**changes):
        model = create_model("lstm", **{**params, **changes})
        original = Trainer.__init__

        def stop_early(self, *args, **kwargs):
            original(self, *args, **kwargs)
            self.stop_after_steps = 3

        Trainer.__init__ = stop_early
        try:
            with pytest.raises(KeyboardInterrupt):
                model.fit(data.train, data.valid, budget=Budget(tokens=2000), run_dir=run_dir)
        finally:
            Trainer.__init__ = original

    interrupted(lr=3e-3)
    assert (run_dir / "checkpoint.pt").exists()
    changed = create_model("lstm", **{**params, "lr": 1e-2}).fit(
        data.train, data.valid, budget=Budget(tokens=2000), run_dir=run_dir
    )
    assert any("other settings" in note for note in changed.notes_)
    # the fresh run is exactly a run that never saw the stale checkpoint
    clean = create_model("lstm", **{**params, "lr": 1e-2}).fit(
        data.train, data.valid, budget=Budget(tokens=2000), run_dir=tmp_path / "clean"
    )
    assert changed.learning_curve_ == [
        {**p, "seconds": q["seconds"]}
        for p, q in zip(clean.learning_curve_, changed.learning_curve_, strict=True)
    ]
    # a different size cannot even load the old weights: a fresh start, never a state_dict error
    interrupted(hidden_size=8)
    bigger = create_model("lstm", **{**params, "hidden_size": 12}).fit(
        data.train, data.valid, budget=Budget(tokens=2000), run_dir=run_dir
    )
    assert bigger.num_parameters() > 0 and bigger.notes_


def test_an_unreadable_checkpoint_is_a_fresh_start_not_a_pickle(tmp_path):
    from lmbench.data import Corpus, get_tokenizer, tokenize_corpus

    data = tokenize_corpus(
        Corpus.from_texts("t", TRAIN, "the cat sat", "a dog sat"), get_tokenizer("whitespace")
    )
    (tmp_path / "checkpoint.pt").write_bytes(os.urandom(300))
    model = create_model("gru", emb_size=8, hidden_size=8, layers=1, batch_size=4, seq_len=6)
    model.fit(data.train, data.valid, budget=Budget(tokens=300), run_dir=tmp_path)
    assert any("unreadable checkpoint" in n and "weights_only" not in n for n in model.notes_)


@pytest.mark.parametrize("name", ["fit.json", "model.bin", "metrics.json", "logprobs.npz", "identity.json"])
def test_a_corrupt_cached_file_means_retrain_or_rescore_with_a_line(tmp_path, name):
    config = write_project(tmp_path, models=LSTM.format(extra=""))
    assert cli(["run", str(config), "-o", "out"], tmp_path).exit_code == 0
    before = figures(tmp_path).perplexity.tolist()
    (tmp_path / "runs/trust/lstm/seed-0" / name).write_bytes(b"\x80garbage")
    again = cli(["run", str(config), "-o", "out"], tmp_path)
    assert again.exit_code == 0, again.output
    assert "Traceback" not in again.output
    if name != "identity.json":  # identity.json is only read for an unfinished run
        assert name in again.output and ("unreadable" in again.output or "checksum mismatch" in again.output)
    assert figures(tmp_path).perplexity.tolist() == before  # deterministic: the same figures again


def test_a_diverged_model_is_a_failure_and_the_report_is_still_written(tmp_path):
    models = (
        LSTM.format(extra="lr = 1e6\nclip = 0") + '[[model]]\nname = "kn2"\nfamily = "ngram"\norder = 2\n'
    )
    config = write_project(tmp_path, models=models)
    result = cli(["run", str(config), "-o", "out"], tmp_path)
    assert result.exit_code == 1
    assert "lstm [seed 0]: failed: training diverged" in result.output
    report = (tmp_path / "out/report.md").read_text()
    assert "## Failures" in report and "training diverged" in report and "step" in report
    assert list(figures(tmp_path).model.unique()) == ["kn2"]
    assert not (tmp_path / "runs/trust/lstm/seed-0/fit.json").exists()  # never cached as finished
    assert cli(["run", str(config), "-o", "out"], tmp_path).exit_code == 1  # and fails again, honestly


def test_a_run_whose_only_model_has_infinite_perplexity_writes_a_report(tmp_path):
    models = '[[model]]\nname = "bigram-mle"\nfamily = "ngram"\norder = 2\nsmoothing = "mle"\n'
    config = write_project(tmp_path, models=models)
    result = cli(["run", str(config), "-o", "out"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "∞" in (tmp_path / "out/report.md").read_text()
    assert np.isinf(figures(tmp_path).perplexity).all()


def test_two_runs_of_a_small_ladder_give_bit_identical_results_csv(tmp_path):
    models = (
        '[[model]]\nname = "kn3"\nfamily = "ngram"\norder = 3\n'
        + LSTM.format(extra="")
        + '[[model]]\nname = "transformer"\nfamily = "transformer"\nd_model = 8\nn_heads = 2\nlayers = 1\n'
        "window = 8\nbatch_size = 4\nwarmup_steps = 2\n"
    )
    config = write_project(tmp_path, models=models)
    assert cli(["run", str(config), "-o", "a", "--runs-dir", "ra"], tmp_path).exit_code == 0
    assert cli(["run", str(config), "-o", "b", "--runs-dir", "rb"], tmp_path).exit_code == 0
    assert (tmp_path / "a/results.csv").read_bytes() == (tmp_path / "b/results.csv").read_bytes()
    frame = figures(tmp_path, "a")
    neural = frame[frame.family != "ngram"]
    assert (neural.budget == "tokens=600").all() and neural.train_tokens.between(590, 600).all()  # never over
    assert (neural.train_flops > 0).all()


def test_several_seeds_give_one_row_with_the_seed_spread(tmp_path):
    models = LSTM.format(extra="") + '[[model]]\nname = "kn2"\nfamily = "ngram"\norder = 2\n'
    config = write_project(tmp_path, models=models, top="seeds = [0, 1, 2]")
    config.write_text(config.read_text().replace("[report]", '[report]\nbaseline = "kn2"'))
    result = cli(["run", str(config), "-o", "out"], tmp_path)
    assert result.exit_code == 0, result.output
    frame = figures(tmp_path)
    lstm = frame[(frame.model == "lstm") & (frame.split == "test")].iloc[0]
    kn2 = frame[(frame.model == "kn2") & (frame.split == "test")].iloc[0]
    assert lstm.seeds == 3 and kn2.seeds == 1  # deterministic models run once
    by_seed = pd.read_csv(tmp_path / "out/results_by_seed.csv")
    per_seed = by_seed[(by_seed.model == "lstm") & (by_seed.split == "test")]
    assert sorted(per_seed.seed) == [0, 1, 2]
    assert lstm.seed_sd == pytest.approx(np.std(per_seed.perplexity, ddof=1))
    # the perplexity of the mean per-seed cross-entropy
    assert lstm.perplexity == pytest.approx(np.exp(np.mean(np.log(per_seed.perplexity))))
    assert lstm.perplexity_low <= lstm.perplexity <= lstm.perplexity_high
    assert not np.isnan(lstm.diff_vs_baseline)
    assert "(sd " in (tmp_path / "out/report.md").read_text()
    # a per-model seed list overrides the top-level one
    config.write_text(config.read_text().replace('family = "lstm"', 'family = "lstm"\nseeds = [5]'))
    cli(["run", str(config), "-o", "out"], tmp_path)
    assert figures(tmp_path).query("model == 'lstm'").seeds.iloc[0] == 1


def test_seed_interval_covers_training_randomness():
    """Resampling seeds widens the interval: three seeds that disagree give a wider interval than any one."""
    from lmbench.data import TokenStream, Vocabulary
    from lmbench.evaluation.bootstrap import perplexity_interval, seeded_perplexity_interval

    vocab = Vocabulary.build([["a", "b", "c"]])
    lines = [[1 + (i % 3)] * 5 for i in range(200)]
    data = TokenStream.from_ids(lines, vocab)
    rng = np.random.default_rng(0)
    base = -rng.uniform(0.5, 1.5, data.num_predicted)
    seeds = [base, base - 0.3, base + 0.3]
    low, high = seeded_perplexity_interval(seeds, data)
    single = perplexity_interval(base, data)
    assert high - low > 2 * (single[1] - single[0])
    assert seeded_perplexity_interval([base], data) == single


@pytest.mark.parametrize("family", [f for f in available_models() if f != "pretrained"])
def test_get_params_round_trips_for_every_backend(family):
    model = create_model(family)
    params = model.get_params()
    rebuilt = create_model(family, **params)
    assert rebuilt.get_params() == params
    assert type(rebuilt) is type(model) and rebuilt.config() == model.config()
    with pytest.raises(ConfigError, match="no_such_setting"):
        create_model(family, **params, no_such_setting=1)


def test_get_params_round_trips_for_pretrained(tiny_hf_model):
    model = create_model("pretrained", name_or_path=str(tiny_hf_model), window=16)
    assert create_model("pretrained", **model.get_params()).get_params() == model.get_params()
    assert not model.stochastic and create_model("pretrained", name_or_path="x", finetune=True).stochastic


def test_nothing_is_clamped_silently():
    with pytest.raises(ConfigError, match="seq_len: 256 is longer than the context window 64"):
        create_model("transformer", window=64, seq_len=256)
    assert create_model("transformer", window=64).get_params()["seq_len"] == 64
    with pytest.raises(ConfigError, match="cell"):
        create_model("lstm", cell="gru")


def test_no_budget_means_the_epoch_default_once(tmp_path):
    """An empty Budget() is no budget: the trainer uses the config's epochs (it used to train forever)."""
    trainer = Trainer(TrainConfig(epochs=0.5), Budget())
    assert trainer.budget == Budget(epochs=0.5)
    with pytest.raises(ConfigError, match="whole number"):
        Budget(tokens=0.5)


# a hang (no budget read as "train forever") is cut here, whatever the machine's load
@pytest.mark.timeout(300)
def test_a_task_with_a_neural_model_and_no_budget_finishes(tmp_path):
    classify = tmp_path / "cls.tsv"
    classify.write_text(
        "label\tsentence\n" + "".join(f"{'a' if i % 2 else 'b'}\tthe cat sat {i % 3}\n" for i in range(20))
    )
    models = LSTM.format(extra="epochs = 0.5")
    config = write_project(tmp_path, models=models, budget="")
    config.write_text(
        config.read_text().replace("[budget]\n", "")
        + f'[tasks.classify]\ntrain = "{classify}"\ntest = "{classify}"\n'
    )
    result = cli(["run", str(config), "-o", "out"], tmp_path)
    assert result.exit_code == 0, result.output
    assert figures(tmp_path).budget.iloc[0] == "epochs=0.5"
    tasks = pd.read_csv(tmp_path / "out/tasks.csv")
    generative = tasks[(tasks.model == "lstm") & (tasks.method == "generative")]
    assert (generative.budget == "epochs=0.5").all() and (generative.train_tokens > 0).all()
    timings = pd.read_csv(tmp_path / "out/timings.csv")  # machine times live apart from the figures
    assert (timings[timings.task.fillna("").str.startswith("classify")].train_seconds > 0).all()


def test_minutes_budget_keeps_back_the_closing_validation():
    """With a wall-clock budget the loop stops early enough for the closing validation pass to fit."""
    trainer = Trainer(TrainConfig(), Budget(minutes=1.0))
    from lmbench.training.loop import TrainState

    state = TrainState(tokens=1000, seconds=50.0)
    assert trainer._fraction_done(state, 10**9) == pytest.approx(50 / 60)
    trainer._eval_seconds = 15.0  # the last validation pass took 15 s: 50 + 15 > 60, so stop now
    assert trainer._fraction_done(state, 10**9) == 1.0


def test_config_seeds_are_checked(tmp_path):
    config = write_project(tmp_path, models=LSTM.format(extra=""), top="seeds = [0, 0]")
    with pytest.raises(ConfigError, match="distinct"):
        load_config(config)
    config = write_project(tmp_path, models=LSTM.format(extra=""), top="seed = -1")
    with pytest.raises(ConfigError, match="seed"):
        load_config(config)


def test_trainer_raises_on_a_non_finite_loss():
    import torch

    net = torch.nn.Linear(2, 2)
    trainer = Trainer(TrainConfig(warmup_steps=0), Budget(tokens=100))
    from lmbench.training.loop import Batch

    def batches(epoch):
        for i in range(10):
            yield Batch(
                torch.zeros(1, 2, dtype=torch.long),
                torch.zeros(1, 2, dtype=torch.long),
                torch.ones(1, 2, dtype=torch.bool),
                i,
            )

    def loss(module, batch, carry):
        return module.weight.sum() * float("nan"), 2, None

    with pytest.raises(TrainingDiverged) as e:
        trainer.fit(net, batches, loss, None, epoch_tokens=20, device=torch.device("cpu"))
    assert e.value.step == 1


def test_results_record_each_models_fingerprint(tmp_path):
    config = write_project(tmp_path, models=LSTM.format(extra=""))
    results = run_experiment(load_config(config), tmp_path / "runs")
    assert len(results.provenance.fingerprints["lstm"][0]) == 16
    assert 590 <= results.models["lstm"].train_tokens <= 600


def test_identity_changes_are_said_in_words():
    from lmbench.runs import describe_change

    old = {
        "seed": 0,
        "params": {"lr": 0.003},
        "budget": {"tokens": 600, "epochs": None},
        "data": {"test": "a"},
    }
    new = {
        "seed": 1,
        "params": {"lr": 0.01},
        "budget": {"tokens": 900, "epochs": None},
        "data": {"test": "b"},
    }
    text = describe_change(old, new, {"test": "test.txt"})
    assert text == "seed 0 -> 1, lr 0.003 -> 0.01, budget tokens=600 -> tokens=900, test.txt changed"


def test_the_narrative_explains_a_time_budget_rank_by_tokens_seen():
    from lmbench.reporting.narrative import ladder_narrative
    from lmbench.results import RunResults

    row = {"split": "test", "context": "stream", "family": "lstm", "parameters": 10, "budget": "minutes=3"}
    results = RunResults.from_dict({
        "rows": [
            {**row, "model": "rnn", "family": "rnn", "perplexity": 20.0, "train_tokens": 3_000_000},
            {**row, "model": "lstm", "perplexity": 24.0, "train_tokens": 1_000_000},
        ],
        "models": {"rnn": {"family": "rnn"}, "lstm": {"family": "lstm"}},
    })  # fmt: skip
    text = ladder_narrative(results)[1].text
    assert "3.0x fewer tokens than rnn" in text and "budget minutes=3" in text
    for r in results.rows:
        r.budget = "tokens=1,000,000"
    assert "fewer tokens" not in ladder_narrative(results)[1].text
