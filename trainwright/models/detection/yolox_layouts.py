"""YOLOX state-dict layouts published elsewhere, mapped onto trainwright's (SuperGradients 3.x) layout.

- Official YOLOX (Megvii): ``backbone.backbone.{stem,dark2..dark5}``, ``backbone.{lateral_conv0, C3_p4, ...}``
  and ``head.*``, with a Focus stem: space-to-depth (4 pixel phases stacked on channels), then a 3x3
  convolution on 4 * Cin channels.
- SuperGradients' earlier YOLOX (the layout of its published COCO weights): CSP blocks named
  ``cv1..cv3`` / ``m.N``, the same Focus stem, a ``module.`` prefix and saved stride/anchor tensors.

trainwright's stem is a 6x6 stride-2 convolution with padding 2, the same function as the Focus stem on
inputs of even size: `focus_to_stem_weight` places each 3x3 tap at its position in the 6x6 kernel.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

__all__ = [
    "OFFICIAL_STEM_KEY",
    "adapt_sg_yolox_state_dict",
    "focus_to_stem_weight",
    "infer_official_yolox_architecture",
    "official_key_to_trainwright",
    "official_num_classes",
    "official_yolox_to_trainwright",
    "strip_module_prefix",
]

STEM_KEY = "_backbone._modules_list.0.conv.weight"
OFFICIAL_STEM_KEY = "backbone.backbone.stem.conv.conv.weight"
OFFICIAL_CLASS_KEY = "head.cls_preds.0.weight"

# Official architecture of each trainwright name: (stem output channels = 64 * width, depthwise).
OFFICIAL_STEMS = {"yolox_n": (16, True), "yolox_t": (24, False), "yolox_s": (32, False),
                  "yolox_m": (48, False), "yolox_l": (64, False), "yolox_x": (80, False)}

# --- SuperGradients' earlier layout --------------------------------------------------------------------------

_SG_EXTRA_TENSORS = {"stride", "_head.anchors._anchors", "_head.anchors._anchor_grid", "_head.anchors._stride",
                     "_head._modules_list.14.stride"}
_SG_FOCUS_KEY = "_backbone._modules_list.0.conv.conv.weight"
_SG_CSP = r"(_backbone\._modules_list\.(?:2|4|6|9)|_head\._modules_list\.(?:3|7|10|13))"
_SG_RENAMES = [
    (re.compile(rf"^{_SG_CSP}\.cv([123])\."), r"\1.conv\2."),
    (re.compile(rf"^{_SG_CSP}\.m\.(\d+)\."), r"\1.bottlenecks.\2."),
    (re.compile(r"^_backbone\._modules_list\.0\.conv\.bn\."), "_backbone._modules_list.0.bn."),
]

# --- the official layout ---------------------------------------------------------------------------------------

_OFFICIAL_MODULES = {  # official module -> trainwright module
    "backbone.backbone.stem.conv": "_backbone._modules_list.0",
    "backbone.backbone.dark2.0": "_backbone._modules_list.1",
    "backbone.backbone.dark2.1": "_backbone._modules_list.2",
    "backbone.backbone.dark3.0": "_backbone._modules_list.3",
    "backbone.backbone.dark3.1": "_backbone._modules_list.4",
    "backbone.backbone.dark4.0": "_backbone._modules_list.5",
    "backbone.backbone.dark4.1": "_backbone._modules_list.6",
    "backbone.backbone.dark5.0": "_backbone._modules_list.7",
    "backbone.backbone.dark5.1": "_backbone._modules_list.8",  # SPP
    "backbone.backbone.dark5.2": "_backbone._modules_list.9",
    "backbone.lateral_conv0": "_head._modules_list.0",
    "backbone.C3_p4": "_head._modules_list.3",
    "backbone.reduce_conv1": "_head._modules_list.4",
    "backbone.C3_p3": "_head._modules_list.7",
    "backbone.bu_conv2": "_head._modules_list.8",
    "backbone.C3_n3": "_head._modules_list.10",
    "backbone.bu_conv1": "_head._modules_list.11",
    "backbone.C3_n4": "_head._modules_list.13",
    "head": "_head._modules_list.14",
}
_OFFICIAL_SPP = "_backbone._modules_list.8"
_BOTTLENECK = re.compile(r"^m\.(\d+)\.conv([12])\.")  # CSP bottleneck convs: conv1/conv2 -> cv1/cv2
_SPP_CONV = re.compile(r"^conv([12])\.")
_POINTWISE = re.compile(r"(^|\.)pconv\.")  # the pointwise half of a depthwise-separable conv


def strip_module_prefix(key: str) -> str:
    """``module.x`` (DataParallel / DDP) -> ``x``."""
    while key.startswith("module."):
        key = key[len("module."):]
    return key


def focus_to_stem_weight(weight: torch.Tensor) -> torch.Tensor:
    """Focus 3x3 conv weight [C, 4 * Cin, 3, 3] -> the equivalent 6x6 stride-2 padding-2 conv weight [C, Cin, 6, 6].

    Focus stacks the pixel phases (row parity dr, column parity dc) as channel groups g = 2 * dc + dr;
    tap (a, b) of group g reads input pixel (2(i + a - 1) + dr, 2(j + b - 1) + dc), which is tap
    (2a + dr, 2b + dc) of a 6x6 kernel at stride 2 with padding 2.
    """
    if weight.dim() != 4 or weight.shape[2:] != (3, 3) or weight.shape[1] % 4:
        raise ValueError(f"a Focus stem weight has shape [C, 4 * Cin, 3, 3], got {list(weight.shape)}")
    out_channels, in_channels = weight.shape[0], weight.shape[1] // 4
    phases = weight.reshape(out_channels, 2, 2, in_channels, 3, 3)  # [C, dc, dr, Cin, a, b]
    return phases.permute(0, 3, 4, 2, 5, 1).reshape(out_channels, in_channels, 6, 6).contiguous()


def adapt_sg_yolox_state_dict(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SuperGradients YOLOX weights in its earlier layout -> trainwright's layout (the current layout passes as is).

    Removes the ``module.`` prefix and the saved stride/anchor tensors, turns the Focus stem into the 6x6
    stem and renames the CSP blocks' ``cv1..cv3`` / ``m.N`` to ``conv1..conv3`` / ``bottlenecks.N``.
    """
    adapted = {}
    for key, value in weights.items():
        key = strip_module_prefix(key)
        if key in _SG_EXTRA_TENSORS:
            continue
        if key == _SG_FOCUS_KEY:
            key, value = STEM_KEY, focus_to_stem_weight(value)
        for pattern, replacement in _SG_RENAMES:
            key = pattern.sub(replacement, key)
        adapted[key] = value
    return adapted


