"""N-grams at scale: counting within a memory budget (spilled runs give the same tables, bit for bit), the
compact fitted model, streaming encoding, fast ARPA writing, a validating ARPA reader, `lmbench ngram`."""

from __future__ import annotations

import gzip
import os
import stat

import numpy as np
import pytest
from click.testing import CliRunner

from lmbench.cli import main
from lmbench.data import Corpus, TokenStream, Vocabulary, get_tokenizer, tokenize_corpus
from lmbench.data.corpus import encode_stream
from lmbench.data.encoding import encode_lines
from lmbench.errors import ConfigError, DataError
from lmbench.models.ngram import NgramLM, arpa, counting, storage, streaming
from lmbench.models.ngram import model as model_module
from lmbench.models.ngram.counting import CountingStats, count_ngrams, parse_memory

from .conftest import TINY_TEST, TINY_TRAIN, require_shared


def _zipf_lines(rng: np.random.Generator, lines: int, vocab: int = 300) -> list[list[str]]:
    """Random text with a Zipf-like word distribution and lines of 0..20 words (empty lines included)."""
    p = 1.0 / np.arange(1, vocab + 1)
    p /= p.sum()
    return [[f"w{i}" for i in rng.choice(vocab, size=rng.integers(0, 21), p=p)] for _ in range(lines)]


@pytest.fixture(scope="module")
def zipf_stream() -> TokenStream:
    lines = _zipf_lines(np.random.default_rng(7), 600)
    return TokenStream.from_lines(lines, Vocabulary.build(lines))


# ------------------------------------------------------------------------------------- memory budget
@pytest.mark.parametrize("context", ["sentence", "stream"])
def test_spilled_counting_gives_the_same_tables_bit_for_bit(zipf_stream, context):
    data = zipf_stream
    if context == "sentence":
        seq = data.with_markers(bos=True)
        starts = data.offsets[:-1] + 2 * np.arange(data.num_lines)
    else:
        seq, starts = data.stream(), np.zeros(1, np.int64)
    V = len(data.vocab)
    in_memory = CountingStats()
    spilled = CountingStats()
    # the budget counts the process's resident memory, which grows over a long test session: 1 GiB beyond it
    roomy = counting.resident_memory() + (1 << 30)
    a = count_ngrams(seq, starts, 5, V, skip_first=1, memory=roomy, stats=in_memory)
    b = count_ngrams(seq, starts, 5, V, skip_first=1, memory=parse_memory("16K"), stats=spilled)
    assert in_memory.spilled_runs == 0 and in_memory.chunks == 4
    assert spilled.spilled_runs > 4 and spilled.chunks > 20  # several runs per order went to disk
    assert spilled.disk_orders == [2, 3, 4, 5] and not in_memory.disk_orders  # tables written to disk
    for ta, tb in zip(a, b, strict=True):
        for name in ("keys", "counts", "context", "word", "suffix"):
            x, y = storage.in_memory(getattr(ta, name)), storage.in_memory(getattr(tb, name))
            assert x.dtype == y.dtype, name
            np.testing.assert_array_equal(x, y, err_msg=name)
    # and both agree with a direct count of every in-segment 5-gram
    seg = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(seq))))
    grams = {tuple(seq[t : t + 5]) for t in range(len(seq) - 4) if seg[t] == seg[t + 4]}
    assert len(a[4]) == len(grams)


def test_counting_on_two_threads_gives_the_same_tables(zipf_stream, monkeypatch):
    data = zipf_stream
    seq = data.with_markers(bos=True)
    starts = data.offsets[:-1] + 2 * np.arange(data.num_lines)
    V = len(data.vocab)
    one = count_ngrams(seq, starts, 4, V, skip_first=1, memory=parse_memory("1G"), threads=1)
    monkeypatch.setattr(counting, "PARALLEL_POSITIONS", 1)  # every order counted a chunk per thread
    stats = CountingStats()
    # a tiny budget: many chunks per order, runs and tables on disk
    two = count_ngrams(seq, starts, 4, V, skip_first=1, memory=parse_memory("16K"), threads=2, stats=stats)
    assert all(c >= 2 for c in stats.per_order_chunks) and stats.spilled_runs > 0
    for ta, tb in zip(one, two, strict=True):
        for name in ("keys", "counts", "context", "suffix"):
            x, y = storage.in_memory(getattr(ta, name)), storage.in_memory(getattr(tb, name))
            assert x.dtype == y.dtype, name
            np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.parametrize(
    "smoothing, settings",
    [
        ("modified-kneser-ney", {}),
        ("modified-kneser-ney", {"interpolate_unigrams": False, "precision": "float64"}),
        ("modified-kneser-ney", {"train_context": "stream"}),
        ("kneser-ney", {}),
        ("kneser-ney", {"discount": 0.6}),
        ("absolute-discounting", {}),
        ("witten-bell", {}),  # does not stream: its tables are loaded back into memory
    ],
)
def test_a_model_fitted_within_a_tiny_budget_is_identical(
    zipf_stream, tmp_path, monkeypatch, smoothing, settings
):
    monkeypatch.setattr(streaming, "MIN_ROWS", 64)  # many chunks per order, cut at context boundaries
    monkeypatch.setattr(model_module, "MIN_STREAM_WORK", 64 * streaming.BYTES_PER_ROW)
    big = NgramLM(4, smoothing, memory="2G", **settings).fit(zipf_stream)
    small = NgramLM(4, smoothing, memory="16K", **settings).fit(zipf_stream, run_dir=tmp_path)
    assert small.counting_stats_.spilled_runs > 0 and big.counting_stats_.spilled_runs == 0
    assert small.counting_stats_.disk_orders == [2, 3, 4] and not big.counting_stats_.disk_orders
    assert (small.stored_ is not None) == (smoothing != "witten-bell") and big.stored_ is None
    for name in ("keys_", "log10prob_", "log10bow_"):
        for x, y in zip(getattr(big, name), getattr(small, name), strict=True):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
    assert big.discounts_ == small.discounts_
    np.testing.assert_array_equal(small.token_logprobs(zipf_stream), big.token_logprobs(zipf_stream))
    big.to_arpa(tmp_path / "big.arpa")
    small.to_arpa(tmp_path / "small.arpa")  # written from the tables on disk, a block of rows at a time
    assert (tmp_path / "big.arpa").read_bytes() == (tmp_path / "small.arpa").read_bytes()
    assert not any((tmp_path / "ngram-spill").iterdir())  # temporary files are anonymous: nothing left


