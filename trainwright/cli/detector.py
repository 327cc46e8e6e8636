"""The model runner of `trainwright predict`: RGB images in, per-image detections in original pixels out.

A runner is any object with ``class_names``, ``category_ids`` and ``__call__(images) -> detections``; the
predict command knows nothing else about the model, so other model formats only need another runner.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from trainwright.cli.inference import (
    CheckpointModel,
    checkpoint_postprocess,
    load_checkpoint_model,
    prepare_image,
    to_original_pixels,
)

__all__ = ["Detector", "CheckpointDetector", "load_detector"]


class Detector(Protocol):
    """Runs a detection model on images.

    ``class_names[i]`` names class index i and ``category_ids[i]`` is its category id in the training data.
    Calling it with uint8 RGB images [H_i, W_i, 3] returns one float tensor [n_i, 6] per image: (x1, y1, x2,
    y2, score, class index) in pixels of that image, by decreasing score ([0, 6] when nothing is found).
    """

    class_names: list[str]
    category_ids: list[int]

    def __call__(self, images: list[np.ndarray]) -> list[Tensor]: ...


class CheckpointDetector:
    """A trainwright checkpoint's model with its input size and NMS (see Detector).

    NMS settings: each given flag, else the checkpoint's recipe, else the class default; the confidence
    falls back to the recipe's `visualization.conf` (what is worth drawing) rather than the metric's.
    """

    def __init__(self, cm: CheckpointModel, conf: float | None = None, iou: float | None = None):
        self.model, self.device, self.input_size = cm.model, cm.device, cm.input_size
        self.class_names, self.category_ids = cm.class_names, cm.category_ids
        self.postprocess = checkpoint_postprocess(cm, conf=conf if conf is not None else cm.visualization_conf, iou=iou)

    @torch.no_grad()
    def __call__(self, images: list[np.ndarray]) -> list[Tensor]:
        if not images:
            return []
        batch = torch.stack([prepare_image(image, self.input_size) for image in images]).to(self.device)
        results = []
        for image, rows in zip(images, self.postprocess(self.model(batch), device="cpu")):
            rows = torch.zeros(0, 6) if rows is None else rows.float()
            boxes = to_original_pixels(rows[:, :4], *image.shape[:2], self.input_size)
            results.append(torch.cat([boxes, rows[:, 4:]], dim=1))
        return results


def load_detector(path: str, conf: float | None = None, iou: float | None = None, device=None) -> Detector:
    """The runner of the model file at `path`; None settings come from the checkpoint (see CheckpointDetector)."""
    return CheckpointDetector(load_checkpoint_model(path, device), conf=conf, iou=iou)
