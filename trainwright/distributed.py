"""Distributed-training helpers on torch.distributed; every function also works in a single process."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = [
    "DDPNotSetupException",
    "get_local_rank",
    "get_world_size",
    "get_rank",
    "is_main_process",
    "is_distributed",
    "distributed_all_reduce_tensor_average",
    "reduce_results_tuple_for_ddp",
    "get_gpu_mem_utilization",
]


class DDPNotSetupException(Exception):
    """An operation needs torch.distributed to be initialised (e.g. with torchrun) and it is not."""

    def __init__(self, message: str = "torch.distributed is not initialised; launch with torchrun or call "
                 "initialize_ddp() first"):  # fmt: skip
        super().__init__(message)


def is_distributed() -> bool:
    """True when a torch.distributed process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    """Number of processes of the group, 1 without torch.distributed."""
    return dist.get_world_size() if is_distributed() else 1


def get_rank() -> int:
    """Global rank of this process, 0 without torch.distributed."""
    return dist.get_rank() if is_distributed() else 0


def get_local_rank() -> int:
    """Rank of this process on its machine (LOCAL_RANK set by torchrun), 0 without torch.distributed."""
    if not is_distributed():
        return 0
    return int(os.environ.get("LOCAL_RANK", dist.get_rank()))


def is_main_process() -> bool:
    """Whether this process is the one that writes files and logs (global rank 0)."""
    return get_rank() == 0


def distributed_all_reduce_tensor_average(tensor: torch.Tensor, n: int) -> torch.Tensor:
    """Sum of `tensor` over all processes divided by `n` (a new tensor; `tensor` is not modified)."""
    if not is_distributed():
        raise DDPNotSetupException()
    reduced = tensor.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / n


def reduce_results_tuple_for_ddp(validation_results_tuple, device) -> tuple:
    """Average each value of `validation_results_tuple` over all processes (unchanged in a single process)."""
    if not is_distributed():
        return tuple(validation_results_tuple)
    world = get_world_size()
    values = torch.as_tensor([float(v) for v in validation_results_tuple], dtype=torch.float64, device=device)
    return tuple(distributed_all_reduce_tensor_average(values, world).tolist())


def get_gpu_mem_utilization() -> int:
    """Bytes held by the CUDA caching allocator on the current device (0 without CUDA)."""
    if not torch.cuda.is_available():
        return 0
    return int(torch.cuda.memory_reserved())
