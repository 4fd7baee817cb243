"""Task results cached by identity, like scores: one item per (task, model), plus one per task for the rows
that need no model (a classifier's scikit-learn baselines).

An item's identity is the task's options after defaults (files by the sha256 of their bytes, not their path), the
fingerprints of the models it runs (the model and any model an option names, e.g. ``generate``'s reference), the
corpus splits' sha256, the experiment seed and bootstrap resamples, and lmbench's version. A per-model item is stored
beside the model's scores (``<run folder>/tasks/<task>.json``), a model-free one in ``<runs>/.tasks/<task>.json``;
a re-run reuses an item whose identity matches and says, one line per item, what it reused and what it
recomputed and why (``classify · lstm: recomputed: max_train 100 -> 200``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmbench
from lmbench.data.corpus import TokenizedCorpus
from lmbench.errors import LmbenchError
from lmbench.results import Sample, TaskResults, TaskRow
from lmbench.runs import CacheMiss, RunFolder
from lmbench.tasks.base import ModelEntry, TaskInputs, options, run_task

log = logging.getLogger(__name__)


@dataclass
class TaskItem:
    """One cached unit: ``task`` over ``model`` (None: the task's model-free rows), stored in ``folder``."""

    task: str
    model: str | None
    folder: RunFolder

    @property
    def file(self) -> str:
        return f"tasks/{self.task}.json" if self.model is not None else f"{self.task}.json"

    @property
    def label(self) -> str:
        return f"{self.task} · {self.model if self.model is not None else 'baselines'}"


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a folder's files (an lm-eval ``include_path``): each relative path and its bytes,
    in sorted order, so adding, renaming or editing any file changes it."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def option_identity(
    name: str, opts: dict[str, Any], inputs: TaskInputs | None = None
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The task's options without its file options, the sha256 of every file they name (keyed ``train file``,
    ``files file 2``), and those keys' file names (for messages such as ``spam-test.csv changed``). A file the
    task already read (``inputs``) is identified by the bytes it read, not read again."""
    from lmbench.tasks import file_options

    plain, hashes, names = {}, {}, {}
    for key, value in opts.items():
        if key in file_options(name) and value is not None:
            paths = [value] if isinstance(value, (str, Path)) else list(value)
            for i, path in enumerate(paths):
                slot = f"{key} file" + (f" {i + 1}" if len(paths) > 1 else "")
                loaded = (inputs or {}).get(str(path))
                hashes[slot] = loaded.sha256 if loaded is not None else file_sha256(path)
                names[slot] = Path(path).name
        else:
            plain[key] = value
    return plain, hashes, names


def model_options(name: str) -> tuple[str, ...]:
    """The option keys of task ``name`` that name another model of the run (its fingerprint joins the identity)."""
    from lmbench.tasks import TASKS

    return tuple(getattr(TASKS[name], "MODEL_OPTIONS", ()))


def shared_option(name: str) -> str | None:
    """The option that turns on task ``name``'s model-free rows (computed once, apart from the models)."""
    from lmbench.tasks import TASKS

    return getattr(TASKS[name], "SHARED_ROWS_OPTION", None)


