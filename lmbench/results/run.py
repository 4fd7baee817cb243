"""RunResults: everything one experiment produced, as typed records: made once by the experiment, read by
reporting, ``lmbench compare``, the trackers and the CLI. ``results.json`` is its serialisation
(:mod:`lmbench.results.store` reads and writes it, with a schema version).

Where a record holds genuinely open-ended data (a model's config, a search's space or a trial's settings) the
field is a dict: that is data, not a schema. Fields marked :func:`~lmbench.results.records.optional` are
absent from the stored object where they do not apply (files of earlier versions keep their exact shape).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from lmbench.results.records import ContextMode, Record, ResultRow, Sample, Split, TaskRow, optional
from lmbench.results.store import read_json, stored_json, today_layout

TrialState = Literal["complete", "pruned", "fail", "running", "waiting"]


@dataclass(kw_only=True)
class CombinedRow(Record):
    """One results.csv row: a model (its seeds combined) on one split in one context mode, with the bootstrap
    interval, the spread over seeds and, against a baseline, the paired difference. The per-seed figures
    are :class:`~lmbench.results.records.ResultRow`; fields a test or an older file may leave out default to
    None (shown empty)."""

    model: str
    family: str = ""
    split: Split
    context: ContextMode
    tokens: int | None = None
    oov: int | None = None
    oov_rate: float | None = None
    log_prob: float | None = None
    perplexity: float
    bits_per_token: float | None = None
    bits_per_char: float | None = None
    perplexity_excl_oov: float | None = None
    zero_prob_tokens: int | None = None
    budget: str = ""
    parameters: int | None = None
    train_tokens: int | None = None
    train_flops: float | None = None
    train_seconds: float | None = None
    train_tokens_per_second: float | None = None
    score_tokens_per_second: float | None = None
    peak_rss_mb: float | None = None
    device: str = ""
    perplexity_low: float | None = None
    perplexity_high: float | None = None
    word_perplexity: float | None = optional()  # absent in results of versions before it existed
    seeds: int | None = None  # how many seeds the figures average
    seed_sd: float | None = None  # the standard deviation of the seeds' perplexities
    diff_vs_baseline: float | None = optional()  # paired bootstrap difference from [report] baseline
    diff_low: float | None = optional()
    diff_high: float | None = optional()
    p_value: float | None = optional()

    @classmethod
    def of_seed(cls, row: ResultRow, *, model: str | None = None) -> CombinedRow:
        """One seed's row as a results row of its own (``model``: the name to show it under)."""
        values = {k: v for k, v in row.to_dict().items() if k != "seed"}
        return cls(**{**values, "model": model or row.model})


@dataclass
class CurvePoint(Record):
    """One validation point of a neural model's learning curve."""

    tokens: int
    step: int | None = None
    seconds: float | None = None
    train_loss: float | None = None
    lr: float | None = optional()  # absent in curves of versions that did not log it
    valid_loss: float | None = optional()  # absent at a point without a validation pass
    valid_perplexity: float | None = optional()


@dataclass
class ModelInfo(Record):
    """A fitted model's record: what it is (family, settings), what its training cost, and its seeds."""

    name: str = ""
    family: str = ""
    seed: int | None = None  # its first seed (None: deterministic)
    config: dict[str, Any] = field(default_factory=dict)  # the model's full settings (open-ended per family)
    params: dict[str, Any] = field(default_factory=dict)  # the settings the config file gave
    parameters: int | None = None
    budget: str = ""
    budget_kind: str = ""
    train_seconds: float | None = None
    train_tokens: int | None = None
    train_flops: float | None = None
    train_tokens_per_second: float | None = None
    device: str = ""
    normalized: bool = True  # a distribution over the vocabulary (a perplexity means something)
    learning_curve: list[CurvePoint] | None = None
    fingerprint: str = ""
    seeds: list[int] = field(default_factory=list)
    tuned: dict[str, Any] | None = optional()  # the settings a search chose


@dataclass
class EntropyFloor(Record):
    """The true source's perplexity on a synthetic corpus: no model can beat it on average."""

    perplexity: float
    bits_per_token: float
    entropy_rate_perplexity: float
    entropy_rate_bits: float | None = None
    valid_perplexity: float | None = None


@dataclass
class WordBucket(Record):
    """A model's test perplexity over the tokens of one word-frequency bucket."""

    bucket: str
    tokens: int
    share: float
    perplexity: float


@dataclass
class AttentionExample(Record):
    """Where one attention head of a model looks on a test line: the position predicting its last word
    (``query``) and the word it attends to most far back (``key``)."""

    tokens: list[str]
    query: int
    key: int
    target: int
    reason: str
    layer: int
    head: int
    weight: float
    uniform_weight: float
    to_first: list[list[float]]
    weights: list[list[float]]


@dataclass
class Reference(Record):
    """A published figure shown beside the run's own (``[[report.references]]``); keys beyond the four the
    config file requires are kept in ``more`` and shown as further columns."""

    model: str
    metric: str
    value: Any
    source: str
    more: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "metric": self.metric, "value": self.value, "source": self.source,
                **self.more}  # fmt: skip

    @classmethod
    def read(cls, values: Any, where: str) -> Reference:
        if isinstance(values, dict):
            named = {k: v for k, v in values.items() if k in ("model", "metric", "value", "source")}
            values = {**named, "more": {k: v for k, v in values.items() if k not in named}}
        return super().read(values, where)


