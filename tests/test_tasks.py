"""Downstream tasks through the protocol alone: next-word, minimal pairs, classification, generation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lmbench.data import Corpus, get_tokenizer, tokenize_corpus
from lmbench.errors import ConfigError, DataError
from lmbench.models.base import Budget
from lmbench.models.ngram import NgramLM
from lmbench.models.registry import create_model
from lmbench.tasks import ModelEntry, run_tasks, tie_warnings, validate_task_configs, validate_tasks
from lmbench.tasks.base import TIE_TOLERANCE
from lmbench.tasks.generate import distinct_n, repetition_rate
from lmbench.tasks.minimal_pairs import tied

LINES = ["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog", "the cat was on the log"] * 10


@pytest.fixture(scope="module")
def corpus():
    text = "\n".join(LINES) + "\n"
    return tokenize_corpus(Corpus.from_texts("t", text, text, text), get_tokenizer("whitespace"))


def rows_and_errors(result):
    """The figures and the error lines of a :class:`lmbench.results.TaskResults`."""
    return result.rows, result.errors


def entries(corpus, **models):
    return {
        name: ModelEntry(model=NgramLM(**params).fit(corpus.train), factory=lambda p=params: NgramLM(**p))
        for name, params in models.items()
    }


def test_next_word_ranks_by_hand(corpus):
    """A unigram ranks every context's candidates by count. Per 4 lines: the 6, </s> 4, cat 3, on 3, sat, dog,
    log, a 2 each, mat, saw, was 1 each (27 predictions); the truth's rank is 1 + the words counted more often
    (ties favour the truth): the 1, </s> 2, cat and on 3, the 2-count words 5, the 1-count words 9."""
    rows, errors = rows_and_errors(
        run_tasks(
            {"next-word": {"max_tokens": 10_000}},
            entries(corpus, kn=dict(order=3), uni=dict(order=1, smoothing="witten-bell")),
            corpus,
            seed=0,
            bootstrap=100,
        )
    )
    assert not errors
    unigram = {r.metric: r.value for r in rows if r.model == "uni"}
    assert unigram["top1"] == pytest.approx(6 / 27)
    assert unigram["top5"] == pytest.approx((6 + 4 + 3 + 3 + 4 * 2) / 27)
    assert unigram["mrr"] == pytest.approx((6 / 1 + 4 / 2 + 6 / 3 + 8 / 5 + 3 / 9) / 27)
    values = {r.metric: r for r in rows if r.model == "kn"}
    assert 0 < values["top1"].value <= values["top5"].value <= 1
    assert values["top1"].low <= values["top1"].value <= values["top1"].high
    assert values["top1"].n == corpus.test.num_predicted


def test_minimal_pairs_by_distance_and_user_files(corpus, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"good": "the cat sat on the mat", "bad": "mat the on sat cat the"}) + "\n"
                     + json.dumps({"sentence_good": "a cat saw a dog", "sentence_bad": "a saw cat a dog", "UID": "word_order"}) + "\n")  # fmt: skip
    config = {"sentences": 20, "distances": [1, 2, 4], "files": [str(pairs)], "tokenizer": "whitespace"}
    rows, errors = rows_and_errors(
        run_tasks(
            {"minimal-pairs": config},
            entries(corpus, uni=dict(order=1), tri=dict(order=3)),
            corpus,
            seed=0,
            bootstrap=50,
        )
    )
    assert not errors
    by = {(r.model, r.corruption, r.distance, r.file, r.paradigm, r.phenomenon): r for r in rows}
    # a unigram model is blind to word order: every swap is a tie (counted, and half in the accuracy)
    uni = by[("uni", "swap", 1, "", "", "")]
    assert uni.value == pytest.approx(0.5) and uni.ties == uni.n > 0
    tri = by[("tri", "swap", 1, "", "", "")]
    assert tri.value > 0.9 and tri.ties < tri.n
    assert by[("tri", "", None, "pairs.jsonl", "word_order", "")].value == 1.0
    # the file: one row per paradigm and one for the whole file, each once, never a string to parse
    file_rows = [(r.model, r.paradigm, r.phenomenon) for r in rows if r.file]
    assert len(file_rows) == len(set(file_rows)) == 2 * 3
    assert all("=" not in r.detail for r in rows)


def test_generated_pairs_count_oov_lines_but_not_a_literal_unk():
    train = "\n".join(["the <unk> sat on the mat", "the dog sat on the log"] * 5) + "\n"
    test = "the <unk> sat on the log\nthe zebra sat on the mat\n"
    data = tokenize_corpus(Corpus.from_texts("u", train, train, test), get_tokenizer("whitespace"))
    config = {"sentences": 2, "distances": [1], "last_word": False, "replace": False}
    rows, errors = rows_and_errors(
        run_tasks({"minimal-pairs": config}, entries(data, kn=dict(order=2)), data, seed=0, bootstrap=0)
    )
    assert not errors and [(r.n, r.oov_items) for r in rows] == [(2, 1)]  # the zebra line only


def test_float_noise_is_a_tie_and_a_real_difference_is_not():
    good = np.array([-40.0, -40.0, -np.inf, -40.0])
    bad = good + np.array([1.4e-14, 1e-6, 0.0, -1e-9 * 40 * 0.5])
    assert tied(good, bad, TIE_TOLERANCE).tolist() == [True, False, True, True]


BLIMP = [  # BLiMP's field layout, sentences in raw English
    {"sentence_good": "The cat saw herself.", "sentence_bad": "The cat saw himself.", "field": "morphology",
     "linguistics_term": "anaphor_agreement", "UID": "anaphor_gender_agreement", "simple_LM_method": True,
     "one_prefix_method": False, "two_prefix_method": False, "lexically_identical": False, "pairID": "0"},
    {"sentence_good": "The dog sat on the mat.", "sentence_bad": "The dog sat the on mat.", "field": "syntax",
     "linguistics_term": "word_order", "UID": "swap_order", "simple_LM_method": True,
     "one_prefix_method": False, "two_prefix_method": False, "lexically_identical": True, "pairID": "1"},
    {"sentence_good": "The cat sat on the log.", "sentence_bad": "The cat sat the on log.", "field": "syntax",
     "linguistics_term": "word_order", "UID": "swap_order", "simple_LM_method": True,
     "one_prefix_method": False, "two_prefix_method": False, "lexically_identical": True, "pairID": "2"},
    {"sentence_good": "A dog wasn't on the log.", "sentence_bad": "A dog wasn't the on log.", "field": "syntax",
     "linguistics_term": "word_order", "UID": "swap_order_negated", "simple_LM_method": True,
     "one_prefix_method": False, "two_prefix_method": False, "lexically_identical": True, "pairID": "3"},
]  # fmt: skip
WIKI_STYLE = ["The cat saw herself .", "The dog saw himself .", "The dog sat on the mat .", "A dog wasn 't on the log .",
              "The cat sat on the log .", "the <unk> sat on the mat ."] * 5  # fmt: skip


@pytest.fixture(scope="module")
def wiki_corpus():
    text = "\n".join(WIKI_STYLE) + "\n"
    data = tokenize_corpus(Corpus.from_texts("w", text, text, text), get_tokenizer("whitespace"))
    data.external_tokenizer = get_tokenizer("wikitext")
    return data


def _pair_rows(data, files, **options):
    config = {
        "distances": [],
        "last_word": False,
        "replace": False,
        "files": [str(f) for f in files],
        **options,
    }
    rows, errors = rows_and_errors(
        run_tasks({"minimal-pairs": config}, entries(data, tri=dict(order=3)), data, seed=0, bootstrap=0)
    )
    assert not errors, errors
    return rows


def test_blimp_file_tokenized_the_corpus_way_and_whitespace_damage_shows_as_ties(wiki_corpus, tmp_path):
    path = tmp_path / "blimp.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in BLIMP))
    good = _pair_rows(wiki_corpus, [path])  # the corpus's external tokenizer: wikitext
    whole = next(r for r in good if r.phenomenon == "all")
    assert whole.n == 4 and whole.ties == 0 and whole.oov_items == 0 and whole.value == 1.0
    # rows in file order: paradigm by paradigm, a phenomenon total where it spans two paradigms, the file
    assert [(r.phenomenon, r.paradigm) for r in good] == [
        ("anaphor_agreement", "anaphor_gender_agreement"), ("word_order", "swap_order"),
        ("word_order", "swap_order_negated"), ("word_order", ""), ("all", ""),
    ]  # fmt: skip
    raw = _pair_rows(wiki_corpus, [path], tokenizer="whitespace")
    whole = next(r for r in raw if r.phenomenon == "all")
    assert whole.oov_items == 4  # "herself." "mat." "log." "wasn't" are not WikiText words
    anaphor = next(r for r in raw if r.paradigm == "anaphor_gender_agreement")
    assert anaphor.ties == 1  # "herself." and "himself." are both <unk>: the pair ties
    assert tie_warnings(raw) == []  # 1 of 4 pairs is not "most": no warning for the file


def test_mostly_tied_file_warns_and_oov_skip_counts(wiki_corpus, tmp_path):
    path = tmp_path / "oov.jsonl"
    path.write_text(
        json.dumps({"good": "The cat saw zebras .", "bad": "The cat saw giraffes ."}) + "\n"  # both OOV: a tie
        + json.dumps({"good": "The <unk> sat on the mat .", "bad": "The <unk> sat the on mat ."}) + "\n"
        + json.dumps({"good": "The cat saw okapis .", "bad": "The cat saw herself ."}) + "\n"
    )  # fmt: skip
    scored = _pair_rows(wiki_corpus, [path])
    assert [(r.n, r.ties, r.oov_items, r.skipped) for r in scored] == [(3, 1, 2, None)]
    skipped = _pair_rows(wiki_corpus, [path], oov="skip")
    # a literal <unk> is the vocabulary entry, not OOV; the pairs that differ in an OOV word are left out
    assert [(r.n, r.ties, r.oov_items, r.skipped) for r in skipped] == [(1, 0, 0, 2)]
    ties_only = tmp_path / "ties.jsonl"
    ties_only.write_text(
        json.dumps({"sentence_good": "The cat saw zebras .", "sentence_bad": "The cat saw giraffes .",
                    "linguistics_term": "animals", "UID": "animal_names"}) + "\n"
    )  # fmt: skip
    warnings = tie_warnings(_pair_rows(wiki_corpus, [ties_only]))
    assert len(warnings) == 1 and "ties.jsonl" in warnings[0] and "1 of 1 pairs tie" in warnings[0]


def test_files_with_the_same_name_keep_apart_in_config_order(wiki_corpus, tmp_path):
    for folder, bad in (("b", "The cat sat the on log ."), ("a", "The log sat on the cat .")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "pairs.jsonl").write_text(
            json.dumps({"good": "The cat sat on the log .", "bad": bad}) + "\n"
        )
    rows = _pair_rows(wiki_corpus, [tmp_path / "b" / "pairs.jsonl", tmp_path / "a" / "pairs.jsonl"])
    assert [r.file for r in rows] == ["b/pairs.jsonl", "a/pairs.jsonl"]


@pytest.mark.parametrize(
    "line, message",
    [
        ('["a", "b"]', "expected a JSON object"),
        ('{"good": "a cat"}', "'good'/'bad'"),
        ('{"good": "a cat", "bad": "a dog", "UID": 3}', "'UID' must be a string"),
        ("{not json", "invalid JSON"),
    ],
)
def test_pair_file_schema_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"good": "a cat", "bad": "cat a"}) + "\n" + line + "\n")
    with pytest.raises(DataError, match=f"p.jsonl:2: .*{message}"):
        validate_tasks({"minimal-pairs": {"files": [str(path)]}}, ["kn"])


def test_empty_pair_file_is_a_one_line_error_and_other_tasks_still_run(corpus, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    configs = {"minimal-pairs": {"sentences": 5, "files": [str(empty)]}, "next-word": {"max_tokens": 20}}
    rows, errors = rows_and_errors(
        run_tasks(configs, entries(corpus, kn=dict(order=2)), corpus, seed=0, bootstrap=10)
    )
    assert len(errors) == 1 and "empty.jsonl" in errors[0] and "empty" in errors[0]
    assert {r.task for r in rows} == {"next-word"}


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
    out, errors = rows_and_errors(
        run_tasks(
            {"classify": {"train": str(path), "test": str(path), "features": True}},
            models,
            data,
            seed=0,
            bootstrap=50,
        )
    )
    assert not errors
    acc = {(r.model, r.metric, r.method): r for r in out}
    assert acc[("bigram", "accuracy", "generative")].value == 1.0
    assert ("gru", "accuracy", "features") in acc  # neural models expose pooled hidden states
    assert "C = " in acc[("gru", "accuracy", "features")].detail  # regularisation chosen on held-out data
    assert not any(k[0] == "bigram" and k[2] == "features" for k in acc)  # n-grams expose none
    # the two scikit-learn baselines on the same split, beside the LM rows
    baselines = {k[0] for k in acc if k[2] == "baseline"}
    assert baselines == {"naive-bayes (word counts)", "logistic regression (tf-idf)"}
    assert all(r.n == 60 and r.train_items == 60 for r in out)  # all data, nothing cut


class NoiseFeatures(NgramLM):
    """An n-gram model with random 'features': a feature classifier on them cannot beat the baselines."""

    def sentence_features(self, lines):
        return np.random.default_rng(len(lines)).normal(size=(len(lines), 4))


def test_feature_classifier_dropped_where_it_cannot_beat_the_baseline(corpus, tmp_path):
    rows = ["the cat sat\tpos" for _ in range(40)] + ["a dog saw\tneg" for _ in range(40)]
    train = _write(tmp_path / "train.tsv", "sentence\tlabel", rows)
    models = {"noise": ModelEntry(NoiseFeatures(2).fit(corpus.train), lambda: NgramLM(2))}
    out, errors = rows_and_errors(
        run_tasks({"classify": {"train": train, "test": train}}, models, corpus, seed=0, bootstrap=0)
    )
    assert not errors and not any(r.method == "features" for r in out)
    generative = next(r for r in out if r.model == "noise")
    assert "feature classifier dropped: held-out accuracy" in generative.detail
    config = {"train": train, "test": train, "features": True}
    kept, _ = rows_and_errors(run_tasks({"classify": config}, models, corpus, seed=0, bootstrap=0))
    feature_row = next(r for r in kept if r.method == "features")
    assert "vs tf-idf baseline 1.000" in feature_row.detail


def _write(path, header, rows):
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return str(path)


def test_classify_uses_all_data_and_priors_from_the_whole_training_set(corpus, tmp_path):
    # texts carry no signal; only the priors decide: 'pos' is 90% of training, 'neg' 10%
    train = _write(tmp_path / "train.tsv", "sentence\tlabel", ["the cat\tpos"] * 90 + ["the cat\tneg"] * 10)
    test = _write(tmp_path / "test.tsv", "sentence\tlabel", ["the cat\tpos"] * 1200)
    m = entries(corpus, uni=dict(order=1))
    rows, errors = rows_and_errors(
        run_tasks({"classify": {"train": train, "test": test}}, m, corpus, seed=0, bootstrap=0)
    )
    assert not errors
    uni = next(r for r in rows if r.model == "uni" and r.metric == "accuracy")
    assert uni.n == 1200 and uni.train_items == 100 and "cut" not in uni.detail  # nothing cut by default
    config = {"train": train, "test": test, "max_train": 10, "max_test": 50}
    rows, _ = rows_and_errors(run_tasks({"classify": config}, m, corpus, seed=0, bootstrap=0))
    uni = next(r for r in rows if r.model == "uni" and r.metric == "accuracy")
    assert uni.value == 1.0  # balanced 10/10 after the cut, but the priors still say 90/10
    assert uni.n == 50 and uni.train_items == 20
    assert "train cut to 20 of 100" in uni.detail and "test cut to 50 of 1,200" in uni.detail


@pytest.mark.parametrize(
    "train_rows, test_rows, message",
    [
        (
            ["a cat\t0", "a dog\t1"],
            ["a cat\tnegative", "a dog\tpositive"],
            "labels 'negative', 'positive' do not occur in",
        ),
        (["a cat\t0", "a dog\t1"], ["a cat\t0.0", "a dog\t1"], "labels '0.0' do not occur in"),
        (["a cat\t0", "a dog\t1"], ["a cat\t0", "a\tdog\t1"], "test.tsv:3: 3 fields, expected 2"),
        (["a cat\t0", "a dog\t1\t"], ["a cat\t0"], "train.tsv:3: 3 fields, expected 2"),
        (["a cat\t0", "a dog\t "], ["a cat\t0"], "train.tsv:3: empty label"),
    ],
)
def test_classify_input_errors_before_training(tmp_path, train_rows, test_rows, message):
    train = _write(tmp_path / "train.tsv", "sentence\tlabel", train_rows)
    test = _write(tmp_path / "test.tsv", "sentence\tlabel", test_rows)
    with pytest.raises(DataError, match=message) as info:
        validate_tasks({"classify": {"train": train, "test": test}}, ["kn"])
    if "occur" in message:  # both files named
        assert "test.tsv" in str(info.value) and "train.tsv" in str(info.value)


def test_labels_match_after_stripping(tmp_path):
    train = _write(tmp_path / "train.tsv", "sentence\tlabel", ["a cat\t 0", "a dog\t1 "])
    test = _write(tmp_path / "test.tsv", "sentence\tlabel", ["a cat\t0", "a dog\t1"])
    validate_tasks({"classify": {"train": train, "test": test}}, ["kn"])


def test_classify_data_problems_are_one_line(corpus, tmp_path):
    one_class = tmp_path / "one.csv"
    one_class.write_text("sentence,label\na cat,1\na dog,1\n")
    no_label = tmp_path / "nolabel.csv"
    no_label.write_text("sentence,stars\na cat,1\n")
    m = entries(corpus, kn=dict(order=2))
    _, errors = rows_and_errors(
        run_tasks(
            {"classify": {"train": str(one_class), "test": str(one_class)}}, m, corpus, seed=0, bootstrap=0
        )
    )
    assert "only one class" in errors[0]
    _, errors = rows_and_errors(
        run_tasks(
            {"classify": {"train": str(no_label), "test": str(no_label)}}, m, corpus, seed=0, bootstrap=0
        )
    )
    assert "no column 'label'" in errors[0]


def test_validate_tasks_names_missing_files_and_models(tmp_path):
    with pytest.raises(DataError, match="nowhere.jsonl: pair file not found"):
        validate_tasks({"minimal-pairs": {"files": [str(tmp_path / "nowhere.jsonl")]}}, ["kn"])
    with pytest.raises(DataError, match="train.tsv: labelled data file not found"):
        validate_tasks({"classify": {"train": str(tmp_path / "train.tsv"), "test": "x.tsv"}}, ["kn"])
    with pytest.raises(ConfigError, match="tasks.generate.reference: 'gpt' is not a model of this run"):
        validate_tasks({"generate": {"reference": "gpt"}}, ["kn", "lstm"])
    with pytest.raises(ConfigError, match="tasks.minimal-pairs.oov: expected 'score' or 'skip'"):
        validate_tasks({"minimal-pairs": {"oov": "drop"}}, ["kn"])
    with pytest.raises(ConfigError, match="tasks.minimal-pairs.tokenizer: unknown tokenizer 'moses'"):
        validate_tasks({"minimal-pairs": {"tokenizer": "moses"}}, ["kn"])


def test_generate_is_seeded_and_measured(corpus):
    m = entries(corpus, kn=dict(order=3), uni=dict(order=1))
    config = {"samples": 4, "max_tokens": 10, "reference": "kn"}
    a = run_tasks({"generate": {**config, "show": 2}}, m, corpus, seed=1, bootstrap=0)
    b = run_tasks({"generate": {**config, "show": 2}}, m, corpus, seed=1, bootstrap=0)
    assert a.samples == b.samples and not a.errors
    # samples are their own records, never figures: the first `show` per model, with their generation seed
    assert [(s.model, s.seed) for s in a.samples] == [("kn", 1), ("kn", 2), ("uni", 1), ("uni", 2)]
    assert all(s.prompt and s.continuation and s.text == f"{s.prompt} ⟶ {s.continuation}" for s in a.samples)
    assert all(math.isfinite(r.value) for r in a.rows)
    assert {r.metric for r in a.rows} == {"distinct-1", "distinct-2", "repetition-4", "self-bleu", "mean-length",
                                          "reference-perplexity"}  # fmt: skip
    ref = {r.model: r.value for r in a.rows if r.metric == "reference-perplexity"}
    assert ref["kn"] < ref["uni"]  # the reference finds its own samples likelier than a unigram's
    assert distinct_n([[1, 2, 3], [1, 2, 4]], 1) == pytest.approx(4 / 6)
    assert repetition_rate([1, 2, 3, 4, 1, 2, 3, 4]) == pytest.approx(1 / 5)


def test_task_config_validation():
    with pytest.raises(ConfigError, match="unknown task"):
        validate_task_configs({"poetry": {}})
    with pytest.raises(ConfigError, match="unknown key"):
        validate_task_configs({"next-word": {"beam": 3}})


@pytest.mark.slow
def test_blimp_format_files_against_a_wikitext2_model():
    """The issue's check: published-style pair files with a WikiText-2 model tie rarely under the card's
    `wikitext` tokenizer, while the raw whitespace tokenizer's damage shows as ties and a warning."""
    from pathlib import Path

    from lmbench.data.cards import load_card, load_card_corpus

    try:
        raw, _ = load_card_corpus("wikitext-2")
    except DataError as e:
        pytest.skip(f"WikiText-2 not available: {e}")
    data = tokenize_corpus(raw, get_tokenizer("whitespace"))
    data.external_tokenizer = get_tokenizer(load_card("wikitext-2").external_tokenizer)
    files = sorted(
        str(p)
        for p in (
            Path(__file__).resolve().parents[1] / "lmbench" / "data" / "examples" / "minimal-pairs"
        ).glob("*.jsonl")
    )
    models = {"kn3": ModelEntry(NgramLM(3).fit(data.train), lambda: NgramLM(3))}
    config = {"files": files, "distances": [], "last_word": False, "replace": False}
    good, _ = rows_and_errors(run_tasks({"minimal-pairs": config}, models, data, seed=0, bootstrap=0))
    assert len(good) == len(files) == 5 and sum(r.n for r in good) == 100
    assert sum(r.ties for r in good) <= 3 and sum(r.oov_items for r in good) <= 10
    raw_rows, _ = rows_and_errors(
        run_tasks({"minimal-pairs": {**config, "tokenizer": "whitespace"}}, models, data, seed=0, bootstrap=0)
    )
    assert sum(r.oov_items for r in raw_rows) == 100  # every sentence ends in a word glued to its full stop
    assert any("anaphor_gender_agreement.jsonl" in w for w in tie_warnings(raw_rows))
