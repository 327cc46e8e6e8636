"""Optimizers by name, with optional zero weight decay on biases and normalisation layers."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["OPTIMIZERS", "build_optimizer", "param_groups_without_bias_bn_decay"]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
}

_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def param_groups_without_bias_bn_decay(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights with `weight_decay`, and biases + normalisation parameters with 0."""
    no_decay_ids = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if isinstance(module, _NORM_TYPES) or name == "bias":
                no_decay_ids.add(id(p))
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if id(p) not in no_decay_ids], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) in no_decay_ids], "weight_decay": 0.0},
    ]


def build_optimizer(
    optimizer, model: nn.Module, initial_lr: float, optimizer_params: Mapping, zero_weight_decay_on_bias_and_bn: bool
) -> torch.optim.Optimizer:
    """An optimizer instance is returned as is; a name ("SGD", "Adam", "AdamW", "RMSProp", any case) is built
    over the trainable parameters of `model` with lr=initial_lr and `optimizer_params`."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        cls = optimizer
    elif isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        cls = OPTIMIZERS[optimizer.lower()]
    else:
        raise ValueError(
            f"optimizer={optimizer!r}: expected a torch.optim.Optimizer, its class, or one of "
            "'SGD', 'Adam', 'AdamW', 'RMSProp'"
        )
    kwargs = dict(optimizer_params)
    if zero_weight_decay_on_bias_and_bn:
        groups = param_groups_without_bias_bn_decay(model, kwargs.pop("weight_decay", 0.0))
    else:
        groups = [p for p in model.parameters() if p.requires_grad]
    return cls(groups, lr=initial_lr, **kwargs)
