"""The config file's JSON Schema and lmbench's own checker cannot drift apart: the schema is generated from
the checker's declarations, every shipped config passes both, and a table of bad configs is refused by both."""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import import_or_fail  # noqa: E402

jsonschema = import_or_fail("jsonschema", "the dev extra: pip install -e '.[dev]'")

from click.testing import CliRunner  # noqa: E402

from lmbench.cli import main  # noqa: E402
from lmbench.config import SYNTHETIC_KEYS, load_config, model_settings, parse_config  # noqa: E402
from lmbench.config_schema import (  # noqa: E402
    SCHEMA_DIALECT,
    config_schema,
    family_settings,
    hint_schema,
    schema_json,
    section_keys,
    stale_notes,
    validator,
)
from lmbench.errors import ConfigError  # noqa: E402
from lmbench.experiment import check_tasks  # noqa: E402
from lmbench.models.registry import MODELS  # noqa: E402
from lmbench.tasks import TASKS  # noqa: E402

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "examples").glob("*.toml")) + sorted((ROOT / "examples" / "recipes").glob("*.toml"))
MODEL_KEYS = {"name", "family", "seed", "seeds", "budget", "search"}  # what every [[model]] table takes
BOUNDS = ("maximum", "maxItems", "maxLength")  # lmbench.limits, checked by test_bounds_are_the_limits

