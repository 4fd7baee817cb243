"""Modified Kneser-Ney against KenLM's own outputs (../shared/reference/kenlm): every n-gram of the reference
ARPA, the per-sentence totals of `query`, and the perplexity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmbench.data import TokenStream, Vocabulary
from lmbench.data.corpus import read_text, split_lines
from lmbench.evaluation import score
from lmbench.models.ngram import NgramLM

from .conftest import require_shared

LN10 = math.log(10.0)


def _stream(path, vocab=None):
    lines = [line.split() for line in split_lines(read_text(path))]
    vocab = vocab or Vocabulary.build(lines)
    return TokenStream.from_lines(lines, vocab)


@pytest.fixture(scope="module")
def reference():
    root = require_shared("reference", "kenlm")
    train = _stream(root / "wt2-8k.train.txt")
    valid = _stream(root / "wt2-1k.valid.txt", train.vocab)
    return root, train, valid


@pytest.mark.parametrize("order", [3, 5])
def test_every_ngram_matches_kenlm(reference, order):
    root, train, _ = reference
    ours = NgramLM(order, "modified-kneser-ney").fit(train)
    ref = NgramLM.from_arpa(root / f"wt2-8k.o{order}.arpa.gz", train.vocab)
    for m in range(order):
        # the same set of n-grams (same vocabulary => same keys) ...
        np.testing.assert_array_equal(ours.keys_[m], ref.keys_[m])
        # ... with log10 probabilities and back-offs within 1e-4 (<s> is -inf in both)
        np.testing.assert_array_equal(np.isfinite(ours.logprob_[m]), np.isfinite(ref.logprob_[m]))
        finite = np.isfinite(ref.logprob_[m])
        np.testing.assert_allclose(
            ours.logprob_[m][finite] / LN10, ref.logprob_[m][finite] / LN10, atol=1e-4, rtol=0
        )
        np.testing.assert_allclose(ours.logbow_[m] / LN10, ref.logbow_[m] / LN10, atol=1e-4, rtol=0)


@pytest.mark.parametrize("order", [3, 5])
def test_sentence_totals_and_perplexity_match_kenlm_query(reference, order):
    root, train, valid = reference
    model = NgramLM(order, "modified-kneser-ney").fit(train)
    logprobs = model.token_logprobs(valid, context="sentence")
    totals = np.add.reduceat(logprobs, valid.target_line_starts()) / LN10
    query = [
        float(x.split()[1])
        for x in (root / f"wt2-8k.o{order}.valid.query.txt").read_text().splitlines()
        if x.startswith("Total:")
    ]
    assert len(query) == valid.num_lines
    np.testing.assert_allclose(totals, query, atol=1e-3, rtol=0)

    summary = dict(
        line.split(":\t") for line in (root / f"wt2-8k.o{order}.valid.summary.txt").read_text().splitlines()
    )
    scores = score(logprobs, valid)
    assert scores.tokens == int(summary["Tokens"])
    assert scores.oov == int(summary["OOVs"])
    assert scores.perplexity == pytest.approx(float(summary["Perplexity including OOVs"]), rel=1e-4)
    assert scores.perplexity_excl_oov == pytest.approx(float(summary["Perplexity excluding OOVs"]), rel=1e-4)


def test_arpa_round_trip_scores_like_the_model(reference, tmp_path):
    _, train, valid = reference
    model = NgramLM(3, "modified-kneser-ney").fit(train)
    for name in ("model.arpa", "model.arpa.gz"):
        model.to_arpa(tmp_path / name)
        back = NgramLM.from_arpa(tmp_path / name, train.vocab)
        # ARPA keeps 7 significant digits of log10 values
        np.testing.assert_allclose(back.token_logprobs(valid), model.token_logprobs(valid), atol=1e-5)
