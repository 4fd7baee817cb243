"""lm-evaluation-harness both ways, offline: lmbench models answer lm-eval's requests (LmbenchLM, `lmbench
lm-eval`), and `[tasks.lm-eval]` runs lm-eval tasks on every model of an experiment."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lmbench.cli import main
from lmbench.config import parse_config
from lmbench.errors import ConfigError
from lmbench.experiment import run_experiment

from .conftest import import_or_fail

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import_or_fail("lm_eval", "the lm-eval extra: pip install -e '.[lm-eval]'")
import_or_fail("datasets", "the lm-eval extra: pip install -e '.[lm-eval]'")

from lm_eval.api.instance import Instance  # noqa: E402

from lmbench.integrations.lm_eval import LmbenchLM, evaluate  # noqa: E402

TRAIN = [
    "the cat sat on the mat", "the dog sat on the log", "a cat saw a dog", "the cats were on the mats",
    "the dogs were on the logs", "a dog saw the cats", "the cat was red", "the dogs were brown",
    "", "a cat and a dog sat on the mat", "the cat saw the dogs", "the dog saw a cat",
] * 3  # fmt: skip
TEST = ["the cat sat on the log", "a dog was on the mat", "", "the cats saw a zebra"]
PAIRS = [
    {"sentence_good": "the cat sat on the mat", "sentence_bad": "the cat sat the on mat", "UID": "order"},
    {"sentence_good": "the dogs were on the logs", "sentence_bad": "the dogs was on the logs", "UID": "agr"},
    {"sentence_good": "a cat saw a dog", "sentence_bad": "a saw cat a dog", "UID": "order"},
    {"sentence_good": "the dog saw the cats", "sentence_bad": "the dog the saw cats", "UID": "order"},
    {"sentence_good": "the cats were on the mats", "sentence_bad": "the cats was on the mats", "UID": "agr"},
    {"sentence_good": "a dog sat on the mat", "sentence_bad": "a sat dog on the mat", "UID": "order"},
    {
        "sentence_good": "mat the on sat log a",
        "sentence_bad": "the cat sat on the mat",
        "UID": "odd",
    },  # missed
]
# lm-eval's own BLiMP template, on a local file
TASK_YAML = """task: local_blimp
dataset_path: json
dataset_kwargs:
  data_files:
    train: {pairs}
output_type: multiple_choice
test_split: train
doc_to_text: ""
doc_to_target: 0
doc_to_choice: "{{{{[sentence_good, sentence_bad]}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""
ROLLING_YAML = """task: local_text
dataset_path: json
dataset_kwargs:
  data_files:
    test: {docs}
output_type: loglikelihood_rolling
test_split: test
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
metadata:
  version: 1.0
"""


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished run: an n-gram and an LSTM on a small corpus, with lmbench's minimal-pairs and lm-eval tasks
    on one BLiMP-format file, and lm-eval's rolling perplexity on the test text."""
    root = tmp_path_factory.mktemp("lm-eval")
    for name, lines in (("train", TRAIN), ("valid", TEST), ("test", TEST)):
        (root / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "pairs.jsonl").write_text("\n".join(json.dumps(p) for p in PAIRS) + "\n", encoding="utf-8")
    (root / "docs.jsonl").write_text(json.dumps({"text": "\n".join(TEST)}) + "\n", encoding="utf-8")
    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / "local_blimp.yaml").write_text(TASK_YAML.format(pairs=root / "pairs.jsonl"), encoding="utf-8")
    (tasks / "local_text.yaml").write_text(ROLLING_YAML.format(docs=root / "docs.jsonl"), encoding="utf-8")
    config = """
name = "lme"
[corpus]
train = "train.txt"
valid = "valid.txt"
test = "test.txt"
[evaluate]
bootstrap = 0
context = ["sentence", "stream"]
[[model]]
name = "kn3"
family = "ngram"
order = 3
[[model]]
name = "lstm"
family = "lstm"
emb_size = 16
hidden_size = 16
epochs = 2
[tasks.minimal-pairs]
sentences = 0
files = ["pairs.jsonl"]
[tasks.lm-eval]
tasks = ["local_blimp"]
include_path = "tasks"
"""
    import datasets

    datasets.config.HF_DATASETS_CACHE = root / "hf-cache"
    cfg = parse_config(tomllib.loads(config), source="lme.toml", base=root)
    results = run_experiment(cfg, root / "runs")
    (root / "results.json").write_text(results.to_json(), encoding="utf-8")
    return root


def _request(kind: str, *args) -> Instance:
    return Instance(kind, {}, args, 0)


