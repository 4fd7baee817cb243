"""An installed package extends lmbench through entry points alone: a tiny distribution written here (a package
plus its ``.dist-info`` with ``entry_points.txt``, found by ``importlib.metadata`` on ``sys.path``, no pip) adds a
model family, a smoother, a task and a report format; lmbench discovers them, the family passes the conformance
suite, ``lmbench run`` uses all four, and a broken plugin costs one warning line, never lmbench."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tests.recipe_backend as recipe
from lmbench.errors import ConfigError
from lmbench.models.family import FAMILIES, Family, family_named
from lmbench.models.ngram.smoothing import SMOOTHERS
from lmbench.models.registry import available_models, create_model
from lmbench.registry import Registry
from lmbench.reporting.formats import FORMATS
from lmbench.tasks import TASKS

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "lmbench_tiny_plugin"
REGISTRIES = (FAMILIES, SMOOTHERS, TASKS, FORMATS)

FAMILY_MODULE = """
from lmbench.models.family import Family

TINYMEAN = Family(
    "tinymean",
    "lmbench_tiny_plugin.model:MeanLM",  # imported only when a model is built
    generation=2,
    adds="A running mean of the word vectors read so far predicts the next word.",
    why="A mean of everything read so far keeps the topic of the whole text",
)
"""

SMOOTHER_MODULE = '''
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lmbench.models.ngram.smoothing import BackoffArrays, Smoother


@dataclass
class AddHalf(Smoother):
    """Unigram counts plus one half: every n-gram gets its last word's smoothed unigram probability."""

    name: ClassVar[str] = "add-half"
    description: ClassVar[str] = "add-1/2 unigrams (a plugin)"

    def estimate(self, tables, *, bos_id):
        counts = tables[0].counts.astype(np.float64) + 0.5
        counts[bos_id] = 0.0
        out = [BackoffArrays(prob=counts / counts.sum(), bow=np.ones(len(counts)))]
        for table in tables[1:]:
            out.append(BackoffArrays(prob=out[-1].prob[table.suffix], bow=np.ones(len(table))))
        return out
'''

TASK_MODULE = '''
"""Counts the test lines each model sees (a task from a plugin)."""

from lmbench.results import TaskResults, TaskRow

NAME = "line-count"
DEFAULTS = {"scale": 1}


def run(config, models, corpus, *, seed, bootstrap):
    out = TaskResults()
    for name in models:
        value = float(corpus.test.num_lines * config.get("scale", 1))
        out.rows.append(TaskRow(name, NAME, "lines", value, n=corpus.test.num_lines))
    return out
'''

FORMAT_MODULE = '''
def write(results, folder):
    """models.txt (one line per model, a plugin's format)"""
    (folder.path / "models.txt").write_text("".join(f"{name}\\n" for name in results.models))
