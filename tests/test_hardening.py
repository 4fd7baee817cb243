"""Bad input, as a new user or a careless operator gives it: one line, exit 2, before any work, nothing written;
and nothing lost or left behind by reports, failures and corpus downloads."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

import lmbench.tasks as tasks_package
from lmbench.cli import main
from lmbench.config import load_config, parse_config, resolve_task_paths
from lmbench.errors import ConfigError, DataError
from tests.conftest import require_or_fail, require_shared

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (pyproject declares >= 3.10): the same parser, as lmbench.config reads it
    import tomli as tomllib

TRAIN = "\n".join(["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog"] * 4) + "\n"
CONFIG = """
name = "tiny"
[corpus]
train = "train.txt"
valid = "valid.txt"
test = "test.txt"
tokenizer = "whitespace"
[[model]]
name = "kn2"
family = "ngram"
order = 2
[[model]]
name = "wb2"
family = "ngram"
order = 2
smoothing = "witten-bell"
[evaluate]
bootstrap = 0
[report]
formats = ["md", "csv", "json"]
"""


@pytest.fixture
def project(tmp_path):
    for name, text in (("train.txt", TRAIN), ("valid.txt", "the cat sat\n"), ("test.txt", "a dog sat\n")):
        (tmp_path / name).write_text(text)
    (tmp_path / "exp.toml").write_text(CONFIG)
    return tmp_path


def invoke(args, cwd, **kwargs):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, args, **kwargs)
    finally:
        os.chdir(old)


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def assert_exit_2_one_line_nothing_written(root: Path, args: list[str], *needles: str) -> str:
    before = listing(root)
    result = invoke(args, root)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert listing(root) == before, listing(root) - before
    return lines[0]


# ----------------------------------------------------------------------------------- config values, names
def _edit_model(text: str, line: str) -> str:
    return text.replace(
        'family = "ngram"\norder = 2\n[[model]]', f'family = "ngram"\norder = 2\n{line}\n[[model]]', 1
    )


@pytest.mark.parametrize(
    "edit, needles",
    [
        (lambda t: t.replace('name = "kn2"', 'name = "../../../x"'), ["model #1: name", "plain name"]),
        (lambda t: t.replace('name = "kn2"', 'name = "/abs/path"'), ["plain name"]),
        (lambda t: t.replace('name = "kn2"', 'name = ""'), ["plain name"]),
        (lambda t: t.replace('name = "kn2"', 'name = "."'), ["plain name"]),
        (lambda t: t.replace('name = "kn2"', 'name = ".."'), ["plain name"]),
        (lambda t: t.replace('name = "kn2"', 'name = "a\\\\b"'), ["plain name"]),
        (lambda t: t.replace('name = "kn2"', 'name = "WB2"'), ["'wb2'", "differ only in case"]),
        (lambda t: t.replace('name = "tiny"', 'name = "../up"'), ["name:", "plain name"]),
        (lambda t: t.replace("[evaluate]", "[evaluate]\ncontext = []"), ["evaluate.context", "non-empty"]),
        (lambda t: t.replace("[evaluate]", "[evaluate]\ncontext = [1]"), ["evaluate.context", "1"]),
        (lambda t: t.replace("[evaluate]", "[evaluate]\nsplits = []"), ["evaluate.splits"]),
        (
            lambda t: t.replace("[evaluate]", '[evaluate]\nsplits = ["test", "test"]'),
            ["evaluate.splits", "twice"],
        ),
        (lambda t: "seed = -1\n" + t, ["seed", ">= 0", "-1"]),
        (lambda t: _edit_model(t, 'smoothing = "arpa"'), ["model 'kn2'", "smoothing", "arpa"]),
        (
            lambda t: _edit_model(t, "order = true").replace("order = 2\norder = true", "order = true"),
            ["order"],
        ),
        (lambda t: t.replace("order = 2\n[[model]]", "order = 2.0\n[[model]]", 1), ["order", "integer"]),
        (lambda t: _edit_model(t, 'k = "big"'), ["model 'kn2'", "k:", "number", "'big'"]),
        (lambda t: _edit_model(t, "interpolate_unigrams = 1"), ["interpolate_unigrams", "true or false"]),
        (
            lambda t: t.replace('name = "tiny"', 'name = "tiny"\n[budget]\ntokens = 0.5'),
            ["budget.tokens", "int"],
        ),
        (lambda t: t.replace('name = "tiny"', 'name = "tiny"\n[budget]\nminutes = 0'), ["budget.minutes"]),
        (lambda t: t.replace('name = "tiny"', 'name = "tiny"\n[budget]\nepochs = nan'), ["budget.epochs"]),
        (lambda t: _edit_model(t, "[model.budget]\nminutes = -1"), ["model 'kn2': budget.minutes"]),
        (lambda t: t.replace('"json"]', '"json", "pdf"]'), ["report.formats", "'pdf'"]),
        (lambda t: t.replace("[corpus]", "[corpus]\nvalid_fraction = 0.7"), ["corpus.valid_fraction"]),
        (lambda t: t.replace("train = ", 'name = "nope"\ntrain = '), ["corpus"]),
        (
            lambda t: t.replace(
                '[corpus]\ntrain = "train.txt"\nvalid = "valid.txt"\ntest = "test.txt"',
                '[corpus]\nname = "nope"',
            ),
            ["corpus.name", "'nope'"],
        ),  # fmt: skip
    ],
)
def test_config_errors_are_one_line_exit_2_before_anything(project, edit, needles):
    (project / "exp.toml").write_text(edit(CONFIG))
    line = assert_exit_2_one_line_nothing_written(
        project, ["run", "exp.toml", "-o", "out"], "exp.toml", *needles
    )
    assert "budget: budget" not in line  # the prefix is not doubled


NEURAL = """
name = "nn"
[corpus]
name = "synthetic"
train_lines = 30
valid_lines = 5
test_lines = 5
[[model]]
name = "net"
family = "{family}"
{setting}
"""


@pytest.mark.parametrize(
    "family, setting, needles",
    [
        ("lstm", 'lr = "fast"', ["lr:", "number", "'fast'"]),
        ("gru", "batch_size = true", ["batch_size:", "integer", "True"]),
        ("lstm", "hidden_size = -8", ["hidden_size"]),
        ("rnn", "layers = 0", ["layers"]),
        ("lstm", "dropout = 1.0", ["dropout"]),
        ("transformer", "dropout = -0.1", ["dropout"]),
        ("transformer", "window = 2.5", ["window:", "integer"]),
        ("transformer", 'cutoffs = ["a"]', ["cutoffs:", "list of integers"]),
        ("lstm", "tie_weights = 1", ["tie_weights:", "true or false"]),
        ("lstm", "seed = -1", ["seed"]),
        ("lstm", "min_lr_ratio = 2.0", ["min_lr_ratio"]),
        ("lstm", 'schedule = "linear"', ["schedule"]),
        ("lstm", "epochs = inf", ["epochs:", "finite"]),
        ("lstm", "vocab_size = 10", ["vocab_size"]),
    ],
)
def test_model_settings_are_checked_against_their_declared_types(tmp_path, family, setting, needles):
    (tmp_path / "exp.toml").write_text(NEURAL.format(family=family, setting=setting))
    assert_exit_2_one_line_nothing_written(tmp_path, ["run", "exp.toml"], "exp.toml", "model 'net'", *needles)


def test_valid_budgets_parse_with_their_types():
    text = CONFIG.replace('name = "tiny"', 'name = "tiny"\n[budget]\ntokens = 200\nepochs = 2\nminutes = 1.5')
    config = tomllib.loads(text)
    config["corpus"] = {"name": "synthetic"}
    budget = parse_config(config).budget
    assert (budget.tokens, budget.epochs, budget.minutes) == (200, 2.0, 1.5) and isinstance(
        budget.tokens, int
    )


def test_a_device_this_machine_lacks_is_a_config_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (tmp_path / "exp.toml").write_text(NEURAL.format(family="lstm", setting='device = "cuda"'))
    assert_exit_2_one_line_nothing_written(tmp_path, ["run", "exp.toml"], "device", "cuda", "'cpu'")


# ------------------------------------------------------------------------------------------- data edges
@pytest.mark.parametrize("split", ["valid", "test"])
def test_empty_valid_or_test_file_is_exit_2_naming_it(project, split):
    (project / f"{split}.txt").write_bytes(b"")
    assert_exit_2_one_line_nothing_written(project, ["run", "exp.toml", "-o", "out"], f"{split}.txt", "empty")


def test_nul_byte_is_exit_2_naming_file_and_line(project):
    (project / "train.txt").write_bytes(TRAIN.encode() + b"the c\x00at\n")
    assert_exit_2_one_line_nothing_written(project, ["run", "exp.toml"], "train.txt", "line 13", "NUL")


def test_byte_order_mark_and_crlf_never_become_tokens(project):
    from lmbench.data import Corpus, get_tokenizer, tokenize_corpus

    (project / "train.txt").write_bytes(b"\xef\xbb\xbf" + TRAIN.replace("\n", "\r\n").encode())
    (project / "valid.txt").write_bytes(b"\xef\xbb\xbfthe cat\r\nold mac\rline\r\n")
    corpus = Corpus.from_files(project / "train.txt", project / "valid.txt", project / "test.txt")
    assert corpus.train[0] == "the cat sat on the mat" and corpus.valid == ["the cat", "old mac", "line"]
    for tokenizer in ("char", "whitespace", "regexp", "word"):
        data = tokenize_corpus(corpus, get_tokenizer(tokenizer))
        assert not any("\r" in t or "\ufeff" in t for t in data.vocab.tokens), tokenizer
    # the config file may carry a BOM too (Windows editors)
    (project / "exp.toml").write_bytes(b"\xef\xbb\xbf" + CONFIG.encode())
    assert load_config(project / "exp.toml").name == "tiny"


def test_literal_unk_is_counted_as_oov_so_excl_oov_equals_perplexity_when_oov_is_zero(tmp_path):
    from lmbench.data import Corpus, get_tokenizer, tokenize_corpus
    from lmbench.evaluation import score
    from lmbench.models.registry import create_model

    corpus = Corpus.from_texts("c", TRAIN + "a <unk> sat\n", "the cat\n", "the <unk> sat\nthe cat\n")
    data = tokenize_corpus(corpus, get_tokenizer("whitespace"))
    model = create_model("ngram", order=2).fit(data.train)
    s = score(model.token_logprobs(data.test, context="sentence"), data.test)
    assert s.oov == 1 and s.perplexity_excl_oov != s.perplexity
    clean = score(model.token_logprobs(data.valid, context="sentence"), data.valid)
    assert clean.oov == 0 and clean.perplexity_excl_oov == pytest.approx(clean.perplexity)


# ------------------------------------------------------------------------------------------- filesystem
def test_a_file_at_the_report_path_is_exit_2_and_is_kept(project):
    (project / "out").write_text("my notes")
    assert_exit_2_one_line_nothing_written(project, ["run", "exp.toml", "-o", "out"], "out", "is a file")
    assert (project / "out").read_text() == "my notes"


@pytest.mark.parametrize("option", ["-o", "--runs-dir"])
def test_impossible_output_folders_are_found_before_training(project, option):
    (project / "afile").write_text("x")
    assert_exit_2_one_line_nothing_written(project, ["run", "exp.toml", option, "afile/sub"], "afile")
    assert_exit_2_one_line_nothing_written(project, ["run", "exp.toml", option, "x" * 300], "long")


def test_unwritable_runs_folder_is_found_before_training(project):
    """A folder that refuses new entries. A mode-0500 folder refuses them to a user but not to root (CI runs as
    root), so the check also runs on /proc, which refuses new entries to everyone, root included."""
    if os.geteuid() != 0:
        locked = project / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            assert_exit_2_one_line_nothing_written(
                project, ["run", "exp.toml", "--runs-dir", "locked/r"], "writable"
            )
        finally:
            locked.chmod(0o700)
    proc = Path("/proc")
    require_or_fail((proc / "self").is_dir(), "no /proc file system (a folder root cannot write into)")
    for target in (proc / "lmbench-runs", proc / "lmbench-runs" / "deeper"):
        assert_exit_2_one_line_nothing_written(
            project, ["run", "exp.toml", "--runs-dir", str(target)], "writable"
        )
        assert_exit_2_one_line_nothing_written(project, ["run", "exp.toml", "-o", str(target)], "writable")


def test_a_failure_that_cannot_write_its_error_log_does_not_stop_later_models(project, monkeypatch):
    from lmbench import experiment

    config = load_config(project / "exp.toml")
    real_train, real_write = experiment.fit_model, experiment.atomic_write_text

    def train(run, *args, **kwargs):
        if run.spec.name == "kn2":
            raise RuntimeError("boom")
        return real_train(run, *args, **kwargs)

    def write(path, text):
        if Path(path).name == "error.log":
            raise PermissionError(13, "Permission denied")
        return real_write(path, text)

    monkeypatch.setattr(experiment, "fit_model", train)
    monkeypatch.setattr(experiment, "atomic_write_text", write)
    said: list[str] = []
    results = experiment.run_experiment(config, project / "runs", progress=said.append)
    assert results["failures"] == ["kn2: failed: RuntimeError: boom"]
    assert {r["model"] for r in results["rows"]} == {"wb2"}
    assert any("could not write the error log" in line for line in said)


def _results(tag: str) -> dict:
    return {"experiment": tag, "rows": [], "tasks": [], "models": {}, "failures": [], "provenance": {}}


def test_render_cleans_stale_staging_and_restores_the_previous_report_when_a_swap_fails(
    tmp_path, monkeypatch
):
    from lmbench.reporting import load_results, render_report

    out = tmp_path / "rep"
    render_report(_results("first"), out, ["md"])
    # an interrupted render: staging left behind, and a swap cut between its two renames
    (tmp_path / ".rep.tmp-abcd1234").mkdir()
    out.rename(tmp_path / ".rep.old-abcd1234")
    render_report(_results("second"), out, ["md"])
    assert load_results(out)["experiment"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]

    def broken_rename(self, target):
        raise OSError("disk went away")

    real_rename = Path.rename
    monkeypatch.setattr(
        Path,
        "rename",
        lambda self, t: broken_rename(self, t) if ".tmp-" in self.name else real_rename(self, t),
    )
    with pytest.raises(OSError):
        render_report(_results("third"), out, ["md"])
    assert load_results(out)["experiment"] == "second"  # the previous report is back in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]
    monkeypatch.undo()
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(ConfigError, match="is a file"):
        render_report(_results("x"), notes, ["md"])
    assert notes.read_text() == "mine" and not list(tmp_path.glob(".notes.txt.*"))


def test_racing_renders_always_leave_one_complete_report(tmp_path):
    from lmbench.reporting import load_results, render_report

    out = tmp_path / "rep"
    errors: list[BaseException] = []

    def worker(tag: str) -> None:
        try:
            for i in range(6):
                render_report(_results(f"{tag}{i}"), out, ["md", "csv", "json"])
        except BaseException as e:  # pragma: no cover - the assertion below reports it
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(tag,)) for tag in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert load_results(out)["experiment"] in {"a5", "b5"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


# ------------------------------------------------------------------------------------------ corpora fetch
@pytest.fixture
def card(tmp_path, monkeypatch):
    """A one-file corpus card served from a local folder through file:// URLs."""
    from lmbench.data import cards

    server = tmp_path / "server"
    server.mkdir()
    text = TRAIN.encode()
    (server / "all.txt").write_bytes(text)
    cards_dir = tmp_path / "cards"
    cards_dir.mkdir()
    (cards_dir / "mini.toml").write_text(
        f'name = "mini"\ndescription = "d"\nlicence = "l"\ntokenizer = "whitespace"\nurl = "{server.as_uri()}"\n'
        f'[splits.all]\nfile = "all.txt"\nsha256 = "{hashlib.sha256(text).hexdigest()}"\n'
    )
    monkeypatch.setattr(cards, "CARDS_DIR", cards_dir)
    return tmp_path / "data"


