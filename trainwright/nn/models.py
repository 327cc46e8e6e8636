"""Helpers around whole models: a wrapper exposing ``.module``, and weight comparison."""

from __future__ import annotations

import logging

import torch
from torch import nn

__all__ = ["WrappedModel", "check_models_have_same_weights"]

logger = logging.getLogger("trainwright")


class WrappedModel(nn.Module):
    """Holds a model as ``self.module`` and forwards every call to it (the layout DataParallel/DDP give).

    State-dict keys gain the ``module.`` prefix, as with the distributed wrappers, so checkpoints of a
    wrapped model load into another wrapped model.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"WrappedModel wraps a torch.nn.Module, got {type(module).__name__}")
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def check_models_have_same_weights(model_1: nn.Module, model_2: nn.Module) -> bool:
    """True when both models have the same state-dict entries (names, in order, and exactly equal values).

    The models are left where they are (nothing is moved between devices); each differing entry is logged.

    Args:
        model_1, model_2: the models to compare.
    Returns:
        True iff the state dicts have the same keys and every tensor is equal (shape and values).
    """
    state_1, state_2 = model_1.state_dict(), model_2.state_dict()
    if list(state_1) != list(state_2):
        only_1, only_2 = sorted(set(state_1) - set(state_2)), sorted(set(state_2) - set(state_1))
        logger.info("The models have different layers: only in the first %s, only in the second %s", only_1, only_2)
        return False
    differing = [name for name in state_1 if not _same_tensor(state_1[name], state_2[name])]
    for name in differing:
        logger.info("Layer names match but layers have different weights for layer: %s", name)
    return not differing


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.detach().cpu(), b.detach().cpu())
