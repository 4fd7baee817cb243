"""``lmbench score``: a text's perplexity under an ARPA file or a trained model, as KenLM's ``query`` reports it.

Every line is scored as ``<s> words </s>`` (KenLM's sentence mode; ``context="stream"`` lets context cross line
ends for models trained that way). A token outside the model's vocabulary is scored as ``<unk>`` and counted as
an OOV; "perplexity excluding OOVs" leaves out exactly those tokens' probabilities (not the tokens after them),
which is KenLM's definition. Reading an ARPA file imports neither Numba nor torch, so scoring a small text
starts in well under a second.
"""

from __future__ import annotations

import gzip
import io
import math
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from lmbench.errors import DataError

if TYPE_CHECKING:  # imported where used: scoring an ARPA file needs none of them
    from lmbench.data.corpus import TokenStream
    from lmbench.data.tokenizers import Tokenizer
    from lmbench.data.vocabulary import Vocabulary
    from lmbench.models.base import Context, LanguageModel

LN10 = math.log(10.0)
ARPA_SUFFIXES = (".arpa", ".arpa.gz", ".lm", ".lm.gz")
COMPILED_SPLIT_BYTES = 64 << 20  # texts above this go through the compiled (Numba) splitter, streamed
SENTENCE_HEADER = "line\tlog10prob\ttokens\toovs\tperplexity"


@dataclass(frozen=True)
class Scorer:
    """A loaded model with the tokenizer its text must be cut with, and where it came from."""

    model: LanguageModel
    tokenizer: Tokenizer
    source: str


@dataclass(frozen=True)
class TextScore:
    """Per-line totals of a scored text (KenLM's ``Total: ... OOV: ...`` lines) and the corpus summary.

    Arrays have one entry per input line: ``log10prob`` the line's total log10 probability (its words and
    ``</s>``), ``tokens`` its predicted tokens, ``oovs`` its OOV tokens and ``oov_log10prob`` their share of
    the total.
    """

    log10prob: np.ndarray
    tokens: np.ndarray
    oovs: np.ndarray
    oov_log10prob: np.ndarray

    @property
    def num_tokens(self) -> int:
        return int(self.tokens.sum())

    @property
    def num_oovs(self) -> int:
        return int(self.oovs.sum())

    @property
    def total(self) -> float:
        """log10 probability of the whole text."""
        return float(self.log10prob.sum())

    @property
    def perplexity(self) -> float:
        """10^(-total / tokens), OOV tokens included (KenLM's "Perplexity including OOVs")."""
        return 10.0 ** (-self.total / self.num_tokens) if self.num_tokens else math.nan

    @property
    def perplexity_excluding_oovs(self) -> float:
        """The same over the in-vocabulary tokens only (KenLM's "Perplexity excluding OOVs")."""
        kept = self.num_tokens - self.num_oovs
        if kept == 0:
            return math.nan
        return 10.0 ** (-(self.total - float(self.oov_log10prob.sum())) / kept)

    def summary_lines(self) -> list[str]:
        """KenLM ``query``'s four summary lines, tab-separated as it prints them."""
        return [
            f"Perplexity including OOVs:\t{self.perplexity!r}",
            f"Perplexity excluding OOVs:\t{self.perplexity_excluding_oovs!r}",
            f"OOVs:\t{self.num_oovs}",
            f"Tokens:\t{self.num_tokens}",
        ]

    def sentence_rows(self) -> Iterator[str]:
        """One TSV row per line (1-based line number, log10 total, tokens, OOVs, the line's perplexity)."""
        ppl = 10.0 ** (-self.log10prob / np.maximum(self.tokens, 1))
        for i, (lp, n, oov, p) in enumerate(
            zip(self.log10prob.tolist(), self.tokens.tolist(), self.oovs.tolist(), ppl.tolist(), strict=True),
            start=1,
        ):
            yield f"{i}\t{lp:.8g}\t{n}\t{oov}\t{p:.8g}"


# ------------------------------------------------------------------------------------------------ loading
def _head(path: Path, size: int = 4096) -> bytes:
    """The first bytes of a file, gunzipped when it is gzip."""
    with open(path, "rb") as f:
        raw = f.read(size)
    if raw[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as f:
            return f.read(size)
    return raw


def is_arpa(path: Path) -> bool:
    """Whether ``path`` is an ARPA file: by its name, else by its first line (``\\data\\``)."""
    if path.name.lower().endswith(ARPA_SUFFIXES):
        return True
    try:
        return _head(path).lstrip().startswith(b"\\data\\")
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile):
        return False