def test_disk_arrays_append_read_and_map(tmp_path):
    values = np.arange(10_000, dtype=np.int64) * 3
    disk = storage.DiskArray(np.int64, tmp_path)
    for a in range(0, len(values), 777):
        disk.append(values[a : a + 777])
    assert len(disk) == len(values) and disk.nbytes == values.nbytes
    np.testing.assert_array_equal(disk.read(), values)
    np.testing.assert_array_equal(disk.read(123, 4567), values[123:4567])
    np.testing.assert_array_equal(storage.rows(disk, 9_990, 20_000), values[9_990:])
    np.testing.assert_array_equal(disk.map(), values)
    assert not list(tmp_path.iterdir())  # unlinked as soon as created
    assert len(storage.DiskArray(np.float32).map()) == 0


@pytest.mark.parametrize(
    "value, expected",
    [
        ("4G", 4 << 30),
        ("512M", 512 << 20),
        ("64K", 64 << 10),
        ("1.5G", int(1.5 * 2**30)),
        (1000, 1000),
        ("2GB", 2 << 30),
    ],
)
def test_memory_sizes_parse_like_kenlm(value, expected):
    assert parse_memory(value) == expected


@pytest.mark.parametrize("value", ["lots", "-1G", "0", "4X", True, 0])
def test_bad_memory_sizes_are_config_errors(value):
    with pytest.raises(ConfigError, match="memory"):
        NgramLM(3, memory=value)


def test_percent_and_default_memory_are_shares_of_the_machine():
    assert 0 < parse_memory("10%") < parse_memory(None) < parse_memory("100%")


def test_memory_is_parsed_once_and_counting_gets_its_bytes(zipf_stream, monkeypatch):
    calls = []

    def parse_once(value):
        calls.append(value)
        return parse_memory(value)

    def refuse(value):
        raise AssertionError(f"memory parsed again: {value!r}")

    monkeypatch.setattr(model_module, "parse_memory", parse_once)
    monkeypatch.setattr(counting, "parse_memory", refuse)
    model = NgramLM(3, memory="64M").fit(zipf_stream)
    assert calls == ["64M"]  # in the constructor only: fit and counting use the bytes
    assert model.counting_stats_.budget == 64 << 20
    assert model.get_params()["memory"] == "64M"  # the setting stays as written


# ------------------------------------------------------------------------------------- compact model
def test_fitted_model_is_compact_and_saves_exactly(tiny_train, tiny_test, tmp_path):
    model = NgramLM(4, "modified-kneser-ney").fit(tiny_train)
    assert all(lp.dtype == np.float32 for lp in model.log10prob_)
    assert all(lb.dtype == np.float32 for lb in model.log10bow_)
    assert len(model.log10bow_[-1]) == 0  # the top order has no back-offs
    assert model.bytes_per_ngram() <= 16
    model.save(tmp_path / "m.bin")
    back = NgramLM.load(tmp_path / "m.bin")
    np.testing.assert_array_equal(back.token_logprobs(tiny_test), model.token_logprobs(tiny_test))
    assert back.config() == model.config()


@pytest.mark.parametrize("content", [b"", b"not a zip file", b"PK\x03\x04garbage"])
def test_loading_a_broken_model_file_is_a_data_error(tmp_path, content):
    path = tmp_path / "m.bin"
    path.write_bytes(content)
    with pytest.raises(DataError, match="m.bin"):
        NgramLM.load(path)


