"""`lmbench explore` isolation: one unreadable or damaged model is listed as unavailable with its reason while
the others are served; a port in use is exit 2 naming it and a free one; every number a request carries is
bounded and answered 422 (temperature 1e-310 was a 500)."""

from __future__ import annotations

import shutil
import socket

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lmbench import checksums
from lmbench.cli import main
from lmbench.explore import Explorer
from tests.explore_runs import make_small_run

from .conftest import import_or_fail

import_or_fail("fastapi", "the explore extra: pip install -e '.[explore]'")
import_or_fail("httpx", "FastAPI's TestClient needs httpx: pip install -e '.[dev]'")
from fastapi.testclient import TestClient  # noqa: E402

from lmbench.explore.app import bind, create_app  # noqa: E402
from lmbench.explore.service import MAX_SEED, TEMPERATURE  # noqa: E402

LSTM, TRANSFORMER = "lstm/seed-0", "transformer/seed-0"
ALL = {"unigram", "kn3", LSTM, TRANSFORMER}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_small_run(tmp_path_factory.mktemp("isolation"))[0]


@pytest.fixture(scope="module")
def client(run_dir):
    explorer = Explorer(run_dir)
    with TestClient(create_app(explorer)) as c:
        yield c
    explorer.close()


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _nan_weight(path):
    payload = torch.load(path, weights_only=True)
    payload["state_dict"][next(iter(payload["state_dict"]))].view(-1)[0] = float("nan")
    torch.save(payload, path)
    checksums.record(path)  # the record agrees: only the content check can tell


