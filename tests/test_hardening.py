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
from lmbench.results import RunResults, Sample
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
    assert results.failures == ["kn2: failed: RuntimeError: boom"]
    assert {r.model for r in results.rows} == {"wb2"}
    assert any("could not write the error log" in line for line in said)


def _results_dict(tag: str) -> dict:
    return {"experiment": tag, "rows": [], "tasks": [], "models": {}, "failures": [], "provenance": {}}


def _results(tag: str) -> RunResults:
    return RunResults.from_dict(_results_dict(tag))


def test_render_cleans_stale_staging_and_a_failed_move_leaves_only_complete_owned_files(
    tmp_path, monkeypatch
):
    from lmbench.ownership import read_manifest
    from lmbench.reporting import load_results, render_report

    out = tmp_path / "rep"
    render_report(_results("first"), out, ["md"])
    # an interrupted render (staging left behind) and an older version's swap cut between its two renames
    (tmp_path / ".rep.tmp-12345-abcd1234").mkdir()
    out.rename(tmp_path / ".rep.old-abcd1234")
    render_report(_results("second"), out, ["md"])
    assert load_results(out).experiment == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]

    real_replace, moved = os.replace, []

    def broken_replace(src, dst):  # the disk goes away after the first file is moved in
        if Path(dst).parent == out and Path(dst).name != ".lmbench-manifest.json":
            if moved:
                raise OSError("disk went away")
            moved.append(dst)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        render_report(_results("third"), out, ["md"])
    monkeypatch.undo()
    owned = set(read_manifest(out).files)
    assert {p.name for p in out.iterdir()} - {".lmbench-manifest.json"} <= owned  # nothing left unowned
    assert load_results(out).experiment in {"second", "third"}  # every file whole, old or new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no staging left
    render_report(_results("fourth"), out, ["md"])
    assert load_results(out).experiment == "fourth" and "fourth" in (out / "report.md").read_text()
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
    assert load_results(out).experiment in {"a5", "b5"}
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
        cli, "_run", lambda config, output, runs_dir, command, **kw: seen.update(output=output)
    )
    assert invoke(["evolution"], project).exit_code == 0
    assert seen["output"] == Path("out") / "evolution"


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


def test_example_pair_files_named_in_readme_resolve_from_any_folder(tmp_path):
    """docs/configuration.md's ``files = ["minimal-pairs/npi_present_1.jsonl"]`` names a file installed with
    lmbench."""
    tasks = {"minimal-pairs": {"files": ["minimal-pairs/npi_present_1.jsonl"]}}
    resolved = resolve_task_paths(
        "exp.toml", tasks, base=tmp_path, data_dir=tmp_path, file_options=FILE_OPTIONS
    )
    (path,) = resolved["minimal-pairs"]["files"]
    assert Path(path).is_file() and Path(path).read_text().count("\n") == 20


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


