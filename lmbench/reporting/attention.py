"""The attention example of a report: how a Transformer's position that predicts a sentence's last word
looks back at its first word (on the synthetic corpus, the closer ``Z_k`` and its opener ``A_k`` 7+ tokens
earlier: the dependency no n-gram of order <= 5 can see)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lmbench.data.corpus import TokenStream

FORMULA = "Attention(Q, K, V) = softmax(Q Kᵀ / √d) V"
FORMULA_TEX = r"$\mathrm{Attention}(Q,K,V)=\mathrm{softmax}\left(QK^{\top}/\sqrt{d}\right)V$"


def attention_example(model: Any, data: TokenStream, min_words: int = 9) -> dict[str, Any] | None:
    """Attention of ``model`` over the first line of ``data`` with at least ``min_words`` words.

    The input is ``<s> w_1 .. w_n``; the query row is position n - 1 (whose output predicts w_n) and the
    key is w_1. The (layer, head) that puts the most weight there is the one shown. ``None`` where the
    model has no attention maps or no line is long enough.
    """
    if not hasattr(model, "attention_maps"):
        return None
    window = getattr(getattr(model, "net_config", None), "window", None)
    for i in range(data.num_lines):
        line = data.line(i).tolist()
        if len(line) >= min_words and (window is None or len(line) + 1 <= window):
            break
    else:
        return None
    ids = [data.vocab.bos_id, *line]
    maps = np.asarray(model.attention_maps(ids))  # [layers, heads, T, T]
    query, key = len(ids) - 2, 1
    to_first = maps[:, :, query, key]
    layer, head = np.unravel_index(int(np.argmax(to_first)), to_first.shape)
    return {
        "tokens": data.vocab.decode(ids),
        "query": query,
        "key": key,
        "layer": int(layer),
        "head": int(head),
        "weight": float(to_first[layer, head]),
        "uniform_weight": 1.0 / (query + 1),  # what a head spreading evenly over the prefix would give
        "to_first": np.round(to_first, 4).tolist(),
        "weights": np.round(maps[layer, head], 4).tolist(),
    }