def test_fetch_downloads_once_and_keeps_a_verified_copy(card, tmp_path, monkeypatch):
    import urllib.request

    first = invoke(["corpora", "fetch", "mini", "--data-dir", str(card)], tmp_path)
    assert first.exit_code == 0 and "downloaded" in first.output
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("downloaded again"))
    again = invoke(["corpora", "fetch", "mini", "--data-dir", str(card)], tmp_path)
    assert again.exit_code == 0 and "nothing downloaded" in again.output


def test_failed_fetch_leaves_no_folder_and_gives_advice_that_fits(card, tmp_path, monkeypatch):
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    target = card / "deeper"
    result = invoke(["corpora", "fetch", "mini", "--data-dir", str(target)], tmp_path)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert not card.exists()  # neither the corpus folder nor the data folders above it are left behind
    (target / "mini").mkdir(parents=True)
    (target / "mini" / "all.txt").write_text("not the corpus")
    result = invoke(["corpora", "fetch", "mini", "--data-dir", str(target)], tmp_path)
    assert result.exit_code == 2 and "does not match" in result.output and "put it at" not in result.output
    assert (target / "mini" / "all.txt").read_text() == "not the corpus"


def test_run_takes_data_dir_for_named_corpora(card, tmp_path):
    (tmp_path / "exp.toml").write_text(
        'name = "m"\n[corpus]\nname = "mini"\n[[model]]\nname = "u"\nfamily = "ngram"\norder = 1\n'
    )
    missing = invoke(["run", "exp.toml", "--data-dir", str(card)], tmp_path)
    assert missing.exit_code == 2 and "lmbench corpora fetch mini" in missing.output
    assert invoke(["corpora", "fetch", "mini", "--data-dir", str(card)], tmp_path).exit_code == 0
    result = invoke(["run", "exp.toml", "--data-dir", str(card), "--runs-dir", "r", "-o", "o"], tmp_path)
    assert result.exit_code == 0, result.output
    command = json.loads((tmp_path / "o" / "results.json").read_text())["provenance"]["command"]
    assert command == f"lmbench run exp.toml --output o --runs-dir r --data-dir {card}"


