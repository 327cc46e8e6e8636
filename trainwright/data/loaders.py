"""DataLoader construction for detection: seeded workers, pinned memory on GPU, non-persistent workers."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trainwright.data.collate import DetectionCollateFN


def seed_worker(worker_id: int) -> None:
    """worker_init_fn: seed Python's and numpy's global generators from the worker's torch seed.

    torch gives each worker its own seed (base seed + worker id, a new base seed every epoch); torch
    and ``random`` are seeded with it already, numpy is not. Datasets derived from DetectionDataset
    reseed their own generator from the same seed.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def build_detection_loader(dataset: Dataset, batch_size: int, shuffle: bool = False, num_workers: int = 2,
                           collate_fn=None, drop_last: bool = False, device=None, seed: int | None = None,
                           **loader_kwargs) -> DataLoader:
    """A DataLoader over a detection dataset (batches in the layout of trainwright.data.collate).

    collate_fn defaults to DetectionCollateFN (CrowdDetectionCollateFN is the one for datasets built
    with with_crowd=True). Memory is pinned when ``device`` is a CUDA device (or, for device=None,
    when CUDA is available). Workers are never persistent: each epoch starts fresh workers, so a
    change such as ``dataset.set_mosaic_enabled(False)`` reaches them. ``seed`` fixes the shuffling
    order and the workers' seeds.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    if loader_kwargs.get("persistent_workers"):
        raise ValueError("persistent_workers=True would hide set_mosaic_enabled() changes from the workers")
    loader_kwargs.pop("persistent_workers", None)
    on_gpu = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      collate_fn=collate_fn or DetectionCollateFN(), drop_last=drop_last, pin_memory=on_gpu,
                      worker_init_fn=seed_worker if num_workers > 0 else None, generator=generator,
                      persistent_workers=False, **loader_kwargs)
