"""Experiment configuration: a TOML file read into dataclasses, every key and value checked up front.

Unknown keys and bad values raise :class:`ConfigError` naming the file and the key, before anything is
trained or written.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmbench.data.subword import (
    BPE,
    HF_PREFIX,
    MIN_BPE_VOCAB,
    SubwordTokenizer,
    hf_tokenizer_path,
    is_subword,
    require_tokenizers,
)
from lmbench.data.synthetic import SyntheticConfig
from lmbench.data.tokenizers import TOKENIZERS
from lmbench.errors import ConfigError
from lmbench.integrations.hf_datasets import HFDatasetConfig, parse_hf_table
from lmbench.limits import MAX_CONFIG_BYTES, MAX_DEPTH, check_config_size, check_limits
from lmbench.models.base import CONTEXTS, Budget
from lmbench.reporting.formats import FORMATS
from lmbench.reporting.trackers import TRACKERS
from lmbench.search.space import ModelSearch, SearchConfig, parse_model_search, parse_search_table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SPLIT_NAMES = ("train", "valid", "test")
SYNTHETIC_KEYS = {f for f in SyntheticConfig.__dataclass_fields__}


SEED_LIMIT = 2**32  # seeds are integers in [0, SEED_LIMIT): what NumPy's and torch's generators take
REFERENCE_FIELDS = ("model", "metric", "value", "source")  # each [[report.references]] table's keys


@dataclass
class CorpusConfig:
    """Where the text comes from (one of: a card name, "synthetic", three files, one file) and how to tokenize."""

    name: str | None = None
    train: Path | None = None
    valid: Path | None = None
    test: Path | None = None
    file: Path | None = None
    tokenizer: str = "whitespace"
    # how raw outside text (pair files, prompts) is tokenized to match; default: the card's, else `tokenizer`
    external_tokenizer: str | None = None
    min_count: int = 1
    max_size: int | None = None
    vocab_size: int | None = None  # tokenizer = "bpe": merges up to this many tokens (lmbench.data.subword)
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    data_dir: Path | None = None
    synthetic: SyntheticConfig | None = None
    hf: HFDatasetConfig | None = (
        None  # [corpus.hf]: a Hugging Face dataset (lmbench.integrations.hf_datasets)
    )


@dataclass
class ModelConfig:
    """One ``[[model]]`` table: a name, a registered family and that family's settings."""

    name: str
    family: str
    params: dict[str, Any]  # constructor settings as written (the seed is not one: see ``seeds``)
    budget: Budget | None = None
    seeds: list[int] | None = None  # this model's seeds (``seed = N`` or ``seeds = [...]`` in its table)
    search: ModelSearch | None = None  # [model.search]: settings tuned on validation before training


@dataclass
class EvaluateConfig:
    """``[evaluate]``: how every model is scored (one code path for all)."""

    contexts: list[str] = field(default_factory=lambda: ["sentence"])
    splits: list[str] = field(default_factory=lambda: ["valid", "test"])
    bootstrap: int = 1000
    block_size: int = 256


@dataclass
class ReportConfig:
    """``[report]``: what is written to the report folder (``out/<name>/`` unless ``--output`` names another)
    and where runs are also sent."""

    formats: list[str] = field(default_factory=lambda: ["md", "csv", "json", "html", "png"])
    baseline: str | None = None
    references: list[dict[str, Any]] = field(default_factory=list)  # published figures shown beside ours
    trackers: list[str] = field(default_factory=list)  # where runs are also sent: tensorboard, mlflow


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
    base: Path = field(
        default_factory=Path.cwd
    )  # the config file's folder: relative task files resolve here first

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


def _is(path: Path, test: Any, source: str, key: str) -> bool:
    """``test(path)`` (``Path.is_file``, ``Path.exists``), with a path the system cannot look up (a name too
    long, a loop of links) a ConfigError naming the key."""
    try:
        return test(path)
    except OSError as e:
        shown = str(path) if len(str(path)) <= 80 else str(path)[:77] + "..."
        raise ConfigError(f"{source}: {key}: not a usable path ({e.strerror}): {shown}") from None


