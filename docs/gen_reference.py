"""The configuration reference, drawn at every ``mkdocs build`` from the config file's JSON Schema.

Nothing here lists a setting by hand: :func:`lmbench.config_schema.config_schema` generates the schema from
lmbench's own declarations (the ``_Reader.get`` calls of ``lmbench/config.py``, each family's
:func:`~lmbench.config.model_settings`, the settings dataclasses, the tasks' ``DEFAULTS``, and their field
comments and docstrings), and this page is that schema as tables: the keys, types, choices, defaults and
descriptions an editor shows from ``lmbench config schema`` are the ones printed here. A setting added to the
code appears in both at the next build; ``tests/test_docs.py`` and ``tests/test_config_schema.py`` check it.

MkDocs runs this file as a hook (``hooks:`` in ``mkdocs.yml``): :func:`on_files` adds the generated page.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

PAGE = "reference/configuration.md"


# --------------------------------------------------------------------------- formatting


def toml_value(value: Any) -> str:
    """A default as it would be written in TOML (``—`` where unset)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and math.isfinite(value):
        return f"`{value:g}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, list):
        return "`[" + ", ".join(toml_value(v).strip("`") for v in value) + "]`"
    if isinstance(value, dict):
        return "`{" + ", ".join(f"{k} = {toml_value(v).strip('`')}" for k, v in value.items()) + "}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    """One table cell: pipes escaped, on one line."""
    return text.replace("|", "\\|").replace("\n", " ").strip()


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


TYPE_WORDS = {
    "boolean": "true or false",
    "integer": "an integer",
    "number": "a finite number",
    "string": "a string",
    "object": "a table",
    "array": "a list",
}


def type_words(schema: dict[str, Any]) -> str:
    """A schema fragment in a config writer's words (``an integer``, ``a list of strings``, ``one of ...``)."""
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(type_words(s) for s in schema["anyOf"])
    if "allOf" in schema or "$ref" in schema:  # a table of $defs
        return "a table"
    if "pattern" in schema and "type" not in schema:
        return f"a string matching `{schema['pattern']}`"
    kind = schema.get("type")
    if kind == "array" and schema.get("items"):
        items = schema["items"]
        if "enum" in items:
            return "a list of values from " + ", ".join(f"`{v}`" for v in items["enum"])
        words = type_words(items).removeprefix("an ").removeprefix("a ").split(" ≤ ")
        return f"a list of {words[0]}s" + "".join(f" ≤ {w}" for w in words[1:])
    if isinstance(kind, list):
        return " or ".join(TYPE_WORDS[k] for k in kind)
    bound = f" ≤ {schema['maximum']:,}" if "maximum" in schema else ""  # lmbench/limits.py
    return TYPE_WORDS.get(kind, "any value") + bound


def rows(schema: dict[str, Any], *, skip: tuple[str, ...] = (), strip: str = "") -> list[tuple[str, ...]]:
    """One row per property: key, type, default (``required`` for a required key), description."""
    required = set(schema.get("required", ()))
    out = []
    for key, prop in schema.get("properties", {}).items():
        if key in skip:
            continue
        default = "required" if key in required else toml_value(prop.get("default"))
        out.append((f"`{key}`", type_words(prop), default, prop.get("description", "").removeprefix(strip)))
    return out


HEADER = ("key", "type", "default", "what it does")


# --------------------------------------------------------------------------- the sections


def _families_section(schema: dict[str, Any]) -> list[str]:
    from lmbench.models.registry import MODELS, model_class

    out = [
        "## Model settings, family by family",
        "",
        "Every `[[model]]` table takes these keys, and every other key is a setting of its family, checked "
        "against the type shown before anything is trained (the schema has one `if family = ... then` branch "
        "per family, so an editor offers and accepts only that family's settings). An unset default (—) is "
        "resolved by the model (the docstring says how) and recorded by `get_params()`.",
        "",
        table(HEADER, rows(schema["$defs"]["model"])),
        "",
    ]
    for family in MODELS:
        cls = model_class(family)
        fragment = schema["$defs"][f"family_{family}"]
        out += [f"### `{family}`", "", f"`{cls.__module__}.{cls.__name__}` — {fragment['description']}", ""]
        if "properties" in fragment:
            out += [table(("setting", "type", "default", "what it does"), rows(fragment)), ""]
        else:
            out += ["Takes any keyword; its constructor checks them.", ""]
        if family == "ngram":
            out += _smoothers_table()
    return out


def _smoothers_table() -> list[str]:
    from lmbench.models.ngram.smoothing import SMOOTHERS

    smoothers = []
    for name, cls in SMOOTHERS.items():
        params = ", ".join(f"`{p}`" for p in cls.params()) or "—"
        smoothers.append((f"`{name}`", cls.description, params))
    return [
        "`smoothing` takes one of these (each smoother's parameters are settings of every n-gram model and are "
        "checked whichever smoother is chosen; see [model families](../models.md) for the formulas):",
        "",
        table(("smoothing", "what it is", "its parameters"), smoothers),
        "",
    ]


def _tasks_section(schema: dict[str, Any]) -> list[str]:
    out = [
        "## `[tasks.*]`",
        "",
        "Each `[tasks.NAME]` table runs one downstream task on every model (see [Tasks](../tasks.md)). Its "
        "options and defaults are the task module's `DEFAULTS`; a value must have its default's type (numbers "
        ">= 0). Options naming files take a path or a list of paths, looked for beside the config, then in the "
        "data folder.",
        "",
    ]
    for name, fragment in schema["$defs"]["tasks"]["properties"].items():
        out += [
            f"### `[tasks.{name}]`",
            "",
            fragment["description"],
            "",
            table(("option", "type", "default", "notes"), rows(fragment)),
            "",
        ]
    return out


