"""Model architectures and their registry: ``get_model("yolox_s", num_classes=80)`` builds one by name;
``get("yolox_s", num_classes=5, pretrained_weights="coco")`` also starts it from weights."""

from collections.abc import Callable
from functools import partial

from torch import nn

from trainwright.models.detection.ppyoloe import PPYoloE
from trainwright.models.detection.yolox import YoloX
from trainwright.models.factory import get, unknown_model_error
from trainwright.models.pretrained import register_model_adapters

# name -> (constructor, architecture defaults); overrides passed to get_model replace the defaults.
_YOLOX_ARCHS = {
    "yolox_n": {"depth_mult": 0.33, "width_mult": 0.25, "depthwise": True},
    "yolox_t": {"depth_mult": 0.33, "width_mult": 0.375, "depthwise": False},
    "yolox_s": {"depth_mult": 0.33, "width_mult": 0.5, "depthwise": False},
    "yolox_m": {"depth_mult": 0.67, "width_mult": 0.75, "depthwise": False},
    "yolox_l": {"depth_mult": 1.0, "width_mult": 1.0, "depthwise": False},
    "yolox_x": {"depth_mult": 1.33, "width_mult": 1.25, "depthwise": False},
}
_PPYOLOE_ARCHS = {
    "ppyoloe_s": {"depth_mult": 0.33, "width_mult": 0.5},
    "ppyoloe_m": {"depth_mult": 0.67, "width_mult": 0.75},
    "ppyoloe_l": {"depth_mult": 1.0, "width_mult": 1.0},
    "ppyoloe_x": {"depth_mult": 1.33, "width_mult": 1.25},
}
# name -> the architecture settings get_model accepts as overrides.
_ARCH_KEYS = {name: {"depth_mult", "width_mult", "depthwise", "in_channels"} for name in _YOLOX_ARCHS}
_ARCH_KEYS.update({name: {"depth_mult", "width_mult", "in_channels", "reg_max"} for name in _PPYOLOE_ARCHS})

_REGISTRY: dict[str, Callable[..., nn.Module]] = {name: partial(YoloX, **arch) for name, arch in _YOLOX_ARCHS.items()}
_REGISTRY.update({name: partial(PPYoloE, **arch) for name, arch in _PPYOLOE_ARCHS.items()})


def list_models() -> list[str]:
    """Names accepted by :func:`get_model`, sorted."""
    return sorted(_REGISTRY)


def get_model(name: str, num_classes: int, **arch_overrides) -> nn.Module:
    """A freshly initialised model ``name`` predicting ``num_classes`` classes.

    ``arch_overrides`` replace architecture settings (YOLOX: depth_mult, width_mult, depthwise, in_channels;
    PP-YOLOE: depth_mult, width_mult, in_channels, reg_max).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in _REGISTRY:
        raise unknown_model_error(name, list_models())
    unknown = sorted(set(arch_overrides) - _ARCH_KEYS[key])
    if unknown:
        raise TypeError(f"{name}: unknown architecture override(s) {unknown}; allowed: {sorted(_ARCH_KEYS[key])}")
    return _REGISTRY[key](num_classes=num_classes, **arch_overrides)


register_model_adapters()

__all__ = ["get", "get_model", "list_models"]
