"""Exponential moving average of a model's weights, with the reference system's decay schedules."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable

import torch
from torch import nn

from trainwright.distributed import unwrap_model

__all__ = ["ModelEMA", "EMA_DECAY_FUNCTIONS", "constant_decay", "threshold_decay", "exp_decay"]


def constant_decay(decay: float, step: int, total_steps: int) -> float:
    """d(step) = decay."""
    return decay


def threshold_decay(decay: float, step: int, total_steps: int) -> float:
    """d(step) = min(decay, (1 + step) / (10 + step)): a fast-moving average early in training."""
    return min(decay, (1 + step) / (10 + step))


def exp_decay(decay: float, step: int, total_steps: int, beta: float = 15.0) -> float:
    """d(step) = decay * (1 - exp(-beta * step / total_steps))."""
    return decay * (1 - math.exp(-beta * step / total_steps))


EMA_DECAY_FUNCTIONS: dict[str, Callable[..., float]] = {
    "constant": constant_decay,
    "threshold": threshold_decay,
    "exp": exp_decay,
}


class ModelEMA:
    """Keeps `ema` (a frozen eval-mode copy of the model): ema_w <- d * ema_w + (1 - d) * w after each step.

    Only floating-point entries of the state dict are averaged; integer buffers (e.g. BatchNorm's
    num_batches_tracked) are copied.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, decay_type: str = "exp", beta: float = 15.0):
        if decay_type not in EMA_DECAY_FUNCTIONS:
            raise ValueError(f"ema_params.decay_type={decay_type!r}; expected one of {sorted(EMA_DECAY_FUNCTIONS)}")
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"ema_params.decay must be in [0, 1], got {decay!r}")
        self.ema = copy.deepcopy(unwrap_model(model)).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.decay_type = decay_type
        self.beta = float(beta)

    @classmethod
    def from_params(cls, model: nn.Module, **ema_params) -> ModelEMA:
        """Build from `training_params.ema_params` (decay, decay_type, beta); unknown keys are an error.

        The reference's legacy key ``exp_activation`` is accepted with a FutureWarning (a deprecation warning
        shown to users by default) and replaces decay_type: True -> "exp", False -> "constant".
        """
        if "exp_activation" in ema_params:
            ema_params = dict(ema_params)
            exp_activation = bool(ema_params.pop("exp_activation"))
            ema_params["decay_type"] = "exp" if exp_activation else "constant"
            warnings.warn(
                f"ema_params.exp_activation is deprecated; use decay_type: {ema_params['decay_type']!r} "
                "(exp_activation: True is decay_type 'exp', False is 'constant')",
                FutureWarning,
                stacklevel=2,
            )
        unknown = set(ema_params) - {"decay", "decay_type", "beta"}
        if unknown:
            raise ValueError(f"ema_params has unknown key(s) {sorted(unknown)}; expected decay, decay_type, beta")
        return cls(model, **ema_params)

    def decay_at(self, step: int, total_steps: int) -> float:
        """The decay used for optimizer step `step` (1-based) of `total_steps`."""
        if self.decay_type == "exp":
            return exp_decay(self.decay, step, total_steps, self.beta)
        return EMA_DECAY_FUNCTIONS[self.decay_type](self.decay, step, total_steps)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int, total_steps: int) -> None:
        """Blend the current weights of `model` into the average."""
        d = self.decay_at(step, total_steps)
        ema_state = self.ema.state_dict()
        model_state = unwrap_model(model).state_dict()
        floats_ema, floats_model = [], []
        for name, ema_v in ema_state.items():
            v = model_state[name].detach()
            if ema_v.dtype.is_floating_point:
                floats_ema.append(ema_v)
                floats_model.append(v)
            else:
                ema_v.copy_(v)
        if floats_ema:
            torch._foreach_mul_(floats_ema, d)
            torch._foreach_add_(floats_ema, floats_model, alpha=1.0 - d)

    def state_dict(self) -> dict:
        """The averaged weights (what checkpoints store under `ema_net`)."""
        return self.ema.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.ema.load_state_dict(state_dict)
