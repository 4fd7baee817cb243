"""Subword vocabularies: a byte-level BPE trained on the training split, a pretrained tokenizer.json shared by
n-grams, neural models and a pretrained causal LM, and per-word perplexity that compares them with word runs."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from lmbench.config import parse_config
from lmbench.data.corpus import Corpus, tokenize_corpus
from lmbench.data.tokenizers import WhitespaceTokenizer
from lmbench.errors import ConfigError
from lmbench.evaluation import score
from lmbench.experiment import load_data, run_experiment
from lmbench.models.registry import create_model

from .conftest import TINY_TEST, TINY_TRAIN, import_or_fail

import_or_fail("tokenizers", "the hf extra: pip install -e '.[hf]'")

from lmbench.data.subword import SubwordTokenizer, cache_dir, train_bpe  # noqa: E402

TRAIN = [*TINY_TRAIN, "naïve café déjà vu", "  spaced   words  "] * 10
TEST = [*TINY_TEST, "zébra ☃ snowman 漢字"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LMBENCH_CACHE", str(tmp_path / "cache"))


def corpus() -> Corpus:
    return Corpus.from_texts("t", "\n".join(TRAIN), "\n".join(TEST), "\n".join(TEST))


def test_bpe_has_no_oov_and_round_trips_unseen_characters():
    tok = train_bpe(TRAIN, vocab_size=300)
    data = tokenize_corpus(corpus(), tok)
    assert data.test.oov == 0 and data.valid.oov == 0
    assert len(data.vocab) == tok._backend.get_vocab_size() + 3  # the tokenizer's vocabulary, specials first
    for i, line in enumerate(TEST):  # every line, unseen characters included, decodes to itself
        assert tok.detokenize(data.vocab.decode(data.test.line(i))) == line
    assert data.test.num_lines == len(TEST)  # a newline is </s>, never a token


def test_bpe_is_cached_by_identity_and_a_damaged_cache_is_retrained():
    first = train_bpe(TRAIN, vocab_size=300)
    files = sorted(cache_dir().glob("bpe-*.json"))
    assert len(files) == 1
    assert train_bpe(TRAIN, vocab_size=300).json == first.json  # read back
    train_bpe(TRAIN, vocab_size=280)
    train_bpe([*TRAIN, "one more line"], vocab_size=300)
    assert len(list(cache_dir().glob("bpe-*.json"))) == 3  # other settings, other text: other entries
    files[0].write_text(first.json.replace('"merges"', '"merges" '), encoding="utf-8")  # damaged
    again = train_bpe(TRAIN, vocab_size=300)
    assert again.json == first.json and files[0].read_text(encoding="utf-8") == first.json


def test_word_perplexity_equals_perplexity_for_whitespace_and_compares_tokenizers():
    c = corpus()
    words = tokenize_corpus(c, WhitespaceTokenizer())
    lp = np.log(np.full(words.test.num_predicted, 0.1))
    s = score(lp, words.test)
    assert s.word_perplexity == pytest.approx(s.perplexity, rel=1e-12)
    sub = tokenize_corpus(c, train_bpe(TRAIN, vocab_size=300))
    assert sub.test.num_word_predictions == words.test.num_predicted
    lp_sub = np.full(sub.test.num_predicted, lp.sum() / sub.test.num_predicted)  # same total log-prob
    s_sub = score(lp_sub, sub.test)
    assert s_sub.word_perplexity == pytest.approx(s.perplexity, rel=1e-9)
    assert s_sub.bits_per_char == pytest.approx(s.bits_per_char, rel=1e-9)
    assert s_sub.perplexity < s.perplexity  # per subword token the text is spread thinner


def config(tmp_path, corpus_extra: str, models: str) -> str:
    (tmp_path / "train.txt").write_text("\n".join(TRAIN) + "\n", encoding="utf-8")
    (tmp_path / "valid.txt").write_text("\n".join(TEST) + "\n", encoding="utf-8")
    (tmp_path / "test.txt").write_text("\n".join(TEST) + "\n", encoding="utf-8")
    return f"""
