"""ARPA back-off files (the format of KenLM, SRILM, IRSTLM): write and read, plain or gzip, vectorised.

ARPA stores log10 probabilities and back-off weights; ``<s>`` gets KenLM's -99 ("never predicted").
Writing formats a block of lines at a time with a compiled (Numba) loop straight into one byte buffer
(:mod:`~lmbench.models.ngram.arpa_kernels`: words copied from one byte blob of the vocabulary, numbers written
from digit lookup tables); reading parses well-formed files (one tab or space between fields and words, what
KenLM, SRILM and lmbench write) with pyarrow's multi-threaded CSV reader and maps words to ids with one C++ hash
lookup per word column; anything else goes through pandas' C parser, which also finds what is wrong. Reading
validates what it reads: every problem is a :class:`DataError` naming the file and, where there is one, the
line, and the model is checked before it is returned: a final ``\\end\\`` line, header counts equal to the
sections' lines, log-probabilities finite and <= 0 (``-inf`` is refused: KenLM and SRILM write -99 for a word
never predicted), back-offs below +inf, 1-gram probabilities summing to at most one, no duplicate n-grams,
``<unk>`` and ``</s>`` present, every context listed. All are errors, never warnings: each makes the
perplexities computed from the model wrong.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import sys
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

import numpy as np

from lmbench.errors import DataError

if TYPE_CHECKING:  # the rest is imported where used: `lmbench score` reads sections through this module
    import pandas as pd

    from lmbench.data.vocabulary import Vocabulary

NEVER = -99.0  # KenLM/SRILM's log10 "probability" of <s>
LINES_PER_BLOCK = 1 << 16  # lines formatted at once when writing
FORMAT_THREADS = min(4, os.cpu_count() or 1)  # blocks of lines formatted at once while the text is written
PROGRESS_ROWS = 20_000_000  # n-grams above which a terminal gets progress bars by default
ARROW_BLOCK = 1 << 24  # bytes per block parsed by one of pyarrow's threads (its default, 1 MiB, is slower)
GZIP_LEVEL = 1  # fast: compressing at level 9 takes longer than everything else together


class BackoffModel(Protocol):
    """What writing needs of a model (an :class:`~lmbench.models.ngram.NgramLM`): its vocabulary and, per
    order, sorted keys with their log10 probabilities and back-offs."""

    @property
    def vocab(self) -> Vocabulary: ...

    keys_: list[np.ndarray]
    log10prob_: list[np.ndarray]
    log10bow_: list[np.ndarray]


@dataclass
class ArpaTables:
    """What an ARPA file holds, in the model's stored layout (``NgramLM.from_tables`` builds the model)."""

    vocab: Vocabulary
    keys: Sequence[np.ndarray]
    log10prob: Sequence[np.ndarray]
    log10bow: Sequence[np.ndarray]


# ------------------------------------------------------------------------------------------------ writing
def block_words(keys: Sequence, m: int, start: int, stop: int, vocab_size: int) -> np.ndarray:
    """Word ids [rows, m] of the order-m n-grams in rows ``start .. stop-1``. A key is context row x |V| +
    word, and a run of consecutive rows has its contexts in a run of rows of order m-1, so each order below is
    read only over the rows the block needs (``keys``: every order's keys, in memory or on disk)."""
    from lmbench.models.ngram.arpa_kernels import split_keys
    from lmbench.models.ngram.storage import rows

    dtype = np.int32 if vocab_size < 2**31 else np.int64
    row = np.arange(start, min(stop, len(keys[m - 1])), dtype=np.int64)
    words = np.empty((len(row), m), dtype=dtype)
    lo, hi = start, start + len(row)
    for j in range(m - 1, -1, -1):
        if len(row) == 0:
            break
        split_keys(rows(keys[j], lo, hi), lo, row, vocab_size, words, j)
        lo, hi = int(row[0]), int(row[-1]) + 1  # the context rows, in order: keys are sorted
    return words


