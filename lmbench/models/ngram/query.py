"""Scoring a text straight from an ARPA file, as KenLM's ``query`` does, without building the model.

``lmbench score model.arpa text`` needs the probabilities of the n-grams the text holds, not a model of every
n-gram in the file: each section is parsed as ``logprob<TAB>w1 .. wm<TAB>backoff`` lines (pyarrow's CSV reader,
one string per n-gram; the sections side by side in threads), the text's n-grams are cut from one byte buffer
of its tokens and hashed, and every n-gram of the section probes that hash (one pass per order). The
probabilities then combine as :meth:`NgramLM.token_logprobs` combines them, in the same order and precision
(float32 values, float64 sums), so the figures are bit-identical to building the model.

This path reads only the shape KenLM and SRILM write (tabs between fields, one space between words, every
back-off present below the top order) and checks what it reads: header counts, finite log-probabilities <= 0,
back-offs below +inf, distinct 1-grams holding ``<unk>`` and ``</s>`` with at most all of the probability mass,
and, among the n-grams the text uses, no duplicate and no unlisted context (a fault elsewhere in the file cannot
change the figures, so it is not searched for). For anything else, or anything wrong, it answers None and the
caller builds the model through :func:`~lmbench.models.ngram.arpa.read_arpa`, which reads every ARPA variant and
names the file and line of any problem.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmbench.models.ngram.arpa import MASS_TOLERANCE, NEVER, _read_bytes, _sections

BOS, EOS, UNK = "<s>", "</s>", "<unk>"  # as lmbench.data.vocabulary (not imported: it loads the data package)
LN10 = math.log(10.0)
MAX_ORDER = 10  # NgramLM.MAX_ORDER: a higher order goes to the model path, which refuses it by name
SPACE = ord(" ")
BLOCK = 1 << 22  # bytes per block of pyarrow's CSV reader: a large section is parsed by every core


@dataclass(frozen=True)
class QueryScores:
    """Natural-log probability of every predicted token (each line's words and its ``</s>``, in order),
    whether each was outside the model's vocabulary (scored as ``<unk>``), and tokens per line."""

    logprobs: np.ndarray
    oov: np.ndarray
    tokens_per_line: np.ndarray


@dataclass
class _Order:
    """One ``\\m-grams:`` section: its n-grams as one pyarrow string column, log10 values as float32."""

    ngrams: object  # pyarrow ChunkedArray of strings
    log10prob: np.ndarray
    log10bow: np.ndarray


def query_arpa(path: str | Path, lines: Sequence[Sequence[str]]) -> QueryScores | None:
    """Score ``lines`` (each a list of words, scored as ``<s> words </s>``) under the ARPA file at ``path``;
    None when the file is not in the plain KenLM/SRILM shape, fails a check, or the text holds a literal
    ``<s>`` (the model path handles and reports those)."""
    if not lines or any(BOS in words for words in lines):
        return None
    path = Path(path)
    data = _read_bytes(path)
    declared, sections = _sections(path, data)
    if not declared or sorted(declared) != list(range(1, max(declared) + 1)) or max(declared) > MAX_ORDER:
        return None
    n = max(declared)
    if sorted(sections) != list(range(1, n + 1)):
        return None
    if data.find(b"\r", min(s for s, _ in sections.values()), max(e for _, e in sections.values())) != -1:
        return None
    spans = {m: end - start for m, (start, end) in sections.items()}
    # pyarrow's own threads only for a section with no other of its size to be read beside it (measured: they
    # cost 10% more CPU than reading sections side by side, for the same wall time)
    alone = {m: spans[m] > sum(spans.values()) / 2 for m in spans}
    unigrams = _read_order(data, *sections[1], 1, top=n == 1, count=declared[1], threads=alone[1])
    text = _Text.cut(unigrams, lines) if unigrams is not None else None
    if text is None:
        return None

    def find(m: int) -> tuple[_Order, np.ndarray] | None:
        """Section m read, and the row of every n-gram of the text in it (-1: absent)."""
        order = (
            unigrams
            if m == 1
            else _read_order(data, *sections[m], m, top=m == n, count=declared[m], threads=alone[m])
        )
        wanted = text.ngrams(m)
        found = _lookup(order.ngrams, wanted[1]) if order is not None and wanted is not None else None
        if found is None:
            return None
        row = np.full(len(text.seq), -1, dtype=np.int64)
        row[wanted[0]] = found
        return order, row

    # the sections are read and searched side by side (pyarrow and NumPy release the GIL): query is one thread
    workers = min(n, os.cpu_count() or 1)
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(find, range(n, 0, -1)))[::-1]  # the largest sections first
    else:
        results = [find(m) for m in range(1, n + 1)]
    if any(r is None for r in results):
        return None
    return _combine(text, [r[0] for r in results], [r[1] for r in results])  # type: ignore[index]


