"""Smoothers as registered strategies, and NgramLM.from_tables as the one way a fitted model is built."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from lmbench.config import model_settings
from lmbench.data import TokenStream, Vocabulary
from lmbench.errors import ConfigError, DataError
from lmbench.models.ngram import NgramLM
from lmbench.models.ngram.counting import NgramTable
from lmbench.models.ngram.smoothing import (
    DEFAULT_KN_FALLBACK,
    DEFAULT_MKN_FALLBACK,
    SMOOTHERS,
    BackoffArrays,
    Smoother,
    describe_smoothing,
    mkn_discounts_from,
    register_smoother,
    single_discount_from,
)
from lmbench.models.registry import create_model
from lmbench.reporting.narrative import describe_model
from lmbench.results import ModelInfo


@dataclass
class AddDelta(Smoother):
    """A toy: add ``delta`` to every unigram count and use those unigrams at every order."""

    name: ClassVar[str] = "add-delta"
    description: ClassVar[str] = "add-delta unigrams (a test's toy)"
    delta: float = 0.5

    def validate(self) -> None:
        if not (isinstance(self.delta, float) and self.delta > 0):
            raise ConfigError(f"delta: expected a positive number, got {self.delta!r}")

    def estimate(self, tables: list[NgramTable], *, bos_id: int) -> list[BackoffArrays]:
        counts = tables[0].counts.astype(np.float64) + self.delta
        counts[bos_id] = 0.0
        out = [BackoffArrays(prob=counts / counts.sum(), bow=np.ones(len(counts)))]
        for table in tables[1:]:  # every stored n-gram gets its last word's unigram probability
            out.append(BackoffArrays(prob=out[-1].prob[table.suffix], bow=np.ones(len(table))))
        return out


@pytest.fixture
def add_delta():
    register_smoother(AddDelta)  # the recipe's one registration line
    try:
        yield AddDelta
    finally:
        del SMOOTHERS[AddDelta.name]


def test_a_smoother_defined_outside_the_package_fits_scores_and_round_trips(add_delta, tiny_train, tiny_test):
    model = NgramLM(3, "add-delta", delta=0.25, precision="float64").fit(tiny_train)
    V = len(tiny_train.vocab)
    counts = np.bincount(tiny_train.targets(), minlength=V).astype(np.float64) + 0.25
    counts[tiny_train.vocab.bos_id] = 0.0
    expected = np.log(counts / counts.sum(), where=counts > 0, out=np.zeros(V))[tiny_test.targets()]
    np.testing.assert_allclose(model.token_logprobs(tiny_test), expected, rtol=0, atol=1e-12)
    # its parameter is a setting of the model: declared for configs, in get_params, and checked
    assert model.get_params()["delta"] == 0.25
    rebuilt = create_model("ngram", **model.get_params())
    assert rebuilt.get_params() == model.get_params() and rebuilt.smoother == AddDelta(delta=0.25)
    assert model_settings("ngram")["delta"] is float
    assert describe_model("m", ModelInfo(family="ngram", config=model.config())).endswith(
        AddDelta.description
    )
    for smoothing in ("add-delta", "kneser-ney"):  # checked whichever smoother is chosen
        with pytest.raises(ConfigError, match="delta: expected a positive number, got -1.0"):
            NgramLM(2, smoothing, delta=-1.0)


def test_an_unregistered_smoother_and_its_settings_are_unknown(add_delta):
    del SMOOTHERS[add_delta.name]
    try:
        with pytest.raises(ConfigError, match="smoothing: unknown smoother 'add-delta'"):
            NgramLM(2, "add-delta")
        with pytest.raises(ConfigError, match="delta: not a setting of an n-gram model"):
            NgramLM(2, "kneser-ney", delta=0.5)
        assert "delta" not in NgramLM().get_params()
    finally:
        register_smoother(add_delta)


def test_registering_refuses_a_name_twice_and_a_clashing_default(add_delta):
    with pytest.raises(ValueError, match="already registered"):
        register_smoother(AddDelta)

    @dataclass
    class OtherK(Smoother):
        name: ClassVar[str] = "other-k"
        description: ClassVar[str] = "clash"
        k: float = 2.0  # add-k's k defaults to 1.0: one setting cannot have two defaults

        def estimate(self, tables, *, bos_id):
            raise NotImplementedError

    with pytest.raises(ValueError, match="'k' defaults to 2.0"):
        register_smoother(OtherK)

    @dataclass
    class Ordered(OtherK):
        name: ClassVar[str] = "ordered"
        k: float = 1.0
        order: int = 2  # would be swallowed by NgramLM's own order

    with pytest.raises(ValueError, match="'order' is already a setting of NgramLM"):
        register_smoother(Ordered)
    assert "other-k" not in SMOOTHERS and "ordered" not in SMOOTHERS


def test_every_smoother_describes_itself_for_reports():
    for name, cls in SMOOTHERS.items():
        assert cls.name == name and cls.description and "\n" not in cls.description
        assert describe_model("m", ModelInfo(family="ngram", config={"order": 3, "smoothing": name})) == (
            f"a trigram model with {cls.description}"
        )
    assert describe_smoothing("modified-kneser-ney") == "modified Kneser-Ney (three discounts per order)"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": 0}, "k: expected a positive number, got 0"),
        ({"k": True}, "k: expected a positive number, got True"),
        ({"discount": 1.0}, "discount: expected a number in (0, 1), got 1.0"),
        ({"backoff": 0}, "backoff: expected a number in (0, 1], got 0"),
        ({"interpolate_unigrams": 1}, "interpolate_unigrams: expected true or false, got 1"),
        ({"smoothing": ["mle"]}, "smoothing: unknown smoother ['mle']"),
    ],
)
def test_smoother_parameters_are_validated_by_their_smoother_in_one_line(kwargs, message):
    with pytest.raises(ConfigError) as err:
        NgramLM(**{"smoothing": "mle", **kwargs})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_from_tables_rebuilds_a_fitted_model_and_checks_shapes(tiny_train, tiny_test):
    model = NgramLM(3, "witten-bell").fit(tiny_train)
    copy = NgramLM.from_tables(
        model.vocab, model.keys_, model.log10prob_, model.log10bow_, **model.get_params()
    )
    np.testing.assert_array_equal(copy.token_logprobs(tiny_test), model.token_logprobs(tiny_test))
    assert copy.config() == model.config() and copy.source_ is None
    with pytest.raises(ValueError, match="expected 3 keys"):
        NgramLM.from_tables(model.vocab, model.keys_[:2], model.log10prob_, model.log10bow_, order=3)
    with pytest.raises(ValueError, match="order 2: .* keys but"):
        NgramLM.from_tables(
            model.vocab, model.keys_, [model.log10prob_[0], model.log10prob_[1][:-1], model.log10prob_[2]],
            model.log10bow_,
        )  # fmt: skip


def test_a_model_read_from_arpa_says_where_its_estimates_came_from(tiny_train, tiny_test, tmp_path):
    fitted = NgramLM(3, "kneser-ney").fit(tiny_train)
    arpa = tmp_path / "kn3.arpa"
    fitted.to_arpa(arpa)
    model = NgramLM.from_arpa(arpa, tiny_train.vocab)
    assert model.smoothing is None and model.source_ == str(arpa) and model.config()["source"] == str(arpa)
    assert describe_model("kn3", ModelInfo(family="ngram", config=model.config())) == (
        f"a trigram model with back-off estimates read from {arpa}"
    )
    assert describe_smoothing(None) == "given back-off estimates (no lmbench smoother)"
    with pytest.raises(ConfigError, match="smoothing: a model of given tables"):
        NgramLM(**model.get_params()).fit(tiny_train)
    np.testing.assert_allclose(model.token_logprobs(tiny_test), fitted.token_logprobs(tiny_test), atol=5e-7)
    model.save(tmp_path / "kn3.npz")
    back = NgramLM.load(tmp_path / "kn3.npz")
    assert back.source_ == str(arpa) and back.smoothing is None
    np.testing.assert_array_equal(back.token_logprobs(tiny_test), model.token_logprobs(tiny_test))


def _rewrite_meta(path: Path, edit) -> None:
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(bytes(arrays["meta"]).decode("utf-8"))
    edit(meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_files_saved_before_from_tables_still_load(tiny_train, tiny_test, tmp_path):
    """The old code saved ARPA-read models with smoothing "arpa" and no source; fitted models the same."""
    fitted = NgramLM(3, "modified-kneser-ney").fit(tiny_train)
    fitted.to_arpa(tmp_path / "m.arpa")
    arpa_model = NgramLM.from_arpa(tmp_path / "m.arpa", tiny_train.vocab)
    for model, name in ((fitted, "fitted.npz"), (arpa_model, "arpa.npz")):
        model.save(tmp_path / name)

        def old(meta, model=model):
            meta.pop("source")
            meta["config"].pop("source", None)
            if model.smoothing is None:
                meta["config"]["smoothing"] = "arpa"

        _rewrite_meta(tmp_path / name, old)
        back = NgramLM.load(tmp_path / name)
        np.testing.assert_array_equal(back.token_logprobs(tiny_test), model.token_logprobs(tiny_test))
        assert back.discounts_ == (json.loads(json.dumps(fitted.discounts_)) if model is fitted else None)
    assert back.smoothing is None and back.source_ == "an ARPA file"
    assert describe_model("old", ModelInfo(family="ngram", config=back.config())).endswith(
        "read from an ARPA file"
    )
    _rewrite_meta(tmp_path / "fitted.npz", lambda meta: meta["vocab"].pop())  # tables no longer fit it
    with pytest.raises(DataError, match="fitted.npz: not an lmbench n-gram model file .*one per word"):
        NgramLM.load(tmp_path / "fitted.npz")


def _imports(path: Path) -> set[str]:
    """Every lmbench module a file imports, at module level, in functions or under TYPE_CHECKING."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lmbench"):
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names if alias.name.startswith("lmbench"))
    return out


