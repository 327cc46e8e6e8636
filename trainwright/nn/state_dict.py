"""Fit a state dict to a module: strictness modes, pairing tensors by order and shape, partial transfer,
and errors that list what differs.

A checkpoint-like mapping with a ``net`` entry is accepted wherever a state dict is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

import torch
from torch import nn

from trainwright.nn.checkpoint_keys import NET

__all__ = [
    "StrictLoad",
    "WeightTransferReport",
    "adapt_state_dict_to_fit_model_layer_names",
    "adaptive_load_state_dict",
    "as_strict_load",
    "describe_mismatch",
    "extract_weights",
    "raise_informative_runtime_error",
    "state_dict_mismatch",
    "transfer_weights",
]

logger = logging.getLogger(__name__)

_SHOWN_KEYS = 5  # how many keys an error message lists before "..."


class StrictLoad(Enum):
    """How a state dict must match the model it is loaded into.

    - ``ON``: same keys and shapes (``load_state_dict(strict=True)``).
    - ``OFF``: load the keys present in both; missing and unexpected keys are only logged. Shapes must match.
    - ``NO_KEY_MATCHING``: like ON; when the names differ, pair the tensors by order and shape instead.
    - ``KEY_MATCHING``: like ON, after removing wrapper prefixes (``module.`` from DataParallel/DDP,
      ``_orig_mod.`` from ``torch.compile``) from checkpoint and model names.
    """

    OFF = False
    ON = True
    NO_KEY_MATCHING = "no_key_matching"
    KEY_MATCHING = "key_matching"


def _as_strict(strict) -> StrictLoad:
    if isinstance(strict, StrictLoad):
        return strict
    if isinstance(strict, bool):
        return StrictLoad(strict)
    if isinstance(strict, str):
        for mode in StrictLoad:
            if strict.lower() in (mode.name.lower(), str(mode.value).lower()):
                return mode
    raise ValueError(f"strict must be a StrictLoad, a bool or one of {[m.name.lower() for m in StrictLoad]}, got {strict!r}")


def as_strict_load(strict) -> StrictLoad:
    """``strict`` as a `StrictLoad`: a StrictLoad, a bool, or a mode's name or value ("on", "no_key_matching")."""
    return _as_strict(strict)


def _few(keys) -> str:
    keys = list(keys)
    shown = ", ".join(map(str, keys[:_SHOWN_KEYS]))
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _SHOWN_KEYS else "")


def _shape(value):
    return tuple(value.shape) if hasattr(value, "shape") else None


def _fmt(shape) -> str:
    return "no tensor" if shape is None else str(list(shape))


