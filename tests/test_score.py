"""`lmbench score`: KenLM query's summary and per-line totals, from ARPA files and trained model folders."""

from __future__ import annotations

import gzip
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lmbench import scoring
from lmbench.cli import main
from lmbench.data import TokenStream
from lmbench.data.shared import shared_path
from lmbench.errors import DataError
from lmbench.models.ngram import NgramLM
from lmbench.models.ngram.query import query_arpa

from .conftest import TINY_TEST, TINY_TRAIN, import_or_fail

LN10 = math.log(10.0)


def _reference() -> Path:
    """KenLM's reference outputs; skipped where ../shared is absent, a failure under CI=true."""
    root = shared_path("reference", "kenlm")
    if root is None:
        reason = "KenLM reference outputs (../shared/reference/kenlm) not found; set LMBENCH_SHARED"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    return root


def _cli(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, ["score", *args], input=input, catch_exceptions=False)


def _summary(output: str) -> dict[str, float]:
    return {k: float(v) for k, v in (line.split("\t") for line in output.strip().splitlines())}


@pytest.fixture
def tiny_arpa(tmp_path, tiny_train) -> tuple[Path, NgramLM]:
    model = NgramLM(3, "modified-kneser-ney").fit(tiny_train)
    path = tmp_path / "tiny.arpa.gz"
    model.to_arpa(path)
    return path, NgramLM.from_arpa(path)


@pytest.fixture
def tiny_text(tmp_path) -> Path:
    path = tmp_path / "test.txt"
    path.write_text("\n".join(TINY_TEST) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("order", [3, 5])
def test_summary_and_sentence_totals_match_kenlm_query(order):
    root = _reference()
    arpa = root / f"wt2-8k.o{order}.arpa.gz"
    text = root / "wt2-1k.valid.txt"
    ours = _summary(_cli(str(arpa), str(text)).output)
    theirs = _summary((root / f"wt2-8k.o{order}.valid.summary.txt").read_text())
    assert ours.keys() == theirs.keys()
    assert ours["OOVs:"] == theirs["OOVs:"] == 958 and ours["Tokens:"] == theirs["Tokens:"] == 47945
    for key in ("Perplexity including OOVs:", "Perplexity excluding OOVs:"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-4)  # the bound: 0.01%

    result = _cli(str(arpa), str(text), "--sentences")
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert rows[0] == scoring.SENTENCE_HEADER.split("\t")
    # one line of the recorded output has query's stderr where its OOV count was: that count is not compared
    text = (root / f"wt2-8k.o{order}.valid.query.txt").read_text()
    query = [(float(lp), oov) for lp, oov in re.findall(r"(?m)^Total: (\S+) OOV: (\d*)", text)]
    assert len(rows) - 1 == len(query) == 1000
    np.testing.assert_allclose([float(r[1]) for r in rows[1:]], [q[0] for q in query], atol=2e-4, rtol=1e-6)
    compared = [(int(r[3]), int(q[1])) for r, q in zip(rows[1:], query, strict=True) if q[1]]
    assert len(compared) >= 999 and all(a == b for a, b in compared)
    assert "Perplexity including OOVs:" in result.stderr  # the summary moves to stderr beside the TSV


def test_summary_is_the_models_own_perplexity(tiny_arpa, tiny_text, tiny_vocab):
    path, model = tiny_arpa
    result = _cli(str(path), str(tiny_text))
    assert result.exit_code == 0, result.output
    got = _summary(result.output)
    data = TokenStream.from_lines([line.split() for line in TINY_TEST], model.vocab)
    logprobs = model.token_logprobs(data, context="sentence")
    oov = data.targets() == model.vocab.unk_id
    assert got["Tokens:"] == data.num_predicted == sum(len(x.split()) + 1 for x in TINY_TEST)
    assert got["OOVs:"] == oov.sum() == 1  # "zebra"
    assert got["Perplexity including OOVs:"] == pytest.approx(math.exp(-logprobs.mean()), rel=1e-12)
    assert got["Perplexity excluding OOVs:"] == pytest.approx(math.exp(-logprobs[~oov].mean()), rel=1e-12)
    lines = result.output.splitlines()
    assert lines[0].startswith("Perplexity including OOVs:\t") and lines[3].startswith("Tokens:\t")


def test_sentences_tsv_rows_add_up_to_the_summary(tiny_arpa, tiny_text):
    path, _ = tiny_arpa
    result = _cli(str(path), str(tiny_text), "--sentences")
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()[1:]]
    assert [int(r[0]) for r in rows] == list(range(1, len(TINY_TEST) + 1))
    assert [int(r[2]) for r in rows] == [len(x.split()) + 1 for x in TINY_TEST]  # the empty line: </s>
    summary = _summary(result.stderr)
    total = sum(float(r[1]) for r in rows)
    assert 10 ** (-total / summary["Tokens:"]) == pytest.approx(
        summary["Perplexity including OOVs:"], rel=1e-6
    )
    for r in rows:
        assert float(r[4]) == pytest.approx(10 ** (-float(r[1]) / int(r[2])), rel=1e-6)


