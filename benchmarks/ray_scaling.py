"""Wall time of one multi-model experiment run sequentially and as Ray tasks (``--executor ray --jobs N``).

The experiment (synthetic corpus, two n-grams and four neural models with equal token budgets) is run by the
``lmbench run`` command in fresh processes with empty runs folders, so each time includes everything a user
waits for: start-up, data, training, scoring and the report (and, for Ray, starting and stopping the local
cluster). The threads are chosen so tasks do not fight for cores: the sequential run gives torch every core,
each of the N Ray tasks gets cores / N. It then says whether results.csv came out byte for byte the same.

    nice -n 10 python benchmarks/ray_scaling.py [--jobs 2] [--tokens 60000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

EXPERIMENT = """
name = "ray-scaling"
seed = 0
[corpus]
name = "synthetic"
tokenizer = "whitespace"
train_lines = 3000
valid_lines = 200
test_lines = 200
[budget]
tokens = {tokens}
[[model]]
name = "kn3"
family = "ngram"
order = 3
[[model]]
name = "kn5"
family = "ngram"
order = 5
{neural}
[evaluate]
bootstrap = 100
[report]
formats = ["csv"]
"""
NEURAL = """
[[model]]
name = "{family}"
family = "{family}"
{size}
batch_size = 16
seq_len = 32
eval_every = 0
"""
RECURRENT = "emb_size = 64\nhidden_size = 128\nlayers = 1"
TRANSFORMER = "d_model = 64\nn_heads = 4\nlayers = 2\nwindow = 32"


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run(folder: Path, name: str, extra: list[str], threads: int) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "lmbench.cli", "run", "exp.toml", "-o", f"out-{name}", "--runs-dir", f"runs-{name}",
         *extra],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"lmbench run ({name}) failed: {done.stderr.strip().splitlines()[-1]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="Ray tasks at once")
    parser.add_argument("--tokens", type=int, default=60_000, help="training tokens per neural model")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each, interleaved")
    args = parser.parse_args()
    n = cores()
    per_task = max(1, n // args.jobs)
    neural = "".join(
        NEURAL.format(family=f, size=TRANSFORMER if f == "transformer" else RECURRENT)
        for f in ("rnn", "gru", "lstm", "transformer")
    )
    print(f"machine: {n} cores available to this process ({os.cpu_count()} in all); load average "
          f"{os.getloadavg()[0]:.2f} before the runs")  # fmt: skip
    print(f"experiment: 2 n-grams + rnn, gru, lstm, transformer at {args.tokens:,} training tokens each")
    times: dict[str, list[float]] = {"sequential": [], "ray": []}
    with tempfile.TemporaryDirectory(prefix="lmbench-ray-scaling-") as tmp:
        folder = Path(tmp)
        (folder / "exp.toml").write_text(EXPERIMENT.format(tokens=args.tokens, neural=neural))
        for r in range(args.rounds):
            times["sequential"].append(run(folder, f"seq{r}", [], threads=n))
            ray_args = ["--executor", "ray", "--jobs", str(args.jobs), "--threads", str(per_task)]
            times["ray"].append(run(folder, f"ray{r}", ray_args, threads=per_task))
        same = (folder / "out-seq0/results.csv").read_bytes() == (
            folder / "out-ray0/results.csv"
        ).read_bytes()
    seq, par = min(times["sequential"]), min(times["ray"])
    print(
        f"sequential (--executor local, torch threads {n}):            {seq:7.1f} s   runs {times['sequential']}"
    )
    print(
        f"ray (--jobs {args.jobs}, {per_task} thread(s) per task, local cluster):  {par:7.1f} s   runs {times['ray']}"
    )
    print(f"speed-up: {seq / par:.2f}x; results.csv byte-identical: {same}")
    if not same:
        print(
            "  (different thread counts per model can change float sums; give both the same --threads to compare)"
        )


if __name__ == "__main__":
    main()
