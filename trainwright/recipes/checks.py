"""The values of a detection recipe, checked before anything is loaded or written.

`check_recipe_values` runs on the recipe as loaded (overrides applied), before `read_detection_recipe` reads
it and long before the experiment directory exists: a wrong type or range, a name that would leave its folder,
a device the machine lacks or a dataset path that does not exist is one RecipeError naming the dotted key and
its value. Keys a recipe does not set are left to the defaults (and to the unused-key check).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from trainwright.logging import check_file_name
from trainwright.recipes import RecipeError
from trainwright.training.devices import resolve_device
from trainwright.training.param_checks import is_bool, is_int, is_number
from trainwright.training.params import DEFAULT_TRAINING_PARAMS, resolve_training_params

__all__ = ["check_recipe_values"]

_Check = tuple[Callable[[Any], bool], str]

_POSITIVE_INT: _Check = (lambda v: is_int(v) and v > 0, "a positive integer")
_NON_NEGATIVE_INT: _Check = (lambda v: is_int(v) and v >= 0, "a non-negative integer")
_WORKERS: _Check = (lambda v: v is None or v == "auto" or (is_int(v) and v >= 0),
                    "a non-negative integer, auto or null")
_FRACTION: _Check = (lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1]")
_NUMBER: _Check = (is_number, "a finite number")
_BOOL: _Check = (is_bool, "true or false")
_SIZE: _Check = (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(is_int(x) and x > 0 for x in v),
                 "a [height, width] pair of positive integers")


def _optional(check: _Check) -> _Check:
    return (lambda v: v is None or check[0](v)), f"{check[1]} or null"


# dotted key -> (test, what a valid value is)
_CHECKS: dict[str, _Check] = {
    "num_threads": _optional(_POSITIVE_INT),
    "dataset.input_size": _SIZE,
    "dataset.cache_images": _BOOL,
    "dataset.max_train_images": _optional(_POSITIVE_INT),
    "dataset.max_valid_images": _optional(_POSITIVE_INT),
    "dataset.ignore_empty_annotations": _BOOL,
    "train_dataloader.batch_size": _POSITIVE_INT,
    "train_dataloader.num_workers": _WORKERS,
    "valid_dataloader.batch_size": _POSITIVE_INT,
    "valid_dataloader.num_workers": _WORKERS,
    "augmentation.mosaic_prob": _FRACTION,
    "augmentation.mixup_prob": _FRACTION,
    "augmentation.hsv_prob": _FRACTION,
    "augmentation.flip_prob": _FRACTION,
    "augmentation.degrees": _NUMBER,
    "augmentation.translate": _NUMBER,
    "augmentation.shear": _NUMBER,
    "augmentation.mosaic_off_epoch": _optional(_NON_NEGATIVE_INT),
    "postprocess.conf": _FRACTION,
    "postprocess.iou": _FRACTION,
    "postprocess.nms_top_k": _optional(_POSITIVE_INT),
    "postprocess.max_predictions": _optional(_POSITIVE_INT),
    "postprocess.multi_label_per_box": _BOOL,
    "postprocess.with_confidence": _BOOL,
    "visualization.freq": _NON_NEGATIVE_INT,
    "visualization.num_images": _POSITIVE_INT,
    "visualization.conf": _FRACTION,
}
_COCO_PATHS = {"train_images_dir": os.path.isdir, "train_annotations": os.path.isfile,
               "val_images_dir": os.path.isdir, "val_annotations": os.path.isfile}  # fmt: skip
_UNSET = object()


def _value(recipe: Mapping, key: str):
    node: Any = recipe
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _UNSET
        node = node[part]
    return node


def check_recipe_values(recipe: DictConfig | Mapping) -> None:
    """Raise a RecipeError naming the first key of `recipe` whose value is wrong (see the module docstring)."""
    plain = OmegaConf.to_container(recipe, resolve=True) if isinstance(recipe, DictConfig) else dict(recipe)
    try:
        if _value(plain, "experiment_name") not in (_UNSET, None, "???"):
            check_file_name("experiment_name", plain["experiment_name"])
        if _value(plain, "device") is not _UNSET:
            resolve_device(plain["device"])
    except ValueError as error:
        raise RecipeError(str(error)) from None
    for key, (test, expected) in _CHECKS.items():
        value = _value(plain, key)
        if value is not _UNSET and not test(value):
            raise RecipeError(f"{key} must be {expected}, got {value!r}")
    _check_training_params(plain)
    _check_dataset_paths(plain)


def _check_training_params(plain: Mapping) -> None:
    params = _value(plain, "training_params")
    if not isinstance(params, Mapping):
        return  # reported by read_detection_recipe
    built = ("valid_metrics_list", "train_metrics_list", "phase_callbacks")  # made from the other sections
    known = {k: v for k, v in params.items() if k in DEFAULT_TRAINING_PARAMS and k not in built}  # others: unused
    try:
        resolve_training_params(known)
    except (ValueError, TypeError) as error:
        raise RecipeError(str(error).splitlines()[0]) from None


def _check_dataset_paths(plain: Mapping) -> None:
    if _value(plain, "dataset.type") != "coco":
        return
    for key, exists in _COCO_PATHS.items():
        path = _value(plain, f"dataset.{key}")
        if isinstance(path, str) and path != "???" and not exists(os.path.expanduser(path)):
            kind = "folder" if exists is os.path.isdir else "file"
            raise RecipeError(f"dataset.{key}={path!r}: no such {kind}")
