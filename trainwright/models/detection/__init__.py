"""Detection architectures, their building blocks and losses (importing the package registers the losses)."""

from trainwright.models.detection.anchors import Anchors
from trainwright.models.detection.yolox import YoloX
from trainwright.models.detection.yolox_fast_loss import YoloXFastDetectionLoss
from trainwright.models.detection.yolox_loss import YoloXDetectionLoss

__all__ = ["Anchors", "YoloX", "YoloXDetectionLoss", "YoloXFastDetectionLoss"]
