"""Building `training_params.loss` and the trainer's loss-output convention (the registry is `models.losses`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from trainwright.models.losses import LOSSES, loss_factory, register_loss

__all__ = ["LOSSES", "register_loss", "build_loss", "loss_item_names", "split_loss_output"]


def build_loss(loss, criterion_params: Mapping) -> Callable:
    """An nn.Module / callable is used as is; a registered name is built with `criterion_params`, a one-entry
    mapping {name: {arguments}} (the reference's recipe form) with its arguments."""
    if isinstance(loss, str):
        return loss_factory(loss)(**criterion_params)
    if isinstance(loss, Mapping):
        if len(loss) != 1 or not isinstance(next(iter(loss.values())) or {}, Mapping):
            raise TypeError(f"loss as a mapping must be {{name: {{arguments}}}}, got {dict(loss)!r}")
        (name, kwargs), = loss.items()
        return loss_factory(name)(**dict(kwargs or {}))
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