GOOD: dict[str, Any] = {
    "name": "tiny",
    "seed": 3,
    "corpus": {"name": "synthetic", "train_lines": 30, "valid_lines": 5, "test_lines": 5},
    "budget": {"tokens": 1000},
    "model": [
        {"name": "kn2", "family": "ngram", "order": 2, "smoothing": "kneser-ney"},
        {"name": "lstm", "family": "lstm", "hidden_size": 8, "lr": 0.01, "seeds": [1, 2]},
        {"name": "tf", "family": "transformer", "d_model": 8, "n_heads": 2, "budget": {"epochs": 0.5}},
    ],
    "evaluate": {"context": ["sentence", "stream"], "splits": "test", "bootstrap": 0},
    "tasks": {"next-word": {"max_tokens": 10, "split": "valid"}, "generate": {"reference": "kn2"}},
    "report": {"formats": ["md", "csv"], "baseline": "kn2"},
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return config_schema()


@pytest.fixture(scope="module")
def check(schema):
    return validator(schema)


def checker_errors(data: dict[str, Any], base: Path) -> str | None:
    """lmbench's own verdict, as ``lmbench run`` gives it before reading data: the error line, or None."""
    try:
        check_tasks(parse_config(copy.deepcopy(data), source="exp.toml", base=base))
    except ConfigError as e:
        return str(e)
    return None


def with_change(path: str, value: Any, base: dict[str, Any] = GOOD) -> dict[str, Any]:
    """``base`` with the key at ``path`` (``model.0.lr``, ``corpus.topics``) set; value DELETE removes it."""
    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    key = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return data


DELETE = object()

# (what is wrong, the key to change, its value): every row is refused by the schema AND by the checker
BAD = [
    ("unknown top-level key", "colour", "blue"),
    ("unknown [corpus] key", "corpus.colour", 1),
    ("unknown [evaluate] key", "evaluate.contexts", ["sentence"]),
    ("unknown [report] key", "report.format", ["md"]),
    ("unknown [budget] key", "budget.steps", 10),
    ("unknown [model.budget] key", "model.2.budget.hours", 1),
    ("unknown [search] key", "search.rounds", 3),
    ("unknown task", "tasks.translate", {}),
    ("unknown task option", "tasks.next-word.tokens", 10),
    ("unknown [corpus.hf] key", "corpus.hf", {"path": "text", "colour": 1}),
    ("unknown family", "model.0.family", "hmm"),
    ("a key of another family (recurrent on n-gram)", "model.0.hidden_size", 8),
    ("a key of another family (n-gram on lstm)", "model.1.order", 3),
    ("a key of another family (recurrent on transformer)", "model.2.hidden_size", 8),
    ("a key of another family (transformer on lstm)", "model.1.n_heads", 2),
    ("a key no family has", "model.1.learning_rate", 0.1),
    ("a preset changed", "model.1.cell", "gru"),
    ("wrong type: string for integer", "model.0.order", "3"),
    ("wrong type: float for integer", "model.1.layers", 2.0),
    ("wrong type: string for number", "model.1.lr", "fast"),
    ("wrong type: integer for boolean", "model.1.tie_weights", 1),
    ("wrong type: list item", "model.0.prune", ["a"]),
    ("wrong type: boolean for integer", "seed", True),
    ("wrong type: string for seed", "seed", "1"),
    ("wrong type: corpus.min_count", "corpus.min_count", "1"),
    ("wrong type: synthetic option", "corpus.topics", "four"),
    ("wrong type: evaluate.bootstrap", "evaluate.bootstrap", 1.5),
    ("wrong type: task option", "tasks.next-word.max_tokens", "many"),
    ("wrong type: budget tokens", "budget.tokens", 1.5),
    ("wrong type: [corpus] is a string", "corpus", "synthetic"),
    ("wrong type: [[model]] is a table", "model", {"name": "a", "family": "ngram"}),
    ("not a choice: context", "evaluate.context", "bogus"),
    ("not a choice: split", "evaluate.splits", ["dev"]),
    ("a choice twice", "evaluate.splits", ["test", "test"]),
    ("not a choice: report format", "report.formats", ["pdf"]),
    ("not a choice: tracker", "report.trackers", ["wandb"]),
    ("not a choice: task split", "tasks.next-word.split", "dev"),
    ("not a choice: tokenizer", "corpus.tokenizer", "sentencepiece"),
    ("not a choice: corpus card", "corpus.name", "no-such-corpus"),
    ("negative seed", "seed", -1),
    ("seed too large", "seed", 2**32),
    ("repeated seeds", "model.1.seeds", [1, 1]),
    ("empty seeds", "seeds", []),
    ("seed and seeds", "model.1.seed", 5),
    ("a budget of zero", "budget.epochs", 0),
    ("a negative task number", "tasks.next-word.max_tokens", -5),
    ("a name that is no folder name", "name", "../escape"),
    ("a model name starting with a dot", "model.0.name", ".hidden"),
    ("above a stated bound: a model size", "model.1.layers", 1025),
    ("above a stated bound: bootstrap", "evaluate.bootstrap", 100_001),
    ("above a stated bound: a budget", "model.2.budget", {"tokens": 10**14}),
    ("above a stated bound: a task count", "tasks.generate", {"samples": 100_001}),
    ("a string over the bound", "report.baseline", "x" * 5000),
    ("a list over the bound", "seeds", list(range(10_001))),
    ("missing name", "name", DELETE),
    ("missing corpus", "corpus", DELETE),
    ("missing [[model]]", "model", DELETE),
    ("no [[model]] table", "model", []),
    ("model without family", "model.0.family", DELETE),
    ("model without name", "model.0.name", DELETE),
    ("two corpus sources", "corpus.file", "text.txt"),
    ("train without valid and test", "corpus", {"train": "train.txt"}),
    ("synthetic options on a card", "corpus", {"name": "wikitext-2", "topics": 3}),
    ("search of a setting the family lacks", "model.0.search", {"lr": [0.1, 0.2]}),
    ("search range with an unknown key", "model.1.search", {"dropout": {"low": 0.1, "high": 0.2, "by": 2}}),
    ("search range without high", "model.1.search", {"dropout": {"low": 0.1}}),
    ("search of zero trials", "model.1.search", {"dropout": [0.1, 0.2], "trials": 0}),
    ("search budget of zero", "model.1.search", {"dropout": [0.1, 0.2], "budget": {"tokens": 0}}),
    ("search choices of the wrong kind", "model.1.search", {"dropout": [[0.1]]}),
]


def test_the_schema_is_draft_2020_12_and_valid(schema):
    assert schema["$schema"] == SCHEMA_DIALECT == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft7Validator.check_schema(schema)  # editors that know only draft 7 can read it too


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_config_validates_against_the_schema(path, check):
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in check.iter_errors(data)]
    assert not errors, errors


