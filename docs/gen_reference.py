"""The configuration reference, generated from lmbench's own declarations at every ``mkdocs build``.

Nothing here lists a setting by hand: the sections' keys come from the ``_Reader.get`` calls of
``lmbench/config.py`` (their TOML names, types and defaults), each family's settings from
:func:`lmbench.config.model_settings` and the model's ``get_params()``, the tasks' options from their
``DEFAULTS``, and the descriptions from the declarations' docstrings and field comments. A setting added to
the code appears here at the next build; ``tests/test_docs.py`` checks that none is missing.

MkDocs runs this file as a hook (``hooks:`` in ``mkdocs.yml``): :func:`on_files` adds the generated page.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import math
import re
import textwrap
import tokenize
import typing
from pathlib import Path
from typing import Any

PAGE = "reference/configuration.md"

# Settings whose declarations carry no comment or docstring line (the generator refuses one that names a
# setting no family has, so this cannot go stale silently).
EXTRA_SETTING_NOTES = {
    "cell": "the recurrent cell; fixed by the family name (`rnn`, `gru`, `lstm`)",
    "emb_size": "width of the word embedding",
    "hidden_size": "width of the recurrent state",
    "layers": "stacked layers (recurrent cells or Transformer blocks)",
    "dropout": "dropout probability between layers (and on attention/feed-forward outputs)",
    "tie_weights": "share the input embedding and the output layer's weights (needs matching widths)",
    "cutoffs": "adaptive softmax: increasing word ids (ids are frequency ranks) where the head and each tail cluster end; default from the vocabulary size",
    "d_model": "width of the residual stream",
    "n_heads": "attention heads per layer (must divide `d_model`)",
    "window": "context window in tokens (scoring rolls it W/2 at a time)",
    "lr": "peak learning rate",
    "batch_size": "sequences per training step",
    "warmup_steps": "linear warm-up steps before the schedule",
    "min_lr_ratio": "cosine: the final learning rate as a fraction of `lr`",
    "clip": "gradient-norm clipping threshold (0: none)",
    "device": "`auto` (CUDA, then MPS, then CPU), `cpu`, `cuda[:N]` or `mps`",
    "seed": "not written as a setting: comes from the experiment's or the model table's `seed`/`seeds`",
    "output": "`full` softmax or `adaptive` softmax (Grave et al. 2017)",
    "checkpoint_seconds": "seconds between training checkpoints (an interrupted run resumes from the last)",
    "stride": "stream mode: tokens the window slides (default window/2)",
    "seq_len": "fine-tuning window in tokens",
    "train_batch_size": "fine-tuning sequences per step",
    "k": "add-k / Lidstone: the pseudo-count added to every count",
    "discount": "absolute discounting / Kneser-Ney: the discount D (default Ney's n1/(n1+2 n2) per order)",
    "backoff": "stupid back-off: the constant factor of each back-off step",
}
BUDGET_NOTES = {
    "epochs": "passes over the training split (fractions allowed)",
    "tokens": "training tokens (an integer)",
    "minutes": "wall-clock minutes, the closing validation pass included (depends on the machine)",
}
SYNTHETIC_NOTES = {
    "topics": "opener/closer pairs `A_k`/`Z_k`, each with its own filler Markov chain",
    "fillers": "filler word types",
    "min_len": "fewest filler words per line",
    "max_len": "most filler words per line",
    "seed": "picks one language of this shape (not the experiment's seed)",
    "train_lines": "lines in the training split",
    "valid_lines": "lines in the validation split",
    "test_lines": "lines in the test split",
}
SEARCH_NOTES = {
    "trials": "stop after this many finished (complete or pruned) trials",
    "budget": "total training budget of a model's trials, a budget table (`{tokens = 1_000_000}`)",
    "trial_budget": "each trial's training budget (default: the model's own)",
}

# Task options whose DEFAULTS entry carries no comment (checked against DEFAULTS like the notes above).
TASK_NOTES = {
    "next-word": {
        "max_tokens": "positions scored (a seeded sample of the split)",
        "context_length": "at most this many tokens of context (sentence mode)",
        "batch_size": "contexts per `next_token_logprobs` call",
        "split": "which split the positions come from",
    },
    "minimal-pairs": {
        "sentences": "sentences drawn for the generated pairs",
        "distances": "swap two words this far apart (one pair set per distance)",
        "replace": "also replace a word by one of similar frequency",
        "last_word": "also swap the last word for another sentence's",
        "files": 'JSONL pair files: `{"good", "bad"}` or BLiMP\'s `sentence_good`/`sentence_bad`/`UID`/...',
        "split": "which split the generated pairs come from",
        "min_length": "skip sentences shorter than this",
        "tie_tolerance": "totals this close (relative) are a tie: counted in `ties`, half in the accuracy",
    },
    "classify": {
        "train": "labelled CSV/TSV with a header (beside the config, else in the data folder)",
        "test": "labelled CSV/TSV scored (all rows by default)",
        "text_column": "the column holding the text",
        "label_column": "the column holding the label (read as a stripped string)",
        "max_train": "at most this many training texts per class",
        "max_test": "at most this many test texts",
        "features": "`true`, `false` or `auto`: the pooled-state classifier only where it beats TF-IDF held out",
        "baselines": "also report multinomial naive Bayes and TF-IDF + logistic regression",
        "tokenizer": "for the files' raw text; default: the corpus's `external_tokenizer`",
    },
    "generate": {
        "samples": "continuations per model",
        "prompts": "prompt texts (default: the first `prompt_tokens` words of seeded sentences of `split`)",
        "prompt_tokens": "words of each drawn prompt",
        "max_tokens": "most tokens generated per sample (stops after `</s>`)",
        "temperature": "sampling temperature",
        "top_k": "sample from the k most probable tokens (0: all)",
        "reference": "a model name: perplexity of every model's samples under it",
        "split": "where drawn prompts come from",
        "show": "samples per model shown in the report",
    },
}


# --------------------------------------------------------------------------- reading declarations


def _comments(source: str) -> dict[int, str]:
    """Line number -> the comment on that line (``# fmt: ...`` pragmas dropped)."""
    out: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            if not text.startswith(("fmt:", "noqa", "type:", "pragma")):
                out[tok.start[0]] = text
    return out


@functools.cache
def field_notes(cls: type) -> dict[str, str]:
    """A dataclass's field comments: on the field's own lines, or on comment lines just above it."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments, lines = _comments(source), source.splitlines()
    notes: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:  # type: ignore[attr-defined]
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        own = [comments[i] for i in range(node.lineno, (node.end_lineno or node.lineno) + 1) if i in comments]
        above, i = [], node.lineno - 1
        while i >= 1 and lines[i - 1].strip().startswith("#"):
            if i in comments:
                above.insert(0, comments[i])
            i -= 1
        if own or above:
            notes[node.target.id] = " ".join(above + own)
    return notes


def docstring_args(obj: Any) -> dict[str, str]:
    """``name: text`` entries of a Google-style ``Args:`` section (continuation lines joined)."""
    doc = inspect.getdoc(obj) or ""
    notes: dict[str, str] = {}
    inside, current, indent = False, None, None
    for line in doc.splitlines():
        if line.strip() == "Args:":
            inside, indent = True, None
            continue
        if not inside:
            continue
        if not line.strip():
            current = None
            continue
        width = len(line) - len(line.lstrip())
        if indent is None:
            indent = width
        if width < indent or (width == indent and ":" not in line):
            inside = False
            continue
        match = re.match(r"\s*\**([A-Za-z_][A-Za-z0-9_]*)(?: \([^)]*\))?:\s*(.*)", line)
        if width == indent and match:
            current = match.group(1)
            notes[current] = match.group(2).strip()
        elif current is not None:
            notes[current] += " " + line.strip()
    return notes


def dict_notes(module: Any, name: str) -> dict[str, str]:
    """Comments beside the keys of a module-level dict literal (only where a key has its line to itself)."""
    source = inspect.getsource(module)
    comments = _comments(source)
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            if not isinstance(node.value, ast.Dict):
                return {}
            keys = [k for k in node.value.keys if isinstance(k, ast.Constant)]
            per_line: dict[int, int] = {}
            for k in keys:
                per_line[k.lineno] = per_line.get(k.lineno, 0) + 1
            return {
                k.value: comments[k.lineno] for k in keys if per_line[k.lineno] == 1 and k.lineno in comments
            }
    return {}


@dataclasses.dataclass
class Key:
    """One TOML key of a config section, as ``lmbench/config.py`` reads it."""

    name: str
    kind: str
    default: str
    required: bool = False


def _type_words(node: ast.expr) -> str:
    names = {
        "str": "a string",
        "int": "an integer",
        "float": "a finite number",
        "list": "a list",
        "dict": "a table",
        "bool": "true or false",
    }
    if isinstance(node, ast.Tuple):
        return " or ".join(_type_words(e) for e in node.elts)
    if isinstance(node, ast.Name):
        return names.get(node.id, node.id)
    if isinstance(node, ast.IfExp):  # int if k == "tokens" else (int, float)
        return "a finite number"
    return ast.unparse(node)


def section_keys(*functions: Any) -> list[Key]:
    """The keys ``_parse_*`` functions of lmbench/config.py read: every ``reader.get("key", type, default)``."""
    tree = ast.parse("\n".join(textwrap.dedent(inspect.getsource(f)) for f in functions))
    keys: dict[str, Key] = {}
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
        ):
            continue
        if (
            len(node.args) < 2
            or not isinstance(node.args[0], ast.Constant)
            or not isinstance(node.args[0].value, str)
        ):
            continue
        required = any(k.arg == "required" and ast.literal_eval(k.value) for k in node.keywords)
        default = ast.unparse(node.args[2]) if len(node.args) > 2 else "—"
        name = node.args[0].value
        keys.setdefault(name, Key(name, _type_words(node.args[1]), default, required))
    for node in ast.walk(tree):  # tables read by a helper: _budget(top, "budget"), top.table.pop("search")
        if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[-1], ast.Constant):
            continue
        helper = isinstance(node.func, ast.Name) and node.func.id == "_budget"
        popped = isinstance(node.func, ast.Attribute) and node.func.attr == "pop" and len(node.args) == 1
        if (helper or popped) and isinstance(node.args[-1].value, str):
            keys.setdefault(node.args[-1].value, Key(node.args[-1].value, "a table", "—"))
    return sorted(keys.values(), key=lambda k: (not k.required, tree_order(tree, k.name)))


def tree_order(tree: ast.AST, name: str) -> int:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value == name:
            return node.lineno
    return 10**9


# --------------------------------------------------------------------------- formatting


def type_words(hint: Any) -> str:
    """A type hint in a config writer's words (TOML has no null: ``X | None`` reads as X, unset by default)."""
    from lmbench.config import _describe

    return _describe(hint)


def toml_value(value: Any) -> str:
    """A default as it would be written in TOML (``—`` where unset)."""
    if value is None or value is dataclasses.MISSING or value is inspect.Parameter.empty:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and math.isfinite(value):
        return f"`{value:g}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, (list, tuple)):
        return "`[" + ", ".join(toml_value(v).strip("`") for v in value) + "]`"
    return f"`{value}`"


def _cell(text: str) -> str:
    """One table cell: reStructuredText markup of docstrings made Markdown, pipes escaped."""
    text = re.sub(r":[a-z]+:`~?([^`]*?)`", lambda m: "`" + m.group(1).rsplit(".", 1)[-1] + "`", text)
    text = text.replace("``", "`")
    return text.replace("|", "\\|").replace("\n", " ").strip()


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the sections


def family_settings(family: str) -> list[tuple[str, Any, Any, str]]:
    """``(setting, type hint, default, description)`` for every setting of ``family``, in declaration order."""
    from lmbench.config import model_settings
    from lmbench.models.registry import MODELS, model_class

    cls = model_class(family)
    settings = model_settings(family) or {}
    notes: dict[str, str] = {}
    sources = list(cls.settings_sources()) if hasattr(cls, "settings_sources") else []
    for source in reversed(sources):  # the earlier source's comment wins where a name repeats
        notes.update(docstring_args(source))
        if dataclasses.is_dataclass(source):
            notes.update(field_notes(source))
    notes.update(docstring_args(cls))
    notes.update(docstring_args(cls.__init__))
    defaults: dict[str, Any] = {}
    signature = inspect.signature(cls.__init__)
    for p in signature.parameters.values():
        if p.default is not inspect.Parameter.empty:
            defaults[p.name] = p.default
    for source in sources:
        if dataclasses.is_dataclass(source):
            for f in dataclasses.fields(source):
                if f.default is not dataclasses.MISSING:
                    defaults.setdefault(f.name, f.default)
    preset = MODELS[family].preset
    rows = []
    for name, hint in settings.items():
        note = notes.get(name) or EXTRA_SETTING_NOTES.get(name, "")
        default = preset.get(name, defaults.get(name))
        if name in preset:
            note = f"{note}; here fixed to {toml_value(preset[name])}"
        rows.append((name, hint, default, note))
    return rows


def _families_section() -> list[str]:
    from lmbench.models.registry import MODELS, model_class

    out = ["## Model settings, family by family", ""]
    out.append(
        "Every `[[model]]` table takes `name` (a folder name: letters, digits, `-`, `_`, `.`), `family`, optionally "
        "`seed = N` or `seeds = [...]`, a `[model.budget]` table and a `[model.search]` table (below); every other "
        "key is a setting of its family, checked against the type shown before anything is trained. An unset "
        "default (—) is resolved by the model (the docstring says how) and recorded by `get_params()`."
    )
    out.append("")
    known: set[str] = set()
    for family in MODELS:
        cls = model_class(family)
        summary = _cell((inspect.getdoc(cls) or "").split("\n\n")[0])
        out += [f"### `{family}`", "", f"`{cls.__module__}.{cls.__name__}` — {summary}", ""]
        settings = family_settings(family)
        known |= {name for name, *_ in settings}
        rows = [
            (f"`{name}`", type_words(hint), toml_value(default), note)
            for name, hint, default, note in settings
        ]
        out += [table(("setting", "type", "default", "what it does"), rows), ""]
        if family == "ngram":
            out += _smoothers_table()
    stale = sorted(set(EXTRA_SETTING_NOTES) - known)
    if stale:
        raise RuntimeError(
            f"docs/gen_reference.py: EXTRA_SETTING_NOTES names settings no family has: {stale}"
        )
    return out


def _smoothers_table() -> list[str]:
    from lmbench.models.ngram.smoothing import SMOOTHERS

    rows = []
    for name, cls in SMOOTHERS.items():
        params = ", ".join(f"`{p}`" for p in cls.params()) or "—"
        rows.append((f"`{name}`", cls.description, params))
    return [
        "`smoothing` takes one of these (each smoother's parameters are settings of every n-gram model and are "
        "checked whichever smoother is chosen; see [model families](../models.md) for the formulas):",
        "",
        table(("smoothing", "what it is", "its parameters"), rows),
        "",
    ]


def _dataclass_rows(cls: type, notes: dict[str, str] | None = None) -> list[tuple[str, ...]]:
    """Rows for a settings dataclass: its field comments first, ``notes`` where a field has none."""
    notes, hints = {**(notes or {}), **field_notes(cls)}, typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        rows.append((f"`{f.name}`", type_words(hints[f.name]), toml_value(default), notes.get(f.name, "")))
    return rows


def _source_default(text: str) -> str:
    """A default as written in the source (``'whitespace'``, ``ReportConfig().formats``) in TOML words."""
    from lmbench import config

    if text == "—":
        return text
    try:
        return toml_value(ast.literal_eval(text))
    except (ValueError, SyntaxError):
        return toml_value(eval(text, vars(config)))  # an expression of lmbench/config.py itself


def _section(title: str, intro: str, functions: Any, notes: dict[str, str]) -> list[str]:
    rows = []
    for key in section_keys(*(functions if isinstance(functions, tuple) else (functions,))):
        default = "required" if key.required else _source_default(key.default)
        rows.append((f"`{key.name}`", key.kind, default, notes.get(key.name, "")))
    return [f"## {title}", "", intro, "", table(("key", "type", "default", "what it does"), rows), ""]


def _tasks_section() -> list[str]:
    from lmbench.tasks import TASKS, file_options

    out = [
        "## `[tasks.*]`",
        "",
        "Each `[tasks.NAME]` table runs one downstream task on every model (see [Tasks](../tasks.md)). Its "
        "options and defaults are the task module's `DEFAULTS`; a value must have its default's type. Options "
        "naming files are looked for beside the config, then in the data folder.",
        "",
    ]
    stale = sorted(
        f"{task}.{key}"
        for task, keys in TASK_NOTES.items()
        for key in keys
        if key not in TASKS[task].DEFAULTS
    )
    if stale:
        raise RuntimeError(f"docs/gen_reference.py: TASK_NOTES names options no task has: {stale}")
    for name, module in TASKS.items():
        notes = {**TASK_NOTES.get(name, {}), **dict_notes(module, "DEFAULTS")}
        files = set(file_options(name))
        summary = (module.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        rows = []
        for key, default in module.DEFAULTS.items():
            note = notes.get(key, "")
            if key in files:
                note = ("a file path (or list of paths). " + note).strip()
            rows.append(
                (
                    f"`{key}`",
                    type(default).__name__ if default is not None else "—",
                    toml_value(default),
                    note,
                )
            )
        out += [
            f"### `[tasks.{name}]`",
            "",
            summary,
            "",
            table(("option", "type", "default", "notes"), rows),
            "",
        ]
    return out


def config_reference() -> str:
    """The whole page, as Markdown."""
    from lmbench import config
    from lmbench.data.synthetic import SyntheticConfig
    from lmbench.search.space import SearchConfig
    from lmbench.training.budget import Budget

    corpus_notes = dict(field_notes(config.CorpusConfig))
    corpus_notes.update(
        {
            "name": "a corpus card (`lmbench corpora list`) or `synthetic`",
            "train": "training text, one sentence or paragraph per line (with `valid` and `test`)",
            "valid": "validation text",
            "test": "test text",
            "file": "one text split deterministically into train/valid/test by line",
            "tokenizer": "one of " + ", ".join(f"`{t}`" for t in sorted(_tokenizers())),
            "min_count": "vocabulary: words seen fewer times in train become `<unk>`",
            "max_size": "vocabulary: keep at most this many types (ids 0-2 are `<unk>`, `<s>`, `</s>`)",
            "valid_fraction": "with `file`: the share of lines for validation",
            "test_fraction": "with `file`: the share of lines for test",
            "data_dir": "where cards find `<name>/` (`--data-dir` overrides)",
        }
    )
    top_notes = {
        "name": "the experiment's name: `out/<name>/` (the report), `runs/<name>/`",
        "seed": "the models' seed, the bootstrap's and the tasks'; never the data split",
        "seeds": "train each stochastic model once per seed",
        "corpus": "the `[corpus]` table",
        "budget": "the `[budget]` table: the default training budget of neural models",
        "model": "the `[[model]]` tables",
        "evaluate": "the `[evaluate]` table",
        "tasks": "the `[tasks.*]` tables",
        "report": "the `[report]` table",
        "search": "the `[search]` table: tuning limits shared by every `[model.search]`",
    }
    evaluate_notes = {
        "context": "context modes scored: "
        + ", ".join(f"`{c}`" for c in _contexts())
        + " (a string or a list)",
        "splits": "splits scored: " + ", ".join(f"`{s}`" for s in config.SPLIT_NAMES),
        "bootstrap": "bootstrap resamples for every interval and p-value (0: none)",
        "block_size": "stream mode: tokens per bootstrap block",
    }
    report_notes = {
        "formats": "report formats: " + ", ".join(f"`{f}`" for f in _formats()),
        "baseline": "a model name: every other model gets a paired difference against it",
        "references": "published figures drawn beside ours: tables with `model`, `metric`, `value`, `source`",
    }
    out = [
        "# Configuration reference",
        "",
        '!!! note "Generated"',
        "    This page is generated at build time from lmbench's own declarations (`lmbench/config.py`, "
        "`lmbench.config.model_settings`, the settings dataclasses and the task modules), so it lists exactly "
        "what this version accepts.",
        "",
        "A config is one TOML file; `lmbench run CONFIG.toml` reads it. Every key and value is checked before "
        "anything is read or trained: an unknown key, a wrong type or an impossible value is one line naming the "
        "file and the key, and exit code 2. See [Writing a config](../configuration.md) for an annotated example "
        "and the [first experiment](../getting-started.md#a-first-experiment) for a complete one.",
        "",
    ]
    out += _section(
        "Top level", "Keys outside any table.", (config.parse_config, config._parse_search), top_notes
    )
    out += _section(
        "`[corpus]`",
        "Exactly one source of text: `name`, `file`, or `train` + `valid` + `test`. Relative paths resolve "
        "against the config's folder.",
        config._parse_corpus,
        corpus_notes,
    )
    out += [
        'With `name = "synthetic"` the table also takes the synthetic language\'s shape '
        "(`lmbench.data.synthetic.SyntheticConfig`):",
        "",
        table(
            ("key", "type", "default", "what it does"),
            _dataclass_rows(SyntheticConfig, notes=SYNTHETIC_NOTES),
        ),
        "",
    ]
    out += [
        "## `[budget]` and `[model.budget]`",
        "",
        "How much training a neural model gets; the first limit reached stops it "
        "(`lmbench.training.budget.Budget`). `[budget]` is every model's default, a model's own `[model.budget]` "
        "overrides it; with none, a model trains for its `epochs` setting. `tokens` and `epochs` are "
        "reproducible, `minutes` depends on the machine.",
        "",
        table(("key", "type", "default", "what it does"), _dataclass_rows(Budget, notes=BUDGET_NOTES)),
        "",
    ]
    out += _families_section()
    out += _section(
        "`[evaluate]`",
        "How every model is scored (one code path for all).",
        config._parse_evaluate,
        evaluate_notes,
    )
    out += _tasks_section()
    out += _section(
        "`[report]`",
        "What is written to the report folder, `out/<name>/` unless `--output` names another.",
        config._parse_report,
        report_notes,
    )
    out += [
        "## `[search]` and `[model.search]`",
        "",
        "`[model.search]` tunes a model's settings on validation perplexity before its final training: each key "
        "is a setting of the model's family with a list of choices or a range "
        "`{low = ..., high = ..., log = true, step = ...}`, beside the limits below. `[search]` gives every "
        "searched model the same limits (`lmbench.search.space.SearchConfig`). Needs the `tune` extra.",
        "",
        table(("key", "type", "default", "what it does"), _dataclass_rows(SearchConfig, notes=SEARCH_NOTES)),
        "",
    ]
    return "\n".join(out) + "\n"


def _tokenizers() -> list[str]:
    from lmbench.data.tokenizers import TOKENIZERS

    return list(TOKENIZERS)


def _contexts() -> tuple[str, ...]:
    from lmbench.models.base import CONTEXTS

    return tuple(CONTEXTS)


def _formats() -> list[str]:
    from lmbench.reporting.formats import REPORT_FORMATS

    return list(REPORT_FORMATS)


# --------------------------------------------------------------------------- the MkDocs hook


# Pages other branches add (Ray/DDP scale-out): linked from the nav, left out of it until the file exists, so a
# strict build passes before and after that branch merges. Any other missing nav page stays an error.
PAGES_FROM_OTHER_BRANCHES = {"scale-out.md"}


def _drop_missing(nav: list[Any], docs_dir: Path) -> list[Any]:
    kept = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            kept.append({next(iter(entry)): _drop_missing(value, docs_dir)})
        elif not (value in PAGES_FROM_OTHER_BRANCHES and not (docs_dir / value).exists()):
            kept.append(entry)
    return kept


def on_config(config: Any) -> Any:
    """Leave a not-yet-merged page of another branch out of the nav (see PAGES_FROM_OTHER_BRANCHES)."""
    if config.nav:
        config.nav = _drop_missing(config.nav, Path(config.docs_dir))
    return config


def on_files(files: Any, config: Any) -> Any:
    """Add the generated configuration reference to the site (nothing is written into docs/)."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=config_reference()))
    return files


SPHINX_ROLE = re.compile(r":(?:class|meth|func|data|mod|attr|exc|obj):(<code>)~?")


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Tidy what two tools leave: mkdocs-click 0.9 prints Click 8.3's "no default" marker as
    ``Sentinel.UNSET`` (shown as —), and lmbench's docstrings use Sphinx roles (``:class:`X```), which
    mkdocstrings renders literally (the role is dropped, the name kept as code)."""
    if page.file.src_uri == "reference/cli.md":
        html = html.replace("<code>Sentinel.UNSET</code>", "—")
    return SPHINX_ROLE.sub(r"\1", html)


if __name__ == "__main__":  # python docs/gen_reference.py > config.md, to read the page without building
    print(config_reference(), end="")
