"""Text classification through language models.

Generative (every family): one model per class, trained on that class's training texts with the shared
vocabulary; a text goes to argmax_c log P(c) + log P(text | model_c) (Bayes rule with class priors).
Feature-based (where the model exposes ``sentence_features``, e.g. pooled hidden states of neural models):
scikit-learn logistic regression on those features. N-gram models expose no features, so they are scored
generatively only. Accuracy and macro-F1 with bootstrap intervals over test items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmbench.data.corpus import TokenizedCorpus, TokenStream
from lmbench.errors import ConfigError, DataError
from lmbench.tasks.base import ModelEntry, options

NAME = "classify"
DEFAULTS = {"train": None, "test": None, "text_column": "sentence", "label_column": "label", "max_train": 2000,
            "max_test": 1000, "features": True}  # fmt: skip


def read_labelled(path: str | Path, text_column: str, label_column: str) -> pd.DataFrame:
    """CSV or TSV (by extension) with a text and a label column; one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: labelled data file not found")
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        frame = pd.read_csv(path, sep=sep, quoting=3 if sep == "\t" else 0, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(
            f"{path}: cannot read as {'TSV' if sep == chr(9) else 'CSV'} ({str(e).splitlines()[0]})"
        ) from None
    for column in (text_column, label_column):
        if column not in frame.columns:
            raise DataError(f"{path}: no column {column!r} (columns: {', '.join(frame.columns)})")
    frame = frame[[text_column, label_column]].rename(columns={text_column: "text", label_column: "label"})
    if frame.empty:
        raise DataError(f"{path}: no rows")
    return frame


def _f1_macro(truth: np.ndarray, pred: np.ndarray, labels: list) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, pred, labels=labels, average="macro", zero_division=0))


def _scores(
    name: str, method: str, truth: np.ndarray, pred: np.ndarray, labels: list, bootstrap: int, seed: int
) -> list[dict]:
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
        out.append({"model": name, "task": NAME, "metric": metric, "value": value, "low": float(low),
                    "high": float(high), "n": int(len(truth)), "detail": f"method={method}"})  # fmt: skip
    return out


def run(
    config: dict[str, Any],
    models: dict[str, ModelEntry],
    corpus: TokenizedCorpus,
    *,
    seed: int,
    bootstrap: int,
) -> list[dict]:
    opts = options(NAME, config, DEFAULTS)
    if not opts["train"] or not opts["test"]:
        raise ConfigError(f"tasks.{NAME}: 'train' and 'test' files are required")
    train = read_labelled(opts["train"], opts["text_column"], opts["label_column"])
    test = read_labelled(opts["test"], opts["text_column"], opts["label_column"])
    labels = sorted(train["label"].unique())
    if len(labels) < 2:
        raise DataError(f"{opts['train']}: only one class ({labels[0]!r}); classification needs at least two")
    rng = np.random.default_rng(seed)
    train = pd.concat(
        [
            g.sample(n=min(len(g), opts["max_train"]), random_state=int(rng.integers(1 << 31)))
            for _, g in train.groupby("label")
        ]
    )
    if len(test) > opts["max_test"]:
        test = test.sample(n=opts["max_test"], random_state=seed)
    tok, vocab = corpus.tokenizer, corpus.vocab
    encode = lambda texts: [vocab.encode(tok.tokenize(t)) for t in texts]  # noqa: E731
    test_ids = encode(test["text"])
    test_stream = TokenStream.from_ids(test_ids, vocab)
    truth = test["label"].to_numpy()
    priors = np.log(train["label"].value_counts(normalize=True).reindex(labels).to_numpy())
    rows = []
    for name, entry in models.items():
        scores = np.empty((len(test), len(labels)))
        for j, label in enumerate(labels):
            texts = train.loc[train["label"] == label, "text"]
            class_stream = TokenStream.from_ids(encode(texts), vocab)
            model = entry.factory().fit(class_stream, budget=entry.budget)
            lp = model.token_logprobs(test_stream, context="sentence")
            scores[:, j] = np.add.reduceat(lp, test_stream.target_line_starts()) + priors[j]
        pred = np.array(labels, dtype=object)[scores.argmax(axis=1)]
        rows += _scores(name, "generative", truth, pred, labels, bootstrap, seed)
        if opts["features"]:
            train_features = entry.model.sentence_features(encode(train["text"]))
            if train_features is not None:
                from sklearn.linear_model import LogisticRegression

                clf = LogisticRegression(max_iter=1000, random_state=seed)
                clf.fit(train_features, train["label"].to_numpy())
                pred = clf.predict(entry.model.sentence_features(test_ids))
                rows += _scores(name, "features", truth, pred, labels, bootstrap, seed)
    return rows