def test_the_examples_are_there():
    assert len(SHIPPED) >= 10 and any(p.parent.name == "recipes" for p in SHIPPED)


def test_a_good_config_passes_both(check, tmp_path):
    assert not list(check.iter_errors(GOOD))
    assert checker_errors(GOOD, tmp_path) is None


@pytest.mark.parametrize(("what", "path", "value"), BAD, ids=[row[0] for row in BAD])
def test_a_bad_config_is_refused_by_the_schema_and_by_the_checker(what, path, value, check, tmp_path):
    data = with_change(path, value)
    if path in ("corpus.file", "corpus"):
        (tmp_path / "text.txt").write_text("a b\n")
        (tmp_path / "train.txt").write_text("a b\n")
    assert list(check.iter_errors(data)), f"the schema accepts: {what}"
    error = checker_errors(data, tmp_path)
    assert error is not None, f"lmbench's checker accepts: {what}"
    assert error.startswith("exp.toml: ") and "\n" not in error  # the one-line message naming the file


def test_every_default_of_every_family_passes_both(check, tmp_path):
    """The other direction: a model table that writes out every setting at its default is accepted by both."""
    tables = []
    for family in MODELS:
        params = {name: default for name, _, default, _ in family_settings(family) if default is not None}
        params.pop("seed", None)
        params.pop("device", None)  # 'auto'; any other device is judged against this machine
        tables.append({"name": f"m-{family}", "family": family, **params})
    data = {**copy.deepcopy(GOOD), "model": tables, "tasks": {}, "report": {}}
    assert not [e.message for e in check.iter_errors(data)]
    assert checker_errors(data, tmp_path) is None


def without(node: Any, keys: tuple[str, ...]) -> Any:
    """``node`` with ``keys`` left out at every level."""
    if isinstance(node, dict):
        return {k: without(v, keys) for k, v in node.items() if k not in keys}
    return [without(v, keys) for v in node] if isinstance(node, list) else node


def test_each_family_has_exactly_its_settings(schema):
    model = schema["$defs"]["model"]
    assert model["properties"]["family"]["enum"] == list(MODELS)
    assert set(model["properties"]) == MODEL_KEYS
    for family in MODELS:
        declared = model_settings(family)
        fragment = schema["$defs"][f"family_{family}"]
        assert list(fragment["properties"]) == list(declared), family
        for name, hint in declared.items():  # a setting's schema is its type hint's, with a description
            setting = fragment["properties"][name]
            assert setting.get("description"), f"{family}.{name} has no description"
            types = without(setting, ("description", "default", "const", *BOUNDS))
            assert types == json.loads(json.dumps(hint_schema(hint))), f"{family}.{name}"
        branch = next(b for b in model["allOf"] if b["if"]["properties"]["family"]["const"] == family)
        assert set(branch["then"]["propertyNames"]["enum"]) == MODEL_KEYS | set(declared)


def test_sections_follow_the_checkers_declarations(schema):
    from lmbench import config
    from lmbench.training.budget import Budget

    defs = schema["$defs"]
    assert set(schema["properties"]) == {
        k.name for k in section_keys(config.parse_config, config._parse_search)
    }
    assert set(defs["budget"]["properties"]) == {f.name for f in dataclasses.fields(Budget)}
    assert set(defs["evaluate"]["properties"]) == {k.name for k in section_keys(config._parse_evaluate)}
    assert set(defs["report"]["properties"]) == {k.name for k in section_keys(config._parse_report)}
    corpus_keys = {k.name for k in section_keys(config._parse_corpus)} | SYNTHETIC_KEYS
    assert set(defs["corpus"]["properties"]) == corpus_keys
    assert set(defs["tasks"]["properties"]) == set(TASKS)
    for name, module in TASKS.items():
        assert set(defs["tasks"]["properties"][name]["properties"]) == set(module.DEFAULTS)
    assert not stale_notes()