def test_the_documented_example_config_is_valid_as_written(tmp_path):
    """Parsed exactly as printed in docs/configuration.md (its corpus and SST-2 files come from the shared data
    folder)."""
    require_shared("corpora", "sst2", "train.tsv")
    page = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    block = page.split("## Config format", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    config = parse_config(tomllib.loads(block), source="docs/configuration.md", base=tmp_path)
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
        assert out.returncode == 1 and "task next-word · kn2: TypeError: task broke" in out.stderr
        assert ("Traceback" in out.stderr) == traceback_shown, out.stderr


def test_a_folder_of_other_files_is_never_swapped_away_as_a_report(project):
    """--output . (or ~) must not move the user's files aside: only a new, empty or earlier report folder."""
    (project / "notes").mkdir()
    (project / "notes" / "thesis.tex").write_text("years of work")
    assert_exit_2_one_line_nothing_written(
        project, ["run", "exp.toml", "-o", "notes"], "notes", "thesis.tex", "--force"
    )
    assert_exit_2_one_line_nothing_written(
        project, ["run", "exp.toml", "-o", "."], "did not write", "--force"
    )
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


# ------------------------------------------------------------------------------------------ output targets
NGRAM_TEXT = "\n".join(f"the cat {i % 9} sat on mat {i % 5}" for i in range(300)) + "\n"


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(NGRAM_TEXT)
    return path


def test_devices_and_fifos_are_written_into_never_replaced(text_file, tmp_path):
    import stat

    null_before = os.stat(os.devnull)
    result = invoke(["ngram", "text.txt", "-o", "2", "--arpa", os.devnull, "--save", os.devnull], tmp_path)
    assert result.exit_code == 0, result.output
    after = os.stat(os.devnull)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == null_before.st_rdev

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    result = invoke(["ngram", "text.txt", "-o", "2", "--arpa", str(fifo)], tmp_path)
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO, not a regular file put in its place
    assert got and got[0].rstrip().endswith(b"\\end\\") and b"\\data\\" in got[0]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_a_full_device_is_exit_2_naming_it_and_the_cause(text_file, tmp_path):
    result = invoke(["ngram", "text.txt", "-o", "2", "--arpa", "/dev/full"], tmp_path)
    assert result.exit_code == 2, result.output
    assert "/dev/full" in result.output and "no space left" in result.output
    assert "basic_ios" not in result.output and "Traceback" not in result.output


def test_a_socket_or_folder_as_output_is_exit_2_and_kept(text_file, tmp_path):
    import socket
    import stat

    sock_path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(sock_path))
        result = invoke(["ngram", "text.txt", "--arpa", str(sock_path)], tmp_path)
        assert result.exit_code == 2 and "socket" in result.output and "s.sock" in result.output
        assert stat.S_ISSOCK(os.stat(sock_path).st_mode)
    finally:
        server.close()
    (tmp_path / "folder").mkdir()
    for option in ("--arpa", "--save"):
        result = invoke(["ngram", "text.txt", option, "folder"], tmp_path)
        assert result.exit_code == 2 and "folder" in result.output
        assert (tmp_path / "folder").is_dir()


def test_dash_is_stdout_for_the_arpa_file(text_file, tmp_path):
    result = invoke(["ngram", "text.txt", "-o", "2", "--arpa", "-"], tmp_path)
    assert result.exit_code == 0 and "\\2-grams:" in result.stdout and "\\end\\" in result.stdout


@pytest.mark.parametrize("how", ["same path", "relative twin", "symlink", "hard link", "save is input"])
def test_an_output_that_is_the_input_is_exit_2_before_work(text_file, tmp_path, how):
    twin = {"same path": "text.txt", "relative twin": "./sub/../text.txt"}.get(how, "twin.txt")
    (tmp_path / "sub").mkdir()
    if how == "symlink":
        (tmp_path / "twin.txt").symlink_to(text_file)
    elif how in ("hard link", "save is input"):
        os.link(text_file, tmp_path / "twin.txt")
    option = "--save" if how == "save is input" else "--arpa"
    line = assert_exit_2_one_line_nothing_written(
        tmp_path, ["ngram", "text.txt", option, twin], option, "TEXT"
    )
    assert "same file" in line
    assert text_file.read_text() == NGRAM_TEXT


def test_two_outputs_naming_one_file_is_exit_2(text_file, tmp_path):
    line = assert_exit_2_one_line_nothing_written(
        tmp_path, ["ngram", "text.txt", "--arpa", "m.arpa", "--save", "./m.arpa"], "--arpa", "--save"
    )
    assert "same file" in line


def test_a_symlinked_output_keeps_its_link_and_replaces_the_target(text_file, tmp_path):
    (tmp_path / "real.arpa").write_text("old")
    (tmp_path / "link.arpa").symlink_to("real.arpa")
    assert invoke(["ngram", "text.txt", "-o", "2", "--arpa", "link.arpa"], tmp_path).exit_code == 0
    assert (tmp_path / "link.arpa").is_symlink() and "\\end\\" in (tmp_path / "real.arpa").read_text()


