"""Base class of the detection datasets: loading, transforms with extra samples, the mosaic switch, item layout."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from trainwright.data.sample import DetectionSample
from trainwright.data.transforms.base import DetectionTransform, check_size
from trainwright.data.transforms.geometric import resize_to_fit
from trainwright.data.workers import worker_seed


def sample_to_item(sample: DetectionSample, with_crowd: bool):
    """The item a dataset returns (see DetectionDataset) from a transformed sample."""
    image = np.ascontiguousarray(sample.image.transpose(2, 0, 1), dtype=np.float32)
    boxes = sample.boxes
    cxcywh = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                       boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
    rows = torch.from_numpy(np.concatenate([sample.labels[:, None].astype(np.float32), cxcywh], axis=1))
    targets, crowd = rows[torch.from_numpy(~sample.is_crowd)], rows[torch.from_numpy(sample.is_crowd)]
    if with_crowd:
        return torch.from_numpy(image), targets, {"crowd_targets": crowd}
    return torch.from_numpy(image), targets


class DetectionDataset(Dataset):
    """A detection dataset: subclasses implement ``__len__`` and ``load_raw(index)``.

    Item ``dataset[i]``: ``(image, targets)``, or ``(image, targets, {"crowd_targets": crowd})`` when
    with_crowd=True, where
        image: float32 tensor [3, H, W], RGB, 0..255 (unless a Normalize transform rescales it);
        targets: float32 tensor [n, 5] rows (class index, cx, cy, w, h) in pixels of ``image``;
        crowd: float32 tensor [m, 5], same layout, the crowd regions (never part of ``targets``).
    The collate functions of trainwright.data.collate stack these into the batch layout.

    Loading: each image is first resized (aspect kept) to fit input_size (H, W) when given, then the
    transforms run in order. A transform asking for additional samples (Mosaic, MixUp) gets that many
    other images, drawn at random and loaded the same way (not when it is disabled or has prob 0).

    Randomness: one numpy Generator per process, seeded from ``seed`` in the main process (and the epoch,
    once the training loop calls ``set_epoch``) and from the DataLoader worker's seed in a worker (distinct
    per worker and per epoch, also in workers that live across epochs, see trainwright.data.workers), so
    workers never repeat each other's augmentations.
    """

    def __init__(self, transforms: list[DetectionTransform] | None = None, input_size=None, with_crowd: bool = False,
                 seed: int = 0):
        self.transforms = list(transforms or [])
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"transforms must be callables (sample, rng) -> sample, got {t!r}")
        self.input_size = None if input_size is None else check_size("input_size", input_size)
        self.with_crowd = with_crowd
        self.seed = seed
        self._epoch: int | None = None  # set by the training loop (set_epoch); None: one stream for the process
        self._rng, self._rng_key = None, None

    def __len__(self) -> int:
        raise NotImplementedError

    def load_raw(self, index: int) -> DetectionSample:
        """The sample as stored: uint8 RGB image [H, W, 3] and its annotations, boxes xyxy in pixels."""
        raise NotImplementedError

    @property
    def rng(self) -> np.random.Generator:
        """This process's generator (re-seeded in a DataLoader worker for each worker and epoch)."""
        info = get_worker_info()
        key = ("worker", worker_seed(info), None) if info is not None else ("main", self.seed, self._epoch)
        if self._rng is None or self._rng_key != key:
            entropy = key[1] % 2**63 if key[2] is None else [key[1] % 2**63, key[2]]
            self._rng, self._rng_key = np.random.default_rng(entropy), key
        return self._rng

    def set_epoch(self, epoch: int) -> None:
        """Seed the main process's generator from (seed, epoch), as workers are seeded per epoch: without
        workers too, an epoch's augmentations then depend only on them (a resumed run repeats them exactly)."""
        self._epoch = int(epoch)

    def load_sample(self, index: int) -> DetectionSample:
        """The stored sample resized to fit input_size (when set); what transforms start from."""
        sample = self.load_raw(index)
        return sample if self.input_size is None else resize_to_fit(sample, self.input_size)

    def transformed_sample(self, index: int) -> DetectionSample:
        """Sample ``index`` after all transforms."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} images")
        sample, rng = self.load_sample(index % len(self)), self.rng
        for transform in self.transforms:
            count = getattr(transform, "additional_samples_count", 0)
            if count and getattr(transform, "enabled", True) and getattr(transform, "prob", 1.0) > 0:
                sample.additional_samples = [self.load_sample(int(i)) for i in rng.integers(0, len(self), count)]
            sample = transform(sample, rng)
            sample.additional_samples = []
        return sample

    def __getitem__(self, index: int):
        return sample_to_item(self.transformed_sample(index), self.with_crowd)

    def set_mosaic_enabled(self, enabled: bool) -> None:
        """Turn the mosaic stage (Mosaic, MixUp, and RandomAffine unless built with mosaic_stage=False) on or off.

        Takes effect in DataLoader workers started afterwards: from the next epoch with the loaders of
        trainwright.data.loaders, which start new workers when they see the switch.
        """
        for transform in self.transforms:
            if getattr(transform, "mosaic_stage", False):
                transform.enabled = bool(enabled)

    @property
    def mosaic_enabled(self) -> bool:
        """Whether any mosaic-stage transform is on."""
        return any(getattr(t, "enabled", True) for t in self.transforms if getattr(t, "mosaic_stage", False))
