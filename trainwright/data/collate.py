"""Collate functions: a list of dataset items -> the detection batch.

Batch layout: ``(images, targets)`` or, for the crowd variants, ``(images, targets, {"crowd_targets": crowd})``:
    images: float32 [B, 3, H, W] (values as the dataset gave them: RGB 0..255 by default);
    targets: float32 [N, 6] rows (image index in the batch, class, cx, cy, w, h) in input pixels;
    crowd: float32 [M, 6], same layout.
Items are ``(image, targets)`` or ``(image, targets, {"crowd_targets": crowd})`` with image [3, H, W]
(tensor or array) and targets / crowd [n, 5] rows (class, cx, cy, w, h). Rows that are all zeros are
padding (datasets that return fixed-size target arrays) and are dropped.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

DEFAULT_RESIZE_MODES = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA, cv2.INTER_LANCZOS4)


def _as_image(image, index: int) -> torch.Tensor:
    image = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"item {index}: image must be [3, H, W], got shape {tuple(image.shape)}")
    return image.float()


def _as_rows(rows, index: int, what: str) -> torch.Tensor:
    rows = torch.as_tensor(np.asarray(rows) if not isinstance(rows, torch.Tensor) else rows, dtype=torch.float32)
    rows = rows.reshape(-1, 5) if rows.numel() == 0 else rows
    if rows.ndim != 2 or rows.shape[1] != 5:
        raise ValueError(f"item {index}: {what} must be [n, 5] (class, cx, cy, w, h), got shape {tuple(rows.shape)}")
    return rows[rows.abs().sum(dim=1) > 0]


def merge_targets(per_image: list[torch.Tensor]) -> torch.Tensor:
    """[n_i, 5] per image -> [sum n_i, 6] with the image index prepended."""
    counts = torch.tensor([len(t) for t in per_image], dtype=torch.long)
    index = torch.repeat_interleave(torch.arange(len(per_image), dtype=torch.float32), counts)
    rows = torch.cat(per_image) if per_image else torch.zeros((0, 5))
    return torch.cat([index[:, None], rows], dim=1)


def _stack_images(images: list[torch.Tensor]) -> torch.Tensor:
    sizes = {tuple(im.shape) for im in images}
    if len(sizes) > 1:
        raise ValueError(f"all images of a batch must have the same shape, got {sorted(sizes)}; "
                         f"end the transforms with a Letterbox to a fixed size")
    return torch.stack(images)


class DetectionCollateFN:
    """Stack images and merge targets into [N, 6] (image index, class, cx, cy, w, h); extras are ignored."""

    def __call__(self, data) -> tuple[torch.Tensor, torch.Tensor]:
        images = [_as_image(item[0], i) for i, item in enumerate(data)]
        targets = [_as_rows(item[1], i, "targets") for i, item in enumerate(data)]
        return _stack_images(images), merge_targets(targets)


def _crowd_rows(data) -> list[torch.Tensor]:
    rows = []
    for i, item in enumerate(data):
        if len(item) < 3 or not isinstance(item[2], dict) or "crowd_targets" not in item[2]:
            raise ValueError(f"item {i}: expected (image, targets, {{'crowd_targets': ...}}); build the dataset "
                             f"with with_crowd=True or use DetectionCollateFN")
        rows.append(_as_rows(item[2]["crowd_targets"], i, "crowd_targets"))
    return rows


class CrowdDetectionCollateFN(DetectionCollateFN):
    """DetectionCollateFN plus a third element {"crowd_targets": [M, 6]} merged the same way."""

    def __call__(self, data) -> tuple[torch.Tensor, torch.Tensor, dict]:
        images, targets = super().__call__(data)
        return images, targets, {"crowd_targets": merge_targets(_crowd_rows(data))}


def _check_sizes(sizes) -> list[tuple[int, int]] | None:
    if sizes is None:
        return None
    pairs = [(s, s) if isinstance(s, int | np.integer) else tuple(s) for s in sizes]
    if not pairs or any(len(p) != 2 or min(p) <= 0 for p in pairs):
        raise ValueError(f"random_resize_sizes must be positive ints or (rows, cols) pairs, got {sizes!r}")
    return [(int(r), int(c)) for r, c in pairs]


def _draw(n: int) -> int:
    """A random index in [0, n) from torch's default generator."""
    return int(torch.randint(n, ()).item())


class PPYoloECollateFN(DetectionCollateFN):
    """DetectionCollateFN that first resizes every image of the batch to one randomly chosen size.

    random_resize_sizes: sizes to choose from, each an int (square) or (rows, cols); None: no resize.
    random_resize_modes: OpenCV interpolation flags to choose from (one per batch); None: all the
    common ones (nearest, linear, cubic, area, lanczos). Boxes are scaled with their image.

    The choice draws from torch's default generator. In a DataLoader worker the DataLoader seeds it from
    the loader's generator and the worker id (the Trainer seeds the loader's generator with seed + epoch
    every epoch); in the main process (num_workers=0) it is the process's seeded stream, which checkpoints
    save and resume restores. Either way an epoch's sizes depend only on the seed and the epoch, so a
    resumed run resizes its batches exactly as the uninterrupted run does.
    """

    def __init__(self, random_resize_sizes=None, random_resize_modes=None):
        self.random_resize_sizes = _check_sizes(random_resize_sizes)
        self.random_resize_modes = list(random_resize_modes) if random_resize_modes is not None \
            else list(DEFAULT_RESIZE_MODES)
        if not self.random_resize_modes:
            raise ValueError("random_resize_modes must not be empty")

    def __call__(self, data):
        if self.random_resize_sizes is not None:
            data = self.random_resize(data)
        return super().__call__(data)

    def random_resize(self, data) -> list:
        """Items with images resized to one random (rows, cols) and their target/crowd boxes scaled."""
        rows, cols = self.random_resize_sizes[_draw(len(self.random_resize_sizes))]
        mode = self.random_resize_modes[_draw(len(self.random_resize_modes))]
        return [self._resize_item(item, i, rows, cols, mode) for i, item in enumerate(data)]

    @staticmethod
    def _resize_item(item, index: int, rows: int, cols: int, mode: int):
        image = _as_image(item[0], index)
        h, w = image.shape[1:]
        hwc = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        resized = torch.from_numpy(cv2.resize(hwc, (cols, rows), interpolation=mode)).permute(2, 0, 1)
        scale = torch.tensor([1.0, cols / w, rows / h, cols / w, rows / h])
        out = [resized, _as_rows(item[1], index, "targets") * scale]
        if len(item) > 2 and isinstance(item[2], dict):
            extras = dict(item[2])
            if "crowd_targets" in extras:
                extras["crowd_targets"] = _as_rows(extras["crowd_targets"], index, "crowd_targets") * scale
            out.append(extras)
        return tuple(out)


class CrowdDetectionPPYoloECollateFN(PPYoloECollateFN):
    """PPYoloECollateFN plus a third element {"crowd_targets": [M, 6]} (crowd boxes resized alike)."""

    def __call__(self, data) -> tuple[torch.Tensor, torch.Tensor, dict]:
        if self.random_resize_sizes is not None:
            data = self.random_resize(data)
        images, targets = DetectionCollateFN.__call__(self, data)
        return images, targets, {"crowd_targets": merge_targets(_crowd_rows(data))}