@dataclass
class SearchTrial(Record):
    """One trial of a hyperparameter search (a search.csv row)."""

    model: str
    trial: int
    settings: dict[str, Any]  # the sampled values, one per searched setting
    valid_perplexity: float
    last_reported_perplexity: float
    state: TrialState
    tokens: int
    seconds: float
    worker: str = ""
    note: str = ""


@dataclass
class SearchSpent(Record):
    """What a search spent: its trials (complete and pruned among them), tokens, epochs and seconds."""

    trials: int
    complete: int = 0
    pruned: int = 0
    tokens: int = 0
    epochs: float = 0.0
    seconds: float = 0.0


@dataclass
class SearchLimit(Record):
    """A search's limits (None: that limit was not set)."""

    trials: int | None = None
    epochs: float | None = None
    tokens: int | None = None
    minutes: float | None = None


@dataclass(kw_only=True)
class SearchSummary(Record):
    """What one model's search found and spent."""

    family: str
    best: dict[str, Any]  # the chosen settings
    best_valid_perplexity: float
    space: dict[str, dict[str, Any]]  # each searched setting's range or choices
    limits: str
    trial_budget: str
    spent: SearchSpent
    limit: SearchLimit = field(default_factory=SearchLimit)
    study: str
    storage: str
    trials: list[SearchTrial] = field(default_factory=list)
    parallel: int | None = optional()  # the most trials that ran at once (absent in earlier versions: 1)


@dataclass
class CurveBaseline(Record):
    """The n-gram that learning curves are read against, and why it was chosen."""

    model: str
    split: Split
    context: ContextMode
    perplexity: float
    why: str


@dataclass
class Provenance(Record):
    """Where the figures come from: seeds, code, corpus, tokenizer, evaluation settings, machine, date."""

    seed: int | None = None
    seeds: list[int] | None = None
    lmbench_version: str | None = None
    git_commit: str | None = None
    corpus: str | None = None
    corpus_checksums: dict[str, str] = field(default_factory=dict)
    corpus_card: dict[str, Any] = field(default_factory=dict)
    tokenizer: str | None = None
    external_tokenizer: str | None = None
    vocab_size: int | None = None
    tokenizer_sha256: str | None = optional()  # a subword tokenizer's file
    contexts: list[str] = field(default_factory=list)
    bootstrap: int | None = None
    budgets: dict[str, str] = field(default_factory=dict)
    fingerprints: dict[str, list[str]] = field(default_factory=dict)
    device: str | None = None
    libraries: dict[str, str] = field(default_factory=dict)
    config_file: str | None = None
    date: str | None = None
    command: str | None = optional()  # the command line that regenerates the report (set by the CLI)


@dataclass
class RunResults(Record):
    """Everything an experiment produced, the one input of every report format, tracker and comparison."""

    _field_separator = ": "  # read from a file: ``results.json: rows[3].perplexity``

    experiment: str = "experiment"
    rows: list[CombinedRow] = field(default_factory=list)
    rows_by_seed: list[ResultRow] = field(default_factory=list)
    tasks: list[TaskRow] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)  # generated texts, apart from the figures
    models: dict[str, ModelInfo] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    entropy_floor: EntropyFloor | None = None
    word_buckets: dict[str, list[WordBucket]] = field(default_factory=dict)
    attention: dict[str, AttentionExample] = field(default_factory=dict)
    references: list[Reference] = field(default_factory=list)
    search: dict[str, SearchSummary] = field(default_factory=dict)
    curves: dict[str, list[CurvePoint]] = field(default_factory=dict)
    curve_baseline: CurveBaseline | None = None
    provenance: Provenance = field(default_factory=Provenance)

    def to_dict(self) -> dict[str, Any]:
        """The stored object; ``samples`` only where text was generated (as earlier versions wrote it)."""
        out = super().to_dict()
        if not self.samples:
            del out["samples"]
        return out

    @classmethod
    def from_dict(cls, values: Any, source: str = "results") -> RunResults:  # type: ignore[override]
        """The results from a stored object (as ``json.loads`` gives it) of any layout this lmbench reads
        (:mod:`lmbench.results.store`); ``source`` names it in errors."""
        return cls.read(today_layout(values, source), source)

    @classmethod
    def load(cls, path: str | Path) -> RunResults:
        """The results stored in the ``results.json`` at ``path``: the one reader of that file."""
        return cls.from_dict(read_json(path), str(path))

    def to_json(self) -> str:
        """``results.json``: everything ``lmbench report`` re-renders from, with its schema version; the one
        writer of that file."""
        return stored_json(self.to_dict())

    # ---------------------------------------------------------------------------------------- views
    def row_for(self, model: str, split: str, context: str) -> CombinedRow | None:
        return next((r for r in self.rows if (r.model, r.split, r.context) == (model, split, context)), None)

    def family_of(self, model: str, default: str = "") -> str:
        """The family a model's record names (``default`` where the results have no record of it)."""
        info = self.models.get(model)
        return info.family if info is not None and info.family else default


RUN_RESULTS_FIELDS = [f.name for f in fields(RunResults)]
