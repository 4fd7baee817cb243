"""The run folder of one model and seed: what it was trained on (its identity) and the cached artefacts.

A finished model is reused only when its identity matches the one asked for now, field by field:

- the **training identity** (family, every setting after defaults, seed, resolved budget, the training and
  validation text's sha256, tokenizer and vocabulary options, lmbench's version) keys ``model.bin``,
  ``fit.json`` and the training checkpoint;
- the **scoring identity** (the training fingerprint, the evaluated splits' sha256 and the ``[evaluate]``
  settings) keys ``metrics.json`` and ``logprobs.npz``.

On a mismatch the experiment retrains or re-scores and says why in one line (``lstm: seed 0 -> 1``,
``kn3: test.txt changed``). A missing, partial or corrupt artefact is treated as absent, never as an error.

Every artefact is recorded with its sha256 when written (``model.bin.sha256`` beside ``model.bin``; see
:mod:`lmbench.checksums`) and verified when read: a mismatch, non-finite weights, log-probabilities or scores
are named in one line (``kn3: runs/demo/kn3/model.bin: checksum mismatch ...``) and the artefact is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmbench import checksums
from lmbench.checksums import Damaged, recorded_path
from lmbench.errors import DataError

TRAINING_FILES = ("identity.json", "checkpoint.pt", "model.bin", "fit.json", "curve.csv", "tokenizer.json")
SCORING_FILES = ("metrics.json", "logprobs.npz")


class CacheMiss(Exception):
    """A cached artefact is absent, unreadable or was made for another identity (the message says which)."""

    def __init__(self, message: str, *, absent: bool = False):
        super().__init__(message)
        self.absent = absent  # nothing was there (a first run): no need to tell the user why


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default, separators=(",", ":"))


def fingerprint(identity: dict[str, Any]) -> str:
    """A short stable hash of an identity (sha256 of its canonical JSON)."""
    return hashlib.sha256(canonical_json(identity).encode("utf-8")).hexdigest()[:16]


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def describe_change(old: dict[str, Any], new: dict[str, Any], files: dict[str, str] | None = None) -> str:
    """What differs between two identities, in words: ``seed 0 -> 1``, ``test.txt changed``, ``lr 0.003 -> 0.01``."""
    files = files or {}
    before, after = _flatten(old), _flatten(new)
    changes = []
    for key in sorted(set(before) | set(after), key=_change_order):
        if before.get(key) == after.get(key):
            continue
        leaf = key.rsplit(".", 1)[-1]
        if key.startswith("data."):  # a split's sha256
            changes.append(f"{files.get(leaf, f'the {leaf} split')} changed")
        elif key.startswith("budget."):
            changes.append(f"budget {_budget_words(old.get('budget'))} -> {_budget_words(new.get('budget'))}")
        elif key not in before:
            changes.append(f"{leaf} is new ({after[key]!r})")
        elif key not in after:
            changes.append(f"{leaf} is gone")
        else:
            changes.append(f"{leaf} {_short(before[key])} -> {_short(after[key])}")
    unique = list(dict.fromkeys(changes))
    return (
        ", ".join(unique[:4]) + (f" and {len(unique) - 4} more" if len(unique) > 4 else "")
        or "identity changed"
    )


def _change_order(key: str) -> tuple[int, str]:
    order = ("seed", "params", "budget", "data", "vocabulary", "lmbench", "evaluate")
    head = key.split(".", 1)[0]
    return (order.index(head) if head in order else len(order), key)


def _budget_words(budget: dict[str, Any] | None) -> str:
    if not budget:
        return "none"
    return ", ".join(f"{k}={v:g}" for k, v in budget.items() if v is not None) or "none"


def _short(value: Any) -> str:
    if value is None:
        return "none"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class RunFolder:
    """``runs/<experiment>/<model>/`` (deterministic models) or ``.../<model>/seed-<s>/`` (one per seed)."""

    path: Path

    @property
    def model_file(self) -> Path:
        return self.path / "model.bin"

    @property
    def checkpoint_file(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def tokenizer_file(self) -> Path:
        """The subword tokenizer a run's text was cut with (written only for subword runs)."""
        return self.path / "tokenizer.json"

    @property
    def finished(self) -> bool:
        """Whether a model was fitted, saved and scored here (``model.bin`` and ``metrics.json`` both written)."""
        return self.metrics_file.is_file() and self.model_file.is_file()

    @classmethod
    def finished_below(cls, root: str | Path) -> list[RunFolder]:
        """Every finished run folder at or below ``root``, at any depth (``<model>/``, ``<model>/seed-<s>/``,
        or ``root`` itself), sorted by path."""
        found = (cls(metrics.parent) for metrics in sorted(Path(root).rglob("metrics.json")))
        return [folder for folder in found if folder.finished]

    def read_record(self, name: str) -> dict[str, Any]:
        """The JSON record ``name`` for display, checked against its recorded sha256: ``{}`` when it is absent,
        a :class:`~lmbench.errors.DataError` naming the file when it is damaged or unreadable."""
        try:
            return self.read_json(name)
        except CacheMiss as miss:
            if miss.absent:
                return {}
            raise DataError(str(miss)) from None

    def verify_model(self) -> None:
        """A :class:`~lmbench.errors.DataError` naming the file when ``model.bin`` (or a file of the weights
        folder beside it) does not match its recorded sha256."""
        try:
            self.verify(self.model_file)
        except CacheMiss as miss:
            raise DataError(str(miss)) from None

    def verify(self, path: Path) -> None:
        """:class:`CacheMiss` naming the file and the fault when ``path`` (or a file of the weights folder a
        pretrained model keeps beside it, ``model.bin.hf/``) does not match its recorded sha256."""
        try:
            for file in [path, *companion_files(path)]:
                checksums.verify(file)
        except Damaged as e:
            raise CacheMiss(str(e)) from None

    def record(self, path: Path) -> None:
        """Record the sha256 of an artefact written by a model's own ``save`` (and of its companion files)."""
        for file in [path, *companion_files(path)]:
            checksums.record(file)

    def read_json(self, name: str) -> dict[str, Any]:
        path = self.path / name
        if not path.is_file():
            raise CacheMiss(f"{path} is missing", absent=True)
        self.verify(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CacheMiss(f"{path} is unreadable ({type(e).__name__})") from None
        if not isinstance(payload, dict):
            raise CacheMiss(f"{path} is not an lmbench run file")
        return payload

    def write_json(self, name: str, payload: Any) -> None:
        with recorded_path(self.path / name) as tmp:
            tmp.write_text(json.dumps(payload, indent=2, default=_json_default), encoding="utf-8")

    def check(self, name: str, key: str, identity: dict[str, Any], files: dict[str, str]) -> dict[str, Any]:
        """The payload of ``name`` if its ``key`` identity equals ``identity``; else :class:`CacheMiss` saying why."""
        payload = self.read_json(name)
        saved = payload.get(key)
        if not isinstance(saved, dict):
            raise CacheMiss(f"{self.path / name} has no {key}")
        if canonical_json(saved) != canonical_json(identity):
            raise CacheMiss(describe_change(saved, identity, files))
        return payload

    def read_logprobs(self) -> dict[str, np.ndarray]:
        path = self.path / "logprobs.npz"
        if not path.is_file():
            raise CacheMiss(f"{path} is missing")
        self.verify(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                logprobs = {k.replace("__", "/"): np.asarray(data[k], dtype=np.float64) for k in data.files}
        except Exception as e:  # truncated, empty or foreign bytes
            raise CacheMiss(f"{path} is unreadable ({type(e).__name__})") from None
        for key, values in logprobs.items():  # -inf is a zero probability; NaN and +inf are never scores
            bad = int(np.isnan(values).sum() + np.isposinf(values).sum())
            if bad:
                raise CacheMiss(
                    f"{path}: {key} holds {bad} NaN or +inf log-probabilit{'y' if bad == 1 else 'ies'}"
                )
        return logprobs

    def write_logprobs(self, logprobs: dict[str, np.ndarray]) -> None:
        with recorded_path(self.path / "logprobs.npz") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **{k.replace("/", "__"): v for k, v in logprobs.items()})

    def clear(self, names: tuple[str, ...] = TRAINING_FILES + SCORING_FILES) -> None:
        """Remove cached artefacts (a stale checkpoint must never be resumed for another identity)."""
        for name in names:
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                checksums.remove(target)


def companion_files(path: Path) -> list[Path]:
    """The files a model saves beside ``path`` (a pretrained model's ``model.bin.hf/`` weights and tokenizer)."""
    folder = path.with_name(path.name + ".hf")
    if not folder.is_dir():
        return []
    return sorted(f for f in folder.rglob("*") if f.is_file() and not f.name.endswith(checksums.SUFFIX))


# the figures of a row that follow from its log-probabilities alone (lmbench.evaluation.Scores)
SCORE_FIELDS = ("tokens", "oov", "oov_rate", "log_prob", "perplexity", "bits_per_token", "bits_per_char",
                "perplexity_excl_oov")  # fmt: skip
PROBABILITY_FIELDS = ("perplexity", "bits_per_token", "bits_per_char", "perplexity_excl_oov")


def check_scores(
    path: Path,
    rows: list[dict[str, Any]],
    logprobs: dict[str, np.ndarray],
    data: Any,
    normalized: bool,
    bootstrap: bool = False,
) -> None:
    """:class:`CacheMiss` when a cached row's figures are not what its log-probabilities give (an edited or
    damaged ``metrics.json``: a NaN perplexity, a changed figure), or its interval is missing."""
    from lmbench.evaluation import score

    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise CacheMiss(f"{path}: rows are not a list of records")
    for row in rows:
        key = f"{row.get('split')}/{row.get('context')}"
        if key not in logprobs:
            raise CacheMiss(f"{path}: a row for {key}, which logprobs.npz does not hold")
        expected = score(logprobs[key], data.split(row["split"])).to_dict()
        for name in SCORE_FIELDS:
            if not normalized and name in PROBABILITY_FIELDS:
                continue  # scores that are not probabilities have no perplexity (stored as NaN)
            if not _same_number(row.get(name), expected[name]):
                raise CacheMiss(
                    f"{path}: {key} {name} is {row.get(name)!r}, its log-probabilities give {expected[name]!r}"
                )
        if normalized and bootstrap and math.isfinite(expected["perplexity"]):
            for name in ("perplexity_low", "perplexity_high"):
                value = row.get(name)
                if not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise CacheMiss(f"{path}: {key} {name} is {value!r}, expected a finite number")


def _same_number(stored: Any, expected: float | int) -> bool:
    if isinstance(stored, bool) or not isinstance(stored, (int, float)):
        return False
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(stored, float) and math.isnan(stored)
    return stored == expected
