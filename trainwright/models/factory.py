"""`get`: build a model by name and start it from a checkpoint or registered pretrained weights.

SuperGradients' ``models.get`` semantics: the model is built for the class count of the weights, the
weights are loaded, then ``replace_head(num_classes)`` re-initialises the class predictions when the
requested count differs. What was loaded and what was left initialised is printed (and logged).
"""

from __future__ import annotations

import difflib
import logging
import warnings
from collections.abc import Mapping

import torch
from torch import nn

from trainwright.checkpoints import load_checkpoint_to_model, read_ckpt_state_dict, verify_checkpoint_file
from trainwright.models.detection.yolox_layouts import OFFICIAL_STEM_KEY
from trainwright.models.pretrained import pretrained_processing_params
from trainwright.nn.checkpoint_keys import EMA_NET, NET, PROCESSING_PARAMS
from trainwright.nn.hub import (
    PRETRAINED_WEIGHTS,
    fetch_pretrained_weights,
    pretrained_weights_entry,
    state_dict_adapter,
)
from trainwright.nn.state_dict import (
    StrictLoad,
    adaptive_load_state_dict,
    as_strict_load,
    extract_weights,
    state_dict_mismatch,
)

__all__ = ["get", "unknown_model_error"]

logger = logging.getLogger(__name__)

# Suffixes of the class-prediction weights [C, ...] of the supported families (YOLOX, PP-YOLOE).
_CLASS_PREDICTION_KEYS = ("cls_preds.0.weight", "pred_cls.0.weight")
_SHOWN = 4


def get(model_name: str, arch_params: Mapping | None = None, num_classes: int | None = None,
        strict_load=StrictLoad.NO_KEY_MATCHING, checkpoint_path=None, pretrained_weights: str | None = None,
        load_backbone: bool = False, checkpoint_num_classes: int | None = None) -> nn.Module:
    """Build ``model_name`` (see ``list_models()``) and load a checkpoint or pretrained weights into it.

    Args:
        arch_params: architecture overrides (for YOLOX: depth_mult, width_mult, depthwise, in_channels).
        num_classes: classes the returned model predicts; defaults to the weights' class count.
        strict_load: how the checkpoint must match (`StrictLoad`; default NO_KEY_MATCHING).
        checkpoint_path: a checkpoint file or URL (its EMA weights when it has them).
        pretrained_weights: a registered dataset name, e.g. ``"coco"``: downloaded once into the cache
            and hash-checked on each use (`trainwright.nn.hub`).
        load_backbone: load only the backbone from ``checkpoint_path``.
        checkpoint_num_classes: classes of the checkpoint's head; read from the checkpoint when omitted.
    Returns:
        the model, in train mode; its class predictions re-initialised when ``num_classes`` differs
        from the weights'.
    """
    from trainwright.models import get_model, list_models  # the registry's module imports this one

    name = resolve_model_name(model_name, list_models())
    arch, num_classes = _arch_and_classes(arch_params, num_classes)
    checkpoint_num_classes = _positive_or_none("checkpoint_num_classes", checkpoint_num_classes)
    strict = as_strict_load(strict_load)
    if checkpoint_path is not None and pretrained_weights is not None:
        raise ValueError(f"pass checkpoint_path or pretrained_weights, not both (got {checkpoint_path!r} and "
                         f"{pretrained_weights!r})")
    if load_backbone and checkpoint_path is None:
        raise ValueError("load_backbone=True needs checkpoint_path, the checkpoint to take the backbone from")
    checkpoint, source, source_classes = _open_weights(name, checkpoint_path, pretrained_weights,
                                                       checkpoint_num_classes, num_classes)
    target_classes = num_classes or source_classes

    net = get_model(name, num_classes=source_classes, **arch)
    loaded = []
    if load_backbone:
        loaded = _load_backbone(net, name, checkpoint_path, checkpoint, source, strict)
    elif checkpoint is not None:
        loaded = _load_weights(net, name, _weights_of(checkpoint, source), strict, source, source_classes)
    reinitialised = _replace_head(net, target_classes) if target_classes != source_classes else []
    if not reinitialised:
        _restore_processing_params(net, checkpoint, pretrained_weights)
    if checkpoint is not None:
        _report(name, net, source, EMA_NET in checkpoint, loaded, reinitialised, target_classes)
    return net


