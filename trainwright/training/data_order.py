"""Epoch-seeded data order: epoch k's order depends only on (seed, k), resumed or not, on one process or many.

Under torch.distributed every process gets a disjoint share of the data (`shard_loader`): training batches
come from the same permutation of the dataset as on one process, dealt out in turn (a DistributedSampler seeded
with the training seed), so N processes with batch B see, step by step, the images one process sees with
batch N x B. Evaluation shares are disjoint and not padded, so each image is counted once.
"""

from __future__ import annotations

import inspect
import logging
import random

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    Subset,
)

from trainwright.distributed import get_rank, get_world_size, is_distributed

__all__ = ["set_epoch_order", "seed_epoch_streams", "RankShardSampler", "shard_loader"]

logger = logging.getLogger("trainwright")


def _epoch_generator(seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    # rank 0 keeps the single-process seed; other ranks get their own worker seeds (bits above 32)
    return torch.Generator().manual_seed(int(seed) + int(epoch) + (int(rank) << 32))


def set_epoch_order(loader, seed: int, epoch: int) -> None:
    """Fix the shuffling and worker seeds of `loader` for `epoch` from `seed + epoch`.

    Samplers with `set_epoch` (DistributedSampler and friends) get it called; a RandomSampler (a plain
    `shuffle=True` DataLoader) gets a generator seeded with seed + epoch; the loader's own generator, which
    seeds its workers, too (offset by the rank under torch.distributed, so each process augments differently);
    a dataset with `set_epoch` gets it called (its own augmentation generator in the main process).
    Iterables that are not DataLoaders are left alone.
    """
    if not isinstance(loader, DataLoader):
        return
    dataset = loader.dataset
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    if hasattr(dataset, "set_epoch"):  # augmentations in the main process (num_workers=0), e.g. DetectionDataset
        dataset.set_epoch(epoch)
    for sampler in (loader.sampler, getattr(loader, "batch_sampler", None)):
        if sampler is None:
            continue
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        if isinstance(sampler, RandomSampler):
            sampler.generator = _epoch_generator(seed, epoch)
        inner = getattr(sampler, "sampler", None)  # a BatchSampler wrapping a RandomSampler
        if isinstance(inner, RandomSampler) and inner is not loader.sampler:
            inner.generator = _epoch_generator(seed, epoch)
    loader.generator = _epoch_generator(seed, epoch, get_rank())


def seed_epoch_streams(seed: int, epoch: int) -> None:
    """Under torch.distributed: seed python, numpy and torch from (seed, epoch, rank) at the start of an epoch.

    Each process draws its own augmentations and dropout, and a resumed run (any number of processes) repeats
    exactly the epochs it continues. A single process keeps its streams (they are checkpointed instead).
    """
    if not is_distributed():
        return
    value = int(np.random.SeedSequence([int(seed), int(epoch), get_rank()]).generate_state(1)[0])
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


class RankShardSampler(Sampler[int]):
    """Indices rank, rank + world_size, rank + 2 world_size, ... of range(length): disjoint shares, no padding."""

    def __init__(self, length: int, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.length, self.rank, self.world_size = int(length), int(rank), int(world_size)

    def __iter__(self):
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


def _unshardable(loader: DataLoader) -> str | None:
    """Why `loader` cannot be given a per-process share automatically, or None."""
    if type(loader) is not DataLoader and not hasattr(loader, "with_sampler"):
        return f"it is a {type(loader).__name__}, not a DataLoader"
    if loader.batch_size is None or type(loader.batch_sampler) is not BatchSampler:
        return f"its batch sampler is a {type(loader.batch_sampler).__name__}"
    sampler = loader.sampler
    if isinstance(sampler, RandomSampler) and (sampler.replacement or sampler._num_samples is not None):
        return "its RandomSampler draws with replacement or a custom number of samples"
    if type(sampler) not in (RandomSampler, SequentialSampler):
        return f"its sampler is a {type(sampler).__name__}"
    return None


def _with_sampler(loader: DataLoader, sampler: Sampler) -> DataLoader:
    """A DataLoader like `loader` (same dataset, batch size, workers, collate, ...) drawing from `sampler`.

    A DataLoader subclass that knows how to copy itself (a `with_sampler` method) does it.
    """
    if hasattr(loader, "with_sampler"):
        return loader.with_sampler(sampler)
    names = [n for n in inspect.signature(DataLoader.__init__).parameters if n not in ("self", "sampler",
             "batch_sampler", "shuffle") and hasattr(loader, n)]  # fmt: skip
    return DataLoader(sampler=sampler, **{n: getattr(loader, n) for n in names})


def _is_sharded(loader: DataLoader) -> bool:
    samplers = (loader.sampler, getattr(loader.batch_sampler, "sampler", None))
    return any(isinstance(s, (DistributedSampler, RankShardSampler)) for s in samplers)


def shard_loader(loader, seed: int, training: bool, what: str = "loader"):
    """`loader` with this process's share of the data under torch.distributed (itself on one process).

    training: a DistributedSampler over the loader's order (shuffled with `seed` when it shuffled), padded so
    that every process has the same number of batches. Otherwise a RankShardSampler (no padding: metrics count
    each image once). A loader already drawing from a DistributedSampler is kept; one that cannot be rebuilt
    (another sampler, a DataLoader subclass) is kept with a warning: every process then sees all of it.
    """
    if not is_distributed() or not isinstance(loader, DataLoader) or _is_sharded(loader):
        return loader
    reason = _unshardable(loader)
    if reason is not None:
        if get_rank() == 0:
            logger.warning("The %s is not split between the %d processes (%s): each process iterates over all of "
                           "it; give it a DistributedSampler to split it", what, get_world_size(), reason)  # fmt: skip
        return loader
    rank, world = get_rank(), get_world_size()
    if training:
        shuffle = isinstance(loader.sampler, RandomSampler)
        sampler = DistributedSampler(loader.dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=int(seed))
    else:
        sampler = RankShardSampler(len(loader.dataset), rank, world)
    return _with_sampler(loader, sampler)
