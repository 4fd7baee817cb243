"""Streaming encoding: lines of text -> compact id arrays, without holding a Python list of every token.

Each word type gets a provisional id the first time it is seen, and ids go into int32 blocks as the text
streams past; after the pass the vocabulary is built from the type counts and the provisional ids are
remapped with one vectorised lookup. For 100M tokens this needs the id array (400 MB) and the type table,
not the 9 GiB of token strings a list of lists takes.

The whitespace tokenizer (``str.split()``) runs compiled over the UTF-8 bytes of blocks of whole lines
(:mod:`lmbench.data.split_kernel`), which are read from a file in large blocks (:func:`read_lines`) or made
by joining lines given as strings; other tokenizers run per line in Python.
"""

from __future__ import annotations

import itertools
import sys
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from lmbench.data.tokenizers import Tokenizer, WhitespaceTokenizer
from lmbench.data.vocabulary import Vocabulary
from lmbench.errors import DataError

BLOCK_BYTES = 1 << 23  # bytes of a file read at once (then cut after the last newline)
LINES_PER_BLOCK = 1 << 12  # lines given as strings tokenized at once


@dataclass
class EncodedText:
    """Lines as provisional ids: ``types[ids[i]]`` is token i; line j is ``ids[offsets[j]:offsets[j+1]]``."""

    ids: np.ndarray  # int32 [tokens]
    offsets: np.ndarray  # int64 [lines + 1]
    types: list[str]  # provisional id -> word, in first-seen order
    type_counts: np.ndarray  # int64 [types]: occurrences of each type
    num_chars: int  # characters of the text, one newline per line included

    def counts(self) -> dict[str, int]:
        return dict(zip(self.types, self.type_counts.tolist(), strict=True))

    def vocabulary(
        self, *, min_count: int = 1, max_size: int | None = None
    ) -> tuple[Vocabulary, np.ndarray, int]:
        """The vocabulary built from these lines (the training text), their ids in it and how many are
        ``<unk>`` (see :meth:`to_vocabulary`)."""
        vocab, mapping = Vocabulary.from_types(
            self.types, self.type_counts, min_count=min_count, max_size=max_size
        )
        return vocab, *self._remapped(mapping, vocab.unk_id)

    def to_vocabulary(self, vocab: Vocabulary) -> tuple[np.ndarray, int]:
        """Ids in ``vocab`` (unknown words -> ``<unk>``) and how many tokens are ``<unk>``: unknown words and a
        literal ``<unk>`` in the text alike (KenLM's count, so perplexity excluding OOVs leaves out exactly these)."""
        index = vocab.index
        mapping = np.fromiter(
            (index.get(t, vocab.unk_id) for t in self.types), dtype=np.int32, count=len(self.types)
        )
        return self._remapped(mapping, vocab.unk_id)

    def _remapped(self, mapping: np.ndarray, unk_id: int) -> tuple[np.ndarray, int]:
        oov = int(self.type_counts[mapping == unk_id].sum())
        return mapping[self.ids] if len(self.ids) else np.zeros(0, np.int32), oov


