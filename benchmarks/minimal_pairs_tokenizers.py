"""BLiMP-format pair files (raw English) scored by a WikiText-2 model under different tokenizers for the
pair text: with the corpus's whitespace tokenizer full stops and contractions stay glued to words, both
sentences of a pair fall to the same <unk> tokens and tie; the `wikitext` tokenizer splits them WikiText's way.

    python benchmarks/minimal_pairs_tokenizers.py [--order 5] [--files lmbench/data/examples/minimal-pairs/*.jsonl]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lmbench.data import get_tokenizer, tokenize_corpus
from lmbench.data.cards import load_card_corpus
from lmbench.errors import DataError
from lmbench.models.ngram import NgramLM
from lmbench.tasks import ModelEntry, run_tasks

PAIRS = Path(__file__).resolve().parents[1] / "lmbench" / "data" / "examples" / "minimal-pairs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", type=int, default=5)
    parser.add_argument("--files", nargs="+", default=[str(p) for p in sorted(PAIRS.glob("*.jsonl"))])
    parser.add_argument("--tokenizers", nargs="+", default=["whitespace", "word", "regexp", "wikitext"])
    args = parser.parse_args()
    try:
        corpus, _ = load_card_corpus("wikitext-2")
    except DataError as e:
        print(f"skipped: {e}")
        return
    data = tokenize_corpus(corpus, get_tokenizer("whitespace"))
    start = time.perf_counter()
    model = NgramLM(args.order, "modified-kneser-ney").fit(data.train)
    print(f"WikiText-2 {args.order}-gram modified KN: fitted in {time.perf_counter() - start:.1f} s")
    entries = {f"kn{args.order}": ModelEntry(model, lambda: NgramLM(args.order))}
    print(f"{'tokenizer':11s} {'file':42s} {'pairs':>5s} {'ties':>5s} {'oov':>5s} {'accuracy':>17s}")
    for name in args.tokenizers:
        config = {
            "files": args.files,
            "distances": [],
            "last_word": False,
            "replace": False,
            "tokenizer": name,
        }
        result = run_tasks({"minimal-pairs": config}, entries, data, seed=0, bootstrap=1000)
        rows, errors = result.rows, result.errors
        for e in errors:
            print("error:", e)
        total = {"n": 0, "ties": 0, "oov": 0, "correct": 0.0}
        for r in rows:
            print(f"{name:11s} {r.file:42s} {r.n:5d} {r.ties:5d} {r.oov_items:5d} "
                  f"{r.value:.3f} [{r.low:.3f}, {r.high:.3f}]")  # fmt: skip
            total["n"] += r.n
            total["ties"] += r.ties
            total["oov"] += r.oov_items
            total["correct"] += r.value * r.n
        print(f"{name:11s} {'all files':42s} {total['n']:5d} {total['ties']:5d} {total['oov']:5d}  "
              f"{total['correct'] / total['n']:.3f}  (ties {100 * total['ties'] / total['n']:.1f}%)")  # fmt: skip


if __name__ == "__main__":
    main()
