"""The n-gram language model: counts -> smoothing -> back-off tables; scoring is vectorised lookups."""

from __future__ import annotations

import json
import logging
import math
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np

from lmbench.data.corpus import TokenStream
from lmbench.data.vocabulary import Vocabulary
from lmbench.errors import ConfigError, DataError
from lmbench.io import open_output
from lmbench.models.base import Budget, Context, LanguageModel, check_context
from lmbench.models.ngram.arpa import PROGRESS_ROWS, read_arpa, write_arpa
from lmbench.models.ngram.counting import (
    CountingStats,
    count_ngrams,
    ending_rows,
    lookup,
    parse_memory,
    resident_memory,
)
from lmbench.models.ngram.pruning import check_thresholds, decision_counts, keep_masks, prune_backoff
from lmbench.models.ngram.smoothing import (
    SMOOTHERS,
    BackoffArrays,
    Smoother,
    all_smoother_params,
    smoother_class,
)
from lmbench.models.ngram.storage import DiskArray

log = logging.getLogger(__name__)

MAX_ORDER = 10
MIN_STREAM_WORK = 64 << 20  # bytes of chunk work for smoothing tables on disk, at least
LN10 = math.log(10.0)
PRECISIONS = ("float32", "float64")
MODEL_FORMAT = "lmbench-ngram-2"  # int64 keys, float32 log10 probabilities and back-offs