def encode_lines(lines: Iterable[str], tokenizer: Tokenizer | None = None) -> EncodedText:
    """Tokenize and encode ``lines`` (without their newlines) in one streaming pass.

    With the whitespace tokenizer the lines go through the compiled splitter: straight from the file's bytes
    when ``lines`` comes from :func:`read_lines`, else joined into blocks of UTF-8; the result is the same.
    """
    tokenizer = tokenizer or WhitespaceTokenizer()
    if not isinstance(tokenizer, WhitespaceTokenizer):
        return _encode_tokenized(lines, tokenizer.tokenize_lines)
    from lmbench.data.split_kernel import TypeTable, max_tokens  # Numba loads only when text is encoded

    # a file's blocks are read and checked on a second thread while this one splits the previous block
    blocks = _read_ahead(lines.blocks()) if isinstance(lines, TextLines) else _joined_blocks(lines)
    # ids go straight into one array: sized from the file when its size is known, else grown as needed
    size = lines.size() if isinstance(lines, TextLines) else None
    ids = np.empty(max_tokens(size) if size is not None else 1 << 16, dtype=np.int32)
    n_ids = 0
    table = TypeTable()
    line_blocks: list[np.ndarray] = []
    num_chars = 0
    for raw, chars in blocks:
        if n_ids + max_tokens(len(raw)) > len(ids):
            grown = np.empty(max(2 * len(ids), n_ids + max_tokens(len(raw))), dtype=np.int32)
            grown[:n_ids] = ids[:n_ids]
            ids = grown
        n_ids, tokens_per_line = table.split_into(raw, ids, n_ids)
        line_blocks.append(tokens_per_line)
        num_chars += chars
    ids.resize(n_ids, refcheck=False)  # in place: the unused end is given back, not copied (no views exist)
    return _encoded(ids, line_blocks, table.types(), table.type_counts(), num_chars)


def _read_ahead(items: Iterator, depth: int = 2) -> Iterator:
    """The items of ``items``, each produced on a background thread up to ``depth`` ahead of the consumer
    (reading a file and the UTF-8 check release the GIL, so they overlap the splitting). One worker takes the
    items in order; an exception is raised where its item would have been, and stopping early closes
    ``items``."""
    end = object()
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="lmbench-read-ahead") as pool:
            pending = deque(pool.submit(next, items, end) for _ in range(depth))
            while (item := pending.popleft().result()) is not end:
                pending.append(pool.submit(next, items, end))
                yield item
    finally:
        if hasattr(items, "close"):
            items.close()  # the file, if the consumer stopped early


def _joined_blocks(lines: Iterable[str]) -> Iterator[tuple[bytes, int]]:
    """Lines given as strings as blocks of UTF-8 lines for the splitter, and the characters of each block.

    A newline inside a line is whitespace to ``str.split`` but would end the line here, so such blocks have
    it replaced by a space (also whitespace, also one character); lone surrogates pass through as
    ``surrogatepass`` bytes and come back unchanged.
    """
    lines = iter(lines)
    while block := list(itertools.islice(lines, LINES_PER_BLOCK)):
        n = len(block)
        block.append("")  # so that the join ends with a newline
        text = "\n".join(block)
        if text.count("\n") != n:
            text = "\n".join(line.replace("\n", " ") for line in block)
        yield text.encode("utf-8", "surrogatepass"), len(text)


def _encode_tokenized(lines: Iterable[str], tokenize: Callable[[list[str]], list[list[str]]]) -> EncodedText:
    """The Python path, for tokenizers other than whitespace: one dictionary lookup per token."""
    ids_of: defaultdict[str, int] = defaultdict(itertools.count().__next__)
    lookup = ids_of.__getitem__
    id_blocks: list[np.ndarray] = []
    line_blocks: list[np.ndarray] = []
    num_chars = 0
    lines = iter(lines)
    while block := list(itertools.islice(lines, LINES_PER_BLOCK)):
        num_chars += sum(map(len, block)) + len(block)
        tokens = tokenize(block)
        line_blocks.append(np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens)))
        flat = list(map(lookup, itertools.chain.from_iterable(tokens)))
        id_blocks.append(np.array(flat, dtype=np.int32))
    ids = np.concatenate(id_blocks) if id_blocks else np.zeros(0, np.int32)
    types = list(ids_of)
    return _encoded(ids, line_blocks, types, np.bincount(ids, minlength=len(types)), num_chars)


