"""`lmbench explore`: discovery of finished models, the JSON API (against the Python API), and the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from lmbench import checksums
from lmbench.cli import main
from lmbench.explore import Explorer, discover_runs
from lmbench.models.registry import model_class
from tests.conftest import import_or_fail
from tests.explore_runs import make_small_run

import_or_fail("fastapi", "the explore extra: pip install -e '.[explore]'")
import_or_fail("httpx", "FastAPI's TestClient needs httpx: the dev extra")
from fastapi.testclient import TestClient  # noqa: E402

from lmbench.explore.app import create_app  # noqa: E402

PREFIX = "A3 w01 w02 w03 w04 w05 w06 w07"
LSTM, TRANSFORMER = "lstm/seed-0", "transformer/seed-0"  # stochastic models sit in one folder per seed


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    return make_small_run(tmp_path_factory.mktemp("explore"))


@pytest.fixture(scope="module")
def run_dir(small_run):
    return small_run[0]


def test_the_run_records_the_transformers_attention_from_the_closer_to_the_opener(small_run, tmp_path):
    from lmbench.reporting import render_report

    runs, results = small_run
    assert set(results.attention) == {"transformer"}  # only the model with attention maps
    example = results.attention["transformer"]
    tokens = example.tokens
    assert tokens[example.key].startswith("A") and tokens[example.query + 1].startswith("Z")
    assert tokens[example.key][1:] == tokens[example.query + 1][1:]  # the closer matches its opener
    assert example.query - example.key + 1 >= 7  # 7+ tokens back
    model = _load(runs, TRANSFORMER)
    maps = model.attention_maps(model.vocab.encode(tokens).tolist())
    assert example.weight == pytest.approx(maps[:, :, example.query, example.key].max(), abs=1e-4)
    out = render_report(results, tmp_path / "report", ["md", "png"])
    md = (out / "report.md").read_text()
    assert "![attention](attention.png)" in md and "softmax(Q Kᵀ / √d) V" in md


@pytest.fixture(scope="module")
def client(run_dir):
    explorer = Explorer(run_dir)
    with TestClient(create_app(explorer)) as c:
        yield c
    explorer.close()


def _load(run_dir, name):
    family = json.loads((run_dir / name / "fit.json").read_text())["info"]["family"]
    return model_class(family).load(run_dir / name / "model.bin")


def test_discovery_names_models_by_relative_path_in_any_layout(run_dir, tmp_path):
    assert [r.name for r in discover_runs(run_dir)] == [
        "unigram",
        "kn3",
        LSTM,
        TRANSFORMER,
    ]  # ladder order
    # several seeds per model in sub-folders, an unfinished model, and a model folder given directly
    nested = tmp_path / "runs"
    shutil.copytree(run_dir / "kn3", nested / "kn3" / "seed-0")
    shutil.copytree(run_dir / "kn3", nested / "kn3" / "seed-1")
    (nested / "half-done").mkdir()
    (nested / "half-done" / "metrics.json").write_text("{}")
    runs = discover_runs(nested)
    assert [(r.name, r.family, r.tokenizer) for r in runs] == [
        ("kn3/seed-0", "ngram", "whitespace"),
        ("kn3/seed-1", "ngram", "whitespace"),
    ]
    assert [r.name for r in discover_runs(run_dir / LSTM)] == ["lstm"]
    # the tokenizer comes from the training identity; where none is recorded, whitespace is assumed and said so
    for seed, tokenizer in (("seed-0", None), ("seed-1", "char")):
        for record in ("fit.json", "identity.json"):
            path = nested / "kn3" / seed / record
            doc = json.loads(path.read_text())
            doc["identity"]["vocabulary"]["tokenizer"] = tokenizer
            path.write_text(json.dumps(doc))
            checksums.record(path)  # as lmbench would have written it (an edit without its record is damage)
    runs = {r.name: r for r in discover_runs(nested)}
    assert (runs["kn3/seed-1"].tokenizer, runs["kn3/seed-1"].tokenizer_recorded) == ("char", True)
    assert (runs["kn3/seed-0"].tokenizer, runs["kn3/seed-0"].tokenizer_recorded) == ("whitespace", False)
    assert Explorer(nested).next_tokens("kn3/seed-1", "A3")["prefix_tokens"] == ["<unk>", "<unk>"]  # 'A', '3'


def test_next_answers_with_the_values_of_next_token_logprobs(client, run_dir):
    answer = client.get("/api/next", params={"prefix": PREFIX + " zebra", "k": 5}).json()
    assert answer["prefix_tokens"] == PREFIX.split() + ["<unk>"]
    assert set(answer["models"]) == {"kn3", LSTM, TRANSFORMER, "unigram"} and answer["errors"] == {}
    for name, top in answer["models"].items():
        model = _load(run_dir, name)
        logp = model.next_token_logprobs(
            [[model.vocab.bos_id, *model.vocab.encode(PREFIX.split() + ["zebra"])]]
        )[0]
        order = np.argsort(-logp, kind="stable")[:5]
        assert [t["token"] for t in top] == model.vocab.decode(order)
        np.testing.assert_allclose([t["prob"] for t in top], np.exp(logp[order]), rtol=1e-12)
        assert all(a["prob"] >= b["prob"] for a, b in zip(top[:-1], top[1:], strict=True))
    one = client.get("/api/next", params={"prefix": PREFIX, "k": 3, "model": "kn3", "token": "Z3"}).json()
    model = _load(run_dir, "kn3")
    logp = model.next_token_logprobs([[model.vocab.bos_id, *model.vocab.encode(PREFIX.split())]])[0]
    assert list(one["models"]) == ["kn3"] and len(one["models"]["kn3"]) == 3
    assert one["picked"]["kn3"] == pytest.approx(np.exp(logp[model.vocab.id("Z3")]), rel=1e-12)


def test_attention_returns_every_layer_and_head(client, run_dir):
    answer = client.get("/api/attention", params={"model": TRANSFORMER, "text": PREFIX}).json()
    assert answer["tokens"] == ["<s>", *PREFIX.split()]
    maps = np.array(answer["layers"])
    T = len(answer["tokens"])
    assert maps.shape == (2, 2, T, T)
    model = _load(run_dir, TRANSFORMER)
    expected = model.attention_maps([model.vocab.bos_id, *model.vocab.encode(PREFIX.split())])
    np.testing.assert_allclose(maps, expected, atol=1e-6)
    words = expected[:, :, -1, 1:] / expected[:, :, -1, 1:].sum(-1, keepdims=True)  # <s> left out
    distance = (words * np.arange(T - 1)[::-1]).sum(-1)
    layer, head = np.unravel_index(np.argmax(distance), distance.shape)
    assert (answer["furthest_head"]["layer"], answer["furthest_head"]["head"]) == (layer, head)


def test_backoff_path_and_generate(client, run_dir):
    answer = client.get("/api/backoff", params={"model": "kn3", "prefix": "A3 w01", "token": "w02"}).json()
    assert [s["order"] for s in answer["steps"]][0] == 3 and answer["steps"][-1]["found"]
    model = _load(run_dir, "kn3")
    ids = [model.vocab.bos_id, *model.vocab.encode(["A3", "w01"])]
    assert answer["logprob"] == pytest.approx(model.next_token_logprobs([ids])[0][model.vocab.id("w02")])
    sample = client.get("/api/generate", params={"model": LSTM, "prefix": "A1", "n": 12, "seed": 7}).json()
    lstm = _load(run_dir, LSTM)
    expected = lstm.generate([lstm.vocab.bos_id, lstm.vocab.id("A1")], 12, seed=7)
    assert sample["tokens"] == lstm.vocab.decode(expected)
    again = client.get("/api/generate", params={"model": LSTM, "prefix": "A1", "n": 12, "seed": 7}).json()
    assert again == sample


@pytest.mark.parametrize(
    "path, params, words",
    [
        ("/api/next", {"prefix": "A1", "model": "nope"}, "unknown model 'nope'"),
        ("/api/next", {"prefix": "A1", "token": "zebra"}, "'zebra' is not in the vocabulary"),
        ("/api/attention", {"model": "kn3", "text": "A1"}, "attention maps exist for transformer"),
        ("/api/backoff", {"model": LSTM, "prefix": "A1"}, "back-off paths exist for n-gram"),
    ],
)
def test_bad_input_is_a_400_with_one_line_json(client, path, params, words):
    response = client.get(path, params=params)
    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["error"] and "\n" not in body["error"] and words in body["error"]


def test_a_broken_model_answers_with_its_error_and_the_others_still_answer(run_dir, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(run_dir, runs)
    (runs / LSTM / "model.bin").write_bytes(b"not a model")
    explorer = Explorer(runs)
    with TestClient(create_app(explorer)) as client:
        answer = client.get("/api/next", params={"prefix": "A1"}).json()
        assert set(answer["models"]) == {"kn3", TRANSFORMER, "unigram"}
        assert answer["errors"][LSTM].startswith(f"{LSTM}: failed to load:")
        one = client.get("/api/next", params={"prefix": "A1", "model": LSTM})
        assert one.status_code == 503 and "\n" not in one.json()["error"]
        states = {m["name"]: m["state"] for m in client.get("/api/models").json()["models"]}
        assert states == {"kn3": "ready", LSTM: "failed", TRANSFORMER: "ready", "unigram": "ready"}
        assert client.get("/").text.startswith("<!DOCTYPE html>")
    explorer.close()


def test_cli_explore_refuses_folders_without_finished_models(tmp_path):
    result = CliRunner().invoke(main, ["explore", str(tmp_path / "missing"), "--no-browser"])
    assert result.exit_code == 2 and "not a folder" in result.output
    result = CliRunner().invoke(main, ["explore", str(tmp_path), "--no-browser"])
    assert result.exit_code == 2 and "no finished models" in result.output


def test_cli_explore_serves_the_run_on_localhost(run_dir):
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    import_or_fail("uvicorn", "the explore extra: pip install -e '.[explore]'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = str(Path(__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [
        sys.executable,
        "-m",
        "lmbench.cli",
        "explore",
        str(run_dir),
        "--port",
        str(port),
        "--no-browser",
    ]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        answer = None
        for _ in range(300):
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/next?prefix=A1&k=2", timeout=5
                ) as r:
                    answer = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.1)
        assert answer is not None, "the server did not answer"
        assert set(answer["models"]) == {"unigram", "kn3", LSTM, TRANSFORMER}
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0]
    assert f"at http://127.0.0.1:{port}/" in output
