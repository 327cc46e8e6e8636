"""Detection metrics: mean average precision (COCO's), precision, recall and F1 as a torchmetrics Metric.

`DetectionMetrics` post-processes the model output with its callback, matches predictions to targets batch by
batch (COCO's greedy rule, crowd regions ignored, top_k predictions per class and image) and keeps only the
matching results of the predictions that count (and the target classes), never images or boxes.
States are torchmetrics list states concatenated across processes, so 1 or N processes give the same numbers.

The matching and scoring functions of the reference API are re-exported here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from trainwright.metrics.average_precision import coco_iou_thresholds
from trainwright.metrics.detection_matching import (
    check_prediction_list,
    check_targets,
    compute_detection_matching,
    compute_img_detection_matching,
    get_top_k_idx_per_cls,
    match_batch,
)
from trainwright.metrics.detection_scores import (
    compute_detection_metrics,
    compute_detection_metrics_per_cls,
    detection_scores,
)
from trainwright.metrics.iou_threshold import IouThreshold

__all__ = [
    "DetectionMetrics",
    "DetectionMetrics_050",
    "DetectionMetrics_050_095",
    "get_top_k_idx_per_cls",
    "compute_img_detection_matching",
    "compute_detection_matching",
    "compute_detection_metrics",
    "compute_detection_metrics_per_cls",
]

_FP, _TP, _IGNORED = 0.0, 1.0, 2.0  # per-threshold status codes kept in the state


def _iou_thresholds(iou_thres: IouThreshold | float | Sequence[float] | Tensor | None) -> Tensor:
    """IoU thresholds [T] in float64; None means COCO's 0.50:0.05:0.95; an IouThreshold gives its sampled range."""
    if iou_thres is None:
        return coco_iou_thresholds()
    if isinstance(iou_thres, IouThreshold):  # a tuple too: (0.5, 0.95) means the range, not two thresholds
        return iou_thres.to_tensor(torch.float64)
    thresholds = torch.as_tensor(iou_thres, dtype=torch.float64).reshape(-1)
    if thresholds.numel() == 0 or ((thresholds <= 0) | (thresholds > 1) | thresholds.isnan()).any():
        raise ValueError(f"iou_thres must be one or more values in (0, 1], got {iou_thres!r}")
    return thresholds


