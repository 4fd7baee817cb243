"""The row records of a run: perplexity rows, task rows and generated samples, and the columns of their files.

Experiment, tasks and reporting all build and read these; nothing is encoded into a string and parsed back.
On disk they are plain JSON objects (``results.json``, run folders' ``metrics.json``) and CSV rows
(``results.csv``, ``tasks.csv``, ``samples.csv``) in the column orders below. Two readers: ``from_dict`` is
tolerant (a run folder's rows of earlier versions: keys they lack take their defaults, unknown keys are
ignored); ``read`` is strict (``results.json``: a missing or unknown field is an error naming it).

"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from lmbench.errors import DataError

# results.csv: the figures, identical on every machine for token/epoch budgets (bit for bit on one machine)
RESULT_COLUMNS = [
    "model", "family", "split", "context", "seeds", "budget", "tokens", "oov", "oov_rate", "perplexity",
    "perplexity_low", "perplexity_high", "seed_sd", "bits_per_token", "bits_per_char", "word_perplexity",
    "perplexity_excl_oov", "zero_prob_tokens", "parameters", "train_tokens", "train_flops",
    "diff_vs_baseline", "diff_low", "diff_high", "p_value",
]  # fmt: skip
# results_by_seed.csv: one row per (model, seed, split, context); ``seed`` empty for deterministic models
SEED_COLUMNS = ["model", "family", "seed"] + [
    c for c in RESULT_COLUMNS if c not in ("model", "family", "seeds", "seed_sd")
]
# timings.csv: what this machine took (differs between runs and machines, so kept out of results.csv)
TIMING_COLUMNS = [
    "model", "task", "split", "context", "train_seconds", "train_tokens_per_second", "score_tokens_per_second",
    "peak_rss_mb", "device",
]  # fmt: skip


R = TypeVar("R", bound="Record")
Split = Literal["train", "valid", "test"]  # lmbench.config.SPLIT_NAMES
ContextMode = Literal["sentence", "stream"]  # lmbench.models.base.CONTEXTS
# a field with this metadata is left out of its JSON object while None: files written before the field existed
# (or runs where it does not apply) keep their exact shape when read and written again
OMITTED_WHEN_NONE = {"omit_when_none": True}


def optional(**kwargs: Any) -> Any:
    """A field that is None where it does not apply and is then absent from the stored object."""
    return field(default=None, metadata=OMITTED_WHEN_NONE, **kwargs)


class Record:
    """Dataclass helpers shared by the records: ``to_dict`` in field order, a tolerant ``from_dict`` and a
    strict ``read``."""

    _field_separator = "."  # between a record's place and its field's in errors: ``rows[3].perplexity``

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-ready values (nested records too), in field order."""
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_when_none"):
                continue
            out[f.name] = plain(value)
        return out

    @classmethod
    def from_dict(cls: type[R], values: dict[str, Any]) -> R:
        """The record from a stored row; missing keys take their defaults, unknown keys are ignored (nested
        records too)."""
        hints = _hints(cls)
        return cls(**{k: _convert(hints[k], v, k, strict=False) for k, v in values.items() if k in hints})

    @classmethod
    def read(cls: type[R], values: Any, where: str) -> R:
        """The record from a stored JSON object, nested records included; ``where`` (``results.json: rows[3]``)
        names the place in errors. A field it lacks that has no default, a field this version does not know
        (renamed or misspelt) or a value outside a fixed set is a :class:`~lmbench.errors.DataError`."""
        if not isinstance(values, dict):
            raise DataError(f"{where}: expected an object, got {type(values).__name__}")
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        unknown = [k for k in values if k not in known]
        if unknown:
            raise DataError(
                f"{where}: unknown field {unknown[0]!r} (a {cls.__name__} has {', '.join(known)})"
            )
        missing = [
            n for n, f in known.items() if n not in values and f.default is MISSING
            and f.default_factory is MISSING  # type: ignore[misc]
        ]  # fmt: skip
        if missing:
            raise DataError(f"{where}: missing field {missing[0]!r} (a {cls.__name__} needs it)")
        hints = _hints(cls)
        return cls(
            **{k: _convert(hints[k], v, f"{where}{cls._field_separator}{k}") for k, v in values.items()}
        )