def load_scorer(path: str | Path) -> Scorer:
    """The model at ``path``: an ARPA file (plain or gzip), a trained model's folder (``metrics.json`` and
    ``model.bin``, any family; or a run folder holding exactly one model), that folder's ``model.bin``, or a
    binary saved by ``lmbench ngram --save``. Anything else is a :class:`DataError` naming the path."""
    from lmbench.data.tokenizers import WhitespaceTokenizer, get_tokenizer
    from lmbench.explore.discovery import discover_runs

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found (expected an ARPA file or a trained lmbench model)")
    if path.is_file() and is_arpa(path):
        from lmbench.models.ngram import NgramLM

        return Scorer(NgramLM.from_arpa(path), WhitespaceTokenizer(), str(path))
    folder = path if path.is_dir() else path.parent
    runs = discover_runs(folder) if (folder / "metrics.json").is_file() or path.is_dir() else []
    if path.is_file():
        runs = [run for run in runs if run.model_path.resolve() == path.resolve()]
    if len(runs) > 1:
        names = ", ".join(run.name for run in runs[:5]) + (" ..." if len(runs) > 5 else "")
        raise DataError(f"{path}: holds {len(runs)} models ({names}); name one model's folder")
    if runs:
        run = runs[0]
        return Scorer(_load_run_model(run), get_tokenizer(run.tokenizer), str(run.folder))
    if path.is_dir():
        raise DataError(f"{path}: no trained model below it (a folder holding metrics.json and model.bin)")
    from lmbench.models.ngram import NgramLM

    try:
        model = NgramLM.load(path)
    except DataError:
        raise DataError(
            f"{path}: not an ARPA file (no \\data\\ line) nor an lmbench model (a run folder or n-gram binary)"
        ) from None
    return Scorer(model, WhitespaceTokenizer(), str(path))


def _load_run_model(run) -> LanguageModel:
    """A finished run's model, through the registry; a missing optional package names its pip install."""
    from lmbench.explore.service import load_model

    try:
        return load_model(run)
    except ImportError as e:  # e.g. a pretrained model without the hf extra
        raise DataError(
            f'{run.model_path}: loading a {run.family} model needs {e.name}: pip install "lmbench[hf]"'
        ) from None


# ------------------------------------------------------------------------------------------------ text
def _text_bytes(source: str | Path | BinaryIO) -> tuple[bytes, str]:
    if isinstance(source, (str, Path)) and str(source) != "-":
        path = Path(source)
        if path.is_dir():
            raise DataError(f"{path}: is a directory, expected a text file")
        try:
            return path.read_bytes(), str(path)
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    stream = sys.stdin.buffer if str(source) == "-" else source
    return stream.read(), "<stdin>"  # type: ignore[union-attr]


