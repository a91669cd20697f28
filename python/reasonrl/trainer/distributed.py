"""Several processes, one policy: the process group, how the policy is wrapped, and the few
collectives the trainers need.

Launched by ``torchrun`` (which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT),
``init_distributed`` joins the process group — NCCL on GPUs, gloo on CPUs — and every rank:

- takes its own slice of each step's prompts (whole groups, so group advantages stay local);
- wraps the policy with FSDP2 (``fully_shard``: parameters, gradients and optimizer state split
  over ranks) or DDP (a full copy per rank, gradients averaged), as ``distributed.strategy`` says;
- normalises its loss by the global token / sequence count, so the averaged gradient equals the
  gradient of one process on the whole batch;
- reports metrics averaged over ranks; rank 0 writes logs and consolidated checkpoints.

In a single process every function here is the identity (or a no-op), and nothing is wrapped.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
import torch.distributed as dist

from reasonrl.config import DistributedConfig
from reasonrl.errors import ConfigError, ReasonRLError

T = TypeVar("T")
Strategy = Literal["fsdp", "ddp", "none"]

__all__ = [
    "all_reduce",
    "all_ranks_true",
    "barrier",
    "clip_grad_norm",
    "close_distributed",
    "full_model_state_dict",
    "gather_objects",
    "gathered_weights",
    "gradient_sync",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "load_full_model_state_dict",
    "load_sharded_optimizer",
    "local_rank",
    "mean_across_ranks",
    "rank",
    "rank_device",
    "resolve_strategy",
    "save_sharded_optimizer",
    "shard_frozen",
    "unwrap",
    "world_size",
    "wrap_policy",
]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """This process's index on its node (its GPU), from torchrun's LOCAL_RANK."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


# ---- the process group -------------------------------------------------------------------------


def init_distributed(backend: Literal["auto", "nccl", "gloo"] = "auto", timeout_minutes: float = 30) -> bool:
    """Joins the process group torchrun describes; returns whether there is more than one process.

    Nothing happens when WORLD_SIZE is unset or 1 (a plain ``reasonrl train``) or when a group
    already exists (the caller set it up). With CUDA, rank r uses GPU LOCAL_RANK.
    """
    if is_distributed():
        return world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ReasonRLError(
            f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but {', '.join(missing)} is not set; "
            "launch with `torchrun --nproc_per_node=N -m reasonrl train CONFIG.yaml`"
        )
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise ConfigError("distributed.backend: nccl needs CUDA GPUs; use gloo (or auto) on CPUs")
        torch.cuda.set_device(local_rank())
    # Generation and checkpoint gathering keep the other ranks waiting; the default 10 min is
    # too short for a long rollout on a large model.
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=timeout_minutes))
    return world_size() > 1


def close_distributed() -> None:
    if is_distributed():
        dist.destroy_process_group()


def rank_device() -> torch.device:
    """Where this rank computes: its own GPU (cuda:LOCAL_RANK) when there is CUDA, else the CPU."""
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")


# ---- collectives -------------------------------------------------------------------------------


def _collective_device() -> torch.device:
    # NCCL only moves CUDA tensors; gloo moves CPU tensors.
    return rank_device() if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce(values: list[float], op: Literal["sum", "max", "min"] = "sum") -> list[float]:
    """Element-wise sum / max / min of `values` over ranks, in float64 (one collective call)."""
    if not is_distributed():
        return list(values)
    ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor, op=ops[op])
    return [float(v) for v in tensor.tolist()]


def all_ranks_true(flag: bool) -> bool:
    """True only if `flag` is true on every rank: a decision every rank then takes together."""
    return bool(all_reduce([float(flag)], "min")[0])


def mean_across_ranks(metrics: dict[str, float]) -> dict[str, float]:
    """The mean of each metric over ranks (identity in a single process).

    Every rank must pass the same keys; the metrics a rank alone knows are averaged as they are.
    """
    if not is_distributed() or not metrics:
        return metrics
    keys = sorted(metrics)
    summed = all_reduce([metrics[k] for k in keys], "sum")
    return {k: v / world_size() for k, v in zip(keys, summed)}


def gather_objects(obj: T) -> list[T]:
    """`obj` from every rank, in rank order (pickled; for small things such as RNG states)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if is_distributed():
        dist.barrier()


# ---- the wrapped policy ------------------------------------------------------------------------


def resolve_strategy(config: DistributedConfig) -> Strategy:
    """``none`` in a single process whatever the config asks (nothing to shard or average)."""
    if world_size() == 1:
        return "none"
    check_strategy(config, world_size())
    return "fsdp" if config.strategy == "auto" else config.strategy


def check_strategy(config: DistributedConfig, processes: int) -> None:
    """What `processes` processes cannot do with `config`; raises ConfigError."""
    if processes > 1 and config.strategy == "none":
        raise ConfigError(
            f"distributed.strategy: 'none' under torchrun would train {processes} separate models that "
            "drift apart (nothing averages their gradients); use auto, fsdp or ddp"
        )


def _sharding_units(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The decoder layers, each one FSDP unit: Hugging Face models name their block classes in
    ``_no_split_modules`` (e.g. Qwen2DecoderLayer). Without it, the whole model is one unit —
    correct, but every forward gathers all parameters at once."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    return [m for m in model.modules() if type(m).__name__ in names]


def wrap_policy(model: torch.nn.Module, config: DistributedConfig) -> torch.nn.Module:
    """The policy as the strategy wants it: unchanged (none), sharded in place (fsdp) or inside
    DistributedDataParallel (ddp). The model must already sit on this rank's device."""
    strategy = resolve_strategy(config)
    if strategy == "none":
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return _fully_shard(model, config)


