"""Typed results shared by experiment, tasks and reporting; registries of tasks and report formats; the CLI's
compare and corpora listing behind API functions; plots that leave matplotlib's backend alone."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from lmbench import tasks
from lmbench.cli import main
from lmbench.config import resolve_task_paths
from lmbench.data import Corpus, get_tokenizer, tokenize_corpus
from lmbench.data.cards import card_files, list_corpora
from lmbench.errors import ConfigError, DataError
from lmbench.models.ngram import NgramLM
from lmbench.reporting import compare_results, load_results, render_report
from lmbench.reporting import formats as report_formats
from lmbench.results import (
    LM_EVAL_COLUMNS,
    SCHEMA_VERSION,
    TASK_COLUMNS,
    TASK_TIME_COLUMNS,
    RunResults,
    Sample,
    TaskResults,
    TaskRow,
)
from lmbench.tasks import ModelEntry, run_tasks, validate_task_configs, validate_tasks

from .test_report import results as report_results

LEGACY_SAMPLE = {  # how versions before typed samples stored one: a fake figure with the text in `detail`
    "model": "kn3", "task": "generate", "metric": "sample", "value": math.nan, "low": math.nan,
    "high": math.nan, "n": 1, "detail": "A0 w01 ⟶ w02 Z0",
}  # fmt: skip


def _new_style_results() -> RunResults:
    res = report_results()
    res.samples = [Sample("kn3", "A0 w01", "w02 Z0", seed=3), Sample("lstm", "", "w09")]
    return res


def test_task_row_reads_old_and_partial_rows():
    row = TaskRow.from_dict({"model": "m", "task": "t", "metric": "accuracy", "value": 0.5, "added_later": 1})
    assert row.distance is None and row.ties is None and row.file == "" and math.isnan(row.low)
    assert [
        c for c in row.to_dict() if c not in TASK_TIME_COLUMNS
    ] == TASK_COLUMNS  # tasks.csv: no machine times
    swap = TaskRow("m", "minimal-pairs", "accuracy", 0.5, corruption="swap", distance=8, file="p.jsonl")
    assert swap.group() == "p.jsonl · swap · d=8"


def test_samples_of_old_results_are_moved_out_of_the_task_rows(tmp_path):
    """A results.json of the layout before schema versions (no ``schema_version``, samples as task rows of
    metric "sample") loads through the one reader; written again it is today's layout, with its version."""
    old = {"rows": [], "tasks": [{"model": "kn3", "task": "next-word", "metric": "top1", "value": 0.3}, LEGACY_SAMPLE,
                                 {**LEGACY_SAMPLE, "model": "lstm", "detail": " ⟶ w09"}], "models": {}}  # fmt: skip
    (tmp_path / "results.json").write_text(json.dumps(old))
    res = RunResults.load(tmp_path / "results.json")
    assert [r.metric for r in res.tasks] == ["top1"]
    assert res.samples == [Sample("kn3", "A0 w01", "w02 Z0"), Sample("lstm", "", "w09")]
    stored = json.loads(res.to_json())
    assert stored["schema_version"] == SCHEMA_VERSION and [r["metric"] for r in stored["tasks"]] == ["top1"]
    assert list(stored)[:5] == ["schema_version", "experiment", "rows", "rows_by_seed", "tasks"]
    assert (
        RunResults.from_dict(stored).to_json() == res.to_json()
    )  # today's layout reads back as it was (nan != nan)


def _full_results() -> RunResults:
    """Every kind of record a run produces, from a committed report where there is one (else the fixture)."""
    committed = Path(__file__).resolve().parents[1] / "reports" / "tuned-synthetic" / "results.json"
    return RunResults.load(committed) if committed.is_file() else report_results()


