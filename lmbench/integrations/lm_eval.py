"""lm-evaluation-harness, both ways: lmbench models answer lm-eval's requests, and lm-eval tasks run on lmbench.

:class:`LmbenchLM` (registered with lm-eval as ``"lmbench"``) loads a trained model folder of any family and
answers ``loglikelihood``, ``loglikelihood_rolling`` and ``generate_until``. Raw strings are cut the model's
way: the run's tokenizer (a subword run's own ``tokenizer.json``), each newline an end of sentence; words
outside the vocabulary become ``<unk>`` and are counted (:attr:`LmbenchLM.oov_tokens`). Scores come from the
model's ``token_logprobs``, the one path every lmbench figure comes from, so

- ``loglikelihood_rolling(text)`` is lmbench's own total log-probability of ``text`` (its lines, each with its
  ``</s>``): its perplexity is lmbench's perplexity of that text;
- ``loglikelihood(context, continuation)`` sums the continuation's tokens, and a continuation that ends the
  text predicts ``</s>`` too (``eos=True``, lmbench's sentence scores: a BLiMP file scored as an lm-eval task
  gives exactly lmbench's minimal-pairs accuracy); ``eos=False`` leaves it out, as lm-eval's own models do.

``context="sentence"`` (default) scores each line from ``<s>`` alone; ``"stream"`` carries context across
lines. Needs the optional extra: ``pip install -e ".[lm-eval]"``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.data.corpus import TokenStream
from lmbench.data.tokenizers import CharTokenizer, Tokenizer
from lmbench.errors import ConfigError, DataError
from lmbench.models.base import CONTEXTS, LanguageModel

log = logging.getLogger(__name__)
EXTRA = "pip install -e '.[lm-eval]'"
BLOCK_LINES = 2048  # sentence mode: lines of many requests scored in one call
GREEDY_BATCH = 256  # contexts per next_token_logprobs call for is_greedy


def require_lm_eval():
    """The ``lm_eval`` package, or a one-line error naming the install that provides it."""
    try:
        import lm_eval
        import lm_eval.api.model
        import lm_eval.api.registry
    except ImportError:
        raise ConfigError(f"lm-eval needs the optional extra: {EXTRA}") from None
    return lm_eval


def load_model_folder(
    model_dir: str | Path, *, name: str | None = None
) -> tuple[LanguageModel, Tokenizer, str]:
    """The fitted model saved in a run folder (``runs/<experiment>/<model>[/seed-<s>]``), the tokenizer its
    text was cut with, and its name. A folder holding several models needs ``name`` (one of them)."""
    from lmbench.data.subword import folder_tokenizer
    from lmbench.explore.discovery import discover_runs
    from lmbench.explore.service import load_model

    folder = Path(model_dir)
    runs = discover_runs(folder)
    if name is not None:
        runs = [r for r in runs if r.name == name]
    if not runs:
        raise DataError(f"{folder}: no finished model (a folder holding metrics.json and model.bin)" +
                        (f" named {name!r}" if name else ""))  # fmt: skip
    if len(runs) > 1:
        names = ", ".join(r.name for r in runs)
        raise DataError(f"{folder}: holds several models ({names}); name one folder or pass name=")
    run = runs[0]
    return load_model(run), folder_tokenizer(run.folder, run.tokenizer), run.name


@dataclass
class Encoded:
    """A text as lmbench tokens: its lines (ids), and where in the predicted tokens a continuation starts."""

    lines: list[np.ndarray]
    start: int  # index into the predicted tokens (words and </s> of every line) where the scored part starts
    stop: int  # end of the scored part (the final </s> included or not)


@dataclass
class OOVCount:
    """Raw-text tokens seen, those outside the vocabulary, and how often each such word came."""

    oov: int = 0
    tokens: int = 0
    by_word: dict[str, int] = field(default_factory=dict)


def _lm_base() -> type:
    """lm-eval's ``LM`` base class when lm-eval is installed (else ``object``, so this module imports)."""
    try:
        from lm_eval.api.model import LM
    except ImportError:
        return object
    return LM