def item_identity(
    name: str,
    opts: dict[str, Any],
    models: dict[str, str],
    corpus: TokenizedCorpus,
    *,
    seed: int,
    bootstrap: int,
    checksums: dict[str, str],
    inputs: TaskInputs | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Everything that determines an item's rows (``models``: name -> fingerprint of each model it runs), and
    the names of the files behind its ``data`` keys (``inputs``: the files the task read)."""
    plain, hashes, names = option_identity(name, opts, inputs)
    splits = dict(checksums)
    identity = {
        "task": name,
        "options": plain,
        "models": models,
        "data": {**hashes, **{f"corpus {split}": sha for split, sha in splits.items()}},
        "vocabulary": len(corpus.vocab),
        "external_tokenizer": corpus.external_tokenizer.name if corpus.external_tokenizer else None,
        "seed": seed,
        "bootstrap": bootstrap,
        "lmbench": lmbench.__version__,
    }
    return identity, {**names, **{f"corpus {split}": f"the corpus's {split} split" for split in splits}}


def run_tasks_cached(
    task_configs: dict[str, dict],
    models: dict[str, ModelEntry],
    corpus: TokenizedCorpus,
    *,
    seed: int,
    bootstrap: int,
    fingerprints: dict[str, str],
    checksums: dict[str, str],
    folders: dict[str, RunFolder],
    shared_folder: RunFolder,
    say: Callable[[str], None],
    inputs: dict[str, TaskInputs] | None = None,
) -> TaskResults:
    """Every configured task over every model, each (task, model) item reused where its identity matches,
    else computed and stored; a failed item is an error line and the others go on. ``fingerprints`` and
    ``folders``: each model's training fingerprint and run folder (its first seed's); ``checksums``: the
    corpus splits' sha256; ``inputs``: the task files :func:`lmbench.tasks.validate_tasks` read (every item
    of a task uses them; a task without them reads its own)."""
    from lmbench.tasks import TASKS

    out = TaskResults()
    for name, config in task_configs.items():
        module = TASKS[name]
        opts = options(name, config, module.DEFAULTS)
        shared = shared_option(name)
        items: list[tuple[TaskItem, dict[str, ModelEntry], dict[str, Any]]] = []
        if shared is not None and opts[shared]:
            items.append((TaskItem(name, None, shared_folder), {}, config))
        per_model = {**config, shared: False} if shared is not None else config
        for model in models:
            entries = {model: models[model]}
            for key in model_options(name):
                other = opts.get(key)
                if other is not None and other != model and other in models:
                    entries[other] = ModelEntry(models[other].model, models[other].factory, models[other].budget,
                                                reference_only=True)  # fmt: skip
            items.append((TaskItem(name, model, folders[model]), entries, per_model))
        for item, entries, item_config in items:
            try:
                out.extend(_run_item(module, item, entries, item_config, corpus, seed=seed,
                                     bootstrap=bootstrap, fingerprints=fingerprints, checksums=checksums,
                                     say=say, inputs=(inputs or {}).get(name)))  # fmt: skip
            except LmbenchError as e:
                out.errors.append(f"task {item.label}: {e}")
            except Exception as e:  # a broken task must not lose the run
                log.exception("task %s failed", item.label)
                first = str(e).splitlines()[0] if str(e) else ""
                out.errors.append(f"task {item.label}: {type(e).__name__}: {first}")
    return out


def _run_item(
    module: Any,
    item: TaskItem,
    entries: dict[str, ModelEntry],
    config: dict[str, Any],
    corpus: TokenizedCorpus,
    *,
    seed: int,
    bootstrap: int,
    fingerprints: dict[str, str],
    checksums: dict[str, str],
    say: Callable[[str], None],
    inputs: TaskInputs | None = None,
) -> TaskResults:
    """One item: reused where its stored identity matches, else computed (``inputs``: the task's files, where
    they were read before) and stored."""
    opts = options(item.task, config, module.DEFAULTS)  # as this item runs (per model: without baselines)
    identity, files = item_identity(item.task, opts, {m: fingerprints[m] for m in entries}, corpus, seed=seed,
                                    bootstrap=bootstrap, checksums=checksums, inputs=inputs)  # fmt: skip
    try:
        stored = item.folder.check(item.file, "identity", identity, files)
        rows = [TaskRow.from_dict(r) for r in stored["rows"]]
        generated = [Sample.from_dict(s) for s in stored.get("samples", [])]
        say(f"{item.label}: reused (same model, options and input files)")
        return TaskResults(rows, generated)
    except CacheMiss as miss:
        why = "first run" if miss.absent else str(miss)
    except (KeyError, TypeError, ValueError) as e:  # a stored file of another shape: computed again
        why = f"{item.folder.path / item.file} is unreadable ({type(e).__name__})"
    start = time.perf_counter()
    result = run_task(module, config, entries, corpus, seed=seed, bootstrap=bootstrap, inputs=inputs)
    keep = set(entries) - {m for m, e in entries.items() if e.reference_only}
    result = TaskResults(
        [r for r in result.rows if item.model is None or r.model in keep],
        [s for s in result.samples if item.model is None or s.model in keep],
        result.errors,
    )
    if result.errors:
        return result  # a failed item is not stored: the next run tries again
    (item.folder.path / item.file).parent.mkdir(parents=True, exist_ok=True)
    item.folder.write_json(item.file, {"identity": identity, "rows": [r.to_dict() for r in result.rows],
                                       "samples": [s.to_dict() for s in result.samples]})  # fmt: skip
    say(f"{item.label}: computed ({why}) in {time.perf_counter() - start:.1f} s")
    return result
