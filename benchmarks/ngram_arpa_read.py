"""ARPA file -> n-gram model: the pyarrow reader (well-formed files) against the pandas reader that every other
file goes through, in one process, in interleaved rounds (so both see the same machine load).

    lmbench ngram ../shared/corpora/wikitext-2/train.txt --order 5 --arpa wt2.arpa
    python benchmarks/ngram_arpa_read.py wt2.arpa [--rounds 3]

Prints wall and CPU seconds of ``NgramLM.from_arpa`` per round and their medians; the two readers must give
the same tables bit for bit (checked once).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from lmbench.models.ngram import NgramLM, arpa


def _from_arpa(path: Path, *, fast: bool) -> tuple[NgramLM, float, float]:
    """The model read with the pyarrow reader (``fast``) or the pandas one; wall and CPU seconds."""
    read_fast = arpa._read_fast
    if not fast:
        arpa._read_fast = lambda *args: None
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        model = NgramLM.from_arpa(path)
        return model, time.perf_counter() - wall, time.process_time() - cpu
    finally:
        arpa._read_fast = read_fast


def _same(a: NgramLM, b: NgramLM) -> bool:
    tables = ("keys_", "log10prob_", "log10bow_")
    return a.vocab.tokens == b.vocab.tokens and all(
        np.array_equal(x.view(np.uint8), y.view(np.uint8))
        for name in tables
        for x, y in zip(getattr(a, name), getattr(b, name), strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arpa", type=Path, help="an ARPA file (plain or .gz)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[tuple[float, float]]] = {"pandas": [], "pyarrow": []}
    for r in range(args.rounds):
        models = {}
        for name in times:
            models[name], wall, cpu = _from_arpa(args.arpa, fast=name == "pyarrow")
            times[name].append((wall, cpu))
            print(f"round {r + 1}: {name:8s} wall {wall:5.2f} s  CPU {cpu:5.2f} s", flush=True)
        if r == 0 and not _same(models["pandas"], models["pyarrow"]):
            raise SystemExit("the two readers disagree")
        del models
    medians = {
        name: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for name, v in times.items()
    }
    for name, (wall, cpu) in medians.items():
        print(f"median   {name:8s} wall {wall:5.2f} s  CPU {cpu:5.2f} s")
    print(f"pyarrow / pandas wall: {medians['pyarrow'][0] / medians['pandas'][0]:.2f}")


if __name__ == "__main__":
    main()