def test_no_import_cycle_between_ngram_modules():
    root = Path(__file__).resolve().parents[1] / "lmbench" / "models" / "ngram"
    names = {p.stem: f"lmbench.models.ngram.{p.stem}" for p in root.glob("*.py") if p.stem != "__init__"}
    graph = {stem: {s for s, mod in names.items() if mod in _imports(root / f"{stem}.py")} for stem in names}
    assert graph["model"] >= {"arpa", "smoothing"} and "model" not in graph["arpa"]

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    for stem in graph:
        assert stem not in reachable(stem), f"{stem}.py imports itself through {sorted(reachable(stem))}"


def test_katz_rows_sum_to_one_where_the_lower_order_has_no_mass_left(caplog):
    """After "w2" only "</s>" was seen, undiscounted (Good-Turing leaves count 1 alone at order 2): the bigram
    distribution after "w2" has no mass for other words, so the trigram context "w0 w2", which discounts its
    one "</s>", cannot pass the freed mass down. Its seen probabilities are scaled to one instead (SRILM's fix);
    before, the row summed to 0.5."""
    lines = [["w1"], ["w0", "w0"], ["w0", "w0"], ["w0", "w2"]]
    vocab = Vocabulary.build(lines)
    model = NgramLM(3, "katz", precision="float64").fit(TokenStream.from_lines(lines, vocab))
    context = [vocab.index["w0"], vocab.index["w2"]]
    rows = np.exp(model.next_token_logprobs([context, context[1:], []]))
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-12)
    every = [[vocab.bos_id, w] for w in range(len(vocab))] + [
        [u, w] for u in range(len(vocab)) for w in range(len(vocab))
    ]
    np.testing.assert_allclose(
        np.exp(model.next_token_logprobs(every)).sum(axis=1), 1.0, atol=1e-12
    )  # the others too
    assert rows[0, vocab.eos_id] == pytest.approx(1.0)
    assert "scaled to sum to one" in caplog.text


