"""Distributed-training helpers on torch.distributed; every function also works in a single process."""

from __future__ import annotations

import contextlib
import datetime
import enum
import math
import os
import sys
import time

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
    "MultiGPUMode",
    "DDP_TIMEOUT_ENV",
    "ddp_timeout",
    "launched_by_torchrun",
    "local_rank_from_env",
    "init_distributed",
    "wait_for_everyone",
    "main_process_first",
    "ranks_where",
    "broadcast_object",
    "finish_collectives",
    "broadcast_tensors",
    "collective_device",
]

DDP_TIMEOUT_ENV = "TRAINWRIGHT_DDP_TIMEOUT"
DEFAULT_DDP_TIMEOUT_S = 1800.0
_SETTLE_TIMEOUT_S = 10.0  # finish_collectives: how long to wait for gloo's threads to drop the last tensor
_LAUNCHER_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class MultiGPUMode(str, enum.Enum):
    """How a Trainer uses several devices (the reference's names and values)."""

    OFF = "Off"  # one process
    DATA_PARALLEL = "DP"  # not supported: use DDP
    DISTRIBUTED_DATA_PARALLEL = "DDP"  # one process per device, launched by torchrun
    AUTO = "AUTO"  # DDP when launched by torchrun or when several GPUs are visible, else Off

    @classmethod
    def dict(cls) -> dict:
        """Every accepted spelling -> mode: the value, the name, both in lower case, the name in lower case without
        underscores (e.g. "distributeddataparallel"), and False for OFF."""
        out: dict = {False: cls.OFF}
        for mode in cls:
            for spelling in (mode.value, mode.name, mode.value.lower(), mode.name.lower(),
                             mode.name.lower().replace("_", "")):  # fmt: skip
                out[spelling] = mode
        return out

    @classmethod
    def parse(cls, value) -> MultiGPUMode:
        """`value` (a mode, one of `dict()`'s spellings, or None for OFF) as a MultiGPUMode."""
        if value is None or value is False:
            return cls.OFF
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            mode = cls.dict().get(value.strip().lower().replace("-", "_"))
            if mode is not None:
                return mode
        raise ValueError(f"multi_gpu must be one of {[m.value for m in cls]} (or their names), got {value!r}")


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


def local_rank_from_env() -> int:
    """LOCAL_RANK as torchrun sets it (0 when absent), usable before the process group exists."""
    return int(os.environ.get("LOCAL_RANK", 0))


def launched_by_torchrun() -> bool:
    """Whether this process is one of a torchrun job (RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT are set)."""
    return all(key in os.environ for key in _LAUNCHER_ENV)


