"""Several processes through ``torchrun`` and DistributedDataParallel.

``torchrun --nproc_per_node=N -m lmbench.cli run CONFIG`` (or ``--nnodes`` for several machines): every process
trains on its share of each global batch (rows rank, rank + N, ...), gradients are averaged by DDP, and only
rank 0 writes checkpoints and reports. The same code path runs with the gloo back-end on one CPU machine.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env() -> bool:
    """Join the process group that ``torchrun`` describes in the environment; False when not launched by it."""
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def all_reduce_sum(value: int | float, device: torch.device) -> float:
    """Sum a number over all processes (identity in a single process)."""
    if world_size() == 1:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item())
