"""Callbacks by name, as recipes write them: `phase_callbacks: [{"EarlyStop": {...}}, "MyCallback"]` and
`pre_prediction_callback: {"DetectionMultiscalePrePredictionCallback": {...}}` (the reference's forms)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainwright.callbacks.early_stopping import EarlyStop
from trainwright.callbacks.lr import LRSchedulerCallback
from trainwright.callbacks.multiscale import DetectionMultiscalePrePredictionCallback
from trainwright.callbacks.results import RoboflowResultCallback
from trainwright.callbacks.segmentation_visualization import BinarySegmentationVisualizationCallback
from trainwright.callbacks.stage_switch import YoloXTrainingStageSwitchCallback
from trainwright.callbacks.visualization import DetectionVisualizationCallback
from trainwright.nn.param_lookup import fuzzy_str

__all__ = ["CALLBACKS", "register_callback", "build_callback", "build_callback_list"]

# name -> class, built with the keyword arguments of the recipe entry
CALLBACKS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        EarlyStop,
        LRSchedulerCallback,
        DetectionMultiscalePrePredictionCallback,
        YoloXTrainingStageSwitchCallback,
        DetectionVisualizationCallback,
        BinarySegmentationVisualizationCallback,
        RoboflowResultCallback,
    )
}


def register_callback(name: str, cls: type | None = None):
    """Make the recipe name `name` build `cls` (usable as a class decorator without `cls`)."""

    def add(c: type) -> type:
        CALLBACKS[name] = c
        return c

    return add(cls) if cls is not None else add


def _lookup(name: str, what: str) -> type:
    """The class registered as `name`, matched exactly, then ignoring case, underscores and symbols."""
    if name in CALLBACKS:
        return CALLBACKS[name]
    matches = [cls for key, cls in CALLBACKS.items() if fuzzy_str(key) == fuzzy_str(name)]
    if not matches:
        raise ValueError(f"{what}: {name!r} is not a registered callback; expected one of {sorted(CALLBACKS)}")
    return matches[0]


def build_callback(conf: Any, what: str = "callback") -> Any:
    """A callback from a recipe entry: a name (built without arguments), a one-entry mapping {name: {kwargs}},
    or anything else (an object), returned as is. `what` names the parameter in errors."""
    if isinstance(conf, str):
        return _lookup(conf, what)()
    if isinstance(conf, Mapping):
        if len(conf) != 1:
            raise ValueError(f"{what}: expected a callback name or a one-entry mapping {{name: {{arguments}}}}, "
                             f"got {dict(conf)!r}")  # fmt: skip
        (name, kwargs), = conf.items()
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"{what}: the arguments of {name!r} must be a mapping, got {kwargs!r}")
        return _lookup(str(name), what)(**dict(kwargs or {}))
    return conf


def build_callback_list(confs, what: str = "phase_callbacks") -> list:
    """`build_callback` for each entry of a list (None means no callbacks)."""
    return [build_callback(conf, f"{what}[{i}]") for i, conf in enumerate(confs or [])]
