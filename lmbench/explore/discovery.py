"""Find the finished models of a run folder, whatever its layout.

A finished model is any folder below the run folder that holds both ``metrics.json`` and ``model.bin``
(:meth:`lmbench.runs.RunFolder.finished_below`: ``<model>/``, ``<model>/seed-<s>/`` or deeper layouts). A model is
named by its path relative to the run folder, so two seeds of one model stay apart. A folder whose records are
unreadable or damaged (not what their recorded sha256 says) is still listed, with ``error`` saying why, so
that one broken model never hides the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmbench.errors import DataError, first_line
from lmbench.models.family import family_named
from lmbench.results import ModelInfo
from lmbench.runs import RunFolder

DEFAULT_TOKENIZER = "whitespace"
# where a run folder records what it holds: fit.json (info, and the training identity with the tokenizer),
# metrics.json (scores, and info in older runs), config.json (older runs)
RECORDS = ("fit.json", "metrics.json", "config.json", "identity.json")


@dataclass(frozen=True)
class FinishedModel:
    """One finished model on disk: where it is, what family loads it, and how its text was tokenized."""

    name: str
    family: str
    folder: Path
    tokenizer: str
    tokenizer_recorded: bool = True
    info: ModelInfo = field(default_factory=ModelInfo, compare=False)  # its fit record (fit.json's ``info``)
    error: str | None = None  # why the model cannot be served (a damaged or unreadable record)

    @property
    def run_folder(self) -> RunFolder:
        """Its folder as :mod:`lmbench.runs` lays it out (where the model, records and tokenizer are)."""
        return RunFolder(self.folder)

    @property
    def model_path(self) -> Path:
        return self.run_folder.model_file


def _find_key(documents: list[dict[str, Any]], key: str) -> Any:
    """The value of ``key`` in the first document holding it, at the top level or nested at any depth
    (e.g. inside a run fingerprint); shallower matches win."""
    level: list[Any] = list(documents)
    while level:
        for doc in level:
            if doc.get(key):
                return doc[key]
        level = [v for doc in level for v in doc.values() if isinstance(v, dict)]
    return None


def ladder_key(run: FinishedModel) -> tuple[float, int, str]:
    """Sort key putting models in ladder order: families in the order they were invented
    (:attr:`~lmbench.models.family.Family.generation`: n-grams, RNN, GRU, LSTM, Transformer, pretrained,
    then families without one), within a family by the window a model sees (n-grams: the order)."""
    family = family_named(run.family)
    rank = family.generation if family.generation is not None else math.inf
    window = family.window(run.info.config or {})
    return rank, window if isinstance(window, int) else 0, run.name


def discover_runs(run_dir: str | Path, *, tokenizer: str | None = None) -> list[FinishedModel]:
    """Every finished model below ``run_dir``, in ladder order (:func:`ladder_key`); ``tokenizer``
    overrides the recorded one.

    Family and name come from the ``info`` record (``fit.json``, or ``metrics.json`` in older runs), falling
    back to ``config.json``; the tokenizer from whichever record holds it, at any depth (the training identity
    nests it under ``vocabulary``); ``whitespace`` where none does.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: not a folder (expected the --runs-dir of `lmbench run`)")
    found = []
    for run in RunFolder.finished_below(run_dir):
        folder, relative = run.path, run.path.relative_to(run_dir).as_posix()
        try:
            documents = [run.read_record(name) for name in RECORDS]
        except (DataError, OSError) as e:  # listed as unavailable, with the reason; the others are served
            name = folder.name if relative == "." else relative
            found.append(
                FinishedModel(name, "unknown", folder, tokenizer or DEFAULT_TOKENIZER, error=first_line(e))
            )
            continue
        info = next((d["info"] for d in documents if isinstance(d.get("info"), dict)), {})
        family = info.get("family") or _find_key(documents, "family")
        if not family:
            error = f"{run.metrics_file}: no model family recorded (info.family in {' or '.join(RECORDS)})"
            name = folder.name if relative == "." else relative
            found.append(FinishedModel(name, "unknown", folder, tokenizer or DEFAULT_TOKENIZER, error=error))
            continue
        if relative == ".":  # the run folder is itself one model's folder
            name = info.get("name") or _find_key(documents, "name") or folder.name
        else:
            name = relative
        recorded = _find_key(documents, "tokenizer")
        found.append(
            FinishedModel(
                name=name,
                family=family,
                folder=folder,
                tokenizer=tokenizer or recorded or DEFAULT_TOKENIZER,
                tokenizer_recorded=bool(tokenizer or recorded),
                info=ModelInfo.from_dict(info),  # tolerant: fit records of every version
            )
        )
    return sorted(found, key=ladder_key)