def test_stdin_and_a_final_line_without_newline(tiny_arpa, tiny_text):
    path, _ = tiny_arpa
    from_file = _cli(str(path), str(tiny_text)).output
    text = tiny_text.read_bytes().rstrip(b"\n")  # no newline after the last line: it is still a line
    assert _cli(str(path), "-", input=text).output == from_file
    assert _cli(str(path), input=text).output == from_file  # TEXT defaults to stdin


def test_compiled_splitter_gives_the_same_scores(tiny_arpa, tmp_path, monkeypatch):
    path, model = tiny_arpa
    text = tmp_path / "t.txt"
    text.write_text("the  cat\tsat \n\n a zebra\u00a0saw the mat\nthe dog", encoding="utf-8")
    scorer = scoring.load_scorer(path)
    small = scoring.score_text(scorer, text)
    quick = scoring.score_file(path, text)  # the query path
    monkeypatch.setattr(scoring, "COMPILED_SPLIT_BYTES", 0)
    big = scoring.score_text(scorer, text)
    assert scoring.score_file(path, text).summary_lines() == quick.summary_lines() == small.summary_lines()
    np.testing.assert_array_equal(small.tokens, big.tokens)
    np.testing.assert_array_equal(small.oovs, big.oovs)
    np.testing.assert_allclose(small.log10prob, big.log10prob, rtol=1e-12)


def test_plain_arpa_saved_binary_and_stream_context(tiny_arpa, tiny_text, tmp_path):
    path, model = tiny_arpa
    plain = tmp_path / "model.txt"  # no .arpa suffix: recognised by its \data\ line
    plain.write_bytes(gzip.decompress(path.read_bytes()))
    saved = tmp_path / "model.bin"
    model.save(saved)
    expected = _cli(str(path), str(tiny_text)).output
    assert _cli(str(plain), str(tiny_text)).output == expected
    assert _cli(str(saved), str(tiny_text)).output == expected
    # a model trained on sentences backs off at line starts: stream mode scores the same
    assert _cli(str(path), str(tiny_text), "--context", "stream").output == expected


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "not found"),
        (b"hello world\n", "not an ARPA file"),
        (b"\\data\\\nngram 1=x\n", "expected 'ngram N=COUNT'"),
        (b"\x1f\x8b\x08\x00garbage", "not an ARPA file"),
    ],
)
def test_unreadable_model_is_exit_2_one_line(tmp_path, tiny_text, content, expected):
    model = tmp_path / "model.arpa.gz" if content and content[:1] == b"\x1f" else tmp_path / "model.x"
    if content is not None:
        model.write_bytes(content)
    result = _cli(str(model), str(tiny_text))
    assert result.exit_code == 2
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and str(model) in message
    if content is None or content[:1] != b"\x1f":
        assert expected in message


