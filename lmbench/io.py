"""Atomic file writes: everything lmbench writes goes to a temporary file beside the target and is renamed
into place, so an interrupted run never leaves a half-written file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def load_tensors(path: str | Path, what: str) -> object:
    """``torch.load`` with ``weights_only=True`` (no pickled code ever runs); a truncated, empty, foreign or
    malicious file raises :class:`DataError` naming the file, never advice to turn ``weights_only`` off."""
    import torch

    from lmbench.errors import DataError

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: not found (expected {what})") from None
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError, zipfile errors, ...
        raise DataError(f"{path}: not a readable {what} ({type(e).__name__})") from None
