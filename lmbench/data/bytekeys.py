"""Words as exact 16-byte keys, looked up in a vectorised hash table: tokenizing and ARPA reading without a
Python string per token.

A field of ``n <= 16`` bytes is the pair of little-endian uint64 holding its bytes (zero-padded) plus ``n``:
an exact key, no hash collisions to worry about. Fields are given as byte offsets into one buffer that has
16 zero bytes after its end, read through :func:`windows` (every 8-byte window of the buffer as a strided
uint64 view), so extracting a key is two gathers. Longer words (rare) are left to the caller.
"""

from __future__ import annotations

import numpy as np

SHORT = 16  # bytes a key holds exactly
_LOW_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)


def padded(data: bytes, start: int = 0, end: int | None = None) -> np.ndarray:
    """The bytes data[start:end] followed by 16 zero bytes, as uint8 (so any field's key can be read)."""
    end = len(data) if end is None else end
    out = np.zeros(end - start + 16, dtype=np.uint8)
    out[: end - start] = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
    return out


def windows(buf: np.ndarray) -> np.ndarray:
    """Every 8-byte window of ``buf`` as a little-endian uint64 (window i starts at byte i): a strided view."""
    return np.ndarray(shape=(len(buf) - 7,), dtype="<u8", buffer=buf, offset=0, strides=(1,))


def low_bytes_mask(length: np.ndarray) -> np.ndarray:
    """uint64 masks keeping the low ``length`` bytes (clipped to 0..8)."""
    return _LOW_MASKS[np.clip(length, 0, 8)]


def field_keys(win: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first 16 bytes of each field as two uint64 (zero-padded): with the length, an exact key for
    fields of up to 16 bytes."""
    w0 = win[starts] & low_bytes_mask(lengths)
    w1 = win[starts + 8] & low_bytes_mask(lengths - 8)
    return w0, w1


def field_bounds(is_field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of the runs of True in ``is_field`` (bool or uint8)."""
    edges = np.flatnonzero(np.diff(is_field.view(np.int8), prepend=np.int8(0), append=np.int8(0)))
    return edges[0::2], edges[1::2]


class KeyTable:
    """Open-addressing hash table from short keys (w0, w1, length) to rows 0, 1, 2, ... in insertion order;
    lookups and inserts are vectorised (one probe round per step along a collision chain)."""

    def __init__(self, capacity: int = 1024):
        self.size = 0
        self.w0 = np.zeros(capacity, dtype=np.uint64)
        self.w1 = np.zeros(capacity, dtype=np.uint64)
        self.lengths = np.zeros(capacity, dtype=np.int64)
        self._bits = max(4, int(4 * capacity - 1).bit_length())  # load factor <= 1/4
        self._table = np.full(1 << self._bits, -1, dtype=np.int64)

    def _slot(self, w0: np.ndarray, w1: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            h = w0 * np.uint64(0x9E3779B97F4A7C15) ^ w1 * np.uint64(0xC2B2AE3D27D4EB4F)
            h ^= lengths.astype(np.uint64) * np.uint64(0x165667B19E3779F9)
            h *= np.uint64(0xFF51AFD7ED558CCD)
        return (h >> np.uint64(64 - self._bits)).astype(np.int64)

    def find(self, w0: np.ndarray, w1: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Row of each key, -1 where absent."""
        slot = self._slot(w0, w1, lengths)
        out = np.full(len(w0), -1, dtype=np.int64)
        active = np.arange(len(w0))
        mask = len(self._table) - 1
        while len(active):  # probe until the key or an empty slot is found
            row = self._table[slot[active]]
            hit = row >= 0
            r = np.where(hit, row, 0)
            same = hit & (self.w0[r] == w0[active]) & (self.w1[r] == w1[active])
            same &= self.lengths[r] == lengths[active]
            out[active[same]] = row[same]
            active = active[hit & ~same]
            slot[active] = (slot[active] + 1) & mask
        return out

    def add(self, w0: np.ndarray, w1: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Insert keys that are absent and distinct; returns their rows (in the order given)."""
        rows = np.arange(self.size, self.size + len(w0), dtype=np.int64)
        if self.size + len(w0) > len(self.w0):
            self._grow(2 * (self.size + len(w0)))
        self.w0[rows], self.w1[rows], self.lengths[rows] = w0, w1, lengths
        self.size += len(w0)
        self._place(rows)
        return rows

    def _grow(self, capacity: int) -> None:
        for name in ("w0", "w1", "lengths"):
            old = getattr(self, name)
            new = np.zeros(capacity, dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)
        self._bits = max(4, int(4 * capacity - 1).bit_length())
        self._table = np.full(1 << self._bits, -1, dtype=np.int64)
        self._place(np.arange(self.size, dtype=np.int64))

    def _place(self, rows: np.ndarray) -> None:
        """Put each row at its slot or the next free one after it."""
        slot = self._slot(self.w0[rows], self.w1[rows], self.lengths[rows])
        pending = np.arange(len(rows))
        mask = len(self._table) - 1
        while len(pending):
            free = self._table[slot[pending]] < 0
            candidates = pending[free]
            taken, first = np.unique(slot[candidates], return_index=True)
            self._table[taken] = rows[candidates[first]]
            placed = np.zeros(len(rows), dtype=bool)
            placed[candidates[first]] = True
            pending = pending[~placed[pending]]
            slot[pending] = (slot[pending] + 1) & mask