def test_discounts_from_count_of_counts_match_the_formulas_by_hand(caplog):
    """Ney's D = n1 / (n1 + 2 n2) and Chen & Goodman's D1, D2, D3+ (Y = n1 / (n1 + 2 n2),
    D_k = k - (k + 1) Y n_{k+1} / n_k), and the fallbacks where a formula is undefined or out of range."""
    import logging

    assert single_discount_from(np.array([10.0, 5.0, 0, 0]), 2) == 0.5
    assert single_discount_from(np.array([1.0, 2.0, 0, 0]), 2) == pytest.approx(0.2)
    assert single_discount_from(np.array([1.0, 0.0, 0, 0]), 2) == 1.0  # one singleton, no doubleton
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        assert single_discount_from(np.array([0.0, 5.0, 0, 0]), 3) == DEFAULT_KN_FALLBACK
    assert "order 3: no singletons" in caplog.text

    # n = 16, 8, 4, 2: Y = 1/2, D1 = 1 - 2 Y 8/16, D2 = 2 - 3 Y 4/8, D3+ = 3 - 4 Y 2/4
    assert mkn_discounts_from(np.array([16.0, 8.0, 4.0, 2.0]), 3) == (0.5, 1.25, 2.0)
    assert mkn_discounts_from(np.array([30.0, 10.0, 5.0, 4.0, 9.0]), 3) == pytest.approx((0.6, 1.1, 1.08))
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # finite but out of range: D2 = 2 - 3 (1/3) 30/10 = -1
        assert mkn_discounts_from(np.array([10.0, 10.0, 30.0, 5.0]), 4) == DEFAULT_MKN_FALLBACK
    assert "order 4" in caplog.text and "fallback" in caplog.text


