"""The n-gram language model: counts -> smoothing -> back-off tables; scoring is vectorised lookups."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from lmbench.data.corpus import TokenStream
from lmbench.data.vocabulary import Vocabulary
from lmbench.errors import ConfigError, DataError
from lmbench.io import atomic_write_bytes
from lmbench.models.base import Budget, Context, LanguageModel, check_context
from lmbench.models.ngram.counting import count_ngrams, ending_rows, lookup
from lmbench.models.ngram.smoothing import SMOOTHERS, smooth

MAX_ORDER = 10


class NgramLM(LanguageModel):
    """Word n-gram model of order 1..10 with a choice of smoothing, stored in back-off (ARPA) form.

    Args:
        order: n, the number of words an n-gram spans (context = n - 1 words).
        smoothing: one of ``mle, add-k, laplace, lidstone, katz, witten-bell, absolute-discounting,
            kneser-ney, modified-kneser-ney, stupid-backoff``.
        k: the added count for ``add-k``/``lidstone``.
        discount: fixed discount for ``absolute-discounting``/``kneser-ney`` (default: Ney's n1/(n1+2 n2)).
        backoff: the factor of ``stupid-backoff``.
        train_context: ``sentence`` counts n-grams inside each ``<s> line </s>`` (KenLM's way);
            ``stream`` counts them over the whole split as one sequence, across line ends.
        interpolate_unigrams: interpolated smoothers mix order 1 with the uniform distribution (KenLM's
            default), so unseen words keep probability; ``False`` ends in undiscounted unigram frequencies of
            the smoother's counts (continuation counts for Kneser-Ney), NLTK's way.

    Context modes: a model trained on sentences has seen no n-gram that crosses ``</s> <s>``, so in stream
    mode it backs off to exactly its sentence-start estimate and both modes give the same scores; a model
    trained with ``train_context="stream"`` uses the previous line's words in stream mode.
    """

    family: ClassVar[str] = "ngram"

    def __init__(
        self,
        order: int = 3,
        smoothing: str = "modified-kneser-ney",
        *,
        k: float = 1.0,
        discount: float | None = None,
        backoff: float = 0.4,
        train_context: str = "sentence",
        interpolate_unigrams: bool = True,
    ):
        if not isinstance(order, int) or isinstance(order, bool) or not 1 <= order <= MAX_ORDER:
            raise ConfigError(f"order: expected an integer from 1 to {MAX_ORDER}, got {order!r}")
        if smoothing not in (*SMOOTHERS, "arpa"):
            raise ConfigError(
                f"smoothing: unknown smoother {smoothing!r}; expected one of {', '.join(SMOOTHERS)}"
            )
        if not (isinstance(k, (int, float)) and k > 0):
            raise ConfigError(f"k: expected a positive number, got {k!r}")
        if discount is not None and not (isinstance(discount, (int, float)) and 0 < discount < 1):
            raise ConfigError(f"discount: expected a number in (0, 1), got {discount!r}")
        if not (isinstance(backoff, (int, float)) and 0 < backoff <= 1):
            raise ConfigError(f"backoff: expected a number in (0, 1], got {backoff!r}")
        check_context(train_context)
        if not isinstance(interpolate_unigrams, bool):
            raise ConfigError(f"interpolate_unigrams: expected true or false, got {interpolate_unigrams!r}")
        self.interpolate_unigrams = interpolate_unigrams
        self.order = order
        self.smoothing = smoothing
        self.k = k
        self.discount = discount
        self.backoff = backoff
        self.train_context = train_context

    @property
    def normalized(self) -> bool:  # type: ignore[override]
        return self.smoothing != "stupid-backoff"

    def config(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "order": self.order,
            "smoothing": self.smoothing,
            "k": self.k,
            "discount": self.discount,
            "backoff": self.backoff,
            "train_context": self.train_context,
            "interpolate_unigrams": self.interpolate_unigrams,
        }

    # ----------------------------------------------------------------------------------------- fitting
    def fit(
        self,
        train: TokenStream,
        valid: TokenStream | None = None,
        *,
        budget: Budget | None = None,
        run_dir: str | Path | None = None,
    ) -> NgramLM:
        """Count the n-grams of ``train`` and smooth them (``valid`` and ``budget`` are not needed: one pass)."""
        if self.smoothing == "arpa":
            raise ConfigError("smoothing: 'arpa' models are read with NgramLM.from_arpa, not fitted")
        vocab = train.vocab
        if self.train_context == "sentence":
            seq = train.with_markers(bos=True)
            segments = np.repeat(np.arange(train.num_lines), np.diff(train.offsets) + 2)
        else:
            seq = train.stream()
            segments = np.zeros(len(seq), dtype=np.int64)
        tables = count_ngrams(seq, segments, self.order, len(vocab), skip_first=vocab.bos_id)
        arrays, info = smooth(
            tables,
            self.smoothing,
            bos_id=vocab.bos_id,
            k=self.k,
            discount=self.discount,
            backoff=self.backoff,
            interpolate_unigrams=self.interpolate_unigrams,
        )
        with np.errstate(divide="ignore"):
            self.keys_ = [t.keys for t in tables]
            self.logprob_ = [np.log(a.prob) for a in arrays]
            self.logbow_ = [np.log(a.bow) for a in arrays]
        self.discounts_ = info.get("discounts")
        self.vocab_ = vocab
        return self

    # ----------------------------------------------------------------------------------------- scoring
    def _logprob(self, ctx_rows: list[np.ndarray], words: np.ndarray) -> np.ndarray:
        """ln p(word | context) in back-off form; ``ctx_rows[k-1]`` is the row of the k-gram context (or -1).

        log p = logprob(longest stored n-gram ending in the word) + sum of the back-off weights of every
        longer context (Katz's recursion unrolled; an unstored context has weight 1).
        """
        V = len(self.vocab)
        n = len(self.keys_)
        # suffix sums of context back-offs: tail[m] = sum_{k=m}^{n-1} bow_k(context of length k)
        bows = [
            np.where(r >= 0, self.logbow_[k][np.maximum(r, 0)], 0.0)
            if len(self.logbow_[k])
            else np.zeros(len(r))
            for k, r in enumerate(ctx_rows[: n - 1])
        ]
        tail = [np.zeros(len(words))] * (n + 1)
        for m in range(n - 1, 0, -1):
            tail[m] = tail[m + 1] + bows[m - 1]
        out = self.logprob_[0][words] + tail[1]
        for m in range(2, n + 1):
            ctx = ctx_rows[m - 2]
            ok = np.flatnonzero(ctx >= 0)
            if len(ok) == 0:
                break
            rows = lookup(self.keys_[m - 1], ctx[ok] * V + words[ok])
            hit = rows >= 0
            idx = ok[hit]
            out[idx] = self.logprob_[m - 1][rows[hit]] + tail[m][idx]
        return out

    def token_logprobs(self, data: TokenStream, *, context: Context = "sentence") -> np.ndarray:
        self._check_fitted()
        check_context(context)
        if context == "stream" and self.train_context == "stream":
            seq = data.stream()
        else:  # lines as <s> .. </s> back to back: no stored n-gram spans "</s> <s>"
            seq = data.with_markers(bos=True)
        seq = seq.astype(np.int64)
        rows = ending_rows(self.keys_tables_view(), seq, len(self.vocab))
        targets = np.flatnonzero(seq != self.vocab.bos_id)
        # The rows of the n-grams ending at each target are already known: take the longest stored one and
        # add the back-off weights of the longer contexts (rows ending one position earlier).
        out = np.zeros(len(targets))
        done = np.zeros(len(targets), dtype=bool)
        for m in range(len(self.keys_), 0, -1):
            row = rows[m - 1][targets]
            hit = (row >= 0) & ~done
            out[hit] += self.logprob_[m - 1][row[hit]]
            done |= hit
            if m > 1:  # context of length m-1 ending at t-1: its back-off applies where order m missed
                ctx = rows[m - 2][targets - 1]
                miss = ~done & (ctx >= 0)
                out[miss] += self.logbow_[m - 2][ctx[miss]]
        return out

    def next_token_logprobs(self, contexts: Sequence[Sequence[int]]) -> np.ndarray:
        self._check_fitted()
        V = len(self.vocab)
        out = np.empty((len(contexts), V), dtype=np.float64)
        words = np.arange(V, dtype=np.int64)
        for i, context in enumerate(contexts):
            ctx = np.asarray(list(context)[-(self.order - 1) :] if self.order > 1 else [], dtype=np.int64)
            if len(ctx):
                rows = ending_rows(self.keys_tables_view(), ctx, V)
                ctx_rows = [np.full(V, r[-1], dtype=np.int64) for r in rows[: self.order - 1]]
            else:
                ctx_rows = []
            ctx_rows += [np.full(V, -1, dtype=np.int64)] * (self.order - 1 - len(ctx_rows))
            out[i] = self._logprob(ctx_rows, words)
        return out

    def backoff_path(self, context: Sequence[int], word: int) -> list[BackoffStep]:
        """How ``ln p(word | context)`` is assembled in back-off form, longest order first.

        One step per order tried: an order whose n-gram is not stored adds the back-off weight of its
        context (0 where the context is not stored either) and hands on to the next shorter order; the first
        stored n-gram ends the path with its log-probability. The steps' values sum to the entry of
        :meth:`next_token_logprobs` for ``word`` (what ``lmbench explore`` shows for n-grams).
        """
        self._check_fitted()
        V = len(self.vocab)
        if not 0 <= int(word) < V:
            raise ValueError(f"word id {word} outside the vocabulary of {V} entries")
        ctx = np.asarray(list(context)[-(self.order - 1) :] if self.order > 1 else [], dtype=np.int64)
        # rows[k-1] = row of the k-word context ending the given context (or -1)
        rows = (
            [int(r[-1]) for r in ending_rows(self.keys_tables_view(), ctx, V)[: len(ctx)]] if len(ctx) else []
        )
        steps = []
        for m in range(len(ctx) + 1, 0, -1):
            ctx_row = rows[m - 2] if m > 1 else 0
            row = int(word) if m == 1 else -1
            if m > 1 and ctx_row >= 0:
                row = int(lookup(self.keys_[m - 1], np.array([ctx_row * V + int(word)]))[0])
            context_ids = tuple(int(i) for i in ctx[len(ctx) - (m - 1) :]) if m > 1 else ()
            if row >= 0:
                steps.append(BackoffStep(m, context_ids, True, float(self.logprob_[m - 1][row])))
                break
            weight = float(self.logbow_[m - 2][ctx_row]) if ctx_row >= 0 and len(self.logbow_[m - 2]) else 0.0
            steps.append(BackoffStep(m, context_ids, False, weight))
        return steps

    def keys_tables_view(self) -> list[_Keys]:
        """Light stand-ins for the counting tables: ``ending_rows`` needs only the keys."""
        return [_Keys(k) for k in self.keys_]

    # ----------------------------------------------------------------------------------------- size, I/O
    def num_parameters(self) -> int:
        self._check_fitted()
        probs = sum(int(np.isfinite(lp).sum()) for lp in self.logprob_)
        bows = sum(int((lb != 0).sum()) for lb in self.logbow_[:-1])
        return probs + bows

    def ngram_counts(self) -> list[int]:
        """Stored n-grams per order (unigrams: the whole vocabulary)."""
        return [len(k) for k in self.keys_]

    def save(self, path: str | Path) -> None:
        """One ``.npz`` file: tables in float64 (exact round trip), config and vocabulary as JSON."""
        self._check_fitted()
        arrays: dict[str, np.ndarray] = {}
        for m, (keys, lp, lb) in enumerate(
            zip(self.keys_, self.logprob_, self.logbow_, strict=True), start=1
        ):
            arrays[f"keys{m}"], arrays[f"logprob{m}"], arrays[f"logbow{m}"] = keys, lp, lb
        meta = {"config": self.config(), "vocab": self.vocab.tokens, "discounts": self.discounts_}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> NgramLM:
        path = Path(path)
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not an lmbench n-gram model file ({e})") from None
        meta = json.loads(bytes(data["meta"]).decode("utf-8"))
        config = {k: v for k, v in meta["config"].items() if k != "family"}
        model = cls(**config)
        n = config["order"]
        model.keys_ = [data[f"keys{m}"] for m in range(1, n + 1)]
        model.logprob_ = [data[f"logprob{m}"] for m in range(1, n + 1)]
        model.logbow_ = [data[f"logbow{m}"] for m in range(1, n + 1)]
        model.discounts_ = meta.get("discounts")
        model.vocab_ = Vocabulary(meta["vocab"])
        return model

    def to_arpa(self, path: str | Path) -> None:
        """Write an ARPA file (``.gz`` compresses) that KenLM and SRILM read."""
        from lmbench.models.ngram.arpa import write_arpa

        self._check_fitted()
        write_arpa(self, path)

    @classmethod
    def from_arpa(cls, path: str | Path, vocab: Vocabulary | None = None) -> NgramLM:
        """Read an ARPA file (plain or ``.gz``) written by KenLM, SRILM or :meth:`to_arpa`."""
        from lmbench.models.ngram.arpa import read_arpa

        return read_arpa(path, vocab)


@dataclass(frozen=True)
class BackoffStep:
    """One order tried while scoring a word: ``found`` n-grams give ``value`` = ln p, missed ones the
    back-off weight ln bow(context) that is added before the next shorter order is tried."""

    order: int
    context: tuple[int, ...]
    found: bool
    value: float


class _Keys:
    __slots__ = ("keys",)

    def __init__(self, keys: np.ndarray):
        self.keys = keys
