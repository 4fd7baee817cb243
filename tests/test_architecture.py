"""The package's import graph has no cycle: neither between packages (data, models, training, ...) nor between
files, counting imports inside functions too. Read with ``ast`` from the source, so nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lmbench

ROOT = Path(lmbench.__file__).resolve().parent


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its ``__init__``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file (top level or inside functions),
    with the packages Python runs on the way: ``import a.b.c`` runs ``a/b/__init__.py`` too (except the
    packages that hold ``name`` itself, which are already being imported). Imports under ``if TYPE_CHECKING:``
    never run (they name a caller's types in annotations) and are left out."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y / from .. import z
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]  # a name may be a module
        else:
            continue
        for target in targets:
            while target and target not in modules:  # import a.b.c where only a.b is a file of ours
                target = target.rpartition(".")[0]
            while target and target != name and not name.startswith(target + "."):
                found.add(target)
                target = target.rpartition(".")[0]
    return found


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components with more than one node (Tarjan's algorithm): the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def file_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def package_of(module: str) -> str:
    """``lmbench.models.ngram.arpa`` -> ``models``; a top-level module (``lmbench.config``) is its own node."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, targets in file_graph().items():
        source = package_of(module)
        graph.setdefault(source, set()).update(package_of(t) for t in targets if package_of(t) != source)
    return graph


def describe(found: set[frozenset[str]]) -> str:
    return "; ".join(" <-> ".join(sorted(c)) for c in sorted(found, key=sorted))


def test_cycle_finder_finds_cycles_and_only_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e", "f"}, "f": set()}
    assert cycles(graph) == {frozenset({"a", "b", "c"})}
    assert cycles({"x": {"y"}, "y": set()}) == set()


def test_import_reader_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "sub" / "b.py").write_text("from ..a import f\nimport pkg.sub.b as itself\n")
    modules = module_files(pkg)
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    assert graph["pkg.a"] == {"pkg.sub.b", "pkg.sub"}  # from pkg.sub import b runs pkg/sub/__init__.py
    assert graph["pkg.sub"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert cycles(graph) == {frozenset({"pkg.a", "pkg.sub", "pkg.sub.b"})}


def test_models_build_on_training_and_not_the_other_way():
    """The layering of the neural side: a model base class lives with the models, the loop below them."""
    graph = package_graph()
    assert "training" in graph["models"]
    assert "models" not in graph["training"], "lmbench.training must not import lmbench.models"


@pytest.mark.parametrize("graph", [package_graph, file_graph], ids=["packages", "files"])
def test_no_import_cycles(graph):
    found = cycles(graph())
    assert not found, f"import cycles: {describe(found)}"


def test_loading_lmbench_does_not_load_numba():
    """The compiled kernels' modules are imported where they run: every command (``lmbench --help``,
    ``report``, reading an ARPA file) would otherwise pay Numba's start-up, ~0.3 s and ~110 MiB."""
    import subprocess
    import sys

    code = (
        "import sys, lmbench.cli, lmbench.experiment, lmbench.models.ngram, lmbench.data.encoding; "
        "print(sorted(m for m in sys.modules if m == 'numba' or m.startswith('numba.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
