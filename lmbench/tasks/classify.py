"""Text classification through language models, beside the baselines a practitioner would run first.

Generative (every family): one model per class, trained on that class's training texts with the shared
vocabulary; a text goes to argmax_c log P(c) + log P(text | model_c) (Bayes rule, priors from the whole
training set). Feature-based (where the model exposes ``sentence_features``, e.g. mean-pooled hidden states
of neural models): standardised features and a logistic regression whose regularisation is chosen on a
held-out slice of the training data; with ``features = "auto"`` (the default) it is dropped where it does not
reach the TF-IDF baseline on that slice, and the model's generative row says so. Baselines on the same split (scikit-learn defaults): MultinomialNB on
word counts and logistic regression on TF-IDF. Accuracy and macro-F1 with bootstrap intervals over test items.

All data is used unless ``max_train`` (per class) or ``max_test`` cut it; a cut is stated in the row.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.data.corpus import TokenizedCorpus, TokenStream
from lmbench.data.tokenizers import TOKENIZERS, Tokenizer
from lmbench.data.vocabulary import Vocabulary
from lmbench.errors import ConfigError, DataError
from lmbench.models.base import LanguageModel
from lmbench.results import TaskResults, TaskRow
from lmbench.tasks.base import (
    ModelEntry,
    TaskFile,
    TaskInputs,
    file_labels,
    options,
    read_task_file,
    sentence_totals,
    text_tokenizer,
)

NAME = "classify"
SHARED_ROWS_OPTION = "baselines"  # rows that need no model: computed once per run, apart from the models
FILE_OPTIONS = ("train", "test")  # options naming files (resolved against the config's folder)
DEFAULTS = {"train": None, "test": None, "text_column": "sentence", "label_column": "label", "max_train": None,
            "max_test": None, "features": "auto", "baselines": True, "tokenizer": None, "vocabulary": "task"}  # fmt: skip
VOCABULARIES = (
    "task",
    "corpus",
)  # per-class models' vocabulary: the task's own training texts, or the corpus's
OOV_WARNING = 0.05  # a test OOV rate above this gets a warning on the console and in the report
FEATURE_C = (0.01, 0.1, 1.0, 10.0)  # regularisation strengths tried on the held-out slice
HELD_OUT = 0.1  # share of the training data that chooses C for the feature classifier


@dataclass
class Labelled:
    """Texts and their labels (stripped strings), as read from one file."""

    path: Path
    texts: list[str]
    labels: np.ndarray  # object array of str

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, idx: np.ndarray) -> Labelled:
        return Labelled(self.path, [self.texts[i] for i in idx], self.labels[idx])


def read_labelled(path: str | Path, text_column: str, label_column: str) -> Labelled:
    """CSV or TSV (by extension) with a header naming a text and a label column; every row must have the
    header's number of fields (a malformed row is an error naming file and line, never a shifted column)."""
    return labelled_file(path, text_column, label_column).contents


def labelled_file(path: str | Path, text_column: str, label_column: str) -> TaskFile:
    """:func:`read_labelled`'s file as the task keeps it: its rows and the sha256 of the bytes read (once)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: labelled data file not found")
    data, sha256 = read_task_file(path)
    tsv = path.suffix.lower() in (".tsv", ".tab")
    kind = "TSV" if tsv else "CSV"
    try:
        with io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="") as f:  # decoded as open() would
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else csv.reader(f)
            texts, labels = _labelled_rows(path, reader, text_column, label_column, tsv)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: invalid UTF-8 at byte offset {e.start}") from None
    except csv.Error as e:
        raise DataError(f"{path}: cannot read as {kind} ({e})") from None
    if not texts:
        raise DataError(f"{path}: no rows")
    return TaskFile(path, sha256, Labelled(path, texts, np.array(labels, dtype=object)))


def _labelled_rows(
    path: Path, reader: Any, text_column: str, label_column: str, tsv: bool
) -> tuple[list[str], list[str]]:
    """The texts and (stripped) labels of a labelled file's rows, checked against its header."""
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: empty file (expected a header line)")
    header = [h.strip() for h in header]
    for column in (text_column, label_column):
        if column not in header:
            raise DataError(f"{path}: no column {column!r} (columns: {', '.join(header)})")
    t, y = header.index(text_column), header.index(label_column)
    texts, labels = [], []
    for row in reader:
        if not row or row == [""]:
            continue
        if len(row) != len(header):
            raise DataError(
                f"{path}:{reader.line_num}: {len(row)} fields, expected {len(header)} as in the header"
                f" ({'TSV' if tsv else 'CSV'}{'; a tab inside a text?' if tsv else ''})"
            )
        label = row[y].strip()
        if not label:
            raise DataError(f"{path}:{reader.line_num}: empty label")
        texts.append(row[t])
        labels.append(label)
    return texts, labels


