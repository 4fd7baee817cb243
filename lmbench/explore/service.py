"""What ``lmbench explore`` answers, in plain Python: every reply is a JSON-ready dict.

Models load in background threads as soon as the explorer starts; a question about a model waits for that
model only, so a slow model never holds up the others, and a model that fails to load answers every
question with its one-line error; so does a model whose files are unreadable or damaged (named at discovery).
Bad input raises :class:`ExploreInputError` (HTTP 400 in the app); a number or length outside its bounds,
:class:`ExploreRangeError` (HTTP 422).
"""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.data.subword import folder_tokenizer
from lmbench.data.tokenizers import Tokenizer
from lmbench.errors import DataError, LmbenchError, first_line
from lmbench.explore.discovery import FinishedModel, discover_runs
from lmbench.models.base import LanguageModel
from lmbench.models.registry import model_class

MAX_CHARS = 1000  # longest prefix accepted, in characters
MAX_TOKENS = 200  # longest prefix accepted, in tokens
MAX_K = 100
MAX_GENERATE = 100
TEMPERATURE = (1e-3, 10.0)  # the sampling temperatures accepted (closed range)
MAX_SEED = 2**32 - 1
DIGITS = 6  # probabilities and attention weights are rounded to this many decimals on the wire


class ExploreInputError(ValueError):
    """A request the explorer cannot answer as asked (one line; HTTP 400)."""


class ExploreRangeError(ExploreInputError):
    """A number (k, n, temperature, seed) or a length (the prefix) outside its stated bounds (HTTP 422)."""


class ModelUnavailable(RuntimeError):
    """The model failed to load (one line; HTTP 503): the other models still answer."""


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def load_model(run: FinishedModel) -> LanguageModel:
    """The fitted model saved in ``run`` (through the registry, as ``lmbench run`` saved it)."""
    if run.error is not None:
        raise DataError(run.error)
    try:
        run.run_folder.verify_model()  # a damaged model.bin (or its weights folder) is named, never served
        return model_class(run.family).load(run.model_path)
    except LmbenchError:
        raise
    except Exception as e:  # a truncated or foreign file: say which, in one line
        raise DataError(f"{run.model_path}: cannot load a {run.family} model ({_one_line(e)})") from None