class LmbenchLM(_lm_base()):  # type: ignore[misc]
    """An lmbench model folder behind lm-eval's ``LM`` interface (see the module docstring).

    Args:
        model_dir: a run folder of one model (``runs/<experiment>/<model>`` or its ``seed-<s>``).
        name: which model, when ``model_dir`` holds several.
        tokenizer: how raw text is cut (a tokenizer name or ``hf:PATH``); default: the one the run recorded.
        context: ``sentence`` (each line from ``<s>``) or ``stream``.
        eos: a continuation that ends the text predicts ``</s>`` too.
        greedy: compute ``is_greedy`` for ``loglikelihood`` (one next-token distribution per token).
        max_gen_toks: default cap on generated tokens.
    """

    def __init__(self, model_dir: str | Path | None = None, *, name: str | None = None, tokenizer: str | None = None,
                 context: str = "sentence", eos: bool | str = True, greedy: bool | str = True,
                 max_gen_toks: int | str = 256, model: LanguageModel | None = None,
                 text_tokenizer: Tokenizer | None = None, **_: Any):  # fmt: skip
        require_lm_eval()
        super().__init__()
        if context not in CONTEXTS:
            raise ConfigError(f"context: expected one of {', '.join(CONTEXTS)}, got {context!r}")
        if model is None:
            if model_dir is None:
                raise ConfigError("model_dir: the folder of a trained lmbench model is required")
            model, text_tokenizer, name = load_model_folder(model_dir, name=name)
        if tokenizer is not None:
            from lmbench.data.subword import tokenizer_from_spec

            text_tokenizer = tokenizer_from_spec(tokenizer)
        if text_tokenizer is None:
            raise ConfigError("tokenizer: needed to cut raw text for this model")
        self.model, self.tokenizer, self.name = model, text_tokenizer, name or "lmbench"
        self.vocab = model.vocab
        if self.tokenizer.subword:  # its spans and detokenizing go with the vocabulary
            self.vocab.tokenizer = self.tokenizer
        self.context = context
        self.eos = _flag(eos, "eos")
        self.greedy = _flag(greedy, "greedy")
        self.max_gen_toks = int(max_gen_toks)
        self.counts = OOVCount()

    # ------------------------------------------------------------------------------------------ text -> ids
    @property
    def oov_tokens(self) -> int:
        """Tokens of the texts seen so far that were outside the vocabulary (scored as ``<unk>``)."""
        return self.counts.oov

    def _lines(self, text: str) -> list[list[str]]:
        return self.tokenizer.tokenize_lines(text.split("\n"))

    def _count(self, lines: Sequence[Sequence[str]]) -> None:
        for line in lines:
            for token in line:
                self.counts.tokens += 1
                if token not in self.vocab:
                    self.counts.oov += 1
                    self.counts.by_word[token] = self.counts.by_word.get(token, 0) + 1

    def encode_pair(self, context: str, continuation: str) -> Encoded:
        """The text ``context + continuation`` as lines of ids and the span of the continuation's tokens.

        As lm-eval's own models do, spaces ending the context move to the continuation, and the continuation is
        what the whole text's tokens add to the context's; where the tokenizer cuts the joint differently, the
        two are tokenized apart and joined."""
        spaces = len(context) - len(context.rstrip(" "))
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self._lines(context + continuation)
        ctx = self._lines(context) if context else [[]]
        n_ctx = sum(len(line) + 1 for line in ctx) - 1  # the context's last line goes on: no </s> yet
        flat = [t for line in whole for t in (*line, "</s>")]
        flat_ctx = [t for line in ctx for t in (*line, "</s>")][:-1]
        if flat[:n_ctx] != flat_ctx:
            cont = self._lines(continuation)
            whole = [*ctx[:-1], ctx[-1] + cont[0], *cont[1:]]
        self._count(whole)
        total = sum(len(line) + 1 for line in whole)
        return Encoded([self.vocab.encode(line) for line in whole], n_ctx, total if self.eos else total - 1)

    def _logprobs(self, lines: list[np.ndarray]) -> np.ndarray:
        stream = TokenStream.from_ids(lines, self.vocab)
        if getattr(self.model, "backend", None) == "pretrained":  # it scores raw text: give it the lines
            raw = tuple(self._detokenize_line(line) for line in lines)
            stream = TokenStream.from_ids(lines, self.vocab, num_chars=sum(len(r) + 1 for r in raw))
            stream = _with_raw(stream, raw)
        return self.model.token_logprobs(stream, context=self.context)

    def _detokenize_line(self, ids: np.ndarray) -> str:
        return self.tokenizer.detokenize(self.vocab.decode(ids))

    def _contexts(self, lines: list[np.ndarray], start: int, stop: int) -> list[list[int]]:
        """The context (ids from ``<s>``) before each predicted token in ``[start, stop)``, in the model's mode."""
        targets = np.concatenate([np.append(line, self.vocab.eos_id) for line in lines]).tolist()
        out = []
        for i in range(start, stop):
            before = targets[:i]
            if self.context == "sentence":
                last_eos = max((j for j, t in enumerate(before) if t == self.vocab.eos_id), default=-1)
                before = before[last_eos + 1 :]
            out.append([self.vocab.bos_id, *before])
        return out

    # ------------------------------------------------------------------------------------------ lm-eval API
    def _logprobs_many(self, texts: list[list[np.ndarray]]) -> list[np.ndarray]:
        """Per-token log-probabilities of many texts (each a list of lines). In sentence mode every line is
        scored on its own, so the lines of many texts go through the model together, in blocks."""
        if self.context == "stream":
            return [self._logprobs(lines) for lines in texts]
        out: list[np.ndarray] = []
        block: list[list[np.ndarray]] = []
        for lines in [*texts, None]:
            if lines is not None:
                block.append(lines)
            if block and (lines is None or sum(map(len, block)) >= BLOCK_LINES):
                lp = self._logprobs([line for text in block for line in text])
                sizes = [sum(len(line) + 1 for line in text) for text in block]
                out += np.split(lp, np.cumsum(sizes)[:-1])
                block = []
        return out

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        """(log p(continuation | context), whether greedy decoding would produce every continuation token)."""
        encoded = [self.encode_pair(r.args[0], r.args[1]) for r in requests]
        logprobs = self._logprobs_many([enc.lines for enc in encoded])
        greedy = [False] * len(encoded)
        if self.greedy:
            contexts, truth, owner = [], [], []
            for i, enc in enumerate(encoded):
                targets = np.concatenate([np.append(line, self.vocab.eos_id) for line in enc.lines])
                contexts += self._contexts(enc.lines, enc.start, enc.stop)
                truth += targets[enc.start : enc.stop].tolist()
                owner += [i] * (enc.stop - enc.start)
                greedy[i] = enc.stop > enc.start
            hits = np.ones(len(truth), dtype=bool)
            for a in range(0, len(truth), GREEDY_BATCH):
                dist = self.model.next_token_logprobs(contexts[a : a + GREEDY_BATCH])
                hits[a : a + GREEDY_BATCH] = dist.argmax(axis=1) == np.asarray(truth[a : a + GREEDY_BATCH])
            for i, hit in zip(owner, hits, strict=True):
                greedy[i] = greedy[i] and bool(hit)
        self._report_oov()
        return [
            (float(lp[e.start : e.stop].sum()), g) for lp, e, g in zip(logprobs, encoded, greedy, strict=True)
        ]

    def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
        """log p of each whole text: every line's tokens and its ``</s>`` (lmbench's own total)."""
        texts = []
        for request in requests:
            lines = self._lines(request.args[0])
            self._count(lines)
            texts.append([self.vocab.encode(line) for line in lines])
        self._report_oov()
        return [float(lp.sum()) for lp in self._logprobs_many(texts)]

    def generate_until(self, requests: list[Any]) -> list[str]:
        """Greedy continuations (sampled where ``do_sample``/``temperature > 0`` is asked for), cut at the first
        ``until`` string and at most ``max_gen_toks`` tokens."""
        out = []
        for request in requests:
            context, kwargs = request.args[0], dict(request.args[1] or {})
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            limit = int(kwargs.get("max_gen_toks", self.max_gen_toks))
            temperature = float(kwargs.get("temperature", 0.0) or 0.0)
            sample = bool(kwargs.get("do_sample", False)) and temperature > 0
            rng = np.random.default_rng(int(kwargs.get("seed", 0)))
            enc = self.encode_pair(context, "")
            targets = np.concatenate([np.append(line, self.vocab.eos_id) for line in enc.lines])[
                : enc.start
            ].tolist()
            generated: list[int] = []
            text = ""
            for _ in range(limit):
                ctx = self._contexts_from(targets + generated)
                logp = self.model.next_token_logprobs([ctx])[0]
                logp[self.vocab.bos_id] = -np.inf
                if sample:
                    p = np.exp((logp - logp.max()) / temperature)
                    token = int(rng.choice(len(p), p=p / p.sum()))
                else:
                    token = int(np.argmax(logp))
                generated.append(token)
                text = self._text_of(generated, context)
                if any(u and u in text for u in until):
                    break
            for u in until:
                if u and u in text:
                    text = text[: text.index(u)]
            out.append(text)
        return out

    def _contexts_from(self, targets: list[int]) -> list[int]:
        if self.context == "sentence":
            last_eos = max((j for j, t in enumerate(targets) if t == self.vocab.eos_id), default=-1)
            targets = targets[last_eos + 1 :]
        return [self.vocab.bos_id, *targets]

    def _text_of(self, ids: list[int], context: str) -> str:
        """Generated ids as text: ``</s>`` a newline, words joined the tokenizer's way, a space before the first
        word where the context ends inside a word-level line."""
        pieces, line = [], []
        for i in ids:
            if i == self.vocab.eos_id:
                pieces.append(self.tokenizer.detokenize(self.vocab.decode(line)) + "\n")
                line = []
            else:
                line.append(i)
        if line:
            pieces.append(self.tokenizer.detokenize(self.vocab.decode(line)))
        text = "".join(pieces)
        word_level = self.vocab.tokenizer is None and not isinstance(self.tokenizer, CharTokenizer)
        if word_level and text and not text.startswith("\n") and context and not context[-1].isspace():
            text = " " + text
        return text

    def _report_oov(self) -> None:
        if self.counts.oov:
            common = sorted(self.counts.by_word.items(), key=lambda kv: -kv[1])[:5]
            log.info("%s: %d of %d tokens outside the vocabulary (scored as <unk>), e.g. %s", self.name,
                     self.counts.oov, self.counts.tokens, ", ".join(w for w, _ in common))  # fmt: skip