def _read_order(
    data: bytes, start: int, end: int, m: int, *, top: bool, count: int, threads: bool = True
) -> _Order | None:
    """One section, or None unless every line is ``logprob<TAB>m words<TAB>backoff`` (no back-off at the top
    order) with finite values, log-probabilities <= 0, and single spaces between non-empty words;
    ``threads``: pyarrow parses blocks of it on every core."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = ["lp", "ngram", *([] if top else ["bow"])]
    types = {"lp": pa.float64(), "ngram": pa.string(), "bow": pa.float64()}
    try:
        table = pcsv.read_csv(
            pa.BufferReader(pa.py_buffer(data).slice(start, end - start)),
            read_options=pcsv.ReadOptions(column_names=names, use_threads=threads, block_size=BLOCK),
            parse_options=pcsv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=pcsv.ConvertOptions(
                column_types={k: types[k] for k in names}, strings_can_be_null=False, check_utf8=True
            ),
        )
    except (pa.ArrowException, ValueError):  # a line that is not three tab-separated fields
        return None
    if table.num_rows != count or any(table.column(k).null_count for k in names):
        return None
    lp = _floats(table.column("lp"))
    bow = np.zeros(0) if top else _floats(table.column("bow"))
    if not (np.isfinite(lp).all() and (lp <= 0).all()) or np.isnan(bow).any() or (bow == np.inf).any():
        return None  # -inf back-offs are allowed: a context that passes nothing down (lmbench's MLE)
    ngrams = table.column("ngram")
    if not all(_words_ok(chunk, m) for chunk in ngrams.chunks):
        return None
    return _Order(ngrams, lp.astype(np.float32), bow.astype(np.float32))


def _floats(column) -> np.ndarray:
    """A float64 column without nulls as NumPy, read from its buffers (``to_numpy`` would import pandas)."""
    parts = [
        np.frombuffer(chunk.buffers()[1], dtype=np.float64, count=len(chunk), offset=chunk.offset * 8)
        for chunk in column.chunks
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def _string_buffers(array) -> tuple[np.ndarray, np.ndarray]:
    """A pyarrow string array's offsets (int64, len + 1) and its bytes."""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=len(array) + 1, offset=array.offset * 4)
    values = array.buffers()[2]
    return offsets.astype(np.int64), np.frombuffer(values, dtype=np.uint8) if values else np.zeros(
        0, np.uint8
    )


def _words_ok(array, m: int) -> bool:
    """Every string is m non-empty words joined by single spaces: no empty string, no space at either end nor
    two together, and m - 1 spaces per string in all (a string of other length could only be offset by
    another, and neither would match any n-gram of the text)."""
    if len(array) == 0:
        return True
    offsets, values = _string_buffers(array)
    if (offsets[1:] <= offsets[:-1]).any():
        return False
    space = values[offsets[0] : offsets[-1]] == SPACE
    starts, last = offsets[:-1] - offsets[0], offsets[1:] - 1 - offsets[0]
    if space[starts].any() or space[last].any() or (space[1:] & space[:-1]).any():
        return False
    return int(np.count_nonzero(space)) == (m - 1) * len(array)


