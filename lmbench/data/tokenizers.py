"""Tokenizers: one line of raw text -> a list of tokens. The newline itself is never a token (it is `</s>`)."""

from __future__ import annotations

import re
from typing import ClassVar

from lmbench.errors import ConfigError


class Tokenizer:
    """Base class; subclasses implement :meth:`tokenize` and :meth:`detokenize`."""

    name: ClassVar[str]

    def tokenize(self, line: str) -> list[str]:
        raise NotImplementedError

    def detokenize(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class WhitespaceTokenizer(Tokenizer):
    """For pre-tokenized corpora (PTB, WikiText): tokens are whatever whitespace separates."""

    name = "whitespace"

    def tokenize(self, line: str) -> list[str]:
        return line.split()


class WordTokenizer(Tokenizer):
    """English word tokenizer that needs no downloaded model data (NLTK's Treebank rules)."""

    name = "word"

    def __init__(self) -> None:
        from nltk.tokenize import TreebankWordDetokenizer, TreebankWordTokenizer

        self._tokenizer = TreebankWordTokenizer()
        self._detokenizer = TreebankWordDetokenizer()

    def tokenize(self, line: str) -> list[str]:
        return self._tokenizer.tokenize(line)

    def detokenize(self, tokens: list[str]) -> str:
        return self._detokenizer.detokenize(tokens)


class RegexpTokenizer(Tokenizer):
    r"""Words and single punctuation marks (``\w+|[^\w\s]``): language-neutral and fast."""

    name = "regexp"
    _pattern = re.compile(r"\w+|[^\w\s]")

    def tokenize(self, line: str) -> list[str]:
        return self._pattern.findall(line)


class CharTokenizer(Tokenizer):
    """Every character of the line (spaces included) is a token."""

    name = "char"

    def tokenize(self, line: str) -> list[str]:
        return list(line)

    def detokenize(self, tokens: list[str]) -> str:
        return "".join(tokens)


TOKENIZERS: dict[str, type[Tokenizer]] = {
    cls.name: cls for cls in (WhitespaceTokenizer, WordTokenizer, RegexpTokenizer, CharTokenizer)
}


def get_tokenizer(name: str) -> Tokenizer:
    """Create a tokenizer by its config name."""
    try:
        return TOKENIZERS[name]()
    except KeyError:
        raise ConfigError(
            f"unknown tokenizer {name!r}; expected one of {', '.join(sorted(TOKENIZERS))}"
        ) from None
