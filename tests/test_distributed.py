"""The torchrun/DDP path on one CPU machine: 2 processes with gloo give the same model as 1 process with the
same global batch (within float tolerance)."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lmbench.data import get_tokenizer, tokenize_corpus
from lmbench.data.synthetic import SyntheticConfig, SyntheticSource
from lmbench.models.base import Budget
from lmbench.models.registry import create_model

PARAMS = {
    "precision": "float32",  # the all-reduced gradients must equal one process's to 1e-4: bf16 rounds them
    "emb_size": 16,
    "hidden_size": 16,
    "layers": 1,
    "dropout": 0.0,
    "batch_size": 8,
    "seq_len": 16,
    "lr": 1e-2,
    "warmup_steps": 5,
    "patience": 0,
}


def _data():
    corpus = SyntheticSource(SyntheticConfig(train_lines=300, valid_lines=30, test_lines=30, seed=4)).corpus()
    return tokenize_corpus(corpus, get_tokenizer("whitespace"))


def _train(family: str):
    data = _data()
    model = create_model(family, **PARAMS).fit(data.train, data.valid, budget=Budget(epochs=1))
    return model.token_logprobs(data.test, context="stream"), model.learning_curve_[-1]["valid_loss"]


def _worker(rank: int, world: int, port: int, family: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        logprobs, loss = _train(family)
        if rank == 0:
            np.save(out, np.append(logprobs, loss))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["lstm"])
def test_two_gloo_processes_match_one_process(family, tmp_path):
    torch.set_num_threads(1)
    single, single_loss = _train(family)
    out = str(tmp_path / "ddp.npy")
    mp.start_processes(
        _worker, args=(2, _free_port(), family, out), nprocs=2, join=True, start_method="spawn"
    )
    result = np.load(out)
    np.testing.assert_allclose(result[:-1], single, rtol=1e-4, atol=1e-4)
    assert result[-1] == pytest.approx(single_loss, rel=1e-5)