class Explorer:
    """The finished models of one run folder, loaded in the background, queried by name.

    Args:
        run_dir: the ``--runs-dir`` of ``lmbench run`` (any folder holding finished model folders).
        tokenizer: overrides the tokenizer recorded with the runs.
        workers: how many models load at once.
    """

    def __init__(self, run_dir: str | Path, *, tokenizer: str | None = None, workers: int = 2):
        self.run_dir = Path(run_dir)
        runs = discover_runs(self.run_dir, tokenizer=tokenizer)
        if not runs:
            raise DataError(
                f"{self.run_dir}: no finished models (folders holding metrics.json and model.bin) below it"
            )
        self.runs: dict[str, FinishedModel] = {run.name: run for run in runs}
        self._tokenizers: dict[str, Tokenizer] = {}
        for name, run in list(self.runs.items()):
            if run.error is None and run.tokenizer not in self._tokenizers:
                try:
                    self._tokenizers[run.tokenizer] = folder_tokenizer(run.folder, run.tokenizer)
                except LmbenchError as e:  # this model is unavailable; the others are served
                    self.runs[name] = dataclasses.replace(run, error=f"{run.folder}: {first_line(e)}")
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lmbench-explore")
        self._models: dict[str, Future[LanguageModel]] = {
            name: self._pool.submit(load_model, run) for name, run in self.runs.items()
        }

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------------------------------ models
    def model(self, name: str) -> LanguageModel:
        """The loaded model ``name`` (waits for it to load); :class:`ModelUnavailable` if it failed."""
        if name not in self._models:
            raise ExploreInputError(f"model: unknown model {name!r}; expected one of {', '.join(self.runs)}")
        try:
            return self._models[name].result()
        except Exception as e:
            raise ModelUnavailable(f"{name}: failed to load: {str(e).splitlines()[0]}") from None

    def models(self) -> list[dict[str, Any]]:
        """Every model with its family and state (``loading``, ``ready`` or ``failed`` with the error)."""
        out = []
        for name, run in self.runs.items():
            future = self._models[name]
            entry = {"name": name, "family": run.family, "tokenizer": run.tokenizer, "state": "loading"}
            if future.done():
                error = future.exception()
                entry["state"] = "failed" if error else "ready"
                if error:
                    entry["error"] = f"{name}: failed to load: {str(error).splitlines()[0]}"
            out.append(entry)
        return out

    def _encode(self, name: str, text: str) -> tuple[LanguageModel, list[int], list[str]]:
        """Model, context ids (``<s>`` first: a prefix is a sentence start) and the prefix tokens it sees."""
        if len(text) > MAX_CHARS:
            raise ExploreRangeError(f"prefix: {len(text)} characters; at most {MAX_CHARS} are accepted")
        model = self.model(name)
        words = self._tokenizers[self.runs[name].tokenizer].tokenize(text)
        if len(words) > MAX_TOKENS:
            raise ExploreRangeError(f"prefix: {len(words)} tokens; at most {MAX_TOKENS} are accepted")
        ids = model.vocab.encode(words).tolist()
        return model, [model.vocab.bos_id, *ids], model.vocab.decode(ids)

    def _token_id(self, model: LanguageModel, token: str) -> int:
        if token not in model.vocab:
            raise ExploreInputError(f"token: {token!r} is not in the vocabulary (unknown words are <unk>)")
        return model.vocab.id(token)

    # ------------------------------------------------------------------------------------------ answers
    def next_tokens(self, name: str, prefix: str, k: int = 10, token: str | None = None) -> dict[str, Any]:
        """The ``k`` most probable next tokens after ``prefix`` (exp of ``next_token_logprobs``), sorted."""
        if not 1 <= k <= MAX_K:
            raise ExploreRangeError(f"k: expected an integer from 1 to {MAX_K}, got {k}")
        model, context, tokens = self._encode(name, prefix)
        logp = model.next_token_logprobs([context])[0]
        top = np.argsort(-logp, kind="stable")[:k]
        out: dict[str, Any] = {
            "prefix_tokens": tokens,
            "top": [{"token": model.vocab.tokens[i], "prob": float(np.exp(logp[i]))} for i in top],
        }
        if token:
            out["picked"] = {"token": token, "prob": float(np.exp(logp[self._token_id(model, token)]))}
        return out

    def next_all(self, prefix: str, k: int = 10, token: str | None = None) -> dict[str, Any]:
        """:meth:`next_tokens` for every model: ``{"prefix_tokens", "models": {name: top}, "errors"}``."""
        out: dict[str, Any] = {"prefix_tokens": None, "models": {}, "errors": {}}
        if token:
            out["picked"] = {}
        for name in self.runs:
            try:
                answer = self.next_tokens(name, prefix, k, token)
            except ModelUnavailable as e:
                out["errors"][name] = str(e)
                continue
            if out["prefix_tokens"] is None:
                out["prefix_tokens"] = answer["prefix_tokens"]
            out["models"][name] = answer["top"]
            if token:
                out["picked"][name] = answer["picked"]["prob"]
        if out["prefix_tokens"] is None:  # no model loaded: tokenize without a vocabulary
            tokenizer = next(iter(self._tokenizers.values()), None)
            out["prefix_tokens"] = tokenizer.tokenize(prefix) if tokenizer else prefix.split()
        return out

    def attention(self, name: str, text: str) -> dict[str, Any]:
        """Every layer's and head's attention over ``<s> text``, and the head that looks furthest back.

        "Furthest back" is measured at the last position i (the one predicting the next token): the
        attention-weighted mean distance sum_j a_ij (i - j) over the words, without ``<s>`` (where heads
        with nothing to look for park their attention; counting it would crown those idle heads).
        """
        model, context, _ = self._encode(name, text)
        if not hasattr(model, "attention_maps"):
            raise ExploreInputError(
                f"model: {name} is a {self.runs[name].family} model; attention maps exist for transformer models"
            )
        maps = model.attention_maps(context)  # [layers, heads, T, T]
        T = maps.shape[-1]
        tokens = model.vocab.decode(context[-T:])
        last = maps[:, :, -1, 1:] if T > 1 else maps[:, :, -1, :]  # [layers, heads, T - 1]: words only
        last = last / np.maximum(last.sum(-1, keepdims=True), 1e-12)
        distance = (last * (T - 1 - np.arange(T - last.shape[-1], T))).sum(-1)  # [layers, heads]
        layer, head = np.unravel_index(int(np.argmax(distance)), distance.shape)
        return {
            "model": name,
            "tokens": tokens,
            "layers": np.round(maps, DIGITS).tolist(),
            "furthest_head": {
                "layer": int(layer),
                "head": int(head),
                "distance": float(distance[layer, head]),
            },
            "mean_distance": np.round(distance, 3).tolist(),
        }

    def backoff(self, name: str, prefix: str, token: str | None = None) -> dict[str, Any]:
        """The n-gram back-off path behind p(token | prefix) (default: the most probable next token)."""
        model, context, tokens = self._encode(name, prefix)
        if not hasattr(model, "backoff_path"):
            raise ExploreInputError(
                f"model: {name} is a {self.runs[name].family} model; back-off paths exist for n-gram models"
            )
        if token:
            word = self._token_id(model, token)
        else:
            word = int(np.argmax(model.next_token_logprobs([context])[0]))
        steps = model.backoff_path(context, word)
        logprob = float(sum(s.value for s in steps))
        return {
            "model": name,
            "prefix_tokens": tokens,
            "token": model.vocab.tokens[word],
            "logprob": logprob,
            "prob": math.exp(logprob),
            "steps": [
                {
                    "order": s.order,
                    "context": model.vocab.decode(s.context),
                    "found": s.found,
                    "logprob" if s.found else "backoff_logweight": s.value,
                }
                for s in steps
            ],
        }

    def generate(
        self, name: str, prefix: str, n: int = 20, seed: int = 0, temperature: float = 1.0
    ) -> dict[str, Any]:
        """A sampled continuation of ``prefix`` (``model.generate``; stops after ``</s>``)."""
        if not 1 <= n <= MAX_GENERATE:
            raise ExploreRangeError(f"n: expected an integer from 1 to {MAX_GENERATE}, got {n}")
        low, high = TEMPERATURE
        if not (math.isfinite(temperature) and low <= temperature <= high):
            raise ExploreRangeError(
                f"temperature: expected a number from {low:g} to {high:g}, got {temperature}"
            )
        if not 0 <= seed <= MAX_SEED:
            raise ExploreRangeError(f"seed: expected an integer from 0 to {MAX_SEED}, got {seed}")
        model, context, tokens = self._encode(name, prefix)
        ids = model.generate(context, n, temperature=temperature, seed=seed)
        generated = model.vocab.decode(ids)
        words = [t for t in generated if t != "</s>"]
        return {
            "model": name,
            "prefix_tokens": tokens,
            "tokens": generated,
            "text": self._tokenizers[self.runs[name].tokenizer].detokenize(words),
        }
