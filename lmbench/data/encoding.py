"""Streaming encoding: lines of text -> compact id arrays, without holding a Python list of every token.

Each word type gets a provisional id the first time it is seen (one dictionary lookup per token, done by
``map`` in C); ids go into int32 blocks as lines stream past. After the pass the vocabulary is built from
the type counts and the provisional ids are remapped with one vectorised lookup. For 100M tokens this needs
the id array (400 MB) and the type table, not the 9 GiB of token strings a list of lists takes.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from lmbench.data.tokenizers import Tokenizer, WhitespaceTokenizer
from lmbench.data.vocabulary import Vocabulary
from lmbench.errors import DataError

LINES_PER_BLOCK = 1 << 12


@dataclass
class EncodedText:
    """Lines as provisional ids: ``types[ids[i]]`` is token i; line j is ``ids[offsets[j]:offsets[j+1]]``."""

    ids: np.ndarray  # int32 [tokens]
    offsets: np.ndarray  # int64 [lines + 1]
    types: list[str]  # provisional id -> word
    num_chars: int  # characters of the text, one newline per line included

    def type_counts(self) -> np.ndarray:
        return np.bincount(self.ids, minlength=len(self.types))

    def counts(self) -> dict[str, int]:
        return dict(zip(self.types, self.type_counts().tolist(), strict=True))

    def to_vocabulary(self, vocab: Vocabulary) -> tuple[np.ndarray, int]:
        """Ids in ``vocab`` (unknown words -> ``<unk>``) and how many tokens are ``<unk>``: unknown words and a
        literal ``<unk>`` in the text alike (KenLM's count, so perplexity excluding OOVs leaves out exactly these)."""
        index = vocab.index
        mapping = np.fromiter(
            (index.get(t, vocab.unk_id) for t in self.types), dtype=np.int32, count=len(self.types)
        )
        oov_type = mapping == vocab.unk_id
        oov = int(self.type_counts()[oov_type].sum()) if len(self.types) else 0
        return mapping[self.ids] if len(self.ids) else np.zeros(0, np.int32), oov


def encode_lines(lines: Iterable[str], tokenizer: Tokenizer | None = None) -> EncodedText:
    """Tokenize and encode ``lines`` (without their newlines) in one streaming pass."""
    tokenizer = tokenizer or WhitespaceTokenizer()
    split = str.split if isinstance(tokenizer, WhitespaceTokenizer) else tokenizer.tokenize
    ids_of: defaultdict[str, int] = defaultdict(itertools.count().__next__)
    lookup = ids_of.__getitem__
    id_blocks: list[np.ndarray] = []
    length_blocks: list[np.ndarray] = []
    num_chars = 0
    for block in _blocks(iter(lines)):
        num_chars += sum(map(len, block)) + len(block)
        tokens = list(map(split, block))
        length_blocks.append(np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens)))
        flat = list(map(lookup, itertools.chain.from_iterable(tokens)))
        id_blocks.append(np.array(flat, dtype=np.int32))
    lengths = np.concatenate(length_blocks) if length_blocks else np.zeros(0, np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.concatenate(id_blocks) if id_blocks else np.zeros(0, np.int32)
    return EncodedText(ids=ids, offsets=offsets, types=list(ids_of), num_chars=num_chars)


def _blocks(lines: Iterator[str]) -> Iterator[list[str]]:
    while block := list(itertools.islice(lines, LINES_PER_BLOCK)):
        yield block


def read_lines(source: str | Path | BinaryIO, name: str | None = None) -> Iterator[str]:
    """Lines of a UTF-8 file or binary stream (``-`` or a file object: e.g. stdin), newlines removed,
    read lazily; bad UTF-8 is a :class:`DataError` naming the source and the line."""
    if isinstance(source, (str, Path)) and str(source) != "-":
        path = Path(source)
        if path.is_dir():
            raise DataError(f"{path}: is a directory, expected a text file")
        if not path.exists():
            raise DataError(f"{path}: file not found")
        with open(path, "rb") as f:
            yield from _decode_lines(f, name or str(path))
        return
    import sys

    stream = sys.stdin.buffer if isinstance(source, (str, Path)) else source
    yield from _decode_lines(stream, name or "<stdin>")


def _decode_lines(f: BinaryIO, name: str) -> Iterator[str]:
    for number, raw in enumerate(f, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(
                f"{name}:{number}: invalid UTF-8 at byte {e.start} of the line (expected UTF-8 text)"
            ) from None
        yield line[:-1] if line.endswith("\n") else line