def test_a_newly_registered_family_is_in_the_schema_with_its_settings(monkeypatch):
    monkeypatch.setitem(MODELS, "recipe-mean", ("tests.recipe_backend:MeanLM", {}))
    schema = config_schema()
    assert "recipe-mean" in schema["$defs"]["model"]["properties"]["family"]["enum"]
    assert set(schema["$defs"]["family_recipe-mean"]["properties"]) == set(model_settings("recipe-mean"))
    check = validator(schema)
    table = {"name": "mean", "family": "recipe-mean", "emb_size": 8}
    assert not list(check.iter_errors({**GOOD, "model": [table]}))
    assert list(check.iter_errors({**GOOD, "model": [{**table, "order": 3}]}))


def test_config_schema_prints_the_schema_and_writes_only_its_own_file(tmp_path):
    runner = CliRunner()
    printed = runner.invoke(main, ["config", "schema"], catch_exceptions=False)
    assert printed.exit_code == 0 and json.loads(printed.output) == config_schema()
    out = tmp_path / "lmbench.schema.json"
    written = runner.invoke(main, ["config", "schema", "--output", str(out)], catch_exceptions=False)
    assert written.exit_code == 0 and out.read_text(encoding="utf-8") == schema_json()
    again = runner.invoke(main, ["config", "schema", "--output", str(out)], catch_exceptions=False)
    assert again.exit_code == 0  # its own schema is regenerated in place
    mine = tmp_path / "exp.toml"
    mine.write_text('name = "x"\n', encoding="utf-8")
    refused = runner.invoke(main, ["config", "schema", "--output", str(mine)], catch_exceptions=False)
    assert refused.exit_code == 2 and "not an lmbench config schema" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    assert mine.read_text(encoding="utf-8") == 'name = "x"\n'


def test_the_checker_still_reads_every_example(tmp_path):
    """The constants the schema reads (seed bound, reference fields, range keys) left the checker's messages
    as they were: a seed of 2**32 and a reference without fields read as before."""
    bad_seed = with_change("seed", 2**32)
    assert checker_errors(bad_seed, tmp_path) == (
        "exp.toml: seed: expected an integer >= 0 and < 2**32, got 4294967296"
    )
    bad_ref = with_change("report.references", [{"model": "x"}])
    assert checker_errors(bad_ref, tmp_path) == (
        "exp.toml: report.references #1: expected a table with model, metric, value, source"
    )
    bad_range = with_change("model.1.search", {"dropout": {"low": 0.1, "high": 0.2, "by": 2}})
    assert checker_errors(bad_range, tmp_path) == (
        "exp.toml: unknown key 'model 'lstm'.search.dropout.by' (expected low, high, log, step)"
    )
    config = load_config(ROOT / "examples" / "demo.toml")
    assert config.models


def test_a_search_the_checker_accepts_the_schema_accepts(check, tmp_path):
    data = with_change(
        "model.1.search", {"dropout": {"low": 0.0, "high": 0.5}, "layers": [1, 2], "trials": 2}
    )
    data = with_change("search", {"trials": 4, "trial_budget": {"tokens": 100}}, data)
    assert not [e.message for e in check.iter_errors(data)]
    assert checker_errors(data, tmp_path) is None


def test_bounds_are_the_limits(schema):
    """Counts and sizes carry the stated bounds of lmbench/limits.py, the table the checker reads."""
    from lmbench import limits

    defs = schema["$defs"]
    assert defs["evaluate"]["properties"]["bootstrap"]["maximum"] == limits.TOP["evaluate.bootstrap"]
    assert defs["corpus"]["properties"]["train_lines"]["maximum"] == limits.TOP["corpus.train_lines"]
    assert defs["budget"]["properties"]["tokens"]["maximum"] == limits.BUDGET["tokens"]
    for family in MODELS:
        settings = defs[f"family_{family}"].get("properties", {})
        for key in set(settings) & set(limits.MODEL):
            assert settings[key]["maximum"] == limits.MODEL[key], (family, key)
    assert (
        defs["tasks"]["properties"]["minimal-pairs"]["properties"]["distances"]["items"]["maximum"]
        == (limits.TASK["distances"])
    )
    assert schema["properties"]["model"]["maxItems"] == limits.MAX_MODELS
    assert schema["properties"]["name"]["maxLength"] == limits.MAX_STRING