def shard_frozen(model: torch.nn.Module, config: DistributedConfig) -> torch.nn.Module:
    """A frozen model used for forward passes only (the KL reference): sharded like the policy
    under FSDP (it would otherwise cost a full copy per rank); DDP has nothing to average."""
    return _fully_shard(model, config) if resolve_strategy(config) == "fsdp" else model


def _fully_shard(model: torch.nn.Module, config: DistributedConfig) -> torch.nn.Module:
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    dtypes = {"bfloat16": torch.bfloat16, "float16": torch.float16}
    mixed = (
        MixedPrecisionPolicy(param_dtype=dtypes[config.mixed_precision], reduce_dtype=torch.float32)
        if config.mixed_precision != "none" else MixedPrecisionPolicy()
    )
    offload = CPUOffloadPolicy() if config.cpu_offload else OffloadPolicy()
    for unit in _sharding_units(model):
        fully_shard(unit, reshard_after_forward=config.reshard_after_forward, mp_policy=mixed, offload_policy=offload)
    # The root holds what is left (embeddings, final norm, LM head); it is needed again right
    # after forward by backward, so it is never resharded in between.
    fully_shard(model, reshard_after_forward=False, mp_policy=mixed, offload_policy=offload)
    return model


@contextmanager
def gathered_weights(model: torch.nn.Module, config: DistributedConfig) -> Iterator[None]:
    """Inside, an FSDP2-sharded policy holds its full weights on every rank (a no-op otherwise).

    Generation runs one forward per new token, and how many depends on when a rank's rows
    stop. Sharded, each forward would all-gather every layer (slow), and ranks that stop at
    different steps would wait on each other forever. Gathered once here, the forwards need no
    communication at all, at the cost of one full copy of the weights per rank meanwhile.
    Every rank must enter (the gathering itself is a collective).
    """
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for unit in units:
        unit.unshard()
        unit.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
            # As `_fully_shard` set them: the root never reshards after forward.
            unit.set_reshard_after_forward(unit is not model and config.reshard_after_forward, recurse=False)


def unwrap(model: torch.nn.Module) -> Any:
    """The Hugging Face model inside a DDP wrapper (FSDP2 shards in place: nothing to unwrap)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


@contextmanager
def gradient_sync(model: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """DDP all-reduces gradients in every backward; with gradient accumulation only the last
    micro-batch's needs to (``no_sync`` for the others). FSDP2 keeps reduce-scattering every
    micro-batch, which holds gradients sharded instead of full-sized in memory."""
    from torch.nn.parallel import DistributedDataParallel

    with model.no_sync() if isinstance(model, DistributedDataParallel) and not enabled else nullcontext():
        yield


def clip_grad_norm(parameters: Iterable[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """Clips to the global gradient norm and returns it as a plain 0-d tensor.

    DDP gradients are already averaged (the same on every rank); FSDP2 gradients are sharded
    DTensors, whose norm ``clip_grad_norm_`` computes over all shards (a replicated DTensor)."""
    norm = torch.nn.utils.clip_grad_norm_(list(parameters), max_norm)
    full_tensor = getattr(norm, "full_tensor", None)
    return full_tensor() if full_tensor is not None else norm


# ---- consolidated state --------------------------------------------------------------------------


def _full_options(*, cpu_offload: bool = False) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=cpu_offload)


def full_model_state_dict(model: torch.nn.Module) -> dict[str, Any]:
    """Every parameter in full, on CPU, on rank 0 (an empty dict elsewhere); a collective under
    FSDP, so every rank must call it. Keys are the Hugging Face names (no ``module.``)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_full_options(cpu_offload=True))


def load_full_model_state_dict(model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Loads full (unsharded) weights into the policy, sharding them as it goes under FSDP."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(model, state, options=_full_options())


def save_sharded_optimizer(model: torch.nn.Module, optimizer: torch.optim.Optimizer, path: Path) -> None:
    """Every rank writes its own shard of the optimizer state to the folder `path`
    (torch.distributed.checkpoint; replicated state, as under DDP, is written once), so no rank
    ever holds the whole AdamW state — 8 bytes per parameter. A collective: every rank calls.
    Several nodes need `path` on a file system they all see."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    with warnings.catch_warnings():  # "assuming ... a single process": that is meant
        warnings.filterwarnings("ignore", message=".*single process.*")
        dcp.save({"optimizer": get_optimizer_state_dict(model, optimizer)}, checkpoint_id=str(path))


def load_sharded_optimizer(model: torch.nn.Module, optimizer: torch.optim.Optimizer, path: Path) -> None:
    """Reads the state `save_sharded_optimizer` wrote, resharded for this run's ranks and
    strategy (the state is keyed by parameter name, not by rank or position)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    state = {"optimizer": get_optimizer_state_dict(model, optimizer)}  # the layout to fill in
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*single process.*")
        dcp.load(state, checkpoint_id=str(path))
    set_optimizer_state_dict(model, optimizer, state["optimizer"])

