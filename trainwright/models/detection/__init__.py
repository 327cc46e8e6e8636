"""Detection architectures, their building blocks and losses (importing the package registers the losses: "yolox_loss", "yolox_fast_loss", "ppyoloe_loss")."""

from trainwright.models.detection.anchors import Anchors
from trainwright.models.detection.ppyoloe import PPYoloE
from trainwright.models.detection.ppyoloe_loss import PPYoloELoss
from trainwright.models.detection.yolox import YoloX
from trainwright.models.detection.yolox_fast_loss import YoloXFastDetectionLoss
from trainwright.models.detection.yolox_loss import YoloXDetectionLoss

__all__ = ["Anchors", "PPYoloE", "PPYoloELoss", "YoloX", "YoloXDetectionLoss", "YoloXFastDetectionLoss"]
