"""The LanguageModel protocol: the one narrow seam every back-end meets.

Metrics are never computed inside a model: a model returns natural-log probabilities and the evaluation
package turns them into perplexity, bits per character and intervals, once, for every family.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from lmbench.data.corpus import TokenStream
from lmbench.data.vocabulary import Vocabulary
from lmbench.errors import ConfigError, NotFittedError
from lmbench.training.budget import Budget

Context = Literal["sentence", "stream"]
CONTEXTS: tuple[str, ...] = ("sentence", "stream")

__all__ = ["CONTEXTS", "Budget", "Context", "LanguageModel", "check_context", "sample_token"]


def check_context(context: str) -> None:
    if context not in CONTEXTS:
        raise ConfigError(f"context: expected one of {', '.join(CONTEXTS)}, got {context!r}")


class LanguageModel(abc.ABC):
    """A language model over a fixed :class:`Vocabulary`.

    Conventions (scikit-learn's): ``__init__`` only stores hyper-parameters; :meth:`fit` learns from a
    :class:`TokenStream`, takes its vocabulary and returns ``self``; using a model before ``fit``/``load``
    raises :class:`NotFittedError`; a seed is stored unchanged so fitting twice gives the same model.
    """

    # the back-end's kind: "ngram" | "rnn" | "transformer" | "pretrained". Not the family: a family is the
    # name a model is registered and configured under (family = "lstm" is the "rnn" back-end, cell "lstm")
    backend: ClassVar[str]
    normalized: ClassVar[bool] = True  # False for scores that are not probabilities (stupid back-off)

    vocab_: Vocabulary | None = None

    @property
    def vocab(self) -> Vocabulary:
        if self.vocab_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load() first")
        return self.vocab_

    def _check_fitted(self) -> None:
        self.vocab  # noqa: B018 - raises NotFittedError when unfitted

    @abc.abstractmethod
    def fit(
        self,
        train: TokenStream,
        valid: TokenStream | None = None,
        *,
        budget: Budget | None = None,
        run_dir: str | Path | None = None,
    ) -> LanguageModel:
        """Learn from ``train`` (and ``valid``, for early stopping); ``run_dir`` holds checkpoints/logs."""

    @abc.abstractmethod
    def token_logprobs(self, data: TokenStream, *, context: Context = "sentence") -> np.ndarray:
        """Natural-log probability of every predicted token, float64 [data.num_predicted], in order.

        Predicted tokens: every word of each line and one ``</s>`` per line. ``sentence``: each line is
        scored from ``<s>`` alone; ``stream``: the split is one sequence and context crosses line ends.
        """

    @abc.abstractmethod
    def next_token_logprobs(self, contexts: Sequence[Sequence[int]]) -> np.ndarray:
        """Log-distribution of the next token after each context: float64 [batch, |V|], rows sum to 1.

        A context is a sequence of ids; it is taken as given (start it with ``<s>`` for a sentence start).
        """

    def generate(
        self,
        prompt: Sequence[int],
        max_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
    ) -> list[int]:
        """Sample up to ``max_tokens`` new ids after ``prompt``; stops after ``</s>`` (which is included).

        Written once here on top of :meth:`next_token_logprobs`; back-ends may override it for speed.
        """
        self._check_fitted()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        rng = np.random.default_rng(seed)
        context = list(prompt) or [self.vocab.bos_id]
        out: list[int] = []
        for _ in range(max_tokens):
            logp = self.next_token_logprobs([context])[0]
            token = sample_token(logp, rng, temperature=temperature, top_k=top_k)
            out.append(token)
            context.append(token)
            if token == self.vocab.eos_id:
                break
        return out

    @abc.abstractmethod
    def save(self, path: str | Path) -> None:
        """Write the fitted model to one file at ``path`` (its config included, so ``load`` rebuilds it)."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | Path) -> LanguageModel:
        """Read a model written by :meth:`save`."""

    @abc.abstractmethod
    def num_parameters(self) -> int:
        """Learned numbers (n-gram: stored probabilities and back-off weights)."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """Hyper-parameters (JSON-serialisable), enough to re-create the unfitted model."""

    def get_params(self) -> dict[str, Any]:
        """The constructor's settings after defaults (scikit-learn's ``get_params``).

        ``create_model(name, **model.get_params())`` rebuilds an equal unfitted model; the experiment
        passes its seed and every other setting through this one path. The default reads each
        constructor keyword back from the attribute of the same name.
        """
        names = [
            p.name
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        return {name: getattr(self, name) for name in names}

    @property
    def stochastic(self) -> bool:
        """Whether fitting depends on a random seed (then ``seeds = [...]`` trains it once per seed)."""
        return "seed" in self.get_params()

    def default_budget(self) -> Budget | None:
        """The budget that "no budget" means for this model (``None``: the family takes no budget)."""
        return None

    def runtime_identity(self) -> dict[str, Any]:
        """What this machine decides about fitting that the settings do not (a neural model's resolved
        precision); part of the training identity, so a model fitted otherwise is not reused."""
        return {}

    def train_flops_per_token(self) -> float | None:
        """Estimated training arithmetic per token seen (forward + backward), or ``None`` (n-grams)."""
        return None

    def sentence_features(self, lines: Sequence[Sequence[int]]) -> np.ndarray | None:
        """Fixed-size features per line (e.g. pooled hidden states) for feature-based classifiers.

        Returns ``None`` where the family has no natural features.
        """
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "backend")
        return f"{type(self).__name__}({args})"


def sample_token(
    logprobs: np.ndarray, rng: np.random.Generator, *, temperature: float = 1.0, top_k: int | None = None
) -> int:
    """Draw one id from a log-distribution, with temperature and optional top-k truncation."""
    logits = np.asarray(logprobs, dtype=np.float64)
    with np.errstate(over="ignore"):
        scaled = logits / temperature
        if not np.isfinite(scaled.max()):  # a temperature so small (1e-310) that dividing overflows: greedy
            scaled = (logits - logits.max()) / temperature
    logits = scaled
    if top_k is not None and 0 < top_k < len(logits):
        kth = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits >= kth, logits, -np.inf)
    logits = logits - logits.max()
    probs = np.exp(logits)
    probs /= probs.sum()
    return int(rng.choice(len(probs), p=probs))


def resolve_budget(budget: Budget | None, model: LanguageModel) -> Budget | None:
    """The one meaning of "no budget", settled before ``fit``: an absent or empty budget is the family's
    default (the neural families' ``epochs`` setting); families that take no budget (n-grams) get ``None``."""
    default = model.default_budget()
    if default is None:
        return None
    if budget is None or budget.unlimited:
        return default
    return budget
