"""Validation shared by the NMS modules: raw detector output, optional caps, the dtype to compute in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
from torch import Tensor

Prediction = Union[Tensor, Sequence[Tensor]]


def check_raw_output(name: str, prediction: Prediction) -> list[Tensor] | Tensor:
    """Validate raw output: a floating-point tensor [B, N, 5 + C] or a sequence of [N_i, 5 + C] ones, C >= 1."""
    if isinstance(prediction, Tensor):
        _check_floating(name, prediction)
        if prediction.ndim != 3 or prediction.shape[-1] < 6:
            raise ValueError(
                f"{name} must have shape [batch, boxes, 5 + num_classes] with at least one class, "
                f"got {tuple(prediction.shape)}"
            )
        return prediction
    if not isinstance(prediction, (list, tuple)):
        raise TypeError(f"{name} must be a tensor or a list of tensors, got {type(prediction).__name__}")
    for i, image in enumerate(prediction):
        if not isinstance(image, Tensor) or image.ndim != 2 or image.shape[-1] < 6:
            shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"{name}[{i}] must have shape [boxes, 5 + num_classes], got {shape}")
        _check_floating(f"{name}[{i}]", image)
    return list(prediction)


def _check_floating(name: str, tensor: Tensor) -> None:
    """Boxes and scores are real numbers: integer or bool tensors are a TypeError naming their dtype."""
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (boxes and scores), got dtype {tensor.dtype}")


def check_cap(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be None or an integer >= 0, got {value!r}")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
