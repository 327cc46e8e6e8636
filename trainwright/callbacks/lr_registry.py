"""One registry by name for `lr_mode` and `warmup_mode`, and the builder the trainer uses."""

from __future__ import annotations

from collections.abc import Mapping

from trainwright.callbacks.lr import (
    BatchStepLinearWarmupLRCallback,
    CosineLRCallback,
    EpochStepWarmupLRCallback,
    ExponentialLRCallback,
    FunctionLRCallback,
    LinearStepWarmupLRCallback,
    PolyLRCallback,
    StepLRCallback,
)
from trainwright.distributed import unwrap_model

__all__ = [
    "LR_SCHEDULERS",
    "LR_WARMUPS",
    "register_lr_scheduler",
    "register_lr_warmup",
    "build_lr_callbacks",
    "model_updates_param_groups",
]

# --- registry: lr_mode / warmup_mode names -> callback classes --------------------------------------------------

LR_SCHEDULERS: dict[str, type] = {
    "step": StepLRCallback,
    "poly": PolyLRCallback,
    "cosine": CosineLRCallback,
    "exp": ExponentialLRCallback,
    "function": FunctionLRCallback,
}
LR_WARMUPS: dict[str, type] = {
    "linear_epoch_step": EpochStepWarmupLRCallback,
    "linear_batch_step": BatchStepLinearWarmupLRCallback,
    "linear_step": LinearStepWarmupLRCallback,  # the reference's deprecated name of linear_epoch_step (warns)
}
# Names used by later versions of the reference system, accepted as aliases.
_ALIASES = {
    "StepLRScheduler": "step", "PolyLRScheduler": "poly", "CosineLRScheduler": "cosine",
    "ExponentialLRScheduler": "exp", "FunctionLRScheduler": "function",
    "LinearEpochLRWarmup": "linear_epoch_step", "LinearBatchLRWarmup": "linear_batch_step",
}  # fmt: skip


def register_lr_scheduler(name: str, cls: type | None = None):
    """Register `cls` as `lr_mode=name` (usable as a decorator when `cls` is omitted)."""
    return _register(LR_SCHEDULERS, name, cls)


def register_lr_warmup(name: str, cls: type | None = None):
    """Register `cls` as `warmup_mode=name` (usable as a decorator when `cls` is omitted)."""
    return _register(LR_WARMUPS, name, cls)


def _register(registry: dict, name: str, cls):
    def add(c):
        registry[name] = c
        return c

    return add(cls) if cls is not None else add


def _lookup(registry: Mapping[str, type], kind: str, name: str) -> type:
    key = _ALIASES.get(name, name)
    if key not in registry:
        raise ValueError(f"{kind}={name!r} is not a known schedule; expected one of {sorted(registry)}")
    return registry[key]


def model_updates_param_groups(net) -> bool:
    """Whether the model (DDP-unwrapped) defines `update_param_groups`: then the schedules let it set the LRs."""
    return callable(getattr(unwrap_model(net), "update_param_groups", None))


def build_lr_callbacks(training_params, net, train_loader_len: int, update_param_groups: bool | None = None) -> list:
    """The main schedule (lr_mode) then the warmup (warmup_mode), built from `training_params` attributes.

    lr_mode / warmup_mode may be a registered name or a class (built with the same keyword arguments).
    `update_param_groups` None means as the reference decides: True when the model defines
    `update_param_groups(param_groups, lr, epoch, iter, training_params, total_batch)`, which then receives
    every new LR and sets the LR of each group itself.
    """
    if update_param_groups is None:
        update_param_groups = model_updates_param_groups(net)
    params = {k: getattr(training_params, k) for k in training_params}  # plain dict of all entries
    common = dict(
        net=net,
        training_params=training_params,
        train_loader_len=train_loader_len,
        update_param_groups=update_param_groups,
    )
    callbacks = []
    lr_mode = params.get("lr_mode")
    if lr_mode is not None:
        cls = lr_mode if isinstance(lr_mode, type) else _lookup(LR_SCHEDULERS, "lr_mode", lr_mode)
        callbacks.append(cls(**{**params, **common}))
    if params.get("lr_warmup_epochs", 0) > 0 or params.get("lr_warmup_steps", 0) > 0:
        mode = params.get("warmup_mode") or "linear_epoch_step"
        cls = mode if isinstance(mode, type) else _lookup(LR_WARMUPS, "warmup_mode", mode)
        callbacks.append(cls(**{**params, **common}))
    return callbacks
