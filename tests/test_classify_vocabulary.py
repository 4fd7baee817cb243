"""Classification on held-out data whose words the corpus never saw: the per-class models read a vocabulary
built from the task's own training texts, so they match a scikit-learn naive Bayes; with the corpus's
vocabulary every word is <unk> and the result says so."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from lmbench.data import Corpus, get_tokenizer, tokenize_corpus
from lmbench.models.ngram import NgramLM
from lmbench.tasks import ModelEntry, run_tasks, task_warnings


def _words(rng: np.random.Generator, n: int, prefix: str) -> list[str]:
    """``n`` distinct made-up words (letters only, so no tokenizer splits them), none an English word."""
    letters = np.array(list("bcdfghjklmnpqrstvwxz"))
    out: set[str] = set()
    while len(out) < n:
        out.add(prefix + "".join(rng.choice(letters, size=int(rng.integers(3, 7)))))
    return sorted(out)


def spam_ham(seed: int = 0, n_train: int = 1200, n_test: int = 400) -> tuple[list, list]:
    """A spam/ham data set in the shape of SMS spam (15% spam): each message draws most words from a shared
    Zipf-distributed pool and the rest from its class's pool (the pools overlap by a third), so the classes
    are separable but not trivially; rare words of the test texts are absent from training."""
    rng = np.random.default_rng(seed)
    shared, ham, spam = _words(rng, 400, "o"), _words(rng, 200, "u"), _words(rng, 200, "y")
    spam = spam[:135] + ham[:65]  # a third of spam's pool is ham's too

    def zipf(n: int) -> np.ndarray:
        p = 1.0 / np.arange(1, n + 1)
        return p / p.sum()

    def message(label: str) -> str:
        own = spam if label == "spam" else ham
        words = []
        for _ in range(int(rng.integers(4, 18))):
            pool = shared if rng.random() < 0.7 else own
            words.append(pool[rng.choice(len(pool), p=zipf(len(pool)))])
        return " ".join(words)

    def draw(n: int) -> list[tuple[str, str]]:
        labels = np.where(rng.random(n) < 0.15, "spam", "ham")
        return [(message(y), y) for y in labels]

    return draw(n_train), draw(n_test)


def _write(path, rows) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["message", "category"])
        writer.writerows(rows)
    return str(path)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spam")
    train, test = spam_ham()
    return _write(folder / "train.csv", train), _write(folder / "test.csv", test), train, test


@pytest.fixture(scope="module")
def corpus():
    lines = ["the cat sat on the mat", "a dog saw the cat", "the dog sat on a log"] * 20
    text = "\n".join(lines) + "\n"
    return tokenize_corpus(Corpus.from_texts("c", text, text, text), get_tokenizer("whitespace"))


def _models(corpus):
    return {
        name: ModelEntry(
            NgramLM(order, "kneser-ney").fit(corpus.train), lambda o=order: NgramLM(o, "kneser-ney")
        )
        for name, order in (("unigram", 1), ("bigram", 2))
    }


def _config(train: str, test: str, **extra) -> dict:
    return {
        "classify": {
            "train": train,
            "test": test,
            "text_column": "message",
            "label_column": "category",
            **extra,
        }
    }


def test_a_corpus_that_covers_none_of_the_words_does_not_matter(held_out, corpus):
    train, test, train_rows, _ = held_out
    words = {w for text, _ in train_rows for w in text.split()}
    assert not words & set(corpus.vocab.tokens)  # the corpus knows none of the task's words
    result = run_tasks(_config(train, test), _models(corpus), corpus, seed=0, bootstrap=0)
    assert not result.errors
    accuracy = {r.model: r for r in result.rows if r.metric == "accuracy"}
    nb = accuracy["naive-bayes (word counts)"].value
    majority = np.mean([y == "ham" for _, y in held_out[3]])
    assert nb > majority + 0.05  # the data set is learnable
    for name in ("unigram", "bigram"):
        row = accuracy[name]
        assert abs(row.value - nb) <= 0.03, (name, row.value, nb)
        assert row.oov_rate < 0.05 and not row.warning  # the task's vocabulary covers its test words
        assert "vocabulary: the task's training texts" in row.detail


def test_the_corpus_vocabulary_warns_instead_of_reporting_the_majority_class_silently(held_out, corpus):
    train, test, _, test_rows = held_out
    result = run_tasks(
        _config(train, test, vocabulary="corpus"), _models(corpus), corpus, seed=0, bootstrap=0
    )
    accuracy = {r.model: r for r in result.rows if r.metric == "accuracy"}
    majority = np.mean([y == "ham" for _, y in test_rows])
    for name in ("unigram", "bigram"):
        row = accuracy[name]
        assert row.oov_rate == 1.0 and row.value == pytest.approx(majority)
        assert "100% of the test words are outside the corpus vocabulary" in row.warning
        assert "for every text" in row.warning
    lines = task_warnings(result.rows)
    assert sum("outside the corpus vocabulary" in w for w in lines) == 2  # one line per model, not per metric
