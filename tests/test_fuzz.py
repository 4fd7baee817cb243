"""Property-based fuzzing of everything a user hands lmbench: configs, corpus files, pair and TSV task files, ARPA.

Whatever the input, the outcome is exit 0, 1 or 2 with no traceback, and exit 2 writes nothing. A crash (an
exception lmbench did not expect) is exit 70 and fails the fuzz, and so does a model or task failure (exit 1) whose
cause is a bug-class exception (KeyError, TypeError, ...). Each fuzzer counts the outcomes it reached and asserts it
reached more than one, so a fuzz that only ever exercises one path fails too. Example counts are bounded and the
corpora tiny, so the whole module runs in well under a minute.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lmbench.cli import main
from lmbench.errors import DataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (pyproject declares >= 3.10)
    import tomli as tomllib

# CI runs 40 examples per property; LMBENCH_FUZZ_EXAMPLES=1000 searches deeper on a quiet machine
EXAMPLES = int(os.environ.get("LMBENCH_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TRAIN = "the cat sat on the mat\nthe dog sat on the log\na cat saw a dog\n" * 3
BASE: dict[str, Any] = {
    "name": "fuzz",
    "corpus": {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"},
    "model": [{"name": "kn2", "family": "ngram", "order": 2}, {"name": "u", "family": "ngram", "order": 1}],
    "evaluate": {"bootstrap": 0},
    "report": {"formats": ["csv"]},
}
# keys a user might set (right or wrong place), beside random junk keys
TOP_KEYS = ["name", "seed", "corpus", "model", "budget", "evaluate", "tasks", "report", "colour"]
CORPUS_KEYS = ["name", "train", "valid", "test", "file", "tokenizer", "min_count", "max_size", "valid_fraction",
               "test_fraction", "data_dir"]  # fmt: skip
MODEL_KEYS = ["name", "family", "order", "smoothing", "k", "discount", "backoff", "train_context",
              "interpolate_unigrams", "budget", "lr", "emb_size", "hidden_size", "layers", "dropout", "device",
              "seed", "window", "n_heads", "d_model", "batch_size", "seq_len", "cutoffs", "output"]  # fmt: skip
FAMILY_KEYS = {
    "ngram": ["order", "smoothing", "k", "discount", "backoff", "train_context", "interpolate_unigrams", "budget"],
    "lstm": ["emb_size", "hidden_size", "layers", "dropout", "lr", "batch_size", "seq_len", "device", "seed",
             "cutoffs", "output", "budget"],
    "transformer": ["d_model", "n_heads", "layers", "window", "dropout", "lr", "batch_size", "device", "output"],
}  # fmt: skip
FAMILY_KEYS["gru"] = FAMILY_KEYS["lstm"]
SECTION_KEYS = {"evaluate": ["context", "splits", "bootstrap", "block_size"], "budget": ["epochs", "tokens", "minutes"],
                "report": ["formats", "baseline", "references"]}  # fmt: skip
ODD_NAMES = [
    "",
    ".",
    "..",
    "../x",
    "/abs",
    "a/b",
    "a\\b",
    "KN2",
    "kn2",
    " ",
    "x" * 200,
    "é",
    "a:b",
    "con",
    "-",
]

scalars = st.one_of(
    st.booleans(),
    st.integers(-3, 5),
    st.sampled_from([2**31, 2**63 - 1, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.text(max_size=6),
    st.sampled_from(
        [
            "ngram",
            "lstm",
            "transformer",
            "sentence",
            "stream",
            "test",
            "md",
            "kn2",
            "char",
            "cuda",
            "arpa",
            "modified-kneser-ney",
            "synthetic",
            "wikitext-2",
            "train.txt",
        ]
    ),  # fmt: skip
    st.sampled_from(ODD_NAMES),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=4,
)  # fmt: skip


floats = st.floats(-1.0, 2.0)
sizes = st.integers(-1, 8)
# per key, values a user could plausibly write (valid ones and near misses); wild values come from `values`
PLAUSIBLE: dict[str, st.SearchStrategy] = {
    "seed": st.integers(-1, 3), "name": st.sampled_from(["fuzz", "a.b", "x-y_1", *ODD_NAMES]),
    "tokenizer": st.sampled_from(["whitespace", "char", "regexp", "word", "bpe"]), "min_count": st.integers(0, 3),
    "max_size": st.integers(2, 8), "valid_fraction": st.floats(0, 0.6), "test_fraction": st.floats(0, 0.6),
    "file": st.sampled_from(["train.txt", "missing.txt", "."]), "order": st.integers(0, 6),
    "smoothing": st.sampled_from(["mle", "add-k", "laplace", "lidstone", "katz", "witten-bell", "absolute-discounting",
                                  "kneser-ney", "modified-kneser-ney", "stupid-backoff", "arpa", "magic"]),
    "k": floats, "discount": floats, "backoff": floats, "train_context": st.sampled_from(["sentence", "stream", "x"]),
    "interpolate_unigrams": st.booleans(),
    "context": st.lists(st.sampled_from(["sentence", "stream", "x"]), max_size=3) | st.sampled_from(["stream", "x"]),
    "splits": st.lists(st.sampled_from(["train", "valid", "test", "dev"]), max_size=3),
    "bootstrap": st.integers(-1, 20), "block_size": st.integers(0, 8),
    "epochs": floats, "tokens": st.integers(-1, 300) | floats, "minutes": st.floats(-1, 0.02),
    "formats": st.lists(st.sampled_from(["md", "csv", "json", "latex", "html", "png", "pdf"]), max_size=3),
    "baseline": st.sampled_from(["kn2", "u", "nope"]), "family": st.sampled_from(["ngram", "lstm", "nope"]),
    "lr": floats | st.just("fast"), "dropout": st.floats(-0.5, 1.5), "device": st.sampled_from(["cpu", "auto", "cuda", "tpu"]),
    "emb_size": sizes, "hidden_size": sizes, "layers": sizes, "d_model": sizes, "n_heads": sizes, "window": sizes,
    "batch_size": sizes, "seq_len": sizes, "cutoffs": st.lists(st.integers(-1, 30), max_size=3),
    "output": st.sampled_from(["full", "adaptive", "x"]),
}  # fmt: skip
TINY_RECURRENT = {
    "emb_size": 8,
    "hidden_size": 8,
    "layers": 1,
    "batch_size": 4,
    "seq_len": 8,
    "budget": {"tokens": 200},
}
TINY = {"lstm": TINY_RECURRENT, "gru": TINY_RECURRENT,
        "transformer": {"d_model": 8, "n_heads": 2, "layers": 1, "window": 8, "batch_size": 4, "budget": {"tokens": 200}}}  # fmt: skip


@st.composite
def configs(draw) -> dict[str, Any]:
    """The valid base config with a few random edits: set, delete or add keys, odd model names, extra models.

    Most edits write a plausible value for the key (so many configs still run); some write any TOML value.
    """
    config = json.loads(json.dumps(BASE))
    for _ in range(draw(st.integers(1, 2))):
        where = draw(st.sampled_from(["top", "corpus", "model", "model", "section", "new-model"]))
        if where == "new-model":
            if isinstance(config.get("model"), list):
                family = draw(st.sampled_from(["ngram", "ngram", "lstm", "gru", "transformer", "nope"]))
                name = draw(st.sampled_from(ODD_NAMES) | st.sampled_from(["m1", "m2", "m3", "M1", "kn2"]))
                # neural models stay tiny: the fuzz is about input handling, not training
                tiny = json.loads(json.dumps(TINY.get(family, {})))
                config["model"].append({"name": name, "family": family, **tiny})
            continue
        if where == "top":
            table, keys = config, TOP_KEYS
        elif where == "corpus":
            table, keys = config.get("corpus"), CORPUS_KEYS
        elif where == "model":
            models = config.get("model")
            if not isinstance(models, list) or not models or not isinstance(models[-1], dict):
                continue
            table = draw(st.sampled_from(models))
            family = table.get("family") if isinstance(table, dict) else None
            family = family if isinstance(family, str) else None  # a fuzzed family may be any value
            keys = MODEL_KEYS if draw(st.booleans()) else FAMILY_KEYS.get(family, MODEL_KEYS)
        else:
            section = draw(st.sampled_from(sorted(SECTION_KEYS)))
            if not isinstance(config.setdefault(section, {}), dict):
                continue
            table, keys = config[section], SECTION_KEYS[section]
        if not isinstance(table, dict):
            continue
        key = draw(st.sampled_from([*keys, None])) or draw(st.text(min_size=1, max_size=5))
        action = draw(st.sampled_from(["plausible", "plausible", "plausible", "wild", "delete"]))
        if action == "delete":
            table.pop(key, None)
        elif action == "plausible" and key in PLAUSIBLE:
            table[key] = draw(PLAUSIBLE[key])
        else:
            table[key] = draw(values)
    return config


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_string(text: str) -> str:
    escaped = json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
    return escaped if not any(0xD800 <= ord(c) <= 0xDFFF for c in text) else '"?"'


def to_toml(config: dict[str, Any]) -> str:
    """Top-level keys as ``key = value`` lines (inline tables and arrays of tables are valid TOML)."""
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in config.items())


@contextmanager
def project(files: dict[str, bytes | str]):
    """A fresh folder holding the given files, as the working directory; LMBENCH_DATA points at an empty one."""
    old, old_env = os.getcwd(), os.environ.get("LMBENCH_DATA")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, content in files.items():
            (root / name).write_bytes(content.encode() if isinstance(content, str) else content)
        (root / "data").mkdir()
        os.environ["LMBENCH_DATA"] = str(root / "data")
        os.chdir(root)
        try:
            yield root
        finally:
            os.chdir(old)
            if old_env is None:
                os.environ.pop("LMBENCH_DATA", None)
            else:
                os.environ["LMBENCH_DATA"] = old_env


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")}


# exceptions that are bugs wherever they come from: a handled input problem is a DataError/ConfigError instead
BUG_TYPES = ("KeyError", "IndexError", "AttributeError", "TypeError", "NameError", "UnboundLocalError",
             "AssertionError", "ZeroDivisionError", "RecursionError", "ValueError", "OverflowError")  # fmt: skip
BUG_IN_FAILURE = re.compile(rf"(?:failed|search failed|task [\w-]+): (?:{'|'.join(BUG_TYPES)})\b")


def check_run(root: Path, args: list[str] | None = None) -> int:
    """Run ``lmbench run exp.toml``: exit 0/1/2, never a traceback or an internal error (exit 70), no model or
    task failed by a bug-class exception, and exit 2 leaves the folder as it was."""
    before = snapshot(root)
    result = CliRunner().invoke(main, args or ["run", "exp.toml", "-o", "out", "--runs-dir", "runs"])
    assert result.exit_code != 70 and "internal error" not in result.output, result.output
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output, result.output
    if result.exit_code == 1:
        assert not BUG_IN_FAILURE.search(result.output), result.output
    if result.exit_code == 2:
        assert snapshot(root) == before, result.output
        assert len([line for line in result.output.splitlines() if line.strip()]) <= 3, result.output
    return result.exit_code


CORPUS = {"train.txt": TRAIN, "valid.txt": "the cat sat\n", "test.txt": "a dog sat\n"}


def test_random_configs_end_cleanly():
    outcomes: Counter[int] = Counter()

    @FUZZ
    @given(config=configs())
    def fuzz(config):
        with project({**CORPUS, "exp.toml": to_toml(config)}) as root:
            outcomes[check_run(root)] += 1

    fuzz()
    assert outcomes[0] and outcomes[2], outcomes  # configs that run, and configs refused before any work


@FUZZ
@given(text=st.binary(max_size=200))
def test_random_bytes_as_a_config_end_cleanly(text):
    with project({**CORPUS, "exp.toml": text}) as root:
        assert check_run(root) == 2


# a third of the files are plausible text (so runs are reached), the rest random bytes or odd characters
plain_lines = st.lists(st.sampled_from(["the cat sat on the mat", "a dog saw the cat", "the log", "é x", ""]),
                       min_size=1, max_size=6).map(lambda lines: ("\n".join(lines) + "\n").encode())  # fmt: skip
corpus_bytes = st.one_of(
    plain_lines,
    st.binary(max_size=120),
    st.text(alphabet=st.sampled_from("ab \n\r\t\x00\ufeffé<unk>"), max_size=60).map(str.encode),
)


def test_random_corpus_bytes_end_cleanly():
    outcomes: Counter[int] = Counter()

    @FUZZ
    @given(train=corpus_bytes, valid=corpus_bytes, test=corpus_bytes,
           tokenizer=st.sampled_from(["whitespace", "char", "regexp"]), single=st.booleans())  # fmt: skip
    def fuzz(train, valid, test, tokenizer, single):
        corpus = (
            {"file": "train.txt"}
            if single
            else {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}
        )
        config = {**BASE, "corpus": {**corpus, "tokenizer": tokenizer}}
        with project(
            {"train.txt": train, "valid.txt": valid, "test.txt": test, "exp.toml": to_toml(config)}
        ) as root:
            code = check_run(root)
            outcomes[code] += 1
            if code == 0:
                import pandas as pd

                rows = pd.read_csv(root / "out" / "results.csv")
                assert (rows.tokens > 0).all()  # a report never scores an empty split

    fuzz()
    assert outcomes[0] and outcomes[2], outcomes  # corpora that train, and corpora refused as bad data


pair_rows = st.lists(
    st.fixed_dictionaries({"good": st.sampled_from(["the cat sat", "", "a dog", 3]),
                           "bad": st.sampled_from(["sat cat the", "zebra", None, "the cat sat"])}),
    max_size=3,
).map(lambda rows: "\n".join(json.dumps(r) for r in rows).encode())  # fmt: skip
good_pairs = st.lists(st.fixed_dictionaries({"good": st.sampled_from(["the cat sat", "a dog saw the cat"]),
                                             "bad": st.sampled_from(["sat cat the", "saw dog a the cat"])}),
                      min_size=1, max_size=3).map(lambda rows: "\n".join(json.dumps(r) for r in rows).encode())  # fmt: skip
tsv_rows = st.lists(st.tuples(st.sampled_from(["the cat sat", "a dog", "", "x\ty"]), st.sampled_from(["pos", "neg", "", "1"])),
                    max_size=4).map(lambda rows: ("sentence\tlabel\n" + "".join(f"{s}\t{lab}\n" for s, lab in rows)).encode())  # fmt: skip
good_tsv = st.lists(st.tuples(st.sampled_from(["the cat sat", "a dog", "the mat"]), st.sampled_from(["pos", "neg"])),
                    min_size=2, max_size=5).map(lambda rows: ("sentence\tlabel\nthe cat\tpos\nthe dog\tneg\n"
                                                              + "".join(f"{s}\t{lab}\n" for s, lab in rows)).encode())  # fmt: skip
# each file: often well formed (so tasks are reached), else near misses, the other format or random bytes
pair_bytes = st.one_of(
    good_pairs, good_pairs, good_pairs, good_pairs, pair_rows, tsv_rows, st.binary(max_size=150)
)
tsv_bytes = st.one_of(good_tsv, good_tsv, good_tsv, good_tsv, tsv_rows, pair_rows, st.binary(max_size=150))


def test_random_pair_and_tsv_task_files_end_cleanly():
    outcomes: Counter[int] = Counter()
    config = {**BASE, "tasks": {"minimal-pairs": {"files": ["pairs.jsonl"]},
                                "classify": {"train": "train.tsv", "test": "test.tsv"}}}  # fmt: skip

    @FUZZ
    @given(pairs=pair_bytes, train=tsv_bytes, test=tsv_bytes)
    def fuzz(pairs, train, test):
        files = {
            **CORPUS,
            "pairs.jsonl": pairs,
            "train.tsv": train,
            "test.tsv": test,
            "exp.toml": to_toml(config),
        }
        with project(files) as root:
            outcomes[check_run(root)] += 1

    fuzz()
    assert outcomes[2], outcomes  # task files refused before any work
    assert outcomes[0] + outcomes[1], outcomes  # and task files that were run


@settings(max_examples=60, deadline=None)
@given(content=st.one_of(
    st.binary(max_size=200),
    st.text(alphabet=st.sampled_from("\\data ngram 1=2\n-0.5\t<s>\t</s>\tx-1-grams:end\t"), max_size=120).map(str.encode),
))  # fmt: skip
def test_random_arpa_files_raise_only_data_errors(content):
    from lmbench.models.ngram import NgramLM

    with tempfile.TemporaryDirectory() as tmp:
        for name in ("m.arpa", "m.arpa.gz"):
            path = Path(tmp) / name
            path.write_bytes(content)
            try:
                NgramLM.from_arpa(path)
            except DataError:
                pass


def test_the_fuzzers_hit_every_outcome():
    """A guard against a fuzz that only ever exercises one path: the base config runs, a broken one is exit 2."""
    with project({**CORPUS, "exp.toml": to_toml(BASE)}) as root:
        assert check_run(root) == 0 and (root / "out" / "results.csv").exists()
    with project({**CORPUS, "exp.toml": to_toml({**BASE, "seed": -1})}) as root:
        assert check_run(root) == 2


@pytest.mark.parametrize("where", ["run_experiment", "fit_model"])
def test_a_crash_fails_the_fuzz_check(monkeypatch, where):
    """A bug injected where every run passes (the experiment, or one model's fit: then exit 1 with the model's
    failure) must fail check_run, or the fuzzers could not see one."""
    from lmbench import experiment

    def broken(*args, **kwargs):
        raise KeyError("injected")

    monkeypatch.setattr(experiment, where, broken)
    with project({**CORPUS, "exp.toml": to_toml(BASE)}) as root:
        with pytest.raises(AssertionError, match="KeyError"):
            check_run(root)
    assert CliRunner().invoke(main, ["--help"]).exit_code == 0  # the harness itself still works


@pytest.mark.parametrize("value", [True, -1, 2.5, "x", [], {}])
def test_toml_writer_round_trips(value):
    assert tomllib.loads(to_toml({"k": value}))["k"] == value


# ------------------------------------------------------------------------------------------ config limits
BOUNDED = [  # (where in BASE, key, its bound): lmbench.limits
    ("evaluate", "bootstrap", 100_000),
    ("evaluate", "block_size", 10_000_000),
    ("corpus", "max_size", 100_000_000),
    ("model0", "order", 10),
    ("budget", "tokens", 10_000_000_000_000),
    ("tasks.generate", "samples", 100_000),
    ("tasks.next-word", "max_tokens", 100_000_000),
]


@FUZZ
@given(
    target=st.sampled_from(BOUNDED),
    excess=st.one_of(st.integers(1, 10), st.sampled_from([10**6, 10**12, 2**63 - 1 - 10**14])),
    as_float=st.booleans(),
)
def test_values_above_their_bound_are_exit_2_before_work(target, excess, as_float):
    where, key, bound = target
    value: int | float = bound + excess
    if as_float:
        value = float(value)
    config = json.loads(json.dumps(BASE))
    if where == "model0":
        config["model"][0][key] = value
    elif where.startswith("tasks."):
        config["tasks"] = {where.split(".", 1)[1]: {key: value}}
    else:
        config.setdefault(where, {})[key] = value
    with project({**CORPUS, "exp.toml": to_toml(config)}) as root:
        assert check_run(root) == 2


@FUZZ
@given(depth=st.integers(17, 3000), kind=st.sampled_from(["[", "{x = ", "dotted"]))
def test_deeply_nested_configs_are_exit_2(depth, kind):
    if kind == "dotted":
        line = "a" + ".a" * depth + " = 1"
    else:
        line = "x = " + kind * depth + "1" + ("]" if kind == "[" else "}") * depth
    with project({**CORPUS, "exp.toml": line + "\n" + to_toml(BASE)}) as root:
        assert check_run(root) == 2


# ------------------------------------------------------------------------------------------------ escaping
hostile_text = st.text(
    alphabet=st.one_of(st.sampled_from("\\`*_{}[]<>#|~$!&%^\n\r\t\x00\x1b;lt ab"), st.characters()),
    max_size=40,
)


@FUZZ
@given(text=hostile_text)
def test_escaped_text_is_inert_in_markdown_and_latex(text):
    import re

    from lmbench.reporting.escape import md_code, md_text, one_line
    from lmbench.reporting.tables import latex_text

    md = md_text(text)
    assert not re.search(r"[\x00-\x1f\x7f]", md)
    assert re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", md) == one_line(text)  # backslashes only escape
    bare = re.sub(r"\\[!-/:-@\[-`{-~]", "", md)
    assert not re.search(r"[\\`*{}\[\]<>#|~$]", bare), md
    code = md_code(text)
    fence = re.match(r"`+", code).group(0)
    assert code.endswith(fence) and fence not in code[len(fence) : -len(fence)]
    tex = latex_text(text)
    assert "\n" not in tex and "\r" not in tex
    plain = re.sub(r"\\[%$#&_{}]|\\text\w+\{\}|\$\\\w+\$|\$-\$", "", tex)
    assert not re.search(r"[\\%$#&_{}^~]", plain), tex


@settings(max_examples=max(EXAMPLES // 4, 5), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=hostile_text.filter(lambda t: t.strip()), path=hostile_text)
@example(
    name="\ud9b4", path=""
)  # lone surrogates (a results.json may hold "\ud9b4"): no UTF-8 writer takes them
@example(name="\\", path="\\\ud9bc")
def test_reports_with_hostile_names_and_paths_keep_their_structure(name, path):
    import re

    from lmbench.reporting import render_report
    from lmbench.results import RunResults
    from tests.test_report import results_dict

    res = json.loads(json.dumps(results_dict()).replace('"kn3"', json.dumps(name)))
    res["provenance"] = {"corpus": path, "command": f"lmbench run {path}"}
    res["experiment"] = name
    with tempfile.TemporaryDirectory() as tmp:
        out = render_report(RunResults.from_dict(res), Path(tmp) / "rep", ["md", "latex", "csv"])
        md = (out / "report.md").read_text()
        widths = set()
        for line in md.splitlines():
            if line.startswith("|"):
                widths.add(len(re.findall(r"(?<!\\)\|", line)))
            elif widths:
                assert len(widths) == 1, md
                widths = set()
        tex = (out / "tables.tex").read_text()
        assert all(line.startswith(("%", "\\", " ", "")) for line in tex.splitlines())
        for line in tex.splitlines():
            if not line.startswith("%"):
                assert not re.search(r"(?<!\\textbackslash\{\})\\input", line), line


# ------------------------------------------------------------------------------------------ output targets
@settings(max_examples=max(EXAMPLES // 4, 5), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    arpa=st.sampled_from(
        ["new.arpa", "old.arpa", "text.txt", "./text.txt", "link", "hard", "dir", os.devnull, "-"]
    ),
    save=st.sampled_from([None, "m.bin", "old.arpa", "text.txt", "hard", os.devnull]),
)
def test_ngram_outputs_never_replace_inputs_folders_or_devices(arpa, save):
    import stat

    with project({"text.txt": TRAIN, "old.arpa": "old"}) as root:
        os.symlink("text.txt", root / "link")
        os.link(root / "text.txt", root / "hard")
        (root / "dir").mkdir()
        args = ["ngram", "text.txt", "-o", "2", "--arpa", arpa] + (["--save", save] if save else [])
        result = CliRunner().invoke(main, args)
        assert result.exit_code in (0, 2), result.output
        assert "Traceback" not in result.output
        assert (root / "text.txt").read_text() == TRAIN and (root / "dir").is_dir()
        assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
        assert not [p for p in root.iterdir() if ".lmbench-" in p.name]  # no temporary left
        inputs = {"text.txt", "./text.txt", "link", "hard"}
        if arpa in inputs or save in inputs or arpa == "dir" or (arpa == save and arpa != os.devnull):
            assert result.exit_code == 2, result.output


# ------------------------------------------------------------------------------------------------ ARPA
@FUZZ
@given(
    logprobs=st.lists(
        st.one_of(st.floats(-3.0, 0.5), st.sampled_from([-99.0, float("-inf"), float("inf"), 0.0])),
        min_size=4,
        max_size=4,
    ),
    ends=st.booleans(),
    gz=st.booleans(),
)
def test_arpa_unigram_values_and_ending_are_checked_exactly(logprobs, ends, gz):
    """A file is read iff it ends with \\end\\, every log-probability is finite and <= 0 and the 1-grams
    (<s> aside) sum to at most one; otherwise a DataError naming the file."""
    import gzip as gzip_module

    from lmbench.models.ngram import NgramLM
    from lmbench.models.ngram.arpa import MASS_TOLERANCE

    words = ["<unk>", "</s>", "a", "b"]
    lines = [f"{lp}\t{w}\t0" for lp, w in zip(logprobs, words, strict=True)] + ["-99\t<s>\t0"]
    text = (
        "\\data\\\nngram 1=5\nngram 2=1\n\n\\1-grams:\n"
        + "\n".join(lines)
        + "\n\n\\2-grams:\n-0.1\t<s> a\n\n"
    )
    text += "\\end\\\n" if ends else ""
    finite = [lp for lp in logprobs if math.isfinite(lp) and lp > -99]
    ok = ends and all(math.isfinite(lp) and lp <= 0 for lp in logprobs)
    ok = ok and sum(10.0**lp for lp in finite) <= 1 + MASS_TOLERANCE
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("m.arpa.gz" if gz else "m.arpa")
        path.write_bytes(gzip_module.compress(text.encode()) if gz else text.encode())
        try:
            NgramLM.from_arpa(path)
            assert ok, text
        except DataError as e:
            assert not ok, (str(e), text)
            assert str(e).startswith(str(path))
