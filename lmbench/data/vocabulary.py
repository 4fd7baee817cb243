"""The vocabulary shared by every model of a run: built from the training split only.

Ids 0, 1, 2 are always ``<unk>``, ``<s>`` and ``</s>``; the other words follow by descending count, ties
broken alphabetically, so the same training text always gives the same ids.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
SPECIALS = (UNK, BOS, EOS)


class Vocabulary:
    """Word <-> id mapping that keeps the raw training counts (so a cutoff can change without recounting).

    ``<unk>`` is an ordinary entry with real probability mass; a literal ``<unk>`` in the corpus (PTB,
    WikiText) *is* that entry. ``<s>`` is only ever context, never predicted.

    >>> v = Vocabulary.from_counts({"a": 3, "b": 1, "c": 1}, min_count=1)
    >>> v.tokens
    ['<unk>', '<s>', '</s>', 'a', 'b', 'c']
    >>> v.encode(["a", "z", "<unk>"]).tolist()
    [3, 0, 0]
    >>> len(Vocabulary.from_counts({"a": 3, "b": 1}, min_count=2))
    4
    """

    unk_id, bos_id, eos_id = 0, 1, 2

    def __init__(self, tokens: Sequence[str], counts: dict[str, int] | None = None):
        if tuple(tokens[:3]) != SPECIALS:
            raise ValueError(f"vocabulary must start with {SPECIALS}, got {tuple(tokens[:3])}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary tokens must be unique")
        self.tokens: list[str] = list(tokens)
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        self.counts: dict[str, int] = dict(counts or {})
        # the subword tokenizer whose whole vocabulary this is (lmbench.data.subword); None for word vocabularies
        self.tokenizer: Any = None

    @classmethod
    def from_counts(
        cls, counts: dict[str, int], *, min_count: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """Keep words seen at least ``min_count`` times, at most ``max_size`` entries in all (specials included)."""
        words = list(counts)
        type_counts = np.fromiter(counts.values(), dtype=np.int64, count=len(words))
        return cls.from_types(words, type_counts, min_count=min_count, max_size=max_size)[0]

    @classmethod
    def from_types(
        cls, types: Sequence[str], counts: np.ndarray, *, min_count: int = 1, max_size: int | None = None
    ) -> tuple[Vocabulary, np.ndarray]:
        """:meth:`from_counts` for distinct ``types`` seen ``counts`` times, and the id of each type in it
        (int32: ``<unk>`` for the words left out; a literal special keeps its own id).

        Vectorised: one C-level sort of the strings (alphabetical), then a stable sort by descending count,
        which leaves ties alphabetical: the order of sorting by ``(-count, word)``, without a Python key per
        word, and the ids come from the sort, not from a dictionary lookup per type.
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < len(SPECIALS) + 1:
            raise ValueError(f"max_size must be >= {len(SPECIALS) + 1}, got {max_size}")
        alphabetical = np.array(sorted(range(len(types)), key=types.__getitem__), dtype=np.int64)
        specials: dict[str, int] = {}  # a literal <unk>, <s> or </s> in the text: its position in types
        for special in SPECIALS:
            k = bisect.bisect_left(alphabetical, special, key=types.__getitem__)
            if k < len(alphabetical) and types[alphabetical[k]] == special:
                specials[special] = int(alphabetical[k])
        kept = alphabetical[counts[alphabetical] >= min_count]
        kept = kept[~np.isin(kept, list(specials.values()))]
        kept = kept[np.argsort(-counts[kept], kind="stable")]
        if max_size is not None:
            kept = kept[: max_size - len(SPECIALS)]
        vocab = cls(
            [*SPECIALS, *map(types.__getitem__, kept.tolist())],
            dict(zip(types, counts.tolist(), strict=True)),
        )
        ids = np.full(len(types), cls.unk_id, dtype=np.int32)
        ids[kept] = np.arange(len(SPECIALS), len(SPECIALS) + len(kept), dtype=np.int32)
        for special, position in specials.items():
            ids[position] = SPECIALS.index(special)
        return vocab, ids

    @classmethod
    def build(
        cls, lines: Iterable[Sequence[str]], *, min_count: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """Count the words of tokenized training lines and keep the frequent ones."""
        counts: Counter[str] = Counter()
        for line in lines:
            counts.update(line)
        return cls.from_counts(dict(counts), min_count=min_count, max_size=max_size)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def __hash__(self) -> int:
        return hash(tuple(self.tokens))

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)})"

    def id(self, token: str) -> int:
        """Id of ``token``, or the ``<unk>`` id for an out-of-vocabulary word."""
        return self.index.get(token, self.unk_id)

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Map words to ids (unknown words -> ``<unk>``) as an int32 array."""
        get = self.index.get
        return np.fromiter((get(t, 0) for t in tokens), dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]
