"""What a Trainer does differently under torch.distributed: which device and process group, the model wrapped
in DistributedDataParallel (optionally with synchronised BatchNorm), the same decisions on every process, and a
clear error (not a hang) when a peer process is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback

import torch
import torch.distributed as dist
from torch import nn

from trainwright.distributed import (
    MultiGPUMode,
    broadcast_object,
    broadcast_tensors,
    ddp_timeout,
    get_rank,
    get_world_size,
    init_distributed,
    is_distributed,
    launched_by_torchrun,
    local_rank_from_env,
    ranks_where,
    restart_script_with_ddp,
)
from trainwright.nn.sync_batchnorm import convert_sync_batchnorm

__all__ = ["PeerLostError", "resolve_device", "wrap_model", "gradient_sync", "agree_on_stop", "all_or_none",
           "check_same_batches", "same_numbers", "sync_buffers", "is_collective_failure", "as_peer_lost"]  # fmt: skip

logger = logging.getLogger("trainwright")

ROLL_CALL_S = 10.0  # how long survivors of a failed collective wait for each other before naming the missing


class PeerLostError(ConnectionError):
    """Distributed training stopped: another process of the job was lost (died, stuck, or unreachable)."""


def _device_for(device, distributed: bool) -> torch.device:
    """`device` as a torch.device; a CUDA device without an index is cuda:LOCAL_RANK under torch.distributed."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank_from_env() if distributed else torch.cuda.current_device())
    return device


def resolve_device(device=None, multi_gpu=None) -> torch.device:
    """The device of this process, after joining torchrun's process group when launched by torchrun.

    multi_gpu (MultiGPUMode or its spellings): Off/None: one process, unless launched by torchrun; DDP: launched by
    torchrun, or the current command is relaunched on every visible GPU (`restart_script_with_ddp`); AUTO: DDP
    when launched by torchrun or when several GPUs are visible, else one process. DP is not supported.
    Under torchrun the group is joined whatever multi_gpu says: N copies of one run must not write the same files.
    """
    mode = MultiGPUMode.parse(multi_gpu)
    if mode is MultiGPUMode.DATA_PARALLEL:
        raise ValueError("multi_gpu='DP' (DataParallel) is not supported: use multi_gpu='DDP' with torchrun "
                         "(one process per GPU), which is also faster")  # fmt: skip
    distributed = is_distributed() or launched_by_torchrun()
    if not distributed and mode is not MultiGPUMode.OFF:
        gpus = torch.cuda.device_count()
        if mode is MultiGPUMode.DISTRIBUTED_DATA_PARALLEL and gpus == 0:
            raise ValueError("multi_gpu='DDP' outside torchrun relaunches the script on every GPU, and none is "
                             "visible; on CPUs launch it with `torchrun --nproc_per_node N ...`")  # fmt: skip
        if mode is MultiGPUMode.DISTRIBUTED_DATA_PARALLEL or gpus > 1:
            restart_script_with_ddp(gpus)  # returns only inside the relaunched processes
    if distributed and mode is MultiGPUMode.OFF and multi_gpu is not None and get_rank() == 0:
        logger.warning("multi_gpu=%r ignored: this process was launched by torchrun, training is distributed",
                       multi_gpu)  # fmt: skip
    resolved = _device_for(device, distributed)
    if distributed:
        init_distributed(resolved.type)
    return resolved


