"""Escaping for the report formats: every string that comes from a config, a path, a corpus or a results.json
(model names, file paths, generated text, error messages) is made inert text before it reaches Markdown,
LaTeX or a terminal table (HTML is escaped by Jinja2's autoescape and tabulate's ``html`` format).

A newline would end a Markdown table row or a LaTeX comment (``% corpus:x`` + newline + ``\\input{...}`` is a
live command); ``|`` splits a table cell; ``<`` starts raw HTML; ``*``, ``_``, ``[`` and backticks start
emphasis, links and code. Each writer calls the function for its format; ``tests/test_hardening.py`` feeds
every writer hostile strings.
"""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # newlines, tabs, escape sequences, NUL
# ASCII punctuation that Markdown (CommonMark, GitHub's tables and math) may read as markup; all of it may be
# backslash-escaped. '_' is escaped only where it could open or close emphasis (not inside a word: x86_64),
# '&' only where it would start an entity (&lt;).
_MD_SPECIAL = re.compile(r"[\\`*{}\[\]<>#|~$!]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|&(?=#?[A-Za-z0-9]+;)")


def one_line(text: Any) -> str:
    """``text`` as one line of plain characters: newlines, tabs and other control characters become spaces."""
    return _CONTROL.sub(" ", str(text))


def md_text(text: Any) -> str:
    """Inert Markdown text, safe in a paragraph, a heading, a list item and a table cell."""
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), one_line(text))


def md_code(text: Any) -> str:
    """An inline code span showing ``text`` verbatim (on one line): fenced by more backticks than it holds."""
    text = one_line(text)
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _rebuilt(record: Any, convert: Any) -> Any:
    """A copy of a dataclass record with ``convert`` applied to every field."""
    return type(record)(**{f.name: convert(getattr(record, f.name)) for f in fields(record) if f.init})


def md_escaped(value: Any) -> Any:
    """A copy of a results value (records, dicts, lists) with every string (dictionary keys too) passed through
    :func:`md_text`."""
    if isinstance(value, str):
        return md_text(value)
    if is_dataclass(value) and not isinstance(value, type):
        return _rebuilt(value, md_escaped)
    if isinstance(value, dict):
        return {md_escaped(k) if isinstance(k, str) else k: md_escaped(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [md_escaped(v) for v in value]
    return value


def latex_comment(text: Any) -> str:
    """The text of a ``%`` comment line: one line, so nothing after it can become a live command."""
    return one_line(text)


def well_formed(value: Any) -> Any:
    """``value`` with every lone UTF-16 surrogate in its strings (keys too) replaced by U+FFFD, recursively through
    records, dicts and lists: a results.json may carry ``"\\ud9bc"`` escapes, which no UTF-8 file, CSV writer or Arrow
    array accepts, and a report must still be written rather than fail half-way."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if is_dataclass(value) and not isinstance(value, type):
        return _rebuilt(value, well_formed)
    if isinstance(value, dict):
        return {well_formed(k): well_formed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(well_formed(v) for v in value)
    return value
