"""Types and ranges of the training parameters, checked when they are resolved, before anything is built.

A bool is not a number here (`max_epochs=true` is refused), a number is finite, and a name that becomes a file
stays a plain file name. Each failure is one ValueError naming the parameter and its value.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping
from typing import Any

from trainwright.logging import check_file_name

__all__ = ["check_training_params", "is_int", "is_number", "is_bool"]


def is_int(value) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def is_bool(value) -> bool:
    """True or False (numpy's included); not the strings "true" / "false"."""
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def _int_at_least(low: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: is_int(v) and v >= low), ("a positive integer" if low else "a non-negative integer")


def _optional(check: tuple[Callable[[Any], bool], str]) -> tuple[Callable[[Any], bool], str]:
    test, text = check
    return (lambda v: v is None or test(v)), f"{text} or null"


def _list_of(check: tuple[Callable[[Any], bool], str]) -> tuple[Callable[[Any], bool], str]:
    test, text = check
    return (lambda v: isinstance(v, (list, tuple)) and all(test(x) for x in v)), f"a list of {text.removeprefix('a ')}s"


def _lr(v) -> bool:
    """A learning rate: a finite number >= 0, or a mapping of them (one per parameter group)."""
    if isinstance(v, Mapping):
        return bool(v) and all(_lr(x) for x in v.values())
    return is_number(v) and v >= 0


_POSITIVE_INT = _int_at_least(1)
_NON_NEGATIVE_INT = _int_at_least(0)
_NON_NEGATIVE = ((lambda v: is_number(v) and v >= 0), "a finite number >= 0")
_BOOL = (is_bool, "true or false")

# name -> (test, what a valid value is); a name the table lacks is not checked here.
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "max_epochs": _POSITIVE_INT,
    "batch_accumulate": _POSITIVE_INT,
    "run_validation_freq": _POSITIVE_INT,
    "number_of_models_to_average": _POSITIVE_INT,
    "lr_warmup_epochs": _NON_NEGATIVE_INT,
    "lr_warmup_steps": _NON_NEGATIVE_INT,
    "lr_cooldown_epochs": _NON_NEGATIVE_INT,
    "max_train_batches": _optional(_POSITIVE_INT),
    "max_valid_batches": _optional(_POSITIVE_INT),
    "seed": (is_int, "an integer"),
    "initial_lr": (_lr, "a finite number >= 0 (or a mapping of them per parameter group)"),
    "warmup_initial_lr": _optional(_NON_NEGATIVE),
    "cosine_final_lr_ratio": _NON_NEGATIVE,
    "lr_decay_factor": _NON_NEGATIVE,
    "step_lr_update_freq": _optional(((lambda v: is_number(v) and v > 0), "a finite number > 0")),
    "clip_grad_norm": _optional(_NON_NEGATIVE),
    "lr_updates": _list_of(_NON_NEGATIVE_INT),
    "save_ckpt_epoch_list": _list_of(_POSITIVE_INT),
    "ema": _BOOL,
    "mixed_precision": _BOOL,
    "save_model": _BOOL,
    "average_best_models": _BOOL,
    "resume": _BOOL,
    "silent_mode": _BOOL,
    "greater_metric_to_watch_is_better": _BOOL,
    "zero_weight_decay_on_bias_and_bn": _BOOL,
    "flush_denormal": _optional(_BOOL),
    "cpu_memory_reuse": _optional(_BOOL),
    "channels_last": _BOOL,
    "metric_to_watch": _optional(((lambda v: isinstance(v, str) and v != ""), "a metric name")),
    "resume_path": _optional(((lambda v: isinstance(v, (str, os.PathLike)) and os.fspath(v) != ""), "a path")),
}


def check_training_params(params: Mapping[str, Any]) -> None:
    """Raise a ValueError naming the first parameter of `params` whose value has the wrong type or range."""
    for name, (test, expected) in _CHECKS.items():
        if name in params and not test(params[name]):
            raise ValueError(f"training_params.{name} must be {expected}, got {params[name]!r}")
    if "ckpt_best_name" in params:
        check_file_name("training_params.ckpt_best_name", params["ckpt_best_name"])
