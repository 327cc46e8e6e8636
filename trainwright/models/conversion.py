"""Turn checkpoints of other projects into trainwright checkpoints: the official YOLOX (Megvii) weights.

| official file | trainwright architecture |
|---|---|
| yolox_nano.pth | yolox_n (depth 0.33, width 0.25, depthwise-separable convs) |
| yolox_tiny.pth | yolox_t (0.33 / 0.375) |
| yolox_s.pth | yolox_s (0.33 / 0.5) |
| yolox_m.pth | yolox_m (0.67 / 0.75) |
| yolox_l.pth | yolox_l (1.0 / 1.0) |
| yolox_x.pth | yolox_x (1.33 / 1.25) |

The result holds the weights under ``net`` in trainwright's layout (it loads with ``StrictLoad.ON``) and
``processing_params`` (architecture, COCO class names and category ids for 80-class files, input size),
so ``trainwright predict`` / ``evaluate`` and ``models.get(checkpoint_path=...)`` take it as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from trainwright._version import __version__
from trainwright.models import get_model, list_models
from trainwright.models.coco_classes import COCO_CATEGORY_IDS, COCO_CLASS_NAMES
from trainwright.models.detection.yolox_layouts import (
    OFFICIAL_STEM_KEY,
    OFFICIAL_STEMS,
    infer_official_yolox_architecture,
    official_num_classes,
    official_yolox_to_trainwright,
    strip_module_prefix,
)
from trainwright.models.factory import resolve_model_name
from trainwright.nn.checkpoint_keys import NET, PROCESSING_PARAMS
from trainwright.nn.state_dict import describe_mismatch, state_dict_mismatch

__all__ = ["ConvertedCheckpoint", "convert_official_yolox"]

# Test size of the official models: 416 for nano and tiny, 640 for the others.
_OFFICIAL_INPUT_SIZE = {"yolox_n": 416, "yolox_t": 416}


@dataclass
class ConvertedCheckpoint:
    """A converted checkpoint (``checkpoint`` is what to save) and what it holds."""

    architecture: str
    num_classes: int
    checkpoint: dict


def convert_official_yolox(checkpoint: Mapping, architecture: str | None = None,
                           source: str = "<checkpoint>") -> ConvertedCheckpoint:
    """An official YOLOX checkpoint (``{"model": state_dict, ...}`` or a bare state dict) in trainwright's layout.

    ``architecture`` (e.g. ``"yolox_s"``) is inferred from the stem's width and the depthwise convolutions
    when omitted; a given one that does not match is an error naming both. The Focus stem becomes the
    equivalent 6x6 stem; every other tensor is renamed. ValueError names what does not map.
    """
    weights = {strip_module_prefix(k): v for k, v in _official_weights(checkpoint, source).items()}
    inferred = infer_official_yolox_architecture(weights)
    if architecture is not None:
        architecture = resolve_model_name(architecture, list_models())
        if architecture != inferred:
            width, depthwise = OFFICIAL_STEMS[inferred]
            raise ValueError(f"{source} is an official {inferred} checkpoint (stem of {width} channels"
                             f"{', depthwise convs' if depthwise else ''}), not {architecture}: "
                             f"convert it as {inferred}")
    architecture = inferred
    num_classes = official_num_classes(weights)
    converted = official_yolox_to_trainwright(weights)
    with torch.device("meta"):  # names, order and shapes only
        expected = get_model(architecture, num_classes=num_classes).state_dict()
    for key in expected:  # files saved before BatchNorm counted its batches
        if key.endswith("num_batches_tracked") and key not in converted:
            converted[key] = torch.tensor(0, dtype=torch.long)
    missing, unexpected, shapes = state_dict_mismatch(expected, converted)
    if missing or unexpected or shapes:
        details = describe_mismatch(missing, unexpected, shapes).replace("\n  ", "; ")
        raise ValueError(f"{source} does not map onto {architecture} with {num_classes} classes: {details}")
    net = {key: _as_float32(converted[key]) for key in expected}
    return ConvertedCheckpoint(architecture, num_classes, {
        NET: net,
        PROCESSING_PARAMS: _processing_params(architecture, num_classes),
        "trainwright_version": __version__,
        "converted_from": {"format": "yolox-official", "file": Path(source).name},
    })


def _official_weights(checkpoint: Mapping, source: str) -> Mapping:
    """The state dict of an official YOLOX file: its ``model`` entry, or the file itself when it is one."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{source} holds a {type(checkpoint).__name__}, not an official YOLOX checkpoint (a dict)")
    if isinstance(checkpoint.get("model"), Mapping):
        return checkpoint["model"]
    if any(strip_module_prefix(k) == OFFICIAL_STEM_KEY for k in checkpoint):
        return checkpoint
    keys = ", ".join(list(map(str, checkpoint))[:5])
    raise ValueError(f"{source} is not an official YOLOX checkpoint: no 'model' entry and no {OFFICIAL_STEM_KEY} "
                     f"(its keys: {keys or 'none'})")


def _as_float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float().contiguous() if tensor.is_floating_point() else tensor.contiguous()


def _processing_params(architecture: str, num_classes: int) -> dict:
    coco = num_classes == len(COCO_CLASS_NAMES)  # the official weights are COCO's
    size = _OFFICIAL_INPUT_SIZE.get(architecture, 640)
    return {
        "architecture": architecture,
        "arch_params": {},
        "class_names": list(COCO_CLASS_NAMES) if coco else [f"class_{i}" for i in range(num_classes)],
        "category_ids": list(COCO_CATEGORY_IDS) if coco else list(range(1, num_classes + 1)),
        "input_size": [size, size],
    }
