"""One conformance suite run against every registered back-end (STYLE.md): a new back-end passes it by
being registered and given a tiny configuration below."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from lmbench.data import TokenStream
from lmbench.errors import NotFittedError
from lmbench.models.base import CONTEXTS, Budget
from lmbench.models.registry import MODELS, available_models, create_model

# Small, fast hyper-parameters per registered name; a name missing here is tested with its defaults.
TINY_PARAMS: dict[str, dict] = {
    # float64: rows sum to 1 to 1e-9 (the float32 default, KenLM's, is checked in test_ngram_scale.py)
    "ngram": {"order": 3, "smoothing": "modified-kneser-ney", "precision": "float64"},
    **{
        cell: {
            "emb_size": 16,
            "hidden_size": 16,
            "layers": 1,
            "batch_size": 4,
            "seq_len": 8,
            "warmup_steps": 2,
        }
        for cell in ("rnn", "gru", "lstm")
    },
    "recipe-mean": {"emb_size": 8, "batch_size": 4, "seq_len": 8, "warmup_steps": 2},
    "transformer": {
        "d_model": 16,
        "n_heads": 2,
        "layers": 1,
        "window": 8,
        "batch_size": 4,
        "warmup_steps": 2,
    },
}
TINY_BUDGET = Budget(epochs=2)


RECIPE = (
    "recipe-mean"  # tests/recipe_backend.py: a back-end written from the README's recipe, registered below
)


@pytest.fixture(params=[*available_models(), RECIPE])
def name(request, monkeypatch) -> str:
    if request.param == RECIPE:  # the recipe's one registration line, for this test only
        monkeypatch.setitem(MODELS, RECIPE, ("tests.recipe_backend:MeanLM", {}))
    return request.param


@pytest.fixture
def params(name, request) -> dict:
    """The tiny settings of ``name``: a copy, so no test changes what the next one sees."""
    if name == "pretrained":  # needs the [hf] extra; the model is built locally, never downloaded
        return {"name_or_path": str(request.getfixturevalue("tiny_hf_model")), "window": 16}
    return copy.deepcopy(TINY_PARAMS.get(name, {}))


@pytest.fixture
def make(name, params):
    """A factory of fresh unfitted models of the back-end under test."""
    return lambda: create_model(name, **params)


@pytest.fixture
def fitted(make, tiny_train):
    return make().fit(tiny_train, budget=TINY_BUDGET)


def protocol_items(data: TokenStream, context: str) -> tuple[list[list[int]], np.ndarray]:
    """(context, next id) of every predicted token of ``data``, in the protocol's order, written out here:
    every word of each line and one ``</s>`` per line, never ``<s>``; in sentence mode the context is the
    line from its ``<s>``, in stream mode everything before, line ends included."""
    v = data.vocab
    contexts, targets, before = [], [], []
    for line in data.lines():
        sentence = [v.bos_id]
        before.append(v.bos_id)
        for token in [*line.tolist(), v.eos_id]:
            contexts.append(list(sentence if context == "sentence" else before))
            targets.append(token)
            sentence.append(token)
            before.append(token)
    return contexts, np.asarray(targets)


def test_fit_returns_self(make, tiny_train):
    model = make()
    assert model.fit(tiny_train, budget=TINY_BUDGET) is model
    assert model.vocab is tiny_train.vocab


def test_unfitted_use_raises(make, tiny_test):
    model = make()
    with pytest.raises(NotFittedError):
        model.token_logprobs(tiny_test, context="sentence")
    with pytest.raises(NotFittedError):
        model.next_token_logprobs([[1]])


def test_rows_sum_to_one_including_bos_and_unk_contexts(fitted):
    v = fitted.vocab
    contexts = [
        [v.bos_id],
        [v.bos_id, 3, 4],
        [v.unk_id],
        [v.bos_id, v.unk_id, v.unk_id],
        [5, v.eos_id, v.bos_id],
    ]
    logp = fitted.next_token_logprobs(contexts)
    assert logp.shape == (len(contexts), len(v))
    assert logp.dtype == np.float64
    if fitted.normalized:
        np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, atol=1e-9)


@pytest.mark.parametrize("context", ["sentence", "stream"])
def test_token_logprobs_shape_and_finite_on_oov(fitted, tiny_test, context):
    logp = fitted.token_logprobs(tiny_test, context=context)
    assert logp.shape == (tiny_test.num_predicted,)
    assert logp.dtype == np.float64
    assert tiny_test.oov > 0  # the test text has an OOV word ("zebra")
    if fitted.normalized:
        assert np.all(np.isfinite(logp)) and np.all(logp <= 0)


@pytest.mark.parametrize("context", CONTEXTS)
def test_both_context_modes_predict_the_same_tokens(fitted, context):
    """Each mode scores exactly the protocol's token ids, in order: its score of every predicted token is
    ``next_token_logprobs`` of that token's context at that token's id (so token_logprobs and
    next_token_logprobs agree). The text has an empty line and fits every tiny model's window in one pass."""
    data = TokenStream.from_lines([["the", "cat"], [], ["a"]], fitted.vocab)
    contexts, targets = protocol_items(data, context)
    assert len(targets) == data.num_predicted == 6
    expected = fitted.next_token_logprobs(contexts)[np.arange(len(targets)), targets]
    np.testing.assert_allclose(fitted.token_logprobs(data, context=context), expected, rtol=1e-6, atol=1e-6)


