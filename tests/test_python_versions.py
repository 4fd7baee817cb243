"""pyproject declares Python >= 3.10: no module may need a newer interpreter to be imported.

The suite runs on one interpreter (3.11 here), so a 3.11-only import (``tomllib`` at module level broke
``tests/test_hardening.py`` on 3.10) would pass unnoticed; this parses every file as 3.10 does and looks for the
standard-library names that 3.10 lacks outside a version or ImportError guard.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(p for folder in ("lmbench", "tests", "benchmarks") for p in (ROOT / folder).rglob("*.py"))
# modules and names that are new in 3.11+ (the ones a modern codebase reaches for)
NEW_MODULES = {"tomllib": "3.11", "wsgiref.types": "3.11"}
NEW_NAMES = {
    ("typing", "Self"): "3.11", ("typing", "Never"): "3.11", ("typing", "LiteralString"): "3.11",
    ("typing", "assert_never"): "3.11", ("typing", "reveal_type"): "3.11", ("typing", "override"): "3.12",
    ("datetime", "UTC"): "3.11", ("enum", "StrEnum"): "3.11", ("itertools", "batched"): "3.12",
    ("contextlib", "chdir"): "3.11", ("asyncio", "TaskGroup"): "3.11", ("asyncio", "timeout"): "3.11",
}  # fmt: skip


def declared_minimum() -> tuple[int, int]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    major, minor = re.search(r'requires-python\s*=\s*">=\s*(\d+)\.(\d+)"', text).groups()
    return int(major), int(minor)


def guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Inside ``if sys.version_info ...:`` or a ``try`` that catches ImportError/ModuleNotFoundError."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "version_info" in ast.unparse(node.test):
            return True
        if isinstance(node, ast.Try) and any(
            h.type is not None and re.search(r"ImportError|ModuleNotFoundError", ast.unparse(h.type))
            for h in node.handlers
        ):
            return True
    return False


def unguarded_new_imports(source: str) -> list[str]:
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [(node.module, a.name) for a in node.names]
        else:
            continue
        for module, name in names:
            version = NEW_MODULES.get(module) or NEW_NAMES.get((module, name))
            if version and not guarded(node, parents):
                found.append(
                    f"line {node.lineno}: {module}{'.' + name if name else ''} needs Python {version}"
                )
    return found


def test_the_declared_minimum_is_what_this_check_parses_for():
    assert declared_minimum() == (3, 10)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_parses_and_imports_on_the_declared_minimum(path):
    source = path.read_text(encoding="utf-8")
    ast.parse(source, filename=str(path), feature_version=declared_minimum())  # syntax newer than 3.10 fails
    assert unguarded_new_imports(source) == [], path


def test_the_check_sees_an_unguarded_tomllib_and_accepts_a_guarded_one():
    assert unguarded_new_imports("import pytest\nimport tomllib\n") == ["line 2: tomllib needs Python 3.11"]
    assert unguarded_new_imports("def f():\n    from typing import Self\n") != []
    guarded_source = "import sys\nif sys.version_info >= (3, 11):\n    import tomllib\nelse:\n    import tomli as tomllib\n"
    assert unguarded_new_imports(guarded_source) == []
    assert unguarded_new_imports("try:\n    import tomllib\nexcept ModuleNotFoundError:\n    pass\n") == []