def check_labels(train: Labelled, test: Labelled) -> list[str]:
    """The classes (sorted); test labels must all be training labels, compared as stripped strings."""
    classes = sorted(set(train.labels))
    if len(classes) < 2:
        raise DataError(f"{train.path}: only one class ({classes[0]!r}); classification needs at least two")
    unknown = sorted(set(test.labels) - set(classes))
    if unknown:
        raise DataError(
            f"{test.path}: labels {', '.join(map(repr, unknown[:5]))} do not occur in {train.path} "
            f"(its labels: {', '.join(map(repr, classes[:10]))})"
        )
    return classes


def _check_options(opts: dict[str, Any]) -> None:
    if not opts["train"] or not opts["test"]:
        raise ConfigError(f"tasks.{NAME}: 'train' and 'test' files are required")
    if opts["vocabulary"] not in VOCABULARIES:
        raise ConfigError(
            f"tasks.{NAME}.vocabulary: expected one of {', '.join(map(repr, VOCABULARIES))}, got {opts['vocabulary']!r}"
        )
    if opts["features"] not in (True, False, "auto"):
        raise ConfigError(f'tasks.{NAME}.features: expected true, false or "auto", got {opts["features"]!r}')
    for key in ("max_train", "max_test"):
        value = opts[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"tasks.{NAME}.{key}: expected a positive integer, got {value!r}")
    if opts["tokenizer"] is not None and opts["tokenizer"] not in TOKENIZERS:
        raise ConfigError(
            f"tasks.{NAME}.tokenizer: unknown tokenizer {opts['tokenizer']!r}; expected one of {', '.join(sorted(TOKENIZERS))}"
        )


def load_inputs(opts: dict[str, Any], model_names: Sequence[str] = ()) -> TaskInputs:
    """Every input checked before any training and read once: options, both files (exist, parse) and their
    labels. :func:`run` receives what this returns."""
    _check_options(opts)
    files = {
        key: labelled_file(opts[key], opts["text_column"], opts["label_column"]) for key in ("train", "test")
    }
    check_labels(files["train"].contents, files["test"].contents)
    return {str(opts[key]): file for key, file in files.items()}


def validate(opts: dict[str, Any], model_names: Sequence[str] = ()) -> None:
    """Every input checked before any training (:func:`load_inputs`, its result dropped)."""
    load_inputs(opts, model_names)


def _cut(train: Labelled, test: Labelled, opts: dict[str, Any], seed: int) -> tuple[Labelled, Labelled, str]:
    """Apply ``max_train`` (per class) and ``max_test``; the note says what was cut (empty: nothing)."""
    rng = np.random.default_rng(seed)
    notes = []
    if opts["max_train"] is not None:
        keep = []
        for label in sorted(set(train.labels)):
            idx = np.flatnonzero(train.labels == label)
            keep.append(
                rng.choice(idx, size=opts["max_train"], replace=False)
                if len(idx) > opts["max_train"]
                else idx
            )
        keep = np.sort(np.concatenate(keep))
        if len(keep) < len(train):
            notes.append(
                f"train cut to {len(keep):,} of {len(train):,} (max_train = {opts['max_train']:,} per class)"
            )
            train = train.take(keep)
    if opts["max_test"] is not None and len(test) > opts["max_test"]:
        notes.append(f"test cut to {opts['max_test']:,} of {len(test):,} (max_test)")
        test = test.take(np.sort(rng.choice(len(test), size=opts["max_test"], replace=False)))
    return train, test, "; ".join(notes)