# ------------------------------------------------------------------------------------- streaming encoding
def test_streaming_tokenization_matches_token_lists():
    corpus = Corpus.from_texts("tiny", "\n".join(TINY_TRAIN), "\n".join(TINY_TEST), "a <unk> cat\n\n")
    for min_count in (1, 2):
        data = tokenize_corpus(corpus, get_tokenizer("whitespace"), min_count=min_count)
        vocab = Vocabulary.build([line.split() for line in TINY_TRAIN], min_count=min_count)
        assert data.vocab.tokens == vocab.tokens
        for split, lines in (("train", TINY_TRAIN), ("valid", TINY_TEST), ("test", ["a <unk> cat", ""])):
            expected = TokenStream.from_lines([line.split() for line in lines], vocab)
            got = data.split(split)
            np.testing.assert_array_equal(got.ids, expected.ids)
            assert got.ids.dtype == np.int32
            np.testing.assert_array_equal(got.offsets, expected.offsets)
            assert got.oov == expected.oov  # a literal <unk> counts as OOV, as in KenLM
        if min_count == 1:
            assert data.test.oov == 1 and data.valid.oov == 1  # the literal <unk>; "zebra"


def test_encode_lines_counts_characters_and_empty_lines():
    text = encode_lines(["a b", "", "b  c "])
    assert text.num_chars == 3 + 1 + 0 + 1 + 5 + 1
    np.testing.assert_array_equal(text.offsets, [0, 2, 2, 4])
    assert [text.types[i] for i in text.ids] == ["a", "b", "b", "c"]


# ------------------------------------------------------------------------------------- ARPA writing
def _reference_number(x: float) -> str:
    """ARPA number text by the writer's rule, worked out in Python integers: |x| x 1e7 (the float64 product)
    rounded half to even, 7 decimals less trailing zeros, '-' only when the rounded value is not 0; ``%.7g``
    from 999.5 up and for inf and nan. (Not ``%.7f``: that rounds the exact binary value, so -1.5e-07 would
    be -0.0000001 where the product 1.5 rounds to -0.0000002.)"""
    if not abs(x) < 999.5:
        return f"{x:.7g}"
    scaled = round(abs(x) * 1e7)
    text = f"{scaled // 10**7}.{scaled % 10**7:07d}".rstrip("0").rstrip(".")
    return "-" + text if x < 0 and scaled > 0 else text


