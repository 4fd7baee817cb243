"""The attention example of a report: how a Transformer's position that predicts an ordinary test sentence's last
word looks back at its first word (on the synthetic corpus, the closer ``Z_k`` and its opener ``A_k`` 7+ tokens
earlier: the dependency no n-gram of order <= 5 can see)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lmbench.data.corpus import TokenStream
from lmbench.results import AttentionExample

FORMULA = "Attention(Q, K, V) = softmax(Q Kᵀ / √d) V"
FORMULA_TEX = r"$\mathrm{Attention}(Q,K,V)=\mathrm{softmax}\left(QK^{\top}/\sqrt{d}\right)V$"


MARKUP = set("=@#*|<>[]{}~^_\\")  # a token made only of these is markup (WikiText's "= = heading = =", "@-@")


def ordinary(words: list[str]) -> bool:
    """Whether a line reads as an ordinary sentence: no heading or markup line (``= = = 2000 – 2005 = = =``), no
    unknown word, and most tokens words (letters or digits), not punctuation or symbols."""
    if not words or words[0] in MARKUP or words[-1] in MARKUP or "<unk>" in words:
        return False
    if any(w and set(w) <= MARKUP for w in words):
        return False
    return sum(any(ch.isalnum() for ch in w) for w in words) >= 0.8 * len(words)


def attention_example(model: Any, data: TokenStream, min_words: int = 9) -> AttentionExample | None:
    """Attention of ``model`` over the first ordinary line (:func:`ordinary`) of ``data`` with at least
    ``min_words`` words that fits the model's window.

    The input is ``<s> w_1 .. w_n``; the query row is the position whose output predicts the line's last word
    (its last token with a letter or digit: the full stop is no dependency) and the key is w_1. The (layer,
    head) that puts the most weight there is the one shown; ``reason`` says why this line was chosen. ``None``
    where the model has no attention maps or no line qualifies.
    """
    if not hasattr(model, "attention_maps"):
        return None
    window = getattr(getattr(model, "net_config", None), "window", None)
    skipped = 0
    for i in range(data.num_lines):
        line = data.line(i).tolist()
        if len(line) < min_words or (window is not None and len(line) + 1 > window):
            continue
        if ordinary(data.vocab.decode(line)):
            break
        skipped += 1
    else:
        return None
    ids = [data.vocab.bos_id, *line]
    tokens = data.vocab.decode(ids)
    target = max(j for j in range(1, len(ids)) if any(ch.isalnum() for ch in tokens[j]))
    maps = np.asarray(model.attention_maps(ids))  # [layers, heads, T, T]
    query, key = target - 1, 1
    to_first = maps[:, :, query, key]
    layer, head = np.unravel_index(int(np.argmax(to_first)), to_first.shape)
    limit = f"{min_words} to {window - 1} words" if window is not None else f"at least {min_words} words"
    reason = f"the first test line ({limit}, to fit the window) that reads as an ordinary sentence" + (
        f"; {skipped} earlier line(s) of that length were headings, markup or held unknown words"
        if skipped
        else ""
    )
    return AttentionExample(
        tokens=tokens,
        query=query,
        key=key,
        target=target,
        reason=reason,
        layer=int(layer),
        head=int(head),
        weight=float(to_first[layer, head]),
        uniform_weight=1.0 / (query + 1),  # what a head spreading evenly over the prefix would give
        to_first=np.round(to_first, 4).tolist(),
        weights=np.round(maps[layer, head], 4).tolist(),
    )
