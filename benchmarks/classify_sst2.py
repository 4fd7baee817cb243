"""Text classification on SST-2 with language models (one per class, Bayes rule; and, with --lstm, logistic
regression on an LSTM's pooled states) beside scikit-learn's MultinomialNB (word counts) and logistic
regression (TF-IDF) on the same split: accuracy and macro-F1 with bootstrap intervals, and the time it takes.

    python benchmarks/classify_sst2.py [--max-train N] [--orders 1 2 3] [--lstm]
"""

from __future__ import annotations

import argparse
import time

from lmbench.data import Corpus, get_tokenizer, tokenize_corpus
from lmbench.data.shared import shared_path
from lmbench.models.base import Budget
from lmbench.models.ngram import NgramLM
from lmbench.models.registry import create_model
from lmbench.tasks import ModelEntry, run_tasks
from lmbench.tasks.classify import read_labelled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-train", type=int, default=None, help="training sentences per class [all]")
    parser.add_argument("--lstm", action="store_true", help="add a small LSTM (one epoch per model)")
    parser.add_argument("--orders", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    root = shared_path("corpora", "sst2")
    if root is None:
        print("skipped: SST-2 not found (set LMBENCH_SHARED or put ../shared beside the repository)")
        return
    train = read_labelled(root / "train.tsv", "sentence", "label")
    text = "\n".join(train.texts) + "\n"
    # the shared vocabulary comes from all training sentences (the classes' models share it)
    data = tokenize_corpus(Corpus.from_texts("sst2", text, "x\n", "x\n"), get_tokenizer("whitespace"))
    models = {
        f"{n}-gram KN": ModelEntry(
            NgramLM(n, "kneser-ney").fit(data.train), lambda n=n: NgramLM(n, "kneser-ney")
        )
        for n in args.orders
    }
    if args.lstm:
        params = dict(emb_size=64, hidden_size=128, layers=1, batch_size=64, seq_len=32, seed=0)
        budget = Budget(epochs=1)
        models["LSTM"] = ModelEntry(
            create_model("lstm", **params).fit(data.train, budget=budget),
            lambda: create_model("lstm", **params), budget,
        )  # fmt: skip
    config = {
        "train": str(root / "train.tsv"),
        "test": str(root / "dev.tsv"),
        "max_train": args.max_train,
        "features": True,  # show the feature classifier's row even where "auto" would drop it
    }
    start = time.perf_counter()
    result = run_tasks({"classify": config}, models, data, seed=0, bootstrap=1000)
    rows, errors = result.rows, result.errors
    seconds = time.perf_counter() - start
    for e in errors:
        print("error:", e)
    print(f"SST-2 dev ({rows[0].n} sentences), {rows[0].train_items:,} training sentences {rows[0].detail}")
    for r in rows:
        print(f"  {r.model:30s} {r.method:10s} {r.metric:9s} {r.value:.3f} [{r.low:.3f}, {r.high:.3f}]")
    print(f"  total {seconds:.1f} s for {len(models)} models")


if __name__ == "__main__":
    main()