@pytest.mark.parametrize("model", ["kn3", "lstm"])
@pytest.mark.parametrize("context", ["sentence", "stream"])
def test_rolling_loglikelihood_is_lmbenchs_own_total(trained, model, context):
    results = json.loads((trained / "results.json").read_text())
    row = next(
        r for r in results["rows"] if r["model"] == model and r["split"] == "test" and r["context"] == context
    )
    folder = trained / "runs" / model
    lm = LmbenchLM(folder, context=context)
    (total,) = lm.loglikelihood_rolling([_request("loglikelihood_rolling", "\n".join(TEST))])
    assert total == pytest.approx(row["log_prob"], rel=1e-12, abs=1e-9)
    assert np.exp(-total / row["tokens"]) == pytest.approx(row["perplexity"], rel=1e-12)
    assert lm.oov_tokens == 1  # "zebra"


def test_blimp_file_as_lm_eval_task_gives_lmbenchs_minimal_pairs_accuracy(trained):
    results = json.loads((trained / "results.json").read_text())
    for model in ("kn3", "lstm"):
        ours = next(r for r in results["tasks"] if r["model"] == model and r["task"] == "minimal-pairs"
                    and r["file"] == "pairs.jsonl" and r["phenomenon"] == "all")  # fmt: skip
        theirs = next(r for r in results["tasks"] if r["model"] == model and r["task"] == "lm-eval")
        assert ours["ties"] == 0
        assert theirs["subtask"] == "local_blimp" and theirs["metric"] == "acc" and theirs["n"] == len(PAIRS)
        assert theirs["value"] == ours["value"] < 1
        assert theirs["stderr"] > 0 and theirs["low"] < theirs["value"] < theirs["high"]


def test_lm_eval_rows_reach_tasks_csv_with_standard_errors(trained):
    from lmbench.reporting import load_results, render_report

    out = render_report(load_results(trained), trained / "report", ["csv"])
    import pandas as pd

    tasks = pd.read_csv(out / "tasks.csv")
    rows = tasks[tasks.task == "lm-eval"]
    assert len(rows) == 2 and set(rows.subtask) == {"local_blimp"} and rows.stderr.notna().all()


def test_loglikelihood_sums_the_continuation_and_greedy_is_checked(trained):
    lm = LmbenchLM(trained / "runs" / "kn3")
    model = lm.model
    from lmbench.data.corpus import TokenStream

    vocab = model.vocab
    stream = TokenStream.from_ids([vocab.encode("the cat sat".split())], vocab)
    lp = model.token_logprobs(stream, context="sentence")
    (ll, _), (ll_no_eos, _) = (
        lm.loglikelihood([_request("loglikelihood", "the cat", " sat")])[0],
        LmbenchLM(trained / "runs" / "kn3", eos=False).loglikelihood(
            [_request("loglikelihood", "the cat", " sat")]
        )[0],
    )
    assert ll == pytest.approx(lp[2] + lp[3]) and ll_no_eos == pytest.approx(lp[2])
    dist = model.next_token_logprobs([[vocab.bos_id, vocab.id("the")]])[0]
    best = vocab.tokens[int(np.argmax(dist))]
    (_, greedy) = LmbenchLM(trained / "runs" / "kn3", eos=False).loglikelihood(
        [_request("loglikelihood", "the", f" {best}")]
    )[0]
    assert greedy


def test_generate_until_stops_at_the_stop_string(trained):
    lm = LmbenchLM(trained / "runs" / "kn3")
    (text,) = lm.generate_until(
        [_request("generate_until", "the cat", {"until": ["\n"], "max_gen_toks": 30})]
    )
    assert text.startswith(" ") and "\n" not in text and len(text.split()) <= 30


def test_rolling_task_through_simple_evaluate(trained):
    lm = LmbenchLM(trained / "runs" / "kn3")
    scores, raw = evaluate(lm, ["local_text"], include_path=trained / "tasks")
    figures = {s.metric: s.value for s in scores}
    (total,) = LmbenchLM(trained / "runs" / "kn3").loglikelihood_rolling([_request("x", "\n".join(TEST))])
    doc = "\n".join(TEST)
    words, size = len(re.split(r"\s+", doc)), len(doc.encode("utf-8"))  # lm-eval's counts
    assert figures["word_perplexity"] == pytest.approx(np.exp(-total / words), rel=1e-9)
    assert figures["bits_per_byte"] == pytest.approx(-total / size / np.log(2), rel=1e-9)
    assert raw["n-samples"]["local_text"]["effective"] == 1


