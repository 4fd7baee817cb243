"""Training throughput on WikiText-2: lmbench's LSTM against a faithful re-implementation of PyTorch's
word_language_model example (default LSTM: 2 x 200 units, batch 20, bptt 35, dropout 0.2, full softmax,
log_softmax + NLLLoss, SGD lr 20, clip 0.25), measured side by side in one process, interleaved.

    python benchmarks/neural_throughput.py [--batches 10] [--rounds 9]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmbench.data import Corpus, get_tokenizer, tokenize_corpus
from lmbench.data.shared import shared_path
from lmbench.models.registry import create_model
from lmbench.training.loop import stream_batches


class ExampleRNNModel(nn.Module):
    """pytorch/examples word_language_model/model.py RNNModel (LSTM branch), as its main.py runs it."""

    def __init__(self, ntoken: int, ninp: int = 200, nhid: int = 200, nlayers: int = 2, dropout: float = 0.2):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.ntoken = ntoken
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, x, hidden):
        emb = self.drop(self.encoder(x))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden


def example_step_factory(
    ntoken: int, data: torch.Tensor, bptt: int = 35, lr: float = 20.0, clip: float = 0.25
):
    """One training step of main.py's train(): repackage hidden, forward, NLL, backward, clip, manual SGD."""
    model = ExampleRNNModel(ntoken)
    criterion = nn.NLLLoss()
    state = {"hidden": None, "i": 0}

    def step() -> int:
        i = state["i"] % (data.size(0) - 1 - bptt)
        x, y = data[i : i + bptt], data[i + 1 : i + 1 + bptt].reshape(-1)
        hidden = state["hidden"]
        if hidden is not None:
            hidden = tuple(h.detach() for h in hidden)
        model.zero_grad()
        output, hidden = model(x, hidden)
        loss = criterion(output, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
        state["hidden"], state["i"] = hidden, i + bptt
        return y.numel()

    return model, step


def ours_step_factory(train, output: str):
    model = create_model(
        "lstm",
        emb_size=200,
        hidden_size=200,
        layers=2,
        dropout=0.2,
        tie_weights=False,
        output=output,
        batch_size=20,
        seq_len=35,
    )
    model._init_net(train.vocab)
    net = model.net_
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
    batches = iter(stream_batches(train.with_markers(), 20, 35, epoch=0, seed=0, bos_id=train.vocab.bos_id))
    state = {"carry": None}

    def step() -> int:
        batch = next(batches)
        opt.zero_grad(set_to_none=True)
        loss, n, state["carry"] = model.batch_loss(net, batch, state["carry"])
        (loss / n).backward()
        nn.utils.clip_grad_norm_(net.parameters(), 0.25)
        opt.step()
        return n

    return net, step


def time_steps(step, n: int) -> float:
    """Tokens per second over ``n`` training steps, after one warm-up step."""
    step()
    start = time.perf_counter()
    tokens = sum(step() for _ in range(n))
    return tokens / (time.perf_counter() - start)


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def lstm_flops_per_token(V: int, emb: int = 200, hid: int = 200, layers: int = 2) -> float:
    """Training FLOPs per token: 3 x forward (forward + backward), matmuls only."""
    forward = sum(2 * 4 * hid * ((emb if i == 0 else hid) + hid) for i in range(layers)) + 2 * hid * V
    return 3 * forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = shared_path("corpora", "wikitext-2")
    if root is None:
        print("skipped: WikiText-2 not found (set LMBENCH_SHARED or put ../shared beside the repository)")
        return
    corpus = Corpus.from_files(root / "train.txt", root / "valid.txt", root / "test.txt")
    data = tokenize_corpus(corpus, get_tokenizer("whitespace"))
    V = len(data.vocab)
    torch.manual_seed(0)
    stream = torch.from_numpy(data.train.stream().astype(np.int64))
    rows = stream.numel() // 20
    batched = stream[: rows * 20].view(20, rows).t().contiguous()  # (rows, 20) as batchify() makes it
    contenders = {
        "example (log_softmax+NLL, SGD)": example_step_factory(V, batched)[1],
        "lmbench full softmax": ours_step_factory(data.train, "full")[1],
        "lmbench adaptive softmax": ours_step_factory(data.train, "adaptive")[1],
    }
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    peaks = []
    for _ in range(args.rounds):  # interleaved: each round measures every contender within seconds
        for name, step in contenders.items():
            rates[name].append(time_steps(step, args.batches))
        peaks.append(matmul_peak())
    peak = float(np.median(peaks))
    flops = lstm_flops_per_token(V)
    base_name = next(iter(contenders))
    print(
        f"WikiText-2 |V| = {V:,}; LSTM 2x200, batch 20, bptt 35; {args.threads} threads; "
        f"{args.rounds} interleaved rounds x {args.batches} batches"
    )
    print(
        f"fp32 matmul peak measured (2048^3, median of rounds): {peak / 1e9:.0f} GFLOP/s; "
        f"model arithmetic (full softmax): "
        f"{flops / 1e6:.1f} MFLOP per training token"
    )
    print(
        "  speed-up = median over rounds of (tokens/s / the example's tokens/s in the same round) [min, max]"
    )
    for name, values in rates.items():
        rate = float(np.median(values))
        ratios = np.array(values) / np.array(rates[base_name])
        util = (
            ""
            if "adaptive" in name
            else f", {rate * flops / 1e9:.0f} GFLOP/s = {100 * rate * flops / peak:.0f}% of peak"
        )
        print(
            f"  {name:34s} {rate:9,.0f} tokens/s  {700 / rate * 1000:6.0f} ms/batch  "
            f"{np.median(ratios):5.2f}x [{ratios.min():.2f}, {ratios.max():.2f}]{util}"
        )


if __name__ == "__main__":
    main()