@dataclass
class LmEvalScore:
    """One figure of one lm-eval task: the metric (its filter dropped where it is lm-eval's ``none``), the
    value, lm-eval's standard error (None where lm-eval gives none) and the documents scored."""

    task: str
    metric: str
    value: float
    stderr: float | None
    n: int


def task_manager(tasks: Sequence[str], include_path: str | Path | Sequence[str | Path] | None = None):
    """An lm-eval TaskManager that knows every name in ``tasks``; an unknown one is a one-line ConfigError.

    Local tasks (``include_path``) are indexed alone first, since indexing lm-eval's thousands of built-in
    tasks takes tens of seconds; the built-in ones are added only when a name is not local."""
    require_lm_eval()
    from lm_eval.tasks import TaskManager

    paths = [include_path] if isinstance(include_path, (str, Path)) else list(include_path or [])
    for path in paths:
        if not Path(path).is_dir():
            raise ConfigError(f"include_path: {path}: not a folder (expected lm-eval task YAML files)")
    paths = [str(Path(p).resolve()) for p in paths]
    manager = TaskManager(include_path=paths, include_defaults=False) if paths else None
    if manager is None or _unknown(manager, tasks):
        manager = TaskManager(include_path=paths or None)
    unknown = _unknown(manager, tasks)
    if unknown:
        where = (
            f" (built-in or in {', '.join(paths)})" if paths else " (built-in; local YAML: --include-path)"
        )
        raise ConfigError(f"tasks: unknown lm-eval task {unknown[0]!r}{where}")
    return manager