def fit_class_model(entry: ModelEntry, texts: TokenStream) -> LanguageModel:
    """A fresh model of ``entry``'s kind trained on one class's texts (the one place per-class models are made):
    the experiment's factory gives it the model's settings and seed, and ``entry.budget`` is already resolved."""
    return entry.factory().fit(texts, budget=entry.budget)


def _f1_macro(truth: np.ndarray, pred: np.ndarray, labels: list) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, pred, labels=labels, average="macro", zero_division=0))


def _scores(
    name: str, method: str, truth: np.ndarray, pred: np.ndarray, labels: list, bootstrap: int, seed: int,
    **fields: Any,
) -> list[TaskRow]:  # fmt: skip
    rng = np.random.default_rng(seed)
    acc = float((truth == pred).mean())
    f1 = _f1_macro(truth, pred, labels)
    samples_acc, samples_f1 = [], []
    for _ in range(bootstrap):
        idx = rng.integers(0, len(truth), len(truth))
        samples_acc.append((truth[idx] == pred[idx]).mean())
        samples_f1.append(_f1_macro(truth[idx], pred[idx], labels))
    out = []
    for metric, value, samples in (("accuracy", acc, samples_acc), ("macro-f1", f1, samples_f1)):
        low, high = np.quantile(samples, [0.025, 0.975]) if samples else (float("nan"), float("nan"))
        out.append(TaskRow(name, NAME, metric, value, float(low), float(high), int(len(truth)), method=method,
                           **fields))  # fmt: skip
    return out


def baseline_predictions(train: Labelled, test: Labelled, seed: int) -> dict[str, np.ndarray]:
    """What a practitioner runs first (scikit-learn defaults): MultinomialNB on word counts, logistic
    regression on TF-IDF."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    pipelines = {
        "naive-bayes (word counts)": make_pipeline(CountVectorizer(), MultinomialNB()),
        "logistic regression (tf-idf)": make_pipeline(
            TfidfVectorizer(), LogisticRegression(max_iter=1000, random_state=seed)
        ),
    }
    return {name: p.fit(train.texts, train.labels).predict(test.texts) for name, p in pipelines.items()}


@dataclass
class FeatureClassifier:
    """The fitted feature classifier and how it did on the held-out slice, beside the TF-IDF baseline there."""

    model: Any
    c: float
    held_out_accuracy: float  # nan where the training data is too small to hold a slice out
    baseline_accuracy: float


def feature_classifier(train_x: np.ndarray, train: Labelled, seed: int) -> FeatureClassifier:
    """Standardised features and logistic regression with C chosen on a held-out slice of the training data
    (stratified), refitted on all of it; the TF-IDF baseline is scored on the same slice for comparison."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def make(c: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))

    y = train.labels
    counts = np.unique(y, return_counts=True)[1]
    best_c, held_acc, baseline_acc = 1.0, float("nan"), float("nan")
    if counts.min() >= 2 and len(y) * HELD_OUT >= len(counts):
        fit, held = train_test_split(np.arange(len(y)), test_size=HELD_OUT, random_state=seed, stratify=y)
        scores = [(make(c).fit(train_x[fit], y[fit]).score(train_x[held], y[held]), c) for c in FEATURE_C]
        held_acc, best_c = max(scores, key=lambda s: (s[0], -s[1]))  # ties: the stronger regularisation
        texts = np.array(train.texts, dtype=object)
        baseline = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000, random_state=seed))
        baseline_acc = baseline.fit(texts[fit], y[fit]).score(texts[held], y[held])
    return FeatureClassifier(make(best_c).fit(train_x, y), best_c, float(held_acc), float(baseline_acc))


