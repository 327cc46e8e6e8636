"""What a detection run builds differently per model family: loss parameters, NMS, collate functions, stage switch.

A recipe's ``model.architecture`` picks the family (`family_of`): names starting with ``ppyoloe`` are
PP-YOLOE, every other name YOLOX (and any detector that behaves like it). Each family reads its own recipe
keys (`DetectorFamily.read_params`, under the recipe's unused-key check, so a key of the other family is
reported as unused) and builds the pieces the generic recipe code asks for. The recipe's ``postprocess``
section uses the same names for every family (``conf``, ``iou``, ``nms_top_k``, ``max_predictions``,
``multi_label_per_box``), as do the commands' ``--conf`` / ``--iou`` flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from trainwright.callbacks.ppyoloe_stage_switch import PPYoloETrainingStageSwitchCallback
from trainwright.callbacks.stage_switch import YoloXTrainingStageSwitchCallback
from trainwright.data import CrowdDetectionCollateFN, CrowdDetectionPPYoloECollateFN, DetectionCollateFN
from trainwright.models.detection.postprocess import DetectionPostPredictionCallback, YoloXPostPredictionCallback
from trainwright.models.detection.ppyoloe_postprocess import PPYoloEPostPredictionCallback
from trainwright.recipes import RecipeError

__all__ = ["DetectorFamily", "YoloXFamily", "PPYoloEFamily", "family_of"]


class DetectorFamily:
    """The per-family pieces of a detection run (YOLOX's by default)."""

    name = "YOLOX"
    train_with_crowd = False  # whether the training split yields crowd regions (for a loss that uses them)

    def read_params(self, cfg: Mapping) -> dict:
        """The family's own recipe keys as plain values (cfg: the whole recipe, a counting view)."""
        return {}

    def criterion_params(self, model: nn.Module, num_classes: int) -> dict:
        """The loss parameters the model decides (the recipe's criterion_params override them)."""
        return {"num_classes": num_classes, "strides": list(model.strides)}

    def post_prediction(self, settings: Mapping) -> DetectionPostPredictionCallback:
        """The NMS of the family from the recipe's ``postprocess`` settings."""
        return YoloXPostPredictionCallback(**settings)

    def collate_fns(self, params: Mapping) -> tuple[Any, Any]:
        """(training, validation) collate functions."""
        return DetectionCollateFN(), CrowdDetectionCollateFN()

    def stage_callbacks(self, mosaic_off_epoch: int | None, params: Mapping) -> list:
        """The callbacks that switch training stages."""
        return [] if mosaic_off_epoch is None else [YoloXTrainingStageSwitchCallback(int(mosaic_off_epoch))]


class YoloXFamily(DetectorFamily):
    """YOLOX: SimOTA loss over the strides, objectness x class NMS, the last stage without mosaic."""


class PPYoloEFamily(DetectorFamily):
    """PP-YOLOE: ATSS then task-aligned assignment (training_params.static_assigner_end_epoch), random-resize
    batches (train_dataloader.random_resize_sizes / random_resize_modes), crowd regions seen by the loss."""

    name = "PP-YOLOE"
    train_with_crowd = True
    _MAX_STRIDE = 32

    def read_params(self, cfg: Mapping) -> dict:
        params: dict[str, Any] = {"static_assigner_end_epoch": None, "random_resize_sizes": None,
                                  "random_resize_modes": None}
        # YOLOX settings fail here, before any data is generated or loaded.
        self.stage_callbacks((cfg.get("augmentation") or {}).get("mosaic_off_epoch"), {})
        if (cfg.get("postprocess") or {}).get("with_confidence") is not None:
            self.post_prediction({"with_confidence": True})
        training = cfg.get("training_params") or {}
        if training.get("static_assigner_end_epoch") is not None:
            epoch = training["static_assigner_end_epoch"]
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                raise RecipeError(f"training_params.static_assigner_end_epoch must be an integer >= 0, got {epoch!r}")
            params["static_assigner_end_epoch"] = epoch
        loader = cfg.get("train_dataloader") or {}
        if loader.get("random_resize_sizes") is not None:
            params["random_resize_sizes"] = self._sizes(loader["random_resize_sizes"])
        if loader.get("random_resize_modes") is not None:
            modes = [int(m) for m in loader["random_resize_modes"]]
            if not modes or min(modes) < 0 or max(modes) > 4:
                raise RecipeError(f"train_dataloader.random_resize_modes must be OpenCV interpolation flags 0..4 "
                                  f"(nearest, linear, cubic, area, lanczos4), got {modes}")
            params["random_resize_modes"] = modes
        return params

    def _sizes(self, sizes) -> list:
        """Each size an int or [rows, cols], every side a positive multiple of the model's largest stride."""
        out = []
        for size in sizes:
            sides = [size] if isinstance(size, int) else list(size)
            if len(sides) not in (1, 2) or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 or
                                               s % self._MAX_STRIDE for s in sides):
                raise RecipeError(f"train_dataloader.random_resize_sizes: {size!r} is not a positive multiple of "
                                  f"{self._MAX_STRIDE} (or a [rows, cols] pair of them)")
            out.append(size if isinstance(size, int) else sides)
        return out

    def criterion_params(self, model: nn.Module, num_classes: int) -> dict:
        return {"num_classes": num_classes, "reg_max": int(model.reg_max)}

    def post_prediction(self, settings: Mapping) -> DetectionPostPredictionCallback:
        settings = dict(settings)
        if settings.pop("with_confidence", None) is not None:
            raise RecipeError("postprocess.with_confidence is a YOLOX setting (PP-YOLOE has no objectness); remove it")
        renamed = {"conf": "score_threshold", "iou": "nms_threshold"}
        return PPYoloEPostPredictionCallback(**{renamed.get(k, k): v for k, v in settings.items()})

    def collate_fns(self, params: Mapping) -> tuple[Any, Any]:
        train = CrowdDetectionPPYoloECollateFN(params.get("random_resize_sizes"), params.get("random_resize_modes"))
        return train, CrowdDetectionCollateFN()

    def stage_callbacks(self, mosaic_off_epoch: int | None, params: Mapping) -> list:
        if mosaic_off_epoch is not None:
            raise RecipeError(f"augmentation.mosaic_off_epoch={mosaic_off_epoch} is a YOLOX stage (it turns the L1 "
                              f"loss on); PP-YOLOE recipes switch assigners with "
                              f"training_params.static_assigner_end_epoch")
        epoch = params.get("static_assigner_end_epoch")
        return [] if epoch is None else [PPYoloETrainingStageSwitchCallback(int(epoch))]


_FAMILIES: dict[str, DetectorFamily] = {"ppyoloe": PPYoloEFamily(), "pp_yoloe": PPYoloEFamily()}


def family_of(architecture: str) -> DetectorFamily:
    """The family of a model name (``ppyoloe_s`` -> PP-YOLOE; any other name -> YOLOX)."""
    name = str(architecture).lower()
    for prefix, family in _FAMILIES.items():
        if name.startswith(prefix):
            return family
    return YoloXFamily()
