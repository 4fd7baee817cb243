"""Reading and encoding text: the compiled whitespace splitter against the Python path it replaces.

The reference here is what lmbench did before the kernel: a binary file iterated line by line (lines end at
``\\n`` only), each line decoded as UTF-8 and split with ``str.split()``, types numbered in first-seen order.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmbench.data.corpus import encode_stream
from lmbench.data.encoding import encode_lines, read_lines
from lmbench.data.split_kernel import TypeTable, utf8_counts
from lmbench.data.tokenizers import RegexpTokenizer
from lmbench.data.vocabulary import SPECIALS, Vocabulary
from lmbench.errors import DataError

UNICODE_SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace()]


def reference_lines(data: bytes, name: str = "<stdin>") -> list[str]:
    """Lines of ``data`` as iterating a binary file gives them, decoded one by one (the old reader)."""
    lines = []
    for number, raw in enumerate(io.BytesIO(data), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(
                f"{name}:{number}: invalid UTF-8 at byte {e.start} of the line (expected UTF-8 text)"
            ) from None
        lines.append(line[:-1] if line.endswith("\n") else line)
    return lines


def reference_encoding(lines: list[str]) -> tuple[list[int], list[int], list[str], int]:
    """Ids, line offsets, types in first-seen order and characters, by ``str.split`` and a dict."""
    ids_of: dict[str, int] = {}
    ids, offsets = [], [0]
    for line in lines:
        ids += [ids_of.setdefault(token, len(ids_of)) for token in line.split()]
        offsets.append(len(ids))
    return ids, offsets, list(ids_of), sum(len(line) + 1 for line in lines)


def assert_same(text, lines: list[str]) -> None:
    ids, offsets, types, num_chars = reference_encoding(lines)
    assert text.types == types
    assert text.ids.dtype == np.int32 and text.ids.tolist() == ids
    assert text.offsets.tolist() == offsets
    assert text.num_chars == num_chars
    assert text.type_counts.tolist() == np.bincount(ids, minlength=len(types)).tolist()


# text made of the characters where splitting can go wrong: every Unicode space, \r, multi-byte letters
# (2, 3 and 4 bytes), NUL, bytes that share a lead byte with a space (U+00A1, U+2010, U+3001, U+1681)
PIECES = [
    *UNICODE_SPACES,
    "a",
    "b",
    "ab",
    "é",
    "日本",
    "\U0001f600",
    "\x00",
    "\xa1",
    "\u2010",
    "\u3001",
    "\u1681",
]
texts = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=texts, block_bytes=st.integers(1, 24))
def test_file_blocks_encode_as_str_split(text, block_bytes):
    data = text.encode("utf-8")
    lines = reference_lines(data)
    assert_same(encode_lines(read_lines(io.BytesIO(data), block_bytes=block_bytes)), lines)
    assert list(read_lines(io.BytesIO(data), block_bytes=block_bytes)) == lines  # the Python path's lines


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(texts, max_size=8))
def test_lines_given_as_strings_encode_as_str_split(lines):
    assert_same(encode_lines(lines), lines)  # lines may hold "\n" too: whitespace inside a line


def test_every_whitespace_character_splits_and_no_other_does():
    # every code point but the surrogates, each between two letters: one long line and one file
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    line = "".join("x" + c for c in chars)
    assert_same(encode_lines([line]), [line])
    data = line.encode("utf-8")
    assert_same(encode_lines(read_lines(io.BytesIO(data))), reference_lines(data))


def test_crlf_empty_and_whitespace_only_lines_and_no_final_newline():
    data = "a b\r\n\r\n\n \t\u3000\n\u2028\nb\u00a0c\x85d\r\ne".encode()
    lines = reference_lines(data)
    assert lines == ["a b\r", "\r", "", " \t\u3000", "\u2028", "b\u00a0c\x85d\r", "e"]
    for block_bytes in (1, 3, 1 << 20):
        text = encode_lines(read_lines(io.BytesIO(data), block_bytes=block_bytes))
        assert_same(text, lines)
    assert [text.types[i] for i in text.ids] == ["a", "b", "b", "c", "d", "e"]
    assert encode_lines(read_lines(io.BytesIO(b""))).offsets.tolist() == [0]


def test_long_tokens_across_many_blocks(tmp_path):
    long = "é" * 5000 + "z"
    lines = [long, f"x {long} y {long}x", "", long]
    path = tmp_path / "long.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_same(encode_lines(read_lines(path, block_bytes=7)), lines)
    assert_same(encode_lines(lines), lines)


@pytest.mark.parametrize(
    "bad", [b"\xff", b"\xe2\x82", b"\xe2\x82\n", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\x80"]
)
@pytest.mark.parametrize("block_bytes", [1, 5, 1 << 20])
def test_invalid_utf8_names_the_line_and_byte(tmp_path, bad, block_bytes):
    data = "ok line\nnext é\n".encode() * 3 + b"bad " + bad + b" here\nlater\n"
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    with pytest.raises(DataError) as expected:
        reference_lines(data, str(path))
    assert "bad.txt:7: invalid UTF-8 at byte 4 of the line" in str(expected.value)
    with pytest.raises(DataError) as got:
        encode_lines(read_lines(path, block_bytes=block_bytes))
    assert str(got.value) == str(expected.value)
    with pytest.raises(DataError) as got:
        list(read_lines(path, block_bytes=block_bytes))  # the Python path reads the same blocks
    assert str(got.value) == str(expected.value)


@settings(max_examples=200, deadline=None)
@given(
    text=texts,
    bad=st.sampled_from([b"\xff", b"\xe2\x82", b"\xed\xb0\x80", b"\xc1\xbf", b"\xf8\x88\x80\x80\x80"]),
    at=st.integers(0, 10**6),
    block_bytes=st.integers(1, 24),
)
def test_invalid_utf8_anywhere_gives_the_old_message(text, bad, at, block_bytes):
    data = text.encode("utf-8")
    cut = at % (len(data) + 1)
    while cut < len(data) and data[cut] & 0xC0 == 0x80:
        cut -= 1  # not inside a character
    data = data[:cut] + bad + data[cut:]
    with pytest.raises(DataError) as expected:
        reference_lines(data, "f.txt")
    with pytest.raises(DataError) as got:
        encode_lines(read_lines(io.BytesIO(data), name="f.txt", block_bytes=block_bytes))
    assert str(got.value) == str(expected.value)


def python_utf8_counts(block: bytes) -> tuple[int, int] | None:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return len(text), text.count("\n")


def test_utf8_check_agrees_with_python_on_every_lead_and_second_byte():
    for lead in range(256):
        for second in range(256):
            for rest in (b"", b"\x80", b"\xbf\xbf", b"\x80\x80\x80", b"a", b"\x80a\n"):
                block = bytes([lead, second]) + rest
                assert utf8_counts(block) == python_utf8_counts(block), block


EDGE_BYTES = [0x00, 0x0A, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1]
EDGE_BYTES += [0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]


@settings(max_examples=1000, deadline=None)
@given(block=st.one_of(st.binary(max_size=30), st.lists(st.sampled_from(EDGE_BYTES), max_size=12).map(bytes)))
def test_utf8_check_agrees_with_python(block):
    assert utf8_counts(block) == python_utf8_counts(block)


def test_stdin(monkeypatch):
    data = "a b\nc\u3000a\n".encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert_same(encode_lines(read_lines("-")), reference_lines(data))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_lines(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="is a directory"):
        read_lines(tmp_path)


def test_lone_surrogates_in_strings_stay_in_their_tokens():
    lines = ["a\ud800b c\udfff", "\ud800"]
    assert_same(encode_lines(lines), lines)


def test_type_table_grows_from_tiny_and_keeps_ids():
    words = [f"w{i % 5000}é{i // 7}" for i in range(20000)]
    lines = [" ".join(words[i : i + 13]) for i in range(0, len(words), 13)]
    table = TypeTable(capacity=1)
    ids, per_line = table.split(("\n".join(lines) + "\n").encode())
    ref_ids, offsets, types, _ = reference_encoding(lines)
    assert ids.tolist() == ref_ids and table.types() == types
    assert np.concatenate([[0], np.cumsum(per_line)]).tolist() == offsets


def test_other_tokenizers_keep_the_python_path(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("Hello, world!\r\nit's\u00a0fine\n", encoding="utf-8")
    text = encode_lines(read_lines(path), RegexpTokenizer())
    assert [text.types[i] for i in text.ids] == ["Hello", ",", "world", "!", "it", "'", "s", "fine"]
    assert text.offsets.tolist() == [0, 4, 8] and text.num_chars == len("Hello, world!\r\nit's\u00a0fine\n")


# ------------------------------------------------------------------------------------- vocabulary
def reference_vocabulary(counts: dict[str, int], min_count: int, max_size: int | None) -> list[str]:
    """The vocabulary order before vectorising: a Python sort by (-count, word)."""
    words = [w for w, c in counts.items() if c >= min_count and w not in SPECIALS]
    words.sort(key=lambda w: (-counts[w], w))
    return [*SPECIALS, *(words[: max_size - len(SPECIALS)] if max_size is not None else words)]


@settings(max_examples=300, deadline=None)
@given(
    counts=st.dictionaries(
        st.one_of(st.sampled_from(SPECIALS), st.text(alphabet="ab\x00é\U0001f600\ud800", max_size=4)),
        st.integers(1, 4),
        max_size=40,
    ),
    min_count=st.integers(1, 3),
    max_size=st.one_of(st.none(), st.integers(4, 20)),
)
def test_vocabulary_order_is_count_then_alphabetical(counts, min_count, max_size):
    vocab = Vocabulary.from_counts(counts, min_count=min_count, max_size=max_size)
    assert vocab.tokens == reference_vocabulary(counts, min_count, max_size)
    assert vocab.counts == counts
    types = list(counts)
    _, ids = Vocabulary.from_types(
        types, np.array(list(counts.values())), min_count=min_count, max_size=max_size
    )
    assert ids.tolist() == [vocab.index.get(t, vocab.unk_id) for t in types]


def test_encode_stream_matches_vocabulary_from_counts_and_lookup():
    lines = ["b a <unk> c", "a <s> b", "", "c c d </s> e", "a"]
    data = encode_stream(lines, min_count=2)
    text = encode_lines(lines)
    vocab = Vocabulary.from_counts(text.counts(), min_count=2)
    ids, oov = text.to_vocabulary(vocab)
    assert data.vocab.tokens == vocab.tokens == ["<unk>", "<s>", "</s>", "a", "c", "b"]
    assert data.ids.tolist() == ids.tolist() == [5, 3, 0, 4, 3, 1, 5, 4, 4, 0, 2, 0, 3]
    assert data.oov == oov == 3  # the literal <unk>, d and e; a literal <s> or </s> keeps its id


def test_read_ahead_keeps_order_raises_in_place_and_stops_the_producer():
    from lmbench.data.encoding import _read_ahead

    assert list(_read_ahead(iter(range(100)), depth=2)) == list(range(100))

    def failing():
        yield from range(5)
        raise DataError("bad.txt:6: invalid UTF-8")

    seen = []
    with pytest.raises(DataError, match="bad.txt:6"):
        for item in _read_ahead(failing()):
            seen.append(item)
    assert seen == list(range(5))  # every item before the error arrived first

    closed = []

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(True)

    reader = _read_ahead(endless(), depth=2)
    assert [next(reader) for _ in range(3)] == [0, 1, 2]
    reader.close()  # the consumer stops early: the producer stops and closes its source
    assert closed == [True]
