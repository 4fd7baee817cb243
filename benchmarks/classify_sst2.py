"""Generative text classification on SST-2 with language models (one per class, Bayes rule): accuracy and
macro-F1 with bootstrap intervals, and the time it takes.

    python benchmarks/classify_sst2.py [--max-train 5000] [--orders 1 2 3]
"""

from __future__ import annotations

import argparse
import time

from lmbench.data import Corpus, get_tokenizer, tokenize_corpus
from lmbench.data.shared import shared_path
from lmbench.models.ngram import NgramLM
from lmbench.tasks import ModelEntry, run_tasks
from lmbench.tasks.classify import read_labelled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-train", type=int, default=5000, help="training sentences per class")
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    root = shared_path("corpora", "sst2")
    if root is None:
        print("skipped: SST-2 not found (set LMBENCH_SHARED or put ../shared beside the repository)")
        return
    train = read_labelled(root / "train.tsv", "sentence", "label")
    text = "\n".join(train["text"]) + "\n"
    # the shared vocabulary comes from all training sentences (the classes' models share it)
    data = tokenize_corpus(Corpus.from_texts("sst2", text, "x\n", "x\n"), get_tokenizer("whitespace"))
    models = {
        f"{n}-gram KN": ModelEntry(
            NgramLM(n, "kneser-ney").fit(data.train), lambda n=n: NgramLM(n, "kneser-ney")
        )
        for n in args.orders
    }
    config = {
        "train": str(root / "train.tsv"),
        "test": str(root / "dev.tsv"),
        "max_train": args.max_train,
        "max_test": 10_000,
    }
    start = time.perf_counter()
    rows, errors = run_tasks({"classify": config}, models, data, seed=0, bootstrap=1000)
    seconds = time.perf_counter() - start
    for e in errors:
        print("error:", e)
    print(
        f"SST-2 dev (872 sentences), generative classification, {args.max_train:,} training sentences per class"
    )
    for r in rows:
        print(f"  {r['model']:12s} {r['metric']:9s} {r['value']:.3f} [{r['low']:.3f}, {r['high']:.3f}]")
    print(f"  total {seconds:.1f} s for {len(models)} models")


if __name__ == "__main__":
    main()
