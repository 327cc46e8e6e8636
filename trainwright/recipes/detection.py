"""From a detection recipe to the objects of a run: datasets, loaders, model, metrics, callbacks, Trainer params.

Building happens in two steps. `read_detection_recipe` reads every key the run needs into plain values inside
`raise_if_unused_params`, so a misspelt or unused key fails at once, naming its dotted path, before any data
is generated or loaded; it also checks the schedule against max_epochs (`recipes.schedule`), the model name and
where its starting weights come from. `build_detection_run` then builds the objects: the datasets first (their
checks come before any download), then the model from its weights.
"""

from __future__ import annotations

import inspect
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from trainwright.callbacks.base import Phase
from trainwright.callbacks.early_stopping import EarlyStop
from trainwright.callbacks.visualization import DetectionVisualizationCallback
from trainwright.config import raise_if_unused_params
from trainwright.data import (
    COCODetectionDataset,
    ShapesConfig,
    ShapesDetectionDataset,
    build_detection_loader,
)
from trainwright.data.transforms import detection_train_transforms, detection_val_transforms
from trainwright.metrics.detection import DetectionMetrics_050, DetectionMetrics_050_095
from trainwright.metrics.non_finite import NonFinitePredictions
from trainwright.models import get, list_models
from trainwright.models.factory import resolve_model_name
from trainwright.nn.hub import DownloadError, pretrained_weights_entry
from trainwright.recipes import RecipeError
from trainwright.recipes.architectures import family_of
from trainwright.recipes.schedule import check_schedule
from trainwright.training.params import DEFAULT_TRAINING_PARAMS

__all__ = ["DetectionRecipe", "DetectionRun", "VISUALIZATION_CONF", "read_detection_recipe", "build_detection_run",
           "build_datasets"]

DATASET_TYPES = ("shapes", "coco")
_COCO_PATH_KEYS = ("train_images_dir", "train_annotations", "val_images_dir", "val_annotations")
# Trainer parameters the recipe builds itself from its other sections.
_BUILT_PARAMS = ("valid_metrics_list", "train_metrics_list", "phase_callbacks")
_AUGMENTATION_KEYS = tuple(p for p in inspect.signature(detection_train_transforms).parameters if p != "input_size")
_POSTPROCESS_KEYS = ("conf", "iou", "nms_top_k", "max_predictions", "multi_label_per_box", "with_confidence")
VISUALIZATION_CONF = 0.3  # `visualization.conf` when the recipe omits it, and `predict --conf` for a checkpoint without one
_EARLY_STOPPING_KEYS = ("early_stopping_patience", "early_stopping_min_delta")  # training_params keys the recipe reads
_URL_SCHEMES = ("http", "https", "file")


@dataclass
class DetectionRecipe:
    """The plain values a detection run is built from (every key of the recipe, read and checked)."""

    experiment_name: str
    ckpt_root_dir: str
    device: str | None
    num_threads: int | None
    architecture: str
    arch_params: dict
    pretrained_weights: str | None  # a registered dataset name (e.g. "coco") to start from, or None
    checkpoint_path: str | None  # a checkpoint file or URL to start from, or None
    dataset: dict
    augmentation: dict
    mosaic_off_epoch: int | None
    train_loader: dict
    valid_loader: dict
    postprocess: dict
    visualization: dict
    training_params: dict = field(default_factory=dict)
    early_stopping: dict | None = None  # {"patience", "min_delta"} or None
    family_params: dict = field(default_factory=dict)  # the model family's own keys (recipes.architectures)


@dataclass
class DetectionRun:
    """What `trainwright train` hands to the Trainer."""

    recipe: DetectionRecipe
    model: nn.Module
    train_loader: DataLoader
    valid_loader: DataLoader
    training_params: dict
    processing_params: dict
    class_names: list[str]