def ddp_timeout() -> datetime.timedelta:
    """How long a collective waits for the other processes: TRAINWRIGHT_DDP_TIMEOUT seconds (default 1800).

    The process group is created with it, so a lost or stuck process ends the others' waits after at most this
    long; the barriers of `main_process_first` use it too.
    """
    raw = os.environ.get(DDP_TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return datetime.timedelta(seconds=DEFAULT_DDP_TIMEOUT_S)
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{DDP_TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{DDP_TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
    return datetime.timedelta(seconds=seconds)


def init_distributed(device_type: str) -> bool:
    """Join torchrun's process group when launched by torchrun and not joined yet; returns `is_distributed()`.

    nccl for `device_type` "cuda" (the current device becomes cuda:LOCAL_RANK), gloo otherwise; the group's
    timeout is `ddp_timeout()`. Without torchrun's environment (and no group) nothing happens.
    """
    if is_distributed() or not launched_by_torchrun():
        return is_distributed()
    timeout = ddp_timeout()
    if device_type == "cuda":
        torch.cuda.set_device(local_rank_from_env())
    dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo", init_method="env://",
                            timeout=timeout)  # fmt: skip
    return True


def initialize_ddp() -> None:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, ...).

    nccl on CUDA (and the device is set to LOCAL_RANK), gloo on CPU. A no-op when already initialised.
    Learning rates and batch sizes stay per process: the effective batch is the batch size times the world size.
    """
    if is_distributed():
        return
    missing = [k for k in _LAUNCHER_ENV if k not in os.environ]
    if missing:
        raise DDPNotSetupException(f"initialize_ddp needs {missing} in the environment: launch with torchrun "
                                   "or restart_script_with_ddp()")  # fmt: skip
    init_distributed("cuda" if torch.cuda.is_available() else "cpu")


def _relaunch_arguments() -> list[str]:
    """The current command as torch.distributed.run's arguments: `--module NAME ARGS` or `SCRIPT ARGS`."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:  # python -m package [args]
        module = spec.name[: -len(".__main__")] if spec.name.endswith(".__main__") else spec.name
        return ["--module", module, *sys.argv[1:]]
    script = sys.argv[0] if sys.argv else ""
    if not script or not os.path.isfile(script):
        raise RuntimeError(f"restart_script_with_ddp cannot relaunch this process (started as {script!r}, not a "
                           "script file or a module): launch it with torchrun instead")  # fmt: skip
    return [script, *sys.argv[1:]]


def restart_script_with_ddp(num_gpus: int | None = None) -> None:
    """Run the current command again in `num_gpus` processes (default: every visible GPU) through
    torch.distributed.run (torchrun, standalone on this machine), then exit: status 0 when every process
    succeeded, 1 (after torchrun's failure summary) otherwise. Inside a torchrun process it returns at once."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    if launched_by_torchrun():
        return
    num_gpus = torch.cuda.device_count() if num_gpus is None else int(num_gpus)
    if num_gpus < 1:
        raise ValueError(f"num_gpus must be >= 1, got {num_gpus} (no GPU visible? pass num_gpus explicitly)")
    command = _relaunch_arguments()
    args = torchrun.get_args_parser().parse_args(["--standalone", f"--nproc_per_node={num_gpus}",
                                                  "--max_restarts=0", *command])  # fmt: skip
    try:
        torchrun.run(args)
    except ChildFailedError as err:
        print(err, file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


def collective_device() -> torch.device:
    """Where tensors of a collective live: the current CUDA device on nccl, the CPU otherwise."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def finish_collectives() -> None:
    """Wait for every process, then until this process's gloo threads hold no tensor of ours (end of a run).

    Why: gloo's worker threads drop a finished collective's tensors after its caller has moved on, taking the GIL
    to do so. A process that exits in that moment aborts as the interpreter shuts down ("terminate called
    without an active exception"; seen under load at the end of a two-process run), and torchrun then stops the
    others. A last all-reduce, which every process must join, is queued behind the collectives before it; once
    its own tensor is dropped (its reference count is back), the threads have passed them all. On nccl (no such
    threads) a plain barrier. Without a group: nothing.
    """
    if not is_distributed():
        return
    if dist.get_backend() != "gloo":
        wait_for_everyone()
        return
    probe = torch.zeros(1)
    references = sys.getrefcount(probe)
    dist.all_reduce(probe)
    deadline = time.monotonic() + _SETTLE_TIMEOUT_S
    while sys.getrefcount(probe) > references and time.monotonic() < deadline:
        time.sleep(0.001)  # without the GIL, which the thread needs to drop the probe
    time.sleep(0.02)  # margin for a thread that finished an earlier collective and is not yet rescheduled


def wait_for_everyone() -> None:
    """A barrier of all processes that names the missing ranks on gloo (a monitored barrier), with `ddp_timeout()`."""
    if not is_distributed():
        return
    if dist.get_backend() == "gloo":
        dist.monitored_barrier(timeout=ddp_timeout(), wait_all_ranks=True)
    else:
        dist.barrier(device_ids=[torch.cuda.current_device()])


@contextlib.contextmanager
def main_process_first():
    """Rank 0 runs the block first, then the first process of every other machine, then the others: what the
    block writes once (a generated dataset, a download) is there for the next ones. Without a group: just runs."""
    if not is_distributed():
        yield
        return
    stage = 0 if get_rank() == 0 else 1 if get_local_rank() == 0 else 2
    for _ in range(stage):
        wait_for_everyone()
    yield
    for _ in range(stage, 3):
        wait_for_everyone()


def ranks_where(flag: bool) -> list[int]:
    """The ranks on which `flag` is true (every process calls it; a single process: [0] or [])."""
    if not is_distributed():
        return [0] if flag else []
    flags = torch.zeros(get_world_size(), device=collective_device())
    flags[get_rank()] = float(bool(flag))
    dist.all_reduce(flags)
    return flags.nonzero().flatten().tolist()


def broadcast_object(obj, src: int = 0):
    """`obj` of rank `src` on every process (picklable objects; the same object without a group)."""
    if not is_distributed():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src, device=collective_device() if dist.get_backend() == "nccl" else None)
    return holder[0]


@torch.no_grad()
def broadcast_tensors(tensors, src: int = 0) -> None:
    """Overwrite `tensors` (on the collective device or not) in place with rank `src`'s values."""
    if not is_distributed():
        return
    device = collective_device()
    for tensor in tensors:
        buffer = tensor if tensor.device == device else tensor.to(device)
        dist.broadcast(buffer, src=src)
        if buffer is not tensor:
            tensor.copy_(buffer)


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
