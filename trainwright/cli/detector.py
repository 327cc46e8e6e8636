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
    VISUALIZATION_CONF,
    CheckpointModel,
    checkpoint_postprocess,
    load_checkpoint_model,
    prepare_image,
    to_original_pixels,
)
from trainwright.models.export.runtime import OnnxDetector, is_onnx_file

__all__ = ["Detector", "CheckpointDetector", "OnnxFileDetector", "load_detector"]


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
        return _detect(self.model, self.postprocess, self.input_size, self.device, images)


class OnnxFileDetector:
    """A file written by `trainwright export`, run by onnxruntime on the CPU (see Detector).

    NMS settings: each given flag, else what the file records (the NMS built into it, or the training one).
    """

    def __init__(self, path: str, conf: float | None = None, iou: float | None = None, device=None):
        onnx = OnnxDetector(path, device)
        self.model, self.device, self.input_size = onnx.model, onnx.device, onnx.input_size
        self.class_names, self.category_ids = onnx.class_names, onnx.category_ids
        self.postprocess = onnx.post_prediction_callback(conf=conf if conf is not None else VISUALIZATION_CONF, iou=iou,
                                                         max_predictions=onnx.postprocess.get("max_predictions"))

    @torch.no_grad()
    def __call__(self, images: list[np.ndarray]) -> list[Tensor]:
        return _detect(self.model, self.postprocess, self.input_size, self.device, images)


def _detect(model, postprocess, input_size, device, images: list[np.ndarray]) -> list[Tensor]:
    """Fit and pad `images`, run `model` and `postprocess`, map the boxes back to each image's pixels."""
    if not images:
        return []
    batch = torch.stack([prepare_image(image, input_size) for image in images]).to(device)
    results = []
    for image, rows in zip(images, postprocess(model(batch), device="cpu")):
        rows = torch.zeros(0, 6) if rows is None else rows.float()
        boxes = to_original_pixels(rows[:, :4], *image.shape[:2], input_size)
        results.append(torch.cat([boxes, rows[:, 4:]], dim=1))
    return results


def load_detector(path: str, conf: float | None = None, iou: float | None = None, device=None) -> Detector:
    """The runner of the model file at `path` (a checkpoint, or an `.onnx` export); None settings come from the
    file (see CheckpointDetector and OnnxFileDetector)."""
    if is_onnx_file(path):
        return OnnxFileDetector(path, conf=conf, iou=iou, device=device)
    return CheckpointDetector(load_checkpoint_model(path, device), conf=conf, iou=iou)