def test_results_round_trip_through_results_json(tmp_path):
    res = _full_results()
    res.samples = [Sample("kn5", "A0", "w01 Z0", seed=2)]
    res.provenance.command = "lmbench run exp.toml"
    (tmp_path / "results.json").write_text(res.to_json())
    back = RunResults.load(tmp_path / "results.json")
    assert back.to_json() == res.to_json()  # nan never equals itself: compare the stored text too
    assert [r.model for r in back.rows] == [r.model for r in res.rows] and back.samples == res.samples
    assert back.search.keys() == res.search.keys() and back.provenance == res.provenance
    assert type(back.rows[0]).__name__ == "CombinedRow" and type(back.rows_by_seed[0]).__name__ == "ResultRow"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["rows"][0].update(ppl=d["rows"][0].pop("perplexity")), "rows[0]: unknown field 'ppl'"),
        (lambda d: d["rows"][1].pop("split"), "rows[1]: missing field 'split'"),
        (lambda d: d["models"]["lstm"].update(famly="lstm"), "models.lstm: unknown field 'famly'"),
        (lambda d: d.update(curve=d.pop("curves")), "unknown field 'curve'"),
        (lambda d: d["rows"].__setitem__(0, 3), "rows[0]: expected an object, got int"),
        (lambda d: d.update(rows=3), "rows: expected a list, got int"),
        (lambda d: d["curves"]["lstm"][0].pop("tokens"), "curves.lstm[0]: missing field 'tokens'"),
        (
            lambda d: d["samples"].append({"model": "m", "prompt": "p"}),
            "samples[1]: missing field 'continuation'",
        ),
    ],
)
def test_a_renamed_or_missing_field_fails_when_results_json_is_read(tmp_path, change, message):
    """Not when a report is drawn: the reader names the file, the place and the field."""
    stored = json.loads(report_results().to_json())
    stored["models"]["lstm"] = {"family": "lstm"}
    change(stored)
    (tmp_path / "results.json").write_text(json.dumps(stored))
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        RunResults.load(tmp_path / "results.json")
    assert str(caught.value).startswith(str(tmp_path / "results.json")) and "\n" not in str(caught.value)


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, 99, "2.0"])
def test_a_results_json_of_a_newer_schema_is_refused_with_exit_2(tmp_path, version):
    stored = {**json.loads(report_results().to_json()), "schema_version": version}
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "results.json").write_text(json.dumps(stored))
    with pytest.raises(DataError, match=f"schema_version {re.escape(repr(version))} is not one"):
        RunResults.load(tmp_path / "rep" / "results.json")
    before = sorted(p.name for p in (tmp_path / "rep").iterdir())
    result = CliRunner().invoke(main, ["report", str(tmp_path / "rep")])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert len(line.splitlines()) == 1 and str(tmp_path / "rep" / "results.json") in line
    assert f"schema_version {version!r}" in line and f"reads {SCHEMA_VERSION}" in line
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == before  # nothing written


@pytest.mark.parametrize("layout", ["legacy", "typed"])
def test_samples_are_written_apart_from_the_figures(tmp_path, layout):
    res = report_results() if layout == "legacy" else _new_style_results()
    samples = list(res.samples)
    out = render_report(res, tmp_path / "report", ["md", "csv", "json", "html"])
    figures = pd.read_csv(out / "tasks.csv", keep_default_na=False)
    # lm-eval's subtask/stderr columns appear only where a row has them (older tasks.csv files keep their shape)
    expected = [c for c in TASK_COLUMNS if c not in LM_EVAL_COLUMNS]
    assert list(figures.columns) == expected and "sample" not in set(figures.metric)
    generated = pd.read_csv(out / "samples.csv", keep_default_na=False)
    assert list(generated.columns) == ["model", "prompt", "continuation", "task", "seed"]
    assert generated.iloc[0][["model", "prompt", "continuation"]].tolist() == ["kn3", "A0 w01", "w02 Z0"]
    md = (out / "report.md").read_text()
    assert "### Generated samples" in md and "- `A0 w01 ⟶ w02 Z0`" in md
    assert "<code>A0 w01 ⟶ w02 Z0</code>" in (out / "report.html").read_text()
    stored = json.loads((out / "results.json").read_text())
    assert (
        all(r["metric"] != "sample" for r in stored["tasks"]) and stored["samples"][0]["prompt"] == "A0 w01"
    )
    again = load_results(out)
    assert again.samples == samples


def test_results_without_samples_write_no_samples_file(tmp_path):
    res = report_results()
    res.samples = []
    out = render_report(res, tmp_path / "report", ["md", "csv", "json"])
    assert not (out / "samples.csv").exists() and "samples" not in json.loads(
        (out / "results.json").read_text()
    )


LINES = ["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog"] * 10


@pytest.fixture(scope="module")
def corpus():
    text = "\n".join(LINES) + "\n"
    return tokenize_corpus(Corpus.from_texts("t", text, text, text), get_tokenizer("whitespace"))


def _fake_task(seen: dict):
    """A task as a new module would define it: the registry and the runner need nothing else."""

    def validate(opts, model_names):
        seen["validate"] = (opts["lexicon"], list(model_names))

    def run(config, models, corpus, *, seed, bootstrap):
        out = TaskResults()
        for name in models:
            out.rows.append(TaskRow(name, "echo", "lines", float(corpus.test.num_lines), n=1, file="lexicon"))
            out.samples.append(Sample(name, "the", "cat", task="echo", seed=seed))
        return out

    return types.SimpleNamespace(NAME="echo", DEFAULTS={"lexicon": None}, FILE_OPTIONS=("lexicon",),
                                 validate=validate, run=run)  # fmt: skip