@pytest.mark.parametrize("smoothing", ["absolute-discounting", "kneser-ney", "modified-kneser-ney"])
def test_a_discounting_smoothers_estimate_gives_the_fitted_models_probabilities(tiny_train, smoothing):
    """``estimate`` (the protocol method a caller or plugin uses, with no ``finish`` step) and the order-by-order
    path that ``fit`` takes give the same probabilities and back-offs."""
    from lmbench.models.ngram.counting import count_ngrams
    from lmbench.models.ngram.smoothing import smoother_class

    model = NgramLM(3, smoothing, precision="float64").fit(tiny_train)
    seq = tiny_train.with_markers(bos=True)
    starts = tiny_train.offsets[:-1] + 2 * np.arange(tiny_train.num_lines, dtype=np.int64)
    bos = tiny_train.vocab.bos_id
    tables = count_ngrams(seq, starts, 3, len(tiny_train.vocab), skip_first=bos)
    arrays = smoother_class(smoothing)().estimate(tables, bos_id=bos)
    for m, a in enumerate(arrays):
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(np.log(a.prob), model.logprob_[m], rtol=1e-12)
        if m < 2:
            np.testing.assert_allclose(np.log(a.bow), model.logbow_[m], rtol=1e-12, atol=1e-12)


def _bigram_counts(lines, vocab):
    """Unigram counts of predicted words (all but <s>) and bigram counts, over lines with <s> ... </s>."""
    from collections import Counter

    unigrams, bigrams = Counter(), Counter()
    for line in lines:
        ids = [vocab.bos_id, *(vocab.index[w] for w in line), vocab.eos_id]
        unigrams.update(ids[1:])
        bigrams.update(zip(ids[:-1], ids[1:], strict=True))
    return unigrams, bigrams


def _katz_lines():
    rng = np.random.default_rng(6)  # bigrams seen 5 times and more often; unigram singletons (mass to spread)
    words = [f"w{i}" for i in range(40)]
    return [[words[j] for j in rng.zipf(1.3, rng.integers(2, 9)) % 40] for _ in range(80)]


def test_good_turing_discounts_match_katz_formula_by_hand(caplog):
    """d_r = (r*/r - (k+1) n_{k+1}/n_1) / (1 - (k+1) n_{k+1}/n_1), r* = (r+1) n_{r+1}/n_r (Katz 1987), and the
    absolute-discount fallback (r - 0.5)/r with a warning where d_r leaves (0, 1]."""
    import logging

    from lmbench.models.ngram.smoothing import good_turing_discounts

    counts = np.array([1] * 10 + [2] * 4 + [3] * 2 + [7], dtype=np.float64)  # n1, n2, n3 = 10, 4, 2
    # k = 2: common = 3 n3 / n1 = 0.6; d1 = (2 n2/n1 - 0.6) / 0.4 = 0.5, d2 = (3 n3/(2 n2) - 0.6) / 0.4 = 0.375
    np.testing.assert_allclose(good_turing_discounts(counts, 2, max_count=2), [1.0, 0.5, 0.375])
    assert not caplog.records
    with caplog.at_level(logging.WARNING):  # n2 = n3 = 0 at k = 2: d1 = (0 - 0) / 1 = 0 is out of range
        d = good_turing_discounts(np.array([1.0, 1.0, 5.0]), 4, max_count=2)
    np.testing.assert_allclose(d, [1.0, 0.5, 0.75])
    assert "order 4: Good-Turing discount undefined for counts [1, 2]" in caplog.text


