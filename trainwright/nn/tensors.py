"""Tensor conversions and moving nested containers of tensors between devices."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["convert_to_tensor", "tensor_container_to_device"]


def convert_to_tensor(array: Any) -> torch.Tensor:
    """A float32 tensor copy of a list or numpy array; a tensor is returned as it is (same object).

    Args:
        array: a torch.Tensor, a numpy array or a (nested) list of numbers.
    Returns:
        the tensor itself, or a new float32 tensor that shares no memory with ``array``.
    """
    if isinstance(array, torch.Tensor):
        return array
    return torch.tensor(array, dtype=torch.float32)


def tensor_container_to_device(obj: Any, device: torch.device | str, non_blocking: bool = True) -> Any:
    """Every tensor inside ``obj`` (nested tuples, lists and mappings) moved to ``device``; the rest untouched.

    The structure is kept: lists stay lists, tuples stay tuples (named tuples keep their type), mappings
    become plain dicts with the same keys. ``non_blocking`` is only used for copies to a CUDA device: an
    asynchronous copy towards the CPU could be read before it has finished.

    Args:
        obj: a tensor, or a tuple / list / mapping holding tensors (at any depth) and other values.
        device: the target device, e.g. "cpu", "cuda:0" or a torch.device.
        non_blocking: ask for an asynchronous host-to-GPU copy (pinned memory makes it truly asynchronous).
    Returns:
        an object of the same structure holding the moved tensors.
    """
    device = torch.device(device)
    return _move(obj, device, non_blocking and device.type == "cuda")


def _move(obj: Any, device: torch.device, non_blocking: bool) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, tuple):
        items = [_move(x, device, non_blocking) for x in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, list):
        return [_move(x, device, non_blocking) for x in obj]
    if isinstance(obj, Mapping):
        return {k: _move(v, device, non_blocking) for k, v in obj.items()}
    return obj
