"""The training parameters: every name `Trainer.train` accepts, with its default, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trainwright.config import HpmStruct, raise_if_unused_params
from trainwright.nn.checkpoint_keys import BEST_CHECKPOINT, LATEST_CHECKPOINT
from trainwright.training.param_checks import check_training_params
from trainwright.training.sg_params import adapt_sg_training_params

__all__ = ["DEFAULT_TRAINING_PARAMS", "resolve_training_params", "resume_requested"]

# name -> default. `None` for max_epochs / initial_lr means "required".
DEFAULT_TRAINING_PARAMS: dict[str, Any] = {
    # schedule
    "max_epochs": None,  # required: number of epochs
    "initial_lr": None,  # required: the LR after warmup
    "lr_mode": None,  # None (constant), "step", "poly", "cosine", "exp", "function", or a registered name/class
    "lr_warmup_epochs": 0,
    "lr_warmup_steps": 0,  # batch-step warmup length; 0 -> lr_warmup_epochs * len(train_loader)
    "warmup_mode": "linear_epoch_step",  # or "linear_batch_step" ("linear_step": deprecated linear_epoch_step)
    "warmup_initial_lr": None,  # None -> initial_lr / (lr_warmup_epochs + 1)
    "lr_cooldown_epochs": 0,  # last epochs that keep the LR the schedule reached
    "cosine_final_lr_ratio": 0.01,
    "lr_updates": [],  # epochs at which lr_mode="step" decays (the reference's `_target_: ...empty_list` too)
    "lr_decay_factor": 0.1,
    "step_lr_update_freq": None,
    "lr_schedule_function": None,  # for lr_mode="function"
    # optimisation
    "optimizer": "SGD",  # "SGD", "Adam", "AdamW", "RMSProp" or a torch.optim.Optimizer instance
    "optimizer_params": {},  # over the reference's defaults: SGD/RMSProp momentum 0.9, SGD/Adam/RMSProp weight_decay 1e-4
    "load_opt_params": True,  # resume restores the optimizer's state (False: a fresh optimizer)
    "zero_weight_decay_on_bias_and_bn": False,
    "loss": None,  # required: a registered name (e.g. "cross_entropy") or an nn.Module / callable
    "criterion_params": {},
    "ema": False,
    "ema_params": {"decay": 0.9999, "decay_type": "exp", "beta": 15},
    "mixed_precision": False,  # CUDA: float16 autocast + GradScaler; CPU: bfloat16 autocast
    "clip_grad_norm": None,
    "batch_accumulate": 1,  # optimizer step every N batches (gradients are summed, as in the reference)
    "pre_prediction_callback": None,  # (inputs, targets, batch_idx) -> (inputs, targets) before each training forward
    "precise_bn": False,  # recompute BatchNorm statistics over many batches after each training pass
    "precise_bn_batch_size": None,  # samples for precise_bn; None: one loader batch per process
    "sync_bn": False,  # under torch.distributed: BatchNorm statistics over the batches of every process
    # metrics and checkpoints
    "train_metrics_list": [],
    "valid_metrics_list": [],
    "metric_to_watch": None,  # None -> first validation metric (or the first loss item, lower is better)
    "greater_metric_to_watch_is_better": True,
    "save_model": True,
    "ckpt_best_name": BEST_CHECKPOINT,
    "save_ckpt_epoch_list": [],  # 1-based: [5] writes ckpt_epoch_5.pth after the fifth epoch
    "average_best_models": False,
    "number_of_models_to_average": 10,
    "resume": False,
    "resume_path": None,
    "ckpt_name": LATEST_CHECKPOINT,  # the file of the experiment directory resume=True reads (without resume_path)
    # loop control
    "phase_callbacks": [],
    "max_train_batches": None,
    "max_valid_batches": None,
    "run_validation_freq": 1,
    "silent_mode": False,
    "seed": 42,
    "flush_denormal": None,  # None -> True on CPU
    "cpu_memory_reuse": None,  # None -> True on CPU: freed memory kept for the next step (training/cpu_speed.py)
    "channels_last": False,  # True: the model's weights and activations in channels-last layout (training/cpu_speed.py)
    # logging
    "sg_logger": "base_sg_logger",
    "sg_logger_params": {},
}

_REQUIRED = ("max_epochs", "initial_lr", "loss")


def _to_plain_mapping(training_params) -> dict:
    if training_params is None:
        return {}
    if isinstance(training_params, DictConfig):
        return dict(OmegaConf.to_container(training_params, resolve=True))
    if isinstance(training_params, HpmStruct):
        return training_params.to_dict(include_schema=False)
    if isinstance(training_params, Mapping):
        return dict(training_params)
    raise TypeError(
        f"training_params must be a dict, an OmegaConf DictConfig or an HpmStruct, got {type(training_params).__name__}"
    )


def _check_names(user: Mapping) -> None:
    """Unknown parameter names are an error naming them (with a close known name when one looks like a typo)."""
    with raise_if_unused_params({name: None for name in user}) as view:
        for name in DEFAULT_TRAINING_PARAMS:
            if name in view:
                _ = view[name]  # a read marks the name as known


def resolve_training_params(training_params) -> HpmStruct:
    """Defaults overridden by `training_params` (dict / DictConfig / HpmStruct) as an HpmStruct; checks names."""
    user = adapt_sg_training_params(_to_plain_mapping(training_params))
    _check_names(user)
    resolved = {**DEFAULT_TRAINING_PARAMS, **user}
    for name in ("ema_params",):
        if isinstance(user.get(name), Mapping):  # a partial dict overrides single keys of the default
            resolved[name] = {**DEFAULT_TRAINING_PARAMS[name], **user[name]}
    missing = [n for n in _REQUIRED if resolved[n] is None]
    if missing:
        raise ValueError(f"training_params is missing required parameter(s) {missing}")
    check_training_params(resolved)
    for name in ("optimizer_params", "criterion_params", "sg_logger_params", "ema_params"):
        if not isinstance(resolved[name], Mapping):
            raise TypeError(f"training_params.{name} must be a mapping, got {resolved[name]!r}")
        resolved[name] = dict(resolved[name])
    for name in ("train_metrics_list", "valid_metrics_list", "phase_callbacks", "lr_updates", "save_ckpt_epoch_list"):
        resolved[name] = list(resolved[name] or [])
    return HpmStruct(**resolved)


def resume_requested(training_params: Mapping) -> bool:
    """Whether these parameters continue an earlier run (resume=True or a resume_path): the one place that decides."""
    return bool(training_params.get("resume")) or bool(training_params.get("resume_path"))