def _format_block(
    words: np.ndarray,
    logprob: np.ndarray,
    logbow: np.ndarray | None,
    vocab_text: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """The ARPA lines of a block of n-grams (``words`` [n, m] ids, their log10 values) as a uint8 array:
    log10 values to 7 decimals (see :func:`arpa_kernels.format_lines`)."""
    from lmbench.models.ngram.arpa_kernels import fallback_texts, format_lines

    columns = (logprob,) if logbow is None else (logprob, logbow)  # the top order has no back-offs:
    # the kernel is then handed the log-probabilities in their place, unread
    return format_lines(
        words, logprob, columns[-1], logbow is not None, *vocab_text, *fallback_texts(*columns)
    )


def _vocab_text(tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every word's UTF-8 bytes in one blob (with 8 spare bytes at its end), and where each starts (plus
    the end)."""
    encoded = [t.encode("utf-8") for t in tokens]
    starts = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=starts[1:])
    return np.frombuffer(b"".join(encoded) + bytes(8), dtype=np.uint8), starts


def arpa_chunks(model: BackoffModel) -> Iterator[bytes | memoryview]:
    """The ARPA text of ``model`` in blocks of bytes (header, then each section a block of lines at a time)."""
    stored = getattr(model, "stored_", None)  # tables made on disk: read there a block at a time
    keys, log10prob, log10bow = stored or (model.keys_, model.log10prob_, model.log10bow_)
    progress = getattr(model, "progress", None)
    if progress is None:
        progress = sys.stderr.isatty() and sum(len(k) for k in keys) > PROGRESS_ROWS
    return arpa_text(model.vocab.tokens, keys, log10prob, log10bow, progress=progress)


def arpa_text(
    tokens: list[str], keys: Sequence, log10prob: Sequence, log10bow: Sequence, *, progress: bool = False
) -> Iterator[bytes | memoryview]:
    """ARPA text of back-off tables given per order (arrays in memory or :class:`DiskArray`, read a block of
    rows at a time): the header, then each section in blocks of lines (``progress``: a bar on stderr).

    Blocks are formatted by ``FORMAT_THREADS`` threads (the compiled loops release the GIL) a few blocks
    ahead of the one handed out, so formatting overlaps whatever the caller does with the text (writing,
    compressing)."""
    from tqdm import tqdm

    from lmbench.models.ngram.storage import rows

    vocab_text = _vocab_text(tokens)
    V, n = len(tokens), len(keys)
    header = ["", "\\data\\"]
    for m in range(1, n + 1):  # n-grams with a -inf log-probability are left out (order 1: <s> is -99)
        size = len(keys[m - 1])
        if m > 1:
            size = sum(
                int(np.isfinite(rows(log10prob[m - 1], a, a + LINES_PER_BLOCK * 16)).sum())
                for a in range(0, len(keys[m - 1]), LINES_PER_BLOCK * 16)
            )
        header.append(f"ngram {m}={size}")
    yield ("\n".join(header) + "\n").encode()

    def block_text(block: tuple[int, int]) -> np.ndarray:
        """The lines of rows ``a .. a + LINES_PER_BLOCK - 1`` of order m."""
        m, a = block
        b = a + LINES_PER_BLOCK
        words = block_words(keys, m, a, b, V)
        lp = rows(log10prob[m - 1], a, b)
        bow = rows(log10bow[m - 1], a, b) if m < n else None
        if m > 1:
            keep = np.isfinite(lp)
            if not keep.all():
                words, lp = words[keep], lp[keep]
                bow = bow[keep] if bow is not None else None
        else:
            lp = np.where(np.isfinite(lp), lp, np.float32(NEVER))
        return _format_block(words, lp, bow, vocab_text)

    blocks = [(m, a) for m in range(1, n + 1) for a in range(0, len(keys[m - 1]), LINES_PER_BLOCK)]
    bar = tqdm(
        total=sum(len(k) for k in keys), unit="n-gram", unit_scale=True, desc="ARPA", disable=not progress
    )
    with (
        ThreadPoolExecutor(FORMAT_THREADS) as pool,
        closing(_in_order(pool, block_text, blocks, ahead=2 * FORMAT_THREADS)) as texts,
    ):
        for m in range(1, n + 1):
            yield f"\n\\{m}-grams:\n".encode()
            for a in range(0, len(keys[m - 1]), LINES_PER_BLOCK):
                text = next(texts)
                bar.update(min(LINES_PER_BLOCK, len(keys[m - 1]) - a))
                if len(text):
                    yield memoryview(text)
    bar.close()
    yield b"\n\\end\\\n"


def _in_order(pool: ThreadPoolExecutor, fn: Callable, items: Sequence, ahead: int) -> Iterator:
    """``fn(item)`` for each item in order, computed by ``pool`` up to ``ahead`` items ahead of the one
    handed out (pending ones are cancelled if the caller stops early)."""
    pending: deque[Future] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def write_arpa(model: BackoffModel, path: str | Path | IO[bytes]) -> None:
    """Write ``model`` as ARPA (log10 values to 7 decimals), gzip-compressed for ``.gz``; a regular file is
    written atomically, a binary stream (stdout), a character device or a FIFO as the text is formatted
    (:func:`lmbench.io.open_output`)."""
    if not isinstance(path, (str, Path)):
        for chunk in arpa_chunks(model):
            path.write(chunk)
        return
    from lmbench.io import open_output

    path = Path(path)
    with open_output(path, "ARPA file") as raw:
        out: IO[bytes] = (  # the gzip header names the file (less .gz, as gzip does), not the temporary one
            gzip.GzipFile(path.name, "wb", GZIP_LEVEL, fileobj=raw, mtime=0)  # type: ignore[assignment]
            if path.suffix == ".gz"
            else raw
        )
        for chunk in arpa_chunks(model):
            out.write(chunk)
        if out is not raw:
            out.close()


# ------------------------------------------------------------------------------------------------ reading
_HEADER = re.compile(rb"^ngram\s+(\d+)\s*=\s*(\d+)\s*$")
_SECTION = re.compile(rb"^\\(\d+)-grams:\s*$")


def _nan_backoff(m: int) -> re.Pattern[bytes]:
    """A line of m words whose back-off field (the last of m + 2) is a literal NaN."""
    return re.compile(rb"(?im)^[ \t]*\S+(?:[ \t]+\S+){%d}[ \t]+[+-]?nan[ \t\r]*$" % m)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip (by its magic number, not its name)."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected an ARPA file")
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip file ({e or type(e).__name__})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    return data


def _line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _markers(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every line that begins with a backslash (``\\data\\``, ``\\m-grams:``, ``\\end\\``).
    Backslashes are found with a one-byte search (memchr-fast; a two-byte search for newline + backslash
    is several times slower on a large file), each checked for starting a line."""
    out = []
    at = data.find(b"\\")
    while at != -1:
        if at == 0 or data[at - 1] == 10:  # b"\n"
            end = data.find(b"\n", at)
            end = len(data) if end == -1 else end
            out.append((at, end))
            at = end
        at = data.find(b"\\", at + 1)
    return out


def _sections(path: Path, data: bytes) -> tuple[dict[int, int], dict[int, tuple[int, int]]]:
    """Declared counts from ``\\data\\`` and the byte range of each ``\\m-grams:`` section."""
    markers = [(start, end, data[start:end].rstrip()) for start, end in _markers(data)]
    names = [name for _, _, name in markers]
    if b"\\data\\" not in names:
        raise DataError(f"{path}: not an ARPA file (no \\data\\ line)")
    at = names.index(b"\\data\\")
    data_end = markers[at][1]
    following = markers[at + 1 :]
    header_end = following[0][0] if following else len(data)
    declared: dict[int, int] = {}
    offset = data_end + 1
    for raw in data[data_end:header_end].split(b"\n")[1:]:
        line = raw.strip()
        if line:
            match = _HEADER.match(line)
            if not match:
                text = line[:60].decode("utf-8", "replace")
                raise DataError(
                    f"{path}:{_line_at(data, offset)}: expected 'ngram N=COUNT' in the \\data\\ header, got {text!r}"
                )
            if int(match.group(1)) in declared:
                raise DataError(
                    f"{path}:{_line_at(data, offset)}: a second 'ngram {int(match.group(1))}=' count in the \\data\\ header"
                )
            declared[int(match.group(1))] = int(match.group(2))
        offset += len(raw) + 1
    sections: dict[int, tuple[int, int]] = {}
    if not any(name == b"\\end\\" for _, _, name in following):
        raise DataError(
            f"{path}:{_line_at(data, len(data))}: no \\end\\ line: the file is truncated or not a complete "
            "ARPA file (KenLM and SRILM end every model with \\end\\)"
        )
    for i, (start, end, name) in enumerate(following):
        if name == b"\\end\\":
            break
        match = _SECTION.match(name)
        if not match:
            text = name[:60].decode("utf-8", "replace")
            raise DataError(f"{path}:{_line_at(data, start)}: unexpected line {text!r}")
        m = int(match.group(1))
        if m in sections:
            raise DataError(f"{path}:{_line_at(data, start)}: second \\{m}-grams: section")
        stop = following[i + 1][0] if i + 1 < len(following) else len(data)
        sections[m] = (min(end + 1, stop), stop)
    return declared, sections


class _Section:
    """One parsed ``\\m-grams:`` section: a frame with column 0 the log10 probability (float), 1..m the words,
    m+1 the back-off (NaN where absent); file line numbers are worked out only for an error message."""

    def __init__(self, path: Path, data: bytes, m: int, start: int, end: int):
        import pandas as pd

        self.path, self.m, self.start, self.end = path, m, start, end
        self.first_line = 0
        self._data = data
        try:
            data[start:end].decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(
                f"{path}:{_line_at(data, start + e.start)}: invalid UTF-8 (ARPA files are read as UTF-8)"
            ) from None
        names = list(range(m + 2))
        options = dict(
            sep=r"\s+", header=None, names=names, engine="c", quoting=3, skip_blank_lines=True,
            keep_default_na=False, na_values={m + 1: [""]}, encoding="utf-8",
        )  # fmt: skip
        try:
            try:
                words = dict.fromkeys(range(1, m + 1), object)  # Python strings, not pyarrow-backed ones
                self.frame = pd.read_csv(
                    io.BytesIO(data[start:end]), dtype={0: np.float64, **words, m + 1: np.float64}, **options
                )
            except ValueError:  # a field that is not a number (or a literal nan): read as text to see which
                self.frame = pd.read_csv(io.BytesIO(data[start:end]), dtype=object, **options)
                for column, what in ((0, "log10 probability"), (m + 1, "back-off weight")):
                    values = self.frame[column]
                    numbers = pd.to_numeric(values, errors="coerce")
                    bad = numbers.isna() & values.notna()
                    bad &= ~values.astype(str).str.lower().isin(["nan", "+nan", "-nan"])
                    if bad.any():
                        i = int(np.flatnonzero(bad.to_numpy())[0])
                        raise DataError(
                            f"{self.where(i)}: {what} of a {m}-gram is not a number: {values.iloc[i]!r}"
                        ) from None
                    self.frame[column] = numbers.astype(np.float64)
        except (pd.errors.ParserError, ValueError) as e:
            found = re.search(r"line (\d+)", str(e))
            where = f"{path}:{_line_at(data, start) + int(found.group(1)) - 1}" if found else str(path)
            raise DataError(
                f"{where}: malformed {m}-gram line (expected 'logprob<TAB>{m} words[<TAB>backoff]')"
            ) from None
        if len(self.frame) and (self.frame[m] == "").any():
            i = int(np.flatnonzero((self.frame[m] == "").to_numpy())[0])
            raise DataError(
                f"{self.where(i)}: malformed {m}-gram line (expected 'logprob<TAB>{m} words[<TAB>backoff]')"
            )

    def __len__(self) -> int:
        return len(self.frame)

    def words(self) -> list[str]:
        """The words of a 1-gram section, in file order."""
        return list(self.frame[1])

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """Log10 probabilities and back-offs (NaN where absent), float64."""
        return self.frame[0].to_numpy(dtype=np.float64), np.array(self.frame[self.m + 1], dtype=np.float64)

    def word_ids(self, file_words: pd.Index) -> np.ndarray:
        """Each entry's words as positions in the file's 1-gram list: integers [entries, m]."""
        import pandas as pd

        ids = np.empty((len(self.frame), self.m), dtype=np.int64)
        for j in range(self.m):
            # object Index on both sides: a plain array would be inferred as pyarrow strings (5x slower)
            local = file_words.get_indexer(pd.Index(self.frame[j + 1].to_numpy(dtype=object), dtype=object))
            if (local < 0).any():
                i = int(np.flatnonzero(local < 0)[0])
                raise DataError(
                    f"{self.where(i)}: word {self.frame[j + 1].iloc[i]!r} of a {self.m}-gram is not listed in \\1-grams:"
                )
            ids[:, j] = local
        self.frame = None  # type: ignore[assignment]
        return ids

    def where(self, row: int) -> str:
        return _where(self.path, self._data, self.start, self.end, row)


def _where(path: Path, data: bytes, start: int, end: int, row: int) -> str:
    """``file:line`` of the ``row``-th entry of the section in ``data[start:end]`` (blank lines skipped)."""
    lines = data[start:end].split(b"\n")
    seen = -1
    for i, line in enumerate(lines):
        seen += bool(line.strip())
        if seen == row:
            return f"{path}:{_line_at(data, start) + i}"
    return str(path)


class _FastSection:
    """One ``\\m-grams:`` section read by :func:`_read_fast`: values and word ids already worked out."""

    def __init__(self, path: Path, data: bytes, m: int, span: tuple[int, int], columns: dict):
        self.path, self.m, self._data = path, m, data
        self.start, self.end = span
        self._words: list[str] = columns.get("words", [])
        self._lp, self._bow, self._ids = columns["lp"], columns["bow"], columns["ids"]

    def __len__(self) -> int:
        return len(self._lp)

    def words(self) -> list[str]:
        return self._words

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        return self._lp, self._bow

    def word_ids(self, file_words: pd.Index) -> np.ndarray:
        ids, self._ids = self._ids, None
        return ids

    def where(self, row: int) -> str:
        return _where(self.path, self._data, self.start, self.end, row)


def _tabs_to_spaces(data: bytes, start: int, end: int) -> np.ndarray:
    """``data[start:end]`` with every tab made a space (so one single-character delimiter splits fields and
    words alike): NumPy over cache-sized pieces, three times faster than ``bytes.translate``."""
    src = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
    out = np.empty_like(src)
    piece = 1 << 18
    is_tab, shift = np.empty(piece, dtype=bool), np.empty(piece, dtype=np.uint8)
    for a in range(0, len(src), piece):
        s = src[a : a + piece]
        n = len(s)
        np.equal(s, ord("\t"), out=is_tab[:n])
        np.multiply(is_tab[:n], np.uint8(ord(" ") - ord("\t")), out=shift[:n])
        np.add(s, shift[:n], out=out[a : a + n])
    return out


def _read_fast(
    path: Path, data: bytes, sections: dict[int, tuple[int, int]], declared: dict[int, int], order: int
) -> dict[int, _FastSection] | None:
    """Every section of a well-formed file read with pyarrow (multi-threaded C++), or None for anything
    unusual, which the pandas path then reads and reports: a line that is not ``logprob w1 .. wm [backoff]``
    with single tabs or spaces between fields (blank lines aside), missing back-offs (SRILM), a value that is
    not a finite number or a log-probability above 0, a word not among the 1-grams, duplicate or empty
    1-grams, invalid UTF-8, carriage returns, a count that differs from the header's."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if any(m not in sections for m in range(1, order + 1)):
        return None
    lo = min(start for start, _ in sections.values())
    hi = max(end for _, end in sections.values())
    if data.find(b"\r", lo, hi) != -1:
        return None
    text = pa.py_buffer(_tabs_to_spaces(data, lo, hi))
    out: dict[int, _FastSection] = {}
    lookup_words = None
    for m in range(1, order + 1):
        start, end = sections[m]
        table = _arrow_section(text.slice(start - lo, end - start), m, order)
        if table is None or table.num_rows != declared[m]:
            return None
        values = _arrow_values(table, m < order)
        if values is None:
            return None
        columns: dict = {"lp": values[0], "bow": values[1]}
        if m == 1:
            unigrams = _arrow_unigrams(table)
            if unigrams is None:
                return None
            columns["words"] = unigrams.to_pylist()
            lookup_words = pc.SetLookupOptions(value_set=unigrams)
        columns["ids"] = _arrow_word_ids(table, m, lookup_words)
        if columns["ids"] is None:
            return None
        del table
        out[m] = _FastSection(path, data, m, sections[m], columns)
    return out


def _arrow_section(text, m: int, order: int):
    """One section's lines as a pyarrow table (columns lp, w0 .. w{m-1} and, below the top order, bow), or
    None where a line does not split into those fields."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = ["lp", *(f"w{j}" for j in range(m)), *(["bow"] if m < order else [])]
    types = {name: pa.float64() if name in ("lp", "bow") else pa.string() for name in names}
    try:
        return pcsv.read_csv(
            pa.BufferReader(text),
            read_options=pcsv.ReadOptions(column_names=names, use_threads=True, block_size=ARROW_BLOCK),
            parse_options=pcsv.ParseOptions(delimiter=" ", quote_char=False),
            convert_options=pcsv.ConvertOptions(
                column_types=types, null_values=[""], strings_can_be_null=False, check_utf8=True
            ),
        )
    except (pa.ArrowException, ValueError):  # a line pyarrow cannot split into the expected fields
        return None


def _arrow_values(table, with_backoff: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """The log10 probabilities and back-offs (zeros without ``with_backoff``) as float64, or None where one
    is missing, not finite, or a probability above 0."""
    for column in ("lp", "bow")[: 1 + with_backoff]:
        if table.column(column).null_count:
            return None
    lp = _to_numpy(table.column("lp"), np.float64)
    bow = _to_numpy(table.column("bow"), np.float64) if with_backoff else np.zeros(table.num_rows)
    if not (np.isfinite(lp).all() and np.isfinite(bow).all() and (lp <= 0).all()):
        return None
    return lp, bow


def _arrow_unigrams(table):
    """The 1-grams' words as one pyarrow array, or None where one is empty or listed twice."""
    import pyarrow.compute as pc

    unigrams = table.column("w0").combine_chunks()
    if pc.count_distinct(unigrams).as_py() != len(unigrams) or (
        len(unigrams) and pc.min(pc.binary_length(unigrams)).as_py() == 0
    ):
        return None
    return unigrams


def _arrow_word_ids(table, m: int, lookup_words) -> np.ndarray | None:
    """Each n-gram's words as 1-gram entry numbers (int32 [rows, m]), one hash lookup per word column; None
    where a word is not among the 1-grams."""
    import pyarrow.compute as pc

    ids = np.empty((table.num_rows, m), dtype=np.int32, order="F")  # filled a column at a time
    for j in range(m):
        local = pc.index_in(table.column(f"w{j}"), options=lookup_words)
        if local.null_count:
            return None
        ids[:, j] = _to_numpy(local, np.int32)
    return ids


def _to_numpy(column, dtype: type) -> np.ndarray:
    """A pyarrow column without nulls as a NumPy array, read from its buffers (pyarrow's ``to_numpy``
    imports pandas, a third of a second that scoring a small text should not pay)."""
    parts = [
        np.frombuffer(
            chunk.buffers()[1], dtype=dtype, count=len(chunk), offset=chunk.offset * np.dtype(dtype).itemsize
        )
        for chunk in getattr(column, "chunks", [column])
    ]
    return np.concatenate(parts) if len(parts) != 1 else parts[0].copy()


MASS_TOLERANCE = (
    1e-4  # 7-decimal log10 values are off by at most 2.3e-7 each, relatively; a real excess is larger
)


def check_unigram_mass(path: Path, section: _Section | _FastSection, lp: np.ndarray) -> None:
    """The 1-gram probabilities (``<s>``'s -99 aside) must sum to at most one: a back-off model's unigrams are
    a distribution (``<s>``, never predicted, is left out: KenLM writes 0 for it), and more than one makes every perplexity computed from it wrong. KenLM does not check
    this and SRILM only warns (``ngram -debug``); lmbench refuses such a file, naming the first 1-gram line."""
    from lmbench.data.vocabulary import BOS

    predicted = (lp > NEVER) & (np.asarray(section.words(), dtype=object) != BOS)  # KenLM gives <s> 0
    mass = float(np.sum(np.power(10.0, lp[predicted])))
    if mass > 1.0 + MASS_TOLERANCE:
        raise DataError(
            f"{section.where(0)}: the 1-gram probabilities sum to {mass:.6f}, more than one: not a probability "
            "distribution (KenLM reads such files without a check; lmbench refuses them)"
        )


def read_arpa(path: str | Path, vocab: Vocabulary | None = None, *, max_order: int) -> ArpaTables:
    """The tables of an ARPA file (orders up to ``max_order``); words outside ``vocab`` are dropped with
    their n-grams. ``NgramLM.from_arpa`` makes the model."""
    from lmbench.data.vocabulary import SPECIALS, Vocabulary

    path = Path(path)
    data = _read_bytes(path)
    declared, sections = _sections(path, data)
    order = _declared_order(path, declared, sections, max_order)
    parsed = _read_sections(path, data, sections, declared, order)
    file_words = _file_words(path, parsed[1])
    if vocab is None:
        vocab = Vocabulary([*SPECIALS, *(w for w in file_words if w not in SPECIALS)])
    to_vocab = np.fromiter(
        (vocab.index.get(w, -1) for w in file_words), dtype=np.int64, count=len(file_words)
    )
    keys_, lp_, bow_ = [], [], []
    for m in range(1, order + 1):
        section = parsed[m]
        lp, bow = _checked_values(path, data, section, top=m == order)
        ids = to_vocab[section.word_ids(file_words)]
        rows = np.arange(len(ids))  # entry number in the section, for error messages
        ok = (ids >= 0).all(axis=1)
        if not ok.all():
            ids, lp, bow, rows = ids[ok], lp[ok], bow[ok], rows[ok]
        if m == 1:
            keys, lp, bow = _unigram_arrays(vocab, ids[:, 0], lp, bow)
        else:
            keys = _keys(section, ids, rows, keys_, len(vocab))
            del ids
            keys, sort = _key_order(section, keys, rows)
            lp, bow = (lp, bow) if sort is None else (lp[sort], bow[sort])
        keys_.append(keys)
        lp_.append(lp.astype(np.float32))
        bow_.append(bow.astype(np.float32) if m < order else np.zeros(0, dtype=np.float32))
    return ArpaTables(vocab, keys_, lp_, bow_)


def _declared_order(
    path: Path, declared: dict[int, int], sections: dict[int, tuple[int, int]], max_order: int
) -> int:
    """The model's order from the ``\\data\\`` header, checked: counts for orders 1..n and a 1-gram section."""
    if not declared:
        raise DataError(f"{path}: the \\data\\ header declares no n-gram counts")
    order = max(declared)
    if order > max_order:
        raise DataError(f"{path}: declares order {order}; lmbench reads orders 1 to {max_order}")
    if sorted(declared) != list(range(1, order + 1)):
        raise DataError(
            f"{path}: the \\data\\ header declares orders {sorted(declared)}, expected 1..{order}"
        )
    if 1 not in sections:
        raise DataError(f"{path}: no \\1-grams: section")
    return order


def _read_sections(
    path: Path, data: bytes, sections: dict[int, tuple[int, int]], declared: dict[int, int], order: int
) -> dict[int, _Section] | dict[int, _FastSection]:
    """Every section, read by pyarrow where the file is well-formed, else by pandas (which also finds what
    is wrong), each checked against its count in the header; a section the header leaves out is refused."""
    parsed: dict[int, _Section] | dict[int, _FastSection] | None = _read_fast(
        path, data, sections, declared, order
    )
    if parsed is None:
        parsed = _read_pandas(path, data, sections, declared, order)
    extra = sorted(set(sections) - set(declared))
    if extra:
        raise DataError(f"{path}: \\{extra[0]}-grams: section not declared in the \\data\\ header")
    return parsed


def _read_pandas(
    path: Path, data: bytes, sections: dict[int, tuple[int, int]], declared: dict[int, int], order: int
) -> dict[int, _Section]:
    """Every section read with pandas (what the fast reader leaves: unusual files, and the ones with errors
    to report), each checked against its count in the header."""
    parsed = {}
    for m in range(1, order + 1):
        if m not in sections:
            raise DataError(
                f"{path}: header declares {declared[m]} {m}-grams but there is no \\{m}-grams: section"
            )
        parsed[m] = _Section(path, data, m, *sections[m])
        if len(parsed[m]) != declared[m]:
            raise DataError(
                f"{path}: header declares {declared[m]} {m}-grams but the file has {len(parsed[m])}"
            )
    return parsed


def _file_words(path: Path, uni: _Section | _FastSection) -> pd.Index | list[str]:
    """The 1-grams' words in file order, checked: no duplicates, ``<unk>`` and ``</s>`` among them."""
    from lmbench.data.vocabulary import EOS, UNK

    file_words: pd.Index | list[str] = uni.words()
    if isinstance(uni, _Section):  # pandas read it: find duplicates (the fast reader has refused them)
        import pandas as pd

        # Python strings: pandas' pyarrow-backed default would convert every word looked up (5x slower)
        file_words = pd.Index(np.array(file_words, dtype=object), dtype=object)
        if file_words.has_duplicates:
            dup = np.flatnonzero(file_words.duplicated())[0]
            raise DataError(f"{uni.where(int(dup))}: duplicate 1-gram {file_words[dup]!r}")
    listed = set(file_words)
    for special in (UNK, EOS):
        if special not in listed:
            raise DataError(
                f"{path}: no {special} among the 1-grams (expected KenLM/SRILM's {UNK} and {EOS})"
            )
    return file_words


def _checked_values(
    path: Path, data: bytes, section: _Section | _FastSection, top: bool
) -> tuple[np.ndarray, np.ndarray]:
    """A section's log10 probabilities and back-offs (0 at the ``top`` order and where SRILM leaves them
    out), checked: probabilities finite and <= 0 (1-grams summing to at most one), back-offs below +inf."""
    m = section.m
    lp, bow = section.values()
    bad = ~np.isfinite(lp) | (lp > 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = (
            "is not a finite number (write -99 for a word never predicted, as KenLM and SRILM do)"
            if np.isinf(lp[i])
            else "is not a number <= 0"
        )
        raise DataError(f"{section.where(i)}: log10 probability {lp[i]} of a {m}-gram {what}")
    if m == 1:
        check_unigram_mass(path, section, lp)
    bow = np.zeros(len(lp)) if top else bow
    infinite = bow == np.inf  # -inf is a context that passes nothing down (lmbench writes it for MLE)
    if infinite.any():
        i = int(np.flatnonzero(infinite)[0])
        raise DataError(f"{section.where(i)}: back-off weight {bow[i]} of a {m}-gram is not a number < inf")
    absent = np.isnan(bow)
    if absent.any():  # SRILM leaves out zero back-offs; a literal nan is an error
        literal = _nan_backoff(m).search(data, section.start, section.end)
        if literal:
            raise DataError(f"{path}:{_line_at(data, literal.start())}: back-off weight of a {m}-gram is NaN")
        bow[absent] = 0.0
    return lp, bow


def _unigram_arrays(
    vocab: Vocabulary, ids: np.ndarray, lp: np.ndarray, bow: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order 1 dense over the vocabulary (row = word id): words the file does not list get -inf and back-off
    0, and ``<s>`` -inf whatever the file says (never predicted: KenLM writes 0 or -99 for it)."""
    V = len(vocab)
    uni_lp = np.full(V, -np.inf)
    uni_bo = np.zeros(V)
    uni_lp[ids] = np.where(lp > NEVER, lp, -np.inf)
    uni_bo[ids] = bow
    uni_lp[vocab.bos_id] = -np.inf
    return np.arange(V, dtype=np.int64), uni_lp, uni_bo


def _keys(
    section: _Section | _FastSection, ids: np.ndarray, rows: np.ndarray, keys_: list[np.ndarray], V: int
) -> np.ndarray:
    """Order m's keys in file order: context row * V + word, the context walked through the lower orders'
    ``keys_``; an n-gram whose context is not listed is refused (``rows``: entry numbers, for the message)."""
    from lmbench.models.ngram.counting import lookup

    m = section.m
    ctx = ids[:, 0].copy()  # context row: walk the prefix through the lower tables
    for j in range(1, m - 1):
        ctx = np.where(ctx >= 0, lookup(keys_[j], np.maximum(ctx, 0) * V + ids[:, j]), -1)
    if np.any(ctx < 0):
        i = int(np.flatnonzero(ctx < 0)[0])
        raise DataError(
            f"{section.where(int(rows[i]))}: the context of this {m}-gram is not listed as a {m - 1}-gram"
        )
    return ctx * V + ids[:, -1]


def _key_order(
    section: _Section | _FastSection, keys: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """The keys sorted, and the sort that put them in order (None: the file had them in order, as lmbench
    writes them); duplicates are refused, naming both lines."""
    m = section.m
    if np.all(keys[1:] > keys[:-1]):  # already in key order and distinct (files lmbench writes)
        return keys, None
    sort = np.argsort(keys, kind="stable")
    keys = keys[sort]
    dup = np.flatnonzero(keys[1:] == keys[:-1])
    if len(dup):
        first, second = sorted((int(rows[sort[dup[0]]]), int(rows[sort[dup[0] + 1]])))
        raise DataError(
            f"{section.where(second)}: duplicate {m}-gram (first listed at {section.where(first)})"
        )
    return keys, sort