def _unknown(manager: Any, tasks: Sequence[str]) -> list[str]:
    return [t for t in tasks if not manager.match_tasks([t])]


def evaluate(
    lm: LmbenchLM,
    tasks: Sequence[str],
    *,
    include_path: str | Path | Sequence[str | Path] | None = None,
    limit: int | float | None = None,
    seed: int = 0,
    bootstrap_iters: int = 1000,
    num_fewshot: int | None = None,
    manager: Any = None,
) -> tuple[list[LmEvalScore], dict[str, Any]]:
    """Run lm-eval ``tasks`` on ``lm`` (lm-eval's ``simple_evaluate``, seeded): the figures, and lm-eval's own
    results dict (without per-sample logs) for ``--output-path``."""
    require_lm_eval()
    from lm_eval import simple_evaluate

    if not tasks:
        raise ConfigError("tasks: expected at least one lm-eval task name")
    manager = manager or task_manager(tasks, include_path)
    results = simple_evaluate(model=lm, tasks=list(tasks), task_manager=manager, limit=limit, num_fewshot=num_fewshot,
                              bootstrap_iters=bootstrap_iters, log_samples=False, random_seed=seed,
                              numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed)  # fmt: skip
    if results is None:  # pragma: no cover - only on non-zero ranks of a distributed run
        return [], {}
    return scores_of(results), results