DAMAGE = {
    "metrics.json garbage": (
        "kn3",
        "metrics.json",
        lambda p: p.write_bytes(b"\x80{not json"),
        "metrics.json",
    ),
    "metrics.json flipped": ("kn3", "metrics.json", _flip, "checksum mismatch"),
    "metrics.json empty": ("unigram", "metrics.json", lambda p: p.write_bytes(b""), "metrics.json"),
    "fit.json garbage": (LSTM, "fit.json", lambda p: p.write_text("[1, 2"), "fit.json"),
    "record garbage": ("kn3", "fit.json.sha256", lambda p: p.write_text("zz\n"), "checksum record damaged"),
    "model.bin flipped": (TRANSFORMER, "model.bin", _flip, "checksum mismatch"),
    "model.bin truncated": ("kn3", "model.bin", lambda p: p.write_bytes(p.read_bytes()[:100]), "model.bin"),
    "model.bin nan": (LSTM, "model.bin", _nan_weight, "non-finite"),
    "tokenizer unknown": (
        "unigram",
        "fit.json",
        lambda p: (
            p.write_text(p.read_text().replace('"tokenizer": "whitespace"', '"tokenizer": "klingon"')),
            checksums.record(p),
        ),
        "klingon",
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_one_damaged_model_is_listed_unavailable_with_its_reason_and_the_others_are_served(
    run_dir, tmp_path, case
):
    name, file, damage, words = DAMAGE[case]
    runs = tmp_path / "runs"
    shutil.copytree(run_dir, runs)
    damage(runs / name / file)
    explorer = Explorer(runs)
    try:
        with TestClient(create_app(explorer)) as c:
            answer = c.get("/api/next", params={"prefix": "A1"}).json()
            assert set(answer["models"]) == ALL - {name}
            assert words in answer["errors"][name] and "\n" not in answer["errors"][name]
            one = c.get("/api/next", params={"prefix": "A1", "model": name})
            assert one.status_code == 503 and words in one.json()["error"]
            listed = {m["name"]: m for m in c.get("/api/models").json()["models"]}
            assert set(listed) == ALL and listed[name]["state"] == "failed" and words in listed[name]["error"]
            assert all(listed[other]["state"] == "ready" for other in ALL - {name})
            assert c.get("/").status_code == 200
    finally:
        explorer.close()


def test_the_cli_names_unavailable_models_and_still_starts(run_dir, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(run_dir, runs)
    (runs / "kn3" / "metrics.json").write_bytes(b"\x00\x01")
    with socket.socket() as taken:  # the port is busy, so the command stops right after discovery
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["explore", str(runs), "--port", str(port), "--no-browser"])
    assert "unavailable: kn3:" in result.output and "metrics.json" in result.output


def test_a_port_in_use_is_exit_2_naming_it_and_a_free_one(run_dir):
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["explore", str(run_dir), "--port", str(port), "--no-browser"])
        assert result.exit_code == 2, result.output
        (line,) = [line for line in result.output.splitlines() if "in use" in line]
        assert f"port {port} on 127.0.0.1 is in use" in line
        free = int(line.rsplit("--port ", 1)[1])
        assert free > port
        bind("127.0.0.1", free).close()  # the port it names is free indeed
        assert "Traceback" not in result.output


@pytest.mark.parametrize("host, words", [("256.1.1.1", "--host 256.1.1.1"), ("192.0.2.1", "cannot serve on")])
def test_a_host_that_cannot_be_served_is_exit_2(run_dir, host, words):
    result = CliRunner().invoke(main, ["explore", str(run_dir), "--host", host, "--no-browser"])
    assert (
        result.exit_code == 2
        and words in result.output
        and "\n" not in result.output.strip().splitlines()[-1]
    )


BAD_NUMBERS = [
    ("/api/generate", {"model": "kn3", "temperature": 1e-310}, "temperature"),
    ("/api/generate", {"model": LSTM, "temperature": 1e-310}, "temperature"),
    ("/api/generate", {"model": "kn3", "temperature": 0}, "temperature"),
    ("/api/generate", {"model": "kn3", "temperature": -1}, "temperature"),
    ("/api/generate", {"model": "kn3", "temperature": "nan"}, "temperature"),
    ("/api/generate", {"model": "kn3", "temperature": "inf"}, "temperature"),
    ("/api/generate", {"model": "kn3", "temperature": "1e999"}, "temperature"),
    ("/api/generate", {"model": "kn3", "temperature": 10.5}, "temperature"),
    ("/api/generate", {"model": "kn3", "temperature": "warm"}, "temperature"),
    ("/api/generate", {"model": "kn3", "n": 0}, "n:"),
    ("/api/generate", {"model": "kn3", "n": 10_000}, "n:"),
    ("/api/generate", {"model": "kn3", "n": 10**30}, "n:"),
    ("/api/generate", {"model": "kn3", "n": "1e3"}, "n:"),
    ("/api/generate", {"model": "kn3", "seed": -1}, "seed:"),
    ("/api/generate", {"model": "kn3", "seed": MAX_SEED + 1}, "seed:"),
    ("/api/generate", {"model": LSTM, "seed": 10**40}, "seed:"),
    ("/api/next", {"prefix": "A1", "k": 0}, "k:"),
    ("/api/next", {"prefix": "A1", "k": 101}, "k:"),
    ("/api/next", {"prefix": "A1", "k": -(10**30)}, "k:"),
    ("/api/next", {"prefix": "A1", "k": "many"}, "k:"),
    ("/api/next", {"prefix": "A1", "k": 0, "model": LSTM}, "k:"),
    ("/api/next", {"prefix": "w01 " * 600}, "prefix:"),
    ("/api/next", {"prefix": "w01 " * 240}, "prefix:"),
    ("/api/attention", {"model": TRANSFORMER, "text": "w01 " * 240}, "prefix:"),
    ("/api/backoff", {"model": "kn3", "prefix": "x" * 1001}, "prefix:"),
    ("/api/attention", {"text": "A1"}, "model:"),  # a required parameter missing: FastAPI's 422 too
]


@pytest.mark.parametrize("path, params, words", BAD_NUMBERS)
def test_numbers_and_lengths_out_of_bounds_are_a_422_with_one_line_json(client, path, params, words):
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert list(body) == ["error"] and "\n" not in body["error"] and body["error"].startswith(words)


@pytest.mark.parametrize("model", ["kn3", LSTM, TRANSFORMER])
@pytest.mark.parametrize("temperature", [TEMPERATURE[0], TEMPERATURE[1]])
def test_the_bounds_themselves_are_served(client, model, temperature):
    response = client.get(
        "/api/generate",
        params={"model": model, "prefix": "A1", "n": 5, "seed": MAX_SEED, "temperature": temperature},
    )
    assert response.status_code == 200, response.text
    assert 1 <= len(response.json()["tokens"]) <= 5


def test_a_tiny_temperature_samples_the_most_probable_token_in_the_python_api(run_dir):
    from lmbench.models.registry import model_class

    model = model_class("ngram").load(run_dir / "kn3" / "model.bin")
    context = [model.vocab.bos_id, model.vocab.id("A1")]
    best = int(np.argmax(model.next_token_logprobs([context])[0]))
    for temperature in (1e-310, 5e-324, 1e-12):
        assert model.generate(context, 1, temperature=temperature, seed=3) == [best]


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from(["", "x", "1e-310", "-0", "0x10", "1_000", " 3", "nan", "-inf"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    route=st.sampled_from(["next", "generate", "backoff", "attention"]),
    model=st.sampled_from(["kn3", LSTM, TRANSFORMER, "unigram"]),
    k=numbers,
    n=numbers,
    seed=numbers,
    temperature=numbers,
)
def test_any_number_is_answered_200_or_a_one_line_4xx_never_a_500(
    client, route, model, k, n, seed, temperature
):
    params = {"model": model, "prefix": "A1 w01"}
    params.update(
        {"next": {"k": k}, "generate": {"n": n, "seed": seed, "temperature": temperature}}.get(route, {})
    )
    response = client.get(f"/api/{route}", params=params)
    assert response.status_code in (200, 400, 422), response.text
    if response.status_code != 200:
        body = response.json()
        assert list(body) == ["error"] and "\n" not in body["error"]
    if route in ("next", "generate") and response.status_code == 400:
        raise AssertionError(f"a number answered 400, not 422: {response.text}")