def test_a_task_is_one_module_in_the_registry(monkeypatch, corpus, tmp_path):
    seen: dict = {}
    monkeypatch.setitem(tasks.TASKS, "echo", _fake_task(seen))
    (tmp_path / "words.txt").write_text("the cat\n")
    configs = resolve_task_paths(  # its file option resolves like the built-in ones
        "exp.toml", {"echo": {"lexicon": "words.txt"}}, base=tmp_path, data_dir=tmp_path / "data",
        file_options={"echo": tasks.file_options("echo")},
    )  # fmt: skip
    assert configs["echo"]["lexicon"] == str((tmp_path / "words.txt").resolve())
    validate_task_configs(configs)
    validate_tasks(configs, ["kn", "lstm"])
    assert seen["validate"] == (configs["echo"]["lexicon"], ["kn", "lstm"])
    model = NgramLM(2).fit(corpus.train)
    out = run_tasks(configs, {"kn": ModelEntry(model, lambda: NgramLM(2))}, corpus, seed=5, bootstrap=0)
    assert not out.errors and [r.task for r in out.rows] == ["echo"]
    assert out.samples == [Sample("kn", "the", "cat", task="echo", seed=5)]


def test_a_registered_task_file_option_resolves_in_a_config(monkeypatch, tmp_path):
    from lmbench.config import load_config
    from lmbench.experiment import check_tasks

    seen: dict = {}
    monkeypatch.setitem(tasks.TASKS, "echo", _fake_task(seen))
    (tmp_path / "words.txt").write_text("the\n")
    config = tmp_path / "exp.toml"
    config.write_text('name = "x"\n[corpus]\nname = "synthetic"\n[[model]]\nname = "kn"\nfamily = "ngram"\n'
                      'order = 2\n[tasks.echo]\nlexicon = "words.txt"\n')  # fmt: skip
    assert check_tasks(load_config(config))["echo"]["lexicon"] == str((tmp_path / "words.txt").resolve())
    assert seen["validate"] == (str((tmp_path / "words.txt").resolve()), ["kn"])
    (tmp_path / "words.txt").unlink()
    with pytest.raises(ConfigError, match="tasks.echo.lexicon: file 'words.txt' not found"):
        check_tasks(load_config(config))


def test_every_built_in_task_declares_what_the_registry_reads():
    for name, module in tasks.TASKS.items():
        assert module.NAME == name and isinstance(module.DEFAULTS, dict) and callable(module.run)
        assert set(tasks.file_options(name)) <= set(module.DEFAULTS)
    assert tasks.file_options("classify") == ("train", "test") and tasks.file_options("minimal-pairs") == (
        "files",
    )


def test_a_report_format_is_one_registry_entry(monkeypatch, tmp_path):
    module = types.ModuleType("lmbench_test_format")

    def write(results, folder):
        names = ",".join(p.name for p in folder.images)
        (folder.path / "models.txt").write_text(f"{len(results.rows)} rows; plots {names}")

    module.write = write
    monkeypatch.setitem(sys.modules, module.__name__, module)
    entry = report_formats.ReportFormat("txt", f"{module.__name__}:write", "models.txt", plots=True)
    monkeypatch.setitem(report_formats.FORMATS, "txt", entry)
    out = render_report(report_results(), tmp_path / "report", ["txt"])
    text = (out / "models.txt").read_text()
    assert text.startswith(f"{len(report_results().rows)} rows") and "headline.png" in text
    assert (out / "results.json").exists() and (out / "tasks.csv").exists()  # always written
    assert not (out / "headline.png").exists()  # plots made for the format, not kept: png was not chosen


def test_an_unknown_report_format_fails_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="unknown report format 'pdf'"):
        render_report(report_results(), tmp_path / "report", ["md", "pdf"])
    assert not (tmp_path / "report").exists()


def test_compare_results_is_api_and_the_cli_prints_it(tmp_path):
    a, b = report_results(), report_results()
    for row in b.rows:
        row.perplexity *= 1.1
    text = compare_results(a, b, names=("before", "after"))
    header, *lines = text.splitlines()
    assert "before" in header and "after" in header and "change" in header
    assert any("+10.0%" in line for line in lines) and text.endswith(f"B: {text.split('B: ')[1]}")
    render_report(a, tmp_path / "before", ["json"])
    render_report(b, tmp_path / "after", ["json"])
    cli = CliRunner().invoke(main, ["compare", str(tmp_path / "before"), str(tmp_path / "after")])
    assert cli.exit_code == 0 and cli.output == text + "\n"