'''

ENTRY_POINTS = f"""
[lmbench.families]
tinymean = {PACKAGE}.family:TINYMEAN

[lmbench.smoothers]
add-half = {PACKAGE}.smoother:AddHalf

[lmbench.tasks]
line-count = {PACKAGE}.task

[lmbench.report_formats]
txt = {PACKAGE}.report_format:write
"""


def write_plugin(root: Path, entry_points: str = ENTRY_POINTS, name: str = "lmbench-tiny-plugin") -> Path:
    """A distribution as an installer leaves it: the package and ``NAME-0.1.dist-info`` beside it."""
    package = root / PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""A tiny lmbench plugin."""\n')
    (package / "model.py").write_text(Path(recipe.__file__).read_text())  # the recipe's back-end, as a user's
    (package / "family.py").write_text(FAMILY_MODULE)
    (package / "smoother.py").write_text(SMOOTHER_MODULE)
    (package / "task.py").write_text(TASK_MODULE)
    (package / "report_format.py").write_text(FORMAT_MODULE)
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return root


def _reset() -> None:
    for registry in REGISTRIES:
        registry.forget_plugins()
    for module in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[module]
    importlib.invalidate_caches()


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The plugin on ``sys.path`` for one test; lmbench's registries read again before and after."""
    root = write_plugin(tmp_path / "site")
    monkeypatch.syspath_prepend(str(root))
    _reset()
    yield root
    monkeypatch.undo()
    _reset()


def test_lmbench_discovers_the_plugins_family_smoother_task_and_format(installed):
    assert "tinymean" in available_models() and isinstance(FAMILIES["tinymean"], Family)
    assert "add-half" in SMOOTHERS and "line-count" in TASKS and "txt" in FORMATS
    assert FAMILIES.plugins["tinymean"].startswith("entry point 'tinymean'")
    assert "lmbench-tiny-plugin 0.1" in FAMILIES.plugins["tinymean"]
    assert list(FAMILIES)[:6] == [
        "ngram",
        "rnn",
        "gru",
        "lstm",
        "transformer",
        "pretrained",
    ]  # built-ins first
    model = create_model("tinymean", emb_size=8)
    assert type(model).__module__ == f"{PACKAGE}.model"
    ngram = create_model("ngram", order=2, smoothing="add-half")  # the smoother is a setting at once
    assert ngram.smoother.name == "add-half"
    # the family's own words reach the reports
    assert family_named("tinymean").adds_after(family_named("ngram")).startswith("A running mean")
    assert FORMATS["txt"].files == "models.txt (one line per model, a plugin's format)"


def test_without_the_plugin_its_names_are_unknown_and_results_still_render(tmp_path):
    _reset()
    assert "tinymean" not in FAMILIES and "line-count" not in TASKS
    with pytest.raises(
        ConfigError, match="unknown model family 'tinymean'; expected one of gru, lstm, ngram"
    ):
        create_model("tinymean")
    assert family_named("tinymean").describe("m", {}) == "a tinymean model"  # a report of it still renders


def test_the_plugin_family_passes_the_conformance_suite(installed):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), str(REPO)])}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_conformance.py",
         "-k", "tinymean"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    passed = int(out.stdout.strip().splitlines()[-1].split(" passed")[0].split()[-1])
    assert passed >= 10, out.stdout[-2000:]  # the whole suite ran on the plugin's family


def test_lmbench_run_uses_the_plugins_family_smoother_task_and_format(installed, tmp_path):
    (tmp_path / "exp.toml").write_text(
        """
name = "plugin"
[corpus]
name = "synthetic"
train_lines = 300
valid_lines = 40
test_lines = 40
[[model]]
name = "half2"
family = "ngram"
order = 2
smoothing = "add-half"
[[model]]
name = "mean"
family = "tinymean"
emb_size = 8
batch_size = 8
seq_len = 16
[budget]
epochs = 1
[tasks.line-count]
scale = 2
[report]
formats = ["md", "csv", "json", "txt"]
"""
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), str(REPO)]), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "lmbench.cli", "run", "exp.toml", "--output", "out", "--runs-dir", "runs"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = tmp_path / "out"
    assert (report / "models.txt").read_text() == "half2\nmean\n"
    tasks = (report / "tasks.csv").read_text()
    assert "line-count" in tasks and "80.0" in tasks  # 40 test lines, scale 2
    text = (report / "report.md").read_text()
    assert "add-1/2 unigrams (a plugin)" in text  # the smoother describes itself
    assert "A running mean of the word vectors read so far predicts the next word." in text  # and the family


def test_a_broken_plugin_is_one_warning_naming_its_entry_point(tmp_path, monkeypatch, caplog):
    broken = ENTRY_POINTS.replace(f"{PACKAGE}.family:TINYMEAN", f"{PACKAGE}.family:NOT_THERE").replace(
        f"line-count = {PACKAGE}.task", f"line-count = {PACKAGE}.task\nmissing = lmbench_no_such_module:task"
    )
    root = write_plugin(tmp_path / "site", broken)
    monkeypatch.syspath_prepend(str(root))
    _reset()
    try:
        with caplog.at_level("WARNING", logger="lmbench.registry"):
            assert "ngram" in FAMILIES and "tinymean" not in FAMILIES  # lmbench goes on without it
            assert "line-count" in TASKS and "missing" not in TASKS
        lines = [r.getMessage() for r in caplog.records if r.name == "lmbench.registry"]
        assert len(lines) == 2 and all("\n" not in line for line in lines)
        assert any("entry point 'tinymean' = 'lmbench_tiny_plugin.family:NOT_THERE'" in x for x in lines)
        assert any("entry point 'missing'" in x and "ModuleNotFoundError" in x for x in lines)
        with pytest.raises(ConfigError, match="model family 'tinymean' comes from entry point 'tinymean'"):
            create_model("tinymean")
    finally:
        monkeypatch.undo()
        _reset()


def test_a_registry_refuses_a_name_twice_and_lists_the_known_names():
    registry: Registry[int] = Registry("widget", "lmbench.test_widgets")
    registry.register("one", 1)
    with pytest.raises(ValueError, match="widget 'one' is already registered"):
        registry.register("one", 2)
    with pytest.raises(ConfigError, match=r"^colour: unknown widget 'two'; expected one of one$"):
        registry.lookup("two", where="colour")
    assert registry.lookup("one") == 1 and list(registry) == ["one"]