def test_temporary_files_name_their_pid_and_stale_ones_of_dead_processes_go(tmp_path):
    from lmbench.io import atomic_path, atomic_write_text

    target = tmp_path / "m.arpa"
    dead = tmp_path / ".m.arpa.lmbench-999999999-abcd.tmp"  # above any pid_max: no such process
    alive = tmp_path / f".m.arpa.lmbench-{os.getppid()}-efgh.tmp"  # a live process's write in progress
    other = tmp_path / ".other.lmbench-999999999-abcd.tmp"
    for p in (dead, alive, other):
        p.write_text("partial")
    with atomic_path(target) as tmp:
        assert f".m.arpa.lmbench-{os.getpid()}-" in tmp.name
        tmp.write_text("x")
    assert not dead.exists() and alive.exists() and other.exists() and target.read_text() == "x"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("y")
        raise KeyboardInterrupt
    assert target.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [alive.name, other.name, "m.arpa"]
    )
    atomic_write_text(tmp_path / ("n" * 250), "long names keep a bounded temporary name")


@pytest.mark.parametrize(
    "error, cause",
    [
        (OSError(28, "No space left on device"), "no space left"),
        (PermissionError(13, "Permission denied"), "permission denied"),
        (RuntimeError("basic_ios::clear: iostream error"), "write failed"),
    ],
)
def test_write_errors_name_the_file_and_the_cause_and_leave_no_temporary(tmp_path, error, cause):
    from lmbench.errors import OutputError
    from lmbench.io import atomic_path

    target = tmp_path / "model.bin"
    with pytest.raises(OutputError) as caught, atomic_path(target):
        raise error
    assert str(caught.value).startswith(str(target)) and cause in str(caught.value)
    assert "basic_ios" not in str(caught.value) and isinstance(caught.value, OSError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_killed_ngram_leaves_no_hidden_temporary_file(text_file, tmp_path, signum):
    """The ARPA text is written slowly (a minute after each chunk); the command is stopped while the temporary
    file exists."""
    import signal
    import subprocess
    import time

    script = (
        "import sys, time\n"
        "import lmbench.models.ngram.arpa as arpa\n"
        "real = arpa.arpa_chunks\n"
        "def slow(model):\n"
        "    for chunk in real(model):\n"
        "        yield chunk\n"
        "        time.sleep(60)\n"  # the signal ends it: a loaded machine cannot see the file only after the rename
        "arpa.arpa_chunks = slow\n"
        "from lmbench.cli import main\n"
        "sys.exit(main())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def default_signals() -> (
        None
    ):  # as from a terminal: a shell's `cmd &` or nohup would have the child ignore them
        for name in ("SIGINT", "SIGTERM", "SIGHUP"):
            signal.signal(getattr(signal, name), signal.SIG_DFL)

    proc = subprocess.Popen(
        [sys.executable, "-c", script, "ngram", "text.txt", "-o", "2", "--arpa", "m.arpa"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_signals,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not list(tmp_path.glob(".m.arpa.lmbench-*.tmp")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    assert list(tmp_path.glob(".m.arpa.lmbench-*.tmp")), "the write never started"
    proc.send_signal(getattr(signal, signum))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.txt"], err


# ---------------------------------------------------------------------------------------- folder ownership
def test_report_with_other_formats_keeps_the_files_of_the_formats_not_chosen(project):
    from lmbench.ownership import MANIFEST, read_manifest

    (project / "exp.toml").write_text(CONFIG.replace('["md", "csv", "json"]', '["md", "csv", "json", "png"]'))
    assert invoke(["run", "exp.toml", "-o", "out"], project).exit_code == 0
    out = project / "out"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    pngs = [name for name in before if name.endswith(".png")]
    assert pngs and "report.md" in before and MANIFEST in before
    result = invoke(["report", "out", "--formats", "html,latex"], project)
    assert result.exit_code == 0, result.output
    after = {p.name for p in out.iterdir()}
    assert set(before) | {"report.html", "tables.tex"} == after
    for name in ("report.md", *pngs):
        assert (out / name).read_bytes() == before[name], name
    assert set(read_manifest(out).files) == after - {MANIFEST}


def test_force_adds_lmbench_files_beside_foreign_ones_and_never_replaces_them(project):
    thesis = project / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    line = assert_exit_2_one_line_nothing_written(project, ["run", "exp.toml", "-o", "thesis"], "--force")
    assert "chapter1.tex" in line
    result = invoke(["run", "exp.toml", "-o", "thesis", "--force"], project)
    assert result.exit_code == 0, result.output
    assert (thesis / "chapter1.tex").read_text() == "years of work" and (thesis / "report.md").is_file()
    # a file the user puts there later, with a name a report does not use, survives re-runs and re-renders
    (thesis / "notes.md").write_text("mine")
    assert invoke(["run", "exp.toml", "-o", "thesis"], project).exit_code == 0
    assert invoke(["report", "thesis", "--formats", "md,latex"], project).exit_code == 0
    assert (thesis / "notes.md").read_text() == "mine"
    # a name a report uses, taken by a file lmbench did not write: refused even with --force, never replaced
    (project / "mine").mkdir()
    (project / "mine" / "report.md").write_text("my own report")
    for flags in ([], ["--force"]):
        assert_exit_2_one_line_nothing_written(
            project, ["run", "exp.toml", "-o", "mine", *flags], "report.md"
        )
    assert (project / "mine" / "report.md").read_text() == "my own report"


def test_a_re_render_removes_only_stale_files_it_owns(tmp_path):
    from lmbench.ownership import MANIFEST, Manifest, read_manifest, write_manifest
    from lmbench.reporting import render_report

    out = tmp_path / "rep"
    with_samples = _results("a")
    with_samples.samples = [Sample(task="generate", model="m", seed=0, prompt="p", continuation="c")]
    render_report(with_samples, out, ["md", "csv", "json"])
    assert (out / "samples.csv").is_file()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / "headline.png").write_bytes(b"not lmbench's")  # a report name lmbench did not write: refused
    with pytest.raises(ConfigError, match="headline.png"):
        render_report(_results("b"), out, ["md", "csv", "json"])
    (out / "headline.png").unlink()
    # a manifest edited to name files outside the folder: those names are never touched
    owned = read_manifest(out).files
    bad = {"../victim.txt": "md", "/etc/hostname": "md", "sub/x": "csv", "..": "md"}
    write_manifest(out, Manifest("report", {**owned, **bad}))
    render_report(_results("b"), out, ["md", "csv", "json"])
    assert not (out / "samples.csv").exists()  # its format was re-rendered and made no samples this time
    assert victim.read_text() == "keep"
    assert MANIFEST in {p.name for p in out.iterdir()}


def test_an_earlier_versions_report_folder_is_adopted_without_losing_other_files(tmp_path):
    from lmbench.ownership import read_manifest
    from lmbench.reporting import render_report

    out = tmp_path / "old"
    out.mkdir()
    (out / "results.json").write_text(json.dumps(_results_dict("old")))
    (out / "report.md").write_text("old report")
    (out / "my-notes.txt").write_text("mine")
    render_report(_results("new"), out, ["md", "csv", "json"])
    assert "new" in (out / "report.md").read_text() and (out / "my-notes.txt").read_text() == "mine"
    assert "my-notes.txt" not in read_manifest(out).files


def test_a_runs_folder_lmbench_did_not_make_is_refused_unless_forced(project):
    from lmbench.ownership import read_manifest

    (project / "data").mkdir()
    (project / "data" / "corpus.txt").write_text("mine")
    line = assert_exit_2_one_line_nothing_written(
        project, ["run", "exp.toml", "-o", "rep", "--runs-dir", "data"], "runs folder", "--force"
    )
    assert "corpus.txt" in line
    (project / "data" / "kn2").mkdir()  # a folder of the user's with a model's name: never written into
    (project / "data" / "kn2" / "model.bin").write_text("my model")
    assert_exit_2_one_line_nothing_written(
        project, ["run", "exp.toml", "-o", "rep", "--runs-dir", "data", "--force"], "kn2"
    )
    (project / "data" / "kn2" / "model.bin").unlink()
    (project / "data" / "kn2").rmdir()
    assert invoke(["run", "exp.toml", "-o", "rep", "--runs-dir", "data", "--force"], project).exit_code == 0
    assert (project / "data" / "corpus.txt").read_text() == "mine"
    assert invoke(["run", "exp.toml", "-o", "rep2", "--runs-dir", "fresh"], project).exit_code == 0
    assert read_manifest(project / "fresh").kind == "runs"
    # a report folder is not a runs folder, and the other way round
    assert_exit_2_one_line_nothing_written(project, ["run", "exp.toml", "-o", "fresh"], "runs folder")
    assert_exit_2_one_line_nothing_written(
        project, ["run", "exp.toml", "--runs-dir", "rep", "-o", "x"], "report"
    )


def test_default_outputs_are_git_ignored_and_never_the_committed_reports(project, monkeypatch):
    from lmbench import cli

    root = Path(__file__).resolve().parents[1]
    ignored = [line.strip() for line in (root / ".gitignore").read_text().splitlines()]
    assert "/out/" in ignored and "runs/" in ignored
    seen: dict[str, Path] = {}
    monkeypatch.setattr(
        cli, "_run", lambda config, output, runs_dir, command, *a, **kw: seen.update(output=output)
    )
    for command in ("demo", "evolution"):
        assert invoke([command], project).exit_code == 0
        assert seen["output"].parts[0] == "out", seen
    monkeypatch.undo()
    # lmbench run of an example: the default report folder is out/<name>, never reports/<name>
    config = load_config(root / "examples" / "evolution.toml")
    assert cli.DEFAULT_OUTPUT / config.name == Path("out") / "evolution"
    # each committed report is regenerated by the command in its config's header, naming it with --output
    for report in (root / "reports").iterdir():
        if not (report / "results.json").is_file():
            continue
        command = json.loads((report / "results.json").read_text())["provenance"].get("command", "")
        assert (
            f"--output reports/{report.name}" in command
            or f"-o reports/{report.name}" in command
            or (report.name == "evolution" and command.startswith("lmbench evolution"))
        ), (report.name, command)


# ------------------------------------------------------------------------------------------------ escaping
HOSTILE = (
    "a|b\n\\input{/etc/passwd}\r\n# head <script>alert(1)</script> &lt; $x _y_ %c ~d ^e {f} `g` **b** "
    "[l](http://x) \\\\ \x1b[2J end"
)


def _hostile_results() -> RunResults:
    from tests.test_report import results_dict

    text = json.dumps(results_dict()).replace('"kn3"', json.dumps(HOSTILE))
    hostile = json.loads(text)
    hostile["experiment"] = HOSTILE
    hostile["failures"] = [f"{HOSTILE}: failed: RuntimeError: {HOSTILE}"]
    hostile["references"] = [{"model": HOSTILE, "metric": "perplexity", "value": 1.0, "source": HOSTILE}]
    hostile["provenance"] = {"corpus": HOSTILE, "command": f"lmbench run {HOSTILE}", "tokenizer": HOSTILE}
    hostile["samples"] = [
        {"task": "generate", "model": HOSTILE, "seed": 0, "prompt": HOSTILE, "continuation": HOSTILE}
    ]
    hostile["models"][HOSTILE]["config"]["source"] = HOSTILE
    return RunResults.from_dict(hostile)


def _markdown_cells(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_hostile_strings_stay_text_in_every_report_format(tmp_path):
    import pandas as pd

    from lmbench.reporting import load_results, render_report, summary_text

    out = render_report(_hostile_results(), tmp_path / "rep", ["md", "csv", "json", "html", "latex", "png"])

    tex = (out / "tables.tex").read_text()
    for line in tex.splitlines():  # every line is lmbench's: a comment, or a command lmbench writes
        if line.startswith("%"):  # a comment runs to the end of its line, and its line is one line
            continue
        assert not re.search(r"(?<!\\textbackslash\{\})\\input", line), line
        unescaped = re.sub(r"\\[{}%$#&_]|\\textbackslash\{\}|\\text\w+\{\}", "", line)
        assert unescaped.count("{") == unescaped.count("}"), line
        assert not re.search(r"(?<!\\)[%#&_^~]", unescaped.replace(" & ", "  ")), line
    assert "\x1b" not in tex and "\r" not in tex

    md = (out / "report.md").read_text()
    lines = md.splitlines()
    assert not [line for line in lines if line.startswith("\\input") or line.startswith("# head")]
    prose = re.sub(r"(`+)(.+?)\1", "", re.sub(r"(?s)```json.*?```", "", md))  # code shows text verbatim
    assert "<script>" not in prose and "\x1b" not in md and "\r" not in md
    header = None
    for line in lines:  # every markdown table row has its header's number of cells
        if line.startswith("|"):
            header = header or _markdown_cells(line)
            assert _markdown_cells(line) == header, line
        else:
            header = None
    assert "Regenerate with: ``lmbench run a|b \\input{/etc/passwd}" in md  # verbatim, in a code span

    page = (out / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page

    frame = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert HOSTILE.replace("\r\n", "\n") in {m.replace("\r\n", "\n") for m in frame["model"]}
    assert load_results(out).experiment == HOSTILE  # results.json keeps the raw value

    terminal = summary_text(load_results(out))
    assert "\x1b" not in terminal and "\\input" in terminal  # shown, on the table's own line
    assert not [line for line in terminal.splitlines() if line.startswith("\\input")]


def test_the_escapers_cover_every_special_character():
    from lmbench.reporting.escape import md_code, md_text
    from lmbench.reporting.tables import latex_text

    for ch in "\\`*{}[]<>#|~$!":
        assert md_text(f"a{ch}b") == f"a\\{ch}b"
    assert md_text("x86_64") == "x86_64" and md_text("_x_") == "\\_x\\_"
    assert md_text("a\nb\r\tc") == "a b  c" and md_text("&lt;") == "\\&lt;" and md_text("AT&T") == "AT&T"
    assert md_code("a`b") == "``a`b``" and md_code("`") == "`` ` ``" and md_code("x\ny") == "`x y`"
    for ch, escaped in {
        "%": r"\%",
        "#": r"\#",
        "&": r"\&",
        "$": r"\$",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
    }.items():
        assert latex_text(f"a{ch}b") == f"a{escaped}b"
    assert latex_text("a\n\\input{x}") == r"a \textbackslash{}input\{x\}"
    assert "\n" not in latex_text("a\r\n\x00b") and "~" not in latex_text("~") and "^" not in latex_text("^")


# ------------------------------------------------------------------------------------------ config limits
@pytest.mark.parametrize(
    "edit, needles",
    [
        (
            lambda t: t.replace("bootstrap = 0", "bootstrap = 1000000000000"),
            ["evaluate.bootstrap", "100,000"],
        ),
        (lambda t: t.replace("bootstrap = 0", "bootstrap = 1e12"), ["evaluate.bootstrap", "100,000"]),
        (
            lambda t: t.replace("bootstrap = 0", "bootstrap = 0\nblock_size = 99999999999"),
            ["evaluate.block_size"],
        ),
        (
            lambda t: t.replace("order = 2\nsmoothing", "order = 1000000\nsmoothing"),
            ["model 'wb2': order", "10"],
        ),
        (lambda t: t.replace('tokenizer = "whitespace"', "max_size = 10000000000"), ["corpus.max_size"]),
        (lambda t: "[budget]\ntokens = 100000000000000000\n" + t, ["budget.tokens"]),
        (lambda t: t + "[tasks.generate]\nsamples = 1000000000\n", ["tasks.generate.samples", "100,000"]),
        (lambda t: t + "[tasks.minimal-pairs]\ndistances = [1, 99999999999]\n", ["distances"]),
        (lambda t: "seeds = [" + ", ".join(map(str, range(20000))) + "]\n" + t, ["seeds", "10,000"]),
        (lambda t: "x = " + "[" * 40 + "]" * 40 + "\n" + t, ["nested", "16"]),
        (lambda t: "x = " + "[" * 5000 + "]" * 5000 + "\n" + t, ["nested", "16"]),
        (lambda t: "a" + ".a" * 30 + " = 1\n" + t, ["nested", "16"]),
        (lambda t: t.replace('train = "train.txt"', f'train = "{"x" * 5000}"'), ["corpus.train", "4,096"]),
        (lambda t: t.replace('train = "train.txt"', f'train = "{"x" * 300}"'), ["corpus.train", "too long"]),
        (lambda t: t + f'[tasks.minimal-pairs]\nfiles = ["{"y" * 300}"]\n', ["tasks.minimal-pairs.files"]),
    ],
)
def test_counts_sizes_and_depth_have_bounds_checked_before_work(project, edit, needles):
    text = edit(CONFIG)
    if text == CONFIG:
        return
    (project / "exp.toml").write_text(text)
    assert_exit_2_one_line_nothing_written(project, ["run", "exp.toml", "-o", "out"], "exp.toml", *needles)


def test_synthetic_corpus_size_is_bounded(tmp_path):
    base = (
        'name = "s"\n[corpus]\nname = "synthetic"\n{}\n[[model]]\nname = "u"\nfamily = "ngram"\norder = 1\n'
    )
    for line, needle in [
        ("train_lines = 10000000000", "corpus.train_lines"),
        ("fillers = 50000", "corpus.topics x corpus.fillers^2"),
        ("max_len = 1000000", "corpus.max_len"),
    ]:
        (tmp_path / "s.toml").write_text(base.format(line))
        assert_exit_2_one_line_nothing_written(tmp_path, ["run", "s.toml"], needle)


@pytest.mark.parametrize("source", ["/dev/zero", "huge"])
def test_an_endless_or_huge_config_is_exit_2_without_reading_it_all(tmp_path, source):
    if source == "huge":
        path = tmp_path / "huge.toml"
        with open(path, "wb") as f:
            f.truncate(3 << 30)  # 3 GiB, sparse: reading it whole would be the failure
        source = str(path)
    elif not Path(source).exists():
        pytest.skip("no /dev/zero")
    line = assert_exit_2_one_line_nothing_written(tmp_path, ["run", source], source, "1,048,576 bytes")
    assert "MemoryError" not in line


def test_an_error_log_goes_once_the_model_succeeds(project, monkeypatch):
    from lmbench import experiment

    config = load_config(project / "exp.toml")
    real_train = experiment.fit_model

    def broken(run, *args, **kwargs):
        if run.spec.name == "kn2":
            raise OSError(28, "No space left on device")
        return real_train(run, *args, **kwargs)

    monkeypatch.setattr(experiment, "fit_model", broken)
    experiment.run_experiment(config, project / "runs", progress=lambda m: None)
    log = project / "runs" / "kn2" / "error.log"
    assert log.is_file()
    monkeypatch.undo()
    results = experiment.run_experiment(config, project / "runs", progress=lambda m: None)
    assert not results.failures and not log.exists()


def test_save_to_stdout_needs_the_arpa_file_elsewhere(text_file, tmp_path):
    line = assert_exit_2_one_line_nothing_written(tmp_path, ["ngram", "text.txt", "--save", "-"], "stdout")
    assert "--arpa" in line
    result = invoke(["ngram", "text.txt", "-o", "2", "--arpa", "m.arpa", "--save", "-"], tmp_path)
    assert result.exit_code == 0 and result.stdout_bytes.startswith(b"PK")  # the model's zip on stdout


def test_an_arpa_path_that_cannot_be_written_is_exit_2_before_counting(text_file, tmp_path):
    (tmp_path / "afile").write_text("x")
    line = assert_exit_2_one_line_nothing_written(
        tmp_path, ["ngram", "text.txt", "--arpa", "afile/m.arpa"], "afile"
    )
    assert "words" not in line
    if os.geteuid() != 0:  # root writes into read-only folders
        (tmp_path / "ro").mkdir(mode=0o500)
        assert_exit_2_one_line_nothing_written(
            tmp_path, ["ngram", "text.txt", "--save", "ro/m.bin"], "writable"
        )
