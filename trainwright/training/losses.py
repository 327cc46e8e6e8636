"""Losses by name (a registry others add to) and the trainer's loss-output convention."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

import torch
from torch import nn

__all__ = ["LOSSES", "register_loss", "build_loss", "loss_item_names", "split_loss_output"]

# name -> factory(**criterion_params), or "module:attribute" imported when first used.
LOSSES: dict[str, Callable[..., nn.Module] | str] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "mse": nn.MSELoss,
    "l1": nn.L1Loss,
    "bce_with_logits": nn.BCEWithLogitsLoss,
    "yolox_loss": "trainwright.models.detection.yolox_loss:YoloXDetectionLoss",
    "ppyoloe_loss": "trainwright.models.detection.ppyoloe_loss:PPYoloELoss",
}


def register_loss(name: str, factory: Callable[..., nn.Module] | str | None = None):
    """Make `loss=name` build `factory(**criterion_params)`; usable as a class decorator without `factory`."""

    def add(f):
        LOSSES[name] = f
        return f

    return add(factory) if factory is not None else add


def build_loss(loss, criterion_params: Mapping) -> Callable:
    """An nn.Module / callable is used as is; a registered name is built with `criterion_params`."""
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r} is not registered; expected one of {sorted(LOSSES)} or a module")
        factory = LOSSES[loss]
        if isinstance(factory, str):
            module_name, attr = factory.split(":")
            factory = getattr(importlib.import_module(module_name), attr)
        return factory(**criterion_params)
    if callable(loss):
        return loss
    raise TypeError(f"loss must be a registered name, an nn.Module or a callable, got {type(loss).__name__}")


def loss_item_names(criterion, num_items: int) -> list[str]:
    """'<ClassName>' for a single value; '<ClassName>/<component>' (or '/<i>') for each component."""
    cls = type(criterion).__name__
    if num_items == 1 and not hasattr(criterion, "component_names"):
        return [cls]
    names = list(getattr(criterion, "component_names", None) or range(num_items))
    if len(names) != num_items:
        raise ValueError(f"{cls}.component_names has {len(names)} names for {num_items} loss components: {names}")
    return [f"{cls}/{n}" for n in names]


def split_loss_output(output) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to backpropagate, detached 1-D components) from a tensor or a (loss, components) pair."""
    if isinstance(output, torch.Tensor):
        return output, output.detach().reshape(1)
    if isinstance(output, (tuple, list)) and len(output) == 2:
        loss, components = output
        if isinstance(components, torch.Tensor):
            return loss, components.detach().reshape(-1)
        return loss, torch.stack([torch.as_tensor(c).detach() for c in components]).reshape(-1).to(loss.device)
    raise TypeError(f"a loss must return a tensor or (loss, components), got {type(output).__name__}")
