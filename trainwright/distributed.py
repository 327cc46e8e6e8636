"""Distributed-training helpers on torch.distributed; every function also works in a single process."""

from __future__ import annotations

import math
import os
import sys

import torch
import torch.distributed as dist
from torch import nn

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
    "initialize_ddp",
    "restart_script_with_ddp",
    "compute_precise_bn_stats",
    "unwrap_model",
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


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel / DataParallel wrapper, or `model` itself."""
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    return model


def get_gpu_mem_utilization() -> int:
    """Bytes held by the CUDA caching allocator on the current device (0 without CUDA)."""
    if not torch.cuda.is_available():
        return 0
    return int(torch.cuda.memory_reserved())


def initialize_ddp() -> None:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, ...).

    nccl on CUDA (and the device is set to LOCAL_RANK), gloo on CPU. A no-op when already initialised.
    Learning rates and batch sizes stay per process: the effective batch is the batch size times the world size.
    """
    if is_distributed():
        return
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise DDPNotSetupException(f"initialize_ddp needs {missing} in the environment: launch with torchrun "
                                   "or restart_script_with_ddp()")  # fmt: skip
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://")


def restart_script_with_ddp(num_gpus: int | None = None) -> None:
    """Run this script again in `num_gpus` processes (default: every visible GPU) under torch's elastic launcher,
    then exit this process with status 0 when they all succeed. Each process sees torchrun's environment."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    num_gpus = torch.cuda.device_count() if num_gpus is None else int(num_gpus)
    if num_gpus < 1:
        raise ValueError(f"num_gpus must be >= 1, got {num_gpus} (no GPU visible? pass num_gpus explicitly)")
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=num_gpus, rdzv_backend="c10d",
                          rdzv_endpoint="127.0.0.1:0", run_id="trainwright", max_restarts=0, monitor_interval=1)  # fmt: skip
    elastic_launch(config=config, entrypoint=sys.executable)(*sys.argv)
    sys.exit(0)


@torch.no_grad()
def compute_precise_bn_stats(model: nn.Module, loader, precise_bn_batch_size: int, num_gpus: int) -> None:
    """Recompute BatchNorm running statistics as plain averages over about `precise_bn_batch_size` samples.

    Runs ceil(precise_bn_batch_size / (loader.batch_size * num_gpus)) batches of `loader` through `model` in train
    mode (inputs are batch[0]), each BN layer averaging its per-batch mean/var with equal weights, then averages the
    statistics over processes. Momentum and train/eval mode are restored afterwards.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return
    batch_size = getattr(loader, "batch_size", None) or 1
    num_batches = max(1, math.ceil(precise_bn_batch_size / (batch_size * max(1, num_gpus))))
    momenta = [bn.momentum for bn in bns]
    was_training = model.training
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: equal weight for every batch
    model.train()
    device = next(model.parameters()).device
    seen = 0
    for batch in loader:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        model(inputs.to(device))
        seen += 1
        if seen >= num_batches:
            break
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
        if is_distributed():
            world = get_world_size()
            bn.running_mean.copy_(distributed_all_reduce_tensor_average(bn.running_mean, world))
            bn.running_var.copy_(distributed_all_reduce_tensor_average(bn.running_var, world))
    model.train(was_training)
