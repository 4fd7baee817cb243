"""Corpora (raw train/valid/test text) and token streams (the ids every model is trained and scored on)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.data.encoding import encode_lines
from lmbench.data.tokenizers import Tokenizer
from lmbench.data.vocabulary import Vocabulary
from lmbench.errors import DataError

SPLITS = ("train", "valid", "test")


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file as lines joined by ``\n``.

    A byte-order mark is dropped and CRLF/CR line ends become ``\n`` (so no tokenizer ever sees ``\r``); invalid
    UTF-8 and NUL bytes are errors naming the file and where.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a text file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        offset = e.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        raise DataError(f"{path}: invalid UTF-8 at byte offset {offset} (expected UTF-8 text)") from None
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise DataError(f"{path}: line {line}: NUL byte (expected text; is this a binary file?)")
    return normalize_newlines(text)


def normalize_newlines(text: str) -> str:
    """CRLF and lone CR line ends as ``\n`` (Python's universal newlines)."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def split_lines(text: str) -> list[str]:
    """Lines of a text; a final newline does not start another (empty) line."""
    if text.endswith("\n"):
        text = text[:-1]
    return text.split("\n") if text else []


@dataclass
class Corpus:
    """Raw text of the three splits, as lists of lines (each line is one sentence/paragraph)."""

    name: str
    train: list[str]
    valid: list[str]
    test: list[str]
    checksums: dict[str, str] = field(default_factory=dict)  # sha256 of each split's source text

    def split(self, name: str) -> list[str]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    @classmethod
    def from_texts(
        cls,
        name: str,
        train: str,
        valid: str,
        test: str,
        *,
        source: str = "",
        sources: dict[str, str] | None = None,
    ) -> Corpus:
        """A corpus from the three texts; ``sources`` names where each came from (for error messages).

        Training text must hold a word; valid and test at least one line (an empty split has nothing to score).
        """
        texts = {"train": train, "valid": valid, "test": test}
        where = {k: (sources or {}).get(k) or f"{source or name} ({k} split)" for k in texts}
        corpus = cls(
            name=name,
            **{k: split_lines(v) for k, v in texts.items()},
            checksums={k: hashlib.sha256(v.encode("utf-8")).hexdigest() for k, v in texts.items()},
        )
        if not any(line.strip() for line in corpus.train):
            raise DataError(f"{where['train']}: training data is empty or whitespace-only")
        for split in ("valid", "test"):
            if not corpus.split(split):
                raise DataError(
                    f"{where[split]}: the {split} split is empty (expected at least one line of text)"
                )
        return corpus

    @classmethod
    def from_files(
        cls, train: str | Path, valid: str | Path, test: str | Path, *, name: str | None = None
    ) -> Corpus:
        """A corpus from three files (UTF-8, one sentence or paragraph per line)."""
        return cls.from_texts(
            name or Path(train).parent.name or "corpus",
            read_text(train),
            read_text(valid),
            read_text(test),
            sources={"train": str(train), "valid": str(valid), "test": str(test)},
        )

    @classmethod
    def from_single_file(
        cls,
        path: str | Path,
        *,
        valid_fraction: float = 0.1,
        test_fraction: float = 0.1,
        name: str | None = None,
    ) -> Corpus:
        """Split one file deterministically by lines: the first lines train, then valid, then the last test.

        Contiguous blocks (not a shuffle) keep the text's order for stream-mode models and need no seed.
        """
        for key, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
            if not 0.0 < value < 0.5:
                raise DataError(f"{key}: expected a fraction in (0, 0.5), got {value}")
        text = read_text(path)
        lines = split_lines(text)
        n = len(lines)
        n_test = max(1, round(n * test_fraction))
        n_valid = max(1, round(n * valid_fraction))
        if n - n_test - n_valid < 1:
            raise DataError(f"{path}: {n} lines are too few to split into train/valid/test")
        train, valid, test = (
            lines[: n - n_valid - n_test],
            lines[n - n_valid - n_test : n - n_test],
            lines[n - n_test :],
        )
        return cls.from_texts(
            name or Path(path).stem,
            "\n".join(train),
            "\n".join(valid),
            "\n".join(test),
            source=str(path),
        )


@dataclass(frozen=True)
class TokenStream:
    """One tokenized split: word ids of all lines back to back, and where each line starts.

    The tokens a model predicts are every word of every line and one ``</s>`` per line (an empty line predicts
    ``</s>`` only) — exactly KenLM's/SRILM's count. ``<s>`` is context only.
    """

    ids: np.ndarray  # int32 [num_words]: words of all lines, no markers
    offsets: np.ndarray  # int64 [num_lines + 1]: line i is ids[offsets[i]:offsets[i+1]]
    vocab: Vocabulary
    num_chars: int  # characters of the raw text, one newline per line included (for bits per character)
    oov: int = 0  # words that were outside the vocabulary and became <unk>
    raw_lines: tuple[str, ...] | None = (
        None  # the untokenized lines, where known (pretrained LMs score these)
    )
    num_text_words: int | None = None  # whitespace words of the raw text, where known (word-level perplexity)

    @classmethod
    def from_lines(
        cls, lines: Sequence[Sequence[str]], vocab: Vocabulary, *, num_chars: int | None = None
    ) -> TokenStream:
        """Encode tokenized lines; ``num_chars`` defaults to the tokens joined by spaces plus newlines."""
        lengths = np.fromiter((len(line) for line in lines), dtype=np.int64, count=len(lines))
        offsets = np.zeros(len(lines) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = [tok for line in lines for tok in line]
        ids = vocab.encode(flat)
        # every token scored as <unk> is OOV, a literal <unk> (PTB, WikiText) included: KenLM counts the same,
        # and so "perplexity excluding OOVs" leaves out exactly the tokens the oov column counts
        oov = int(np.count_nonzero(ids == vocab.unk_id))
        if num_chars is None:
            num_chars = sum(len(" ".join(line)) + 1 for line in lines)
        return cls(ids=ids, offsets=offsets, vocab=vocab, num_chars=int(num_chars), oov=oov)

    @classmethod
    def from_ids(
        cls, lines: Sequence[Sequence[int]], vocab: Vocabulary, *, num_chars: int | None = None
    ) -> TokenStream:
        """A stream from lines already given as ids (tests, generated text)."""
        lengths = np.fromiter((len(line) for line in lines), dtype=np.int64, count=len(lines))
        offsets = np.zeros(len(lines) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.fromiter((int(t) for line in lines for t in line), dtype=np.int32, count=int(offsets[-1]))
        if num_chars is None:
            num_chars = sum(len(" ".join(vocab.decode(line))) + 1 for line in lines)
        return cls(ids=ids, offsets=offsets, vocab=vocab, num_chars=int(num_chars))

    @property
    def num_lines(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_words(self) -> int:
        return len(self.ids)

    @property
    def num_word_predictions(self) -> int:
        """Whitespace words of the raw text plus one end of line per line: the tokens a whitespace-tokenized
        run predicts on the same text, so word-level perplexity compares runs with different tokenizers."""
        words = self.num_text_words if self.num_text_words is not None else self.num_words
        return words + self.num_lines

    @property
    def num_predicted(self) -> int:
        """Tokens every model predicts: all words plus one ``</s>`` per line."""
        return len(self.ids) + self.num_lines

    def lines(self) -> Iterator[np.ndarray]:
        for i in range(self.num_lines):
            yield self.ids[self.offsets[i] : self.offsets[i + 1]]

    def line(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    def targets(self) -> np.ndarray:
        """The predicted tokens in order: each line's words then ``</s>`` (int32 [num_predicted])."""
        return self.with_markers(bos=False)

    def target_line_starts(self) -> np.ndarray:
        """Index into :meth:`targets` where each line's predictions start (int64 [num_lines])."""
        return self.offsets[:-1] + np.arange(self.num_lines, dtype=np.int64)

    def with_markers(self, *, bos: bool = True) -> np.ndarray:
        """Lines as ``[<s>] w1 .. wn </s>`` back to back (int32); vectorised, no per-line loop."""
        n, k = self.num_lines, 2 if bos else 1
        out = np.empty(len(self.ids) + k * n, dtype=np.int32)
        step = 1 << 16  # lines at a time: the int64 position arrays are a block's, not the corpus's
        for a in range(0, n, step):
            b = min(a + step, n)
            lengths = np.diff(self.offsets[a : b + 1])
            first, last = int(self.offsets[a]), int(self.offsets[b])
            line_of_word = np.repeat(np.arange(a, b, dtype=np.int64), lengths)
            out[np.arange(first, last) + k * line_of_word + (k - 1)] = self.ids[first:last]
            ends = self.offsets[a + 1 : b + 1] + k * np.arange(a + 1, b + 1) - 1
            out[ends] = self.vocab.eos_id
            if bos:
                out[ends - lengths - 1] = self.vocab.bos_id
        return out

    def stream(self) -> np.ndarray:
        """Stream-mode sequence: ``<s>`` then the targets; token i+1 is predicted from tokens 0..i."""
        return np.concatenate([[self.vocab.bos_id], self.targets()]).astype(np.int32)

    def subset(self, line_indices: Sequence[int] | np.ndarray) -> TokenStream:
        """The stream made of the given lines (in the given order); chars are re-estimated proportionally."""
        idx = np.asarray(line_indices, dtype=np.int64)
        lines = [self.line(i) for i in idx]
        if self.raw_lines is not None:
            raw = tuple(self.raw_lines[i] for i in idx)
            stream = TokenStream.from_ids(lines, self.vocab, num_chars=sum(len(r) + 1 for r in raw))
            return dataclasses.replace(stream, raw_lines=raw, num_text_words=sum(len(r.split()) for r in raw))
        frac = (sum(len(x) + 1 for x in lines) / self.num_predicted) if self.num_predicted else 0.0
        return TokenStream.from_ids(lines, self.vocab, num_chars=round(self.num_chars * frac))

    def __len__(self) -> int:
        return self.num_predicted


@dataclass
class TokenizedCorpus:
    """A corpus after tokenization: one vocabulary (from train only) and a stream per split."""

    corpus: Corpus
    tokenizer: Tokenizer
    vocab: Vocabulary
    train: TokenStream
    valid: TokenStream
    test: TokenStream
    external_tokenizer: Tokenizer | None = None  # for raw outside text; None: the corpus's own tokenizer
    min_count: int = 1  # the vocabulary's rule, for vocabularies built the same way (a task's own texts)
    max_size: int | None = None

    def split(self, name: str) -> TokenStream:
        return getattr(self, name)

    def encode_text(self, text: str, tokenizer: Tokenizer | None = None) -> np.ndarray:
        """Ids of one line of raw outside text, tokenized the way the training text was (or by ``tokenizer``)."""
        tokenizer = tokenizer or self.external_tokenizer or self.tokenizer
        return self.vocab.encode(tokenizer.tokenize(text))


def tokenize_corpus(
    corpus: Corpus, tokenizer: Tokenizer, *, min_count: int = 1, max_size: int | None = None
) -> TokenizedCorpus:
    """Tokenize every split, build the vocabulary from the training split only, and encode.

    Streams each split through :func:`lmbench.data.encoding.encode_lines`: token ids go straight into int32
    arrays, so memory is the id arrays, not a Python list of every token.
    """
    encoded = {name: encode_lines(corpus.split(name), tokenizer) for name in SPLITS}
    if tokenizer.subword:  # a subword tokenizer brings its whole vocabulary: no word is out of it
        vocab = tokenizer.vocabulary()
        train = encoded["train"].to_vocabulary(vocab)
    else:
        vocab, *train = encoded["train"].vocabulary(min_count=min_count, max_size=max_size)
    streams = {}
    for name in SPLITS:
        text = encoded.pop(name)
        ids, oov = train if name == "train" else text.to_vocabulary(vocab)
        streams[name] = TokenStream(
            ids=ids,
            offsets=text.offsets,
            vocab=vocab,
            num_chars=text.num_chars,
            oov=oov,
            raw_lines=tuple(corpus.split(name)),
            num_text_words=sum(len(line.split()) for line in corpus.split(name)),
        )
    return TokenizedCorpus(
        corpus=corpus, tokenizer=tokenizer, vocab=vocab, **streams, min_count=min_count, max_size=max_size
    )


def encode_stream(
    lines: Iterable[str],
    tokenizer: Tokenizer | None = None,
    *,
    min_count: int = 1,
    max_size: int | None = None,
):
    """One :class:`TokenStream` with a vocabulary built from ``lines`` themselves (training text), streamed."""
    text = encode_lines(lines, tokenizer)
    vocab, ids, oov = text.vocabulary(min_count=min_count, max_size=max_size)
    return TokenStream(ids=ids, offsets=text.offsets, vocab=vocab, num_chars=text.num_chars, oov=oov)


@dataclass
class LoadedData:
    """A corpus read for an experiment: the text, its tokenization, the generator's entropy floor (synthetic
    corpora) and the corpus card's fields."""

    corpus: Corpus
    data: TokenizedCorpus
    entropy_floor: dict[str, float] | None = None
    card: dict[str, Any] = field(default_factory=dict)
