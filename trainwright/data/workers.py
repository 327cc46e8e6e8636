"""What runs inside each DataLoader worker: one thread for torch and OpenCV, and seeds per worker and per epoch.

A worker is one of several processes sharing the machine with the training step, which already runs on
every core: a worker that also starts a thread per core (OpenCV's pool, torch's intra-op threads) only
adds threads that wait for each other. `WorkerSetup` keeps each worker on one thread.

Workers that live across epochs (persistent workers) are forked once; fresh workers every epoch cost a fork
of the whole training process each time, and the copy-on-write faults that follow in both processes. For
augmentations that still depend only on (seed, epoch), the loader writes a new base seed into a cell
shared with its workers before each epoch (`EpochSeedCell`), and `worker_seed` gives a worker the seed
it would have had as a fresh worker of that epoch, reseeding Python's, numpy's and torch's global
generators the first time it sees that epoch.
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import torch
from torch.utils.data import get_worker_info

__all__ = ["EpochSeedCell", "WorkerSetup", "seed_worker", "worker_seed"]

_cell: EpochSeedCell | None = None  # this worker's cell (set by WorkerSetup in the worker process)
_seen_base: int | None = None  # the epoch base seed this worker last reseeded its global generators from


class EpochSeedCell:
    """An int64 in shared memory: the base seed of the current epoch, written by the loader, read by its workers."""

    def __init__(self):
        self.value = torch.zeros((), dtype=torch.int64).share_memory_()

    def draw(self, generator: torch.Generator | None) -> int:
        """Draw the next epoch's base seed from `generator` (torch's global one when None) and publish it."""
        base = int(torch.empty((), dtype=torch.int64).random_(generator=generator))
        self.value.fill_(base)
        return base

    def read(self) -> int:
        return int(self.value)


def _seed_globals(seed: int) -> None:
    """Seed torch's, Python's and numpy's global generators in this process, as a fresh worker is."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def seed_worker(worker_id: int) -> None:
    """worker_init_fn: seed Python's and numpy's global generators from the worker's torch seed.

    torch gives each worker its own seed (base seed + worker id, a new base seed every epoch); torch
    and ``random`` are seeded with it already, numpy is not. Datasets derived from DetectionDataset
    reseed their own generator from the same seed.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def worker_seed(info) -> int:
    """The seed of this worker for the current epoch (`info`: the worker's `get_worker_info()`).

    In a worker of a loader that publishes per-epoch seeds (see `WorkerSetup`): base seed of the epoch +
    worker id, and the global generators are reseeded with it when the epoch changed. Otherwise torch's
    own worker seed, `info.seed`.
    """
    global _seen_base
    if _cell is None:
        return info.seed
    base = _cell.read()
    seed = (base + info.id) % 2**63
    if base != _seen_base:
        _seed_globals(seed)
        _seen_base = base
    return seed


class WorkerSetup:
    """worker_init_fn of `build_detection_loader`: torch and OpenCV on one thread, then the seeds.

    With `cell`, the worker follows the per-epoch base seeds the loader publishes there (see `worker_seed`);
    without, it seeds numpy and Python from torch's worker seed (`seed_worker`). `then`, a caller's own
    worker_init_fn, runs last.
    """

    def __init__(self, cell: EpochSeedCell | None = None, then=None):
        self.cell, self.then = cell, then

    def __call__(self, worker_id: int) -> None:
        global _cell, _seen_base
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        if self.cell is None:
            seed_worker(worker_id)
        else:
            _cell, _seen_base = self.cell, None
            worker_seed(get_worker_info())
        if self.then is not None:
            self.then(worker_id)