def _reference_arpa(tokens: list[str], keys: list, logprob: list, logbow: list) -> bytes:
    """The ARPA text of back-off tables written line by line in Python: each n-gram's words recovered by
    walking its key down the orders, n-grams with a non-finite log-probability left out above order 1."""
    V, n = len(tokens), len(keys)
    header, sections = ["", "\\data\\"], []
    for m in range(1, n + 1):
        lines = []
        for row, key in enumerate(np.asarray(keys[m - 1]).tolist()):
            lp = float(logprob[m - 1][row])
            if m > 1 and not np.isfinite(lp):
                continue
            words = [key % V]
            for j in range(m - 2, -1, -1):
                key = int(keys[j][key // V])
                words.insert(0, key % V)
            fields = [_reference_number(lp if np.isfinite(lp) else -99.0), " ".join(tokens[w] for w in words)]
            if m < n:
                fields.append(_reference_number(float(logbow[m - 1][row])))
            lines.append("\t".join(fields) + "\n")
        header.append(f"ngram {m}={len(lines)}")
        sections.append(f"\n\\{m}-grams:\n" + "".join(lines))
    return ("\n".join(header) + "\n" + "".join(sections) + "\n\\end\\\n").encode()


def _arpa_bytes(tokens: list[str], keys: list, logprob: list, logbow: list) -> bytes:
    return b"".join(bytes(chunk) for chunk in arpa.arpa_text(tokens, keys, logprob, logbow))


EDGE_NUMBERS = [  # (value, its ARPA text); rounding edges: |x| x 1e7 = 0.5, 1.5, 2.5 round half to even
    (0.0, "0"), (-0.0, "0"), (-99.0, "-99"), (-1.5, "-1.5"), (-0.1234567, "-0.1234567"), (1.25, "1.25"),
    (-123.4567891, "-123.4567891"), (-4e-9, "0"), (-1e-8, "0"), (-0.00000004, "0"), (-0.00000005, "0"),
    (-0.00000015, "-0.0000002"), (-0.00000025, "-0.0000002"), (-0.00000035, "-0.0000004"),
    (-0.12345675, "-0.1234568"), (-10.0, "-10"), (-100.0000001, "-100.0000001"), (-999.49999999, "-999.5"),
    (-999.5, "-999.5"), (999.5, "999.5"), (-1000.0, "-1000"), (2e4, "20000"), (12345678.0, "1.234568e+07"),
    (-np.inf, "-inf"), (np.inf, "inf"), (np.nan, "nan"),
]  # fmt: skip


def test_numbers_are_written_to_seven_decimals_rounding_half_to_even():
    values = np.array([x for x, _ in EDGE_NUMBERS])
    expected = [text for _, text in EDGE_NUMBERS]
    assert [_reference_number(x) for x in values] == expected  # the reference agrees with the texts above
    tokens = [f"w{i}" for i in range(len(values))]
    keys = [np.arange(len(values)), np.zeros(0, np.int64)]
    text = _arpa_bytes(tokens, keys, [values, np.zeros(0)], [values, np.zeros(0)]).decode()
    lines = text.split("\\1-grams:\n")[1].split("\n\n")[0].split("\n")
    assert [line.split("\t")[2] for line in lines] == expected  # back-offs
    never = ["-99" if not np.isfinite(x) else t for x, t in zip(values, expected, strict=True)]
    assert [line.split("\t")[0] for line in lines] == never  # a 1-gram's non-finite log-probability: -99
    rng = np.random.default_rng(0)
    for values in (  # log10-like values, exact rounding halves, anything below 1000, float32 values
        -rng.exponential(2.0, 20_000),
        -(rng.integers(0, 10**10, 20_000) + 0.5) / 1e7,
        rng.uniform(-999.6, 999.6, 20_000),
        -rng.exponential(2.0, 20_000).astype(np.float32),
    ):
        tokens = [f"w{i}" for i in range(len(values))]
        keys = [np.arange(len(values)), np.zeros(0, np.int64)]
        text = _arpa_bytes(tokens, keys, [values, np.zeros(0)], [-values, np.zeros(0)]).decode()
        lines = text.split("\\1-grams:\n")[1].split("\n\n")[0].split("\n")
        assert [line.split("\t")[0] for line in lines] == [_reference_number(float(x)) for x in values]
        assert [line.split("\t")[2] for line in lines] == [_reference_number(float(-x)) for x in values]


def _random_tables(rng: np.random.Generator, sizes: list[int], drop_top: bool = False) -> tuple:
    """Back-off tables (tokens, keys, log10 probs, back-offs) of about ``sizes[m-1]`` random m-grams over
    multi-byte UTF-8 words of 1 to 48 bytes, with values at rounding edges, non-finite log-probabilities
    (left out above order 1; all of the top order's with ``drop_top``) and values written as ``%.7g``."""
    pieces = ["a", "é", "日", "𝄞", "x", "\\"]
    tokens: list[str] = []
    while len(tokens) < sizes[0]:
        word = "".join(rng.choice(pieces, size=int(rng.integers(1, 13))))
        if word not in tokens:
            tokens.append(word)
    V = len(tokens)
    keys = [np.arange(V, dtype=np.int64)]
    for size in sizes[1:]:
        contexts = rng.integers(0, max(len(keys[-1]), 1), size)
        keys.append(np.unique(contexts * V + rng.integers(0, V, size))[: size if len(keys[-1]) else 0])

    def values(count: int) -> np.ndarray:
        x = -rng.exponential(2.0, count)
        edge = rng.random(count) < 0.2
        x[edge] = -(rng.integers(0, 10**8, int(edge.sum())) + 0.5) / 1e7
        rare = rng.random(count) < 0.02
        x[rare] = rng.choice([-np.inf, np.nan, -1234.5, 2e6, 0.0, -0.0], int(rare.sum()))
        return x

    logprob = [values(len(k)) for k in keys]
    if drop_top:
        logprob[-1][:] = -np.inf
    logbow = [values(len(k)) for k in keys[:-1]] + [np.zeros(0)]
    return tokens, keys, logprob, logbow


@pytest.mark.parametrize("stored", ["memory", "disk"])
@pytest.mark.parametrize(
    "sizes, drop_top",
    [([40, 300, 500, 400], False), ([30, 200, 0], False), ([30, 200, 100], True), ([1, 1], False)],
    ids=["order-4", "empty-top-order", "top-order-all-dropped", "one-word"],
)
def test_arpa_text_matches_a_line_by_line_writer(tmp_path, monkeypatch, stored, sizes, drop_top):
    rng = np.random.default_rng(sum(sizes) + drop_top)
    tokens, keys, logprob, logbow = _random_tables(rng, sizes, drop_top)
    expected = _reference_arpa(tokens, keys, logprob, logbow)
    assert (f"ngram {len(sizes)}=0" in expected.decode()) == (sizes[-1] == 0 or drop_top)
    if stored == "disk":  # tables streamed to disk are read a block of rows at a time
        keys, logprob, logbow = (
            [storage.DiskArray.from_array(a, tmp_path) for a in arrays] for arrays in (keys, logprob, logbow)
        )
    for block in (7, 1 << 16):  # blocks whose contexts span rows of the order below, and a single block
        monkeypatch.setattr(arpa, "LINES_PER_BLOCK", block)
        assert _arpa_bytes(tokens, keys, logprob, logbow) == expected


def test_an_error_while_formatting_reaches_the_caller_and_leaves_no_file(tiny_train, tmp_path, monkeypatch):
    model = NgramLM(3).fit(tiny_train)
    format_block, calls = arpa._format_block, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 5:
            raise MemoryError("block 5")
        return format_block(*args)

    monkeypatch.setattr(arpa, "LINES_PER_BLOCK", 4)  # blocks formatted on threads, several ahead
    monkeypatch.setattr(arpa, "_format_block", failing)
    with pytest.raises(MemoryError, match="block 5"):
        model.to_arpa(tmp_path / "m.arpa")
    assert not list(tmp_path.iterdir())
    monkeypatch.setattr(arpa, "_format_block", format_block)
    chunks = arpa.arpa_chunks(model)
    first = [bytes(next(chunks)) for _ in range(4)]  # a caller that stops early: the threads are let go
    chunks.close()
    model.to_arpa(tmp_path / "m.arpa")
    assert (tmp_path / "m.arpa").read_bytes().startswith(b"".join(first))


def test_arpa_files_get_the_mode_of_any_new_file(tiny_train, tmp_path):
    model = NgramLM(3).fit(tiny_train)
    old = os.umask(0o022)
    try:
        for name in ("m.arpa", "m.arpa.gz"):
            model.to_arpa(tmp_path / name)
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    finally:
        os.umask(old)
    assert gzip.decompress((tmp_path / "m.arpa.gz").read_bytes()) == (tmp_path / "m.arpa").read_bytes()


def test_gzip_arpa_files_are_the_same_bytes_each_time(tiny_train, tmp_path):
    model = NgramLM(3).fit(tiny_train)
    model.to_arpa(tmp_path / "a.arpa.gz")
    model.to_arpa(tmp_path / "b.arpa.gz")
    model.to_arpa(tmp_path / "b.arpa.gz")  # over an existing file
    a, b = (tmp_path / "a.arpa.gz").read_bytes(), (tmp_path / "b.arpa.gz").read_bytes()
    assert (
        a[3] & 0x08 and a[10:].split(b"\0")[0] == b"a.arpa"
    )  # the header names the file, not a temporary one
    assert a.replace(b"a.arpa", b"b.arpa", 1) == b


# ------------------------------------------------------------------------------------- ARPA reading
GOOD = """
\\data\\
ngram 1=5
ngram 2=3

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.3
-0.7\t</s>\t0
-0.6\ta\t-0.2
-0.9\tb\t-0.1

\\2-grams:
-0.2\t<s> a
-0.4\ta b
-0.3\tb </s>

\\end\\
"""


def _arpa(tmp_path, text: str | bytes, name: str = "m.arpa"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_a_small_hand_written_arpa_reads_and_scores(tmp_path):
    model = NgramLM.from_arpa(_arpa(tmp_path, GOOD))
    assert model.vocab.tokens == ["<unk>", "<s>", "</s>", "a", "b"]
    data = TokenStream.from_lines([["a", "b"]], model.vocab)
    np.testing.assert_allclose(model.token_logprobs(data) / np.log(10), [-0.2, -0.4, -0.3], atol=1e-7)
    # SRILM style: spaces between fields and back-offs left out where zero
    srilm = GOOD.replace("\t", " ").replace("-0.7 </s> 0", "-0.7 </s>")
    np.testing.assert_array_equal(
        NgramLM.from_arpa(_arpa(tmp_path, srilm)).token_logprobs(data), model.token_logprobs(data)
    )


def _tables_of(path, vocab=None):
    tables = arpa.read_arpa(path, vocab, max_order=10)
    return tables.vocab.tokens, [list(getattr(tables, name)) for name in ("keys", "log10prob", "log10bow")]


def _assert_same_tables(a, b):
    assert a[0] == b[0]
    for x_order, y_order in zip(a[1], b[1], strict=True):
        for x, y in zip(x_order, y_order, strict=True):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x.view(np.uint8), y.view(np.uint8))  # bit for bit


def _fast_path_reads(path) -> bool:
    data = arpa._read_bytes(path)
    declared, sections = arpa._sections(path, data)
    return arpa._read_fast(path, data, sections, declared, max(declared)) is not None


@pytest.fixture(scope="module")
def unicode_arpa_text(tmp_path_factory) -> str:
    """An order-4 modified-KN ARPA written by lmbench, with non-ASCII words, quotes, a comma, a backslash."""
    lines = _zipf_lines(np.random.default_rng(3), 300, vocab=120)
    special = {"w1": "été", "w2": "日本", "w3": "a\\b", "w4": '"q"', "w5": "x,y"}
    lines = [[special.get(w, w) for w in line] for line in lines]
    model = NgramLM(4, "modified-kneser-ney").fit(TokenStream.from_lines(lines, Vocabulary.build(lines)))
    path = tmp_path_factory.mktemp("arpa") / "m.arpa"
    model.to_arpa(path)
    return path.read_text(encoding="utf-8")


def _double_spaces(text: str) -> str:
    return "\n".join(line.replace(" ", "  ") if line[:1] == "-" else line for line in text.split("\n"))


def _srilm_backoffs(text: str) -> str:  # zero back-offs left out, as SRILM writes them
    return "\n".join(line[: -len("\t0")] if line.endswith("\t0") else line for line in text.split("\n"))


# each variant of a well-formed file: the text, and whether pyarrow's fast reader takes it
ARPA_LAYOUTS = {
    "as written": (lambda t: t, True),
    "gzip": (lambda t: t, True),
    "spaces between fields": (lambda t: t.replace("\t", " "), True),
    "double spaces": (_double_spaces, False),
    "leading spaces": (lambda t: t.replace("\n-", "\n -"), False),
    "trailing spaces": (lambda t: t.replace("\n\n\\", " \n\n\\"), False),
    "CRLF line ends": (lambda t: t.replace("\n", "\r\n"), False),
    "missing zero back-offs": (_srilm_backoffs, False),
}


@pytest.mark.parametrize("layout", sorted(ARPA_LAYOUTS))
def test_every_arpa_layout_reads_the_same_tables_fast_or_through_pandas(
    tmp_path, monkeypatch, unicode_arpa_text, layout
):
    """Well-formed files go through pyarrow; anything unusual falls back to the pandas reader. Either way the
    tables are bit for bit those of the pandas reader on the file as lmbench wrote it."""
    change, fast = ARPA_LAYOUTS[layout]
    text = change(unicode_arpa_text)
    assert layout == "as written" or layout == "gzip" or text != unicode_arpa_text
    path = tmp_path / ("m.arpa.gz" if layout == "gzip" else "m.arpa")
    path.write_bytes(gzip.compress(text.encode()) if layout == "gzip" else text.encode())
    assert _fast_path_reads(path) is fast
    read = _tables_of(path)
    original = _arpa(tmp_path, unicode_arpa_text, "original.arpa")
    monkeypatch.setattr(arpa, "_read_fast", lambda *args: None)
    _assert_same_tables(read, _tables_of(original))
    _assert_same_tables(read, _tables_of(path))


def test_the_fast_reader_declines_what_it_cannot_vouch_for(tmp_path):
    """Each of these parses (or fails) differently in pyarrow and pandas; pyarrow's reader must hand them on."""
    for text in (
        GOOD.replace("-0.4\ta b", "nan\ta b"),  # literal NaN (pyarrow reads it as a null)
        GOOD.replace("-0.4\ta b", "-inf\ta b"),  # non-finite values
        GOOD.replace("-0.4\ta b", "0.4\ta b"),  # positive log-probability
        GOOD.replace("-0.4\ta b", "-0.4\ta c"),  # a word that is not a 1-gram
        GOOD.replace("ngram 2=3", "ngram 2=4"),  # count mismatch
        GOOD.replace("ngram 1=5", "ngram 1=6").replace("-0.9\tb\t-0.1\n", "-0.9\tb\t-0.1\n-0.8\tb\t0\n"),
        GOOD.replace("-0.9\tb\t-0.1", "-0.9\tb\t-0.1\t-0.2"),  # too many fields
        GOOD.replace("-0.9\tb\t-0.1", "-0.9\t\t-0.1").replace("-0.4\ta b", "-0.4\ta "),  # empty word
    ):
        path = _arpa(tmp_path, text)
        assert not _fast_path_reads(path), text


def test_kenlm_reference_arpa_reads_the_same_fast_or_through_pandas(monkeypatch):
    root = require_shared("reference", "kenlm")
    path = root / "wt2-8k.o3.arpa.gz"
    assert _fast_path_reads(path)
    fast = _tables_of(path)
    monkeypatch.setattr(arpa, "_read_fast", lambda *args: None)
    _assert_same_tables(fast, _tables_of(path))


BAD_ARPA = {
    "binary": (b"\x00\x01\x02\xff" * 100, "not an ARPA file"),
    "latin-1": (
        GOOD.replace("-0.9\tb", "-0.9\tb\xe9").replace("a b\n", "a b\xe9\n").encode("latin-1"),
        ":11: invalid UTF-8",
    ),
    "non-numeric probability": (
        GOOD.replace("-0.4\ta b", "abc\ta b"),
        ":15: log10 probability of a 2-gram is not a number",
    ),
    "non-numeric back-off": (
        GOOD.replace("-0.6\ta\t-0.2", "-0.6\ta\tx"),
        ":10: back-off weight of a 1-gram is not a number",
    ),
    "no 1-grams": (GOOD.split("\\1-grams:")[0] + "\\end\\\n", "no \\1-grams: section"),
    "order above the maximum": (
        GOOD.replace("ngram 2=3", "ngram 2=3\n" + "".join(f"ngram {m}=1\n" for m in range(3, 12))),
        "order 11",
    ),
    "NaN probability": (GOOD.replace("-0.4\ta b", "nan\ta b"), ":15: log10 probability nan of a 2-gram"),
    "positive probability": (
        GOOD.replace("-0.4\ta b", "0.4\ta b"),
        ":15: log10 probability 0.4 of a 2-gram is not a number <= 0",
    ),
    "NaN back-off": (
        GOOD.replace("-0.6\ta\t-0.2", "-0.6\ta\tnan"),
        ":10: back-off weight of a 1-gram is NaN",
    ),
    "duplicate 1-gram": (
        GOOD.replace("ngram 1=5", "ngram 1=6").replace("-0.9\tb\t-0.1\n", "-0.9\tb\t-0.1\n-0.8\tb\t0\n"),
        ":12: duplicate 1-gram 'b'",
    ),
    "duplicate 2-gram": (
        GOOD.replace("ngram 2=3", "ngram 2=4").replace("-0.4\ta b\n", "-0.4\ta b\n-0.5\ta b\n"),
        ":16: duplicate 2-gram (first listed at",
    ),
    "missing <unk>": (
        GOOD.replace("ngram 1=5", "ngram 1=4").replace("-1.0\t<unk>\t0\n", ""),
        "no <unk> among the 1-grams",
    ),
    "missing </s>": (
        GOOD.replace("ngram 1=5", "ngram 1=4")
        .replace("-0.7\t</s>\t0\n", "")
        .replace("-0.3\tb </s>", "-0.3\tb a"),
        "no </s> among the 1-grams",
    ),
    "count mismatch": (GOOD.replace("ngram 2=3", "ngram 2=4"), "declares 4 2-grams but the file has 3"),
    "word not in the 1-grams": (
        GOOD.replace("-0.4\ta b", "-0.4\ta c"),
        ":15: word 'c' of a 2-gram is not listed",
    ),
    "too few fields": (GOOD.replace("-0.4\ta b", "-0.4\ta"), ":15: malformed 2-gram line"),
    "bad header": (GOOD.replace("ngram 2=3", "ngram two=3"), ":4: expected 'ngram N=COUNT'"),
    "missing context": (
        GOOD.replace("ngram 2=3", "ngram 2=3\nngram 3=1").replace(
            "\\end\\", "\\3-grams:\n-0.1\tb a b\n\n\\end\\"
        ),
        "context of this 3-gram is not listed",
    ),
    "no \\end\\": (GOOD.replace("\\end\\\n", ""), "no \\end\\ line"),
    "truncated inside a section": (GOOD[: GOOD.index("-0.3\tb </s>")], "no \\end\\ line"),
    "-inf probability": (
        GOOD.replace("-0.4\ta b", "-inf\ta b"),
        ":15: log10 probability -inf of a 2-gram is not a finite number (write -99",
    ),
    "-inf 1-gram probability": (
        GOOD.replace("-1.0\t<unk>", "-inf\t<unk>"),
        ":7: log10 probability -inf of a 1-gram is not a finite number",
    ),
    "+inf probability": (GOOD.replace("-0.4\ta b", "inf\ta b"), ":15: log10 probability inf of a 2-gram"),
    "+inf back-off": (GOOD.replace("-0.6\ta\t-0.2", "-0.6\ta\tinf"), ":10: back-off weight inf of a 1-gram"),
    "1-gram mass above one": (
        GOOD.replace("-0.6\ta\t-0.2", "-0.01\ta\t-0.2"),
        ":7: the 1-gram probabilities sum to 1.4",
    ),
    "header count given twice": (
        GOOD.replace("ngram 2=3", "ngram 2=3\nngram 2=4"),
        ":5: a second 'ngram 2=' count",
    ),
    "header count below the section's": (
        GOOD.replace("ngram 2=3", "ngram 2=2"),
        "declares 2 2-grams but the file has 3",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ARPA))
def test_bad_arpa_files_are_one_line_data_errors_naming_file_and_line(tmp_path, case):
    content, message = BAD_ARPA[case]
    path = _arpa(tmp_path, content, "bad.arpa")
    with pytest.raises(DataError) as err:
        NgramLM.from_arpa(path)
    text = str(err.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"\x1f\x8b\x08\x00garbage"), "corrupt or truncated gzip"),
        (lambda p: p.write_bytes(gzip.compress(GOOD.encode())[:60]), "corrupt or truncated gzip"),
        (lambda p: p.mkdir(), "is a directory"),
    ],
)
def test_broken_gzip_and_directories_are_data_errors(tmp_path, make, message):
    path = tmp_path / "m.arpa.gz"
    make(path)
    with pytest.raises(DataError, match=message) as err:
        NgramLM.from_arpa(path)
    assert str(path) in str(err.value)


