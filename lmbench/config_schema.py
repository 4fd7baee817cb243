"""The config file's JSON Schema (draft 2020-12), generated from the declarations the checker itself reads.

Nothing is listed twice: the sections' keys and types are the ``_Reader.get`` calls of :mod:`lmbench.config`
and their choices its ``check_choice_list`` calls; budgets, searches, the synthetic corpus and ``[corpus.hf]``
are their dataclasses; each family's settings are :func:`lmbench.config.model_settings` (so ``[[model]]`` is
one ``if family = ... then`` branch per family, with that family's keys only); the tasks' options are their
modules' ``DEFAULTS``. Descriptions come from the declarations' field comments and docstrings, with the notes
below where a declaration has none. ``lmbench config schema`` prints the schema, editors (Taplo / Even Better
TOML) use it to complete and check a config, and the documentation's configuration reference is drawn from it.
The checker stays the authority: it also checks what a schema cannot (files exist, ranges between keys).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import json
import math
import re
import textwrap
import tokenize
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SYNTHETIC_PREFIX = 'with name = "synthetic": '  # how the synthetic corpus's keys say when they apply
SCHEMA_ID = "urn:lmbench:config-schema"  # a name, not an address: editors read the file they are pointed at

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
        "vocabulary": "the per-class models' vocabulary: `task` (built from the training texts) or `corpus`",
    },
    "lm-eval": {
        "tasks": "lm-eval task names (e.g. `lambada_standard`), run through lm-evaluation-harness",
        "num_fewshot": "examples put before each prompt (lm-eval's `--num_fewshot`; default: the task's)",
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


# Sections' keys whose reads carry no comment (the generator refuses a note for a key no section has).
TOP_NOTES = {
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
CORPUS_NOTES = {
    "name": "a corpus card (`lmbench corpora list`) or `synthetic`",
    "train": "training text, one sentence or paragraph per line (with `valid` and `test`)",
    "valid": "validation text",
    "test": "test text",
    "file": "one text split deterministically into train/valid/test by line",
    "tokenizer": "how text is cut into tokens: a word tokenizer, `bpe` (trained on train) or `hf:PATH`",
    "min_count": "vocabulary: words seen fewer times in train become `<unk>`",
    "max_size": "vocabulary: keep at most this many types (ids 0-2 are `<unk>`, `<s>`, `</s>`)",
    "valid_fraction": "with `file`: the share of lines for validation",
    "test_fraction": "with `file`: the share of lines for test",
    "data_dir": "where cards find `<name>/` (`--data-dir` overrides)",
}
EVALUATE_NOTES = {
    "context": "context modes scored (a string or a list)",
    "splits": "splits scored (a string or a list)",
    "bootstrap": "bootstrap resamples for every interval and p-value (0: none)",
    "block_size": "stream mode: tokens per bootstrap block",
}
REPORT_NOTES = {
    "formats": "report formats written",
    "baseline": "a model name: every other model gets a paired difference against it",
    "references": "published figures drawn beside ours: tables with `model`, `metric`, `value`, `source`",
}
MODEL_NOTE = (
    "one model: `name`, `family`, optionally `seed` or `seeds`, `[model.budget]` and `[model.search]`; every "
    "other key is a setting of its family"
)


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


def node_value(node: ast.stmt) -> ast.expr | None:
    return node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None


def dict_notes(module: Any, name: str) -> dict[str, str]:
    """Comments beside the keys of a module-level dict literal (only where a key has its line to itself)."""
    source = inspect.getsource(module)
    comments = _comments(source)
    for node in ast.parse(source).body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        if node_value(node) is not None and any(isinstance(t, ast.Name) and t.id == name for t in targets):
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
    kinds: Any  # the type (or tuple of types) ``_Reader.get`` checks; None for a table read by a helper
    default: Any = None
    required: bool = False
    line: int = 0  # where it is read (keys are listed in reading order)


def _config_value(node: ast.expr) -> Any:
    """An expression of lmbench/config.py (``str``, ``(str, list)``, ``ReportConfig().formats``), evaluated there."""
    from lmbench import config

    try:
        return ast.literal_eval(node)
    except ValueError:
        return eval(ast.unparse(node), vars(config))  # noqa: S307 - lmbench's own source, never input


def _tree(*functions: Any) -> ast.AST:
    return ast.parse("\n".join(textwrap.dedent(inspect.getsource(f)) for f in functions))


def section_keys(*functions: Any) -> list[Key]:
    """The keys ``_parse_*`` functions of lmbench/config.py read: every ``reader.get("key", type, default)``,
    and the tables they hand to a helper (``_budget(top, "budget")``, ``top.table.pop("search")``)."""
    tree = _tree(*functions)
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
        default = _config_value(node.args[2]) if len(node.args) > 2 else None
        name = node.args[0].value
        keys.setdefault(name, Key(name, _config_value(node.args[1]), default, required, node.lineno))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[-1], ast.Constant):
            continue
        helper = isinstance(node.func, ast.Name) and node.func.id == "_budget"
        popped = isinstance(node.func, ast.Attribute) and node.func.attr == "pop" and len(node.args) == 1
        if (helper or popped) and isinstance(node.args[-1].value, str):
            keys.setdefault(node.args[-1].value, Key(node.args[-1].value, None, line=node.lineno))
    return sorted(keys.values(), key=lambda k: (not k.required, k.line))  # required first, then as read


def choice_lists(*functions: Any) -> dict[str, tuple[list[Any], bool]]:
    """The keys checked by ``check_choice_list(source, "table.key", value, CHOICES[, allow_empty=...])`` in
    ``functions``: key -> (its choices, whether an empty list is allowed)."""
    out = {}
    for node in ast.walk(_tree(*functions)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "check_choice_list"
        ):
            key = ast.literal_eval(node.args[1]).rsplit(".", 1)[-1]
            allow_empty = any(k.arg == "allow_empty" and ast.literal_eval(k.value) for k in node.keywords)
            out[key] = (list(_config_value(node.args[3])), allow_empty)
    return out


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
    for p in inspect.signature(cls.__init__).parameters.values():
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
            note = f"{note}; here fixed to `{preset[name]}`"
        rows.append((name, hint, default, note))
    return rows


# --------------------------------------------------------------------------- type hints as JSON Schema


def hint_schema(hint: Any) -> dict[str, Any]:
    """A type hint as JSON Schema, judging as :func:`lmbench.config._matches` does (``X | None`` is X: TOML
    has no null; a bool is not an integer; an integer is a number)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return {}
    if origin in (typing.Union, types.UnionType):
        options = [hint_schema(h) for h in typing.get_args(hint) if h is not type(None)]
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(hint))}
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        args = typing.get_args(hint)
        return {"type": "array", "items": hint_schema(args[0])} if args else {"type": "array"}
    if origin is dict:
        return {"type": "object", "additionalProperties": hint_schema(typing.get_args(hint)[1])}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "string", dict: "object"}
    return {"type": simple[hint]} if hint in simple else {}