def plain(value: Any) -> Any:
    """``value`` with every record in it (in lists and dict values too) turned into its dict."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _convert(hint: Any, value: Any, where: str, *, strict: bool = True) -> Any:
    """A stored JSON value as the type ``hint`` says: records (in lists, dict values, optionals) are read
    (strictly, else tolerantly), a Literal's value is checked (when strict); everything else (numbers, strings,
    open-ended dicts) as stored."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        options = [a for a in get_args(hint) if a is not type(None)]
        return _convert(options[0], value, where, strict=strict) if len(options) == 1 else value
    if isinstance(hint, type) and issubclass(hint, Record) and is_dataclass(hint):
        if strict:
            return hint.read(value, where)
        return hint.from_dict(value) if isinstance(value, dict) else value
    if not strict and not (origin in (list, dict) and _holds_record(hint)):
        return value
    if origin is typing.Literal:
        if value not in get_args(hint):
            choices = ", ".join(repr(a) for a in get_args(hint))
            raise DataError(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin is list and _holds_record(hint):
        if not isinstance(value, list):
            raise DataError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(get_args(hint)[0], v, f"{where}[{i}]", strict=strict) for i, v in enumerate(value)]
    if origin is dict and _holds_record(hint):
        if not isinstance(value, dict):
            raise DataError(f"{where}: expected an object, got {type(value).__name__}")
        return {k: _convert(get_args(hint)[1], v, f"{where}.{k}", strict=strict) for k, v in value.items()}
    return value


def _holds_record(hint: Any) -> bool:
    if isinstance(hint, type) and issubclass(hint, Record):
        return True
    return any(_holds_record(a) for a in get_args(hint))


@dataclass
class ResultRow(Record):
    """One fitted model (one seed) scored on one split in one context mode: quality, then what it cost.

    Stored in each run folder's ``metrics.json`` and, per seed, in ``results_by_seed.csv``; the experiment
    combines the seeds of a model into its ``results.csv`` row (which adds ``seeds``, ``seed_sd`` and, against
    a baseline, ``diff_vs_baseline``/``diff_low``/``diff_high``/``p_value``).
    """

    model: str
    family: str
    seed: int | None  # None for deterministic models
    split: Split
    context: ContextMode
    # lmbench.evaluation.Scores, in its order
    tokens: int
    oov: int
    oov_rate: float
    log_prob: float
    perplexity: float
    bits_per_token: float
    bits_per_char: float
    perplexity_excl_oov: float
    zero_prob_tokens: int
    # the fit behind the figures
    budget: str
    parameters: int
    train_tokens: int
    train_flops: float
    train_seconds: float
    train_tokens_per_second: float
    score_tokens_per_second: float
    peak_rss_mb: float
    device: str
    perplexity_low: float = math.nan  # the bootstrap interval (nan without a bootstrap)
    perplexity_high: float = math.nan
    # per whitespace word (and line end): compares tokenizers; None (absent) in results of earlier versions
    word_perplexity: float | None = optional()


