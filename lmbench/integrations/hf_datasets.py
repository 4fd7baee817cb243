"""Corpora from Hugging Face ``datasets``: ``[corpus.hf]`` passes ``load_dataset``'s arguments through.

```toml
[corpus.hf]
path = "text"                       # a builder (text, json, csv, parquet), a local folder or a hub name
data_files = {train = "train.txt", validation = "valid.txt", test = "test.txt"}
text_field = "text"                 # the column holding the text
splits = {train = "train", valid = "validation", test = "test"}   # or slices: "train[:90%]"
```

Each row's text is one or more lines of the split (a row holding newlines gives several), so the ``text`` builder
over a file gives exactly the lines, checksums and figures of reading that file directly. Offline use works
with local builders and the datasets cache (``HF_DATASETS_OFFLINE=1``). Provenance records the dataset, its
config, revision and each split's fingerprint.

Needs the optional extra: ``pip install -e ".[hf]"``.
"""

from __future__ import annotations

import importlib.util
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmbench.data.corpus import Corpus, normalize_newlines
from lmbench.errors import ConfigError, DataError

EXTRA = "pip install -e '.[hf]'"
DEFAULT_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
SPLIT_PATTERN = re.compile(r"[\w.-]+(\[[^\]]*\])?(\+[\w.-]+(\[[^\]]*\])?)*")


@dataclass
class HFDatasetConfig:
    """``[corpus.hf]``: what :func:`datasets.load_dataset` is called with, and which column and splits to use."""

    path: str  # a builder (text, json, csv, parquet), a local folder or a dataset name on the Hub
    name: str | None = None  # the dataset's configuration (subset), where it has several
    data_files: str | list[str] | dict[str, str | list[str]] | None = (
        None  # for a builder: paths, globs or URLs
    )
    revision: str | None = None  # a Hub revision (commit, tag or branch) to pin the data to
    text_field: str = "text"  # the column holding the text
    splits: dict[str, str] = field(
        default_factory=lambda: dict(DEFAULT_SPLITS)
    )  # train/valid/test -> split or slice


def require_datasets() -> None:
    if importlib.util.find_spec("datasets") is None:
        raise ConfigError(f"corpus.hf needs the optional extra: {EXTRA}")


def parse_hf_table(source: str, table: Any, base: Path) -> HFDatasetConfig:
    """Check ``[corpus.hf]`` (types, known keys, the three splits) and make local paths absolute."""
    where = f"{source}: corpus.hf"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {table!r}")
    known = {"path", "name", "data_files", "revision", "text_field", "splits"}
    unknown = [k for k in table if k not in known]
    if unknown:
        raise ConfigError(
            f"{source}: unknown key 'corpus.hf.{unknown[0]}'; expected some of {', '.join(sorted(known))}"
        )
    if not isinstance(table.get("path"), str) or not table["path"]:
        raise ConfigError(
            f"{where}.path: expected a builder (text, json, csv, parquet), folder or dataset name"
        )
    for key in ("name", "revision", "text_field"):
        if key in table and not (isinstance(table[key], str) and table[key]):
            raise ConfigError(f"{where}.{key}: expected a non-empty string, got {table[key]!r}")
    splits = table.get("splits", DEFAULT_SPLITS)
    if not isinstance(splits, dict) or set(splits) != set(DEFAULT_SPLITS):
        raise ConfigError(
            f"{where}.splits: expected a table mapping train, valid and test to dataset splits, got {splits!r}"
        )
    for split, value in splits.items():
        if not isinstance(value, str) or not SPLIT_PATTERN.fullmatch(value):
            raise ConfigError(
                f"{where}.splits.{split}: expected a split name or slice (e.g. 'train[:90%]'), got {value!r}"
            )
    data_files = table.get("data_files")
    data_files = _resolve_files(where, data_files, base) if data_files is not None else None
    path = table["path"]
    local = Path(path).expanduser()
    if not local.is_absolute() and (base / local).exists():
        path = str((base / local).resolve())
    require_datasets()
    return HFDatasetConfig(path=path, name=table.get("name"), data_files=data_files, revision=table.get("revision"),
                           text_field=table.get("text_field", "text"), splits=dict(splits))  # fmt: skip


