"""What export needs from a detector, checked up front, and the optional packages export runs on.

A detector is exportable when (duck-typed, nothing to inherit):

- its eval-mode ``forward(images [B, 3, H, W])`` returns its usual eval output;
- ``boxes_and_scores(eval_output)`` turns that output into ``boxes [B, N, 4]`` (x1, y1, x2, y2 in input
  pixels) and ``scores [B, N, C]`` (the final confidence of each class, e.g. objectness x class score);
- ``strides`` (optional) lists its output strides: an input size must be divisible by the largest;
- ``prep_model_for_conversion(input_size=(H, W))`` (optional) makes it export-ready in place, e.g. fuses
  RepVGG-style re-parameterisable blocks into plain convolutions. Export calls it on a copy, never on the
  caller's model.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Sequence
from types import ModuleType

import torch
from torch import Tensor, nn

__all__ = ["check_exportable", "export_copy", "model_stride", "check_input_size", "require", "boxes_and_scores"]

INSTALL_HINT = "install the export extra: pip install 'trainwright[export]'"


def require(module: str, hint: str = INSTALL_HINT) -> ModuleType:
    """Import an optional dependency, or raise an ImportError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{module} is not installed ({err}); {hint}") from None


def check_exportable(model: nn.Module) -> None:
    """Raise a TypeError naming the model class when it lacks the export contract (boxes_and_scores)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(getattr(model, "boxes_and_scores", None)):
        raise TypeError(f"{type(model).__name__} cannot be exported: it has no boxes_and_scores(eval_output) method "
                        f"(see trainwright.models.export.contract for what a detector must provide)")


def model_stride(model: nn.Module) -> int:
    """The largest output stride of the model (1 when it declares none)."""
    strides = getattr(model, "strides", None)
    return int(max(strides)) if strides else 1


def check_input_size(input_size: Sequence[int], stride: int) -> tuple[int, int]:
    """(H, W) as ints, or a ValueError naming the size when it is not two positive multiples of `stride`."""
    try:
        height, width = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ValueError(f"input size must be two integers (height, width), got {input_size!r}") from None
    if height < 1 or width < 1 or (height, width) != tuple(input_size):
        raise ValueError(f"input size must be two positive integers (height, width), got {input_size!r}")
    if height % stride or width % stride:
        raise ValueError(f"input size {height} x {width} is not divisible by the model stride {stride}; use e.g. "
                         f"{-(-height // stride) * stride} x {-(-width // stride) * stride}")
    return height, width


def export_copy(model: nn.Module, input_size: tuple[int, int], dtype: torch.dtype = torch.float32) -> nn.Module:
    """A CPU copy of `model` in eval mode and `dtype`, prepared for conversion; the original is untouched."""
    check_exportable(model)
    net = copy.deepcopy(model).cpu().eval()
    prep = getattr(net, "prep_model_for_conversion", None)
    if callable(prep):
        prep(input_size=tuple(input_size))
    for p in net.parameters():
        p.requires_grad_(False)
    return net.to(dtype)


def boxes_and_scores(model: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
    """Run `model` (eval mode) on images [B, 3, H, W] -> boxes [B, N, 4] xyxy, scores [B, N, C]."""
    return model.boxes_and_scores(model(images))
