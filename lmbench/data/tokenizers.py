"""Tokenizers: one line of raw text -> a list of tokens. The newline itself is never a token (it is `</s>`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from lmbench.errors import ConfigError


class Tokenizer:
    """Base class; subclasses implement :meth:`tokenize` and :meth:`detokenize`."""

    name: ClassVar[str]
    subword: ClassVar[bool] = False  # True: brings its own whole vocabulary (lmbench.data.subword)

    def tokenize(self, line: str) -> list[str]:
        raise NotImplementedError

    def tokenize_lines(self, lines: Sequence[str]) -> list[list[str]]:
        """Many lines at once (a subword tokenizer does them in one call into its library)."""
        return list(map(self.tokenize, lines))

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


class WikiTextTokenizer(Tokenizer):
    """Raw English -> WikiText's tokens (Moses-style rules plus WikiText's ``@-@``, ``@,@``, ``@.@``).

    For scoring outside text (minimal-pair files, prompts) against a model trained on WikiText: punctuation is
    split off (a sentence's full stop too), clitics keep their apostrophe (``don't`` -> ``don 't``, ``it's`` ->
    ``it 's``, ``O'Brien`` -> ``O 'Brien``), a hyphen between letters or digits becomes ``@-@``, a comma or
    point between digits ``@,@`` / ``@.@``; abbreviations (``U.S.``, ``Mr.``) keep their point inside a line, and
    a literal ``<unk>`` (or ``<formula>``) stays one token. Text already in WikiText form comes out unchanged.
    """

    name = "wikitext"
    _clitic = re.compile(r"(?:s|t|re|ve|ll|d|m)(?![\w'])", re.IGNORECASE)
    _kept = re.compile(r"(<[a-z]+>|@[-,.]@)")  # <unk>, <formula>; already-split separators
    _letter = r"[^\W\d_]"
    _alnum = r"[^\W_]"
    _rules = [
        (re.compile(r"(?<=[^\W\d_])[\u2019\u02bc](?=[^\W\d_])"), "'"),  # typographic apostrophe in a word
        (re.compile(r"'"), lambda m: WikiTextTokenizer._apostrophe(m)),
        (re.compile(r"([^\w\s.',\-])"), r" \1 "),  # symbols and brackets, quotes, ; : ! ? stand alone
        (re.compile(r"\.{2,}"), r" \g<0> "),  # an ellipsis is one token
        (re.compile(r"(?<!\d),|,(?!\d)"), " , "),
        (re.compile(r"(?<=\d),(?=\d)"), " @,@ "),
        (re.compile(r"(?<=\d)\.(?=\d)"), " @.@ "),
        (re.compile(r"(?<=[^\W_])-(?=[^\W_])"), " @-@ "),
        (re.compile(r"(?<!@)-+(?!@)"), r" \g<0> "),
    ]
    # words whose final point is part of the word when another word follows (Moses' nonbreaking prefixes)
    _abbreviations = frozenset(
        "Mr Mrs Ms Dr St Jr Sr Prof Gen Col Lt Sgt Capt Cpt Maj Rev Hon Gov Sen Rep Inc Co Corp Ltd Bros No vs Mt "
        "Ft Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec".split()
    )

    @staticmethod
    def _apostrophe(match: re.Match) -> str:
        """Moses' English rules: a clitic keeps its apostrophe (``don 't``, ``1990 's``), a quote stands alone."""
        text, i = match.string, match.start()
        before, after = text[i - 1 : i], text[i + 1 : i + 2]
        if before.isalpha() and after.isalpha():
            return " '"
        if before.isdigit() and after == "s" and not text[i + 2 : i + 3].isalnum():
            return " '"
        if not before.strip() and WikiTextTokenizer._clitic.match(text, i + 1):  # already split: ``it 's``
            return " '"
        return " ' "

    def tokenize(self, line: str) -> list[str]:
        tokens: list[str] = []
        for i, piece in enumerate(self._kept.split(line)):
            if i % 2:
                tokens.append(piece)
                continue
            for pattern, replacement in self._rules:
                piece = pattern.sub(replacement, piece)
            tokens += piece.split()
        return self._split_points(tokens)

    def _split_points(self, tokens: list[str]) -> list[str]:
        """Split a word's final point off unless it is an abbreviation followed by another word."""
        out: list[str] = []
        for i, token in enumerate(tokens):
            if len(token) > 1 and token.endswith(".") and not token.endswith(".."):
                stem = token[:-1]
                last = i == len(tokens) - 1 or all(t in ".!?\"')" for t in tokens[i + 1 :])
                keep = not last and (
                    ("." in stem and re.search(r"[^\W\d_]", stem) is not None)
                    or stem in self._abbreviations
                    or (len(stem) == 1 and stem.isupper())
                    or tokens[i + 1][:1].islower()
                )
                if not keep:
                    out += [stem, "."]
                    continue
            out.append(token)
        return out

    def detokenize(self, tokens: list[str]) -> str:
        text = " ".join(tokens)
        text = re.sub(r" @([-,.])@ ", r"\1", text)
        text = re.sub(r" ([.,;:!?)\]}%]|'s|'re|'ve|'ll|'d|'m|'t)(?=\s|$)", r"\1", text)
        return re.sub(r"([(\[{$£]) ", r"\1", text)


TOKENIZERS: dict[str, type[Tokenizer]] = {
    cls.name: cls
    for cls in (WhitespaceTokenizer, WordTokenizer, RegexpTokenizer, CharTokenizer, WikiTextTokenizer)
}


def get_tokenizer(name: str) -> Tokenizer:
    """Create a tokenizer by its config name (subword ones: :mod:`lmbench.data.subword`)."""
    try:
        return TOKENIZERS[name]()
    except KeyError:
        raise ConfigError(
            f"unknown tokenizer {name!r}; expected one of {', '.join(sorted(TOKENIZERS))}"
        ) from None