def _arch_and_classes(arch_params, num_classes) -> tuple[dict, int | None]:
    """The architecture overrides and num_classes (SuperGradients' deprecated ``arch_params["num_classes"]`` too)."""
    if arch_params is not None and not isinstance(arch_params, Mapping):
        raise TypeError(f"arch_params must be a mapping of architecture settings, got {arch_params!r}")
    arch = dict(arch_params or {})
    if "num_classes" in arch:
        warnings.warn("num_classes in arch_params is deprecated; pass num_classes to get()", DeprecationWarning,
                      stacklevel=3)
        legacy = arch.pop("num_classes")
        num_classes = legacy if num_classes is None else num_classes
    return arch, _positive_or_none("num_classes", num_classes)


def _open_weights(name: str, checkpoint_path, pretrained_weights, declared: int | None, num_classes: int | None):
    """(checkpoint dict or None, its description, the class count to build the model with)."""
    if pretrained_weights is not None:
        classes = pretrained_weights_entry(name, pretrained_weights).num_classes or num_classes
        if declared is not None and declared != classes:
            raise ValueError(f"checkpoint_num_classes={declared} but the {pretrained_weights!r} weights of {name} "
                             f"predict {classes} classes")
        path = fetch_pretrained_weights(name, pretrained_weights, verify=verify_checkpoint_file)
        checkpoint, source = read_ckpt_state_dict(path), f"{name} {pretrained_weights} weights ({path})"
    elif checkpoint_path is not None:
        checkpoint, source = read_ckpt_state_dict(checkpoint_path), str(checkpoint_path)
        classes = _checkpoint_classes(_weights_of(checkpoint, source), declared, source) or num_classes
    else:
        checkpoint, source, classes = None, None, declared or num_classes
    if classes is None:
        raise ValueError(f"{name}: pass num_classes (or checkpoint_path / pretrained_weights to take it from)")
    return checkpoint, source, classes


def resolve_model_name(model_name, known: list[str]) -> str:
    """The registered name of ``model_name`` (case-insensitive); ValueError naming the closest known one."""
    if not isinstance(model_name, str):
        raise TypeError(f"model_name must be a string, got {model_name!r}")
    key = model_name.strip().lower()
    if key in known:
        return key
    raise unknown_model_error(model_name, known)


def unknown_model_error(model_name: str, known: list[str]) -> ValueError:
    """The error for a model name that is not registered: the closest known name and the list."""
    key = str(model_name).strip().lower()
    pending = any(arch == key for arch, _ in PRETRAINED_WEIGHTS)
    close = [] if pending else difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    note = " (pretrained weights are registered for it, but this version has no such architecture yet)" if pending else ""
    return ValueError(f"unknown model {model_name!r}{note}; {hint}known models: {', '.join(known)}")


def _positive_or_none(name: str, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _weights_of(checkpoint, source) -> Mapping:
    """The checkpoint's EMA weights when it has them (the ones evaluated), else its ``net``."""
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("model"), Mapping) and NET not in checkpoint \
            and OFFICIAL_STEM_KEY in checkpoint["model"]:
        raise ValueError(f"checkpoint {source} is an official YOLOX checkpoint: convert it first with "
                         f"`trainwright convert yolox-official {source} OUT.pth`, then load OUT.pth")
    return extract_weights(checkpoint, source, EMA_NET if isinstance(checkpoint, Mapping) and EMA_NET in checkpoint else NET)


def class_count_of(weights: Mapping) -> int | None:
    """Classes predicted by a state dict, read from its first class-prediction weight (None when it has none)."""
    for key, value in weights.items():
        if key.endswith(_CLASS_PREDICTION_KEYS) and isinstance(value, torch.Tensor) and value.dim() >= 1:
            return int(value.shape[0])
    return None


def _checkpoint_classes(weights: Mapping, declared: int | None, source: str) -> int | None:
    found = class_count_of(weights)
    if declared is not None and found is not None and declared != found:
        raise ValueError(f"checkpoint_num_classes={declared} but checkpoint {source} predicts {found} classes")
    return declared or found


def _load_weights(net: nn.Module, name: str, weights: Mapping, strict, source: str, num_classes: int) -> list[str]:
    """Load ``weights`` (adapted to trainwright's layout) into ``net``; a one-line error names any mismatch."""
    adapter = state_dict_adapter(name)
    weights = adapter(weights) if adapter is not None else dict(weights)
    try:
        adaptive_load_state_dict(net, weights, strict, source=source)
    except RuntimeError as error:
        raise ValueError(_mismatch_message(net, name, weights, source, num_classes)) from error
    return list(net.state_dict())


