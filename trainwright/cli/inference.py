"""The pieces `evaluate` and `predict` share: the model of a checkpoint, image preparation, box mapping back."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from trainwright.checkpoints import load_checkpoint_to_model, read_ckpt_state_dict
from trainwright.data.sample import DetectionSample
from trainwright.data.transforms import detection_val_transforms
from trainwright.data.transforms.geometric import fit_scale, resize_to_fit
from trainwright.models import get_model
from trainwright.models.detection.postprocess import DetectionPostPredictionCallback
from trainwright.nn.checkpoint_keys import EMA_NET, PROCESSING_PARAMS
from trainwright.recipes.architectures import family_of
from trainwright.recipes.detection import VISUALIZATION_CONF

__all__ = ["CheckpointModel", "load_checkpoint_model", "checkpoint_postprocess", "prepare_image", "to_original_pixels"]


@dataclass
class CheckpointModel:
    """A model rebuilt from a trainwright checkpoint, in eval mode, with what it was trained with."""

    model: nn.Module
    class_names: list[str]
    category_ids: list[int]
    input_size: tuple[int, int]
    valid_data: dict | None
    postprocess: dict  # the recipe's `postprocess` section (NMS settings)
    visualization_conf: float  # the recipe's `visualization.conf`: the confidence worth drawing
    device: torch.device
    architecture: str = ""  # the model's registry name (picks the NMS of its family)


def load_checkpoint_model(path: str, device=None) -> CheckpointModel:
    """Rebuild the model of checkpoint `path` from its processing_params and load its (EMA, when saved) weights."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = read_ckpt_state_dict(path)
    params = ckpt.get(PROCESSING_PARAMS) if isinstance(ckpt, dict) else None
    if not params or "architecture" not in params or "class_names" not in params:
        raise ValueError(f"{path} has no processing_params with the architecture and class names; only "
                         f"checkpoints written by `trainwright train` can be evaluated or run")
    names = list(params["class_names"])
    model = get_model(params["architecture"], num_classes=len(names), **dict(params.get("arch_params") or {}))
    load_checkpoint_to_model(model, path, strict="on", load_ema_as_net=EMA_NET in ckpt)
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    size = params.get("input_size") or [640, 640]
    visualization_conf = (params.get("visualization") or {}).get("conf", VISUALIZATION_CONF)
    return CheckpointModel(model.to(device).eval(), names, list(params.get("category_ids") or range(1, len(names) + 1)),
                           (int(size[0]), int(size[1])), params.get("valid_data"), dict(params.get("postprocess") or {}),
                           float(visualization_conf), device, str(params["architecture"]))


def checkpoint_postprocess(cm: CheckpointModel, **flags) -> DetectionPostPredictionCallback:
    """The NMS of a checkpoint's model family (YOLOX or PP-YOLOE): each setting from `flags` (command-line values,
    None when not given), else from the checkpoint's recipe (its `postprocess` section), else the family's default."""
    given = {name: value for name, value in flags.items() if value is not None}
    return family_of(cm.architecture).post_prediction({**cm.postprocess, **given})


def prepare_image(image: np.ndarray, input_size: tuple[int, int]) -> Tensor:
    """uint8 RGB [H, W, 3] -> float [3, h, w] as the validation pipeline makes it (fit, then pad bottom-right)."""
    sample = DetectionSample(image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool))
    sample = resize_to_fit(sample, input_size)
    for transform in detection_val_transforms(input_size):
        sample = transform(sample, None)
    return torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1), dtype=np.float32))


def to_original_pixels(boxes: Tensor, height: int, width: int, input_size: tuple[int, int]) -> Tensor:
    """xyxy boxes [n, 4] in model-input pixels -> pixels of the original height x width image (clipped)."""
    r = fit_scale(height, width, input_size)
    scale_x, scale_y = max(1, round(width * r)) / width, max(1, round(height * r)) / height  # as resize_to_fit
    out = boxes / boxes.new_tensor([scale_x, scale_y, scale_x, scale_y])
    out[:, 0::2] = out[:, 0::2].clamp(0, width)
    out[:, 1::2] = out[:, 1::2].clamp(0, height)
    return out
