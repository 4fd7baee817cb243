"""Where the real corpora and reference outputs live outside the repository (never copied into it).

Found from the environment or the current directory, never from where the package is installed: the same
rule holds for a source checkout and for an installed wheel (run from the repository root, ``../shared`` is
the folder beside it).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "LMBENCH_SHARED"


def shared_dir() -> Path | None:
    """The shared data folder: ``$LMBENCH_SHARED``, else ``../shared`` from the current directory; None if
    neither holds ``corpora/`` or ``reference/``."""
    candidates = []
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    candidates.append(Path.cwd().parent / "shared")
    for path in candidates:
        if (path / "corpora").is_dir() or (path / "reference").is_dir():
            return path
    return None


def shared_path(*parts: str) -> Path | None:
    """A path under the shared folder, or None where it (or the folder) is absent."""
    root = shared_dir()
    if root is None:
        return None
    path = root.joinpath(*parts)
    return path if path.exists() else None