def _mismatch_message(net: nn.Module, name: str, weights: Mapping, source: str, num_classes: int) -> str:
    missing, unexpected, shapes = state_dict_mismatch(net.state_dict(), weights)
    parts = [f"{len(missing)} missing", f"{len(unexpected)} unexpected", f"{len(shapes)} of other shape"]
    if shapes:
        key, ckpt_shape, model_shape = shapes[0]
        first = f"first: {key} is {list(ckpt_shape or [])} in the checkpoint, {list(model_shape or [])} in the model"
    else:
        first = f"first: {(missing or unexpected)[0]}" if (missing or unexpected) else ""
    if OFFICIAL_STEM_KEY in weights:
        guess = f"; it is an official YOLOX state dict: convert it first with `trainwright convert yolox-official {source} OUT.pth`"
    else:
        fits = _architectures_fitting(weights, num_classes)
        guess = f"; it fits {', '.join(fits)}" if fits else ""
    return (f"checkpoint {source} does not fit {name} with {num_classes} classes: tensors {', '.join(parts)} "
            f"({first}){guess}")


def _architectures_fitting(weights: Mapping, num_classes: int) -> list[str]:
    """Registered architectures whose state dict has the checkpoint's shapes in order (built on the meta device)."""
    from trainwright.models import get_model, list_models

    shapes = [tuple(v.shape) for v in weights.values() if isinstance(v, torch.Tensor)]
    fitting = []
    for candidate in list_models():
        adapter = state_dict_adapter(candidate)
        try:
            with torch.device("meta"):
                model_shapes = [tuple(v.shape) for v in get_model(candidate, num_classes=num_classes).state_dict().values()]
        except Exception:  # an architecture that cannot be built without data: not a candidate for the hint
            continue
        adapted = [tuple(v.shape) for v in (adapter(weights) if adapter else weights).values()]
        if model_shapes in (shapes, adapted):
            fitting.append(candidate)
    return fitting


def _load_backbone(net: nn.Module, name: str, path, checkpoint: Mapping, source: str, strict) -> list[str]:
    """Load the backbone part of the checkpoint at ``path`` into ``net``'s backbone; returns the keys loaded."""
    try:
        load_checkpoint_to_model(net, path, load_backbone=True, strict=strict, load_weights_only=True,
                                 load_ema_as_net=EMA_NET in checkpoint)
    except RuntimeError as error:
        raise ValueError(f"cannot load the backbone of {source} into {name}: {str(error).splitlines()[0]}") from error
    return _backbone_keys(net)


def _backbone_keys(net: nn.Module) -> list[str]:
    for prefix in ("backbone.", "_backbone."):
        keys = [k for k in net.state_dict() if k.startswith(prefix)]
        if keys:
            return keys
    return []


def _replace_head(net: nn.Module, num_classes: int) -> list[str]:
    """``net.replace_head(num_classes)``; returns the state-dict keys whose tensors it re-initialised."""
    if not callable(getattr(net, "replace_head", None)):
        raise TypeError(f"{type(net).__name__} has no replace_head(); build it with num_classes equal to the weights'")
    before = {k: v.data_ptr() for k, v in net.state_dict().items()}
    net.replace_head(new_num_classes=num_classes)
    return [k for k, v in net.state_dict().items() if before.get(k) != v.data_ptr()]


def _restore_processing_params(net: nn.Module, checkpoint, pretrained_weights: str | None) -> None:
    """Class names and input size of the weights' dataset (only while the head is still the weights' own)."""
    setter = getattr(net, "set_dataset_processing_params", None)
    if setter is None or checkpoint is None:
        return
    params = pretrained_processing_params(pretrained_weights) if pretrained_weights else None
    if params is None and isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(PROCESSING_PARAMS), Mapping):
        params = checkpoint[PROCESSING_PARAMS]
    if params:
        setter(**params)


def _report(name: str, net: nn.Module, source: str, ema: bool, loaded: list[str], reinitialised: list[str],
            num_classes: int) -> None:
    keys = list(net.state_dict())
    fresh = [k for k in keys if k not in loaded or k in reinitialised]
    weights = "EMA weights" if ema else "weights"
    lines = [f"{name}: loaded {len(loaded) - len(set(loaded) & set(reinitialised))} of {len(keys)} tensors "
             f"({weights}) from {source}"]
    if reinitialised:
        lines.append(f"  class predictions re-initialised for {num_classes} classes: {_few(reinitialised)}")
    other = [k for k in fresh if k not in reinitialised]
    if other:
        lines.append(f"  left initialised (not in what was loaded): {_few(other)}")
    if not fresh:
        lines.append("  nothing left initialised")
    message = "\n".join(lines)
    logger.info(message)
    print(message)


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:_SHOWN]) + (f", ... ({len(keys)} tensors)" if len(keys) > _SHOWN else f" ({len(keys)} tensors)")
