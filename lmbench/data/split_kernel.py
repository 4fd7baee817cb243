"""Compiled ``str.split()`` over UTF-8 bytes: lines -> provisional word ids, with no Python object per token.

The whitespace tokenizer is ``line.split()`` on every line. Done in Python that is one string object and one
dictionary lookup per token (about 8 s for 20M tokens); this kernel does the same on the raw bytes of a block
of lines: it splits lines at ``\\n`` (as reading a file line by line does), splits tokens at the UTF-8 bytes of
every character ``str.isspace()`` accepts (ASCII and Unicode alike, ``\\r`` included), and gives each distinct
token a provisional id in first-seen order with an open-addressing hash table over the token bytes. Two
strings are equal exactly when their UTF-8 bytes are, so the ids, counts and types are those of ``str.split``
plus a dictionary. The input must be valid UTF-8 (lone surrogates, encoded with ``surrogatepass``, are fine):
the caller validates it.
"""

from __future__ import annotations

import numba
import numpy as np

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)
_NEWLINE = 10
_SEPARATOR = (
    10  # stored after each type's bytes in the blob; a token never holds "\n", so types split back on it
)
_START, _LENGTH, _COUNT = 0, 1, 2  # columns of the per-type table: where its bytes are in the blob, how many


@numba.njit(cache=True, nogil=True)
def _is_ascii_space(c: int) -> bool:
    r"""``str.isspace()`` for an ASCII byte: ``\t \n \v \f \r``, the separators ``\x1c``-``\x1f``, the space."""
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31


@numba.njit(cache=True, nogil=True)
def _unicode_space_width(buf: np.ndarray, i: int, n: int) -> int:
    """Bytes of the non-ASCII whitespace character starting at ``buf[i]`` (0 if it is none).

    In UTF-8: U+0085 and U+00A0 (C2 85, C2 A0), U+1680 (E1 9A 80), U+2000..U+200A (E2 80 80..8A), U+2028,
    U+2029, U+202F (E2 80 A8, A9, AF), U+205F (E2 81 9F) and U+3000 (E3 80 80).
    """
    c = buf[i]
    if c == 0xC2:
        return 2 if i + 1 < n and (buf[i + 1] == 0x85 or buf[i + 1] == 0xA0) else 0
    if c < 0xE1 or c > 0xE3 or i + 2 >= n:
        return 0
    c1, c2 = buf[i + 1], buf[i + 2]
    if c == 0xE1:
        return 3 if c1 == 0x9A and c2 == 0x80 else 0
    if c == 0xE3:
        return 3 if c1 == 0x80 and c2 == 0x80 else 0
    if c1 == 0x80:  # c == 0xE2
        return 3 if c2 <= 0x8A or c2 == 0xA8 or c2 == 0xA9 or c2 == 0xAF else 0
    return 3 if c1 == 0x81 and c2 == 0x9F else 0


@numba.njit(cache=True, nogil=True)
def _slot(key: int, size: int) -> int:
    """Home slot of a hash key in a table of ``size`` (a power of two) slots: its low bits."""
    return key & (size - 1)