def _path(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _seed(source: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise ConfigError(f"{source}: {key}: expected an integer >= 0 and < 2**32, got {value!r}")
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
    values = {k: sub.get(k, int if k == "tokens" else (int, float)) for k in ("epochs", "tokens", "minutes")}
    sub.done()
    check_budget_values(reader.source, f"{reader.where}: {name}" if reader.where else name, values)
    return Budget(**values)


def parse_config(
    data: dict[str, Any], *, source: str = "<config>", base: Path | None = None, data_dir: Path | None = None
) -> ExperimentConfig:
    """Check and convert a parsed TOML table into settings (relative paths resolve against ``base``).

    ``data_dir`` (``lmbench run --data-dir``) overrides the config's ``corpus.data_dir``. Nothing is built:
    models and tasks are created by the experiment from these settings; ``data`` is left as it was.
    """
    base = base or Path.cwd()
    check_limits(source, data)  # counts, sizes and depth within their stated bounds (lmbench/limits.py)
    top = _Reader(source, "", data)
    name = top.get("name", str, required=True)
    check_plain_name(source, "name", name)
    seed = _seed(source, "seed", top.get("seed", int, 0))
    seeds = top.get("seeds", list)
    seeds = _seeds(source, "seeds", seeds) if seeds is not None else None
    corpus = _parse_corpus(_Reader(source, "corpus", top.get("corpus", dict, required=True)), base, data_dir)
    default_budget = _budget(top, "budget") or Budget()
    models = _parse_models(source, top.get("model", list, required=True))
    search = _parse_search(source, top, models)
    evaluate = _parse_evaluate(_Reader(source, "evaluate", top.get("evaluate", dict, {})))
    tasks = _parse_tasks(top.get("tasks", dict, {}))
    report = _parse_report(_Reader(source, "report", top.get("report", dict, {})), models)
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
        search=search,
        base=base,
    )


def _parse_corpus(c: _Reader, base: Path, data_dir: Path | None) -> CorpusConfig:
    """``[corpus]``: exactly one source of text, a known tokenizer, sane vocabulary and split settings.
    (The keys are read here, in one place: :mod:`lmbench.config_schema` reads them from this function.)"""
    source = c.source
    corpus = CorpusConfig(
        name=c.get("name", str),
        train=_path(base, c.get("train", str)),
        valid=_path(base, c.get("valid", str)),
        test=_path(base, c.get("test", str)),
        file=_path(base, c.get("file", str)),
        tokenizer=c.get("tokenizer", str, "whitespace"),
        external_tokenizer=c.get("external_tokenizer", str),
        min_count=c.get("min_count", int, 1),
        max_size=c.get("max_size", int),
        vocab_size=c.get("vocab_size", int),
        valid_fraction=c.get("valid_fraction", float, 0.1),
        test_fraction=c.get("test_fraction", float, 0.1),
        data_dir=_path(base, c.get("data_dir", str)),
    )
    if data_dir is not None:
        corpus.data_dir = Path(data_dir)
    if "hf" in c.table:
        corpus.hf = parse_hf_table(source, c.table.pop("hf"), base)
    synthetic_options = {k: c.table.pop(k) for k in list(c.table) if k in SYNTHETIC_KEYS}
    c.done()
    _check_one_source(source, corpus)
    check_subword_settings(source, corpus, base)
    _check_vocabulary_settings(source, corpus)
    check_corpus_values(source, corpus)
    corpus.synthetic = _synthetic_config(source, corpus, synthetic_options)
    for key in ("train", "valid", "test", "file"):
        path = getattr(corpus, key)
        if path is not None and not _is(path, Path.is_file, source, f"corpus.{key}"):
            raise ConfigError(f"{source}: corpus.{key}: file not found: {path}")
    return corpus


def _check_one_source(source: str, corpus: CorpusConfig) -> None:
    """Exactly one source of text: a name, one file, three split files (all three), or a ``[corpus.hf]``."""
    sources = [
        corpus.name is not None,
        corpus.file is not None,
        any(x is not None for x in (corpus.train, corpus.valid, corpus.test)),
        corpus.hf is not None,
    ]
    if sum(sources) != 1:
        raise ConfigError(
            f"{source}: corpus: give exactly one of 'name', 'file', 'train'+'valid'+'test', or a [corpus.hf] table"
        )
    if sources[2] and not all(x is not None for x in (corpus.train, corpus.valid, corpus.test)):
        raise ConfigError(f"{source}: corpus: 'train', 'valid' and 'test' must all be given")


def _check_vocabulary_settings(source: str, corpus: CorpusConfig) -> None:
    """Known word tokenizers (a subword one is checked by :func:`check_subword_settings`), ``min_count`` >= 1
    and ``max_size`` >= 4 (the three special tokens and at least one word)."""
    for key in ("tokenizer", "external_tokenizer"):
        value = getattr(corpus, key)
        if key == "tokenizer" and is_subword(value):
            continue
        if value is not None and value not in TOKENIZERS:
            raise ConfigError(
                f"{source}: corpus.{key}: unknown tokenizer {value!r}; expected one of {', '.join(sorted(TOKENIZERS))}"
            )
    if corpus.min_count < 1:
        raise ConfigError(f"{source}: corpus.min_count: expected an integer >= 1, got {corpus.min_count}")
    if corpus.max_size is not None and corpus.max_size < 4:
        raise ConfigError(f"{source}: corpus.max_size: expected an integer >= 4, got {corpus.max_size}")


def _synthetic_config(source: str, corpus: CorpusConfig, options: dict[str, Any]) -> SyntheticConfig | None:
    """The synthetic language's shape for ``name = "synthetic"`` (``None`` for any other corpus, which must
    then have no synthetic options)."""
    if options and corpus.name != "synthetic":
        raise ConfigError(
            f"{source}: unknown key 'corpus.{next(iter(options))}' (synthetic options need name = \"synthetic\")"
        )
    if corpus.name != "synthetic":
        return None
    check_synthetic_options(source, options)
    try:
        return SyntheticConfig(**options)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def check_subword_settings(source: str, corpus: CorpusConfig, base: Path) -> None:
    """``tokenizer = "bpe"`` with ``vocab_size``, or ``"hf:PATH"`` naming a readable ``tokenizer.json`` (made
    absolute here); the word-vocabulary settings do not apply to either."""
    spec = corpus.tokenizer
    if corpus.vocab_size is not None and spec != BPE:
        raise ConfigError(
            f'{source}: corpus.vocab_size: only used with tokenizer = "bpe" (tokenizer is {spec!r})'
        )
    if not is_subword(spec):
        return
    for key, default in (("min_count", 1), ("max_size", None), ("external_tokenizer", None)):
        if getattr(corpus, key) != default:
            raise ConfigError(
                f"{source}: corpus.{key}: not used with the subword tokenizer {spec!r} (its vocabulary is the"
                " tokenizer's, and outside text is cut by it too)"
            )
    if spec == BPE:
        try:
            require_tokenizers()
        except ConfigError as e:
            raise ConfigError(f"{source}: corpus.tokenizer: {e}") from None
        if corpus.vocab_size is not None and corpus.vocab_size < MIN_BPE_VOCAB:
            raise ConfigError(
                f"{source}: corpus.vocab_size: expected an integer >= {MIN_BPE_VOCAB} (the 256 bytes and some"
                f" merges), got {corpus.vocab_size}"
            )
        return
    path = hf_tokenizer_path(spec, base)
    try:
        SubwordTokenizer.from_file(path)
    except ConfigError as e:
        raise ConfigError(f"{source}: corpus.tokenizer: {e}") from None
    corpus.tokenizer = f"{HF_PREFIX}{path.resolve()}"


def _parse_models(source: str, tables: list[Any]) -> list[ModelConfig]:
    """``[[model]]`` tables: plain unique names, a registered family, settings its class accepts, seeds."""
    if not tables:
        raise ConfigError(f"{source}: model: expected at least one [[model]] table")
    models: list[ModelConfig] = []
    for i, table in enumerate(tables, start=1):
        m = _Reader(source, f"model #{i}", table)
        model_name = m.get("name", str, required=True)
        check_plain_name(source, f"model #{i}: name", model_name)
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
        check_unique_name(source, model_name, [x.name for x in models])
        check_model_settings(source, m.where, family, params)
        search = None
        if search_table is not None:
            search = parse_model_search(source, m.where, search_table, family, params)
        models.append(ModelConfig(model_name, family, params, budget, model_seeds, search))
    return models


def _parse_search(source: str, top: _Reader, models: list[ModelConfig]) -> SearchConfig | None:
    """``[search]``: limits shared by the ``[model.search]`` tables, so at least one must exist."""
    if "search" not in top.table:
        return None
    search = parse_search_table(source, top.table.pop("search"))
    if not any(m.search is not None for m in models):
        raise ConfigError(f"{source}: search: no [model.search] table for it to apply to")
    return search


def _parse_evaluate(e: _Reader) -> EvaluateConfig:
    """``[evaluate]``: context modes and splits from their fixed lists, bootstrap size and block size."""
    source = e.source
    contexts = e.get("context", (str, list), "sentence")
    contexts = [contexts] if isinstance(contexts, str) else contexts
    check_choice_list(source, "evaluate.context", contexts, CONTEXTS)
    splits = e.get("splits", (str, list), ["valid", "test"])
    splits = [splits] if isinstance(splits, str) else splits
    check_choice_list(source, "evaluate.splits", splits, SPLIT_NAMES)
    evaluate = EvaluateConfig(contexts, splits, e.get("bootstrap", int, 1000), e.get("block_size", int, 256))
    if evaluate.bootstrap < 0 or evaluate.block_size < 1:
        raise ConfigError(f"{source}: evaluate.bootstrap must be >= 0 and evaluate.block_size >= 1")
    e.done()
    return evaluate


def _parse_tasks(tables: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``[tasks.*]``: each task's options as written (copies; ``tables`` is untouched).

    The task names, option keys and values, file paths (resolved beside the config, then in the data folder)
    and the files' contents are checked by the experiment before any training
    (:func:`lmbench.experiment.check_tasks`): they need the task modules.
    """
    return {name: dict(options) if isinstance(options, dict) else options for name, options in tables.items()}


def _parse_report(r: _Reader, models: list[ModelConfig]) -> ReportConfig:
    """``[report]``: formats from the fixed list, a baseline that is a model, references with their fields."""
    source = r.source
    report = ReportConfig(
        r.get("formats", list, ReportConfig().formats),
        r.get("baseline", str),
        r.get("references", list, []),
        r.get("trackers", list, []),
    )
    r.done()
    check_choice_list(source, "report.formats", report.formats, list(FORMATS), allow_empty=True)
    check_choice_list(source, "report.trackers", report.trackers, list(TRACKERS), allow_empty=True)
    for i, ref in enumerate(report.references, start=1):
        if not isinstance(ref, dict) or not set(REFERENCE_FIELDS) <= set(ref):
            raise ConfigError(
                f"{source}: report.references #{i}: expected a table with model, metric, value, source"
            )
    if report.baseline is not None and report.baseline not in {m.name for m in models}:
        raise ConfigError(f"{source}: report.baseline: {report.baseline!r} is not the name of a [[model]]")
    return report


def load_config(path: str | Path, *, data_dir: str | Path | None = None) -> ExperimentConfig:
    """Read and check an experiment TOML file (``data_dir`` overrides its ``corpus.data_dir``)."""
    path = Path(path)
    try:
        # read at most the bound: /dev/zero or a huge file as a config is exit 2, not a MemoryError
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        check_config_size(str(path), len(raw))
        text = raw.decode("utf-8-sig")  # a byte-order mark (Windows editors) is not TOML
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a TOML file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: invalid UTF-8 at byte offset {e.start}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML ({e})") from None
    except RecursionError:  # arrays or inline tables nested hundreds deep
        raise ConfigError(
            f"{path}: nested more than {MAX_DEPTH} tables or arrays deep (the bound on a config)"
        ) from None
    return parse_config(
        data, source=str(path), base=path.resolve().parent, data_dir=Path(data_dir) if data_dir else None
    )


# ------------------------------------------------------------------------------------------------ validation
# Checks that need more than a type: each raises ConfigError naming the file, the key and what was expected.

PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def check_plain_name(source: str, key: str, name: str) -> None:
    """Experiment and model names become folder names: letters, digits, ``-_.``, not ``.``/``..``, not hidden."""
    if not PLAIN_NAME.fullmatch(name) or name.startswith("."):
        raise ConfigError(
            f"{source}: {key}: expected a plain name (letters, digits, '-', '_', '.'; not starting with '.';"
            f" at most 128 characters), got {name!r}"
        )


def check_unique_name(source: str, name: str, earlier: Sequence[str]) -> None:
    """Model names must differ after case-folding: on macOS and Windows ``LSTM`` and ``lstm`` share a folder."""
    clash = next((x for x in earlier if x.casefold() == name.casefold()), None)
    if clash is not None:
        same = (
            "duplicate model name"
            if clash == name
            else f"same folder as model '{clash}' (names differ only in case)"
        )
        raise ConfigError(f"{source}: model '{name}': {same}")


def check_seed(source: str, key: str, seed: int) -> None:
    if seed < 0:
        raise ConfigError(f"{source}: {key}: expected an integer >= 0, got {seed}")


def check_budget_values(source: str, where: str, values: dict[str, Any]) -> None:
    """epochs and minutes: positive finite numbers; tokens: a positive integer (half a token is not a budget)."""
    for key, value in values.items():
        if value is None:
            continue
        if key == "tokens" and not isinstance(value, int):
            raise ConfigError(f"{source}: {where}.tokens: expected a positive integer, got {value!r}")
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{source}: {where}.{key}: expected a positive number, got {value!r}")


def check_choice_list(
    source: str, key: str, values: list[Any], choices: Sequence[str], *, allow_empty: bool = False
) -> None:
    """A list of distinct values from ``choices`` (non-empty unless ``allow_empty``)."""
    expected = ", ".join(repr(c) for c in choices)
    if not values and not allow_empty:
        raise ConfigError(f"{source}: {key}: expected a non-empty list of {expected}, got []")
    for value in values:
        if not isinstance(value, str) or value not in choices:
            raise ConfigError(f"{source}: {key}: expected values from {expected}, got {value!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{source}: {key}: {values!r} lists a value twice")


def check_corpus_values(source: str, corpus: CorpusConfig) -> None:
    """Split fractions in (0, 0.5) and a corpus name that is a card or ``synthetic``."""
    for key in ("valid_fraction", "test_fraction"):
        value = getattr(corpus, key)
        if not 0.0 < value < 0.5:
            raise ConfigError(f"{source}: corpus.{key}: expected a fraction in (0, 0.5), got {value!r}")
    if corpus.name is not None and corpus.name != "synthetic":
        from lmbench.data.cards import card_files

        if corpus.name not in card_files():
            raise ConfigError(
                f"{source}: corpus.name: unknown corpus {corpus.name!r}; expected 'synthetic' or one of "
                f"{', '.join(card_files())}"
            )


def check_synthetic_options(source: str, options: dict[str, Any]) -> None:
    """The synthetic corpus's options against the types of :class:`SyntheticConfig` (``topics = true`` is no count)."""
    hints = typing.get_type_hints(SyntheticConfig)
    for key, value in options.items():
        if not _matches(value, hints[key]):
            raise ConfigError(f"{source}: corpus.{key}: expected {_describe(hints[key])}, got {value!r}")
    if options.get("seed", 0) < 0:
        check_seed(source, "corpus.seed", options["seed"])


def model_settings(family: str) -> dict[str, Any] | None:
    """Every setting a family takes, with its type hint: the constructor's keywords, or (for a constructor
    taking ``**params``) the fields of the dataclasses its ``settings_sources()`` names."""
    from lmbench.models.registry import model_class

    cls = model_class(family)
    settings: dict[str, Any] = {}
    hints = typing.get_type_hints(cls.__init__)
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind is p.VAR_POSITIONAL:
            continue
        if p.kind is p.VAR_KEYWORD:
            if not hasattr(cls, "settings_sources"):
                return None  # takes any keyword and declares none: the constructor alone judges
            for source_class in cls.settings_sources():
                source_hints = typing.get_type_hints(source_class)
                for f in dataclasses.fields(source_class):
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                        continue  # filled in by the model itself (vocab_size)
                    settings[f.name] = source_hints[f.name]
            continue
        settings[p.name] = hints.get(p.name, Any)
    return settings


def _matches(value: Any, hint: Any) -> bool:
    """Does a TOML value fit a type hint? bool is not an int; an int is a float; floats are finite."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        args = typing.get_args(hint)
        return (
            isinstance(value, list) and all(_matches(v, args[0]) for v in value)
            if args
            else isinstance(value, list)
        )
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _describe(hint: Any) -> str:
    """A type hint in a config writer's words (TOML cannot write None, so ``X | None`` reads as X)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint) if h is not type(None))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(hint))
    if origin in (list, tuple, Sequence):
        args = typing.get_args(hint)
        return f"a list of {_describe(args[0]).removeprefix('an ').removeprefix('a ')}s" if args else "a list"
    names = {
        bool: "true or false",
        int: "an integer",
        float: "a finite number",
        str: "a string",
        dict: "a table",
    }
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def check_model_settings(source: str, where: str, family: str, params: dict[str, Any]) -> None:
    """A registered family; each model setting against the type its family declares (so ``lr = "fast"`` names
    lr and "a number"); an internal n-gram smoothing name refused; a device that this machine actually has;
    and last the family's own checks of the values (ranges, presets), which build nothing that is kept."""
    from lmbench.models.registry import check_settings, registered_family

    try:
        registered_family(family)
    except ConfigError as e:  # unknown, or its plugin failed to load
        raise ConfigError(f"{source}: {where}: {e}") from None
    settings = model_settings(family)
    for key, value in params.items():
        if settings is None:
            break  # a family that declares no settings: its constructor checks them
        if key not in settings:
            raise ConfigError(
                f"{source}: {where}: unknown key {key!r} for family {family!r}; expected some of {', '.join(settings)}"
            )
        if not _matches(value, settings[key]):
            raise ConfigError(f"{source}: {where}: {key}: expected {_describe(settings[key])}, got {value!r}")
    if isinstance(params.get("seed"), int):
        check_seed(source, f"{where}: seed", params["seed"])
    cutoffs = params.get("cutoffs")
    if isinstance(cutoffs, list) and (not cutoffs or cutoffs[0] <= 2 or cutoffs != sorted(set(cutoffs))):
        raise ConfigError(f"{source}: {where}: cutoffs: expected increasing ids from 3 up, got {cutoffs!r}")
    if isinstance(params.get("device"), str):
        problem = device_problem(params["device"])
        if problem:
            raise ConfigError(f"{source}: {where}: device: {problem}")
    try:
        check_settings(family, params)
    except ConfigError as e:
        raise ConfigError(f"{source}: {where}: {e}") from None


def check_settings_for_vocabulary(config: ExperimentConfig, vocab_size: int) -> None:
    """After the vocabulary is built and before any model trains: adaptive-softmax cutoffs must lie inside it."""
    for spec in config.models:
        if spec.params.get("output") != "adaptive":
            continue
        from lmbench.models.output import default_cutoffs

        cutoffs = spec.params.get("cutoffs") or default_cutoffs(vocab_size)
        if cutoffs[0] <= 2 or cutoffs[-1] >= vocab_size:
            given = "" if spec.params.get("cutoffs") else " (the default for this vocabulary)"
            raise ConfigError(
                f"{config.source}: model '{spec.name}': cutoffs: {cutoffs}{given} must lie between 3 and "
                f"|V| - 1 = {vocab_size - 1}; the vocabulary has {vocab_size} entries"
            )


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot be used on this machine (None if it can): a CUDA device on a CPU-only build, etc."""
    if device in ("auto", "cpu"):
        return None
    import torch

    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            return f"{device!r} requested but this PyTorch has no usable CUDA device; use 'auto' or 'cpu'"
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            return f"{device!r}: this machine has CUDA devices 0..{torch.cuda.device_count() - 1}"
    elif device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return "'mps' requested but Apple's Metal back-end is not available here; use 'auto' or 'cpu'"
    return None


EXAMPLE_FILES = (
    Path(__file__).resolve().parent / "data" / "examples"
)  # example task files shipped in the package


def resolve_task_paths(
    source: str,
    tasks: dict[str, Any],
    *,
    base: Path,
    data_dir: Path | None,
    file_options: dict[str, Sequence[str]],
) -> dict[str, dict[str, Any]]:
    """The task tables with the file paths of their options made absolute, as new tables (``tasks`` is not
    changed; a table that is not a table is kept as it is, for the task checks to name). ``file_options``:
    each known task's option keys that name files (its module's ``FILE_OPTIONS``).

    Rule (as corpus cards find ``<name>/``): a relative path is looked for beside the config file, then in the
    data folder (``corpus.data_dir`` or ``--data-dir``, else ``$LMBENCH_DATA``, else ``../shared/corpora``, else
    ``./data``: :func:`lmbench.data.cards.data_dir`), then among the example files installed with lmbench
    (``lmbench/data/examples``: ``minimal-pairs/npi_present_1.jsonl`` works from any folder).
    A file in neither is an error naming both places.
    """
    from lmbench.data.cards import data_dir as default_data_dir

    roots = [base, data_dir or default_data_dir(), EXAMPLE_FILES]

    def resolve(key: str, value: str) -> str:
        path = Path(value).expanduser()
        if path.is_absolute():
            return str(path)
        for root in roots:
            if _is(root / path, Path.exists, source, key):
                return str((root / path).resolve())
        where = " or ".join(str(r) for r in roots)
        raise ConfigError(f"{source}: {key}: file {value!r} not found in {where}")

    resolved: dict[str, Any] = {}
    for name, options in tasks.items():
        if not isinstance(options, dict):
            resolved[name] = options
            continue
        resolved[name] = dict(options)
        for key in file_options.get(name, ()):
            value = options.get(key)
            if isinstance(value, str):
                resolved[name][key] = resolve(f"tasks.{name}.{key}", value)
            elif isinstance(value, list):
                resolved[name][key] = [
                    resolve(f"tasks.{name}.{key}", v) if isinstance(v, str) else v for v in value
                ]
    return resolved


def check_task_options(
    source: str,
    tasks: dict[str, Any],
    defaults: dict[str, dict[str, Any]],
    file_options: dict[str, Sequence[str]],
    model_names: Sequence[str],
) -> None:
    """Task options against the type of their defaults (so ``max_tokens = "x"`` fails now, not after training):
    numbers >= 0 (temperature > 0), ``split`` a split name, ``reference`` a model of this config.

    ``defaults``: each known task's default options (tasks not in it are named by the task checks);
    ``file_options``: its option keys that name files (checked by :func:`resolve_task_paths`)."""
    for name, options in tasks.items():
        if name not in defaults or not isinstance(options, dict):
            continue  # validate_task_configs names it
        for key, value in options.items():
            where = f"{source}: tasks.{name}.{key}"
            default = defaults[name].get(key)
            if default is None or key in file_options.get(name, ()):
                continue
            hint = (
                type(default)
                if not isinstance(default, list)
                else list[type(default[0])]
                if default
                else list
            )
            if not _matches(value, hint):
                raise ConfigError(f"{where}: expected {_describe(hint)}, got {value!r}")
            numbers = value if isinstance(value, list) else [value]
            if any(isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0 for v in numbers):
                raise ConfigError(f"{where}: expected numbers >= 0, got {value!r}")
        if "temperature" in options and not options["temperature"] > 0:
            raise ConfigError(
                f"{source}: tasks.{name}.temperature: expected a number > 0, got {options['temperature']!r}"
            )
        if "split" in options and options["split"] not in SPLIT_NAMES:
            raise ConfigError(
                f"{source}: tasks.{name}.split: expected one of {', '.join(SPLIT_NAMES)}, got {options['split']!r}"
            )
        reference = options.get("reference")
        if key_is_set(options, "reference") and reference not in model_names:
            raise ConfigError(
                f"{source}: tasks.{name}.reference: {reference!r} is not the name of a [[model]]"
            )


def key_is_set(options: dict[str, Any], key: str) -> bool:
    return options.get(key) is not None
