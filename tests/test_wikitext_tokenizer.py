"""The `wikitext` tokenizer: raw English split the way WikiText-2/103 were (forms written by hand from the corpus)."""

from __future__ import annotations

import pytest

from lmbench.data import get_tokenizer
from tests.conftest import require_shared

# raw sentence -> its WikiText form, written by hand after reading WikiText-2 (quotes, brackets, possessive 's,
# n't, hyphens, numbers, abbreviations, the sentence's full stop)
CASES = {
    "Susan revealed herself.": "Susan revealed herself .",
    "Renee hasn't hurt herself.": "Renee hasn 't hurt herself .",
    "I don't think it's over.": "I don 't think it 's over .",
    "The game's opening theme was a well-known song.": "The game 's opening theme was a well @-@ known song .",
    "It sold 1,000 copies at $3.5 each.": "It sold 1 @,@ 000 copies at $ 3 @.@ 5 each .",
    'The players\' union said "no" (twice).': 'The players \' union said " no " ( twice ) .',
    "Mr. Smith joined the U.S. Army in 1942; he won 3-0!": "Mr. Smith joined the U.S. Army in 1942 ; he won 3 @-@ 0 !",
    "The 1990's band: we're sure they'd won.": "The 1990 's band : we 're sure they 'd won .",
    "Paul O'Brien's band.": "Paul O 'Brien 's band .",
    "She said 'hello' – then left...": "She said ' hello ' – then left ...",
    "The <unk> was <unk>'s idea.": "The <unk> was <unk> 's idea .",
    "They don’t know.": "They don 't know .",
}


@pytest.mark.parametrize("raw", CASES)
def test_raw_english_becomes_wikitext_form(raw):
    assert get_tokenizer("wikitext").tokenize(raw) == CASES[raw].split()


@pytest.mark.parametrize("raw", [raw for raw in CASES if "O'B" not in raw])  # "O 'Brien" is split again
def test_text_already_in_wikitext_form_is_unchanged(raw):
    tokenized = CASES[raw]
    assert get_tokenizer("wikitext").tokenize(tokenized) == tokenized.split()


def test_other_tokenizers_break_what_wikitext_keeps():
    """Why a dedicated tokenizer: `word`/`regexp` split a literal <unk> and split `hasn't` as `has n't`."""
    assert get_tokenizer("word").tokenize("<unk> hasn't") != ["<unk>", "hasn", "'t"]
    assert get_tokenizer("regexp").tokenize("<unk>") != ["<unk>"]
    assert get_tokenizer("whitespace").tokenize("herself.") == ["herself."]


def test_detokenize_reverses_the_separators():
    tok = get_tokenizer("wikitext")
    assert (
        tok.detokenize(tok.tokenize("A well-known song sold 1,000 copies."))
        == "A well-known song sold 1,000 copies."
    )


@pytest.mark.slow
def test_wikitext2_test_split_is_a_fixed_point():
    """Nearly every line of the real corpus comes back token for token (the rest: `<formula>`-like edge cases)."""
    path = require_shared("corpora", "wikitext-2", "test.txt")
    tok = get_tokenizer("wikitext")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    same = sum(tok.tokenize(line) == line.split() for line in lines)
    assert same / len(lines) > 0.98
