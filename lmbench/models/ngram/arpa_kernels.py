"""Compiled (Numba) loops of ARPA writing: each n-gram's words from its key, and a block of lines formatted
straight into one byte buffer. Kept apart from :mod:`lmbench.models.ngram.arpa`, which imports this module only
when it writes, so that importing lmbench (or reading ARPA) does not load Numba (about 120 MiB, 0.2-0.8 s)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def split_keys(keys, first, row, vocab_size, words, column):
    """Word ``column`` of each n-gram from its key (``keys`` holds rows ``first ..`` of its order); ``row``
    then becomes the context's row in the order below."""
    for i in range(len(row)):
        key = keys[row[i] - first]
        words[i, column] = key % vocab_size
        row[i] = key // vocab_size


DECIMALS = 7  # log10 values to 7 decimal places: at most 5e-8 from the stored value
SCALE = 10**DECIMALS
PLAIN_LIMIT = 999.5  # magnitudes below this are written [-]ddd.ddddddd; the rest (never a log10 probability:
# inf, nan, 1000 and more) fall back to Python's ``%.7g``
NUMBER_BYTES = 12  # the most a plain number takes: sign, 3 integer digits, '.', 7 decimals
DIGITS = np.frombuffer(b"".join(b"%04d" % i for i in range(10_000)), dtype=np.uint8)  # 0000 0001 .. 9999
TRAILING_ZEROS = np.array([4 - len((b"%04d" % i).rstrip(b"0")) for i in range(10_000)], dtype=np.int64)


def fallback_texts(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``%.7g`` text of the values the kernel does not write itself, in the order it meets them (line by
    line, column by column): one byte blob and where each text starts in it (plus the end)."""
    texts = []
    if not all(np.abs(c).max(initial=0) < PLAIN_LIMIT for c in columns):  # rare: look value by value
        values = np.stack(columns, axis=1).astype(np.float64).ravel()
        texts = [f"{x:.7g}".encode() for x in values[~(np.abs(values) < PLAIN_LIMIT)]]
    starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in texts], out=starts[1:])
    return np.frombuffer(b"".join(texts), dtype=np.uint8), starts


# Long on purpose (61 lines): one loop over the fields of each line. Split into njit helpers that write a
# word and a number and return the new position, it gave the same bytes up to 3x slower (20 blocks of 65,536
# lines, medians of 7 interleaved rounds on the loaded 2-core machine, 2026-12-07, seconds before -> after):
# order 1 0.45 -> 1.48, order 3 0.94 -> 1.85, order 5 1.29 -> 2.13; with the helpers inlined by Numba
# (inline="always") still 2.9x, 1.07x and 1.16x slower.
@numba.njit(cache=True, nogil=True)
def format_lines(words, logprob, logbow, with_backoff, word_bytes, word_starts, fallback, fallback_starts):
    """ARPA lines ``logprob<TAB>w1 w2 .. wm[<TAB>backoff]\\n`` of a block of n-grams, as one uint8 array.

    Word ``w`` is ``word_bytes[word_starts[w] : word_starts[w + 1]]`` (UTF-8; ``word_bytes`` has 8 spare
    bytes at its end). A number is |x| x 1e7 rounded half to even, written with 7 decimals less its
    trailing zeros (``0``, ``-99``, ``-0.5``) and a '-' only when that rounded value is not 0; one of
    magnitude ``PLAIN_LIMIT`` or more (inf, nan) is the next of the ``fallback`` texts instead. Copies
    index with unsigned integers, which spares each access Numba's check for a negative index.
    """
    n, m = words.shape
    size = 8 + len(fallback) + n * (2 * NUMBER_BYTES + 2)  # numbers, their separators, a word copy's spill
    for i in range(n):
        for j in range(m):
            size += word_starts[words[i, j] + 1] - word_starts[words[i, j]] + 1  # the word and a space
    out = np.empty(size, dtype=np.uint8)
    pos, taken = 0, 0
    for i in range(n):
        for field in range(m + 1 + with_backoff):  # log10 prob, the m words, the back-off
            if 0 < field <= m:
                start = word_starts[words[i, field - 1]]
                length = word_starts[words[i, field - 1] + 1] - start
                at, start = np.uint64(pos), np.uint64(start)
                for k in range(np.uint64(8)):  # most words at once: what lands past the end is overwritten
                    out[at + k] = word_bytes[start + k]
                for k in range(np.uint64(8), np.uint64(length)):
                    out[at + k] = word_bytes[start + k]
                pos += length
                out[pos] = 32 if field < m else (9 if with_backoff else 10)  # space, tab or newline
                pos += 1
                continue
            x = np.float64(logprob[i] if field == 0 else logbow[i])
            if not abs(x) < PLAIN_LIMIT:
                for k in range(fallback_starts[taken], fallback_starts[taken + 1]):
                    out[pos] = fallback[k]
                    pos += 1
                taken += 1
            else:
                scaled = np.int64(np.rint(abs(x) * SCALE))
                if x < 0 and scaled > 0:
                    out[pos] = 45  # '-'
                    pos += 1
                whole = scaled // SCALE  # 0 .. 999
                fraction = scaled - whole * SCALE
                digits = 1 + (whole >= 10) + (whole >= 100)
                at, start = np.uint64(pos), np.uint64(4 * whole + 4 - digits)
                for k in range(np.uint64(3)):  # the whole part's digits (and what the '.' overwrites)
                    out[at + k] = DIGITS[start + k]
                pos += digits
                high, low = fraction // 10_000, fraction % 10_000  # decimals 1-3 and 4-7
                out[pos] = 46  # '.', kept only when there are decimals
                at, start = np.uint64(pos + 1), np.uint64(4 * high + 1)
                for k in range(np.uint64(3)):
                    out[at + k] = DIGITS[start + k]
                at, start = np.uint64(pos + 4), np.uint64(4 * low)
                for k in range(np.uint64(4)):
                    out[at + k] = DIGITS[start + k]
                if fraction:
                    pos += 1 + DECIMALS - (TRAILING_ZEROS[low] if low else 4 + TRAILING_ZEROS[high])
            out[pos] = 9 if field == 0 else 10  # tab after the log10 prob, newline after the back-off
            pos += 1
    return out[:pos]