def test_words_outside_a_given_vocabulary_are_dropped_with_their_ngrams(tmp_path):
    vocab = Vocabulary(["<unk>", "<s>", "</s>", "a"])
    model = NgramLM.from_arpa(_arpa(tmp_path, GOOD), vocab)
    assert model.ngrams_per_order() == [4, 1]  # "<s> a" stays; "a b" and "b </s>" go


# ------------------------------------------------------------------------------------- lmbench ngram
def test_ngram_command_writes_the_arpa_of_the_python_api(tmp_path):
    text = tmp_path / "train.txt"
    text.write_text("\n".join(TINY_TRAIN) + "\n")
    result = CliRunner().invoke(
        main, ["ngram", str(text), "--order", "3", "--arpa", str(tmp_path / "cli.arpa")]
    )
    assert result.exit_code == 0, result.output
    assert "order 3:" in result.output and "D1=" in result.output
    model = NgramLM(3).fit(encode_stream(TINY_TRAIN))
    model.to_arpa(tmp_path / "api.arpa")
    assert (tmp_path / "cli.arpa").read_bytes() == (tmp_path / "api.arpa").read_bytes()
    # a budget too small for the tables: they go to disk under --temp-dir, and the ARPA file is the same
    lines = [" ".join(line) for line in _zipf_lines(np.random.default_rng(3), 600)]
    text.write_text("\n".join(lines) + "\n")
    NgramLM(3).fit(encode_stream(lines)).to_arpa(tmp_path / "api.arpa")
    small = CliRunner().invoke(
        main,
        ["ngram", str(text), "-o", "3", "-S", "16K", "--temp-dir", str(tmp_path / "tmp"),
         "--arpa", str(tmp_path / "small.arpa.gz")],
    )  # fmt: skip
    assert small.exit_code == 0 and "counting spilled" in small.output, small.output
    assert gzip.decompress((tmp_path / "small.arpa.gz").read_bytes()) == (tmp_path / "api.arpa").read_bytes()
    assert not any((tmp_path / "tmp").rglob("*.*"))
    # stdin in, ARPA on stdout
    piped = CliRunner().invoke(
        main, ["ngram", "-", "-o", "3", "--smoothing", "witten-bell"], input=text.read_text()
    )
    assert piped.exit_code == 0
    assert piped.stdout.startswith("\n\\data\\\nngram 1=")