def _encoded(
    ids: np.ndarray, line_blocks: list[np.ndarray], types: list[str], type_counts: np.ndarray, num_chars: int
) -> EncodedText:
    lengths = np.concatenate(line_blocks) if line_blocks else np.zeros(0, np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return EncodedText(ids=ids, offsets=offsets, types=types, type_counts=type_counts, num_chars=num_chars)


class TextLines:
    """The lines of a UTF-8 file or binary stream, newlines removed, read lazily in blocks of whole lines.

    Iterating gives the lines as strings (a file is split at ``\\n`` only, as reading it line by line does;
    a ``\\r`` stays in its line); :func:`encode_lines` reads the blocks' bytes directly. Bad UTF-8 is a
    :class:`DataError` naming the source, the line and the byte. A stream can be read once.
    """

    def __init__(self, source: Path | BinaryIO, name: str, block_bytes: int = BLOCK_BYTES):
        self.source, self.name, self.block_bytes = source, name, block_bytes

    def __iter__(self) -> Iterator[str]:
        for raw, _ in self.blocks():
            text = raw.decode("utf-8")  # valid: blocks() checked it
            lines = text.split("\n")
            if text.endswith("\n"):
                lines.pop()
            yield from lines

    def size(self) -> int | None:
        """Bytes of the text if it is a file (so the ids array can be sized once), else None."""
        if isinstance(self.source, Path):
            try:
                return self.source.stat().st_size
            except OSError:
                return None
        return None

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        """Blocks of whole lines as UTF-8 bytes (the last line may lack its newline) and the characters of
        each: one per newline, and one for a last line without a newline, as :func:`encode_lines` counts."""
        if not isinstance(self.source, Path):
            yield from _line_blocks(self.source, self.name, self.block_bytes)
            return
        try:
            f = open(self.source, "rb")
        except OSError as e:
            raise DataError(f"{self.source}: cannot read ({e.strerror})") from None
        with f:
            yield from _line_blocks(f, self.name, self.block_bytes)


def read_lines(
    source: str | Path | BinaryIO, name: str | None = None, *, block_bytes: int = BLOCK_BYTES
) -> TextLines:
    """Lines of a UTF-8 file or binary stream (``-`` or a file object: e.g. stdin), newlines removed,
    read lazily in blocks of about ``block_bytes``; bad UTF-8 is a :class:`DataError` naming the source and
    the line."""
    if isinstance(source, (str, Path)) and str(source) != "-":
        path = Path(source)
        if path.is_dir():
            raise DataError(f"{path}: is a directory, expected a text file")
        if not path.exists():
            raise DataError(f"{path}: file not found")
        return TextLines(path, name or str(path), block_bytes)
    stream = sys.stdin.buffer if isinstance(source, (str, Path)) else source
    return TextLines(stream, name or "<stdin>", block_bytes)


def _line_blocks(f: BinaryIO, name: str, block_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Read ``f`` in blocks cut after their last newline (a line longer than a block makes a longer block),
    each checked to be UTF-8, with its characters."""
    first_line = 1
    pending: list[bytes] = []  # the start of a line that did not end in the blocks read so far
    while data := f.read(block_bytes):
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            pending.append(data)
            continue
        block = b"".join([*pending, data[:cut]]) if pending else data[:cut]
        pending = [data[cut:]] if cut < len(data) else []
        chars, newlines = _checked_counts(block, name, first_line)
        yield block, chars
        first_line += newlines
    if pending:
        block = b"".join(pending)
        chars, _ = _checked_counts(block, name, first_line)
        yield block, chars + 1  # the last line, without a newline


def _checked_counts(block: bytes, name: str, first_line: int) -> tuple[int, int]:
    """Characters and newlines of ``block``; invalid UTF-8 is a :class:`DataError` naming the line and the
    byte within it (Python's decoder says where)."""
    from lmbench.data.split_kernel import utf8_counts

    counts = utf8_counts(block)
    if counts is not None:
        return counts
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as e:
        number = first_line + block.count(b"\n", 0, e.start)
        byte = e.start - (block.rfind(b"\n", 0, e.start) + 1)
        raise DataError(
            f"{name}:{number}: invalid UTF-8 at byte {byte} of the line (expected UTF-8 text)"
        ) from None
    return len(text), text.count("\n")  # not reached while utf8_counts agrees with Python's decoder
