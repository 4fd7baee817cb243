"""Vocabulary, tokenizers, corpora and token streams."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmbench.data import Corpus, TokenStream, Vocabulary, get_tokenizer, tokenize_corpus
from lmbench.data.synthetic import SyntheticConfig, SyntheticSource
from lmbench.errors import ConfigError, DataError


def test_vocabulary_specials_cutoffs_and_literal_unk():
    v = Vocabulary.build([["a", "b", "a", "<unk>"], ["c", "a"]], min_count=1)
    assert v.tokens[:3] == ["<unk>", "<s>", "</s>"]
    assert v.tokens[3] == "a"  # most frequent first
    assert v.id("<unk>") == v.unk_id == 0
    capped = Vocabulary.from_counts(v.counts, max_size=4)
    assert len(capped) == 4 and "b" not in capped


def test_token_stream_counts_words_plus_one_eos_per_line_and_oov():
    v = Vocabulary.build([["a", "b"]])
    s = TokenStream.from_lines([["a", "b"], [], ["a", "zebra", "<unk>"]], v)
    assert s.num_predicted == 5 + 3
    # "zebra" and the literal <unk>: every token scored as <unk> is OOV (KenLM's count), so that
    # perplexity_excl_oov leaves out exactly the tokens the oov column counts
    assert s.oov == 2
    np.testing.assert_array_equal(s.targets(), [3, 4, 2, 2, 3, 0, 0, 2])
    np.testing.assert_array_equal(s.with_markers(), [1, 3, 4, 2, 1, 2, 1, 3, 0, 0, 2])
    np.testing.assert_array_equal(s.target_line_starts(), [0, 3, 4])


def test_invalid_utf8_names_file_and_byte_offset(tmp_path):
    bad = tmp_path / "train.txt"
    bad.write_bytes(b"hello\nwor\xffld\n")
    with pytest.raises(DataError, match=r"train.txt: invalid UTF-8 at byte offset 9"):
        Corpus.from_files(bad, bad, bad)


def test_empty_training_data_is_an_error(tmp_path):
    (tmp_path / "t.txt").write_text("  \n\n")
    (tmp_path / "v.txt").write_text("a\n")
    with pytest.raises(DataError, match="empty or whitespace-only"):
        Corpus.from_files(tmp_path / "t.txt", tmp_path / "v.txt", tmp_path / "v.txt")


def test_single_file_split_is_deterministic_and_contiguous(tmp_path):
    path = tmp_path / "all.txt"
    path.write_text("".join(f"line {i}\n" for i in range(100)))
    a, b = Corpus.from_single_file(path), Corpus.from_single_file(path)
    assert a.train == b.train and len(a.train) == 80 and a.valid[0] == "line 80" and a.test[-1] == "line 99"


def test_tokenizers():
    assert get_tokenizer("whitespace").tokenize(" = Valkyria  Chronicles = ") == [
        "=",
        "Valkyria",
        "Chronicles",
        "=",
    ]
    assert get_tokenizer("word").tokenize("Don't stop.") == ["Do", "n't", "stop", "."]
    assert get_tokenizer("char").tokenize("ab c") == ["a", "b", " ", "c"]
    with pytest.raises(ConfigError, match="unknown tokenizer"):
        get_tokenizer("sentencepiece")


def test_bits_per_char_counts_raw_characters_with_newlines(tmp_path):
    corpus = Corpus.from_texts("x", "ab cd\nef\n", "ab\n", "cd ef\n")
    data = tokenize_corpus(corpus, get_tokenizer("whitespace"))
    assert data.test.num_chars == len("cd ef") + 1
    assert data.train.raw_lines == ("ab cd", "ef")


def test_synthetic_entropy_rate_is_exact():
    """The analytic rate equals the generator's own exact log-probabilities averaged over many lines."""
    source = SyntheticSource(SyntheticConfig(topics=3, fillers=12, min_len=6, max_len=9, seed=3))
    lines = source.sample_lines(40000, seed=11)
    total = sum(source.log_prob(line) for line in lines)
    tokens = sum(len(line.split()) + 1 for line in lines)
    assert -total / tokens == pytest.approx(source.entropy_rate_nats(), rel=5e-3)
    assert all(math.isfinite(source.log_prob(line)) for line in lines[:100])
    assert source.log_prob("A0 w01 Z1") == -math.inf  # mismatched closer, too short


def test_synthetic_corpus_is_seeded():
    a = SyntheticSource(SyntheticConfig(seed=1, train_lines=10, valid_lines=5, test_lines=5)).corpus()
    b = SyntheticSource(SyntheticConfig(seed=1, train_lines=10, valid_lines=5, test_lines=5)).corpus()
    c = SyntheticSource(SyntheticConfig(seed=2, train_lines=10, valid_lines=5, test_lines=5)).corpus()
    assert a.train == b.train and a.train != c.train
    assert all(len(line.split()) >= 8 for line in a.train)  # opener + >= 6 fillers + closer
