"""The SQLite file of a search study in a run folder (``runs/<experiment>/<model>/search.db``): verified
before it is opened, recorded when a search ends.

A finished search records the file's sha256 (``search.db.sha256``, :mod:`lmbench.checksums`); the record is
removed as soon as the file is opened for writing again, so that a search killed mid-way is never mistaken
for damage. Before opening, a recorded file must match its record and any file must pass SQLite's own
``quick_check``; a file that does not is named in one line and moved aside (never deleted) with its journal,
and the search starts again in a new file. Only the default study file is handled here: a database the user
gave with ``--storage`` is theirs, and its errors name ``--storage``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from lmbench import checksums
from lmbench.checksums import Damaged
from lmbench.errors import ConfigError

SIDE_FILES = ("-journal", "-wal", "-shm")  # SQLite's own files beside the database, moved with it


def damage(path: Path) -> str | None:
    """What is wrong with the study file ``path`` in a few words, or ``None`` when it is sound (or absent)."""
    if not path.exists():
        return None
    try:
        checksums.verify(path)
    except Damaged as e:
        return str(e).removeprefix(f"{path}: ")
    try:  # opening rolls back what a killed process left half-written (a hot journal), as SQLite always does
        with closing(sqlite3.connect(path, timeout=120)) as db:
            rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as e:
        return f"not a readable SQLite database ({e})"
    if rows != [("ok",)]:
        return f"SQLite finds it damaged ({str(rows[0][0]) if rows else 'no answer'})"
    return None


def check_or_move_aside(path: Path, model: str, say: Callable[[str], None]) -> Path | None:
    """Move a damaged study file (and its journal and record) to ``search.db.damaged-<UTC time>`` and say so;
    returns where it went (``None``: the file is sound or absent). Then drop the record: the file is about to
    change."""
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path}: expected the search study file, found something else (move it away)")
    problem = damage(path)
    if problem is None:
        checksums.record_path(path).unlink(missing_ok=True)
        return None
    return move_aside(path, model, problem, say)


def is_damage(error: BaseException) -> bool:
    """Whether ``error`` (raised while a search used its study file) is SQLite finding the file damaged, as
    opposed to a busy or locked database, a full disk or a permission problem."""
    seen: BaseException | None = error
    while seen is not None:
        if type(seen) is sqlite3.DatabaseError:  # not its subclasses (OperationalError: locked, busy, full)
            return True
        if "malformed" in str(seen) or "file is not a database" in str(seen):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return False


def move_aside(path: Path, model: str, problem: str, say: Callable[[str], None]) -> Path:
    """Move the study file (with its journal and record) to ``search.db.damaged-<UTC time>``, and say so."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    n = 1
    while aside.exists():
        aside = aside.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{n}")
        n += 1
    path.rename(aside)
    for suffix in SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(aside.with_name(aside.name + suffix))
    record = checksums.record_path(path)
    if record.exists():
        record.rename(checksums.record_path(aside))
    say(f"{model}: {path}: {problem}; moved to {aside.name}, the search starts again")
    return aside


def record_finished(path: Path, store: Any) -> None:
    """Record the sha256 of the study file of a finished search, once Optuna's connections are closed."""
    try:
        store.engine.dispose()  # every change is committed; no connection keeps the file open
    except AttributeError:
        pass
    if path.is_file() and not any(path.with_name(path.name + s).exists() for s in SIDE_FILES):
        checksums.record(path)
