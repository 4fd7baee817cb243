"""Count pruning (lmplz's --prune) and vocabulary padding (--vocab_pad): which n-grams go, and that the
pruned or padded model is still a probability distribution after every context."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from lmbench.cli import main
from lmbench.data import TokenStream, Vocabulary
from lmbench.errors import ConfigError
from lmbench.models.ngram import NgramLM
from lmbench.models.ngram.counting import count_ngrams
from lmbench.models.ngram.pruning import check_thresholds, decision_counts
from lmbench.models.ngram.smoothing import SMOOTHERS, smoother_class

NORMALISED = [name for name, cls in SMOOTHERS.items() if cls.normalized]


@pytest.fixture(scope="module")
def corpus() -> TokenStream:
    """A few thousand tokens with a Zipf-like vocabulary: many singletons at every order, some repeats."""
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(300)]
    p = 1.0 / np.arange(1, 301) ** 1.1
    p /= p.sum()
    lines = [list(rng.choice(words, size=rng.integers(0, 14), p=p)) for _ in range(500)]
    return TokenStream.from_lines(lines, Vocabulary.build(lines))


def _contexts(data: TokenStream, order: int, n: int = 120) -> list[list[int]]:
    """Contexts seen in training (stored, partly pruned) and random ones (<s>, <unk> and unseen included)."""
    rng = np.random.default_rng(1)
    seq = data.with_markers(bos=True)
    seen = [list(seq[i : i + order - 1]) for i in rng.integers(0, len(seq) - order, n)]
    V = len(data.vocab)
    unseen = [[data.vocab.bos_id, *rng.integers(0, V, size=k)] for k in rng.integers(0, order, 30)]
    return seen + [[int(i) for i in c] for c in unseen] + [[data.vocab.unk_id], []]


def _rows_sum(model: NgramLM, contexts) -> np.ndarray:
    return np.exp(model.next_token_logprobs(contexts)).sum(axis=1)


def _arpa(model: NgramLM, path) -> dict[tuple[str, ...], tuple[float, float]]:
    """Every n-gram of the model's ARPA text: words -> (log10 prob, log10 back-off)."""
    model.to_arpa(path)
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and not line.startswith("ngram "):
            out[tuple(fields[1].split())] = (float(fields[0]), float(fields[2]) if len(fields) > 2 else 0.0)
    return out


def test_thresholds_follow_lmplz_rules():
    assert check_thresholds([0, 1], 4) == (0, 1, 1, 1)  # the last value repeats
    assert check_thresholds([0, 0, 2], 3) == (0, 0, 2)
    assert check_thresholds(None, 3) is None and check_thresholds([0], 3) is None  # zero: no pruning
    for bad, message in [
        ([1, 1], "unigrams are never pruned"),
        ([0, 2, 1], "must not decrease"),
        ([0, 1, 1, 1], "4 thresholds given for a model of order 3"),
        ([0, -1], "counts >= 0"),
        ([0, 1.5], "counts >= 0"),
        ("0 1", "expected a list"),
    ]:
        with pytest.raises(ConfigError, match=message):
            check_thresholds(bad, 3)
    with pytest.raises(ConfigError, match="prune: smoothing 'stupid-backoff'"):
        NgramLM(3, "stupid-backoff", prune=[0, 1])


@pytest.mark.parametrize("smoothing", NORMALISED)
@pytest.mark.parametrize("order, prune", [(3, [0, 1, 1]), (4, [0, 0, 1, 2])])
def test_pruned_model_sums_to_one_after_every_context(corpus, smoothing, order, prune):
    full = NgramLM(order, smoothing, precision="float64").fit(corpus)
    pruned = NgramLM(order, smoothing, precision="float64", prune=prune).fit(corpus)
    kept, before = pruned.ngrams_per_order(), full.ngrams_per_order()
    assert kept[0] == before[0]  # unigrams are never pruned
    assert all(k <= b for k, b in zip(kept, before, strict=True)) and sum(kept) < 0.7 * sum(before)
    sums = _rows_sum(pruned, _contexts(corpus, order))
    np.testing.assert_allclose(sums, 1.0, atol=1e-9)
    # the float32 store keeps it to float32 precision
    stored = NgramLM(order, smoothing, prune=prune).fit(corpus)
    np.testing.assert_allclose(_rows_sum(stored, _contexts(corpus, order)), 1.0, atol=2e-5)


@pytest.mark.parametrize("smoothing", ["modified-kneser-ney", "witten-bell"])
def test_which_ngrams_go_and_that_kept_ones_keep_their_probability(corpus, smoothing, tmp_path):
    order, thresholds = 3, (0, 1, 2)
    full = NgramLM(order, smoothing, precision="float64").fit(corpus)
    pruned = NgramLM(order, smoothing, precision="float64", prune=list(thresholds)).fit(corpus)
    seq = corpus.with_markers(bos=True)
    starts = corpus.offsets[:-1] + 2 * np.arange(corpus.num_lines, dtype=np.int64)
    tables = count_ngrams(seq, starts, order, len(corpus.vocab), skip_first=corpus.vocab.bos_id)
    counts = decision_counts(tables, smoother_class(smoothing)(), corpus.vocab.bos_id)
    tokens = corpus.vocab.tokens
    by_words = {}
    for m, table in enumerate(tables, start=1):
        words = np.empty((len(table), m), dtype=np.int64)
        words[:, -1] = table.word
        if m > 1:
            words[:, :-1] = by_words[m - 1][0][np.asarray(table.context)]
        by_words[m] = (words, counts[m - 1])
    ours, theirs = _arpa(pruned, tmp_path / "pruned.arpa"), _arpa(full, tmp_path / "full.arpa")
    kept = set(ours)
    for m in range(2, order + 1):
        for row, count in zip(*by_words[m], strict=True):
            gram = tuple(tokens[i] for i in row)
            if gram not in theirs:  # n-grams ARPA leaves out (-inf)
                continue
            needed = any(  # the context or the suffix of a kept longer n-gram
                k[:-1] == gram or k[1:] == gram for k in kept if len(k) == m + 1
            )
            assert (gram in kept) == (count > thresholds[m - 1] or needed), gram
            if gram in kept:  # its own probability is unchanged; only back-off weights are recomputed
                assert ours[gram][0] == pytest.approx(theirs[gram][0], abs=2e-7)
    assert NgramLM.from_arpa(tmp_path / "pruned.arpa").ngrams_per_order()[1:] == pruned.ngrams_per_order()[1:]