@dataclass
class TaskRow(Record):
    """One task figure. Grouping fields are real columns (empty where they do not apply), never a string
    parsed back; ``detail`` is free text for people (a note) and nothing reads it."""

    model: str
    task: str
    metric: str
    value: float
    low: float = math.nan
    high: float = math.nan
    n: int = 0  # items scored
    file: str = ""  # pair or labelled-data file (the shortest name that tells the run's files apart)
    phenomenon: str = ""  # BLiMP linguistics_term (or a pair file's "phenomenon"); "all" = the whole file
    paradigm: str = ""  # BLiMP UID
    corruption: str = ""  # generated pairs: swap | last-word | replace
    distance: int | None = None  # swap distance
    method: str = ""  # classify: generative | features | baseline
    ties: int | None = None  # pairs whose two totals are equal within the tie tolerance (counted as half)
    oov_items: int | None = None  # items holding a token outside the vocabulary
    oov_rate: float | None = None  # classify: share of the test texts' tokens outside the task's vocabulary
    skipped: int | None = None  # items left out (oov = "skip")
    train_items: int | None = None  # classify: training texts used
    budget: str = ""  # classify (generative): the resolved budget each per-class model trained under
    train_tokens: int | None = None  # classify (generative): tokens seen by all per-class models together
    train_seconds: float | None = None  # classify (generative): their training time together
    detail: str = ""
    subtask: str = ""  # lm-eval: the lm-eval task (its metric in ``metric``)
    stderr: float | None = None  # lm-eval's standard error of ``value``
    warning: str = (
        ""  # what makes this figure suspect (shown on the console and in the report), empty if nothing
    )

    def group(self, *, compact: bool = False) -> str:
        """What the row is about, from its structured fields (file, phenomenon, paradigm, corruption,
        distance, method); ``compact`` names a BLiMP-style file by its paradigm alone where the file is
        named after it."""
        parts = [self.subtask] if self.subtask else []
        if self.file and not (compact and self.paradigm and self.file.rsplit(".", 1)[0] == self.paradigm):
            parts.append(self.file)
        keys = ("paradigm",) if compact and self.paradigm else ("phenomenon", "paradigm")
        for key in (*keys, "corruption", "method"):
            if getattr(self, key):
                parts.append(str(getattr(self, key)))
        if not _missing(self.distance):
            parts.append(f"d={int(self.distance)}")  # type: ignore[arg-type]
        return " · ".join(parts)


# machine times of a task (kept in results.json and timings.csv, out of tasks.csv: they differ between runs)
TASK_TIME_COLUMNS = ("train_seconds",)
TASK_COLUMNS = [f.name for f in fields(TaskRow) if f.name not in TASK_TIME_COLUMNS]
LM_EVAL_COLUMNS = (
    "subtask",
    "stderr",
)  # in tasks.csv only where a row has them (older files keep their columns)
# results written before samples were typed hold them as task rows of this metric, the text in ``detail``
LEGACY_SAMPLE_METRIC = "sample"
SAMPLE_ARROW = " ⟶ "  # between prompt and continuation wherever a sample is shown


@dataclass
class Sample(Record):
    """One generated text: the prompt and the model's continuation, both detokenized."""

    model: str
    prompt: str
    continuation: str
    task: str = "generate"
    seed: int | None = None  # the generation seed (None in results written before samples were typed)

    @property
    def text(self) -> str:
        return f"{self.prompt}{SAMPLE_ARROW}{self.continuation}"


SAMPLE_COLUMNS = [f.name for f in fields(Sample)]


@dataclass
class TaskResults:
    """What tasks return: metric rows, generated samples (kept apart from the figures) and, from
    :func:`lmbench.tasks.run_tasks`, one line per task that failed."""

    rows: list[TaskRow] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def extend(self, other: TaskResults) -> None:
        self.rows += other.rows
        self.samples += other.samples
        self.errors += other.errors


def main_view(rows: Sequence[Any]) -> tuple[str, str]:
    """The split and context of every headline figure (console summary, the report's main table, headline plot
    and narrative, the per-model progress line): test, else the first split, in the first context of
    ``[evaluate] contexts``. One definition, so the console and the report never show different figures.

    Takes the rows of :class:`ResultRow` or :class:`~lmbench.results.run.CombinedRow` (anything with ``split``
    and ``context``).
    """
    if not rows:
        return "test", "sentence"
    split = "test" if any(r.split == "test" for r in rows) else rows[0].split
    return split, rows[0].context


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
