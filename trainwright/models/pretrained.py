"""What the models add to the pretrained-weights registry (`trainwright.nn.hub`): the adapter of SuperGradients'
published YOLOX layout, and the dataset facts that come with weights pretrained on COCO."""

from __future__ import annotations

from trainwright.models.coco_classes import COCO_CATEGORY_IDS, COCO_CLASS_NAMES
from trainwright.models.detection.yolox_layouts import adapt_sg_yolox_state_dict
from trainwright.nn.hub import register_state_dict_adapter

__all__ = ["YOLOX_ARCHITECTURES", "pretrained_processing_params", "register_model_adapters"]

YOLOX_ARCHITECTURES = ("yolox_n", "yolox_t", "yolox_s", "yolox_m", "yolox_l", "yolox_x")

_PROCESSING_PARAMS = {
    "coco": {"class_names": list(COCO_CLASS_NAMES), "category_ids": list(COCO_CATEGORY_IDS), "input_size": [640, 640]},
}


def register_model_adapters() -> None:
    """Let the published YOLOX weights (SuperGradients' earlier layout) load into trainwright's YOLOX."""
    for name in YOLOX_ARCHITECTURES:
        register_state_dict_adapter(name, adapt_sg_yolox_state_dict)


def pretrained_processing_params(dataset: str) -> dict:
    """Class names, COCO category ids and input size of a model pretrained on ``dataset`` (empty when unknown)."""
    params = _PROCESSING_PARAMS.get(dataset, {})
    return {key: list(value) for key, value in params.items()}
