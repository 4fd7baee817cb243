"""Minimal pairs: does the model prefer a real sentence over a corrupted copy?

Corruptions of sampled test sentences: two words swapped at distance d (d = 1 is the adjacent swap), a
word replaced by another of similar training frequency, and the last word replaced by another sentence's
last word (a long-range agreement break wherever a sentence's end depends on its beginning). Accuracy by
corruption and distance shows an n-gram's blind spot beyond its order. User pair files (JSONL
``{"good", "bad"}`` or BLiMP's ``sentence_good`` / ``sentence_bad`` with ``UID`` / ``linguistics_term``) are
raw text, tokenized the corpus's way (``[corpus] external_tokenizer``, the card's, or ``tokenizer = NAME``).

A pair whose two totals are equal within ``tie_tolerance`` (relative) is a tie: it counts half in the
accuracy and is reported in ``ties``, so a model that cannot tell the sentences apart shows as ties rather
than as a clean-looking 0.5. ``oov_items`` counts pairs holding a word outside the vocabulary; with
``oov = "skip"`` file pairs whose sentences differ in such a word are left out (and counted in ``skipped``).
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.data.corpus import TokenizedCorpus, TokenStream
from lmbench.data.tokenizers import TOKENIZERS, Tokenizer
from lmbench.errors import ConfigError, DataError
from lmbench.results import TaskResults, TaskRow
from lmbench.tasks.base import (
    TIE_TOLERANCE,
    ModelEntry,
    TaskFile,
    TaskInputs,
    file_labels,
    metric_row,
    options,
    read_task_file,
    sentence_totals,
    text_tokenizer,
)

NAME = "minimal-pairs"
FILE_OPTIONS = ("files",)  # options naming files (resolved against the config's folder)
DEFAULTS = {
    "sentences": 500,
    "distances": [1, 2, 4, 8, 16],
    "replace": True,
    "last_word": True,
    "files": [],
    "split": "test",
    "min_length": 0,
    "tokenizer": None,  # for pair files; default: the corpus's external tokenizer
    "oov": "score",  # score | skip (leave out file pairs whose sentences differ in an out-of-vocabulary word)
    "tie_tolerance": TIE_TOLERANCE,
}
GOOD_KEYS, BAD_KEYS = ("good", "sentence_good"), ("bad", "sentence_bad")


@dataclass
class PairSet:
    """Pairs as ids with what each belongs to (one entry per pair) and which hold OOV words."""

    good: list[np.ndarray] = field(default_factory=list)
    bad: list[np.ndarray] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)  # TaskRow grouping fields of each pair
    has_oov: list[bool] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # file label -> pairs left out

    def add(self, group: dict[str, Any], good: np.ndarray, bad: np.ndarray, has_oov: bool) -> None:
        self.good.append(good)
        self.bad.append(bad)
        self.groups.append(group)
        self.has_oov.append(has_oov)


def make_pairs(
    data: TokenStream, vocab, opts: dict[str, Any], seed: int, line_oov: Callable[[int], bool] | None = None
) -> PairSet:
    """Corrupted copies of sampled lines; swaps need two different words so the pair really differs.
    ``line_oov(i)``: whether line i held a word outside the vocabulary (default: it holds ``<unk>``).
    One generator draws every sample, in this order: swaps by distance, last words, replacements."""
    rng = np.random.default_rng(seed)
    pairs = PairSet()
    line_oov = line_oov or (lambda i: bool((data.line(i) == vocab.unk_id).any()))

    def add(group: dict[str, Any], i: int, good: np.ndarray, bad: np.ndarray) -> None:
        pairs.add(group, good, bad, line_oov(int(i)))

    _swaps(data, opts, rng, add)
    if opts["last_word"]:
        _last_words(data, opts, rng, add)
    if opts["replace"]:
        _replacements(data, vocab, opts, rng, add)
    return pairs


AddPair = Callable[[dict[str, Any], int, np.ndarray, np.ndarray], None]  # (group, line, good, bad)


def _swaps(data: TokenStream, opts: dict[str, Any], rng: np.random.Generator, add: AddPair) -> None:
    """Per distance d: sampled lines with two different words d apart swapped."""
    lengths = np.diff(data.offsets)
    for d in opts["distances"]:
        candidates = np.flatnonzero(lengths > max(d, opts["min_length"]))
        if len(candidates) == 0:
            continue
        for i in rng.choice(candidates, size=min(opts["sentences"], len(candidates)), replace=False):
            good = data.line(i).copy()
            starts = np.flatnonzero(good[: len(good) - d] != good[d:])
            if len(starts) == 0:
                continue
            j = int(rng.choice(starts))
            bad = good.copy()
            bad[j], bad[j + d] = good[j + d], good[j]
            add({"corruption": "swap", "distance": int(d)}, i, good, bad)


def _last_words(data: TokenStream, opts: dict[str, Any], rng: np.random.Generator, add: AddPair) -> None:
    """The last word taken from another sentence: breaks agreement with the start of a long sentence (the
    synthetic corpus's matching closer), which a short n-gram window cannot see."""
    candidates = np.flatnonzero(np.diff(data.offsets) > 1)
    lasts = (
        np.array([data.line(i)[-1] for i in candidates]) if len(candidates) else np.zeros(0, dtype=np.int64)
    )
    for i in (
        rng.choice(candidates, size=min(opts["sentences"], len(candidates)), replace=False)
        if len(candidates)
        else []
    ):
        good = data.line(i).copy()
        others = lasts[lasts != good[-1]]
        if len(others):
            bad = good.copy()
            bad[-1] = int(rng.choice(others))
            add({"corruption": "last-word"}, i, good, bad)


def _replacements(
    data: TokenStream, vocab, opts: dict[str, Any], rng: np.random.Generator, add: AddPair
) -> None:
    """A word replaced by a neighbour in training-frequency rank (similar frequency), never a special token
    or the same word."""
    counts = np.array([vocab.counts.get(t, 0) for t in vocab.tokens])
    order = np.argsort(counts, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    candidates = np.flatnonzero(np.diff(data.offsets) > 0)
    for i in rng.choice(candidates, size=min(opts["sentences"], len(candidates)), replace=False):
        good = data.line(i).copy()
        j = int(rng.integers(len(good)))
        r = rank[good[j]]
        for offset in rng.permutation(np.r_[-5:0, 1:6]):
            k = order[np.clip(r + offset, 0, len(order) - 1)]
            if k > 2 and k != good[j]:
                bad = good.copy()
                bad[j] = k
                add({"corruption": "replace"}, i, good, bad)
                break


def corpus_line_oov(corpus: TokenizedCorpus, data: TokenStream) -> Callable[[int], bool] | None:
    """Whether a line of the split held a word outside the vocabulary, from its raw text (a literal ``<unk>``
    in WikiText or PTB is the vocabulary entry, not OOV); None where the raw lines were not kept."""
    if data.raw_lines is None:
        return None
    vocab, tokenizer = corpus.vocab, corpus.tokenizer
    return lambda i: any(t not in vocab for t in tokenizer.tokenize(data.raw_lines[i]))


def read_pair_file(path: Path) -> list[dict[str, Any]]:
    """Items of a JSONL pair file, checked: ``good``/``bad`` or BLiMP's ``sentence_good``/``sentence_bad``
    strings, optional ``UID`` / ``linguistics_term`` (or ``phenomenon``) strings; errors name file and line."""
    return pair_file(path).contents


def pair_file(path: Path) -> TaskFile:
    """:func:`read_pair_file`'s file as the task keeps it: its items and the sha256 of the bytes read."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: pair file not found")
    data, sha256 = read_task_file(path)
    try:
        text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").read()  # decoded as read_text() would
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: invalid UTF-8 at byte offset {e.start}") from None
    return TaskFile(path, sha256, _pair_items(path, text))


def _pair_items(path: Path, text: str) -> list[dict[str, Any]]:
    """The checked items of a pair file's text (see :func:`read_pair_file`)."""
    items = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(item, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(item).__name__}")
        good = next((item[k] for k in GOOD_KEYS if k in item), None)
        bad = next((item[k] for k in BAD_KEYS if k in item), None)
        if not isinstance(good, str) or not isinstance(bad, str) or not good.strip() or not bad.strip():
            raise DataError(
                f"{path}:{lineno}: expected non-empty 'good'/'bad' (or BLiMP's 'sentence_good'/'sentence_bad') strings"
            )
        for key in ("UID", "linguistics_term", "phenomenon"):
            if key in item and not isinstance(item[key], str):
                raise DataError(f"{path}:{lineno}: '{key}' must be a string, got {item[key]!r}")
        phenomenon = item.get("linguistics_term") or item.get("phenomenon") or ""
        items.append({"good": good, "bad": bad, "phenomenon": phenomenon, "paradigm": item.get("UID", "")})
    if not items:
        raise DataError(f"{path}: pair file is empty")
    return items


def add_file_pairs(
    pairs: PairSet,
    items: list[dict[str, Any]],
    label: str,
    corpus: TokenizedCorpus,
    tokenizer: Tokenizer,
    skip_oov: bool,
) -> None:
    """Tokenize a pair file's sentences (its :func:`read_pair_file` items) the corpus's way; a literal
    ``<unk>`` is the vocabulary entry, not OOV."""
    vocab = corpus.vocab
    for item in items:
        good, bad = tokenizer.tokenize(item["good"]), tokenizer.tokenize(item["bad"])
        oov_good = Counter(t for t in good if t not in vocab)
        oov_bad = Counter(t for t in bad if t not in vocab)
        if skip_oov and oov_good != oov_bad:
            pairs.skipped[label] += 1
            continue
        group = {"file": label, "phenomenon": item["phenomenon"], "paradigm": item["paradigm"]}
        pairs.add(group, vocab.encode(good), vocab.encode(bad), bool(oov_good or oov_bad))


def check_options(opts: dict[str, Any]) -> None:
    """Option values (keys are checked by ``options``)."""
    if opts["oov"] not in ("score", "skip"):
        raise ConfigError(f"tasks.{NAME}.oov: expected 'score' or 'skip', got {opts['oov']!r}")
    if opts["tokenizer"] is not None and opts["tokenizer"] not in TOKENIZERS:
        raise ConfigError(
            f"tasks.{NAME}.tokenizer: unknown tokenizer {opts['tokenizer']!r}; expected one of {', '.join(sorted(TOKENIZERS))}"
        )
    tolerance = opts["tie_tolerance"]
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 1:
        raise ConfigError(f"tasks.{NAME}.tie_tolerance: expected a number in [0, 1), got {tolerance!r}")
    if not isinstance(opts["files"], list) or not all(isinstance(f, str) for f in opts["files"]):
        raise ConfigError(f"tasks.{NAME}.files: expected a list of file names")


def load_inputs(opts: dict[str, Any], model_names: Sequence[str] = ()) -> TaskInputs:
    """Every input checked before any training and read once: option values and every pair file (exists,
    parses). :func:`run` receives what this returns."""
    check_options(opts)
    return {str(file): pair_file(Path(file)) for file in opts["files"]}


def validate(opts: dict[str, Any], model_names: Sequence[str] = ()) -> None:
    """Every input checked before any training (:func:`load_inputs`, its result dropped)."""
    load_inputs(opts, model_names)


def tied(good: np.ndarray, bad: np.ndarray, tolerance: float) -> np.ndarray:
    """Pairs whose totals agree within ``tolerance`` relative to the larger magnitude (or are both -inf)."""
    with np.errstate(invalid="ignore"):
        close = np.abs(good - bad) <= tolerance * np.maximum(np.abs(good), np.abs(bad))
    return close | (good == bad)


def _groups(pairs: PairSet) -> list[tuple[dict[str, Any], np.ndarray]]:
    """Row groups in first-appearance order: corruption/distance, then each file by paradigm, by phenomenon,
    and whole; a group with exactly the pairs of one already listed is not repeated. A file's last group
    is its whole file (phenomenon "all" unless it is one named phenomenon)."""
    keys = [tuple(g.items()) for g in pairs.groups]
    index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    codes = np.array([index[k] for k in keys])
    out: list[tuple[dict[str, Any], np.ndarray]] = []
    by_members: dict[bytes, int] = {}  # the pairs of a listed group -> its index in out

    def emit(group: dict[str, Any], mask: np.ndarray) -> None:
        members = np.flatnonzero(mask).tobytes()
        if mask.any() and members not in by_members:
            by_members[members] = len(out)
            out.append((group, mask))

    for key, i in index.items():
        emit(dict(key), codes == i)
    files = np.array([g.get("file", "") for g in pairs.groups])
    phenomena = np.array([g.get("phenomenon", "") for g in pairs.groups])
    for file in dict.fromkeys(f for f in files if f):
        in_file = files == file
        for phenomenon in dict.fromkeys(phenomena[in_file]):
            if phenomenon:
                emit({"file": file, "phenomenon": phenomenon}, in_file & (phenomena == phenomenon))
        emit({"file": file, "phenomenon": "all"}, in_file)
        group = out[by_members[np.flatnonzero(in_file).tobytes()]][0]
        if not group.get("phenomenon"):
            group["phenomenon"] = "all"
    return out


def run(
    config: dict[str, Any],
    models: dict[str, ModelEntry],
    corpus: TokenizedCorpus,
    *,
    seed: int,
    bootstrap: int,
    inputs: TaskInputs | None = None,
) -> TaskResults:
    """Accuracy per group of pairs (corruption and distance, each file by paradigm, phenomenon and whole) for
    every model. ``inputs``: the pair files as :func:`load_inputs` read them (read here where not given)."""
    opts = options(NAME, config, DEFAULTS)
    check_options(opts)
    data = corpus.split(opts["split"])
    pairs = make_pairs(data, corpus.vocab, opts, seed, corpus_line_oov(corpus, data))
    tokenizer = text_tokenizer(corpus, opts["tokenizer"])
    labels = file_labels(opts["files"])
    if inputs is None:
        inputs = load_inputs(opts)
    for file in opts["files"]:
        items = inputs[str(file)].contents
        add_file_pairs(pairs, items, labels[file], corpus, tokenizer, opts["oov"] == "skip")
    if not pairs.good:
        raise DataError(f"tasks.{NAME}: no pairs could be made from the {opts['split']} split or the files")
    groups = _groups(pairs)
    lines = (TokenStream.from_ids(pairs.good, corpus.vocab), TokenStream.from_ids(pairs.bad, corpus.vocab))
    rows = []
    for name, entry in models.items():
        rows += _model_rows(name, entry, pairs, groups, lines, opts, list(labels.values()), bootstrap, seed)
    return TaskResults(rows)


def _model_rows(
    name: str, entry: ModelEntry, pairs: PairSet, groups: list[tuple[dict[str, Any], np.ndarray]],
    lines: tuple[TokenStream, TokenStream], opts: dict[str, Any], files: list[str], bootstrap: int, seed: int,
) -> list[TaskRow]:  # fmt: skip
    """One model's accuracy row per group of :func:`_groups` (ties counted half), and a row for each file
    whose every pair was skipped; ``lines``: the good and the bad sentences."""
    has_oov = np.array(pairs.has_oov)
    skip = opts["oov"] == "skip"
    whole_file = {g["file"]: i for i, (g, _) in enumerate(groups) if g.get("file")}  # a file's last group
    good = sentence_totals(entry.model, lines[0])
    bad = sentence_totals(entry.model, lines[1])
    tie = tied(good, bad, opts["tie_tolerance"])
    correct = np.where(tie, 0.5, (good > bad).astype(np.float64))  # a tie counts half
    rows = []
    for i, (group, mask) in enumerate(groups):
        file = group.get("file", "")
        rows.append(
            metric_row(
                name,
                NAME,
                "accuracy",
                correct[mask],
                bootstrap=bootstrap,
                seed=seed,
                ties=int(tie[mask].sum()),
                oov_items=int(has_oov[mask].sum()),
                skipped=pairs.skipped[file] if skip and whole_file.get(file) == i else None,
                **group,
            )  # fmt: skip
        )
    for file in files:  # a file whose every pair was skipped still gets its row
        if file not in whole_file and pairs.skipped[file]:
            rows.append(TaskRow(name, NAME, "accuracy", float("nan"), file=file, phenomenon="all",
                                ties=0, oov_items=0, skipped=pairs.skipped[file]))  # fmt: skip
    return rows
