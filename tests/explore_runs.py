"""A small evolution-like run folder (synthetic corpus; n-grams, an LSTM and a Transformer on tiny budgets)
for the explore and report tests."""

from __future__ import annotations

from pathlib import Path

SMALL_LADDER = """
name = "small-ladder"
seed = 0

[corpus]
name = "synthetic"
tokenizer = "whitespace"
train_lines = 600
valid_lines = 60
test_lines = 60

[budget]
tokens = 6000

[[model]]
name = "unigram"
family = "ngram"
order = 1
smoothing = "witten-bell"

[[model]]
name = "kn3"
family = "ngram"
order = 3
smoothing = "kneser-ney"

[[model]]
name = "lstm"
family = "lstm"
emb_size = 16
hidden_size = 16
batch_size = 8
seq_len = 16
dropout = 0.0
eval_every = 10

[[model]]
name = "transformer"
family = "transformer"
d_model = 16
n_heads = 2
layers = 2
window = 32
dropout = 0.0
batch_size = 8
warmup_steps = 5
eval_every = 10

[evaluate]
context = ["sentence"]
splits = ["valid", "test"]
bootstrap = 50

[report]
baseline = "kn3"
"""


def make_small_run(folder: Path) -> tuple[Path, dict]:
    """Train the small ladder into ``folder/runs``; returns the runs folder and the run's results."""
    import torch

    from lmbench.config import load_config
    from lmbench.experiment import run_experiment

    torch.set_num_threads(1)
    config_path = folder / "small-ladder.toml"
    config_path.write_text(SMALL_LADDER, encoding="utf-8")
    runs = folder / "runs"
    results = run_experiment(load_config(config_path), runs)
    return runs, results
