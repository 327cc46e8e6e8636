"""Ready-made transform lists for training and validation (YOLOX-style augmentation)."""

from __future__ import annotations

from trainwright.data.transforms.base import DetectionTransform, check_size
from trainwright.data.transforms.color import HSVJitter
from trainwright.data.transforms.geometric import HorizontalFlip, Letterbox, RandomAffine
from trainwright.data.transforms.mixup import MixUp
from trainwright.data.transforms.mosaic import Mosaic


def detection_train_transforms(input_size=(640, 640), mosaic_prob: float = 1.0, mixup_prob: float = 0.0,
                               degrees: float = 10.0, translate: float = 0.1, scales=(0.5, 1.5), shear: float = 2.0,
                               mixup_scale=(0.5, 1.5), hsv_prob: float = 1.0, hsv_gains=(0.015, 0.7, 0.4),
                               flip_prob: float = 0.5, fill_value: int = 114) -> list[DetectionTransform]:
    """Mosaic -> RandomAffine -> MixUp -> HSVJitter -> HorizontalFlip -> Letterbox, all to input_size (H, W).

    Mosaic, RandomAffine and MixUp form the mosaic stage that ``set_mosaic_enabled(False)`` turns off;
    the Letterbox at the end then pads the plain image to input_size.
    """
    size = check_size("input_size", input_size)
    return [
        Mosaic(size, prob=mosaic_prob, fill_value=fill_value),
        RandomAffine(degrees, translate, scales, shear, output_size=size, fill_value=fill_value),
        MixUp(prob=mixup_prob, mixup_scale=mixup_scale, fill_value=fill_value),
        HSVJitter(hsv_prob, *hsv_gains),
        HorizontalFlip(flip_prob),
        Letterbox(size, fill_value=fill_value),
    ]


def detection_val_transforms(input_size=(640, 640), fill_value: int = 114) -> list[DetectionTransform]:
    """Letterbox to input_size (H, W): the deterministic evaluation pipeline."""
    return [Letterbox(check_size("input_size", input_size), fill_value=fill_value)]
