"""Process-group facts the single-process trainer already respects, so multi-process training
(torchrun) needs no change to the loop: each rank takes its own share of the prompts, only rank
0 writes logs and checkpoints, and metrics are averaged across ranks."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def mean_across_ranks(metrics: dict[str, float]) -> dict[str, float]:
    """The mean of each metric over ranks (identity in a single process)."""
    if not is_distributed() or not metrics:
        return metrics
    keys = sorted(metrics)
    values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        values = values.cuda()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return {k: float(v) / world_size() for k, v in zip(keys, values.tolist())}
