"""DataLoader construction for detection: workers sized to the machine, one thread each, alive across epochs.

Why (measured on 2 cores, see the README's "Training throughput"): forking fresh workers every epoch made
the training process fault in copy-on-write pages for the whole epoch, and workers that started their
own thread pools competed with the training step's threads. Here a worker runs torch and OpenCV on one
thread (`trainwright.data.workers.WorkerSetup`), workers are forked once and kept, and their seeds still
depend only on (seed, epoch) so that a resumed run draws the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import inspect
import os

import cv2
import torch
from torch.utils.data import DataLoader, Dataset

from trainwright.data.collate import DetectionCollateFN
from trainwright.data.detection_dataset import DetectionDataset
from trainwright.data.workers import EpochSeedCell, WorkerSetup, seed_worker

__all__ = ["DetectionDataLoader", "available_cpus", "build_detection_loader", "default_num_workers", "seed_worker"]

MAX_DEFAULT_WORKERS = 8


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # platforms without sched_getaffinity
        return os.cpu_count() or 1


def default_num_workers(cpus: int | None = None) -> int:
    """Workers when none are asked for: none on up to 2 CPUs, else one per two CPUs (the step keeps every core
    busy), at most 8.

    On 2 cores a worker can only take turns with the step's two threads: loading in the main process, between
    steps, measured 2-14% faster per epoch than 1 or 2 workers (`benchmarks/epoch.py`, README "Training
    throughput").
    """
    cpus = available_cpus() if cpus is None else cpus
    return 0 if cpus <= 2 else min(cpus // 2, MAX_DEFAULT_WORKERS)


def _innermost(dataset: Dataset) -> Dataset:
    """The dataset under a chain of wrappers that keep it as `.dataset` (torch's Subset and the like)."""
    while getattr(dataset, "dataset", None) is not None:
        dataset = dataset.dataset
    return dataset


class DetectionDataLoader(DataLoader):
    """A DataLoader that starts fresh workers when its dataset's mosaic stage was switched since they started.

    Built by `build_detection_loader`. With persistent workers, each worker keeps the copy of the dataset
    it was forked with; a `set_mosaic_enabled` call in between is seen at the next epoch, which then
    starts new workers (once). `restart_workers()` does the same for any other change made to the dataset.
    """

    def __init__(self, *args, epoch_seeds: EpochSeedCell | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch_seeds = epoch_seeds
        self._workers_mosaic = None

    def __iter__(self):
        if self.num_workers > 0:
            mosaic = getattr(_innermost(self.dataset), "mosaic_enabled", None)
            if mosaic != self._workers_mosaic:
                self.restart_workers()
                self._workers_mosaic = mosaic
            if self.epoch_seeds is not None:
                self.epoch_seeds.draw(self.generator)
        return super().__iter__()

    def _get_iterator(self):
        if self.num_workers == 0:
            return super()._get_iterator()
        with opencv_pool_stopped():  # the workers are forked here
            return super()._get_iterator()

    def with_sampler(self, sampler) -> DetectionDataLoader:
        """A loader like this one (dataset, batch size, workers, seeds, collate, ...) drawing from `sampler`."""
        names = [n for n in inspect.signature(DataLoader.__init__).parameters
                 if n not in ("self", "sampler", "batch_sampler", "shuffle") and hasattr(self, n)]
        return type(self)(sampler=sampler, epoch_seeds=self.epoch_seeds, **{n: getattr(self, n) for n in names})

    def restart_workers(self) -> None:
        """Stop the workers; the next epoch starts new ones, with copies of the dataset as it is then."""
        iterator, self._iterator = self._iterator, None
        if iterator is not None:
            iterator._shutdown_workers()


@contextlib.contextmanager
def opencv_pool_stopped():
    """OpenCV on one thread while the block runs (workers are forked), then as it was.

    A fork copies OpenCV's thread pool without its threads; a child that then resizes the pool (as a worker
    setting OpenCV to one thread does) waits forever for threads that do not exist. Stopping the pool in the
    parent before forking leaves children a pool with nothing to wait for.
    """
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


def build_detection_loader(dataset: Dataset, batch_size: int, shuffle: bool = False, num_workers: int | None = None,
                           collate_fn=None, drop_last: bool = False, device=None, seed: int | None = None,
                           persistent_workers: bool | None = None, **loader_kwargs) -> DetectionDataLoader:
    """A DataLoader over a detection dataset (batches in the layout of trainwright.data.collate).

    num_workers: worker processes; None gives `default_num_workers()` (none on 2 CPUs, 2 on 4, 4 on 8).
    Each worker runs torch and OpenCV on one thread. persistent_workers: None keeps the workers alive
    across epochs when the dataset is a DetectionDataset (possibly inside a Subset), whose augmentations
    are then seeded per epoch and worker, as with fresh workers; other datasets get fresh workers each
    epoch. Either way `dataset.set_mosaic_enabled(...)` reaches the workers from the next epoch on.
    collate_fn defaults to DetectionCollateFN (CrowdDetectionCollateFN is the one for datasets built
    with with_crowd=True). Memory is pinned when ``device`` is a CUDA device (or, for device=None,
    when CUDA is available). ``seed`` fixes the shuffling order and the workers' seeds. A
    ``worker_init_fn`` given runs in each worker after these settings.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    num_workers = default_num_workers() if num_workers is None else num_workers
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an int >= 0 or None, got {num_workers!r}")
    epoch_seeded = isinstance(_innermost(dataset), DetectionDataset)
    persistent = num_workers > 0 and (epoch_seeded if persistent_workers is None else bool(persistent_workers))
    cell = EpochSeedCell() if persistent and epoch_seeded else None
    on_gpu = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DetectionDataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                               collate_fn=collate_fn or DetectionCollateFN(), drop_last=drop_last,
                               pin_memory=on_gpu,
                               worker_init_fn=WorkerSetup(cell, loader_kwargs.pop("worker_init_fn", None)),
                               generator=generator, persistent_workers=persistent, epoch_seeds=cell,
                               **loader_kwargs)