name = "sub"
[corpus]
train = "train.txt"
valid = "valid.txt"
test = "test.txt"
{corpus_extra}
[evaluate]
bootstrap = 0
{models}
"""


def parse(tmp_path, text: str):
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the same parser as the tomli package
        import tomli as tomllib

    return parse_config(tomllib.loads(text), source="exp.toml", base=tmp_path)


NGRAM = '[[model]]\nname = "kn3"\nfamily = "ngram"\norder = 3\n'


def test_config_bpe_trains_on_the_training_split(tmp_path):
    cfg = parse(tmp_path, config(tmp_path, 'tokenizer = "bpe"\nvocab_size = 300', NGRAM))
    loaded = load_data(cfg)
    assert loaded.data.test.oov == 0
    assert isinstance(loaded.data.tokenizer, SubwordTokenizer)
    assert train_bpe(TRAIN, vocab_size=300).json == loaded.data.tokenizer.json  # the training split alone


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('tokenizer = "hf:missing/tokenizer.json"', "corpus.tokenizer: "),
        ('tokenizer = "bpe"\nvocab_size = 10', "corpus.vocab_size: expected an integer >= 260"),
        ("vocab_size = 300", "corpus.vocab_size: only used with tokenizer"),
        ('tokenizer = "bpe"\nmin_count = 2', "corpus.min_count: not used with the subword tokenizer"),
        ('tokenizer = "bpx"', "corpus.tokenizer: unknown tokenizer 'bpx'"),
    ],
)
def test_bad_subword_settings_are_one_line_config_errors(tmp_path, extra, message):
    with pytest.raises(ConfigError) as e:
        parse(tmp_path, config(tmp_path, extra, NGRAM))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unreadable_tokenizer_file_is_named(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"exp.toml: corpus.tokenizer: .*tokenizer.json: cannot read"):
        parse(tmp_path, config(tmp_path, 'tokenizer = "hf:tokenizer.json"', NGRAM))


def test_pretrained_tokenizer_is_shared_by_ngram_neural_and_pretrained_lm(tmp_path, tiny_hf_model):
    """One vocabulary (the GPT-2 tokenizer's) for all three families; the pretrained LM's per-token scores are
    its own subword log-probabilities, whose total is the text's log-probability under it."""
    models = NGRAM + (
        '[[model]]\nname = "lstm"\nfamily = "lstm"\nemb_size = 8\nhidden_size = 8\n[model.budget]\ntokens = 500\n'
        f'[[model]]\nname = "gpt"\nfamily = "pretrained"\nname_or_path = "{tiny_hf_model}"\n'
    )
    cfg = parse(tmp_path, config(tmp_path, f'tokenizer = "hf:{tiny_hf_model}"', models))
    assert cfg.corpus.tokenizer == f"hf:{tiny_hf_model / 'tokenizer.json'}"
    results = run_experiment(cfg, tmp_path / "runs")
    assert not results.failures
    rows = {(r.model, r.split): r for r in results.rows}
    assert {rows[(m, "test")].tokens for m in ("kn3", "lstm", "gpt")} == {rows[("kn3", "test")].tokens}
    assert rows[("kn3", "test")].oov == 0
    assert (tmp_path / "runs" / "kn3" / "tokenizer.json").is_file()
    # the pretrained model scored on its own tokens: the same total as scoring each raw line directly
    from lmbench.models.pretrained import PretrainedLM

    loaded = load_data(cfg)
    gpt = PretrainedLM(str(tiny_hf_model), device="cpu").fit(loaded.data.train)
    lp = gpt.token_logprobs(loaded.data.test, context="sentence")
    direct = 0.0
    for line in TEST:
        ids = gpt.tokenizer_(line + "\n", add_special_tokens=False)["input_ids"]
        direct += float(gpt._token_logprobs_of_ids(ids).sum())
    assert lp.sum() == pytest.approx(direct, rel=1e-9)
    first = TEST[0]
    ids = gpt.tokenizer_(first, add_special_tokens=False)["input_ids"]
    n = len(ids)
    assert loaded.data.test.line(0).tolist() == [
        loaded.data.vocab.id(t) for t in gpt.tokenizer_.convert_ids_to_tokens(ids)
    ]
    assert np.allclose(
        lp[:n],
        gpt._token_logprobs_of_ids(gpt.tokenizer_(first + "\n", add_special_tokens=False)["input_ids"])[:n],
    )
    assert math.isfinite(rows[("gpt", "test")].word_perplexity)


def test_every_family_trains_on_bpe_tokens(tmp_path):
    data = tokenize_corpus(corpus(), train_bpe(TRAIN, vocab_size=300))
    for family, params in (("ngram", {"order": 3}), ("lstm", {"emb_size": 8, "hidden_size": 8, "epochs": 1}),
                           ("transformer", {"d_model": 8, "layers": 1, "n_heads": 2, "epochs": 1})):  # fmt: skip
        model = create_model(family, **params).fit(data.train)
        lp = model.token_logprobs(data.test, context="sentence")
        assert lp.shape == (data.test.num_predicted,) and np.isfinite(lp).all()


def test_pretrained_next_token_distribution_on_its_own_vocabulary(tiny_hf_model):
    """With the model's own tokenizer as the shared vocabulary, next_token_logprobs is its distribution: rows
    sum to 1, and the probability of a line's next token matches token_logprobs."""
    from lmbench.data.subword import SubwordTokenizer
    from lmbench.models.pretrained import PretrainedLM

    tok = SubwordTokenizer.from_file(tiny_hf_model / "tokenizer.json")
    data = tokenize_corpus(corpus(), tok)
    gpt = PretrainedLM(str(tiny_hf_model), device="cpu").fit(data.train)
    line = data.test.line(0).tolist()
    rows = gpt.next_token_logprobs([[data.vocab.bos_id, *line[:2]], [data.vocab.bos_id, *line]])
    assert np.allclose(np.exp(rows).sum(axis=1), 1.0)
    lp = gpt.token_logprobs(data.test, context="sentence")
    assert rows[0, line[2]] == pytest.approx(lp[2], abs=1e-6)
    assert rows[1, data.vocab.eos_id] == pytest.approx(lp[len(line)], abs=1e-6)


def test_cli_run_with_an_unreadable_tokenizer_is_exit_2_in_one_line(tmp_path):
    from click.testing import CliRunner

    from lmbench.cli import main

    (tmp_path / "exp.toml").write_text(
        config(tmp_path, 'tokenizer = "hf:nowhere/tokenizer.json"', NGRAM), encoding="utf-8"
    )
    result = CliRunner().invoke(main, ["run", str(tmp_path / "exp.toml"), "--output", str(tmp_path / "out"),
                                       "--runs-dir", str(tmp_path / "runs")])  # fmt: skip
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "corpus.tokenizer:" in result.output and "nowhere/tokenizer.json" in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_tables_show_word_perplexity_where_tokens_are_not_words():
    import dataclasses

    from lmbench.reporting.tables import compare_table, display_table
    from lmbench.results import CombinedRow

    word = CombinedRow(model="kn3", family="ngram", split="test", context="sentence", tokens=100,
                       perplexity=200.0, word_perplexity=200.0, bits_per_char=2.0)  # fmt: skip
    bpe = dataclasses.replace(word, tokens=160, perplexity=40.0, word_perplexity=180.0, bits_per_char=1.9)
    assert "word ppl" not in display_table([word])[0]
    assert display_table([bpe])[0]["word ppl"] == "180.00"
    table = compare_table([word], [bpe], ("words", "bpe"))
    assert table[0]["words (per word)"] == "200.00" and table[0]["bpe (per word)"] == "180.00"
    assert table[0]["change"] == "-10.0%"
    same = compare_table([word], [dataclasses.replace(word, perplexity=100.0)], ("a", "b"))
    assert "a" in same[0] and same[0]["change"] == "-50.0%"
