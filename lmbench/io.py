"""Atomic file writes: everything lmbench writes goes to a temporary file beside the target and is renamed
into place, so an interrupted run never leaves a half-written file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lmbench.errors import ConfigError


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


def check_output_dir(path: str | Path, what: str) -> None:
    """Fail now, before any work, if ``path`` cannot become a folder that lmbench writes into.

    Checks that ``path`` is not a file, that no component above it is a file or too long a name, and that the
    nearest existing folder accepts a new entry (probed with an empty temporary folder that is removed at once,
    so that the check holds for root and for read-only mounts too). Raises :class:`ConfigError` naming ``what``.
    """
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise ConfigError(
                f"{path}: {what} exists and is a file, expected a folder (move it or pick another)"
            )
        existing, missing = path.absolute(), []
        while not existing.exists() and existing.parent != existing:
            missing.append(existing.name)
            existing = existing.parent
    except OSError as e:  # a name too long for the file system, a loop of links
        raise ConfigError(f"{path}: {what} is not a usable path ({e.strerror})") from None
    if not existing.is_dir():
        raise ConfigError(f"{path}: {what} cannot be created: {existing} is a file")
    try:
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    for name in missing:
        if len(os.fsencode(name)) > limit:
            raise ConfigError(f"{path}: {what}: the name {name[:40]!r}... is longer than {limit} bytes")
    try:
        probe = tempfile.mkdtemp(dir=existing, prefix=".lmbench-write-check-")
    except OSError as e:
        raise ConfigError(f"{path}: {what} is not writable ({e.strerror}: {existing})") from None
    os.rmdir(probe)