def wrap_model(model: nn.Module, device: torch.device, sync_bn: bool = False) -> nn.Module:
    """`model` on `device`; under torch.distributed wrapped in DistributedDataParallel, its BatchNorm layers
    synchronised first when `sync_bn` (torch's SyncBatchNorm on CUDA, ProcessGroupBatchNorm elsewhere)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not is_distributed():
        return model.to(device)
    if sync_bn:
        convert = nn.SyncBatchNorm.convert_sync_batchnorm if device.type == "cuda" else convert_sync_batchnorm
        model = convert(model)
        if get_rank() == 0:
            logger.info("sync_bn: BatchNorm statistics are computed over the batches of all %d processes",
                        get_world_size())  # fmt: skip
    model = model.to(device)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def gradient_sync(net: nn.Module, stepping: bool):
    """The context of a training batch: DDP's `no_sync()` on a batch that does not end with an optimizer step
    (its gradients accumulate locally and are averaged with the next ones), nothing otherwise."""
    if stepping or not isinstance(net, nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return net.no_sync()


def agree_on_stop(stop: bool) -> bool:
    """True on every process when any process asks to stop."""
    return bool(ranks_where(stop))


@contextlib.contextmanager
def all_or_none(what: str):
    """Run the block on every process; when it raises on some, the others raise too (naming those ranks)
    instead of going on alone into a collective that never completes."""
    try:
        yield
    except Exception:
        ranks_where(True)
        raise
    failed = ranks_where(False)
    if failed:
        raise RuntimeError(f"{what} failed on rank(s) {failed}; see their error messages")


def check_same_batches(count: int) -> None:
    """Every process must run the same number of training batches per epoch (DDP steps together)."""
    if not is_distributed():
        return
    counts: list = [None] * get_world_size()
    dist.all_gather_object(counts, int(count))
    if len(set(counts)) > 1:
        raise ValueError(f"the processes have different numbers of training batches per epoch (by rank: {counts}); "
                         "give the training loader a DistributedSampler or a plain shuffle=True/False sampler")


def same_numbers(value):
    """Rank 0's `value` on every process: decisions (best epoch, early stop) are taken from the same numbers."""
    return broadcast_object(value) if is_distributed() else value


@torch.no_grad()
def sync_buffers(module: nn.Module | None) -> None:
    """Give every process rank 0's buffers of `module` (e.g. BatchNorm running statistics, which each process
    updates from its own batches unless sync_bn)."""
    if module is None or not is_distributed():
        return
    broadcast_tensors([b for b in module.buffers() if b.numel()], src=0)


_COLLECTIVE_MARKS = ("gloo", "NCCL", "c10d", "Connection", "pair closure", "Timed out waiting")


def is_collective_failure(err: BaseException) -> bool:
    """Whether `err` comes from a collective that could not complete (a peer lost, a timeout)."""
    if isinstance(err, dist.DistError):
        return True
    if not isinstance(err, RuntimeError):
        return False
    text = str(err)
    # gloo words some failures without naming itself ("Application timeout caused pair closure"), so the frames
    # that raised it count too: a RuntimeError out of torch.distributed (DDP's own buffer broadcast included).
    return any(mark in text for mark in _COLLECTIVE_MARKS) or _raised_in_torch_distributed(err)


def _raised_in_torch_distributed(err: BaseException) -> bool:
    """Whether the innermost frames of `err`'s traceback are torch.distributed's (or DDP's) code."""
    frames = traceback.extract_tb(err.__traceback__)
    return any(
        f"torch{os.sep}distributed{os.sep}" in frame.filename
        or frame.filename.endswith(os.path.join("nn", "parallel", "distributed.py"))
        for frame in frames[-3:]
    )


def _roll_call(wait_s: float) -> list[int] | None:
    """The ranks that do not check in at the job's store within `wait_s` (None when the store is gone too)."""
    try:
        store = dist.distributed_c10d._get_default_store()
        prefix = "trainwright/roll_call/"
        store.set(f"{prefix}{get_rank()}", "here")
        deadline = time.monotonic() + wait_s
        keys = [f"{prefix}{r}" for r in range(get_world_size())]
        while True:
            missing = [r for r, key in enumerate(keys) if not store.check([key])]
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.1)
    except Exception:  # noqa: BLE001 - the store lives in a process that may be gone as well
        return None


def as_peer_lost(err: BaseException) -> PeerLostError:
    """A PeerLostError naming the ranks that did not answer after `err` broke a collective."""
    wait_s = min(ROLL_CALL_S, ddp_timeout().total_seconds())
    missing = _roll_call(wait_s)
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if missing is None:
        who = "the job's rendezvous store is unreachable too (the machine of rank 0 lost?)"
    elif missing:
        who = f"rank(s) {missing} of {get_world_size()} did not answer within {wait_s:g} s (lost or stuck)"
    else:
        who = "every rank answered afterwards"
    return PeerLostError(f"distributed training stopped on rank {get_rank()}: a collective failed ({first}); {who}")
