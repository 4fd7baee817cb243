"""Checksums of the artefacts lmbench writes into ``runs/``, recorded when written and verified when read.

Each artefact ``X`` gets a record ``X.sha256`` beside it, in ``sha256sum`` format (``sha256sum -c X.sha256``
checks it by hand). The record is written *before* the artefact is renamed into place and lists both the new
digest and the one it replaces (so it does after the rename, the new one first): whatever instant a process is
killed at, and whichever of two processes writing one artefact at once renames last, the file on disk matches
its record, so only real damage (a flipped byte, a truncation, an edit) is ever reported. (A file that is an
earlier version written by lmbench is not damage: its identity, inside it, says whether it is still of use.) An artefact without any record was written by an lmbench from before records existed: it
is read on the strength of its content checks alone (finite weights and scores).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lmbench.errors import DataError
from lmbench.io import atomic_path, atomic_write_text

SUFFIX = ".sha256"
_CHUNK = 1 << 20


class Damaged(DataError):
    """An artefact does not match its recorded checksum, or holds non-finite numbers (one line: file and what)."""


def record_path(path: str | Path) -> Path:
    """Where the checksum of ``path`` is recorded: ``model.bin`` -> ``model.bin.sha256``."""
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_record(path: Path, digests: list[str]) -> None:
    atomic_write_text(record_path(path), "".join(f"{d}  {path.name}\n" for d in digests))


def recorded_digests(path: str | Path) -> list[str] | None:
    """The digests recorded for ``path`` (``None``: no record); an unreadable record raises :class:`Damaged`."""
    record = record_path(path)
    if not record.is_file():
        return None
    try:
        lines = record.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise Damaged(f"{record}: checksum record unreadable ({type(e).__name__})") from None
    digests = []
    for line in lines:
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or name != Path(path).name:
            raise Damaged(f"{record}: checksum record damaged (expected '<sha256>  {Path(path).name}' lines)")
        digests.append(digest)
    if not digests:
        raise Damaged(f"{record}: checksum record is empty")
    return digests


@contextmanager
def recorded_path(path: str | Path) -> Iterator[Path]:
    """:func:`lmbench.io.atomic_path` that also records the sha256 of what was written (see the module doc)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        yield tmp
        digest = sha256_of(tmp)
        _write_record(path, _with(digest, path))  # before the rename: old and new bytes both verify
    # after it: this digest first, and one other that the record holds, so that when two processes write the
    # same artefact at once (concurrent runs), whichever file ends up in place matches the record
    _write_record(path, _with(digest, path))


def _with(digest: str, path: Path) -> list[str]:
    try:
        others = [d for d in recorded_digests(path) or [] if d != digest]
    except Damaged:
        others = []
    return [digest, *others[:1]]


def record(path: str | Path) -> None:
    """Record the checksum of a file that was just written in place by someone else's writer."""
    path = Path(path)
    _write_record(path, [sha256_of(path)])


def verify(path: str | Path) -> bool:
    """Check ``path`` against its record: True if it matches, False if it has no record (an older lmbench
    wrote it); :class:`Damaged` on a mismatch."""
    path = Path(path)
    digests = recorded_digests(path)
    if digests is None:
        return False
    try:
        actual = sha256_of(path)
    except OSError as e:
        raise Damaged(f"{path}: unreadable ({e.strerror})") from None
    if actual not in digests:
        raise Damaged(f"{path}: checksum mismatch (sha256 {actual[:12]}..., recorded {digests[0][:12]}...)")
    return True


def remove(path: str | Path) -> None:
    """Remove an artefact and its record."""
    Path(path).unlink(missing_ok=True)
    record_path(path).unlink(missing_ok=True)


def check_finite_tensors(value: Any, path: str | Path, where: str = "") -> None:
    """Raise :class:`Damaged` naming the first floating-point tensor or array below ``value`` (nested dicts,
    lists, tuples) that holds NaN or infinity; integer tensors (RNG states, counts) are not looked at."""
    import numpy as np

    if isinstance(value, Mapping):
        for key, sub in value.items():
            check_finite_tensors(sub, path, f"{where}.{key}" if where else str(key))
        return
    if isinstance(value, (list, tuple)):
        for i, sub in enumerate(value):
            check_finite_tensors(sub, path, f"{where}[{i}]")
        return
    if isinstance(value, np.ndarray):
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            raise Damaged(f"{path}: {where or 'array'} holds {_bad_count(value)} non-finite value(s)")
        return
    if type(value).__module__.startswith("torch") and hasattr(value, "is_floating_point"):
        if value.is_floating_point() and not bool(value.isfinite().all()):
            raise Damaged(f"{path}: {where or 'tensor'} holds {_bad_count(value)} non-finite weight(s)")


def _bad_count(value: Any) -> int:
    import numpy as np

    array = value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    return int((~np.isfinite(array)).sum())