class DetectionMetrics(Metric):
    """Mean AP, precision, recall and F1 of object detection over IoU thresholds (COCO's 0.50:0.95 by default).

    :param num_cls:                  number of classes; class ids must lie in [0, num_cls).
    :param post_prediction_callback: turns the model output into one [n, 6] tensor (x1, y1, x2, y2, score,
                                     class) or None per image; called as callback(preds, device=device).
                                     None means update() receives that list already.
    :param normalize_targets:        the reference's flag, with its inverted meaning kept so that existing
                                     recipes give the same numbers: True = targets are in pixels and are used
                                     as they are; False (default) = targets are normalised to [0, 1] and are
                                     multiplied by the input width and height. Pixel targets (what the
                                     detection data loaders produce) therefore need normalize_targets=True.
    :param iou_thres:                an IouThreshold (MAP_05_TO_095, the default, = 0.50:0.05:0.95; MAP_05 = 0.5),
                                     one threshold (e.g. 0.5) or several (a list or tensor of them);
                                     None = 0.50:0.05:0.95.
    :param recall_thres:             recall points for AP; None = COCO's 101 points 0:0.01:1.
    :param score_thres:              precision, recall and F1 use the predictions with score >= it.
    :param top_k_predictions:        predictions kept per class and image (COCO: 100), by score.
    :param include_classwise_ap:     also report AP<range>_<class name> for every class (0 for absent ones).
    :param class_names:              num_cls names for those keys; default "0", "1", ...
    :param kwargs:                   passed to torchmetrics.Metric (dist_sync_on_step, process_group, ...).

    compute() returns {"Precision<r>", "Recall<r>", "mAP<r>", "F1<r>"} with <r> = "@0.50" or "@0.50:0.95"
    (first:last threshold), means over the classes present in the targets and over the thresholds. With 101
    recall points and top_k_predictions=100, mAP equals the COCO API's bbox AP (area "all") on the same data.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(
        self,
        num_cls: int,
        post_prediction_callback: Callable | None,
        normalize_targets: bool = False,
        iou_thres: IouThreshold | float | Sequence[float] | Tensor | None = IouThreshold.MAP_05_TO_095,
        recall_thres: Tensor | None = None,
        score_thres: float = 0.1,
        top_k_predictions: int = 100,
        include_classwise_ap: bool = False,
        class_names: Sequence[str] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_cls) != num_cls or num_cls < 1:
            raise ValueError(f"num_cls must be a positive integer, got {num_cls!r}")
        if top_k_predictions < 1:
            raise ValueError(f"top_k_predictions must be >= 1, got {top_k_predictions}")
        class_names = [str(i) for i in range(num_cls)] if class_names is None else list(class_names)
        if len(class_names) != num_cls:
            raise ValueError(f"class_names has {len(class_names)} names but num_cls is {num_cls}")
        self.num_cls = int(num_cls)
        self.post_prediction_callback = post_prediction_callback
        self.normalize_targets = normalize_targets
        self.denormalize_targets = not normalize_targets
        self.iou_thres = iou_thres
        self.iou_thresholds = _iou_thresholds(iou_thres)
        self.recall_thresholds = None if recall_thres is None else torch.as_tensor(recall_thres, dtype=torch.float64)
        self.score_threshold = float(score_thres)
        self.top_k_predictions = int(top_k_predictions)
        self.include_classwise_ap = include_classwise_ap
        self.class_names = class_names
        suffix = self._range_suffix()
        self.map_str = f"mAP{suffix}"
        self.per_class_ap_names = [f"AP{suffix}_{name}" for name in class_names]
        self.component_names = [f"Precision{suffix}", f"Recall{suffix}", self.map_str, f"F1{suffix}"]
        if include_classwise_ap:
            self.component_names += self.per_class_ap_names
        self.greater_component_is_better = dict.fromkeys(self.component_names, True)
        self.components = len(self.component_names)
        # 1-D float states: torchmetrics pads and gathers them across processes whatever each rank holds.
        for name in ("pred_status", "pred_scores", "pred_classes", "target_classes"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def _range_suffix(self) -> str:
        """The key suffix: '@0.50' for one threshold, '@first:last' (e.g. '@0.50:0.95') for several."""
        first, last = float(self.iou_thresholds[0]), float(self.iou_thresholds[-1])
        return f"@{first:.2f}" if self.iou_thresholds.numel() == 1 else f"@{first:.2f}:{last:.2f}"

    def update(
        self,
        preds,
        target: Tensor,
        device: torch.device | str | None = None,
        inputs: Tensor | None = None,
        crowd_targets: Tensor | None = None,
    ) -> None:
        """Match one batch and store the results.

        :param preds:         the model output (given to the callback), or the per-image list without one.
        :param target:        [N, 6] (image index, class, cx, cy, w, h), see normalize_targets for the units.
        :param device:        where to post-process and match; default the metric's device.
        :param inputs:        the image batch [B, C, H, W]; gives the size used to denormalise the targets.
        :param crowd_targets: [M, 6] crowd regions, same layout; predictions overlapping them are ignored.
        """
        device = torch.device(device) if device is not None else self.device
        if self.post_prediction_callback is not None:
            preds = self.post_prediction_callback(preds, device=device)
        preds = check_prediction_list(preds, "predictions", self.num_cls)
        if inputs is not None and inputs.shape[0] != len(preds):
            raise ValueError(f"inputs has {inputs.shape[0]} images but the predictions cover {len(preds)}")
        target = check_targets(target, "target", len(preds), self.num_cls)
        crowd_targets = check_targets(crowd_targets, "crowd_targets", len(preds), self.num_cls)
        height, width = self._image_size(inputs)
        matched, ignored, scores, classes, _ = match_batch(
            preds,
            target,
            crowd_targets,
            height,
            width,
            self.iou_thresholds,
            self.denormalize_targets,
            self.top_k_predictions,
            device,
        )
        counts = ~ignored.all(1)  # a prediction ignored at every threshold never changes any number
        status = torch.where(matched, _TP, torch.where(ignored, _IGNORED, _FP))[counts]
        self.pred_status.append(status.reshape(-1).float().to(self.device))
        self.pred_scores.append(scores[counts].float().to(self.device))
        self.pred_classes.append(classes[counts].float().to(self.device))
        self.target_classes.append(target[:, 1].float().to(self.device))

    def _image_size(self, inputs: Tensor | None) -> tuple[int, int]:
        """(height, width) of the input batch; required only to denormalise the targets."""
        if inputs is None:
            if self.denormalize_targets:
                raise ValueError(
                    "inputs (the image batch) is needed to scale normalised targets to pixels; pass inputs=, "
                    "or normalize_targets=True if the targets already are in pixels"
                )
            return 1, 1
        if inputs.ndim < 2:
            raise ValueError(f"inputs must be an image batch [B, C, H, W], got shape {tuple(inputs.shape)}")
        return int(inputs.shape[-2]), int(inputs.shape[-1])

    def compute(self) -> dict[str, Tensor]:
        """The mean precision, recall, AP and F1 (and per-class AP when asked), as 0-d float tensors."""
        num_thr = self.iou_thresholds.numel()
        status = _cat(self.pred_status, self.device).reshape(-1, num_thr)
        scores, classes = _cat(self.pred_scores, self.device), _cat(self.pred_classes, self.device)
        targets = _cat(self.target_classes, self.device)
        ap_per_class = torch.zeros(self.num_cls, dtype=torch.float64, device=self.device)
        if targets.numel() == 0:
            warnings.warn(f"{type(self).__name__}: no ground-truth box was seen; every metric is 0", stacklevel=2)
            means = [0.0] * 4
        else:
            ap, precision, recall, f1, unique_classes = detection_scores(
                status == _TP,
                status == _IGNORED,
                scores,
                classes,
                targets,
                self.recall_thresholds,
                self.score_threshold,
            )
            ap_per_class[unique_classes] = ap.mean(1)
            means = [float(precision.mean()), float(recall.mean()), float(ap.mean()), float(f1.mean())]
        values = means + (ap_per_class.tolist() if self.include_classwise_ap else [])
        return {name: torch.tensor(value) for name, value in zip(self.component_names, values)}


def _cat(state: list[Tensor] | Tensor, device: torch.device) -> Tensor:
    """A list state (or its synced concatenation) as one 1-D tensor; empty when nothing was stored."""
    if isinstance(state, list):
        return dim_zero_cat(state) if state else torch.zeros(0, device=device)
    return state


class DetectionMetrics_050(DetectionMetrics):
    """DetectionMetrics at IoU 0.5 (keys "Precision@0.50", "Recall@0.50", "mAP@0.50", "F1@0.50")."""

    def __init__(
        self, num_cls: int, post_prediction_callback: Callable | None = None, normalize_targets: bool = False, **kwargs
    ):
        kwargs.setdefault("iou_thres", IouThreshold.MAP_05)
        super().__init__(num_cls, post_prediction_callback, normalize_targets, **kwargs)


class DetectionMetrics_050_095(DetectionMetrics):
    """DetectionMetrics over IoU 0.50:0.05:0.95 (keys "...@0.50:0.95")."""

    def __init__(
        self, num_cls: int, post_prediction_callback: Callable | None = None, normalize_targets: bool = False, **kwargs
    ):
        kwargs.setdefault("iou_thres", IouThreshold.MAP_05_TO_095)
        super().__init__(num_cls, post_prediction_callback, normalize_targets, **kwargs)
