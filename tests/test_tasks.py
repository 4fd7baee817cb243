"""Downstream tasks through the protocol alone: next-word, minimal pairs, classification, generation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmbench.data import Corpus, get_tokenizer, tokenize_corpus
from lmbench.errors import ConfigError
from lmbench.models.base import Budget
from lmbench.models.ngram import NgramLM
from lmbench.models.registry import create_model
from lmbench.tasks import ModelEntry, run_tasks, validate_task_configs
from lmbench.tasks.generate import distinct_n, repetition_rate

LINES = ["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog", "the cat was on the log"] * 10


@pytest.fixture(scope="module")
def corpus():
    text = "\n".join(LINES) + "\n"
    return tokenize_corpus(Corpus.from_texts("t", text, text, text), get_tokenizer("whitespace"))


def entries(corpus, **models):
    return {
        name: ModelEntry(model=NgramLM(**params).fit(corpus.train), factory=lambda p=params: NgramLM(**p))
        for name, params in models.items()
    }


def test_next_word_ranks_by_hand(corpus):
    rows, errors = run_tasks(
        {"next-word": {"max_tokens": 10_000}},
        entries(corpus, kn=dict(order=3)),
        corpus,
        seed=0,
        bootstrap=100,
    )
    assert not errors
    values = {r["metric"]: r for r in rows}
    assert 0 < values["top1"]["value"] <= values["top5"]["value"] <= 1
    assert values["top1"]["low"] <= values["top1"]["value"] <= values["top1"]["high"]
    assert values["top1"]["n"] == corpus.test.num_predicted


def test_minimal_pairs_by_distance_and_user_files(corpus, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"good": "the cat sat on the mat", "bad": "mat the on sat cat the"}) + "\n"
                     + json.dumps({"sentence_good": "a cat saw a dog", "sentence_bad": "a saw cat a dog", "UID": "word_order"}) + "\n")  # fmt: skip
    config = {"sentences": 20, "distances": [1, 2, 4], "files": [str(pairs)]}
    rows, errors = run_tasks(
        {"minimal-pairs": config},
        entries(corpus, uni=dict(order=1), tri=dict(order=3)),
        corpus,
        seed=0,
        bootstrap=50,
    )
    assert not errors
    by = {(r["model"], r["detail"]): r["value"] for r in rows}
    # a unigram model is blind to word order: swaps are ties (accuracy 0.5); a trigram sees them
    assert by[("uni", "corruption=swap;distance=1")] == pytest.approx(0.5)
    assert by[("tri", "corruption=swap;distance=1")] > 0.9
    assert by[("tri", "file=pairs.jsonl;phenomenon=word_order")] == 1.0


def test_empty_pair_file_is_a_one_line_error_and_other_tasks_still_run(corpus, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    rows, errors = run_tasks(
        {"minimal-pairs": {"sentences": 5, "files": [str(empty)]}, "next-word": {"max_tokens": 20}},
        entries(corpus, kn=dict(order=2)), corpus, seed=0, bootstrap=10,
    )  # fmt: skip
    assert len(errors) == 1 and "empty.jsonl" in errors[0] and "empty" in errors[0]
    assert {r["task"] for r in rows} == {"next-word"}


def test_classify_generative_ngram_and_feature_based_neural(corpus, tmp_path):
    rng = np.random.default_rng(0)
    pos = ["good great fine nice film", "great nice good film", "fine good great movie"]
    neg = ["bad awful poor dull film", "awful bad dull movie", "poor bad awful film"]
    rows = [(t, 1) for t in pos * 10] + [(t, 0) for t in neg * 10]
    rng.shuffle(rows)
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    text = "\n".join(pos + neg) + "\n"
    data = tokenize_corpus(Corpus.from_texts("c", text, text, text), get_tokenizer("whitespace"))
    models = {
        "bigram": ModelEntry(NgramLM(2).fit(data.train), lambda: NgramLM(2, "witten-bell")),
        "gru": ModelEntry(
            create_model("gru", emb_size=8, hidden_size=8, layers=1, batch_size=4, seq_len=8).fit(
                data.train, budget=Budget(epochs=1)
            ),
            lambda: create_model("gru", emb_size=8, hidden_size=8, layers=1, batch_size=4, seq_len=8),
            Budget(epochs=1),
        ),
    }
    out, errors = run_tasks(
        {"classify": {"train": str(path), "test": str(path)}}, models, data, seed=0, bootstrap=50
    )
    assert not errors
    acc = {(r["model"], r["metric"], r["detail"]): r["value"] for r in out}
    assert acc[("bigram", "accuracy", "method=generative")] == 1.0
    assert ("gru", "accuracy", "method=features") in acc  # neural models expose pooled hidden states
    assert not any(k[0] == "bigram" and k[2] == "method=features" for k in acc)  # n-grams expose none


def test_classify_data_problems_are_one_line(corpus, tmp_path):
    one_class = tmp_path / "one.csv"
    one_class.write_text("sentence,label\na cat,1\na dog,1\n")
    no_label = tmp_path / "nolabel.csv"
    no_label.write_text("sentence,stars\na cat,1\n")
    m = entries(corpus, kn=dict(order=2))
    _, errors = run_tasks(
        {"classify": {"train": str(one_class), "test": str(one_class)}}, m, corpus, seed=0, bootstrap=0
    )
    assert "only one class" in errors[0]
    _, errors = run_tasks(
        {"classify": {"train": str(no_label), "test": str(no_label)}}, m, corpus, seed=0, bootstrap=0
    )
    assert "no column 'label'" in errors[0]


def test_generate_is_seeded_and_measured(corpus):
    m = entries(corpus, kn=dict(order=3), uni=dict(order=1))
    config = {"samples": 4, "max_tokens": 10, "reference": "kn"}
    a, _ = run_tasks({"generate": config}, m, corpus, seed=1, bootstrap=0)
    b, _ = run_tasks({"generate": config}, m, corpus, seed=1, bootstrap=0)
    assert [r["detail"] for r in a if r["metric"] == "sample"] == [
        r["detail"] for r in b if r["metric"] == "sample"
    ]
    ref = {r["model"]: r["value"] for r in a if r["metric"] == "reference-perplexity"}
    assert ref["kn"] < ref["uni"]  # the reference finds its own samples likelier than a unigram's
    assert distinct_n([[1, 2, 3], [1, 2, 4]], 1) == pytest.approx(4 / 6)
    assert repetition_rate([1, 2, 3, 4, 1, 2, 3, 4]) == pytest.approx(1 / 5)


def test_task_config_validation():
    with pytest.raises(ConfigError, match="unknown task"):
        validate_task_configs({"poetry": {}})
    with pytest.raises(ConfigError, match="unknown key"):
        validate_task_configs({"next-word": {"beam": 3}})
