"""Minimal pairs: does the model prefer a real sentence over a corrupted copy?

Corruptions of sampled test sentences: two words swapped at distance d (d = 1 is the adjacent swap), a
word replaced by another of similar training frequency, and the last word replaced by another sentence's
last word (a long-range agreement break wherever a sentence's end depends on its beginning). Accuracy by corruption and distance shows an n-gram's
blind spot beyond its order. User pair files (JSONL ``{"good", "bad"}`` or BLiMP's ``sentence_good`` /
``sentence_bad`` with its phenomenon fields) are scored the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lmbench.data.corpus import TokenizedCorpus, TokenStream
from lmbench.errors import DataError
from lmbench.tasks.base import ModelEntry, metric_row, options

NAME = "minimal-pairs"
DEFAULTS = {
    "sentences": 500,
    "distances": [1, 2, 4, 8, 16],
    "replace": True,
    "last_word": True,
    "files": [],
    "split": "test",
    "min_length": 0,
}


def sentence_logprob(model, lines: list[np.ndarray], vocab) -> np.ndarray:
    stream = TokenStream.from_ids(lines, vocab)
    lp = model.token_logprobs(stream, context="sentence")
    return np.add.reduceat(lp, stream.target_line_starts())


def make_pairs(
    data: TokenStream, vocab, opts: dict[str, Any], seed: int
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(detail, good, bad) triples; swaps need two different words so the pair really differs."""
    rng = np.random.default_rng(seed)
    lengths = np.diff(data.offsets)
    pairs = []
    for d in opts["distances"]:
        candidates = np.flatnonzero(lengths > max(d, opts["min_length"]))
        if len(candidates) == 0:
            continue
        for i in rng.choice(candidates, size=min(opts["sentences"], len(candidates)), replace=False):
            good = data.line(i).copy()
            starts = np.flatnonzero(good[: len(good) - d] != good[d:])
            if len(starts) == 0:
                continue
            j = int(rng.choice(starts))
            bad = good.copy()
            bad[j], bad[j + d] = good[j + d], good[j]
            pairs.append((f"corruption=swap;distance={d}", good, bad))
    if opts["last_word"]:
        # the last word taken from another sentence: breaks agreement with the start of a long sentence
        # (the synthetic corpus's matching closer), which a short n-gram window cannot see
        candidates = np.flatnonzero(lengths > 1)
        lasts = (
            np.array([data.line(i)[-1] for i in candidates])
            if len(candidates)
            else np.zeros(0, dtype=np.int64)
        )
        for i in (
            rng.choice(candidates, size=min(opts["sentences"], len(candidates)), replace=False)
            if len(candidates)
            else []
        ):
            good = data.line(i).copy()
            others = lasts[lasts != good[-1]]
            if len(others):
                bad = good.copy()
                bad[-1] = int(rng.choice(others))
                pairs.append(("corruption=last-word", good, bad))
    if opts["replace"]:
        counts = np.array([vocab.counts.get(t, 0) for t in vocab.tokens])
        order = np.argsort(counts, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        candidates = np.flatnonzero(lengths > 0)
        for i in rng.choice(candidates, size=min(opts["sentences"], len(candidates)), replace=False):
            good = data.line(i).copy()
            j = int(rng.integers(len(good)))
            r = rank[good[j]]
            # a neighbour in frequency rank (similar frequency), never a special token or the same word
            for offset in rng.permutation(np.r_[-5:0, 1:6]):
                k = order[np.clip(r + offset, 0, len(order) - 1)]
                if k > 2 and k != good[j]:
                    bad = good.copy()
                    bad[j] = k
                    pairs.append(("corruption=replace", good, bad))
                    break
    return pairs


def read_pair_file(path: Path, corpus: TokenizedCorpus) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """JSONL pairs: ``{"good", "bad"}`` or BLiMP's ``{"sentence_good", "sentence_bad", "UID", ...}``."""
    if not path.is_file():
        raise DataError(f"{path}: pair file not found")
    pairs = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
        good, bad = item.get("good", item.get("sentence_good")), item.get("bad", item.get("sentence_bad"))
        if not isinstance(good, str) or not isinstance(bad, str):
            raise DataError(
                f"{path}:{lineno}: expected 'good'/'bad' (or BLiMP's 'sentence_good'/'sentence_bad') strings"
            )
        phenomenon = item.get("UID") or item.get("linguistics_term") or item.get("field") or ""
        detail = f"file={path.name}" + (f";phenomenon={phenomenon}" if phenomenon else "")
        encode = lambda s: corpus.vocab.encode(corpus.tokenizer.tokenize(s))  # noqa: E731
        pairs.append((detail, encode(good), encode(bad)))
    if not pairs:
        raise DataError(f"{path}: pair file is empty")
    return pairs


def run(
    config: dict[str, Any],
    models: dict[str, ModelEntry],
    corpus: TokenizedCorpus,
    *,
    seed: int,
    bootstrap: int,
) -> list[dict]:
    opts = options(NAME, config, DEFAULTS)
    pairs = make_pairs(corpus.split(opts["split"]), corpus.vocab, opts, seed)
    for file in opts["files"]:
        pairs += read_pair_file(Path(file), corpus)
    if not pairs:
        raise DataError(f"tasks.{NAME}: no pairs could be made from the {opts['split']} split")
    details = np.array([p[0] for p in pairs])
    rows = []
    for name, entry in models.items():
        good = sentence_logprob(entry.model, [p[1] for p in pairs], corpus.vocab)
        bad = sentence_logprob(entry.model, [p[2] for p in pairs], corpus.vocab)
        # ties count half; totals of the same words summed in another order may differ in the last bits
        tie = np.isclose(good, bad, rtol=1e-12, atol=0.0)
        correct = np.where(tie, 0.5, np.where(good > bad, 1.0, 0.0))
        for detail in dict.fromkeys(details):
            rows.append(
                metric_row(
                    name,
                    NAME,
                    "accuracy",
                    correct[details == detail],
                    detail=detail,
                    bootstrap=bootstrap,
                    seed=seed,
                )
            )
        # BLiMP-style breakdown also by file as a whole
        for file in {d.split(";")[0] for d in details if d.startswith("file=")}:
            mask = np.char.startswith(details.astype(str), file)
            rows.append(
                metric_row(name, NAME, "accuracy", correct[mask], detail=file, bootstrap=bootstrap, seed=seed)
            )
    return rows