def test_first_line_scores_agree_between_modes(fitted, tiny_test):
    """The first line has only <s> before it in both modes, so its scores must be identical."""
    n = len(tiny_test.line(0)) + 1
    a = fitted.token_logprobs(tiny_test, context="sentence")[:n]
    b = fitted.token_logprobs(tiny_test, context="stream")[:n]
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_same_seed_same_scores(make, tiny_train, tiny_test):
    a = make().fit(tiny_train, budget=TINY_BUDGET).token_logprobs(tiny_test, context="sentence")
    b = make().fit(tiny_train, budget=TINY_BUDGET).token_logprobs(tiny_test, context="sentence")
    np.testing.assert_array_equal(a, b)


def test_a_seed_is_stored_unchanged(make, name, params):
    """The experiment plans a stochastic model's seeds without building one per seed (``plan_runs``): the
    settings of seed s must be the model's settings with ``seed`` replaced, and nothing else."""
    model = make()
    if not model.stochastic:
        return
    settings = model.get_params()
    for seed in (0, 7, 2**32 - 1):
        assert create_model(name, **{**params, "seed": seed}).get_params() == {**settings, "seed": seed}


def test_save_load_round_trips_exactly(fitted, tiny_test, tmp_path):
    path = tmp_path / "model.bin"
    fitted.save(path)
    loaded = type(fitted).load(path)
    assert loaded.config() == fitted.config()
    assert loaded.vocab == fitted.vocab
    for context in ("sentence", "stream"):
        np.testing.assert_array_equal(
            loaded.token_logprobs(tiny_test, context=context),
            fitted.token_logprobs(tiny_test, context=context),
        )


def test_generate_is_seeded_and_in_vocabulary(fitted):
    v = fitted.vocab
    a = fitted.generate([v.bos_id], 12, seed=3)
    b = fitted.generate([v.bos_id], 12, seed=3)
    assert a == b
    assert 1 <= len(a) <= 12
    assert all(0 <= t < len(v) and t != v.bos_id for t in a)


def test_num_parameters_and_config(fitted, name, params, tiny_train, tiny_test):
    """config() is JSON that names the back-end and holds settings (the given ones unchanged) and what the data
    fixed (``vocab_size``), nothing else; rebuilt by name from it and fitted alike, it is the same model: same
    config, same size, same scores."""
    config = fitted.config()
    assert json.loads(json.dumps(config)) == config
    assert config["backend"] == fitted.backend
    settings = fitted.get_params()
    assert {k: settings[k] for k in params} == params
    assert set(config) - set(settings) <= {"backend", "vocab_size"}
    rebuilt = create_model(name, **{k: v for k, v in config.items() if k in settings})
    rebuilt.fit(tiny_train, budget=TINY_BUDGET)
    assert rebuilt.config() == config
    assert isinstance(fitted.num_parameters(), int)
    assert rebuilt.num_parameters() == fitted.num_parameters() > 0
    np.testing.assert_array_equal(
        rebuilt.token_logprobs(tiny_test, context="sentence"),
        fitted.token_logprobs(tiny_test, context="sentence"),
    )