def _resolve_files(where: str, value: Any, base: Path) -> Any:
    """``data_files`` with relative local paths made absolute (a glob or a remote URL is kept as written)."""

    def one(v: Any) -> str:
        if not isinstance(v, str):
            raise ConfigError(f"{where}.data_files: expected file paths, got {v!r}")
        p = Path(v).expanduser()
        if "://" in v or p.is_absolute():
            return v
        return str((base / p).resolve()) if (base / p).exists() or any(c in v for c in "*?[") else v

    if isinstance(value, str):
        return one(value)
    if isinstance(value, list):
        return [one(v) for v in value]
    if isinstance(value, dict):
        return {k: [one(x) for x in v] if isinstance(v, list) else one(v) for k, v in value.items()}
    raise ConfigError(
        f"{where}.data_files: expected a path, a list of paths or a table of them, got {value!r}"
    )


def _short(error: BaseException) -> str:
    return textwrap.shorten(str(error).splitlines()[0] if str(error) else type(error).__name__, 200)


def load_hf_corpus(config: HFDatasetConfig, *, source: str = "<config>") -> tuple[Corpus, dict[str, Any]]:
    """The three splits as a :class:`Corpus`, and the provenance (dataset, config, revision, fingerprints).

    A split the dataset does not have, a missing column or an unreachable dataset is a one-line
    :class:`ConfigError` naming the key."""
    require_datasets()
    import datasets

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    args = {"name": config.name, "data_files": config.data_files, "revision": config.revision}
    args = {k: v for k, v in args.items() if v is not None}
    try:
        builder = datasets.load_dataset_builder(config.path, **args)
    except Exception as e:  # noqa: BLE001 - datasets raises many types (FileNotFoundError, ConnectionError, ...)
        raise ConfigError(
            f"{source}: corpus.hf.path: cannot load dataset {config.path!r} ({_short(e)})"
        ) from None
    files = builder.config.data_files  # a packaged builder's splits are its data_files' keys
    known = files.keys() if files else (builder.info.splits or {}).keys()
    available = sorted(known) or None
    texts, fingerprints = {}, {}
    for split, spec in config.splits.items():
        texts[split], fingerprints[split] = _load_split(config, split, spec, args, available, source)
    name = Path(config.path).name if Path(config.path).expanduser().exists() else config.path
    corpus = Corpus.from_texts(
        name + (f"-{config.name}" if config.name else ""),
        texts["train"],
        texts["valid"],
        texts["test"],
        sources={k: f"{config.path} ({v})" for k, v in config.splits.items()},
    )
    provenance = {
        "dataset": config.path,
        "config": config.name or builder.config.name,
        "revision": config.revision,
        "data_files": config.data_files,
        "text_field": config.text_field,
        "splits": config.splits,
        "fingerprints": fingerprints,
        "datasets": datasets.__version__,
    }
    return corpus, provenance


def _load_split(
    config: HFDatasetConfig,
    split: str,
    spec: str,
    args: dict[str, Any],
    available: list[str] | None,
    source: str,
) -> tuple[str, str]:
    """One split's text (its rows of ``text_field``, one per line) and the dataset's fingerprint of it.
    ``spec``: the dataset's split expression (``train[:90%]``, ``a+b``); ``available``: the dataset's split
    names where known. A missing split or column, or a row that is not text, is a one-line error."""
    import datasets

    key = f"{source}: corpus.hf.splits.{split}"
    base_names = [re.sub(r"\[.*\]$", "", part) for part in spec.split("+")]
    if available is not None and any(b not in available for b in base_names):
        missing = next(b for b in base_names if b not in available)
        raise ConfigError(
            f"{key}: dataset {config.path!r} has no split {missing!r} (it has: {', '.join(available)})"
        )
    try:
        ds = datasets.load_dataset(config.path, split=spec, **args)
    except (ValueError, KeyError) as e:
        raise ConfigError(f"{key}: {spec!r}: {_short(e)}") from None
    except Exception as e:  # noqa: BLE001
        raise ConfigError(
            f"{source}: corpus.hf: cannot load {config.path!r} split {spec!r} ({_short(e)})"
        ) from None
    if config.text_field not in ds.column_names:
        raise ConfigError(
            f"{source}: corpus.hf.text_field: no column {config.text_field!r} in {config.path!r} "
            f"(it has: {', '.join(ds.column_names)})"
        )
    rows = ds[config.text_field]
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, str)), None)
    if bad is not None:
        raise DataError(
            f"{config.path} ({spec}): row {bad}: {config.text_field!r} is {rows[bad]!r}, expected text"
        )
    text = normalize_newlines("\n".join(rows))
    return (text.removeprefix("\ufeff") + "\n") if rows else "", ds._fingerprint
