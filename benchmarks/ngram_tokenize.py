"""Text file -> token ids and vocabulary (what ``lmbench ngram TEXT`` does before counting): the compiled
whitespace splitter against the Python path (lines decoded one by one, ``str.split`` and a dictionary), in one
process, in interleaved rounds (so both see the same machine load).

    python benchmarks/ngram_tokenize.py ../shared/corpora/wikitext-2/train.txt [--rounds 3]
    python ../shared/tools/make_scale_corpus.py ../shared/corpora/wikitext-2/train.txt wt2x10.txt 10
    python benchmarks/ngram_tokenize.py wt2x10.txt

Prints wall and CPU seconds of ``encode_stream(read_lines(path))`` per round and their medians, and the
first call's load (or compile) time of the kernel; both paths must give the same ids, line offsets,
vocabulary and character count (checked once).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from lmbench.data.corpus import TokenStream, encode_stream
from lmbench.data.encoding import read_lines


class _PythonSplit:
    """The whitespace tokenizer as any other tokenizer: it takes the Python path (str lines, ``str.split``)."""

    def tokenize(self, line: str) -> list[str]:
        return line.split()


def _timed(path: Path, *, compiled: bool) -> tuple[TokenStream, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    data = encode_stream(read_lines(path), None if compiled else _PythonSplit())
    return data, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("text", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    encode_stream(["a b"])
    print(f"kernel load (or compile, on a cold numba cache): {time.perf_counter() - start:.2f} s")
    times: dict[str, list[tuple[float, float]]] = {"compiled": [], "python": []}
    for round_ in range(args.rounds):
        for name in times:
            data, wall, cpu = _timed(args.text, compiled=name == "compiled")
            times[name].append((wall, cpu))
            print(f"round {round_ + 1} {name:>8}: {wall:.3f} s wall, {cpu:.3f} s CPU")
            if round_ == 0:
                if name == "compiled":
                    reference = data
                else:
                    same = (
                        np.array_equal(data.ids, reference.ids)
                        and np.array_equal(data.offsets, reference.offsets)
                        and data.vocab.tokens == reference.vocab.tokens
                        and (data.num_chars, data.oov) == (reference.num_chars, reference.oov)
                    )
                    print(f"same ids, offsets, vocabulary and characters: {same}")
            del data
    for name, rows in times.items():
        walls, cpus = zip(*rows, strict=True)
        print(f"{name:>8} median: {statistics.median(walls):.3f} s wall, {statistics.median(cpus):.3f} s CPU")


if __name__ == "__main__":
    main()