def scores_of(results: dict[str, Any]) -> list[LmEvalScore]:
    """lm-eval's ``results`` table as :class:`LmEvalScore` records, tasks in their order."""
    out = []
    samples = results.get("n-samples", {})
    for task, figures in results.get("results", {}).items():
        n = int((samples.get(task) or {}).get("effective", 0) or 0)
        for key, value in figures.items():
            if "," not in key or "_stderr," in key or not isinstance(value, (int, float)):
                continue
            metric, _, filt = key.partition(",")
            stderr = figures.get(f"{metric}_stderr,{filt}")
            stderr = float(stderr) if isinstance(stderr, (int, float)) else None
            name = metric if filt == "none" else f"{metric} ({filt})"
            out.append(LmEvalScore(task, name, float(value), stderr, n))
    return out


def write_results(results: dict[str, Any], path: str | Path) -> None:
    """lm-eval's results dict as JSON (lm-eval's own encoder for the odd values it holds)."""
    import json

    from lmbench.io import atomic_write_text

    try:
        from lm_eval.utils import handle_non_serializable
    except ImportError:  # pragma: no cover
        handle_non_serializable = str
    atomic_write_text(Path(path), json.dumps(results, indent=2, default=handle_non_serializable) + "\n")


def _flag(value: bool | str, key: str) -> bool:
    """A boolean model argument; lm-eval's ``--model_args eos=false`` passes strings."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def _with_raw(stream: TokenStream, raw: tuple[str, ...]) -> TokenStream:
    import dataclasses

    return dataclasses.replace(stream, raw_lines=raw, num_text_words=sum(len(r.split()) for r in raw))


def register() -> None:
    """Register :class:`LmbenchLM` with lm-eval under the name ``lmbench`` (idempotent)."""
    lm_eval = require_lm_eval()
    registry = lm_eval.api.registry
    try:
        if registry.get_model("lmbench") is LmbenchLM:
            return
    except (KeyError, ValueError, AttributeError):
        pass
    registry.register_model("lmbench")(LmbenchLM)


try:  # importing this module registers the model when lm-eval is there
    register()
except ConfigError:
    pass
