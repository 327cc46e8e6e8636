"""Validation shared by the NMS modules: raw detector output, optional caps, the dtype to compute in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
from torch import Tensor

Prediction = Union[Tensor, Sequence[Tensor]]


def check_raw_output(name: str, prediction: Prediction) -> list[Tensor] | Tensor:
    """Validate raw output: a tensor [B, N, 5 + C] or a sequence of [N_i, 5 + C] tensors, with C >= 1."""
    if isinstance(prediction, Tensor):
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
    return list(prediction)


def check_cap(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be None or an integer >= 0, got {value!r}")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