def test_bad_text_is_exit_2_one_line(tiny_arpa, tmp_path):
    path, _ = tiny_arpa
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nbad \xff byte\n")
    for text, expected in [(bad, f"{bad}:2: invalid UTF-8"), (tmp_path / "nope.txt", "file not found")]:
        result = _cli(str(path), str(text))
        assert result.exit_code == 2 and expected in result.output
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    result = _cli(str(path), str(empty))
    assert result.exit_code == 2 and "no lines to score" in result.output


def test_scoring_an_arpa_imports_neither_numba_nor_torch_nor_pandas(tiny_arpa, tiny_text):
    path, _ = tiny_arpa
    code = (
        "import sys\nfrom lmbench.cli import main\n"
        f"try:\n    main(['score', {str(path)!r}, {str(tiny_text)!r}])\nexcept SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "print(sorted(m for m in ('numba', 'torch', 'pandas', 'pyarrow.compute') if m in sys.modules))"
    )
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_trained_model_folder_of_any_family(tmp_path):
    import_or_fail("torch", "torch: pip install torch==2.13.0")
    from lmbench.explore.discovery import discover_runs

    from .explore_runs import make_small_run

    runs, _ = make_small_run(tmp_path)
    text = tmp_path / "text.txt"
    text.write_text("\n".join(TINY_TRAIN[:3]) + "\n", encoding="utf-8")  # words unseen by the model: OOVs
    folders = {run.info.name or run.name: run.folder for run in discover_runs(runs)}
    for name in ("kn3", "lstm", "transformer"):
        folder = folders[name]
        scorer = scoring.load_scorer(folder)
        data = scoring.encode_text(text, scorer.model.vocab, scorer.tokenizer)
        logprobs = scorer.model.token_logprobs(data, context="sentence")
        got = _summary(_cli(str(folder), str(text)).output)
        assert got["Perplexity including OOVs:"] == pytest.approx(math.exp(-logprobs.mean()), rel=1e-9)
        assert got["Tokens:"] == data.num_predicted
        assert _cli(str(folder / "model.bin"), str(text)).output == _cli(str(folder), str(text)).output
    result = _cli(str(runs), str(text))  # several models: name one
    assert result.exit_code == 2 and "holds 4 models" in result.output


# ------------------------------------------------------------------------------------------------ query path
def _outcome(run) -> tuple:
    """What a scoring call answers: its summary and per-line rows, or its error message."""
    try:
        result = run()
    except DataError as e:
        return ("error", str(e))
    return ("ok", result.summary_lines(), list(result.sentence_rows()))


@pytest.mark.parametrize("smoothing", ["modified-kneser-ney", "katz", "witten-bell", "mle", "stupid-backoff"])
@pytest.mark.parametrize("order", [2, 4])
def test_query_path_is_bit_identical_to_building_the_model(tiny_vocab, tmp_path, smoothing, order):
    train = TokenStream.from_lines([line.split() for line in TINY_TRAIN], tiny_vocab)
    path = tmp_path / "m.arpa"
    NgramLM(order, smoothing).fit(train).to_arpa(path)
    lines = [
        line.split() for line in [*TINY_TRAIN, *TINY_TEST, "zebra the cat <unk> sat on the mat", "on on"]
    ]
    scores = query_arpa(path, lines)
    assert scores is not None  # the file is in the shape the query path reads
    model = NgramLM.from_arpa(path)
    data = TokenStream.from_lines(lines, model.vocab)
    np.testing.assert_array_equal(scores.logprobs, model.token_logprobs(data, context="sentence"))
    np.testing.assert_array_equal(scores.oov, data.targets() == model.vocab.unk_id)
    np.testing.assert_array_equal(scores.tokens_per_line, np.diff(data.offsets) + 1)