def task_vocabulary(texts: Sequence[str], tokenizer: Tokenizer, corpus: TokenizedCorpus) -> Vocabulary:
    """The vocabulary of the task's own training texts (all classes together), by the corpus's ``min_count``
    rule: a corpus whose words do not cover the task's would turn every word into ``<unk>``."""
    return Vocabulary.build((tokenizer.tokenize(t) for t in texts), min_count=corpus.min_count)


def oov_rate(lines: Sequence[np.ndarray], vocab: Vocabulary) -> float:
    """Share of the words of ``lines`` (ids, ``</s>`` not included) that are ``<unk>``."""
    words = np.concatenate([np.asarray(line) for line in lines]) if lines else np.empty(0)
    return float((words == vocab.unk_id).mean()) if len(words) else 0.0


def _warnings(rate: float, which: str, pred: np.ndarray) -> str:
    """What makes a classifier's figures suspect: many unknown test words, or one class for every text."""
    out = []
    if rate > OOV_WARNING:
        out.append(
            f"{rate:.0%} of the test words are outside the {which} vocabulary (scored as <unk>)"
            + (
                '; vocabulary = "task" builds one from the task\'s training texts'
                if which == "corpus"
                else ""
            )
        )
    classes = set(pred.tolist())
    if len(classes) == 1:
        out.append(
            f"predicts {next(iter(classes))!r} for every text: the majority-class rate, nothing learned"
        )
    return "; ".join(out)


@dataclass
class _Prepared:
    """The task's data as every model meets it: classes and priors, the (cut) splits, the vocabulary of the
    per-class models, the test texts in both id spaces and each class's training texts as a stream."""

    labels: list[str]
    priors: np.ndarray  # log P(class), from the whole training set
    train: Labelled
    test: Labelled
    cut: str  # what max_train / max_test cut (empty: nothing)
    common: dict[str, Any]  # TaskRow fields of every row
    which: str  # whose vocabulary the per-class models use: "corpus" or "task"
    vocab_note: str
    test_ids: list[np.ndarray]  # the corpus's ids (what the fitted models read)
    test_stream: TokenStream  # the per-class models' ids
    rate: float  # the test texts' OOV rate in the per-class models' vocabulary
    class_streams: list[TokenStream]
    encode: Any  # texts -> the corpus's ids


def run(
    config: dict[str, Any],
    models: dict[str, ModelEntry],
    corpus: TokenizedCorpus,
    *,
    seed: int,
    bootstrap: int,
    inputs: TaskInputs | None = None,
) -> TaskResults:
    """The baselines' rows, then per model its generative rows and (where it has sentence features) its
    feature classifier's. ``inputs``: the files as :func:`load_inputs` read them (read here if not given)."""
    opts = options(NAME, config, DEFAULTS)
    _check_options(opts)
    if inputs is None:
        inputs = load_inputs(opts)
    p = _prepare(inputs[str(opts["train"])].contents, inputs[str(opts["test"])].contents, opts, corpus, seed)
    rows: list[TaskRow] = []
    if opts["baselines"]:
        for name, pred in baseline_predictions(p.train, p.test, seed).items():
            rows += _scores(name, "baseline", p.test.labels, pred, p.labels, bootstrap, seed, **p.common)
    for name, entry in models.items():
        generative = _generative_rows(name, entry, p, bootstrap, seed)
        rows += generative
        if opts["features"]:
            rows += _feature_rows(name, entry, p, generative, corpus, auto=opts["features"] == "auto",
                                  bootstrap=bootstrap, seed=seed)  # fmt: skip
    return TaskResults(rows)


