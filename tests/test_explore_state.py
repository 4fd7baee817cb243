"""The explorer's shareable state (lmbench/explore/static/state.js): encoding the page into its URL's hash and
back, run in Node without a browser (skipped where Node is not installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[1] / "lmbench" / "explore" / "static"
NODE = shutil.which("node") or shutil.which("nodejs")
needs_node = pytest.mark.skipif(NODE is None, reason="Node.js is not installed (the state logic is plain JS)")


def _js(expression: str, **values) -> object:
    """Evaluate ``expression`` in Node with ``S`` = state.js's ExploreState and ``values`` as globals."""
    lines = [f"const S = require({json.dumps(str(STATIC / 'state.js'))});"]
    lines += [f"const {k} = {json.dumps(v)};" for k, v in values.items()]
    lines.append(f"process.stdout.write(JSON.stringify({expression}));")
    out = subprocess.run([NODE, "-e", "\n".join(lines)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


STATES = [
    {"prefix": "A3 w01 w02", "k": 5, "picked": "w03", "temperature": 0.7, "seed": 42, "n": 20,
     "sampled": True, "models": ["kn3", "lstm/seed-0"]},
    {"prefix": "a+b & c=d #tag 50% ?x é 中文 \u00a0", "k": 8, "picked": "", "temperature": 1, "seed": 0,
     "n": 15, "sampled": False, "models": None},
    {"prefix": "", "k": 100, "picked": "<unk>", "temperature": 10, "seed": 0, "n": 1, "sampled": False,
     "models": []},
]  # fmt: skip
KNOWN = ["unigram", "kn3", "lstm/seed-0", "transformer/seed-0", "a,b"]


@needs_node
@pytest.mark.parametrize("state", STATES)
def test_a_state_survives_the_url(state):
    assert _js("S.decode('#' + S.encode(state), known)", state=state, known=KNOWN) == state


@needs_node
def test_defaults_make_a_bare_link_and_models_keep_page_order():
    assert _js("S.encode(S.DEFAULTS)") == ""
    back = _js("S.decode(S.encode({...S.DEFAULTS, models: ['a,b', 'kn3']}), known)", known=KNOWN)
    assert back["models"] == ["kn3", "a,b"]  # the page's order, whatever the link's; commas in names survive


@needs_node
@pytest.mark.parametrize(
    "hash, expected",
    [
        ("#k=0&n=101&temperature=-1&seed=1.5", {}),  # out of range: the defaults
        ("#k=abc&n=&temperature=Infinity", {}),
        ("#model=nope&model=gone", {}),  # models this page does not have: every model shown
        ("#model=nope&model=kn3", {"models": ["kn3"]}),
        ("#none=1", {"models": []}),
        ("k=12&prefix=x", {"k": 12, "prefix": "x"}),  # without the leading #
        ("", {}),
    ],
)
def test_a_stale_or_edited_link_still_opens(hash, expected):
    defaults, got = _js("[S.DEFAULTS, S.decode(hash, known)]", hash=hash, known=KNOWN)
    assert got == {**defaults, **expected}


@needs_node
def test_a_long_prefix_is_cut_to_what_the_server_accepts():
    assert len(_js("S.decode('#prefix=' + 'x'.repeat(5000), [])")["prefix"]) == 1000


def test_the_page_loads_the_state_before_the_app():
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    assert page.index("/static/state.js") < page.index("/static/app.js")
    app = (STATIC / "app.js").read_text(encoding="utf-8")
    assert "ExploreState.decode(location.hash" in app and "ExploreState.encode(" in app