def test_list_corpora_is_api_and_holds_the_synthetic_corpus(tmp_path):
    rows = list_corpora(tmp_path)
    assert [r["name"] for r in rows] == [*card_files(), "synthetic"]
    assert rows[-1]["local copy"] == "built in" and all(r["local copy"] == "missing" for r in rows[:-1])
    cli = CliRunner().invoke(main, ["corpora", "list", "--data-dir", str(tmp_path)])
    assert cli.exit_code == 0 and "synthetic" in cli.output and "built in" in cli.output


def test_importing_the_plots_leaves_the_matplotlib_backend_alone(tmp_path):
    code = (
        "import matplotlib; matplotlib.use('pdf'); import lmbench.reporting.plots as p; "
        "import matplotlib.pyplot as plt; from pathlib import Path; import sys; "
        "from tests.test_report import results; "
        "made = p.write_plots(results(), Path(sys.argv[1])); "
        "print(matplotlib.get_backend(), len(made) > 0, plt.get_fignums())"
    )
    root = Path(__file__).resolve().parents[1]  # `tests` importable, and this checkout's lmbench first
    command = [sys.executable, "-c", code, str(tmp_path)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.split() == ["pdf", "True", "[]"]


def test_a_run_keeps_generated_samples_apart(tmp_path):
    (tmp_path / "corpus.txt").write_text("\n".join(LINES * 3) + "\n")
    config = tmp_path / "exp.toml"
    config.write_text(
        'name = "gen"\n[corpus]\nfile = "corpus.txt"\n[[model]]\nname = "kn"\nfamily = "ngram"\norder = 2\n'
        '[tasks.generate]\nsamples = 3\nshow = 2\nmax_tokens = 5\nreference = "kn"\n'
        '[report]\nformats = ["md", "csv", "json"]\n'
    )
    result = CliRunner().invoke(main, ["run", str(config), "--output", str(tmp_path / "out"),
                                       "--runs-dir", str(tmp_path / "runs")])  # fmt: skip
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [s["seed"] for s in stored["samples"]] == [0, 1] and {s["model"] for s in stored["samples"]} == {
        "kn"
    }
    assert {r["metric"] for r in stored["tasks"]} == {"distinct-1", "distinct-2", "repetition-4", "self-bleu",
                                                      "mean-length", "reference-perplexity"}  # fmt: skip
    assert len(pd.read_csv(tmp_path / "out" / "samples.csv")) == 2
    assert "### Generated samples" in (tmp_path / "out" / "report.md").read_text()


def test_the_results_module_examples_hold():
    import doctest

    import lmbench.results

    assert doctest.testmod(lmbench.results).attempted > 0 and doctest.testmod(lmbench.results).failed == 0


@pytest.mark.parametrize("layout", ["as committed", "previous layout"])
def test_a_committed_report_re_renders_unchanged(tmp_path, layout):
    """reports/evolution re-renders byte for byte, also from the previous layout of its results.json (samples
    among the task rows as ``metric = "sample"``, ``detail`` holding "prompt ⟶ continuation")."""
    committed = Path(__file__).resolve().parents[1] / "reports" / "evolution"
    if not (committed / "results.json").is_file():
        pytest.skip("reports/evolution is not in this checkout")
    res = load_results(committed)
    assert len(res.samples) > 0 and all(r.metric != "sample" for r in res.tasks)
    if layout == "previous layout":
        stored = json.loads((committed / "results.json").read_text())
        stored.pop("schema_version", None)  # the previous layout had no version
        stored["tasks"] += [
            {"task": s["task"], "model": s["model"], "metric": "sample", "value": "nan",
             "detail": f"{s['prompt']} ⟶ {s['continuation']}"}
            for s in stored.pop("samples")
        ]  # fmt: skip
        (tmp_path / "previous.json").write_text(json.dumps(stored))
        res = RunResults.load(tmp_path / "previous.json")
    out = render_report(res, tmp_path / "evolution", ["md", "csv", "json", "png"])
    for name in ("report.md", "results.csv", "results_by_seed.csv", "tasks.csv"):
        assert (out / name).read_bytes() == (committed / name).read_bytes(), name
    generated, expected = (
        pd.read_csv(path / "samples.csv", keep_default_na=False) for path in (out, committed)
    )
    if layout == "previous layout":  # which seed drew each sample was not recorded then
        assert set(generated.seed) == {""}
        generated, expected = generated.drop(columns="seed"), expected.drop(columns="seed")
    assert generated.equals(expected)