def _prepare(
    full_train: Labelled, full_test: Labelled, opts: dict[str, Any], corpus: TokenizedCorpus, seed: int
) -> _Prepared:
    """Check the labels, cut the splits, choose the vocabulary and encode the texts, once for every model."""
    labels = check_labels(full_train, full_test)
    priors = np.log(
        np.array([(full_train.labels == c).mean() for c in labels])
    )  # from the whole training set
    train, test, cut = _cut(full_train, full_test, opts, seed)
    file = file_labels([opts["test"]])[opts["test"]]
    tokenizer = text_tokenizer(corpus, opts["tokenizer"])
    which = "corpus" if opts["vocabulary"] == "corpus" else "task"
    vocab = corpus.vocab if which == "corpus" else task_vocabulary(train.texts, tokenizer, corpus)
    own = lambda texts: [vocab.encode(tokenizer.tokenize(t)) for t in texts]  # noqa: E731 (per-class models)
    test_own = own(test.texts)
    vocab_note = (
        f"vocabulary: the corpus's ({len(vocab):,} entries)" if which == "corpus"
        else f"vocabulary: the task's training texts ({len(vocab):,} entries, min_count {corpus.min_count})"
    )  # fmt: skip
    encode = lambda texts: [corpus.encode_text(t, tokenizer) for t in texts]  # noqa: E731 (the corpus's ids)
    return _Prepared(
        labels=labels, priors=priors, train=train, test=test, cut=cut,
        common={"file": file, "train_items": len(train), "detail": cut}, which=which, vocab_note=vocab_note,
        test_ids=encode(test.texts), test_stream=TokenStream.from_ids(test_own, vocab),
        rate=oov_rate(test_own, vocab), encode=encode,
        class_streams=[TokenStream.from_ids(own(np.array(train.texts, dtype=object)[train.labels == c]),
                                            vocab) for c in labels],
    )  # fmt: skip


def _generative_rows(name: str, entry: ModelEntry, p: _Prepared, bootstrap: int, seed: int) -> list[TaskRow]:
    """One model per class, trained on its texts; a text goes to argmax_c log P(c) + log P(text | c)."""
    scores = np.empty((len(p.test), len(p.labels)))
    tokens, seconds = 0, 0.0
    for j, stream in enumerate(p.class_streams):
        started = time.perf_counter()
        model = fit_class_model(entry, stream)
        seconds += time.perf_counter() - started
        tokens += int(getattr(model, "tokens_seen_", stream.num_predicted))
        scores[:, j] = sentence_totals(model, p.test_stream)
    pred = np.array(p.labels, dtype=object)[(scores + p.priors).argmax(axis=1)]
    cost = {
        "budget": entry.budget.describe() if entry.budget is not None else "",
        "train_tokens": tokens,
        "train_seconds": seconds,
        "oov_rate": p.rate,
        "warning": _warnings(p.rate, p.which, pred),
    }
    generative = {**p.common, "detail": "; ".join(filter(None, [p.cut, p.vocab_note]))}
    return _scores(name, "generative", p.test.labels, pred, p.labels, bootstrap, seed, **generative, **cost)


def _feature_rows(
    name: str, entry: ModelEntry, p: _Prepared, generative: list[TaskRow], corpus: TokenizedCorpus, *,
    auto: bool, bootstrap: int, seed: int,
) -> list[TaskRow]:  # fmt: skip
    """The feature classifier's rows, where the model has sentence features; with ``auto``, none where it does
    not reach the TF-IDF baseline on the held-out slice (said in the ``generative`` rows' detail)."""
    train_x = entry.model.sentence_features(p.encode(p.train.texts))
    if train_x is None:
        return []
    fc = feature_classifier(train_x, p.train, seed)
    held = f"held-out accuracy {fc.held_out_accuracy:.3f} vs tf-idf baseline {fc.baseline_accuracy:.3f}"
    if auto and fc.held_out_accuracy < fc.baseline_accuracy:
        for row in generative:  # said beside this model's generative figures
            row.detail = "; ".join(filter(None, [row.detail, f"feature classifier dropped: {held}"]))
        return []
    pred = fc.model.predict(entry.model.sentence_features(p.test_ids))
    note = f"mean-pooled states, standardised, C = {fc.c:g} chosen on {HELD_OUT:.0%} of train ({held})"
    corpus_rate = oov_rate(p.test_ids, corpus.vocab)  # the fitted model reads the corpus's ids
    return _scores(name, "features", p.test.labels, pred, p.labels, bootstrap, seed,
                   **{**p.common, "detail": "; ".join(filter(None, [p.cut, note]))}, oov_rate=corpus_rate,
                   warning=_warnings(corpus_rate, "corpus", pred))  # fmt: skip
