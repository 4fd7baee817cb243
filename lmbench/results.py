"""The typed records of a run: perplexity rows, task rows and generated samples, and the columns of their files.

Experiment, tasks and reporting all build and read these; nothing is encoded into a string and parsed back.
On disk they are plain JSON objects (``results.json``) and CSV rows (``results.csv``, ``tasks.csv``,
``samples.csv``) in the column orders below. ``from_dict`` reads rows written by earlier versions too:
keys they lack take their defaults, keys this version does not know are ignored.

>>> row = TaskRow("kn5", "minimal-pairs", "accuracy", 0.75, n=4, corruption="swap", distance=4)
>>> row.group()
'swap · d=4'
>>> TaskRow.from_dict({**row.to_dict(), "unknown": 1}) == row
True
>>> Sample("kn5", "A0 w01", "w02 Z0").text
'A0 w01 ⟶ w02 Z0'
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

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


class Record:
    """Dataclass helpers shared by the records: ``to_dict`` in field order and a tolerant ``from_dict``."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[R], values: dict[str, Any]) -> R:
        """The record from a stored row; missing keys take their defaults, unknown keys are ignored."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in values.items() if k in names})


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
    split: str
    context: str
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
    word_perplexity: float = math.nan  # per whitespace word (and line end): compares tokenizers


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

    @classmethod
    def from_legacy_row(cls, row: dict[str, Any]) -> Sample:
        """A sample stored by earlier versions as a ``metric = "sample"`` task row, its text in ``detail``."""
        prompt, arrow, continuation = str(row.get("detail") or "").partition(SAMPLE_ARROW)
        if not arrow:  # no arrow: all of it is the continuation
            prompt, continuation = "", prompt
        return cls(row["model"], prompt, continuation, task=row.get("task") or "generate")


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


def is_legacy_sample(row: dict[str, Any]) -> bool:
    return row.get("metric") == LEGACY_SAMPLE_METRIC


def task_rows(results: dict[str, Any]) -> list[TaskRow]:
    """The task figures of a results dict as :class:`TaskRow` (samples stored among them by earlier
    versions left out)."""
    return [r if isinstance(r, TaskRow) else TaskRow.from_dict(r) for r in _task_dicts(results)]


def samples(results: dict[str, Any]) -> list[Sample]:
    """The generated samples of a results dict: its ``samples``, or the sample rows earlier versions stored
    among the task rows."""
    stored = [s if isinstance(s, Sample) else Sample.from_dict(s) for s in results.get("samples") or []]
    legacy = [Sample.from_legacy_row(r) for r in results.get("tasks") or [] if isinstance(r, dict)
              and is_legacy_sample(r)]  # fmt: skip
    return stored + legacy


def split_legacy_samples(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` in today's layout: sample rows that earlier versions kept in ``tasks`` moved to a
    ``samples`` list right after it. A results dict without such rows is returned unchanged."""
    tasks = results.get("tasks") or []
    if not any(isinstance(r, dict) and is_legacy_sample(r) for r in tasks):
        return results
    out: dict[str, Any] = {}
    for key, value in results.items():
        if key == "samples":
            continue
        out[key] = value
        if key == "tasks":
            out["tasks"] = _task_dicts(results)
            out["samples"] = [s.to_dict() for s in samples(results)]
    return out


def _task_dicts(results: dict[str, Any]) -> list[Any]:
    return [r for r in results.get("tasks") or [] if not (isinstance(r, dict) and is_legacy_sample(r))]


def main_view(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """The split and context of every headline figure (console summary, the report's main table, headline plot
    and narrative, the per-model progress line): test, else the first split, in the first context of
    ``[evaluate] contexts``. One definition, so the console and the report never show different figures.

    >>> main_view([{"split": "valid", "context": "stream"}, {"split": "test", "context": "stream"}])
    ('test', 'stream')
    """
    if not rows:
        return "test", "sentence"
    split = "test" if any(r["split"] == "test" for r in rows) else rows[0]["split"]
    return split, rows[0]["context"]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
