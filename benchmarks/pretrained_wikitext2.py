"""Bits per character of a real pretrained causal LM on WikiText-2 test, beside KN5 (and any neural report).

    python benchmarks/pretrained_wikitext2.py --model /path/to/gpt2-folder [--lines 500]

No weights are downloaded: pass a local `save_pretrained` folder (or a hub name already in $HF_HOME's cache).
"""

from __future__ import annotations

import argparse
import time

from lmbench.data import Corpus, get_tokenizer, tokenize_corpus
from lmbench.data.shared import shared_path
from lmbench.errors import LmbenchError
from lmbench.evaluation import score
from lmbench.models.ngram import NgramLM
from lmbench.models.pretrained import PretrainedLM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gpt2", help="local folder or cached hub name")
    parser.add_argument("--lines", type=int, default=500, help="test lines to score (the CPU is slow)")
    parser.add_argument("--window", type=int, default=512)
    args = parser.parse_args()
    root = shared_path("corpora", "wikitext-2")
    if root is None:
        print("skipped: WikiText-2 not found (set LMBENCH_SHARED or put ../shared beside the repository)")
        return
    corpus = Corpus.from_files(root / "train.txt", root / "valid.txt", root / "test.txt")
    corpus.test = corpus.test[: args.lines]
    data = tokenize_corpus(corpus, get_tokenizer("whitespace"))
    try:
        model = PretrainedLM(args.model, window=args.window).fit(data.train)
    except LmbenchError as e:
        print(f"skipped: {e}")
        return
    kn5 = NgramLM(5, "modified-kneser-ney").fit(data.train)
    for name, m in (("kn5", kn5), (args.model, model)):
        start = time.perf_counter()
        s = score(m.token_logprobs(data.test, context="stream"), data.test)
        print(
            f"{name:30s} word-level perplexity {s.perplexity:9.2f}  bits/char {s.bits_per_char:.4f}  ({time.perf_counter() - start:.0f} s)"
        )


if __name__ == "__main__":
    main()