def test_ngram_to_a_pipe_closed_early_stops_quietly(tmp_path):
    """``lmbench ngram TEXT | head``: the reader goes away; lmbench stops like a tool killed by SIGPIPE (141),
    without an error message."""
    import subprocess
    import sys

    text = tmp_path / "train.txt"
    text.write_text("\n".join(" ".join(line) for line in _zipf_lines(np.random.default_rng(5), 3000)) + "\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lmbench.cli", "ngram", str(text), "-o", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.read(20).startswith(b"\n\\data\\\n")
    proc.stdout.close()  # as head does after its lines
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Error" not in err and "unexpected" not in err, err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--memory", "lots"], "memory"),
        (["--order", "0"], "order"),
    ],
)
def test_ngram_command_rejects_bad_options(tmp_path, args, message):
    text = tmp_path / "train.txt"
    text.write_text("a b c\n")
    result = CliRunner().invoke(main, ["ngram", str(text), *args])
    assert result.exit_code == 2 and message in result.output


def test_ngram_command_names_bad_input(tmp_path):
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    for path, message in (
        (latin, "latin.txt:1: invalid UTF-8"),
        (empty, "no words"),
        (tmp_path / "nope.txt", "not found"),
    ):
        result = CliRunner().invoke(main, ["ngram", str(path)])
        assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.parametrize("smoothing", ["modified-kneser-ney", "witten-bell", "katz", "add-k"])