def test_cli_runs_local_tasks_and_writes_lm_evals_json(trained, tmp_path):
    out = tmp_path / "res.json"
    result = CliRunner().invoke(main, ["lm-eval", str(trained / "runs" / "kn3"), "--tasks", "local_blimp",
                                       "--include-path", str(trained / "tasks"), "--limit", "4",
                                       "--output-path", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "local_blimp" in result.output and "acc" in result.output
    assert json.loads(out.read_text())["n-samples"]["local_blimp"]["effective"] == 4


def test_cli_unknown_task_is_exit_2_in_one_line(trained):
    result = CliRunner().invoke(main, ["lm-eval", str(trained / "runs" / "kn3"), "--tasks", "no_such_task_xyz",
                                       "--include-path", str(trained / "tasks")])  # fmt: skip
    assert result.exit_code == 2
    assert "unknown lm-eval task 'no_such_task_xyz'" in result.output and result.output.count("\n") == 1


def test_config_unknown_lm_eval_task_fails_before_training(trained, tmp_path, monkeypatch):
    config = f"""
name = "bad"
[corpus]
train = "{trained / "train.txt"}"
valid = "{trained / "valid.txt"}"
test = "{trained / "test.txt"}"
[[model]]
name = "kn2"
family = "ngram"
order = 2
[tasks.lm-eval]
tasks = ["no_such_local_task"]
include_path = "{trained / "tasks"}"
"""
    cfg = parse_config(tomllib.loads(config), source="bad.toml", base=tmp_path)
    from lmbench.integrations import lm_eval as integration

    def local_only(tasks, include_path=None):  # lm-eval's built-in index takes tens of seconds to build
        from lm_eval.tasks import TaskManager

        manager = TaskManager(include_path=str(include_path), include_defaults=False)
        unknown = [t for t in tasks if not manager.match_tasks([t])]
        if unknown:
            raise ConfigError(f"tasks: unknown lm-eval task {unknown[0]!r}")
        return manager

    monkeypatch.setattr(integration, "task_manager", local_only)
    with pytest.raises(
        ConfigError, match=r"bad.toml: tasks.lm-eval.tasks: unknown lm-eval task 'no_such_local_task'"
    ):
        run_experiment(cfg, tmp_path / "runs")
    assert not (tmp_path / "runs" / "kn2" / "model.bin").exists()


def test_a_missing_lm_eval_names_the_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_lm_eval(name, *args, **kwargs):
        if name == "lm_eval" or name.startswith("lm_eval."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_lm_eval)
    from lmbench.integrations.lm_eval import require_lm_eval

    with pytest.raises(ConfigError, match=r"lm-eval needs the optional extra: pip install -e '.\[lm-eval\]'"):
        require_lm_eval()


def test_registered_name_works_through_lm_evals_own_api(trained):
    """`simple_evaluate(model="lmbench", model_args="model_dir=...")`, as an lm-eval user writes it."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    import lmbench.integrations.lm_eval  # noqa: F401 - registers "lmbench"

    manager = TaskManager(include_path=str(trained / "tasks"), include_defaults=False)
    results = simple_evaluate(model="lmbench", model_args=f"model_dir={trained / 'runs' / 'kn3'},eos=true",
                              tasks=["local_blimp"], task_manager=manager, log_samples=False)  # fmt: skip
    ours = json.loads((trained / "results.json").read_text())
    expected = next(r for r in ours["tasks"] if r["model"] == "kn3" and r["task"] == "lm-eval")["value"]
    assert results["results"]["local_blimp"]["acc,none"] == expected


def test_a_subword_run_is_read_with_its_own_tokenizer(tmp_path, monkeypatch):
    """A BPE run folder carries its tokenizer.json: raw text is cut by it, with no OOVs, and the rolling total
    is lmbench's own."""
    monkeypatch.setenv("LMBENCH_CACHE", str(tmp_path / "cache"))
    for name, lines in (("train", TRAIN), ("valid", TEST), ("test", TEST)):
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = (
        'name = "b"\n[corpus]\ntrain = "train.txt"\nvalid = "valid.txt"\ntest = "test.txt"\ntokenizer = "bpe"\n'
        'vocab_size = 300\n[evaluate]\nbootstrap = 0\n[[model]]\nname = "kn3"\nfamily = "ngram"\norder = 3\n'
    )
    results = run_experiment(
        parse_config(tomllib.loads(config), source="b", base=tmp_path), tmp_path / "runs"
    )
    row = next(r for r in results.rows if r.split == "test")
    lm = LmbenchLM(tmp_path / "runs" / "kn3")
    (total,) = lm.loglikelihood_rolling([_request("loglikelihood_rolling", "\n".join(TEST))])
    assert total == pytest.approx(row.log_prob, rel=1e-12) and lm.oov_tokens == 0
    (text,) = lm.generate_until([_request("generate_until", "the cat", {"until": ["\n"], "max_gen_toks": 8})])
    assert isinstance(text, str) and "Ġ" not in text
