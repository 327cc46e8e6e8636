"""Detection transforms: each maps a DetectionSample to a new one with boxes kept consistent."""

from trainwright.data.transforms.base import DetectionTransform
from trainwright.data.transforms.color import HSVJitter, Normalize
from trainwright.data.transforms.geometric import HorizontalFlip, Letterbox, RandomAffine
from trainwright.data.transforms.mixup import MixUp
from trainwright.data.transforms.mosaic import Mosaic, get_mosaic_coordinate
from trainwright.data.transforms.presets import detection_train_transforms, detection_val_transforms

__all__ = [
    "DetectionTransform",
    "HSVJitter",
    "HorizontalFlip",
    "Letterbox",
    "MixUp",
    "Mosaic",
    "Normalize",
    "RandomAffine",
    "detection_train_transforms",
    "detection_val_transforms",
    "get_mosaic_coordinate",
]
