"""The published pretrained weights registered out of the box: SuperGradients' COCO checkpoints.

Their SHA-256 is not published, so none is pinned: the hash is recorded at the first download and
checked on every later use (see `trainwright.nn.hub.cache`).
"""

from __future__ import annotations

from trainwright.nn.hub.registry import register_pretrained_weights

__all__ = ["SG_COCO_ARCHITECTURES", "SG_MODEL_ZOO_URL", "register_published_weights"]

SG_MODEL_ZOO_URL = "https://sg-hub-nv.s3.amazonaws.com/models"
SG_COCO_ARCHITECTURES = ("yolox_n", "yolox_t", "yolox_s", "yolox_m", "yolox_l",
                         "ppyoloe_s", "ppyoloe_m", "ppyoloe_l", "ppyoloe_x")


def register_published_weights() -> None:
    """Register SuperGradients' COCO checkpoints as ``(architecture, "coco")``."""
    for architecture in SG_COCO_ARCHITECTURES:
        register_pretrained_weights(architecture, "coco", f"{SG_MODEL_ZOO_URL}/{architecture}_coco.pth")
