"""Disk-backed n-gram arrays, for corpora whose tables do not fit the memory budget.

A :class:`DiskArray` is a flat array in an anonymous temporary file (unlinked as soon as it is created, so
nothing is left behind even if the process dies): written by appending pieces, read back by row ranges with
ordinary reads (the pages read do not stay in the process's memory, unlike a memory map's), or mapped read-only
for scoring. :func:`rows` reads a range from a ``DiskArray`` or slices an in-memory array alike, so the
streamed counting, smoothing and ARPA writing run the same code on both.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

READ_BLOCK = 1 << 30  # bytes per read call (os.pread / readinto take at most ~2 GiB at once)


class DiskArray:
    """A 1-D array of ``dtype`` in an unlinked temporary file under ``folder`` (default: ``$TMPDIR``)."""

    def __init__(self, dtype: np.dtype | type, folder: str | Path | None = None):
        self.dtype = np.dtype(dtype)
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
        self._file = tempfile.TemporaryFile(prefix="lmbench-ngram-", dir=folder)
        self._length = 0
        self._map: np.ndarray | None = None

    @classmethod
    def from_array(cls, values: np.ndarray, folder: str | Path | None = None) -> DiskArray:
        out = cls(np.asarray(values).dtype, folder)
        out.append(values)
        return out

    def __len__(self) -> int:
        return self._length

    @property
    def shape(self) -> tuple[int]:
        return (self._length,)

    @property
    def nbytes(self) -> int:
        """Bytes on disk (not in memory)."""
        return self._length * self.dtype.itemsize

    def append(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype).reshape(-1)
        if self._map is not None:
            raise ValueError("a mapped DiskArray is read-only")
        self._file.seek(0, os.SEEK_END)
        self._file.write(memoryview(values).cast("B"))
        self._length += len(values)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start .. stop-1`` as a fresh in-memory array."""
        stop = self._length if stop is None else min(stop, self._length)
        start = max(0, min(start, stop))
        out = np.empty(stop - start, dtype=self.dtype)
        if len(out) == 0:
            return out
        self._file.flush()
        view = memoryview(out).cast("B")
        offset = start * self.dtype.itemsize
        fd = self._file.fileno()
        done = 0
        while done < len(view):
            got = os.preadv(fd, [view[done : done + READ_BLOCK]], offset + done)
            if got <= 0:
                raise OSError(f"short read from an n-gram temporary file ({done} of {len(view)} bytes)")
            done += got
        return out

    def map(self) -> np.ndarray:
        """A read-only memory map of the whole array (an empty in-memory array when there are no rows).

        Pages are read as they are touched and then count toward the process's resident memory."""
        if self._length == 0:
            return np.zeros(0, dtype=self.dtype)
        if self._map is None:
            self._file.flush()
            self._map = np.memmap(self._file, dtype=self.dtype, mode="r", shape=(self._length,))
        return self._map

    def close(self) -> None:
        self._map = None
        self._file.close()


def rows(array: np.ndarray | DiskArray, start: int, stop: int) -> np.ndarray:
    """``array[start:stop]`` as an in-memory array, read from disk for a :class:`DiskArray`."""
    if isinstance(array, DiskArray):
        return array.read(start, stop)
    return np.asarray(array[start:stop])


def in_memory(array: np.ndarray | DiskArray) -> np.ndarray:
    """The whole array in memory."""
    return array.read() if isinstance(array, DiskArray) else np.asarray(array)


class Sink:
    """Where a streamed array goes: appended pieces kept in memory (joined at the end) or written to a
    :class:`DiskArray`."""

    def __init__(self, dtype: np.dtype | type, folder: str | Path | None, disk: bool):
        self.dtype = np.dtype(dtype)
        self.disk = DiskArray(dtype, folder) if disk else None
        self.pieces: list[np.ndarray] = []

    def append(self, values: np.ndarray) -> None:
        if self.disk is not None:
            self.disk.append(values)
        else:
            self.pieces.append(np.asarray(values, dtype=self.dtype))

    def result(self) -> np.ndarray | DiskArray:
        if self.disk is not None:
            return self.disk
        if len(self.pieces) == 1:
            return self.pieces.pop()
        out = np.concatenate(self.pieces) if self.pieces else np.zeros(0, dtype=self.dtype)
        self.pieces = []
        return out