@numba.njit(cache=True, nogil=True)
def _rehashed(slots: np.ndarray, size: int) -> np.ndarray:
    """The hash table ``slots`` ((hash, type id) pairs; type -1: empty) moved into one of ``size`` slots."""
    new = np.full(2 * size, -1, dtype=np.int64)
    for j in range(len(slots) // 2):
        if slots[2 * j + 1] >= 0:
            s = _slot(slots[2 * j], size)
            while new[2 * s + 1] >= 0:
                s = (s + 1) & (size - 1)
            new[2 * s], new[2 * s + 1] = slots[2 * j], slots[2 * j + 1]
    return new


# One body on purpose (67 lines): split into numba helpers (whitespace width, token scan and hash, probing;
# inline="always" or not) the same ids took 3.1x as long to split (TypeTable.split of wikitext-2 train x2,
# 21.6 MB: median 0.88 s vs 0.28 s over 15 interleaved rounds in one process), and 1.4x with the whitespace
# helper alone (0.38 s vs 0.26 s). Re-measure before splitting it.
@numba.njit(cache=True, nogil=True)
def _split_until_full(buf, i, line, ids, n_ids, line_tokens, slots, types, blob, n_types, blob_used):
    """Split ``buf[i:]`` into tokens and look each one up, until the end or until a new type does not fit.

    The type table is ``slots`` (open addressing, linear probing, at most half full: (hash, type id) pairs,
    type -1 for an empty slot), ``types`` (per type: start and length of its bytes in ``blob``, and its count)
    and ``blob`` (each type's bytes and a separator), of which ``n_types`` and ``blob_used`` are in use.
    Returns where it stopped (``i``, ``line``, ``n_ids``), the new ``n_types`` and ``blob_used``, and the blob
    bytes the next new type needs (0 when ``buf`` is done). The arrays are never replaced in here: a loop
    that may reassign them is much slower (their pointers are reloaded on every access).
    """
    n = len(buf)
    size = len(slots) // 2
    while i < n:
        c = buf[i]
        if c == _NEWLINE:
            line += 1
            i += 1
            continue
        if c < 0x80 and _is_ascii_space(c):
            i += 1
            continue
        if c >= 0xC2:
            width = _unicode_space_width(buf, i, n)
            if width:
                i += width
                continue
        start = i  # a token: up to the next whitespace (a newline included) or the end of the block
        h = _FNV_OFFSET
        while i < n:
            c = buf[i]
            if c < 0x80:
                if c <= 32 and _is_ascii_space(c):
                    break
            elif c >= 0xC2 and _unicode_space_width(buf, i, n):
                break
            h = (h ^ np.uint64(c)) * _FNV_PRIME
            i += 1
        length = i - start
        key = np.int64(h)
        s = _slot(key, size)
        while True:  # linear probing: the slot holding this token, or the empty slot where it goes
            t = slots[2 * s + 1]
            if t < 0:
                break
            if slots[2 * s] == key and types[t, _LENGTH] == length:
                a = types[t, _START]
                k = 0
                while k < length and blob[a + k] == buf[start + k]:
                    k += 1
                if k == length:
                    break
            s = (s + 1) & (size - 1)
        if t < 0:  # first time seen: a new type, if the table has room for it
            if n_types == len(types) or 2 * (n_types + 1) > size or blob_used + length + 1 > len(blob):
                return start, line, n_ids, n_types, blob_used, length + 1
            t = n_types
            n_types += 1
            blob[blob_used : blob_used + length] = buf[start:i]
            blob[blob_used + length] = _SEPARATOR
            types[t, _START], types[t, _LENGTH], types[t, _COUNT] = blob_used, length, 0
            blob_used += length + 1
            slots[2 * s], slots[2 * s + 1] = key, t
        types[t, _COUNT] += 1
        ids[n_ids] = t
        n_ids += 1
        line_tokens[line] += 1
    return i, line, n_ids, n_types, blob_used, 0


@numba.njit(cache=True, nogil=True)
def _split_block(buf, n_lines, ids, n_ids, slots, types, blob, n_types, blob_used):
    """Split ``buf`` (whole lines; the last may lack its newline) into token ids, written to ``ids`` from
    ``n_ids`` on, and tokens per line, growing the type table (see :func:`_split_until_full`) whenever it is
    full; returns the new ``n_ids``, the tokens per line and the table."""
    line_tokens = np.zeros(n_lines, dtype=np.int64)
    i = line = np.int64(0)  # not literal 0s, which would compile the kernel a second time
    while True:
        i, line, n_ids, n_types, blob_used, blob_needed = _split_until_full(
            buf, i, line, ids, n_ids, line_tokens, slots, types, blob, n_types, blob_used
        )
        if i == len(buf):
            return n_ids, line_tokens, slots, types, blob, n_types, blob_used
        if n_types == len(types):
            grown = np.zeros((2 * len(types), 3), dtype=np.int64)
            grown[:n_types] = types
            types = grown
        size = len(slots) // 2
        if 2 * (n_types + 1) > size:
            slots = _rehashed(slots, 2 * size)
        if blob_used + blob_needed > len(blob):
            grown_blob = np.empty(max(2 * len(blob), blob_used + blob_needed), dtype=np.uint8)
            grown_blob[:blob_used] = blob[:blob_used]
            blob = grown_blob


@numba.njit(cache=True, nogil=True)
def _utf8_counts(buf: np.ndarray) -> tuple[int, int]:
    """Characters and newlines of ``buf``, or (-1, -1) if it is not well-formed UTF-8 as Python's strict
    decoder defines it: no overlong forms (C0, C1, E0 80..9F, F0 80..8F), no surrogates (ED A0..BF), nothing
    above U+10FFFF (F4 90.., F5..FF), no stray or missing continuation bytes."""
    n = len(buf)
    chars = newlines = i = 0
    while i < n:
        c = buf[i]
        chars += 1
        if c < 0x80:
            newlines += c == _NEWLINE
            i += 1
            continue
        if c < 0xC2 or c > 0xF4:
            return -1, -1
        width = 2 if c < 0xE0 else 3 if c < 0xF0 else 4
        if i + width > n:
            return -1, -1
        low, high = 0x80, 0xBF  # the allowed range of the second byte
        if c == 0xE0:
            low = 0xA0
        elif c == 0xED:
            high = 0x9F
        elif c == 0xF0:
            low = 0x90
        elif c == 0xF4:
            high = 0x8F
        if not low <= buf[i + 1] <= high:
            return -1, -1
        for k in range(i + 2, i + width):
            if buf[k] & 0xC0 != 0x80:
                return -1, -1
        i += width
    return chars, newlines


def utf8_counts(block: bytes) -> tuple[int, int] | None:
    """Characters and newlines of ``block``, or None if it is not valid UTF-8 (one compiled pass: no string
    is built, unlike ``bytes.decode``)."""
    chars, newlines = _utf8_counts(np.frombuffer(block, dtype=np.uint8))
    return None if chars < 0 else (chars, newlines)


def max_tokens(n_bytes: int) -> int:
    """The most tokens ``n_bytes`` of text can hold: a token and the whitespace after it take two bytes or more."""
    return (n_bytes + 1) // 2


class TypeTable:
    """The distinct tokens seen so far, in first-seen order, and how often each occurred.

    >>> table = TypeTable()
    >>> ids, tokens_per_line = table.split(b"a b\\n\\nb\\xc2\\xa0c\\r\\n")
    >>> ids.tolist(), tokens_per_line.tolist(), table.types(), table.type_counts().tolist()
    ([0, 1, 1, 2], [2, 0, 2], ['a', 'b', 'c'], [1, 2, 1])
    """

    def __init__(self, capacity: int = 1 << 12):
        self._slots = np.full(4 * capacity, -1, dtype=np.int64)  # 2 * capacity (hash, type id) pairs
        self._types = np.zeros((capacity, 3), dtype=np.int64)  # start, length, count
        self._blob = np.zeros(16 * capacity, dtype=np.uint8)
        self._n_types = 0
        self._blob_used = 0

    def split(self, block: bytes) -> tuple[np.ndarray, np.ndarray]:
        """Ids (int32) of the tokens of ``block`` (UTF-8 lines; the last may lack its newline) and how many
        tokens each line has (int64 [lines])."""
        ids = np.empty(max_tokens(len(block)), dtype=np.int32)
        end, line_tokens = self.split_into(block, ids, 0)
        return ids[:end], line_tokens

    def split_into(self, block: bytes, ids: np.ndarray, start: int) -> tuple[int, np.ndarray]:
        """:meth:`split`, writing the ids to ``ids[start:]`` (which must have room for
        ``max_tokens(len(block))``) and returning where they end instead."""
        if len(ids) - start < max_tokens(len(block)):
            raise ValueError(
                f"ids has room for {len(ids) - start} tokens, a block of {len(block)} bytes needs {max_tokens(len(block))}"
            )
        n_lines = block.count(b"\n") + (1 if block and not block.endswith(b"\n") else 0)
        buf = np.frombuffer(block, dtype=np.uint8)
        end, line_tokens, self._slots, self._types, self._blob, self._n_types, self._blob_used = _split_block(
            buf,
            n_lines,
            ids,
            np.int64(start),
            self._slots,
            self._types,
            self._blob,
            self._n_types,
            self._blob_used,
        )
        return end, line_tokens

    def types(self) -> list[str]:
        """The distinct tokens, provisional id order (lone surrogates come back as they went in)."""
        if self._n_types == 0:
            return []
        text = self._blob[: self._blob_used].tobytes().decode("utf-8", "surrogatepass")
        return text[:-1].split("\n")

    def type_counts(self) -> np.ndarray:
        """Occurrences of each type (int64), provisional id order."""
        return self._types[: self._n_types, _COUNT].copy()