def extract_weights(checkpoint: Mapping, source, key: str = NET) -> Mapping:
    """The state dict stored under ``key``; a bare state dict (only tensors) is its own ``net``."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"checkpoint {source} holds a {type(checkpoint).__name__}, expected a dict")
    if key in checkpoint:
        return checkpoint[key]
    if key == NET and checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    raise ValueError(f"checkpoint {source} has no {key!r} entry (its keys: {_few(checkpoint) or 'none'})")


def state_dict_mismatch(model_sd: Mapping, ckpt_sd: Mapping):
    """(missing keys, unexpected keys, [(key, checkpoint shape, model shape)])."""
    missing = [k for k in model_sd if k not in ckpt_sd]
    unexpected = [k for k in ckpt_sd if k not in model_sd]
    shapes = [
        (k, _shape(ckpt_sd[k]), _shape(model_sd[k]))
        for k in model_sd
        if k in ckpt_sd and _shape(ckpt_sd[k]) != _shape(model_sd[k])
    ]
    return missing, unexpected, shapes


def describe_mismatch(missing, unexpected, shapes) -> str:
    """One line per kind of difference, each listing a few keys and the count; shapes as checkpoint vs model."""
    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): {_few(missing)}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {_few(unexpected)}")
    if shapes:
        shown = "; ".join(f"{k}: checkpoint {_fmt(a)} vs model {_fmt(b)}" for k, a, b in shapes[:_SHOWN_KEYS])
        more = f"; ... ({len(shapes)} in all)" if len(shapes) > _SHOWN_KEYS else ""
        parts.append(f"shape mismatches ({len(shapes)}): {shown}{more}")
    return "\n  ".join(parts)


def adapt_state_dict_to_fit_model_layer_names(
    model_state_dict: Mapping, source_ckpt: Mapping, exclude=[], solver: Callable | None = None  # noqa: B006
):
    """Rename the checkpoint's tensors to the model's names by pairing them in order; None when they do not fit.

    Keys containing any substring of ``exclude`` are left out of the pairing on both sides (the model keeps
    its own values for them). ``solver(ckpt_key, ckpt_val, model_key, model_val)``, when given, returns
    the tensor to use for each pair. Pairing fails (None) when the counts differ or a pair's shapes
    differ. Returns ``{**source_ckpt, "net": renamed}`` for a checkpoint with ``net``, else the renamed
    state dict, in the model's key order.
    """
    has_net = NET in source_ckpt
    ckpt_sd = source_ckpt[NET] if has_net else source_ckpt

    def excluded(key):
        return any(pattern in key for pattern in exclude)

    model_keys = [k for k in model_state_dict if not excluded(k)]
    ckpt_items = [(k, v) for k, v in ckpt_sd.items() if not excluded(k)]
    if len(model_keys) != len(ckpt_items):
        return None
    adapted = {k: v for k, v in model_state_dict.items() if excluded(k)}
    for model_key, (ckpt_key, ckpt_val) in zip(model_keys, ckpt_items):
        model_val = model_state_dict[model_key]
        if solver is not None:
            ckpt_val = solver(ckpt_key, ckpt_val, model_key, model_val)
        if _shape(ckpt_val) != _shape(model_val):
            return None
        adapted[model_key] = ckpt_val
    renamed = {k: adapted[k] for k in model_state_dict}
    return {**source_ckpt, NET: renamed} if has_net else renamed


def raise_informative_runtime_error(state_dict: Mapping, checkpoint: Mapping, exception_msg, *, source=None):
    """Raise a RuntimeError that lists the key and shape differences between ``state_dict`` (the model's) and
    ``checkpoint``, and says how to load it when pairing the tensors by order and shape would work."""
    ckpt_sd = checkpoint[NET] if NET in checkpoint else checkpoint
    missing, unexpected, shapes = state_dict_mismatch(state_dict, ckpt_sd)
    message = str(exception_msg)
    if source is not None:
        message = f"cannot load checkpoint {source} into the model: {message}"
    details = describe_mismatch(missing, unexpected, shapes)
    if details:
        message += "\n  " + details
    if (missing or unexpected) and adapt_state_dict_to_fit_model_layer_names(state_dict, ckpt_sd) is not None:
        message += (
            "\nOnly the names differ: the checkpoint's tensors match the model's by order and shape. Load it with "
            "strict=StrictLoad.NO_KEY_MATCHING, or rename its keys with adapt_state_dict_to_fit_model_layer_names()."
        )
    elif shapes:
        message += "\nTo load only the layers whose shapes fit (e.g. another number of classes), use transfer_weights()."
    raise RuntimeError(message)


def _strip_wrappers(key: str) -> str:
    while key.startswith("module."):
        key = key[len("module.") :]
    return key.replace("_orig_mod.", "")


def _match_by_name(model_sd: Mapping, ckpt_sd: Mapping) -> dict:
    by_plain_name = {_strip_wrappers(k): k for k in model_sd}
    return {by_plain_name.get(_strip_wrappers(k), k): v for k, v in ckpt_sd.items()}


def adaptive_load_state_dict(net: nn.Module, state_dict: Mapping, strict, solver: Callable | None = None, *, source=None):
    """Load ``state_dict`` (or a checkpoint's ``net``) into ``net`` under the `StrictLoad` mode ``strict``.

    Raises RuntimeError naming ``source``, the missing/unexpected keys and shape mismatches when it cannot.
    """
    mode = _as_strict(strict)
    source = source if source is not None else "<state dict>"
    weights = extract_weights(state_dict, source)
    model_sd = net.state_dict()
    if mode is StrictLoad.KEY_MATCHING:
        weights = _match_by_name(model_sd, weights)
    missing, unexpected, shapes = state_dict_mismatch(model_sd, weights)
    if not (missing or unexpected or shapes):
        net.load_state_dict(weights, strict=True)
        return
    if mode is StrictLoad.OFF and not shapes:
        logger.warning("non-strict load of %s:\n  %s", source, describe_mismatch(missing, unexpected, shapes))
        net.load_state_dict(weights, strict=False)
        return
    if mode is StrictLoad.NO_KEY_MATCHING:
        adapted = adapt_state_dict_to_fit_model_layer_names(model_sd, weights, solver=solver)
        if adapted is not None:
            net.load_state_dict(adapted, strict=True)
            return
    raise_informative_runtime_error(model_sd, weights, f"the state dict does not fit ({mode.name})", source=source)


@dataclass
class WeightTransferReport:
    """What `transfer_weights` copied and what it skipped."""

    loaded: list[str] = field(default_factory=list)
    shape_mismatch: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    not_in_model: list[str] = field(default_factory=list)
    not_in_checkpoint: list[str] = field(default_factory=list)

    def __str__(self):
        details = describe_mismatch(self.not_in_checkpoint, self.not_in_model, self.shape_mismatch)
        return f"loaded {len(self.loaded)} tensors" + (f"; skipped:\n  {details}" if details else "")


def transfer_weights(model: nn.Module, model_state_dict: Mapping) -> WeightTransferReport:
    """Copy into ``model`` every tensor of ``model_state_dict`` whose name and shape match; log and report the rest."""
    weights = extract_weights(model_state_dict, "<state dict>")
    own = model.state_dict()
    report = WeightTransferReport()
    for key, value in weights.items():
        if key not in own:
            report.not_in_model.append(key)
        elif _shape(value) != _shape(own[key]):
            report.shape_mismatch.append((key, _shape(value), _shape(own[key])))
        else:
            own[key] = value
            report.loaded.append(key)
    report.not_in_checkpoint = [k for k in own if k not in weights]
    model.load_state_dict(own, strict=True)
    if report.shape_mismatch or report.not_in_model or report.not_in_checkpoint:
        logger.warning("transfer_weights: %s", report)
    return report