def official_key_to_trainwright(key: str) -> str | None:
    """The trainwright name of an official YOLOX state-dict key, or None when it is not of that layout."""
    for prefix, target in _OFFICIAL_MODULES.items():
        if key.startswith(prefix + "."):
            rest = _BOTTLENECK.sub(r"bottlenecks.\1.cv\2.", key[len(prefix) + 1:])
            if target == _OFFICIAL_SPP:
                rest = _SPP_CONV.sub(r"cv\1.", rest)
            return target + "." + _POINTWISE.sub(r"\1conv.", rest)
    return None


def official_yolox_to_trainwright(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official YOLOX state dict -> trainwright names, the Focus stem as the 6x6 stem (same order as given).

    Raises ValueError naming the keys that are not of the official layout.
    """
    weights = {strip_module_prefix(k): v for k, v in weights.items()}
    unknown = [k for k in weights if official_key_to_trainwright(k) is None]
    if unknown:
        shown = ", ".join(unknown[:3]) + (f", ... ({len(unknown)} in all)" if len(unknown) > 3 else "")
        raise ValueError(f"not an official YOLOX state dict: {len(unknown)} of {len(weights)} keys are not of its "
                         f"layout ({shown}); only the CSPDarknet YOLOX models (nano, tiny, s, m, l, x) convert")
    converted = {}
    for key, value in weights.items():
        if key == OFFICIAL_STEM_KEY:
            value = focus_to_stem_weight(value)
        converted[official_key_to_trainwright(key)] = value
    return converted


def infer_official_yolox_architecture(weights: Mapping[str, torch.Tensor]) -> str:
    """The trainwright architecture of an official YOLOX state dict, from its stem width and depthwise convs."""
    stem = weights.get(OFFICIAL_STEM_KEY)
    if stem is None:
        raise ValueError(f"not an official YOLOX state dict: it has no {OFFICIAL_STEM_KEY}")
    width, depthwise = int(stem.shape[0]), any(".dconv." in k for k in weights)
    for name, signature in OFFICIAL_STEMS.items():
        if signature == (width, depthwise):
            return name
    known = ", ".join(f"{n} ({w}{', depthwise' if d else ''})" for n, (w, d) in OFFICIAL_STEMS.items())
    raise ValueError(f"no trainwright architecture has a stem of {width} channels"
                     f"{' with' if depthwise else ' without'} depthwise convolutions; known: {known}")


def official_num_classes(weights: Mapping[str, torch.Tensor]) -> int:
    """Classes predicted by an official YOLOX state dict."""
    if OFFICIAL_CLASS_KEY not in weights:
        raise ValueError(f"not an official YOLOX state dict: it has no {OFFICIAL_CLASS_KEY}")
    return int(weights[OFFICIAL_CLASS_KEY].shape[0])