def test_float32_rows_sum_to_one_within_float32_precision(tiny_train, smoothing):
    model = NgramLM(3, smoothing).fit(tiny_train)
    exact = NgramLM(3, smoothing, precision="float64").fit(tiny_train)
    contexts = [[1], [1, 3, 4], [0], [5, 2, 1]]
    logp = model.next_token_logprobs(contexts)
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(logp, exact.next_token_logprobs(contexts), rtol=1e-6)
    assert exact.bytes_per_ngram() > model.bytes_per_ngram()


# ------------------------------------------------------------------------------------- WikiText-103 card
def test_wikitext103_card_names_the_published_archive():
    from lmbench.data.cards import load_card

    card = load_card("wikitext-103")
    assert card.archive["file"] == "wikitext-103-v1.zip" and card.archive["bytes"] == 190229076
    assert len(card.archive["sha256"]) == 64 and len(card.archive["md5"]) == 32
    assert {s["member"] for s in card.splits.values()} == {
        f"wikitext-103/wiki.{x}.tokens" for x in ("train", "valid", "test")
    }


def _archive_card(tmp_path, lines: dict[str, int]):
    import dataclasses
    import hashlib
    import zipfile

    from lmbench.data.cards import load_card

    archive = tmp_path / "wikitext-103-v1.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for split in ("train", "valid", "test"):
            zf.writestr(f"wikitext-103/wiki.{split}.tokens", "a b c\n" * 3)
    data = archive.read_bytes()
    card = load_card("wikitext-103")
    archive_info = dict(
        card.archive,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data).hexdigest(),
    )
    splits = {k: dict(v, lines=lines.get(k, 3)) for k, v in card.splits.items()}
    return dataclasses.replace(card, archive=archive_info, splits=splits), archive


def test_a_fetched_archive_is_verified_and_extracted(tmp_path):
    from lmbench.data.cards import _fetch_archive

    card, archive = _archive_card(tmp_path, {})
    folder = tmp_path / "data" / "wikitext-103"
    folder.mkdir(parents=True)
    archive.rename(folder / archive.name)  # put there by hand: no download needed
    _fetch_archive(card, folder, timeout=1)
    assert (folder / "train.txt").read_text() == "a b c\n" * 3
    # a corrupted archive is refused
    (folder / archive.name).write_bytes(b"PK" + b"\0" * 100)
    with pytest.raises(DataError, match="card says"):
        _fetch_archive(card, folder, timeout=1)


def test_an_archive_with_other_line_counts_is_refused(tmp_path):
    from lmbench.data.cards import extract_splits

    card, archive = _archive_card(tmp_path, {"valid": 99})
    with pytest.raises(DataError, match="wiki.valid.tokens has 3 lines, the card says 99"):
        extract_splits(card, archive, tmp_path)
