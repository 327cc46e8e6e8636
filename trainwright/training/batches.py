"""What the loop does to every batch before the model sees it: split it, move it to the device."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from functools import lru_cache

import torch

__all__ = ["unpack_batch", "move_to_device", "criterion_extras"]

# Batch extras a loss receives as keyword arguments when its forward names them.
_CRITERION_EXTRAS = ("crowd_targets",)


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


def criterion_extras(criterion, extras: Mapping) -> dict:
    """The batch extras `criterion` takes as keyword arguments (e.g. crowd_targets for PPYoloELoss), by name."""
    if not extras:
        return {}
    accepted = _accepted_extras(type(criterion))
    return {name: extras[name] for name in accepted if name in extras}


@lru_cache(maxsize=64)
def _accepted_extras(criterion_type: type) -> tuple[str, ...]:
    try:
        parameters = inspect.signature(criterion_type.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return ()
    return tuple(name for name in _CRITERION_EXTRAS if name in parameters)