EDITORS = """## Checking a config in an editor

`lmbench config schema` prints this page as a JSON Schema (draft 2020-12), generated from the same
declarations; `lmbench config schema --output lmbench.schema.json` writes it to a file. An editor with a TOML
language server then completes keys, shows each key's description and default, and marks an unknown key, a
wrong type, an unknown family or a setting of another family as you type.

**Taplo / Even Better TOML** (VS Code, and the editors that use Taplo's language server): put a schema
directive on the first line of the config (a path relative to the config, or a `file://` or `https://` URL),

```toml
#:schema ./lmbench.schema.json
name = "my-experiment"
```

or associate the schema with your configs once in the editor's settings (Even Better TOML:
`evenBetterToml.schema.associations`). On the command line, with Taplo's CLI (`npm install @taplo/cli`):

```sh
lmbench config schema --output lmbench.schema.json
taplo lint --schema "file://$PWD/lmbench.schema.json" examples/*.toml
```

**Any JSON Schema validator** works on the parsed TOML: Python's `jsonschema` on what `tomllib` reads, or
`lmbench.config_schema.validator()`, which, as lmbench does, takes `2.0` for a number and not for an integer.

The schema checks keys, types, choices and each family's settings; `lmbench run` checks more (that files
exist, that a baseline names a model, ranges between keys), so a config the schema accepts can still be refused
with a one-line message. Regenerate the file after upgrading lmbench: families, settings and tasks follow the
installed version.
"""


def config_reference() -> str:
    """The whole page, as Markdown, from :func:`lmbench.config_schema.config_schema`."""
    from lmbench.config import SYNTHETIC_KEYS
    from lmbench.config_schema import SYNTHETIC_PREFIX, config_schema, stale_notes

    stale = stale_notes()
    if stale:
        raise RuntimeError(f"lmbench/config_schema.py: notes name keys no declaration has: {stale}")
    schema = config_schema()
    defs = schema["$defs"]
    corpus = defs["corpus"]
    synthetic = {"properties": {k: v for k, v in corpus["properties"].items() if k in SYNTHETIC_KEYS}}
    out = [
        "# Configuration reference",
        "",
        '!!! note "Generated"',
        "    This page is generated at build time from the config file's JSON Schema (`lmbench config schema`), "
        "which lmbench generates from its own declarations (`lmbench/config.py`, `lmbench.config.model_settings`, "
        "the settings dataclasses and the task modules), so it lists exactly what this version accepts.",
        "",
        "A config is one TOML file; `lmbench run CONFIG.toml` reads it. Every key and value is checked before "
        "anything is read or trained: an unknown key, a wrong type or an impossible value is one line naming the "
        "file and the key, and exit code 2. See [Writing a config](../configuration.md) for an annotated example, "
        "the [first experiment](../getting-started.md#a-first-experiment) for a complete one, and "
        "[below](#checking-a-config-in-an-editor) for checking a config as you type.",
        "",
        "## Top level",
        "",
        "Keys outside any table.",
        "",
        table(HEADER, rows(schema)),
        "",
        "## `[corpus]`",
        "",
        "Exactly one source of text: `name`, `file`, `train` + `valid` + `test`, or a `[corpus.hf]` table. "
        "Relative paths resolve against the config's folder.",
        "",
        table(HEADER, rows(corpus, skip=tuple(SYNTHETIC_KEYS))),
        "",
        'With `name = "synthetic"` the table also takes the synthetic language\'s shape '
        "(`lmbench.data.synthetic.SyntheticConfig`):",
        "",
        table(HEADER, rows(synthetic, strip=SYNTHETIC_PREFIX)),
        "",
        "### `[corpus.hf]`",
        "",
        defs["hf"]["description"] + " Needs the `hf` extra.",
        "",
        table(HEADER, rows(defs["hf"])),
        "",
        "## `[budget]` and `[model.budget]`",
        "",
        "How much training a neural model gets; the first limit reached stops it "
        "(`lmbench.training.budget.Budget`). `[budget]` is every model's default, a model's own `[model.budget]` "
        "overrides it; with none, a model trains for its `epochs` setting. `tokens` and `epochs` are "
        "reproducible, `minutes` depends on the machine.",
        "",
        table(HEADER, rows(defs["budget"])),
        "",
    ]
    out += _families_section(schema)
    out += [
        "## `[evaluate]`",
        "",
        defs["evaluate"]["description"],
        "",
        table(HEADER, rows(defs["evaluate"])),
        "",
    ]
    out += _tasks_section(schema)
    out += [
        "## `[report]`",
        "",
        "What is written to the report folder, `out/<name>/` unless `--output` names another.",
        "",
        table(HEADER, rows(defs["report"])),
        "",
    ]
    out += [
        "## `[search]` and `[model.search]`",
        "",
        "`[model.search]` tunes a model's settings on validation perplexity before its final training: each key "
        "is a setting of the model's family with "
        + defs["dimension"]["description"].removeprefix("a setting to tune: ")
        + ", beside the limits below. `[search]` gives every searched model the same limits "
        "(`lmbench.search.space.SearchConfig`). Needs the `tune` extra.",
        "",
        table(HEADER, rows(defs["search"])),
        "",
        EDITORS,
    ]
    return "\n".join(out).rstrip("\n") + "\n"


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