def _plain(value):
    """A counting view read completely (every key counts as used) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


def _section(cfg, name: str):
    if name not in cfg:
        raise RecipeError(f"the recipe has no '{name}' section")
    section = cfg[name]
    if not isinstance(section, Mapping):
        raise RecipeError(f"recipe key '{name}' must be a section (a mapping), got {section!r}")
    return section


def _required(section, prefix: str, key: str):
    """section[key], or a RecipeError naming the dotted key (prefix "" for top-level keys) when it is unset."""
    value = section.get(key)
    if value is None or value == "???":
        name = f"{prefix}.{key}" if prefix else key
        raise RecipeError(f"{name} is required; set it in the recipe or as {name}=VALUE")
    return value


def _read_known(section, keys) -> dict:
    """The keys of `section` among `keys`; any other key stays unread and is reported as unused."""
    return {k: _plain(section[k]) for k in keys if k in section}


def _read_dataset(section) -> dict:
    kind = section.get("type", "shapes")
    if kind not in DATASET_TYPES:
        raise RecipeError(f"dataset.type must be one of {DATASET_TYPES}, got {kind!r}")
    out = {"type": kind, "input_size": _plain(_required(section, "dataset", "input_size")),
           "cache_images": bool(section.get("cache_images", False)),
           "max_train_images": section.get("max_train_images"), "max_valid_images": section.get("max_valid_images")}
    if kind == "shapes":
        generation = section.get("generation") or {}
        out.update(root=section.get("root"), generation=_read_known(generation, [f.name for f in fields(ShapesConfig)]))
    else:
        out.update({k: str(_required(section, "dataset", k)) for k in _COCO_PATH_KEYS})
        out["ignore_empty_annotations"] = bool(section.get("ignore_empty_annotations", False))
    return out


def _read_training_params(section) -> dict:
    for name in _BUILT_PARAMS:
        if name in section:
            raise RecipeError(f"training_params.{name} is built from the recipe's other sections; remove it")
    return {name: _plain(section[name]) for name in DEFAULT_TRAINING_PARAMS if name in section}


def _read_early_stopping(section, training_params: dict) -> dict | None:
    """{"patience", "min_delta"} from training_params.early_stopping_patience / _min_delta, or None when off."""
    patience, min_delta = (section.get(k) for k in _EARLY_STOPPING_KEYS)
    if patience is None:
        return None  # off: early_stopping_min_delta (read above, so never reported unused) has no effect
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise RecipeError(f"training_params.early_stopping_patience must be a positive integer (validations "
                          f"without improvement) or null, got {patience!r}")
    min_delta = 0.0 if min_delta is None else min_delta
    if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or min_delta < 0:
        raise RecipeError(f"training_params.early_stopping_min_delta must be a number >= 0, got {min_delta!r}")
    if not training_params.get("metric_to_watch"):
        raise RecipeError("training_params.early_stopping_patience watches training_params.metric_to_watch; set it "
                          "(e.g. training_params.metric_to_watch=mAP@0.50)")
    return {"patience": patience, "min_delta": float(min_delta)}


def _read_model(section) -> tuple[str, dict, str | None, str | None]:
    """(architecture, arch_params, pretrained_weights, checkpoint_path), checked without building or downloading."""
    architecture = str(_required(section, "model", "architecture"))
    try:
        architecture = resolve_model_name(architecture, list_models())
    except ValueError as error:
        raise RecipeError(f"model.architecture: {error}") from None
    pretrained, checkpoint = section.get("pretrained_weights"), section.get("checkpoint_path")
    if pretrained is not None and checkpoint is not None:
        raise RecipeError(f"model.pretrained_weights={pretrained!r} and model.checkpoint_path={checkpoint!r} both name "
                          "the starting weights; keep one (model.pretrained_weights=null to start from the checkpoint)")
    if pretrained is not None:
        try:
            pretrained_weights_entry(architecture, str(pretrained))
        except ValueError as error:
            raise RecipeError(f"model.pretrained_weights={pretrained!r}: {error}; or model.pretrained_weights=null to "
                              "train from scratch") from None
    if checkpoint is not None:
        _check_checkpoint_location(str(checkpoint))
    return (architecture, _plain(section.get("arch_params") or {}), None if pretrained is None else str(pretrained),
            None if checkpoint is None else str(checkpoint))


def _check_checkpoint_location(location: str) -> None:
    """A URL (http, https, file) or an existing local file; a missing local file is a RecipeError naming it."""
    parsed = urllib.parse.urlparse(location)
    if parsed.scheme in _URL_SCHEMES[:2]:
        return
    path = urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else os.path.expanduser(location)
    if not os.path.isfile(path):
        raise RecipeError(f"model.checkpoint_path: no checkpoint file at {path!r} (a path or an http(s)/file URL)")


def _workers(section, prefix: str, default: int | None) -> int | None:
    """`num_workers` of a loader section: an integer >= 0, or None for `auto` / null (the loader then takes
    `trainwright.data.loaders.default_num_workers()`: none on up to 2 CPUs, else one per two, at most 8)."""
    value = section.get("num_workers", default)
    if value is None or value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecipeError(f"{prefix}.num_workers must be an integer >= 0 or auto, got {value!r}")
    return value


def read_detection_recipe(recipe: DictConfig | Mapping) -> DetectionRecipe:
    """Every value of a detection recipe, read under raise_if_unused_params (unused keys raise, named); the
    schedule, the model name and its starting weights are checked too (nothing is built or downloaded)."""
    plain = OmegaConf.to_container(recipe, resolve=True) if isinstance(recipe, DictConfig) else dict(recipe)
    with raise_if_unused_params(plain) as cfg:
        model, augmentation = _section(cfg, "model"), _section(cfg, "augmentation")
        train_loader, valid_loader = _section(cfg, "train_dataloader"), _section(cfg, "valid_dataloader")
        visualization, training = _section(cfg, "visualization"), _section(cfg, "training_params")
        architecture, arch_params, pretrained_weights, checkpoint_path = _read_model(model)
        training_params = _read_training_params(training)
        spec = DetectionRecipe(
            experiment_name=str(_required(cfg, "", "experiment_name")),
            ckpt_root_dir=str(cfg.get("ckpt_root_dir") or "checkpoints"),
            device=cfg.get("device"),
            num_threads=cfg.get("num_threads"),
            architecture=architecture,
            arch_params=arch_params,
            pretrained_weights=pretrained_weights,
            checkpoint_path=checkpoint_path,
            dataset=_read_dataset(_section(cfg, "dataset")),
            augmentation=_read_known(augmentation, _AUGMENTATION_KEYS),
            mosaic_off_epoch=augmentation.get("mosaic_off_epoch"),
            train_loader={"batch_size": int(_required(train_loader, "train_dataloader", "batch_size")),
                          "num_workers": _workers(train_loader, "train_dataloader", None)},
            valid_loader={"batch_size": int(_required(valid_loader, "valid_dataloader", "batch_size")),
                          "num_workers": _workers(valid_loader, "valid_dataloader", 0)},
            postprocess=_read_known(_section(cfg, "postprocess"), _POSTPROCESS_KEYS),
            visualization={"freq": int(visualization.get("freq", 1)),
                           "num_images": int(visualization.get("num_images", 8)),
                           "conf": float(visualization.get("conf", VISUALIZATION_CONF))},
            training_params=training_params,
            early_stopping=_read_early_stopping(training, training_params),
            family_params=family_of(_required(model, "model", "architecture")).read_params(cfg),
        )
    check_schedule(spec.training_params, spec.mosaic_off_epoch)
    return spec


def _limit(dataset: Dataset, count) -> Dataset:
    if count is None or int(count) >= len(dataset):
        return dataset
    if int(count) < 1:
        raise RecipeError(f"dataset.max_*_images must be >= 1 or null, got {count!r}")
    return Subset(dataset, range(int(count)))


def build_datasets(spec: DetectionRecipe) -> tuple[COCODetectionDataset, COCODetectionDataset]:
    """(train, validation) datasets of the recipe; shapes are generated into the cache on first use."""
    data, size = spec.dataset, tuple(spec.dataset["input_size"])
    augmentation = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.augmentation.items()}
    train_tf, val_tf = detection_train_transforms(size, **augmentation), detection_val_transforms(size)
    common = {"input_size": size, "cache_images": data["cache_images"]}
    train_crowd = family_of(spec.architecture).train_with_crowd
    if data["type"] == "shapes":
        gen = data["generation"]
        train = ShapesDetectionDataset("train", root=data["root"], transforms=train_tf, with_crowd=train_crowd,
                                       **common, **gen)
        valid = ShapesDetectionDataset("val", root=data["root"], transforms=val_tf, with_crowd=True, **common, **gen)
    else:
        train = COCODetectionDataset(data["train_images_dir"], data["train_annotations"], transforms=train_tf,
                                     ignore_empty_annotations=data["ignore_empty_annotations"],
                                     with_crowd=train_crowd, **common)
        valid = COCODetectionDataset(data["val_images_dir"], data["val_annotations"], transforms=val_tf,
                                     with_crowd=True, **common)
    if train.class_names != valid.class_names:
        raise RecipeError(f"training and validation annotations have different categories: {train.class_names} "
                          f"vs {valid.class_names}")
    return train, valid


def valid_data_location(valid: COCODetectionDataset) -> dict:
    """Where the validation split lives (absolute paths), saved with checkpoints so `trainwright evaluate` finds it."""
    return {"images_dir": os.path.abspath(valid.images_dir), "annotations_file": os.path.abspath(valid.annotations_file)}


def build_detection_run(spec: DetectionRecipe) -> DetectionRun:
    """Datasets, loaders, model, metrics, callbacks and the Trainer parameters of `spec`."""
    train, valid = build_datasets(spec)
    names = list(train.class_names)
    seed = spec.training_params.get("seed", DEFAULT_TRAINING_PARAMS["seed"])
    family = family_of(spec.architecture)
    train_collate, valid_collate = family.collate_fns(spec.family_params)
    train_loader = build_detection_loader(_limit(train, spec.dataset["max_train_images"]), shuffle=True,
                                          drop_last=True, collate_fn=train_collate, seed=seed,
                                          device=spec.device, **spec.train_loader)
    valid_loader = build_detection_loader(_limit(valid, spec.dataset["max_valid_images"]),
                                          collate_fn=valid_collate, device=spec.device,
                                          **spec.valid_loader)
    if len(train_loader) == 0:
        raise RecipeError(f"the training set has {len(train_loader.dataset)} images, fewer than one batch of "
                          f"train_dataloader.batch_size={spec.train_loader['batch_size']}")
    model = build_model(spec, len(names))
    post = family.post_prediction(spec.postprocess)
    params: dict[str, Any] = dict(spec.training_params)
    params["phase_callbacks"] = _callbacks(spec, names, params)
    params["criterion_params"] = {**family.criterion_params(model, len(names)), **params.get("criterion_params", {})}
    params["valid_metrics_list"] = [
        DetectionMetrics_050(len(names), post, normalize_targets=True, class_names=names),
        DetectionMetrics_050_095(len(names), post, normalize_targets=True, class_names=names),
        NonFinitePredictions(),  # last: never the metric watched by default
    ]
    processing = {**train.processing_params, "architecture": spec.architecture, "arch_params": spec.arch_params,
                  "valid_data": valid_data_location(valid), "postprocess": dict(spec.postprocess),
                  "visualization": {"conf": spec.visualization["conf"]}}
    return DetectionRun(spec, model, train_loader, valid_loader, params, processing, names)


def build_model(spec: DetectionRecipe, num_classes: int):
    """The recipe's model for `num_classes` classes, from its starting weights when it names some (what was
    loaded and what was left initialised is printed by `trainwright.models.get`)."""
    if spec.pretrained_weights is None and spec.checkpoint_path is None:
        print(f"{spec.architecture}: initialised at random (model.pretrained_weights and model.checkpoint_path are "
              "null)")
    try:
        return get(spec.architecture, arch_params=spec.arch_params, num_classes=num_classes,
                   pretrained_weights=spec.pretrained_weights, checkpoint_path=spec.checkpoint_path)
    except DownloadError as error:
        raise DownloadError(f"{error}; or set model.pretrained_weights=null to train from scratch") from error


def _callbacks(spec: DetectionRecipe, names: list[str], params: dict) -> list:
    """The recipe's phase callbacks: the YOLOX stage switch, the drawings, early stopping."""
    family = family_of(spec.architecture)
    callbacks = family.stage_callbacks(spec.mosaic_off_epoch, spec.family_params)
    if spec.visualization["freq"] > 0:
        callbacks.append(DetectionVisualizationCallback(
            Phase.VALIDATION_BATCH_END, spec.visualization["freq"],
            family.post_prediction({**spec.postprocess, "conf": spec.visualization["conf"]}), names,
            last_img_idx_in_batch=spec.visualization["num_images"], save_images=True))
    if spec.early_stopping is not None:
        greater = params.get("greater_metric_to_watch_is_better", DEFAULT_TRAINING_PARAMS["greater_metric_to_watch_is_better"])
        callbacks.append(EarlyStop(Phase.VALIDATION_EPOCH_END, monitor=params["metric_to_watch"],
                                   mode="max" if greater else "min", min_delta=spec.early_stopping["min_delta"],
                                   patience=spec.early_stopping["patience"]))
    return callbacks