def test_pruning_on_the_disk_path_gives_the_same_model(corpus, tmp_path):
    in_memory = NgramLM(3, prune=[0, 1]).fit(corpus)
    spilled = NgramLM(3, prune=[0, 1], memory="16K")
    spilled.fit(corpus, run_dir=tmp_path)
    assert spilled.counting_stats_.spilled_runs > 0  # the tables really were counted on disk
    for a, b in zip(
        (*in_memory.keys_, *in_memory.log10prob_, *in_memory.log10bow_),
        (*spilled.keys_, *spilled.log10prob_, *spilled.log10bow_),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("smoothing", ["modified-kneser-ney", "kneser-ney", "witten-bell"])
def test_vocab_pad_gives_the_padding_to_unk_and_stays_normalised(corpus, smoothing):
    V = len(corpus.vocab)
    plain = NgramLM(3, smoothing, precision="float64").fit(corpus)
    assert _same(NgramLM(3, smoothing, precision="float64", vocab_pad=V - 1).fit(corpus), plain)  # no padding
    pad = 5 * V
    padded = NgramLM(3, smoothing, precision="float64", vocab_pad=pad).fit(corpus)
    np.testing.assert_allclose(_rows_sum(padded, _contexts(corpus, 3)), 1.0, atol=1e-9)
    p, q = np.exp(plain.log10prob_[0] * np.log(10)), np.exp(padded.log10prob_[0] * np.log(10))
    others = np.setdiff1d(np.arange(V), [corpus.vocab.unk_id, corpus.vocab.bos_id])
    shift = p[others] - q[others]  # gamma * (1/(V-1) - 1/pad): the same for every word
    assert shift.min() > 0 and np.ptp(shift) < 1e-12
    unk = corpus.vocab.unk_id
    assert q[unk] - p[unk] == pytest.approx(shift.sum(), rel=1e-9)  # what the words gave up goes to <unk>
    for bad, message in [
        (dict(smoothing="katz", vocab_pad=10), "no uniform base to pad"),
        (dict(interpolate_unigrams=False, vocab_pad=10), "needs interpolate_unigrams"),
        (dict(vocab_pad=-1), "an integer >= 0"),
    ]:
        with pytest.raises(ConfigError, match=message):
            NgramLM(3, **bad)


def _same(a: NgramLM, b: NgramLM) -> bool:
    return all(
        np.array_equal(x, y)
        for x, y in zip((*a.log10prob_, *a.log10bow_), (*b.log10prob_, *b.log10bow_), strict=True)
    )


def test_ngram_command_prunes_like_lmplz(tmp_path):
    text = tmp_path / "train.txt"
    rng = np.random.default_rng(3)
    text.write_text(
        "\n".join(" ".join(f"w{i}" for i in rng.integers(0, 60, size=9)) for _ in range(300)) + "\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    full = runner.invoke(main, ["ngram", str(text), "-o", "3", "--arpa", str(tmp_path / "a.arpa")])
    pruned = runner.invoke(
        main, ["ngram", "--prune", "0", "1", "1", str(text), "-o", "3", "--arpa", str(tmp_path / "p.arpa")]
    )
    assert full.exit_code == pruned.exit_code == 0, pruned.output
    a, p = NgramLM.from_arpa(tmp_path / "a.arpa"), NgramLM.from_arpa(tmp_path / "p.arpa")
    assert p.ngrams_per_order()[0] == a.ngrams_per_order()[0]
    assert p.ngrams_per_order()[2] < a.ngrams_per_order()[2] // 2
    comma = runner.invoke(
        main, ["ngram", str(text), "-o", "3", "--prune", "0,1", "--arpa", str(tmp_path / "c.arpa")]
    )
    assert comma.exit_code == 0 and (tmp_path / "c.arpa").read_bytes() == (tmp_path / "p.arpa").read_bytes()
    padded = runner.invoke(
        main, ["ngram", str(text), "-o", "3", "--vocab_pad", "1000", "--arpa", str(tmp_path / "v.arpa")]
    )
    assert padded.exit_code == 0 and (tmp_path / "v.arpa").read_bytes() != (tmp_path / "a.arpa").read_bytes()
    for args, message in [
        (["--prune", "1", "1"], "unigrams are never pruned"),
        (["--prune", "0", "2", "1"], "must not decrease"),
        (["--prune", "x"], "expected counts"),
        (["--vocab_pad", "10", "--smoothing", "katz"], "no uniform base to pad"),
    ]:
        result = runner.invoke(
            main, ["ngram", str(text), "-o", "3", *args, "--arpa", str(tmp_path / "x.arpa")]
        )
        assert result.exit_code == 2 and message in result.output, result.output
        assert not (tmp_path / "x.arpa").exists()
