"""Generation: seeded samples from the same prompts for every model, with diversity and quality measures.

distinct-n: unique n-grams / all n-grams over a model's samples; repetition (seq-rep-4, Welleck et al.
2019): the share of 4-grams in a sample that already occurred earlier in it; self-BLEU (NLTK): how much the
samples resemble each other; and the perplexity of the samples under a reference model. The first ``show``
samples of each model are returned as :class:`~lmbench.results.Sample` records, apart from the figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from lmbench.data.corpus import TokenizedCorpus, TokenStream
from lmbench.errors import ConfigError
from lmbench.results import Sample, TaskResults, TaskRow
from lmbench.tasks.base import ModelEntry, options, text_tokenizer

NAME = "generate"
MODEL_OPTIONS = (
    "reference",
)  # options naming another model of the run (task results are cached by its identity too)
DEFAULTS = {"samples": 10, "prompts": [], "prompt_tokens": 3, "max_tokens": 40, "temperature": 1.0, "top_k": 0,
            "reference": None, "split": "test", "show": 3}  # fmt: skip


def distinct_n(samples: list[list[int]], n: int) -> float:
    grams = [tuple(s[i : i + n]) for s in samples for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def repetition_rate(sample: list[int], n: int = 4) -> float:
    grams = [tuple(sample[i : i + n]) for i in range(len(sample) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def self_bleu(samples: list[list[str]]) -> float:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    if len(samples) < 2:
        return float("nan")
    smooth = SmoothingFunction().method1
    scores = [
        sentence_bleu(samples[:i] + samples[i + 1 :], s, smoothing_function=smooth)
        for i, s in enumerate(samples)
        if len(s) > 0
    ]
    return float(np.mean(scores)) if scores else float("nan")


def make_prompts(corpus: TokenizedCorpus, opts: dict[str, Any], seed: int) -> list[list[int]]:
    bos = corpus.vocab.bos_id
    if opts["prompts"]:
        tokenizer = text_tokenizer(corpus, None)  # prompts are raw outside text
        return [[bos, *corpus.encode_text(p, tokenizer).tolist()] for p in opts["prompts"]]
    data = corpus.split(opts["split"])
    lengths = np.diff(data.offsets)
    candidates = np.flatnonzero(lengths > opts["prompt_tokens"])
    rng = np.random.default_rng(seed)
    chosen = (
        rng.choice(candidates, size=min(opts["samples"], len(candidates)), replace=False)
        if len(candidates)
        else []
    )
    return [[bos, *data.line(i)[: opts["prompt_tokens"]].tolist()] for i in chosen] or [[bos]]


def validate(opts: dict[str, Any], model_names: Iterable[str]) -> None:
    """The reference must be a model of this run (checked before any training)."""
    if opts["reference"] is not None and opts["reference"] not in set(model_names):
        raise ConfigError(
            f"tasks.{NAME}.reference: {opts['reference']!r} is not a model of this run "
            f"(models: {', '.join(model_names)})"
        )
    if not isinstance(opts["prompts"], list) or not all(isinstance(p, str) for p in opts["prompts"]):
        raise ConfigError(f"tasks.{NAME}.prompts: expected a list of strings")


def run(
    config: dict[str, Any],
    models: dict[str, ModelEntry],
    corpus: TokenizedCorpus,
    *,
    seed: int,
    bootstrap: int,
) -> TaskResults:
    opts = options(NAME, config, DEFAULTS)
    validate(opts, models)
    prompts = make_prompts(corpus, opts, seed)
    vocab = corpus.vocab
    out = TaskResults()
    for name, entry in models.items():
        if entry.reference_only:
            continue
        samples = []
        for i in range(opts["samples"]):
            prompt = prompts[i % len(prompts)]
            new = entry.model.generate(prompt, opts["max_tokens"], temperature=opts["temperature"],
                                       top_k=opts["top_k"] or None, seed=seed + i)  # fmt: skip
            body = [t for t in new if t != vocab.eos_id]
            samples.append((prompt[1:], body, seed + i))
        continuations = [body for _, body, _ in samples]

        def row(
            metric: str, value: float, detail: str = "", name: str = name, n: int = len(samples)
        ) -> TaskRow:
            return TaskRow(name, NAME, metric, value, n=n, detail=detail)

        out.rows += [
            row("distinct-1", distinct_n(continuations, 1)),
            row("distinct-2", distinct_n(continuations, 2)),
            row("repetition-4", float(np.mean([repetition_rate(c) for c in continuations]))),
            row("self-bleu", self_bleu([vocab.decode(c) for c in continuations])),
            row("mean-length", float(np.mean([len(c) for c in continuations]))),
        ]
        if opts["reference"] is not None:
            reference = models[opts["reference"]].model
            lines = [np.asarray(p + b, dtype=np.int32) for p, b, _ in samples]
            stream = TokenStream.from_ids(lines, vocab)
            lp = reference.token_logprobs(stream, context="sentence")
            # only the generated continuation counts: drop the prompt's positions
            keep = np.ones(len(lp), dtype=bool)
            for start, (p, _, _) in zip(stream.target_line_starts(), samples, strict=True):
                keep[start : start + len(p)] = False
            ppl = math.exp(-lp[keep].mean()) if keep.any() else float("nan")
            out.rows.append(row("reference-perplexity", ppl, detail=f"under {opts['reference']}"))
        detokenize = corpus.tokenizer.detokenize
        out.samples += [
            Sample(name, detokenize(vocab.decode(prompt)), detokenize(vocab.decode(body)), NAME, sample_seed)
            for prompt, body, sample_seed in samples[: opts["show"]]
        ]
    return out
