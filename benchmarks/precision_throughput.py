"""bfloat16 mixed precision against float32, side by side in one process: the same LSTM (2 x 200, full softmax,
the PyTorch example's shape) trained on WikiText-2 twice from the same seed, one optimisation step of each in
turn so both see the same load, then each scored on the whole validation split in float32.

Prints each precision's training tokens/s (median over steps), the ratio, and the validation perplexity after
the same tokens (the target: bf16 >= 1.8x float32 tokens/s, perplexities within 2%). With ``--compile`` a third
contender trains the float32 network through ``torch.compile``.

    python benchmarks/precision_throughput.py [--tokens 120000] [--data-dir ../shared/corpora] [--compile]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from lmbench.data import get_tokenizer, tokenize_corpus
from lmbench.data.cards import load_card_corpus
from lmbench.models.registry import create_model
from lmbench.training.loop import Trainer
from lmbench.training.precision import cpu_has_native_bf16

SETTINGS = {
    "emb_size": 200,
    "hidden_size": 200,
    "layers": 2,
    "dropout": 0.2,
    "tie_weights": False,
    "output": "full",
    "batch_size": 20,
    "seq_len": 35,
    "lr": 3e-3,
    "warmup_steps": 50,
    "seed": 0,
}


class Contender:
    """One model and its Trainer, stepped by hand so two precisions can take turns."""

    def __init__(self, name: str, precision: str, train, *, compiled: bool = False):
        self.name = name
        self.model = create_model("lstm", **SETTINGS, precision=precision)
        self.model._init_net(train.vocab)
        net = self.model.net_
        self.trainer = Trainer(self.model.train_config, progress=False)
        batches = self.model._training_batches(train)
        self.run = self.trainer.start_run(
            net, batches, self.model.batch_loss, device=torch.device("cpu"),
            trained=torch.compile(net) if compiled else None, initial_carry=self.model.initial_carry,
            epoch_tokens=train.num_predicted,
        )  # fmt: skip
        self.batches = iter(batches(0))
        self.seconds: list[float] = []

    def step(self) -> None:
        batch = next(self.batches)
        started = time.perf_counter()
        self.trainer._step(self.run, batch)
        self.seconds.append(time.perf_counter() - started)

    @property
    def tokens(self) -> int:
        return self.run.state.tokens

    def tokens_per_second(self) -> float:
        per_step = self.tokens / max(len(self.seconds), 1)
        return per_step / float(np.median(self.seconds[3:] or self.seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=120_000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile on the float32 net")
    args = parser.parse_args()

    corpus, _ = load_card_corpus("wikitext-2", args.data_dir)
    data = tokenize_corpus(corpus, get_tokenizer("whitespace"))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {cpu_has_native_bf16()}"
    )
    contenders = [Contender("float32", "float32", data.train), Contender("bfloat16", "bfloat16", data.train)]
    if args.compile:
        contenders.append(Contender("float32+compile", "float32", data.train, compiled=True))
    while any(c.tokens < args.tokens for c in contenders):
        for c in contenders:  # one step each in turn: the same moments of load for every contender
            if c.tokens < args.tokens:
                c.step()
    base = contenders[0].tokens_per_second()
    for c in contenders:
        started = time.perf_counter()
        lp = c.model.token_logprobs(data.valid, context="stream")
        valid = math.exp(-float(lp.mean()))
        print(
            f"{c.name:>16}: {c.tokens_per_second():8,.0f} tok/s ({c.tokens_per_second() / base:.2f}x float32), "
            f"valid perplexity after {c.tokens:,} tokens {valid:8.2f} (scored in {time.perf_counter() - started:.0f} s)"
        )


if __name__ == "__main__":
    main()