@dataclass
class _Text:
    """The text as ``<s> w1 .. wk </s>`` lines back to back: 1-gram rows (``<s>`` is row V, as it need not be
    listed; unknown words are ``<unk>``'s row), and the same lines in one byte buffer, so that every n-gram
    ending at a token is one slice of it."""

    seq: np.ndarray
    is_bos: np.ndarray
    is_eos: np.ndarray
    oov_words: np.ndarray  # per word (not marker): outside the vocabulary, or a literal <unk>
    tokens_per_line: np.ndarray
    depth: np.ndarray  # tokens before each one in its line (<s> included)
    begin: np.ndarray  # byte offset of each token in ``buffer``
    stop: np.ndarray
    buffer: np.ndarray

    @classmethod
    def cut(cls, unigrams: _Order, lines: Sequence[Sequence[str]]) -> _Text | None:
        """None when the 1-grams are not a vocabulary: duplicates, no ``<unk>`` or ``</s>``, more than all of
        the probability mass (the model path names the problem)."""
        strings = unigrams.ngrams.combine_chunks()
        V = len(strings)
        if len(_call("dictionary_encode", strings).dictionary) != V:
            return None
        unk, eos, listed_bos = _index_in(_strings([UNK, EOS, BOS]), strings)
        if unk < 0 or eos < 0:
            return None
        keep = (unigrams.log10prob > NEVER) & (np.arange(V) != listed_bos)  # <s>: never predicted
        if float(np.sum(np.power(10.0, unigrams.log10prob[keep].astype(np.float64)))) > 1.0 + MASS_TOLERANCE:
            return None
        words = _index_in(_strings([w for ws in lines for w in ws]), strings)
        size = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines)) + 2
        line_begin = np.zeros(len(lines), dtype=np.int64)
        np.cumsum(size[:-1], out=line_begin[1:])
        seq = np.empty(int(size.sum()), dtype=np.int64)
        is_bos = np.zeros(len(seq), dtype=bool)
        is_bos[line_begin] = True
        is_eos = np.zeros(len(seq), dtype=bool)
        is_eos[line_begin + size - 1] = True
        seq[is_bos], seq[is_eos] = V, eos
        seq[~(is_bos | is_eos)] = np.where(words < 0, unk, words)
        offsets, values = _string_buffers(strings)
        source = np.concatenate([values[: offsets[-1]], np.frombuffer(BOS.encode(), dtype=np.uint8)])
        source_start = np.append(offsets[:-1], offsets[-1])
        lengths = np.append(np.diff(offsets), len(BOS))[seq]
        begin = np.zeros(len(seq), dtype=np.int64)
        np.cumsum(lengths[:-1] + 1, out=begin[1:])
        buffer = np.full(int(begin[-1] + lengths[-1]), SPACE, dtype=np.uint8)
        buffer[_ranges(begin, lengths)] = source[_ranges(source_start[seq], lengths)]
        return cls(
            seq=seq,
            is_bos=is_bos,
            is_eos=is_eos,
            oov_words=(words < 0) | (words == unk),
            tokens_per_line=size - 1,
            depth=np.arange(len(seq)) - np.repeat(line_begin, size),
            begin=begin,
            stop=begin + lengths,
            buffer=buffer,
        )

    def ngrams(self, m: int) -> tuple[np.ndarray, object] | None:
        """The tokens with m - 1 before them in their line, and the m-gram ending at each (pyarrow strings);
        None for a text too large for 32-bit string offsets (the model path scores it)."""
        import pyarrow as pa

        at = np.flatnonzero(self.depth >= m - 1)
        first = self.begin[at - (m - 1)]
        length = self.stop[at] - first
        offsets = np.zeros(len(at) + 1, dtype=np.int64)
        np.cumsum(length, out=offsets[1:])
        if offsets[-1] >= 2**31:
            return None
        values = self.buffer[_ranges(first, length)]
        return at, pa.StringArray.from_buffers(
            len(at), pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(values)
        )


