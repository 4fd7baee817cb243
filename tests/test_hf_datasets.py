"""Corpora from Hugging Face ``datasets`` ([corpus.hf]), offline: local builders and the cache."""

from __future__ import annotations

import json
import sys

import pytest

from lmbench.config import parse_config
from lmbench.errors import ConfigError
from lmbench.experiment import run_experiment

from .conftest import TINY_TEST, TINY_TRAIN, import_or_fail

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import_or_fail("datasets", "the hf extra: pip install -e '.[hf]'")

MODELS = """
[evaluate]
bootstrap = 20
[[model]]
name = "kn3"
family = "ngram"
order = 3
[[model]]
name = "wb2"
family = "ngram"
order = 2
smoothing = "witten-bell"
"""
VALID = ["the cat saw a dog", "", "a mat was red"]


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")  # read at import time


@pytest.fixture
def files(tmp_path):
    for name, lines in (("train", TINY_TRAIN), ("valid", VALID), ("test", TINY_TEST)):
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


def run(tmp_path, corpus: str, folder: str) -> dict:
    """The run's results as results.json stores them."""
    config = parse_config(tomllib.loads(f'name = "x"\n{corpus}\n{MODELS}'), source="exp.toml", base=tmp_path)
    return run_experiment(config, tmp_path / folder).to_dict()


FIGURES = ("tokens", "oov", "log_prob", "perplexity", "bits_per_char", "perplexity_low", "perplexity_high")


def test_text_builder_gives_exactly_the_figures_of_reading_the_files(files):
    direct = run(files, '[corpus]\ntrain = "train.txt"\nvalid = "valid.txt"\ntest = "test.txt"', "direct")
    hf = run(
        files,
        '[corpus.hf]\npath = "text"\n'
        'data_files = {train = "train.txt", validation = "valid.txt", test = "test.txt"}',
        "hf",
    )
    assert len(hf["rows"]) == len(direct["rows"]) == 4
    for a, b in zip(direct["rows"], hf["rows"], strict=True):
        assert {k: a[k] for k in FIGURES} == {k: b[k] for k in FIGURES}
    assert hf["provenance"]["corpus_checksums"] == direct["provenance"]["corpus_checksums"]
    dataset = hf["provenance"]["corpus_card"]["dataset"]
    assert dataset["dataset"] == "text" and dataset["splits"]["valid"] == "validation"
    assert set(dataset["fingerprints"]) == {"train", "valid", "test"} and all(
        dataset["fingerprints"].values()
    )


def test_json_builder_with_a_text_field_and_split_slices(files):
    rows = [{"id": i, "body": line} for i, line in enumerate(TINY_TRAIN + VALID + TINY_TEST)]
    (files / "all.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    n1, n2 = len(TINY_TRAIN), len(TINY_TRAIN) + len(VALID)
    hf = run(
        files,
        f'[corpus.hf]\npath = "json"\ndata_files = "all.jsonl"\ntext_field = "body"\n'
        f'splits = {{train = "train[:{n1}]", valid = "train[{n1}:{n2}]", test = "train[{n2}:]"}}',
        "json",
    )
    direct = run(files, '[corpus]\ntrain = "train.txt"\nvalid = "valid.txt"\ntest = "test.txt"', "direct")
    for a, b in zip(direct["rows"], hf["rows"], strict=True):
        assert a["perplexity"] == b["perplexity"] and a["tokens"] == b["tokens"]


def test_a_local_dataset_folder_is_prepared_once_into_the_cache(files):
    """``path`` a folder of data files (the builder inferred from them); the second run reads the prepared Arrow
    files of the first (same fingerprints), offline."""
    folder = files / "ds"
    folder.mkdir()
    for name, split in (("train", "train"), ("valid", "validation"), ("test", "test")):
        (folder / f"{split}.txt").write_text(
            (files / f"{name}.txt").read_text(encoding="utf-8"), encoding="utf-8"
        )
    first = run(files, '[corpus.hf]\npath = "ds"', "one")
    arrow = sorted((files / "hf-cache").rglob("*.arrow"))
    second = run(files, '[corpus.hf]\npath = "ds"', "two")
    assert arrow and sorted((files / "hf-cache").rglob("*.arrow")) == arrow
    assert [(r["log_prob"], r["perplexity"]) for r in first["rows"]] == [
        (r["log_prob"], r["perplexity"]) for r in second["rows"]
    ]
    fp = lambda res: res["provenance"]["corpus_card"]["dataset"]["fingerprints"]  # noqa: E731
    assert fp(first) == fp(second)
    assert first["provenance"]["corpus"] == "ds"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('path = "text"\ndata_files = {train = "train.txt", test = "test.txt"}',
         "corpus.hf.splits.valid: dataset 'text' has no split 'validation' (it has: test, train)"),
        ('path = "text"\ndata_files = "train.txt"\ntext_field = "body"\nsplits = {train = "train", valid = "train", test = "train"}',
         "corpus.hf.text_field: no column 'body'"),
        ('path = "text"\nsplits = {train = "train"}', "corpus.hf.splits: expected a table mapping train, valid and test"),
        ('path = "text"\ncolumns = 3', "unknown key 'corpus.hf.columns'"),
        ('path = "no-such-builder-or-folder"', "corpus.hf.path: cannot load dataset 'no-such-builder-or-folder'"),
    ],
)  # fmt: skip
def test_bad_hf_settings_are_one_line_errors_before_training(files, table, message):
    with pytest.raises(ConfigError) as e:
        run(files, f"[corpus.hf]\n{table}", "bad")
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (files / "bad").exists()


def test_a_missing_datasets_package_names_the_install(files, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "datasets" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"corpus.hf needs the optional extra: pip install -e '.\[hf\]'"):
        parse_config(
            tomllib.loads('name = "x"\n[corpus.hf]\npath = "text"\n' + MODELS), source="e", base=files
        )


def test_cli_run_with_a_missing_split_is_exit_2_before_training(files):
    from click.testing import CliRunner

    from lmbench.cli import main

    (files / "exp.toml").write_text(
        'name = "x"\n[corpus.hf]\npath = "text"\ndata_files = {train = "train.txt", test = "test.txt"}\n'
        'splits = {train = "train", valid = "dev", test = "test"}\n' + MODELS,
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["run", str(files / "exp.toml"), "--output", str(files / "out"),
                                       "--runs-dir", str(files / "runs")])  # fmt: skip
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "corpus.hf.splits.valid: dataset 'text' has no split 'dev'" in result.output
    assert not (files / "runs" / "kn3" / "model.bin").exists() and not (files / "out").exists()