# -------------------------------------------------------------------------------------- CLI as documented
def test_verbose_after_the_subcommand_and_help_texts(project):
    result = invoke(["run", "exp.toml", "-v", "-o", "out", "--runs-dir", "runs-here"], project)
    assert result.exit_code == 0, result.output
    assert (
        "Regenerate with: `lmbench run exp.toml --output out --runs-dir runs-here`"
        in (project / "out" / "report.md").read_text()
    )
    for command in ("run", "demo", "evolution"):
        text = invoke([command, "--help"], project).output
        assert re.search(r"--runs-dir\s+\S+\s+\w", text) and "-v, --verbose" in text, text


def test_evolution_does_not_overwrite_the_committed_example_by_default(project, monkeypatch):
    from lmbench import cli

    seen = {}
    monkeypatch.setattr(
        cli, "_run", lambda config, output, runs_dir, command, data_dir=None: seen.update(output=output)
    )
    assert invoke(["evolution"], project).exit_code == 0
    assert seen["output"] == Path("reports") / "evolution-run"


def test_unexpected_errors_are_one_line_without_v_and_a_traceback_with_it(project, monkeypatch):
    from lmbench import experiment

    def explode(*args, **kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr(experiment, "load_data", explode)
    quiet = invoke(["run", "exp.toml"], project)
    # exit 70 (EX_SOFTWARE): a crash is told apart from a handled failure (1) and bad input (2)
    assert quiet.exit_code == 70 and "Traceback" not in quiet.output
    assert len(quiet.output.strip().splitlines()) == 1 and "internal error" in quiet.output
    assert "KeyError" in quiet.output and "-v" in quiet.output
    loud = invoke(["run", "exp.toml", "-v"], project)
    assert loud.exit_code == 70 and "Traceback" in loud.output


# ----------------------------------------------------------------------------------- task path resolution
FILE_OPTIONS = {name: tasks_package.file_options(name) for name in tasks_package.TASKS}


def test_task_paths_resolve_beside_the_config_then_in_the_data_folder(tmp_path):
    config_dir, data = tmp_path / "cfg", tmp_path / "data"
    (config_dir / "mine").mkdir(parents=True)
    (data / "sst2").mkdir(parents=True)
    (config_dir / "mine" / "pairs.jsonl").write_text("")
    (data / "sst2" / "train.tsv").write_text("")
    tasks = {"classify": {"train": "sst2/train.tsv", "test": str(data / "sst2" / "train.tsv")},
             "minimal-pairs": {"files": ["mine/pairs.jsonl"]}}  # fmt: skip
    as_written = json.loads(json.dumps(tasks))
    resolved = resolve_task_paths(
        "exp.toml", tasks, base=config_dir, data_dir=data, file_options=FILE_OPTIONS
    )
    assert resolved["classify"]["train"] == str((data / "sst2" / "train.tsv").resolve())
    assert resolved["minimal-pairs"]["files"] == [str((config_dir / "mine" / "pairs.jsonl").resolve())]
    assert tasks == as_written  # the tables as written are not rewritten in place
    with pytest.raises(
        ConfigError, match=r"tasks.classify.test: file 'nope.tsv' not found in .*cfg or .*data"
    ):
        resolve_task_paths(
            "exp.toml",
            {"classify": {"test": "nope.tsv"}},
            base=config_dir,
            data_dir=data,
            file_options=FILE_OPTIONS,
        )


def test_the_readme_example_config_is_valid_as_written(tmp_path):
    """Parsed exactly as printed in the README (its corpus and SST-2 files come from the shared data folder)."""
    require_shared("corpora", "sst2", "train.tsv")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Config format", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    config = parse_config(tomllib.loads(block), source="README.md", base=tmp_path)
    from lmbench.experiment import check_tasks

    assert Path(check_tasks(config)["classify"]["train"]).is_file() and config.report.baseline == "kn5"


def test_data_errors_name_the_file(tmp_path):
    from lmbench.data import Corpus

    with pytest.raises(DataError, match="valid.txt: the valid split is empty"):
        (tmp_path / "t.txt").write_text("a b\n")
        (tmp_path / "valid.txt").write_text("")
        Corpus.from_files(tmp_path / "t.txt", tmp_path / "valid.txt", tmp_path / "t.txt")


@pytest.mark.parametrize(
    "table, needles",
    [
        ('[tasks.next-word]\nmax_tokens = "x"', ["tasks.next-word.max_tokens", "integer", "'x'"]),
        ("[tasks.next-word]\nmax_tokens = -5", ["tasks.next-word.max_tokens", ">= 0"]),
        (
            "[tasks.minimal-pairs]\ndistances = [1, 2.5]",
            ["tasks.minimal-pairs.distances", "list of integers"],
        ),
        ("[tasks.minimal-pairs]\nreplace = 1", ["tasks.minimal-pairs.replace", "true or false"]),
        ('[tasks.generate]\nreference = "nope"', ["tasks.generate.reference", "'nope'"]),
        ("[tasks.generate]\ntemperature = 0", ["tasks.generate.temperature", "> 0"]),
        ('[tasks.generate]\nsplit = "dev"', ["tasks.generate.split", "'dev'"]),
    ],
)
def test_task_options_are_checked_before_training(project, table, needles):
    (project / "exp.toml").write_text(CONFIG.replace("[report]", f"{table}\n[report]"))
    assert_exit_2_one_line_nothing_written(project, ["run", "exp.toml", "-o", "out"], "exp.toml", *needles)


def test_a_failing_task_logs_no_traceback_without_v(project):
    """Through a real process (pytest's own log handlers would hide the difference under CliRunner)."""
    import subprocess

    script = (
        "import sys; import lmbench.tasks.next_word as t\n"
        "def boom(*a, **k): raise TypeError('task broke')\n"
        "t.run = boom\n"
        "from lmbench.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    (project / "exp.toml").write_text(CONFIG.replace("[report]", "[tasks.next-word]\n[report]"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for flag, traceback_shown in (([], False), (["-v"], True)):
        out = subprocess.run(
            [sys.executable, "-c", script, "run", "exp.toml", "-o", "out", *flag],
            cwd=project, capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert out.returncode == 1 and "task next-word: TypeError: task broke" in out.stderr
        assert ("Traceback" in out.stderr) == traceback_shown, out.stderr


def test_a_folder_of_other_files_is_never_swapped_away_as_a_report(project):
    """--output . (or ~) must not move the user's files aside: only a new, empty or earlier report folder."""
    (project / "notes").mkdir()
    (project / "notes" / "thesis.tex").write_text("years of work")
    assert_exit_2_one_line_nothing_written(
        project, ["run", "exp.toml", "-o", "notes"], "notes", "results.json"
    )
    assert_exit_2_one_line_nothing_written(project, ["run", "exp.toml", "-o", "."], "not an earlier report")
    assert (project / "notes" / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize("content", [b"[]", b'{"rows": 3}', b"\xff\xfe", b"{"])
def test_report_rerender_of_a_broken_results_json_is_exit_2(tmp_path, content):
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "results.json").write_bytes(content)
    assert_exit_2_one_line_nothing_written(tmp_path, ["report", "rep"], "results.json")


@pytest.mark.parametrize("runs", ["out", "out/runs", "."])
def test_report_and_runs_folders_must_not_overlap(project, runs):
    assert_exit_2_one_line_nothing_written(
        project, ["run", "exp.toml", "-o", "out", "--runs-dir", runs], "overlap"
    )


@pytest.mark.parametrize(
    "option, needles",
    [("topics = true", ["corpus.topics", "integer"]), ('fillers = "many"', ["corpus.fillers"]),
     ("train_lines = 2.5", ["corpus.train_lines"]), ("seed = -4", ["corpus.seed"]),
     ("concentration = nan", ["corpus.concentration"])],
)  # fmt: skip
def test_synthetic_corpus_options_are_typed(tmp_path, option, needles):
    (tmp_path / "exp.toml").write_text(
        f'name = "s"\n[corpus]\nname = "synthetic"\n{option}\n[[model]]\nname = "u"\nfamily = "ngram"\norder = 1\n'
    )
    assert_exit_2_one_line_nothing_written(tmp_path, ["run", "exp.toml"], "exp.toml", *needles)


@pytest.mark.parametrize(
    "setting, needles",
    [('output = "adaptive"\ncutoffs = [5, 4]', ["cutoffs", "increasing"]),
     ('output = "adaptive"\ncutoffs = [3, 500]', ["cutoffs", "|V| - 1 = ", "vocabulary"])],
)  # fmt: skip
def test_adaptive_cutoffs_are_checked_before_the_first_model_trains(project, setting, needles):
    text = CONFIG.replace("[evaluate]", f'[[model]]\nname = "net"\nfamily = "lstm"\n{setting}\n[evaluate]')
    (project / "exp.toml").write_text(text)
    assert_exit_2_one_line_nothing_written(project, ["run", "exp.toml", "-o", "out"], "model 'net'", *needles)
