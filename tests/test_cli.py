"""The command line, end to end through Click's CliRunner: runs, resumes, one-line errors, reports."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from lmbench.cli import main

TRAIN = (
    "\n".join(
        ["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog", "the dog and the cat"] * 5
    )
    + "\n"
)


@pytest.fixture
def project(tmp_path):
    for name, text in (
        ("train.txt", TRAIN),
        ("valid.txt", "the cat sat on the log\n"),
        ("test.txt", "a dog sat on the mat\nthe zebra\n"),
    ):
        (tmp_path / name).write_text(text)
    config = tmp_path / "exp.toml"
    config.write_text(
        """
name = "tiny"
[corpus]
train = "train.txt"
valid = "valid.txt"
test = "test.txt"
[[model]]
name = "kn3"
family = "ngram"
order = 3
smoothing = "modified-kneser-ney"
[[model]]
name = "wb2"
family = "ngram"
order = 2
smoothing = "witten-bell"
[evaluate]
context = ["sentence", "stream"]
bootstrap = 200
[tasks.next-word]
max_tokens = 50
[report]
formats = ["md", "csv", "json", "html", "latex"]
baseline = "kn3"
"""
    )
    return tmp_path, config


def run(args, cwd):
    import os

    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, args, catch_exceptions=False)
    finally:
        os.chdir(old)


def test_run_writes_results_with_the_documented_columns(project):
    root, config = project
    result = run(["run", str(config), "--output", "out"], root)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(root / "out" / "results.csv")
    for column in ("model", "family", "split", "context", "seeds", "budget", "tokens", "oov", "perplexity",
                   "bits_per_token", "bits_per_char", "parameters", "train_tokens", "train_flops",
                   "perplexity_low", "perplexity_high", "seed_sd"):  # fmt: skip
        assert column in frame.columns
    assert len(frame) == 2 * 2 * 2  # models x splits x contexts
    # what this machine took lives apart from the figures, so identical runs give identical results.csv
    assert "train_seconds" not in frame.columns
    timings = pd.read_csv(root / "out" / "timings.csv")
    assert {"model", "train_seconds", "score_tokens_per_second", "peak_rss_mb"} <= set(timings.columns)
    assert (
        frame.train_tokens == 130
    ).all() and frame.train_flops.isna().all()  # n-grams count each token once
    test = frame[(frame.model == "kn3") & (frame.split == "test")]
    assert set(test.context) == {"sentence", "stream"} and (test.tokens == 10).all() and (test.oov == 1).all()
    assert (test.perplexity_low <= test.perplexity).all() and (test.perplexity <= test.perplexity_high).all()
    for name in ("report.md", "report.html", "tables.tex", "tasks.csv", "results.json"):
        assert (root / "out" / name).exists()
    results = json.loads((root / "out" / "results.json").read_text())
    assert results["provenance"]["seed"] == 0 and results["provenance"]["corpus_checksums"]["train"]
    assert "corpus:" in (root / "out" / "report.md").read_text()


def test_rerun_skips_finished_models_and_report_rerenders(project):
    root, config = project
    assert run(["run", str(config), "--output", "out"], root).exit_code == 0
    again = run(["run", str(config), "--output", "out"], root)
    assert again.exit_code == 0 and "skipped" in again.output
    (root / "out" / "report.md").unlink()
    rerender = run(["report", "out"], root)
    assert rerender.exit_code == 0 and (root / "out" / "report.md").exists()
    compare = run(["compare", "out", "out"], root)
    assert compare.exit_code == 0 and "+0.0%" in compare.output and "warning" not in compare.output
    runs = run(["compare", "runs/" + next(p.name for p in (root / "runs").iterdir()), "out"], root)
    assert runs.exit_code == 0 and "+0.0%" in runs.output and "is a runs folder" in runs.output, runs.output
    neither = run(["compare", ".", "out"], root)
    assert neither.exit_code == 2 and "neither a report folder" in neither.output


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace('smoothing = "witten-bell"', 'smoothing = "magic"'), "unknown smoother 'magic'"),
        (lambda t: t.replace("order = 2", "order = -2"), "order"),
        (lambda t: t.replace("[evaluate]", 'colour = "red"\n[evaluate]'), "unknown key"),
        (lambda t: t.replace('test = "test.txt"', 'test = "missing.txt"'), "missing.txt"),
        (lambda t: t.replace("bootstrap = 200", "bootstrap = 'many'"), "evaluate.bootstrap"),
        (lambda t: t.replace("[tasks.next-word]", "[tasks.poetry]"), "unknown task"),
        (lambda t: t + "\n[[model\n", "invalid TOML"),
    ],
)
def test_config_errors_exit_2_with_one_line_and_no_output(project, edit, message):
    root, config = project
    config.write_text(edit(config.read_text()))
    result = run(["run", str(config), "--output", "out"], root)
    assert result.exit_code == 2
    error_lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(error_lines) == 1 and message in error_lines[0] and "exp.toml" in error_lines[0]
    assert not (root / "out").exists() and not (root / "runs").exists()


def test_missing_config_file_exits_2(tmp_path):
    result = run(["run", "nope.toml"], tmp_path)
    assert result.exit_code == 2 and "not found" in result.output


def test_demo_runs_the_ngram_ladder_against_the_floor(tmp_path):
    result = run(["demo", "--output", "demo-out"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "entropy floor" in result.output
    frame = pd.read_csv(tmp_path / "demo-out" / "results.csv")
    kn5 = frame[(frame.model == "kn5") & (frame.split == "test")].perplexity.iloc[0]
    floor = json.loads((tmp_path / "demo-out" / "results.json").read_text())["entropy_floor"]["perplexity"]
    assert floor < kn5 < 30  # n-grams plateau above the true source's floor
    assert frame[frame.model == "bigram-mle"].perplexity.apply(lambda x: x == float("inf")).all()


def test_version_help_and_corpora_list(tmp_path):
    assert run(["--version"], tmp_path).output.startswith("lmbench, version")
    assert "Commands" in run(["--help"], tmp_path).output
    listing = run(["corpora", "list", "--data-dir", str(tmp_path)], tmp_path)
    assert listing.exit_code == 0 and "wikitext-2" in listing.output and "missing" in listing.output


def test_corpora_fetch_without_network_is_one_line(tmp_path, monkeypatch):
    import urllib.request

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    result = run(["corpora", "fetch", "ptb", "--data-dir", str(tmp_path)], tmp_path)
    assert (
        result.exit_code == 2
        and "could not download" in result.output
        and len(result.output.strip().splitlines()) == 1
    )


@pytest.mark.parametrize(
    "tasks, message",
    [
        ('[tasks.minimal-pairs]\nfiles = ["nowhere.jsonl"]', "file 'nowhere.jsonl' not found"),
        ('[tasks.minimal-pairs]\nfiles = ["bad.jsonl"]', "bad.jsonl:2: expected a JSON object"),
        ('[tasks.classify]\ntrain = "gone.tsv"\ntest = "gone.tsv"', "file 'gone.tsv' not found"),
        (
            '[tasks.classify]\ntrain = "c.tsv"\ntest = "c-words.tsv"',
            "labels 'negative', 'positive' do not occur",
        ),
        (
            '[tasks.generate]\nreference = "gpt"',
            "tasks.generate.reference: 'gpt' is not the name of a [[model]]",
        ),
    ],
)
def test_task_inputs_are_checked_before_any_training(project, tasks, message):
    root, config = project
    (root / "bad.jsonl").write_text('{"good": "a cat", "bad": "cat a"}\n["a cat", "cat a"]\n')
    (root / "c.tsv").write_text("sentence\tlabel\na cat\t0\na dog\t1\n")
    (root / "c-words.tsv").write_text("sentence\tlabel\na cat\tnegative\na dog\tpositive\n")
    config.write_text(config.read_text().replace("[report]", tasks + "\n[report]"))
    result = run(["run", str(config), "--output", "out"], root)
    assert result.exit_code == 2, result.output
    error_lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(error_lines) == 1 and message in error_lines[0]
    assert not (root / "out").exists() and not (root / "runs").exists()


def test_run_prints_the_task_table_and_tasks_csv_has_ties_and_oov(project):
    root, config = project
    (root / "pairs.jsonl").write_text(
        '{"sentence_good": "the cat sat on the mat", "sentence_bad": "the mat sat on the cat", "UID": "swap"}\n'
    )
    config.write_text(config.read_text().replace("[report]", '[tasks.minimal-pairs]\nfiles = ["pairs.jsonl"]\n'
                                                 "sentences = 5\n[report]"))  # fmt: skip
    result = run(["run", str(config), "--output", "out"], root)
    assert result.exit_code == 0, result.output
    table = result.output[result.output.index("corpus:") :]  # after the perplexity table and its signature
    assert "minimal-pairs" in table and "next-word" in table and "ties" in table and "pairs.jsonl" in table
    tasks = pd.read_csv(root / "out" / "tasks.csv")
    for column in ("ties", "oov_items", "file", "phenomenon", "paradigm", "corruption", "distance", "method"):
        assert column in tasks.columns
    pairs = tasks[tasks.file == "pairs.jsonl"]
    assert len(pairs) == 2 and set(pairs.paradigm) == {"swap"}  # one row per model, not two