def test_katz_bigram_probabilities_match_a_direct_implementation():
    """Katz back-off written out for a bigram model: p(w|h) = d_c c(hw)/c(h) for a seen pair, else
    bow(h) p(w); unigrams discounted alike, their freed mass spread over every word but <s>; bow(h) =
    (1 - sum of p(w|h) seen) / (1 - sum of p(w) over the same w). Counts above 5 are not discounted."""
    from lmbench.models.ngram.smoothing import good_turing_discounts

    lines = _katz_lines()
    vocab = Vocabulary.build(lines)
    model = NgramLM(2, "katz", precision="float64").fit(TokenStream.from_lines(lines, vocab))
    unigrams, bigrams = _bigram_counts(lines, vocab)
    assert 5 in bigrams.values() and any(c > 5 for c in bigrams.values())  # both sides of max_count

    def ratio(c, d):
        return d[int(c)] if c <= 5 else 1.0

    V, N = len(vocab), sum(unigrams.values())
    d1 = good_turing_discounts(np.array([unigrams.get(w, 0) for w in range(V)], dtype=np.float64), 1)
    p1 = np.array([ratio(unigrams.get(w, 0), d1) * unigrams.get(w, 0) / N for w in range(V)])
    p1 += (1.0 - p1.sum()) / (V - 1)
    p1[vocab.bos_id] = 0.0
    d2 = good_turing_discounts(np.array(sorted(bigrams.values()), dtype=np.float64), 2)
    for h in {h for h, _ in bigrams}:
        seen = {w: c for (g, w), c in bigrams.items() if g == h}
        total = sum(seen.values())
        p2 = {w: ratio(c, d2) * c / total for w, c in seen.items()}
        bow = (1.0 - sum(p2.values())) / (1.0 - sum(p1[w] for w in seen))
        expected = np.array([p2[w] if w in seen else bow * p1[w] for w in range(V)])
        np.testing.assert_allclose(
            np.exp(model.next_token_logprobs([[h]])[0]), expected, rtol=1e-9, atol=1e-15
        )
    np.testing.assert_allclose(np.exp(model.next_token_logprobs([[]])[0]), p1, rtol=1e-9, atol=1e-15)


def test_stupid_backoff_scores_match_brants_et_al_by_hand():
    """S(w|h) = c(hw)/c(h) when hw was seen, else 0.4 S(w|h'); S(w) = c(w)/N (Brants et al. 2007)."""
    lines = _katz_lines()
    vocab = Vocabulary.build(lines)
    model = NgramLM(2, "stupid-backoff", precision="float64").fit(TokenStream.from_lines(lines, vocab))
    unigrams, bigrams = _bigram_counts(lines, vocab)
    V, N = len(vocab), sum(unigrams.values())
    s1 = np.array([unigrams.get(w, 0) / N for w in range(V)])
    for h in {h for h, _ in bigrams}:
        total = sum(c for (g, _), c in bigrams.items() if g == h)
        expected = [bigrams[h, w] / total if (h, w) in bigrams else 0.4 * s1[w] for w in range(V)]
        with np.errstate(divide="ignore"):
            np.testing.assert_allclose(model.next_token_logprobs([[h]])[0], np.log(expected), rtol=1e-12)


def test_witten_bell_interpolated_unigrams_match_the_formula_by_hand():
    """With interpolate_unigrams, p(w) = (c(w) + T u(w)) / (N + T): T counts the distinct words seen (not those
    of count 0, such as <unk> here), u is uniform over every word but <s>."""
    lines = [["a", "b", "c"], ["a", "c", "d"], ["b", "b", "a"]]
    vocab = Vocabulary.build(lines)
    model = NgramLM(2, "witten-bell", interpolate_unigrams=True, precision="float64")
    model.fit(TokenStream.from_lines(lines, vocab))
    counts = {"</s>": 3, "a": 3, "b": 3, "c": 2, "d": 1, "<unk>": 0}
    N, T, u = 12, 5, 1 / (len(vocab) - 1)
    expected = [0.0 if w == "<s>" else (counts[w] + T * u) / (N + T) for w in vocab.tokens]
    np.testing.assert_allclose(np.exp(model.next_token_logprobs([[]])[0]), expected, rtol=1e-12)