class NgramLM(LanguageModel):
    """Word n-gram model of order 1..10 with a choice of smoothing, stored in back-off (ARPA) form.

    Args:
        order: n, the number of words an n-gram spans (context = n - 1 words).
        smoothing: a registered smoother (:data:`~lmbench.models.ngram.smoothing.SMOOTHERS`): ``mle, add-k,
            laplace, lidstone, katz, witten-bell, absolute-discounting, kneser-ney, modified-kneser-ney,
            stupid-backoff``; ``None`` only for a model of given tables (:meth:`from_tables`, :meth:`from_arpa`).
        **smoother_params: the smoothers' parameters, each with its default; every one is a setting of the
            model (and is checked) whichever smoother is chosen: ``k`` (``add-k``/``lidstone``), ``discount``
            (``absolute-discounting``/``kneser-ney``; default Ney's n1/(n1+2 n2)), ``backoff``
            (``stupid-backoff``) and ``interpolate_unigrams`` (below).
        train_context: ``sentence`` counts n-grams inside each ``<s> line </s>`` (KenLM's way);
            ``stream`` counts them over the whole split as one sequence, across line ends.
        interpolate_unigrams: interpolated smoothers mix order 1 with the uniform distribution (KenLM's
            default), so unseen words keep probability; ``False`` ends in undiscounted unigram frequencies of
            the smoother's counts (continuation counts for Kneser-Ney), NLTK's way.
        memory: what the fit may use in all (KenLM's ``-S``): ``"4G"``, ``"512M"``, ``"50%"`` of physical
            memory; default half the machine. Beyond it sorted runs spill to disk, and tables that would not
            fit are kept on disk, smoothed a chunk of rows at a time (the discounting smoothers; the others
            load them) and mapped read-only once fitted; the model is the same, bit for bit, either way.
        progress: a progress bar while counting (default: on a terminal, for corpora over 5M tokens).
        prune: count pruning as lmplz's ``--prune``: a threshold per order (``[0, 1, 1]`` drops bigrams and
            trigrams seen at most once; the last value repeats for higher orders; unigrams are never pruned);
            the pruned model stays normalised (:mod:`~lmbench.models.ngram.pruning`). Needs the counted
            tables in memory: tables counted on disk are loaded for it.
        vocab_pad: (the discounting smoothers) lmplz's ``--vocab_pad``: the uniform distribution under the
            unigrams is spread as if over this many words, the padding going to ``<unk>``, so models with
            different vocabularies give comparable perplexities.
        precision: ``float32`` stores log10 values as KenLM does (7 significant digits; rows sum to 1 within
            ~1e-7); ``float64`` keeps every bit of the estimate (24 bytes per n-gram), for checking the
            estimators against other implementations to 1e-12.

    The fitted model keeps what scoring needs, as KenLM does: int64 keys, float32 log10 probabilities and
    back-off weights (16 bytes per stored n-gram below the top order, 12 at the top; ~15 on average).

    Context modes: a model trained on sentences has seen no n-gram that crosses ``</s> <s>``, so in stream
    mode it backs off to exactly its sentence-start estimate and both modes give the same scores; a model
    trained with ``train_context="stream"`` uses the previous line's words in stream mode.
    """

    backend: ClassVar[str] = "ngram"

    def __init__(
        self,
        order: int = 3,
        smoothing: str | None = "modified-kneser-ney",
        *,
        train_context: str = "sentence",
        memory: str | int | None = None,
        progress: bool | None = None,
        precision: str = "float32",
        prune: Sequence[int] | None = None,
        **smoother_params: Any,
    ):
        if not isinstance(order, int) or isinstance(order, bool) or not 1 <= order <= MAX_ORDER:
            raise ConfigError(f"order: expected an integer from 1 to {MAX_ORDER}, got {order!r}")
        chosen = None if smoothing is None else smoother_class(smoothing)
        self.smoother: Smoother | None = None
        known = all_smoother_params()
        for key in smoother_params:
            if key not in known:
                expected = [
                    "order", "smoothing", *known, "train_context", "memory", "progress", "precision", "prune"
                ]  # fmt: skip
                raise ConfigError(
                    f"{key}: not a setting of an n-gram model; expected some of {', '.join(expected)}"
                )
        params = {**known, **smoother_params}
        for cls in SMOOTHERS.values():  # every setting is checked, whichever smoother uses it
            smoother = cls(**{key: value for key, value in params.items() if key in cls.params()})
            if cls is chosen:
                self.smoother = smoother
        check_context(train_context)
        memory_bytes = parse_memory(
            memory
        )  # parsed once: a bad size is a config error now, not after reading
        if precision not in PRECISIONS:
            raise ConfigError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
        thresholds = check_thresholds(prune, order)
        if thresholds is not None and chosen is not None and not chosen.normalized:
            raise ConfigError(
                f"prune: smoothing {smoothing!r} gives scores, not probabilities, to renormalise"
            )
        if smoother_params.get("vocab_pad") and chosen is not None and "vocab_pad" not in chosen.params():
            users = [name for name, cls in SMOOTHERS.items() if "vocab_pad" in cls.params()]
            raise ConfigError(
                f"vocab_pad: smoothing {smoothing!r} has no uniform base to pad; use {', '.join(users)}"
            )
        self.order = order
        self.smoothing = smoothing
        self.prune = list(prune) if prune is not None else None
        self.smoother_params = params
        self.train_context = train_context
        self.memory = memory
        self._memory_bytes = memory_bytes  # what fit and counting use: the bytes ``memory`` stands for
        self.progress = progress
        self.precision = precision
        self.source_: str | None = None

    @classmethod
    def settings_sources(cls) -> list[type]:
        """Where the settings beyond the constructor's keywords are declared: the registered smoothers."""
        return list(SMOOTHERS.values())

    def get_params(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "smoothing": self.smoothing,
            **self.smoother_params,
            "train_context": self.train_context,
            "memory": self.memory,
            "progress": self.progress,
            "precision": self.precision,
            "prune": self.prune,
        }

    @property
    def normalized(self) -> bool:  # type: ignore[override]
        return self.smoother is None or self.smoother.normalized

    def config(self) -> dict[str, Any]:
        """The settings (``progress`` aside) and, for a model of given tables, where they came from."""
        config = {"backend": self.backend, **self.get_params()}
        del config["progress"]
        if self.source_ is not None:
            config["source"] = self.source_
        return config

    # ----------------------------------------------------------------------------------------- fitting
    def fit(
        self,
        train: TokenStream,
        valid: TokenStream | None = None,
        *,
        budget: Budget | None = None,
        run_dir: str | Path | None = None,
    ) -> NgramLM:
        """Count the n-grams of ``train`` and smooth them (``valid`` and ``budget`` are not needed: one pass).

        The fit stays within ``memory``; what does not fit goes to anonymous temporary files under
        ``run_dir`` (else ``$TMPDIR``).
        """
        if self.smoother is None:
            raise ConfigError(
                f"smoothing: a model of given tables (smoothing None) cannot be fitted; expected one of "
                f"{', '.join(SMOOTHERS)}"
            )
        vocab = train.vocab
        seq, starts = self._training_sequence(train)
        stats = CountingStats()
        budget = self._memory_bytes
        spill_dir = Path(run_dir) / "ngram-spill" if run_dir is not None else None
        tables = count_ngrams(
            seq,
            starts,
            self.order,
            len(vocab),
            skip_first=vocab.bos_id,
            memory=budget,
            spill_dir=spill_dir,
            progress=self.progress,
            stats=stats,
        )
        del seq
        self.counting_stats_ = stats
        dtype = np.dtype(self.precision)
        thresholds = check_thresholds(self.prune, self.order)
        if thresholds is not None:
            return self._fit_pruned(tables, vocab, dtype, thresholds)
        if any(t.on_disk for t in tables):
            if hasattr(self.smoother, "to_backoff_streamed"):
                return self._fit_streamed(tables, vocab, dtype, budget, spill_dir)
            log.warning(
                "smoothing %s reads whole tables: the %s n-grams counted on disk are loaded into memory "
                "(the discounting smoothers stream them instead)",
                self.smoothing,
                f"{sum(len(t) for t in tables):,}",
            )
            tables = [t.load() for t in tables]
        return self._fit_in_memory(tables, vocab, dtype)

    def _training_sequence(self, train: TokenStream) -> tuple[np.ndarray, np.ndarray]:
        """The ids counting reads and where its segments start: each line ``<s> .. </s>`` on its own
        (``sentence``), or the whole text as one segment (``stream``: n-grams cross line ends)."""
        if self.train_context == "sentence":
            seq = train.with_markers(bos=True)
            starts = train.offsets[:-1] + 2 * np.arange(train.num_lines, dtype=np.int64)
            return seq, starts
        return train.stream(), np.zeros(1, dtype=np.int64)

    def _fit_in_memory(self, tables: list, vocab: Vocabulary, dtype: np.dtype) -> NgramLM:
        """Smooth tables held in memory, each order stored in log10 as soon as it is final (and its counts
        released), so the linear and log copies of all orders are never held at once."""

        def store(arrays: BackoffArrays) -> BackoffArrays:
            return BackoffArrays(prob=to_log10(arrays.prob, dtype), bow=to_log10(arrays.bow, dtype))

        arrays = self.smoother.to_backoff(tables, bos_id=vocab.bos_id, finish=store, consume=True)
        keys = [t.keys for t in tables]
        del tables
        return self._set_tables(
            vocab,
            keys,
            [a.prob for a in arrays],
            [a.bow for a in arrays[:-1]] + [np.zeros(0, dtype=dtype)],  # no back-off at the top
            discounts=self.smoother.discounts_,
        )

    def _fit_pruned(
        self, tables: list, vocab: Vocabulary, dtype: np.dtype, thresholds: tuple[int, ...]
    ) -> NgramLM:
        """Estimate the whole model, then drop the n-grams at or below the thresholds and renormalise
        (:mod:`~lmbench.models.ngram.pruning`); tables counted on disk are loaded for it."""
        if any(t.on_disk for t in tables):
            log.warning(
                "prune: the %s n-grams counted on disk are loaded into memory to be pruned",
                f"{sum(len(t) for t in tables):,}",
            )
            tables = [t.load() for t in tables]
        assert self.smoother is not None
        counts = decision_counts(tables, self.smoother, vocab.bos_id)
        keep = keep_masks(counts, tables, thresholds)
        del counts
        arrays = self.smoother.to_backoff(tables, bos_id=vocab.bos_id)
        keys, pruned = prune_backoff(tables, arrays, keep)
        del tables, arrays
        return self._set_tables(
            vocab,
            keys,
            [to_log10(a.prob, dtype) for a in pruned],
            [to_log10(a.bow, dtype) for a in pruned[:-1]] + [np.zeros(0, dtype=dtype)],
            discounts=self.smoother.discounts_,
        )

    def _fit_streamed(
        self, tables: list, vocab: Vocabulary, dtype: np.dtype, budget: int, folder: Path | None
    ) -> NgramLM:
        """Smooth tables that are (partly) on disk a chunk of rows at a time; the fitted arrays stay on disk
        too, mapped read-only for scoring, and :meth:`to_arpa` reads them a block at a time."""
        work = max(MIN_STREAM_WORK, (budget - resident_memory()) // 3)
        rows = sum(len(t) for t in tables)
        show = self.progress if self.progress is not None else (sys.stderr.isatty() and rows > PROGRESS_ROWS)
        fit = self.smoother.to_backoff_streamed(  # type: ignore[union-attr]
            tables, bos_id=vocab.bos_id, dtype=dtype, memory=work, folder=folder, progress=show
        )
        keys = [t.keys for t in tables]
        for table in tables:
            table.release()
        del tables
        mapped = [
            [a.map() if isinstance(a, DiskArray) else a for a in arrays]
            for arrays in (keys, fit.log10prob, fit.log10bow)
        ]
        self._set_tables(vocab, *mapped, discounts=fit.discounts)
        self.stored_ = (keys, fit.log10prob, fit.log10bow)
        return self

    @classmethod
    def from_tables(
        cls,
        vocab: Vocabulary,
        keys: Sequence[np.ndarray],
        log10prob: Sequence[np.ndarray],
        log10bow: Sequence[np.ndarray],
        *,
        discounts: list | None = None,
        source: str | None = None,
        **settings: Any,
    ) -> NgramLM:
        """A fitted model from back-off tables in the stored layout (what ``fit``, ``load`` and ``from_arpa``
        all build through).

        Per order m: ``keys[m-1]`` sorted int64 keys (order 1: every word id; above, context row x |V| + word
        id), ``log10prob[m-1]`` and ``log10bow[m-1]`` (empty at the top order) aligned with them. ``settings``
        are the constructor's (``order`` defaults to the number of tables; ``smoothing=None`` for estimates
        not made by a smoother of lmbench's); ``source`` says where the estimates came from (an ARPA path).
        """
        model = cls(**{"order": len(keys), **settings})
        return model._set_tables(vocab, keys, log10prob, log10bow, discounts=discounts, source=source)

    def _set_tables(
        self,
        vocab: Vocabulary,
        keys: Sequence[np.ndarray],
        log10prob: Sequence[np.ndarray],
        log10bow: Sequence[np.ndarray],
        *,
        discounts: list | None = None,
        source: str | None = None,
    ) -> NgramLM:
        """Install the fitted tables after checking that their shapes agree (``ValueError`` where not)."""
        n = self.order
        if not len(keys) == len(log10prob) == len(log10bow) == n:
            raise ValueError(
                f"expected {n} keys, log10prob and log10bow arrays (one per order), "
                f"got {len(keys)}, {len(log10prob)} and {len(log10bow)}"
            )
        if len(keys[0]) != len(vocab):
            raise ValueError(f"order 1 keys: expected one per word ({len(vocab)}), got {len(keys[0])}")
        dtype = np.dtype(self.precision)
        self.keys_ = [np.asarray(k, dtype=np.int64) for k in keys]
        self.log10prob_ = [np.asarray(lp, dtype=dtype) for lp in log10prob]
        self.log10bow_ = [np.asarray(lb, dtype=dtype) for lb in log10bow[: n - 1]]
        self.log10bow_.append(np.zeros(0, dtype=dtype))  # no back-off at the top order
        for m in range(1, n + 1):
            k, lp, lb = self.keys_[m - 1], self.log10prob_[m - 1], self.log10bow_[m - 1]
            if len(lp) != len(k) or (m < n and len(lb) != len(k)):
                raise ValueError(
                    f"order {m}: {len(k)} keys but {len(lp)} log10 probabilities and {len(lb)} back-offs"
                )
        self.discounts_ = discounts
        self.source_ = source
        self.vocab_ = vocab
        self.stored_ = None  # where the tables were made on disk: the DiskArrays behind the mapped arrays
        return self

    # ---------------------------------------------------------------------------------- fitted state
    @property
    def logprob_(self) -> list[np.ndarray]:
        """Natural-log probability of every stored n-gram per order (float64 views of the float32 log10 store)."""
        return [lp.astype(np.float64) * LN10 for lp in self.log10prob_]

    @property
    def logbow_(self) -> list[np.ndarray]:
        """Natural-log back-off weight of every stored n-gram per order (0 at the top order)."""
        return [
            lb.astype(np.float64) * LN10 if len(lb) == len(k) else np.zeros(len(k))
            for lb, k in zip(self.log10bow_, self.keys_, strict=True)
        ]

    def bytes_per_ngram(self) -> float:
        """Memory of the fitted tables (keys, log10 probabilities, back-offs) per stored n-gram."""
        self._check_fitted()
        arrays = [*self.keys_, *self.log10prob_, *self.log10bow_]
        return sum(a.nbytes for a in arrays) / max(1, sum(len(k) for k in self.keys_))

    # ----------------------------------------------------------------------------------------- scoring
    def _bow(self, m: int, rows: np.ndarray) -> np.ndarray:
        """log10 back-off weight of order-m rows (-1: an unstored context, weight 1)."""
        table = self.log10bow_[m - 1]
        if len(table) == 0:
            return np.zeros(len(rows))
        return np.where(rows >= 0, table[np.maximum(rows, 0)], np.float32(0)).astype(np.float64)

    def _logprob(self, ctx_rows: list[np.ndarray], words: np.ndarray) -> np.ndarray:
        """ln p(word | context) in back-off form; ``ctx_rows[k-1]`` is the row of the k-gram context (or -1).

        log p = logprob(longest stored n-gram ending in the word) + sum of the back-off weights of every
        longer context (Katz's recursion unrolled; an unstored context has weight 1).
        """
        V = len(self.vocab)
        n = len(self.keys_)
        # suffix sums of context back-offs: tail[m] = sum_{k=m}^{n-1} bow_k(context of length k)
        bows = [self._bow(k + 1, r) for k, r in enumerate(ctx_rows[: n - 1])]
        tail = [np.zeros(len(words))] * (n + 1)
        for m in range(n - 1, 0, -1):
            tail[m] = tail[m + 1] + bows[m - 1]
        out = self.log10prob_[0][words].astype(np.float64) + tail[1]
        for m in range(2, n + 1):
            ctx = ctx_rows[m - 2]
            ok = np.flatnonzero(ctx >= 0)
            if len(ok) == 0:
                break
            rows = lookup(self.keys_[m - 1], ctx[ok] * V + words[ok])
            hit = rows >= 0
            idx = ok[hit]
            out[idx] = self.log10prob_[m - 1][rows[hit]].astype(np.float64) + tail[m][idx]
        return out * LN10

    def token_logprobs(self, data: TokenStream, *, context: Context = "sentence") -> np.ndarray:
        self._check_fitted()
        check_context(context)
        if context == "stream" and self.train_context == "stream":
            seq = data.stream()
        else:  # lines as <s> .. </s> back to back: no stored n-gram spans "</s> <s>"
            seq = data.with_markers(bos=True)
        seq = seq.astype(np.int64)
        rows = ending_rows(self.keys_, seq, len(self.vocab))
        targets = np.flatnonzero(seq != self.vocab.bos_id)
        # The rows of the n-grams ending at each target are already known: take the longest stored one and
        # add the back-off weights of the longer contexts (rows ending one position earlier).
        out = np.zeros(len(targets))
        done = np.zeros(len(targets), dtype=bool)
        for m in range(len(self.keys_), 0, -1):
            row = rows[m - 1][targets]
            hit = (row >= 0) & ~done
            out[hit] += self.log10prob_[m - 1][row[hit]]
            done |= hit
            if m > 1:  # context of length m-1 ending at t-1: its back-off applies where order m missed
                ctx = rows[m - 2][targets - 1]
                miss = ~done & (ctx >= 0)
                out[miss] += self.log10bow_[m - 2][ctx[miss]]
        return out * LN10

    def next_token_logprobs(self, contexts: Sequence[Sequence[int]]) -> np.ndarray:
        self._check_fitted()
        V = len(self.vocab)
        out = np.empty((len(contexts), V), dtype=np.float64)
        words = np.arange(V, dtype=np.int64)
        for i, context in enumerate(contexts):
            ctx = np.asarray(list(context)[-(self.order - 1) :] if self.order > 1 else [], dtype=np.int64)
            if len(ctx):
                rows = ending_rows(self.keys_, ctx, V)
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
        rows = [int(r[-1]) for r in ending_rows(self.keys_, ctx, V)[: len(ctx)]] if len(ctx) else []
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

    # ----------------------------------------------------------------------------------------- size, I/O
    def num_parameters(self) -> int:
        self._check_fitted()
        probs = sum(int(np.isfinite(lp).sum()) for lp in self.log10prob_)
        bows = sum(int((lb != 0).sum()) for lb in self.log10bow_[:-1])
        return probs + bows

    def ngrams_per_order(self) -> list[int]:
        """How many n-grams each order stores (unigrams: the whole vocabulary)."""
        return [len(k) for k in self.keys_]

    def save(self, path: str | Path) -> None:
        """One uncompressed ``.npz``: int64 keys, float32 log10 values (exact round trip, loads in a
        fraction of a second), config and vocabulary as JSON."""
        self._check_fitted()
        arrays: dict[str, np.ndarray] = {}
        for m, (keys, lp, lb) in enumerate(
            zip(self.keys_, self.log10prob_, self.log10bow_, strict=True), start=1
        ):
            arrays[f"keys{m}"], arrays[f"log10prob{m}"], arrays[f"log10bow{m}"] = keys, lp, lb
        meta = {
            "format": MODEL_FORMAT,
            "config": self.config(),
            "vocab": self.vocab.tokens,
            "discounts": self.discounts_,
            "source": self.source_,
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        with open_output(path, "model file") as f:  # atomic for a file; /dev/null or a FIFO written into
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> NgramLM:
        path = Path(path)
        try:
            data = np.load(path, allow_pickle=False)
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
            # "family": the key in files written before the class attribute was named "backend"
            config = {k: v for k, v in meta["config"].items() if k not in ("backend", "family", "source")}
            source = meta.get("source")
            if config.get("smoothing") == "arpa":  # how files of models read from ARPA marked them before
                config["smoothing"], source = None, source or "an ARPA file"
            n = config["order"]
            keys = [data[f"keys{m}"] for m in range(1, n + 1)]
            if meta.get("format") == MODEL_FORMAT:
                log10prob = [data[f"log10prob{m}"] for m in range(1, n + 1)]
                log10bow = [data[f"log10bow{m}"] for m in range(1, n + 1)]
            else:  # the first format: float64 natural logs
                log10prob = [to_log10(np.exp(data[f"logprob{m}"])) for m in range(1, n + 1)]
                log10bow = [to_log10(np.exp(data[f"logbow{m}"])) for m in range(1, n)]
                log10bow.append(np.zeros(0, dtype=np.float32))
            vocab = Vocabulary(meta["vocab"])
            _check_values(path, log10prob, log10bow)
            return cls.from_tables(
                vocab, keys, log10prob, log10bow, discounts=meta.get("discounts"), source=source, **config
            )
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, ConfigError) as e:
            raise DataError(f"{path}: not an lmbench n-gram model file ({type(e).__name__}: {e})") from None

    def to_arpa(self, path: str | Path | BinaryIO) -> None:
        """Write an ARPA file (``.gz`` compresses; or a binary stream) that KenLM and SRILM read."""
        self._check_fitted()
        write_arpa(self, path)

    @classmethod
    def from_arpa(cls, path: str | Path, vocab: Vocabulary | None = None) -> NgramLM:
        """Read an ARPA file (plain or ``.gz``) written by KenLM, SRILM or :meth:`to_arpa`; words outside
        ``vocab`` are dropped with their n-grams. The model records the file as its ``source_``."""
        tables = read_arpa(path, vocab, max_order=MAX_ORDER)
        return cls.from_tables(
            tables.vocab, tables.keys, tables.log10prob, tables.log10bow, smoothing=None, source=str(path)
        )


def _check_values(path: Path, log10prob: list[np.ndarray], log10bow: list[np.ndarray]) -> None:
    """A damaged file names its first NaN or +inf (-inf is a zero probability or back-off weight)."""
    from lmbench.checksums import Damaged

    for kind, tables in (("log10prob", log10prob), ("log10bow", log10bow)):
        for m, values in enumerate(tables, start=1):
            bad = int(np.isnan(values).sum() + np.isposinf(values).sum())
            if bad:
                raise Damaged(f"{path}: {kind}{m} holds {bad} NaN or +inf value(s)")


def to_log10(linear: np.ndarray, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """log10 of probabilities or weights (0 -> -inf), float32 as KenLM stores them."""
    with np.errstate(divide="ignore"):
        return (np.log(linear) / LN10).astype(dtype)


@dataclass(frozen=True)
class BackoffStep:
    """One order tried while scoring a word: ``found`` n-grams give ``value`` = ln p, missed ones the
    back-off weight ln bow(context) that is added before the next shorter order is tried."""

    order: int
    context: tuple[int, ...]
    found: bool
    value: float
