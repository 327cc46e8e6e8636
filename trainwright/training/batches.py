"""What the loop does to every batch before the model sees it: split it, move it to the device."""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["unpack_batch", "move_to_device"]


def unpack_batch(batch) -> tuple:
    """(inputs, targets, extras dict) from a batch `(inputs, targets)` or `(inputs, targets, extras)`."""
    if isinstance(batch, (tuple, list)):
        if len(batch) == 2:
            return batch[0], batch[1], {}
        if len(batch) == 3 and isinstance(batch[2], Mapping):
            return batch[0], batch[1], dict(batch[2])
    raise ValueError(
        f"a batch must be (inputs, targets) or (inputs, targets, extras_dict), got {type(batch).__name__}"
        + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
    )


def move_to_device(obj, device: torch.device):
    """Tensors (also inside tuples, lists and dicts) moved to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=device.type == "cuda")
    if isinstance(obj, tuple):
        return tuple(move_to_device(o, device) for o in obj)
    if isinstance(obj, list):
        return [move_to_device(o, device) for o in obj]
    if isinstance(obj, dict):
        return {k: move_to_device(v, device) for k, v in obj.items()}
    return obj