def _split_lines(data: bytes, name: str) -> list[str]:
    """Lines of UTF-8 text (``\\n`` ends a line; a final line without one still counts)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{name}:{line}: invalid UTF-8 (text is read as UTF-8)") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def encode_text(
    source: str | Path | BinaryIO, vocab: Vocabulary, tokenizer: Tokenizer, *, raw: bool = False
) -> TokenStream:
    """The lines of ``source`` (a file, ``-`` for stdin, or a binary stream) as ids in ``vocab`` (unknown words
    -> ``<unk>``, counted in ``oov``); ``raw`` keeps the untokenized lines (pretrained models score them)."""
    from lmbench.data.corpus import TokenStream
    from lmbench.data.tokenizers import WhitespaceTokenizer

    if (
        isinstance(tokenizer, WhitespaceTokenizer)
        and not raw
        and isinstance(source, (str, Path))
        and str(source) != "-"
        and Path(source).is_file()
        and Path(source).stat().st_size > COMPILED_SPLIT_BYTES
    ):
        from lmbench.data.encoding import encode_lines, read_lines

        text = encode_lines(read_lines(source), tokenizer)
        ids, oov = text.to_vocabulary(vocab)
        stream = TokenStream(ids=ids, offsets=text.offsets, vocab=vocab, num_chars=text.num_chars, oov=oov)
        return _no_begin_marker(stream, str(source))
    data, name = _text_bytes(source)
    lines = _split_lines(data, name)
    words = [tokenizer.tokenize(line) for line in lines]
    stream = _no_begin_marker(
        TokenStream.from_lines(words, vocab, num_chars=sum(len(line) + 1 for line in lines)), name
    )
    if raw:
        from dataclasses import replace

        stream = replace(stream, raw_lines=tuple(lines))
    return stream


def _no_begin_marker(stream: TokenStream, name: str) -> TokenStream:
    """``stream``, unless a word of it is the begin marker ``<s>``: every line starts from it and it is never
    predicted, so a literal one cannot be scored (KenLM gives it log10 -99)."""
    found = np.flatnonzero(stream.ids == stream.vocab.bos_id)
    if len(found):
        line = int(np.searchsorted(stream.offsets, found[0], side="right"))
        raise DataError(
            f"{name}:{line}: a literal <s> (the begin-of-sentence marker, never predicted) cannot be scored"
        )
    return stream


# ------------------------------------------------------------------------------------------------ scoring
def score_stream(model: LanguageModel, data: TokenStream, *, context: Context = "sentence") -> TextScore:
    """Per-line totals of ``data`` under ``model`` (log10, as KenLM prints them)."""
    from lmbench.models.base import check_context

    check_context(context)
    if data.num_lines == 0:
        return _line_totals(np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64))
    logprobs = model.token_logprobs(data, context=context)
    return _line_totals(logprobs, data.targets() == data.vocab.unk_id, np.diff(data.offsets) + 1)


def score_text(scorer: Scorer, source: str | Path | BinaryIO, *, context: Context = "sentence") -> TextScore:
    """Load nothing more: cut ``source`` the scorer's way and score every line."""
    raw = getattr(scorer.model, "backend", "") == "pretrained"
    data = encode_text(source, scorer.model.vocab, scorer.tokenizer, raw=raw)
    return score_stream(scorer.model, data, context=context)


def score_file(
    model: str | Path, source: str | Path | BinaryIO, *, context: Context = "sentence"
) -> TextScore:
    """What ``lmbench score`` does: ``source`` scored under the model at ``model`` (see :func:`load_scorer`).

    An ARPA file scored in sentence context is read as KenLM's ``query`` reads it: only the n-grams the text
    holds are looked up (:func:`lmbench.models.ngram.query.query_arpa`), with the same figures as building
    the model; a file outside the plain KenLM/SRILM shape, or with a problem, builds the model (which
    reads every variant and names any problem's line). A text above ``COMPILED_SPLIT_BYTES`` goes to the model
    path too, whose compiled splitter streams it instead of holding every word as a Python string."""
    model = Path(model)
    named = isinstance(source, (str, Path)) and str(source) != "-"
    large = named and Path(source).is_file() and Path(source).stat().st_size > COMPILED_SPLIT_BYTES
    if context == "sentence" and not large and model.is_file() and is_arpa(model):
        from lmbench.models.ngram.query import query_arpa

        data, name = _text_bytes(source)
        lines = _split_lines(data, name) if len(data) <= COMPILED_SPLIT_BYTES else []  # [] declines
        # cut as WhitespaceTokenizer cuts (load_scorer's tokenizer for an ARPA file), without importing it
        scores = query_arpa(model, [line.split() for line in lines])
        if scores is not None:
            return _line_totals(scores.logprobs, scores.oov, scores.tokens_per_line)
        if not named:
            source = io.BytesIO(data)  # stdin is read once
    return score_text(load_scorer(model), source, context=context)


def _line_totals(logprobs: np.ndarray, oov: np.ndarray, tokens_per_line: np.ndarray) -> TextScore:
    """Per-line totals from per-token natural-log probabilities and OOV flags (log10, as KenLM prints)."""
    if len(tokens_per_line) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return TextScore(log10prob=np.zeros(0), tokens=empty, oovs=empty, oov_log10prob=np.zeros(0))
    log10 = logprobs / LN10
    starts = np.zeros(len(tokens_per_line), dtype=np.int64)
    np.cumsum(tokens_per_line[:-1], out=starts[1:])
    return TextScore(
        log10prob=np.add.reduceat(log10, starts),
        tokens=tokens_per_line,
        oovs=np.add.reduceat(oov.astype(np.int64), starts),
        oov_log10prob=np.add.reduceat(np.where(oov, log10, 0.0), starts),
    )
