"""Parity with the real PyTorch word_language_model example on the same WikiText-2 files: its default LSTM
(`python main.py --epochs 2`) against lmbench's `examples/recipes/pytorch-example-lstm.toml` trained for the same
epochs in float32 and with `precision = "auto"`, one after another in one run.

The example is not shipped with lmbench: pass a checkout of its folder (main.py, model.py, data.py from
github.com/pytorch/examples, word_language_model/). Prints each run's validation perplexity after every epoch and
its tokens/s over whole epochs (training plus the validation pass, as the example's epoch time counts both), and
the ratios. Targets: validation perplexity within 2% of the example's, tokens/s >= 1.5x in float32 and >= 2.5x
with `auto`.

    python benchmarks/pytorch_example_parity.py --example-dir PATH [--epochs 2] [--data-dir ../shared/corpora]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lmbench.config import load_config
from lmbench.data import get_tokenizer, tokenize_corpus
from lmbench.data.cards import data_dir, load_card_corpus
from lmbench.models.base import Budget
from lmbench.models.registry import create_model

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "recipes" / "pytorch-example-lstm.toml"
EPOCH_LINE = re.compile(r"end of epoch\s+(\d+)\s+\|\s+time:\s+([\d.]+)s.*valid ppl\s+([\d.]+)")


def run_example(example_dir: Path, corpus_dir: Path, epochs: int) -> tuple[list[float], float]:
    """The example's per-epoch validation perplexities and its tokens/s over its epochs."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "main.py", "--data", str(corpus_dir), "--epochs", str(epochs),
                   "--save", str(Path(tmp) / "model.pt")]  # fmt: skip
        done = subprocess.run(command, cwd=example_dir, capture_output=True, text=True, check=True)
    epochs_seen = [EPOCH_LINE.search(line) for line in done.stdout.splitlines()]
    rows = [(float(m.group(2)), float(m.group(3))) for m in epochs_seen if m]
    train_tokens = sum(len(line.split()) + 1 for line in (corpus_dir / "train.txt").open(encoding="utf-8"))
    seconds = sum(t for t, _ in rows)
    return [ppl for _, ppl in rows], train_tokens * len(rows) / seconds


def run_lmbench(data, epochs: int, precision: str) -> tuple[list[float], float, str]:
    """lmbench's recipe: per-epoch validation perplexities, tokens/s over its epochs, the precision used."""
    spec = next(m for m in load_config(RECIPE).models if m.family == "lstm")
    model = create_model("lstm", **{**spec.params, "precision": precision})
    started = time.perf_counter()
    model.fit(data.train, data.valid, budget=Budget(epochs=epochs))
    seconds = time.perf_counter() - started
    curve = [p["valid_perplexity"] for p in model.learning_curve_ if "valid_perplexity" in p]
    return curve, model.tokens_seen_ / seconds, model.training_precision().name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--example-dir", type=Path, required=True, help="pytorch/examples word_language_model/"
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    corpus, _ = load_card_corpus("wikitext-2", args.data_dir)
    data = tokenize_corpus(corpus, get_tokenizer("whitespace"))
    corpus_dir = data_dir(args.data_dir) / "wikitext-2"
    example_ppl, example_speed = run_example(args.example_dir, corpus_dir, args.epochs)
    print(
        f"PyTorch example  : valid ppl by epoch {[round(p, 2) for p in example_ppl]}, {example_speed:,.0f} tok/s"
    )
    for precision in ("float32", "auto"):
        ppl, speed, used = run_lmbench(data, args.epochs, precision)
        gap = 100 * (ppl[-1] / example_ppl[-1] - 1)
        print(
            f"lmbench {precision:>8} ({used}): valid ppl by epoch {[round(p, 2) for p in ppl]} ({gap:+.1f}% vs the "
            f"example), {speed:,.0f} tok/s ({speed / example_speed:.2f}x)"
        )


if __name__ == "__main__":
    main()
