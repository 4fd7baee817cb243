"""Config parsing reads settings and builds nothing; the experiment checks tasks before any data is read; a
model's *family* is the name it is registered and configured under, its class's *backend* the kind of code."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from lmbench.config import load_config, parse_config
from lmbench.errors import ConfigError, DataError
from lmbench.experiment import check_tasks
from lmbench.models.registry import available_models, create_model, model_class

BASE = {
    "name": "tiny",
    "corpus": {"name": "synthetic", "train_lines": 30, "valid_lines": 5, "test_lines": 5},
    "model": [{"name": "kn2", "family": "ngram", "order": 2}],
    "evaluate": {"bootstrap": 0},
}


def test_parsing_leaves_the_toml_tables_as_they_were_and_the_experiment_resolves_task_paths(tmp_path):
    (tmp_path / "pairs.jsonl").write_text('{"good": "a b", "bad": "b a"}\n')
    data = {**BASE, "tasks": {"minimal-pairs": {"files": ["pairs.jsonl"], "sentences": 0}}}
    as_written = copy.deepcopy(data)
    config = parse_config(data, source="exp.toml", base=tmp_path)
    assert data == as_written
    assert check_tasks(config)["minimal-pairs"]["files"] == [str((tmp_path / "pairs.jsonl").resolve())]
    assert config.tasks["minimal-pairs"]["files"] == ["pairs.jsonl"]  # the settings are not rewritten either


def test_loading_a_config_with_tasks_imports_no_task_module(tmp_path):
    """Tasks are built (and their files read) by the experiment, not by the config reader."""
    (tmp_path / "exp.toml").write_text(
        'name = "tiny"\n[corpus]\nname = "synthetic"\n[[model]]\nname = "kn2"\nfamily = "ngram"\n'
        "[tasks.next-word]\nmax_tokens = 10\n"
    )
    code = (
        "import sys; from lmbench.config import load_config; c = load_config(sys.argv[1]); "
        "print(sorted(c.tasks), any(m == 'lmbench.tasks' or m.startswith('lmbench.tasks.') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "exp.toml")], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["['next-word']", "False"]


def test_task_inputs_are_checked_before_any_data_is_read(tmp_path, monkeypatch):
    from lmbench import experiment

    (tmp_path / "exp.toml").write_text(
        'name = "tiny"\n[corpus]\nname = "synthetic"\n[[model]]\nname = "kn2"\nfamily = "ngram"\n'
        '[tasks.minimal-pairs]\nfiles = ["bad.jsonl"]\n'
    )
    (tmp_path / "bad.jsonl").write_text("not json\n")
    config = load_config(tmp_path / "exp.toml")  # reading the settings does not open the pair file

    def no_data(_config):
        raise AssertionError("data read before the task inputs were checked")

    monkeypatch.setattr(experiment, "load_data", no_data)
    with pytest.raises(DataError, match=r"bad\.jsonl:1: invalid JSON"):
        experiment.run_experiment(config, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_a_bad_model_value_names_the_file_and_the_model(tmp_path):
    (tmp_path / "exp.toml").write_text(
        'name = "tiny"\n[corpus]\nname = "synthetic"\n[[model]]\nname = "kn"\nfamily = "ngram"\norder = 99\n'
    )
    with pytest.raises(ConfigError, match=r"exp\.toml: model 'kn': order: expected an integer from 1 to"):
        load_config(tmp_path / "exp.toml")


@pytest.mark.parametrize("family", available_models())
def test_family_is_the_registered_name_and_backend_the_class_kind(family):
    """``family = "lstm"`` in a config, the ``family`` column of results.csv and the run identity all say
    "lstm"; the class serving it says what kind of code it is (``backend = "rnn"``) under another name."""
    cls = model_class(family)
    assert cls.backend in {"ngram", "rnn", "transformer", "pretrained"}
    assert not hasattr(cls, "family")
    if family == "pretrained":
        return  # building one needs the optional transformers extra
    config = create_model(family).config()
    assert "family" not in config and config["backend"] == cls.backend
    if cls.backend == "rnn":
        assert config["cell"] == family


def test_the_repository_links_point_at_the_package_files():
    root = Path(__file__).resolve().parents[1]
    for link, target in [
        ("examples/demo.toml", "lmbench/presets/demo.toml"),
        ("examples/evolution.toml", "lmbench/presets/evolution.toml"),
        ("corpora/wikitext-2.toml", "lmbench/data/corpus_cards/wikitext-2.toml"),
    ]:
        assert (root / link).resolve() == (root / target).resolve(), link
