"""Detection architectures and their building blocks."""

from trainwright.models.detection.anchors import Anchors
from trainwright.models.detection.ppyoloe import PPYoloE
from trainwright.models.detection.yolox import YoloX

__all__ = ["Anchors", "PPYoloE", "YoloX"]
