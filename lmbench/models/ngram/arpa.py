"""ARPA back-off files (the format of KenLM, SRILM, IRSTLM): write and read, plain or gzip.

ARPA stores log10 probabilities and back-off weights; ``<s>`` gets KenLM's -99 ("never predicted").
Reading maps the file's words onto a vocabulary (given, or built from the unigram section with ``<unk>``,
``<s>``, ``</s>`` first) and rebuilds the sorted key tables, so an imported model scores like any other.
"""

from __future__ import annotations

import gzip
import io
import math
import re
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from lmbench.data.vocabulary import SPECIALS, Vocabulary
from lmbench.errors import DataError
from lmbench.io import atomic_write_bytes
from lmbench.models.ngram.counting import lookup

if TYPE_CHECKING:
    from lmbench.models.ngram.model import NgramLM

LOG10 = math.log(10.0)
NEVER = -99.0  # KenLM/SRILM's log10 "probability" of <s>


def _open(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8")


def ngram_words(model: NgramLM) -> list[np.ndarray]:
    """Word ids of every stored n-gram per order: array [rows, m] (row order = key order)."""
    V = len(model.vocab)
    out = [np.arange(V, dtype=np.int64)[:, None]]
    for m in range(2, len(model.keys_) + 1):
        keys = model.keys_[m - 1]
        out.append(np.concatenate([out[m - 2][keys // V], (keys % V)[:, None]], axis=1))
    return out


def _format_number(x: np.ndarray) -> np.ndarray:
    return np.char.mod("%.7g", x)


def write_arpa(model: NgramLM, path: str | Path) -> None:
    """Write ``model`` as ARPA (log10 values, 7 significant digits, as KenLM writes them); atomic."""
    path = Path(path)
    tokens = np.array(model.vocab.tokens, dtype=object)
    words = ngram_words(model)
    n = len(words)
    buf = io.StringIO()
    buf.write("\n\\data\\\n")
    keep = []
    for m in range(1, n + 1):
        lp = model.logprob_[m - 1] / LOG10
        mask = np.isfinite(lp) if m > 1 else np.ones(len(lp), dtype=bool)
        keep.append(mask)
        buf.write(f"ngram {m}={int(mask.sum())}\n")
    for m in range(1, n + 1):
        buf.write(f"\n\\{m}-grams:\n")
        mask = keep[m - 1]
        lp = model.logprob_[m - 1][mask] / LOG10
        lp = np.where(np.isfinite(lp), lp, NEVER)
        text = [" ".join(row) for row in tokens[words[m - 1][mask]]]
        cols = [_format_number(lp), np.array(text, dtype=object)]
        if m < n:
            cols.append(_format_number(model.logbow_[m - 1][mask] / LOG10))
        lines = ["\t".join(parts) for parts in zip(*cols, strict=True)]
        buf.write("\n".join(lines))
        buf.write("\n")
    buf.write("\n\\end\\\n")
    payload = buf.getvalue().encode("utf-8")
    atomic_write_bytes(path, gzip.compress(payload) if path.suffix == ".gz" else payload)


_HEADER = re.compile(r"^ngram (\d+)=(\d+)$")
_SECTION = re.compile(r"^\\(\d+)-grams:$")


def _parse(path: Path) -> tuple[int, dict[int, list[list[str]]]]:
    sections: dict[int, list[list[str]]] = {}
    declared: dict[int, int] = {}
    current = 0
    with _open(path, "r") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line:
                continue
            if line == "\\data\\":
                current = 0
                continue
            if line == "\\end\\":
                break
            header = _HEADER.match(line)
            if header and current == 0:
                declared[int(header.group(1))] = int(header.group(2))
                continue
            section = _SECTION.match(line)
            if section:
                current = int(section.group(1))
                sections[current] = []
                continue
            if current == 0:
                continue
            parts = line.split("\t")
            if len(parts) == 1:
                parts = line.split()
                parts = [parts[0], " ".join(parts[1 : 1 + current]), *parts[1 + current :]]
            if len(parts) not in (2, 3) or len(parts[1].split(" ")) != current:
                raise DataError(
                    f"{path}:{lineno}: malformed {current}-gram line (expected 'logprob<TAB>words[<TAB>backoff]')"
                )
            sections[current].append(parts)
    if not declared or not sections:
        raise DataError(f"{path}: not an ARPA file (no \\data\\ header or no n-gram sections)")
    for m, count in declared.items():
        if len(sections.get(m, [])) != count:
            raise DataError(
                f"{path}: header declares {count} {m}-grams but the file has {len(sections.get(m, []))}"
            )
    return max(declared), sections


def read_arpa(path: str | Path, vocab: Vocabulary | None = None) -> NgramLM:
    """An :class:`NgramLM` from an ARPA file; words outside ``vocab`` are dropped with their n-grams."""
    from lmbench.models.ngram.model import NgramLM

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    order, sections = _parse(path)
    if vocab is None:
        words = [p[1] for p in sections[1] if p[1] not in SPECIALS]
        vocab = Vocabulary([*SPECIALS, *words])
    V = len(vocab)
    model = NgramLM(order=order, smoothing="modified-kneser-ney")
    model.smoothing = "arpa"  # provenance: the estimates come from the file, not from our smoothers
    keys_, logprob_, logbow_ = [], [], []
    uni_lp = np.full(V, -np.inf)
    uni_bo = np.zeros(V)
    for parts in sections[1]:
        i = vocab.index.get(parts[1])
        if i is None:
            continue
        uni_lp[i] = float(parts[0]) * LOG10 if float(parts[0]) > NEVER else -np.inf
        uni_bo[i] = float(parts[2]) * LOG10 if len(parts) == 3 else 0.0
    uni_lp[vocab.bos_id] = -np.inf  # never predicted (KenLM writes 0 or -99 for it)
    keys_.append(np.arange(V, dtype=np.int64))
    logprob_.append(uni_lp)
    logbow_.append(uni_bo)
    for m in range(2, order + 1):
        rows = sections.get(m, [])
        ids = np.array(
            [[vocab.index.get(w, -1) for w in p[1].split(" ")] for p in rows], dtype=np.int64
        ).reshape(-1, m)
        ok = (ids >= 0).all(axis=1)
        ids = ids[ok]
        lp = np.array([float(p[0]) for p in rows], dtype=np.float64)[ok] * LOG10
        bo = np.array([float(p[2]) if len(p) == 3 else 0.0 for p in rows], dtype=np.float64)[ok] * LOG10
        # context row: walk the prefix through the lower tables
        ctx = ids[:, 0].copy()
        for j in range(1, m - 1):
            ctx = np.where(ctx >= 0, lookup(keys_[j], np.maximum(ctx, 0) * V + ids[:, j]), -1)
        if np.any(ctx < 0):
            raise DataError(f"{path}: some {m}-grams have a context that is not listed as a {m - 1}-gram")
        keys = ctx * V + ids[:, -1]
        order_idx = np.argsort(keys, kind="stable")
        keys_.append(keys[order_idx])
        logprob_.append(lp[order_idx])
        logbow_.append(bo[order_idx])
    model.keys_, model.logprob_, model.logbow_ = keys_, logprob_, logbow_
    model.discounts_ = None
    model.vocab_ = vocab
    return model
