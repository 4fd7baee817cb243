"""Experiment configuration: a TOML file read into dataclasses, every key and value checked up front.

Unknown keys and bad values raise :class:`ConfigError` naming the file and the key, before anything is
trained or written.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmbench.data.synthetic import SyntheticConfig
from lmbench.data.tokenizers import TOKENIZERS
from lmbench.errors import ConfigError
from lmbench.models.base import CONTEXTS, Budget
from lmbench.search.space import ModelSearch, SearchConfig, parse_model_search, parse_search_table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SPLIT_NAMES = ("train", "valid", "test")
REPORT_FORMATS = ("md", "csv", "json", "html", "latex", "png")
SYNTHETIC_KEYS = {f for f in SyntheticConfig.__dataclass_fields__}


@dataclass
class CorpusConfig:
    """Where the text comes from (one of: a card name, "synthetic", three files, one file) and how to tokenize."""

    name: str | None = None
    train: Path | None = None
    valid: Path | None = None
    test: Path | None = None
    file: Path | None = None
    tokenizer: str = "whitespace"
    min_count: int = 1
    max_size: int | None = None
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    data_dir: Path | None = None
    synthetic: SyntheticConfig | None = None


@dataclass
class ModelConfig:
    name: str
    family: str
    params: dict[str, Any]  # constructor settings as written (the seed is not one: see ``seeds``)
    budget: Budget | None = None
    seeds: list[int] | None = None  # this model's seeds (``seed = N`` or ``seeds = [...]`` in its table)
    search: ModelSearch | None = None  # [model.search]: settings tuned on validation before training


@dataclass
class EvaluateConfig:
    contexts: list[str] = field(default_factory=lambda: ["sentence"])
    splits: list[str] = field(default_factory=lambda: ["valid", "test"])
    bootstrap: int = 1000
    block_size: int = 256


@dataclass
class ReportConfig:
    formats: list[str] = field(default_factory=lambda: ["md", "csv", "json", "html", "png"])
    baseline: str | None = None
    references: list[dict[str, Any]] = field(default_factory=list)  # published figures shown beside ours


@dataclass
class ExperimentConfig:
    name: str
    corpus: CorpusConfig
    models: list[ModelConfig]
    seed: int = 0  # the bootstrap's and the tasks' seed, and the models' seed when ``seeds`` is not given
    budget: Budget = field(default_factory=Budget)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: ReportConfig = field(default_factory=ReportConfig)
    source: str = "<config>"
    seeds: list[int] | None = None  # train each stochastic model once per seed
    search: SearchConfig | None = None  # [search]: tuning limits shared by every searched model

    def model(self, name: str) -> ModelConfig:
        return next(m for m in self.models if m.name == name)


class _Reader:
    """Pops keys from a table so that whatever is left over is reported as unknown."""

    def __init__(self, source: str, where: str, table: Any):
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {where}: expected a table, got {type(table).__name__}")
        self.source, self.where, self.table = source, where, dict(table)

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def get(
        self, name: str, kind: type | tuple[type, ...], default: Any = None, *, required: bool = False
    ) -> Any:
        if name not in self.table:
            if required:
                raise ConfigError(f"{self.source}: missing key '{self.key(name)}'")
            return default
        value = self.table.pop(name)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            expected = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(f"{self.source}: {self.key(name)}: expected {expected}, got {value!r}")
        return value

    def done(self) -> None:
        if self.table:
            unknown = ", ".join(f"'{self.key(k)}'" for k in self.table)
            raise ConfigError(f"{self.source}: unknown key {unknown}")


def _path(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _seed(source: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ConfigError(f"{source}: {key}: expected an integer from 0 to 2**32 - 1, got {value!r}")
    return value


def _seeds(source: str, key: str, value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{source}: {key}: expected a non-empty list of integers, got {value!r}")
    seeds = [_seed(source, key, v) for v in value]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{source}: {key}: seeds must be distinct, got {value!r}")
    return seeds


def _budget(reader: _Reader, name: str) -> Budget | None:
    if name not in reader.table:
        return None
    sub = _Reader(reader.source, reader.key(name), reader.table.pop(name))
    values = {k: sub.get(k, (int, float)) for k in ("epochs", "tokens", "minutes")}
    sub.done()
    try:
        return Budget(**values)
    except ConfigError as e:
        raise ConfigError(f"{reader.source}: {reader.key(name)}.{e}") from None


def parse_config(
    data: dict[str, Any], *, source: str = "<config>", base: Path | None = None
) -> ExperimentConfig:
    """Check and convert a parsed TOML table (relative paths resolve against ``base``)."""
    base = base or Path.cwd()
    top = _Reader(source, "", data)
    name = top.get("name", str, required=True)
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"{source}: name: expected a plain experiment name, got {name!r}")
    seed = _seed(source, "seed", top.get("seed", int, 0))
    seeds = top.get("seeds", list)
    seeds = _seeds(source, "seeds", seeds) if seeds is not None else None

    c = _Reader(source, "corpus", top.get("corpus", dict, required=True))
    corpus = CorpusConfig(
        name=c.get("name", str),
        train=_path(base, c.get("train", str)),
        valid=_path(base, c.get("valid", str)),
        test=_path(base, c.get("test", str)),
        file=_path(base, c.get("file", str)),
        tokenizer=c.get("tokenizer", str, "whitespace"),
        min_count=c.get("min_count", int, 1),
        max_size=c.get("max_size", int),
        valid_fraction=c.get("valid_fraction", float, 0.1),
        test_fraction=c.get("test_fraction", float, 0.1),
        data_dir=_path(base, c.get("data_dir", str)),
    )
    synthetic_options = {k: c.table.pop(k) for k in list(c.table) if k in SYNTHETIC_KEYS}
    c.done()
    sources = [
        corpus.name is not None,
        corpus.file is not None,
        any(x is not None for x in (corpus.train, corpus.valid, corpus.test)),
    ]
    if sum(sources) != 1:
        raise ConfigError(f"{source}: corpus: give exactly one of 'name', 'file', or 'train'+'valid'+'test'")
    if sources[2] and not all(x is not None for x in (corpus.train, corpus.valid, corpus.test)):
        raise ConfigError(f"{source}: corpus: 'train', 'valid' and 'test' must all be given")
    if corpus.tokenizer not in TOKENIZERS:
        raise ConfigError(
            f"{source}: corpus.tokenizer: unknown tokenizer {corpus.tokenizer!r}; expected one of {', '.join(sorted(TOKENIZERS))}"
        )
    if corpus.min_count < 1:
        raise ConfigError(f"{source}: corpus.min_count: expected an integer >= 1, got {corpus.min_count}")
    if corpus.max_size is not None and corpus.max_size < 4:
        raise ConfigError(f"{source}: corpus.max_size: expected an integer >= 4, got {corpus.max_size}")
    if synthetic_options and corpus.name != "synthetic":
        raise ConfigError(
            f"{source}: unknown key 'corpus.{next(iter(synthetic_options))}' (synthetic options need name = \"synthetic\")"
        )
    if corpus.name == "synthetic":
        try:
            corpus.synthetic = SyntheticConfig(**synthetic_options)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
    for key in ("train", "valid", "test", "file"):
        path = getattr(corpus, key)
        if path is not None and not path.is_file():
            raise ConfigError(f"{source}: corpus.{key}: file not found: {path}")

    default_budget = _budget(top, "budget") or Budget()

    models_raw = top.get("model", list, required=True)
    if not models_raw:
        raise ConfigError(f"{source}: model: expected at least one [[model]] table")
    models: list[ModelConfig] = []
    from lmbench.models.registry import create_model

    for i, table in enumerate(models_raw, start=1):
        m = _Reader(source, f"model #{i}", table)
        model_name = m.get("name", str, required=True)
        m.where = f"model '{model_name}'"
        family = m.get("family", str, required=True)
        budget = _budget(m, "budget")
        if "seed" in m.table and "seeds" in m.table:
            raise ConfigError(f"{source}: model '{model_name}': give 'seed' or 'seeds', not both")
        model_seeds = None
        if "seed" in m.table:
            model_seeds = [_seed(source, m.key("seed"), m.table.pop("seed"))]
        elif "seeds" in m.table:
            model_seeds = _seeds(source, m.key("seeds"), m.table.pop("seeds"))
        search_table = m.table.pop("search", None)
        params = dict(m.table)
        m.table.clear()
        if any(x.name == model_name for x in models):
            raise ConfigError(f"{source}: model '{model_name}': duplicate model name")
        try:
            create_model(family, **params)  # validates family and hyper-parameters now, before any output
        except ConfigError as e:
            raise ConfigError(f"{source}: model '{model_name}': {e}") from None
        search = None
        if search_table is not None:
            search = parse_model_search(source, m.where, search_table, family, params)
        models.append(ModelConfig(model_name, family, params, budget, model_seeds, search))

    search_config = None
    if "search" in top.table:
        search_config = parse_search_table(source, top.table.pop("search"))
        if not any(m.search is not None for m in models):
            raise ConfigError(f"{source}: search: no [model.search] table for it to apply to")

    e = _Reader(source, "evaluate", top.get("evaluate", dict, {}))
    contexts = e.get("context", (str, list), "sentence")
    contexts = [contexts] if isinstance(contexts, str) else contexts
    for ctx in contexts:
        if ctx not in CONTEXTS:
            raise ConfigError(f"{source}: evaluate.context: expected 'sentence' or 'stream', got {ctx!r}")
    splits = e.get("splits", list, ["valid", "test"])
    for split in splits:
        if split not in SPLIT_NAMES:
            raise ConfigError(f"{source}: evaluate.splits: expected values from {SPLIT_NAMES}, got {split!r}")
    evaluate = EvaluateConfig(contexts, splits, e.get("bootstrap", int, 1000), e.get("block_size", int, 256))
    if evaluate.bootstrap < 0 or evaluate.block_size < 1:
        raise ConfigError(f"{source}: evaluate.bootstrap must be >= 0 and evaluate.block_size >= 1")
    e.done()

    tasks = top.get("tasks", dict, {})
    if tasks:
        from lmbench.tasks import validate_task_configs

        try:
            validate_task_configs(tasks, base=base)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    r = _Reader(source, "report", top.get("report", dict, {}))
    report = ReportConfig(
        r.get("formats", list, ReportConfig().formats), r.get("baseline", str), r.get("references", list, [])
    )
    r.done()
    for i, ref in enumerate(report.references, start=1):
        if not isinstance(ref, dict) or not {"model", "metric", "value", "source"} <= set(ref):
            raise ConfigError(
                f"{source}: report.references #{i}: expected a table with model, metric, value, source"
            )
    for fmt in report.formats:
        if fmt not in REPORT_FORMATS:
            raise ConfigError(
                f"{source}: report.formats: unknown format {fmt!r}; expected some of {', '.join(REPORT_FORMATS)}"
            )
    if report.baseline is not None and report.baseline not in {m.name for m in models}:
        raise ConfigError(f"{source}: report.baseline: {report.baseline!r} is not the name of a [[model]]")
    top.done()
    return ExperimentConfig(
        name,
        corpus,
        models,
        seed,
        default_budget,
        evaluate,
        tasks,
        report,
        source,
        seeds=seeds,
        search=search_config,
    )


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and check an experiment TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: invalid UTF-8 at byte offset {e.start}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML ({e})") from None
    return parse_config(data, source=str(path), base=path.resolve().parent)
