"""The names inside a checkpoint and of the checkpoint files, defined once.

The keys are SuperGradients 3.x's (``net``, ``ema_net``, ``optimizer_state_dict``, ``scaler_state_dict``,
``epoch``, ``acc``, ``processing_params``) plus trainwright's own; every reader and writer uses these names.
"""

from __future__ import annotations

__all__ = [
    "ACC",
    "AVERAGE_CHECKPOINT",
    "BEST_CHECKPOINT",
    "BEST_METRIC",
    "CALLBACK_STATES",
    "EMA_NET",
    "EPOCH",
    "INTERRUPTED_AT",
    "INTERRUPTED_CHECKPOINT",
    "LATEST_CHECKPOINT",
    "METRICS",
    "NET",
    "OPTIMIZER",
    "PROCESSING_PARAMS",
    "RECIPE",
    "RNG_STATE",
    "SCALER",
    "VERSION",
    "epoch_checkpoint_name",
]

NET = "net"  # the model's state dict
EMA_NET = "ema_net"  # the EMA model's state dict (when EMA is on)
OPTIMIZER = "optimizer_state_dict"
SCALER = "scaler_state_dict"  # the AMP GradScaler's state
EPOCH = "epoch"  # epochs finished: the epoch a resume starts at
ACC = "acc"  # the watched metric of the epoch the checkpoint was written after
BEST_METRIC = "best_metric"  # the best watched metric so far
METRICS = "metrics"  # that epoch's validation results, name -> value
PROCESSING_PARAMS = "processing_params"  # what inference needs: class names, input size, postprocess, ...
RECIPE = "recipe"  # the resolved training parameters
VERSION = "trainwright_version"
RNG_STATE = "rng_state"  # python, numpy and torch RNG states, for a bit-exact resume
CALLBACK_STATES = "callback_states"  # key -> state_dict() of each callback that has one
INTERRUPTED_AT = "interrupted_at"  # {"epoch", "batch_idx"} of a Ctrl-C

LATEST_CHECKPOINT = "ckpt_latest.pth"  # written after every epoch; what a resume reads
BEST_CHECKPOINT = "ckpt_best.pth"  # the default `ckpt_best_name`
AVERAGE_CHECKPOINT = "average_model.pth"
INTERRUPTED_CHECKPOINT = "ckpt_interrupted.pth"  # the weights at a Ctrl-C / SIGTERM (ckpt_latest stays the epoch's)


def epoch_checkpoint_name(epoch: int) -> str:
    """File name of the checkpoint kept after (1-based) epoch `epoch`: ``ckpt_epoch_<epoch>.pth``."""
    return f"ckpt_epoch_{epoch}.pth"
