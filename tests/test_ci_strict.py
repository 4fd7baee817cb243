"""CI fails instead of skipping: under CI=true a missing tool, extra or ../shared is a failure (tests/conftest.py),
and no test opts out of that with a bare skip of its own."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
from tests.conftest import import_or_fail, require_shared, require_tool

def test_tool():
    require_tool("lmbench-no-such-tool", "nothing installs it")

def test_extra():
    import_or_fail("lmbench_no_such_module", "nothing installs it")

def test_shared():
    require_shared("corpora", "lmbench-no-such-corpus")
"""


@pytest.mark.parametrize("ci", ["true", ""])
def test_missing_requirements_skip_on_a_workstation_and_fail_under_ci(tmp_path, ci):
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(probe)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    summary = out.stdout.strip().splitlines()[-1]
    if ci:
        assert out.returncode == 1 and "3 failed" in summary, out.stdout[-2000:]
        assert "CI=true and lmbench-no-such-tool is not installed" in out.stdout
    else:
        assert out.returncode == 0 and "3 skipped" in summary, out.stdout[-2000:]


def skip_calls(tree: ast.AST) -> list[str]:
    """Skips that bypass tests/conftest.py: pytest.importorskip, a skip/skipif on which(), geteuid() or the
    shared folder, and ``if <that>: pytest.skip(...)``."""
    found = []
    outside = ("which(", "geteuid", "shared")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name, text = ast.unparse(node.func), ast.unparse(node)
            if name.endswith("importorskip"):
                found.append(text)
            elif name.endswith(("skip", "skipif")) and any(w in text for w in outside):
                found.append(text)
        elif isinstance(node, ast.If) and any(w in ast.unparse(node.test) for w in outside):
            body = ast.unparse(ast.Module(body=node.body, type_ignores=[]))
            if "skip(" in body:
                found.append(f"if {ast.unparse(node.test)}: skip")
    return found


def test_no_test_skips_around_the_ci_check():
    offenders = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        if path.name != "conftest.py":
            calls = skip_calls(ast.parse(path.read_text(encoding="utf-8")))
            if calls:
                offenders[path.name] = calls
    assert offenders == {}


def test_the_skip_check_sees_the_patterns_it_forbids():
    root_skip = "@pytest.mark.skipif(os.geteuid() == 0, reason='root')\ndef test_x():\n    pass\n"
    tool_skip = "def test_y():\n    if shutil.which('pdflatex') is None:\n        pytest.skip('no latex')\n"
    assert skip_calls(ast.parse(root_skip)) and skip_calls(ast.parse(tool_skip))
    assert skip_calls(ast.parse("mod = pytest.importorskip('x')\n"))
    assert skip_calls(ast.parse("def test_z():\n    require_tool('pdflatex', 'texlive')\n")) == []
