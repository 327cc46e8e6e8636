"""Epoch-seeded data order: epoch k's order depends only on (seed, k), resumed or not."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, RandomSampler, Subset

__all__ = ["set_epoch_order"]


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) + int(epoch))


def set_epoch_order(loader, seed: int, epoch: int) -> None:
    """Fix the shuffling and worker seeds of `loader` for `epoch` from `seed + epoch`.

    Samplers with `set_epoch` (DistributedSampler and friends) get it called; a RandomSampler (a plain
    `shuffle=True` DataLoader) gets a generator seeded with seed + epoch; the loader's own generator, which
    seeds its workers, too; a dataset with `set_epoch` gets it called (its own augmentation generator in the
    main process). Iterables that are not DataLoaders are left alone.
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
    loader.generator = _epoch_generator(seed, epoch)
