"""Losses by name: the registry `training_params.loss` is looked up in. Each model package registers its own
losses when it is imported (`trainwright.models.detection` registers "yolox_loss")."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

__all__ = ["LOSSES", "register_loss", "loss_factory"]

# name -> factory(**criterion_params)
LOSSES: dict[str, Callable[..., nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "mse": nn.MSELoss,
    "l1": nn.L1Loss,
    "bce_with_logits": nn.BCEWithLogitsLoss,
}


def register_loss(name: str, factory: Callable[..., nn.Module] | None = None):
    """Make `loss=name` build `factory(**criterion_params)`; usable as a class decorator without `factory`."""

    def add(f):
        LOSSES[name] = f
        return f

    return add(factory) if factory is not None else add


def loss_factory(name: str) -> Callable[..., nn.Module]:
    """The factory registered as `name`, or a ValueError naming the registered ones."""
    if name not in LOSSES:
        raise ValueError(f"loss={name!r} is not registered; expected one of {sorted(LOSSES)} or a module")
    return LOSSES[name]