def _combine(text: _Text, orders: list[_Order], rows: list[np.ndarray]) -> QueryScores | None:
    """Each target's probability from ``rows[m-1][t]``, the row of the m-gram ending at token t (-1: none),
    as NgramLM.token_logprobs combines them: the longest stored n-gram ending at the target, plus the
    back-offs of the longer contexts (ending one token earlier); float32 tables, float64 sums, in the same
    order. None when a stored n-gram's context is not listed (the model path names it)."""
    for m in range(2, len(orders) + 1):
        if ((rows[m - 1][1:] >= 0) & (rows[m - 2][:-1] < 0)).any():
            return None
    targets = np.flatnonzero(~text.is_bos)
    uni = orders[0].log10prob
    uni = np.where(uni > NEVER, uni, np.float32(-np.inf))
    out = np.zeros(len(targets))
    done = np.zeros(len(targets), dtype=bool)
    for m in range(len(orders), 0, -1):
        row = rows[m - 1][targets]
        hit = (row >= 0) & ~done
        out[hit] += (uni if m == 1 else orders[m - 1].log10prob)[row[hit]]
        done |= hit
        if m > 1:
            ctx = rows[m - 2][targets - 1]
            miss = ~done & (ctx >= 0)
            out[miss] += orders[m - 2].log10bow[ctx[miss]]
    if not done.all():
        return None
    oov = np.zeros(len(text.seq), dtype=bool)
    oov[~(text.is_bos | text.is_eos)] = text.oov_words
    return QueryScores(out * LN10, oov[targets], text.tokens_per_line)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices starts[i] .. starts[i] + lengths[i] - 1 of every i, concatenated."""
    ends = np.cumsum(lengths)
    return np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(starts - (ends - lengths), lengths)


def _int32(array, missing: int | None = None) -> np.ndarray:
    """An int32 pyarrow array as NumPy, nulls made ``missing`` (read from its buffers: ``fill_null`` makes a
    pyarrow scalar, which imports pandas, a third of a second)."""
    validity, data = array.buffers()[:2]
    values = np.frombuffer(data, dtype=np.int32, count=len(array), offset=array.offset * 4)
    if validity is None or missing is None:
        return values
    bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
    return np.where(bits[array.offset : array.offset + len(array)].astype(bool), values, np.int32(missing))


def _strings(words: list[str]):
    """A pyarrow string array of ``words`` (none holding a newline), built from its buffers: ``pa.array`` on
    a list imports pandas (0.3 s)."""
    import pyarrow as pa

    joined = np.frombuffer("\n".join(words).encode("utf-8"), dtype=np.uint8)
    ends = np.append(np.flatnonzero(joined == ord("\n")), len(joined))
    offsets = np.zeros(len(words) + 1, dtype=np.int32)
    offsets[1:] = ends - np.arange(len(words))  # each end, less the newlines before it
    values = joined[joined != ord("\n")]
    return pa.StringArray.from_buffers(len(words), pa.py_buffer(offsets), pa.py_buffer(values))


def _call(name: str, *args, options=None):
    """A pyarrow compute function by name. pyarrow.compute builds a Python wrapper for each of its functions
    at import (0.1 s of start-up) and its scalars import pandas (0.3 s): neither is used."""
    try:
        from pyarrow._compute import call_function
    except ImportError:  # pragma: no cover - a pyarrow that moved its private module
        from pyarrow.compute import call_function
    return call_function(name, list(args), options)


def _index_in(values, value_set) -> np.ndarray:
    """Position of each of ``values`` in ``value_set`` (distinct strings), -1 where absent, as int64."""
    try:
        from pyarrow._compute import SetLookupOptions
    except ImportError:  # pragma: no cover
        from pyarrow.compute import SetLookupOptions
    found = _call("index_in", values, options=SetLookupOptions(value_set=value_set))
    chunks = getattr(found, "chunks", [found])
    return np.concatenate([_int32(c, missing=-1) for c in chunks] or [np.zeros(0, np.int32)]).astype(np.int64)


def _lookup(ngrams, wanted) -> np.ndarray | None:
    """Row of each wanted string among the section's n-grams (-1: absent): the distinct wanted strings are
    hashed and every n-gram of the section probes them (cheaper than hashing the section); None when the
    section lists one of them twice."""
    distinct = _call("dictionary_encode", wanted)
    hits = _index_in(ngrams, distinct.dictionary)
    rows = np.flatnonzero(hits >= 0)
    row_of = np.full(len(distinct.dictionary), -1, dtype=np.int64)
    row_of[hits[rows]] = rows
    if np.count_nonzero(row_of >= 0) != len(rows):
        return None  # a duplicate n-gram: the model path names its lines
    return row_of[_int32(distinct.indices)]