def _json_value(value: Any) -> Any:
    """A default as JSON (``None``: no default to show)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no infinity
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return None


def plain(text: str) -> str:
    """Docstring markup as an editor's tooltip shows it: ``x`` and :class:`~a.B` become `x` and `B`."""
    text = re.sub(r":[a-z]+:`~?([^`]*?)`", lambda m: "`" + m.group(1).rsplit(".", 1)[-1] + "`", text)
    return " ".join(text.replace("``", "`").split())


def _annotate(schema: dict[str, Any], description: str = "", default: Any = None) -> dict[str, Any]:
    out = dict(schema)
    if description:
        out["description"] = plain(description)
    value = _json_value(default)
    if value is not None and value is not dataclasses.MISSING:
        out["default"] = value
    return out


def _dataclass_properties(cls: type, notes: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """A dataclass's fields as properties (field comments first, ``notes`` where a field has none)."""
    notes, hints = {**notes, **field_notes(cls)}, typing.get_type_hints(cls)
    properties, required = {}, []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
            required.append(f.name)
        properties[f.name] = _annotate(hint_schema(hints[f.name]), notes.get(f.name, ""), default)
    return properties, required


def _kind_schema(kind: Any) -> dict[str, Any]:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    options = [hint_schema(k) for k in kinds]
    return options[0] if len(options) == 1 else {"anyOf": options}


def _reader_properties(functions: tuple[Any, ...], notes: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The keys ``_Reader.get`` reads in ``functions``, with their types, defaults and choices."""
    choices = choice_lists(*functions)
    properties, required = {}, []
    for key in section_keys(*functions):
        schema = _kind_schema(key.kinds) if key.kinds is not None else {"type": "object"}
        if key.name in choices:
            values, allow_empty = choices[key.name]
            listed = {"type": "array", "items": {"enum": values}, "uniqueItems": True}
            if not allow_empty:
                listed["minItems"] = 1
            schema = {"anyOf": [{"enum": values}, listed]} if "anyOf" in schema else listed
        if key.required:
            required.append(key.name)
        properties[key.name] = _annotate(schema, notes.get(key.name, ""), key.default)
    return properties, required


# --------------------------------------------------------------------------- the sections


def _plain_name(description: str) -> dict[str, Any]:
    from lmbench.config import PLAIN_NAME

    return {"type": "string", "pattern": f"^(?!\\.)(?:{PLAIN_NAME.pattern})$", "description": description}


def _seed_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    from lmbench.config import SEED_LIMIT

    seed = {"type": "integer", "minimum": 0, "maximum": SEED_LIMIT - 1}
    seeds = {"type": "array", "items": seed, "minItems": 1, "uniqueItems": True}
    return seed, seeds


def _budget_def() -> dict[str, Any]:
    from lmbench.training.budget import Budget

    properties, _ = _dataclass_properties(Budget, BUDGET_NOTES)
    for schema in properties.values():
        schema["exclusiveMinimum"] = 0  # every limit is a positive number
    return {
        "type": "object",
        "description": _summary(Budget),
        "properties": properties,
        "additionalProperties": False,
    }


def _corpus_def() -> dict[str, Any]:
    from lmbench import config
    from lmbench.data.cards import card_files
    from lmbench.data.subword import BPE, HF_PREFIX
    from lmbench.data.synthetic import SyntheticConfig

    properties, _ = _reader_properties(
        (config._parse_corpus,), {**field_notes(config.CorpusConfig), **CORPUS_NOTES}
    )
    words = sorted(config.TOKENIZERS)
    properties["name"]["enum"] = ["synthetic", *card_files()]
    properties["tokenizer"]["anyOf"] = [{"enum": [*words, BPE]}, {"pattern": f"^{re.escape(HF_PREFIX)}."}]
    properties["external_tokenizer"]["enum"] = words
    properties["hf"] = {"allOf": [{"$ref": "#/$defs/hf"}], **_described(properties["hf"])}
    synthetic, _ = _dataclass_properties(SyntheticConfig, SYNTHETIC_NOTES)
    for key, schema in synthetic.items():
        schema["description"] = SYNTHETIC_PREFIX + schema.get("description", "")
        properties.setdefault(key, schema)
    splits = ["train", "valid", "test"]
    return {
        "type": "object",
        "description": _summary(config.CorpusConfig),
        "properties": properties,
        "additionalProperties": False,
        "oneOf": [{"required": ["name"]}, {"required": ["file"]}, {"required": splits}, {"required": ["hf"]}],
        "dependentRequired": {s: [t for t in splits if t != s] for s in splits},
        "if": {"required": ["name"], "properties": {"name": {"const": "synthetic"}}},
        "else": {"propertyNames": {"not": {"enum": sorted(config.SYNTHETIC_KEYS)}}},
    }


def _hf_def() -> dict[str, Any]:
    from lmbench.integrations.hf_datasets import DEFAULT_SPLITS, HFDatasetConfig

    properties, required = _dataclass_properties(HFDatasetConfig, {})
    properties["splits"].update(
        properties={s: {"type": "string"} for s in DEFAULT_SPLITS},
        required=list(DEFAULT_SPLITS),
        additionalProperties=False,
    )
    return {
        "type": "object",
        "description": _summary(HFDatasetConfig),
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _dimension_def() -> dict[str, Any]:
    from lmbench.search.space import RANGE_KEYS

    ends = {
        "low": {
            "type": "number",
            "description": "the range's low end (integers at both ends: an integer setting)",
        },
        "high": {"type": "number", "description": "the range's high end (above low)"},
    }
    extra = {
        "log": {"type": "boolean", "description": "sample on a log scale (needs low > 0)", "default": False},
        "step": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "sample on this grid (not with log)",
        },
    }
    assert set(ends) | set(extra) == set(RANGE_KEYS)
    return {
        "description": "a setting to tune: a list of choices, or a range `{low = ..., high = ..., log = true, step = ...}`",
        "anyOf": [
            {"type": "array", "minItems": 1, "items": {"type": ["boolean", "integer", "number", "string"]}},
            {
                "type": "object",
                "properties": {**ends, **extra},
                "required": list(ends),
                "additionalProperties": False,
            },
        ],
    }


def _search_properties() -> dict[str, Any]:
    from lmbench.search.space import SearchConfig

    properties, _ = _dataclass_properties(SearchConfig, SEARCH_NOTES)
    properties["trials"]["minimum"] = 1
    for key in ("budget", "trial_budget"):
        properties[key] = {
            "allOf": [{"$ref": "#/$defs/search_budget"}],
            "minProperties": 1,
            **_described(properties[key]),
        }
    return properties


def _described(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": schema["description"]} if "description" in schema else {}


def _search_def() -> dict[str, Any]:
    from lmbench.search.space import SearchConfig

    return {
        "type": "object",
        "description": _summary(SearchConfig),
        "properties": _search_properties(),
        "additionalProperties": False,
    }


def _model_search_def() -> dict[str, Any]:
    from lmbench.search.space import ModelSearch

    return {
        "type": "object",
        "description": _summary(ModelSearch),
        "properties": _search_properties(),
        "additionalProperties": {"$ref": "#/$defs/dimension"},
    }


def family_schema(family: str) -> dict[str, Any]:
    """One family's settings, exactly :func:`lmbench.config.model_settings` ``(family)``, as properties with their
    types, defaults and descriptions (a preset such as ``cell`` for ``lstm`` is a ``const``)."""
    from lmbench.models.registry import MODELS, model_class

    preset = MODELS[family].preset
    out: dict[str, Any] = {"description": _summary(model_class(family))}
    if model_settings_declared(family) is None:
        return out  # takes any keyword and declares none: its constructor alone judges
    properties = {}
    for name, hint, default, note in family_settings(family):
        schema = _annotate(hint_schema(hint), note, default)
        if name in preset:
            schema["const"] = preset[name]
        properties[name] = schema
    out["properties"] = properties
    return out


def model_settings_declared(family: str) -> dict[str, Any] | None:
    from lmbench.config import model_settings

    return model_settings(family)


def _family_branch(family: str, common: Sequence[str]) -> dict[str, Any]:
    """``if family = F then``: F's settings, and no key outside them (``propertyNames``, so that editors that
    know only draft 7 refuse another family's key too); ``[model.search]`` may tune only F's settings."""
    from lmbench.models.registry import MODELS
    from lmbench.search.space import SEARCH_KEYS

    then: dict[str, Any] = {"allOf": [{"$ref": f"#/$defs/family_{family}"}]}
    settings = model_settings_declared(family)
    if settings is not None:
        then["propertyNames"] = {"enum": [*common, *settings]}
        tunable = [name for name in settings if name not in ("seed", *MODELS[family].preset)]
        then["properties"] = {"search": {"propertyNames": {"enum": [*SEARCH_KEYS, *tunable]}}}
    return {"if": {"required": ["family"], "properties": {"family": {"const": family}}}, "then": then}


def _model_def() -> dict[str, Any]:
    from lmbench.models.registry import MODELS

    seed, seeds = _seed_schemas()
    common = {
        "name": _plain_name("the model's name: a folder name under runs/ and a row of the report"),
        "family": {"enum": list(MODELS), "description": "the model family: its settings follow"},
        "seed": {**seed, "description": "this model's seed (over the experiment's)"},
        "seeds": {**seeds, "description": "train this model once per seed"},
        "budget": {"allOf": [{"$ref": "#/$defs/budget"}], "description": "this model's training budget"},
        "search": {
            "allOf": [{"$ref": "#/$defs/model_search"}],
            "description": "settings tuned on validation",
        },
    }
    return {
        "type": "object",
        "description": MODEL_NOTE,
        "required": ["name", "family"],
        "properties": common,
        "not": {"required": ["seed", "seeds"]},
        "allOf": [_family_branch(family, list(common)) for family in MODELS],
    }


def task_option_schema(task: str, key: str, default: Any) -> dict[str, Any]:
    """One task option as :func:`lmbench.config.check_task_options` judges it: its default's type, numbers
    >= 0, ``split`` a split name; a file option a path or a list of paths."""
    from lmbench.config import SPLIT_NAMES
    from lmbench.tasks import file_options

    if key in file_options(task):
        return {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    if default is None:
        return {}
    if isinstance(default, list):
        schema = hint_schema(list[type(default[0])] if default else list)
    else:
        schema = hint_schema(type(default))
    for part in (schema, schema.get("items", {})):
        if part.get("type") in ("integer", "number"):
            part["minimum"] = 0
    if key == "split":
        schema["enum"] = list(SPLIT_NAMES)
    return schema


def _tasks_def() -> dict[str, Any]:
    from lmbench.tasks import TASKS

    properties = {}
    for name, module in TASKS.items():
        notes = {**TASK_NOTES.get(name, {}), **dict_notes(module, "DEFAULTS")}
        options = {
            key: _annotate(task_option_schema(name, key, default), notes.get(key, ""), default)
            for key, default in module.DEFAULTS.items()
        }
        properties[name] = {
            "type": "object",
            "description": (module.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
            "properties": options,
            "additionalProperties": False,
        }
    return {
        "type": "object",
        "description": "downstream tasks run on every model, one [tasks.NAME] table each",
        "properties": properties,
        "additionalProperties": False,
    }


def _section_def(function: Any, cls: type, notes: dict[str, str]) -> dict[str, Any]:
    properties, _ = _reader_properties((function,), {**field_notes(cls), **notes})
    return {
        "type": "object",
        "description": _summary(cls),
        "properties": properties,
        "additionalProperties": False,
    }


def _report_def() -> dict[str, Any]:
    from lmbench import config

    out = _section_def(config._parse_report, config.ReportConfig, REPORT_NOTES)
    out["properties"]["references"]["items"] = {
        "type": "object",
        "required": list(config.REFERENCE_FIELDS),
    }
    return out


def _set_bound(schema: dict[str, Any], bound: float) -> None:
    """``maximum`` on every number a setting can hold (itself, a list's items, each ``anyOf`` option)."""
    for part in (schema, schema.get("items") or {}, *schema.get("anyOf", ())):
        if part.get("type") in ("integer", "number"):
            part["maximum"] = bound


def _add_bounds(schema: dict[str, Any]) -> None:
    """The stated bounds of :mod:`lmbench.limits` (the checker's own table): counts and sizes, list lengths,
    string lengths and the number of models."""
    from lmbench import limits
    from lmbench.models.registry import MODELS

    defs = schema["$defs"]
    for dotted, bound in limits.TOP.items():
        table, _, key = dotted.partition(".")
        _set_bound(defs[table]["properties"][key], bound)
    for key, bound in limits.BUDGET.items():
        _set_bound(defs["budget"]["properties"][key], bound)
    for family in MODELS:
        settings = defs[f"family_{family}"].get("properties", {})
        for key, bound in limits.MODEL.items():
            if key in settings:
                _set_bound(settings[key], bound)
    _set_bound(defs["model_search"]["properties"]["trials"], limits.MODEL["trials"])
    for task in defs["tasks"]["properties"].values():
        for key, bound in limits.TASK.items():
            if key in task["properties"]:
                _set_bound(task["properties"][key], bound)
    schema["properties"]["model"]["maxItems"] = limits.MAX_MODELS
    stack: list[Any] = [schema]
    while stack:  # every list and every string, wherever it is
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "array":
                node["maxItems"] = min(node.get("maxItems", limits.MAX_LIST), limits.MAX_LIST)
            if node.get("type") == "string":
                node["maxLength"] = limits.MAX_STRING
            stack += list(node.values())
        elif isinstance(node, list):
            stack += node


def _summary(obj: Any) -> str:
    """The first paragraph of a docstring, on one line."""
    doc = inspect.getdoc(obj) or ""
    if doc.startswith(
        f"{getattr(obj, '__name__', '')}("
    ):  # the signature a dataclass gets without a docstring
        return ""
    return plain(doc.split("\n\n")[0])


def _config_schema() -> dict[str, Any]:
    from lmbench import config
    from lmbench.models.registry import MODELS

    properties, required = _reader_properties((config.parse_config, config._parse_search), TOP_NOTES)
    seed, seeds = _seed_schemas()
    properties["name"] = {**properties["name"], **_plain_name(TOP_NOTES["name"])}
    properties["seed"].update(seed)
    properties["seeds"].update(seeds)
    tables = {
        "corpus": "corpus",
        "budget": "budget",
        "evaluate": "evaluate",
        "tasks": "tasks",
        "report": "report",
        "search": "search",
    }
    for key, name in tables.items():
        properties[key] = {"allOf": [{"$ref": f"#/$defs/{name}"}], **_described(properties[key])}
    properties["model"] = {
        "type": "array",
        "minItems": 1,
        "items": {"$ref": "#/$defs/model"},
        **_described(properties["model"]),
    }
    defs = {
        "corpus": _corpus_def(),
        "hf": _hf_def(),
        "budget": _budget_def(),
        "search_budget": _budget_def(),  # the same table; the limits bound only [budget] and [model.budget]
        "model": _model_def(),
        **{f"family_{family}": family_schema(family) for family in MODELS},
        "evaluate": _section_def(config._parse_evaluate, config.EvaluateConfig, EVALUATE_NOTES),
        "tasks": _tasks_def(),
        "report": _report_def(),
        "search": _search_def(),
        "model_search": _model_search_def(),
        "dimension": _dimension_def(),
    }
    schema = {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "lmbench experiment config",
        "description": _summary(config) + " `lmbench run CONFIG.toml` reads it.",
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
        "$defs": defs,
    }
    _add_bounds(schema)
    return schema


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an experiment config file, made anew at each call from what is
    registered then (families, tasks, report formats, corpus cards), as plain JSON values."""
    return json.loads(json.dumps(_config_schema()))


def schema_json(indent: int = 2) -> str:
    """The schema as JSON text (what ``lmbench config schema`` prints)."""
    return json.dumps(config_schema(), indent=indent) + "\n"


def write_schema(path: str | Path) -> Path:
    """Write the schema to ``path`` (a new file, or one that already holds an lmbench schema: never another
    file, so a typo cannot overwrite a config)."""
    from lmbench.errors import OutputError
    from lmbench.io import atomic_write_text

    path = Path(path)
    if path.is_dir():
        raise OutputError(f"--output {path}: is a directory, expected a file name")
    if path.exists():
        try:
            ours = json.loads(path.read_text(encoding="utf-8")).get("$id") == SCHEMA_ID
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise OutputError(
                f"--output {path}: exists and is not an lmbench config schema; lmbench will not replace it"
            )
    atomic_write_text(path, schema_json())
    return path


def validator(schema: dict[str, Any] | None = None) -> Any:
    """A :mod:`jsonschema` validator of the schema that reads TOML's types as lmbench does: ``2.0`` is not an
    integer (plain JSON Schema lets a whole float pass as one). Needs ``jsonschema`` (the ``dev`` extra)."""
    try:
        import jsonschema
    except ImportError:
        from lmbench.errors import ConfigError

        raise ConfigError("checking against the schema needs jsonschema: pip install jsonschema") from None
    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
    )
    strict = jsonschema.validators.extend(base, type_checker=checker)
    return strict(schema or config_schema())


def stale_notes() -> list[str]:
    """Notes above that name a key no declaration has any more (a renamed setting leaves its note behind):
    the docs build and the tests refuse them, so the notes cannot go stale silently."""
    from lmbench.models.registry import MODELS
    from lmbench.tasks import TASKS

    schema = config_schema()
    defs = schema["$defs"]
    settings = {key for family in MODELS for key in defs[f"family_{family}"].get("properties", {})}
    tables = [
        ("EXTRA_SETTING_NOTES", EXTRA_SETTING_NOTES, settings),
        ("BUDGET_NOTES", BUDGET_NOTES, set(defs["budget"]["properties"])),
        ("SYNTHETIC_NOTES", SYNTHETIC_NOTES, set(defs["corpus"]["properties"])),
        ("SEARCH_NOTES", SEARCH_NOTES, set(defs["search"]["properties"])),
        ("TOP_NOTES", TOP_NOTES, set(schema["properties"])),
        ("CORPUS_NOTES", CORPUS_NOTES, set(defs["corpus"]["properties"])),
        ("EVALUATE_NOTES", EVALUATE_NOTES, set(defs["evaluate"]["properties"])),
        ("REPORT_NOTES", REPORT_NOTES, set(defs["report"]["properties"])),
    ]
    tables += [
        (f"TASK_NOTES[{t!r}]", TASK_NOTES[t], set(TASKS[t].DEFAULTS) if t in TASKS else set())
        for t in TASK_NOTES
    ]
    return [f"{name}: {key}" for name, notes, keys in tables for key in notes if key not in keys]