def test_query_path_constants_are_the_models():
    from lmbench.data.vocabulary import BOS, EOS, UNK
    from lmbench.models.ngram import model, query

    assert (query.BOS, query.EOS, query.UNK, query.MAX_ORDER) == (BOS, EOS, UNK, model.MAX_ORDER)


def _edit(text: str, edit: str) -> str:
    """The ARPA text with one departure from the plain KenLM shape, or one fault."""
    lines = text.split("\n")
    first3 = next(i for i, line in enumerate(lines) if line.startswith("\\3-grams:")) + 1
    if edit == "spaces between fields":
        return text.replace("\t", " ")
    if edit == "zero back-offs left out (SRILM)":
        return re.sub(r"\t0\n", "\n", text)
    if edit == "CRLF line ends":
        return text.replace("\n", "\r\n")
    if edit == "two spaces between words":
        return text.replace("\t<s> the\t", "\t<s>  the\t", 1)
    if edit == "a duplicate 3-gram":
        lines.insert(first3, lines[first3])
        return "\n".join(lines).replace("ngram 3=34", "ngram 3=35")
    if edit == "a 3-gram whose context is not listed":
        context = " ".join(lines[first3].split("\t")[1].split()[:2])
        kept = [line for line in lines if line.split("\t")[1:2] != [context]]
        return "\n".join(kept).replace("ngram 2=30", f"ngram 2={30 - (len(lines) - len(kept))}")
    if edit == "a positive log-probability":
        return text.replace(lines[first3].split("\t")[0] + "\t", "0.5\t", 1)
    if edit == "a NaN back-off":
        return re.sub(r"(\n\S+\t<s> the\t)\S+", r"\1nan", text)
    if edit == "a 3-gram line with four words":
        lines[first3] = lines[first3].replace("\t", "\tthe ", 1).rsplit("\t", 1)[0]
        return "\n".join(lines)
    if edit == "header count off by one":
        return text.replace("ngram 3=34", "ngram 3=33")
    if edit == "no </s> among the 1-grams":
        return "\n".join(line for line in lines if not line.endswith("\t</s>\t0"))
    raise AssertionError(edit)


@pytest.mark.parametrize(
    "edit",
    [
        "spaces between fields",
        "zero back-offs left out (SRILM)",
        "CRLF line ends",
        "two spaces between words",
        "a duplicate 3-gram",
        "a 3-gram whose context is not listed",
        "a positive log-probability",
        "a NaN back-off",
        "a 3-gram line with four words",
        "header count off by one",
        "no </s> among the 1-grams",
    ],
)
def test_files_the_query_path_does_not_read_are_answered_as_the_model_path_answers(tiny_arpa, tmp_path, edit):
    """Anything outside the plain shape, or faulty, goes to the model path: same figures or same error."""
    path, _ = tiny_arpa
    edited = tmp_path / "edited.arpa"
    edited.write_text(_edit(gzip.decompress(path.read_bytes()).decode(), edit), encoding="utf-8")
    text = "\n".join([*TINY_TRAIN, *TINY_TEST]) + "\n"
    assert query_arpa(edited, [line.split() for line in text.splitlines()]) is None
    source = tmp_path / "text.txt"
    source.write_text(text, encoding="utf-8")
    expected = _outcome(lambda: scoring.score_text(scoring.load_scorer(edited), source))
    assert _outcome(lambda: scoring.score_file(edited, source)) == expected


def test_a_literal_begin_marker_in_the_text_goes_to_the_model_path(tiny_arpa, tmp_path):
    path, _ = tiny_arpa
    assert query_arpa(path, [["the", "<s>", "cat"]]) is None
    source = tmp_path / "text.txt"
    source.write_text("the <s> cat\nthe cat\n", encoding="utf-8")
    expected = (
        "error",
        f"{source}:1: a literal <s> (the begin-of-sentence marker, never predicted) cannot be scored",
    )
    assert _outcome(lambda: scoring.score_text(scoring.load_scorer(path), source)) == expected
    assert _outcome(lambda: scoring.score_file(path, source)) == expected
