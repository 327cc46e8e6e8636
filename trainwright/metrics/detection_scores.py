"""Average precision, precision, recall and F1 per class from matching results (the reference formats).

AP is COCO's: interpolated precision sampled at the recall thresholds (101 points 0:0.01:1 by default) and
averaged. Precision and recall are read after the predictions with score >= score_threshold; the precision
reported there is the interpolated one (the best precision at that recall or beyond), as the reference does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainwright.metrics.average_precision import coco_recall_thresholds, detection_curves

__all__ = ["compute_detection_metrics", "compute_detection_metrics_per_cls", "detection_scores"]


def detection_scores(
    preds_matched: Tensor,
    preds_to_ignore: Tensor,
    preds_scores: Tensor,
    preds_cls: Tensor,
    targets_cls: Tensor,
    recall_thresholds: Tensor | None,
    score_threshold: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """ap, precision, recall, f1 [K, T] in float64 and the K unique target classes, on the inputs' device."""
    device = preds_scores.device
    preds_matched = _as_bool_2d(preds_matched, "preds_matched")
    preds_to_ignore = _as_bool_2d(preds_to_ignore, "preds_to_ignore")
    num_thr = preds_matched.shape[1]
    if (
        preds_to_ignore.shape != preds_matched.shape
        or preds_scores.shape != preds_matched.shape[:1]
        or preds_cls.shape != preds_scores.shape
    ):
        raise ValueError(
            f"preds_matched {tuple(preds_matched.shape)}, preds_to_ignore {tuple(preds_to_ignore.shape)}, "
            f"preds_scores {tuple(preds_scores.shape)} and preds_cls {tuple(preds_cls.shape)} must describe "
            "the same predictions"
        )
    if torch.isnan(preds_scores).any():
        raise ValueError("preds_scores has NaN values")
    recall_thresholds = coco_recall_thresholds(device=device) if recall_thresholds is None else recall_thresholds
    unique_classes = torch.unique(targets_cls.to(device)).long()
    pred_classes = preds_cls.long()
    segment = torch.searchsorted(unique_classes, pred_classes).clamp(max=max(len(unique_classes) - 1, 0))
    present = (
        unique_classes[segment] == pred_classes
        if len(unique_classes)
        else torch.zeros_like(pred_classes, dtype=torch.bool)
    )
    positives = torch.bincount(
        torch.searchsorted(unique_classes, targets_cls.to(device).long()), minlength=len(unique_classes)
    )
    curves = detection_curves(
        preds_scores[present].double(),
        segment[present],
        (preds_matched & ~preds_to_ignore)[present],
        ~preds_to_ignore[present],
        positives[:, None].expand(-1, num_thr),
        recall_thresholds.to(device, torch.float64),
        score_threshold=score_threshold,
    )
    precision, recall = curves.precision_at_score, curves.recall_at_score
    f1 = 2 * precision * recall / (precision + recall + 1e-16)
    return curves.average_precision, precision, recall, f1, unique_classes


def _as_bool_2d(values: Tensor, name: str) -> Tensor:
    """values as bool [n, T]."""
    if values.ndim != 2:
        raise ValueError(f"{name} must have shape [num_predictions, num_iou_thresholds], got {tuple(values.shape)}")
    return values.bool()


def compute_detection_metrics(
    preds_matched: Tensor,
    preds_to_ignore: Tensor,
    preds_scores: Tensor,
    preds_cls: Tensor,
    targets_cls: Tensor,
    device: torch.device | str,
    recall_thresholds: Tensor | None = None,
    score_threshold: float | None = 0.1,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """AP, precision, recall and F1 for every class that has targets and every IoU threshold.

    :param preds_matched:     [n, T] bool, prediction i is a true positive at threshold j.
    :param preds_to_ignore:   [n, T] bool, prediction i counts neither as TP nor FP at threshold j.
    :param preds_scores:      [n] confidence; rows in the order ties should keep (e.g. image order).
    :param preds_cls:         [n] predicted class; predictions of classes without targets are left out.
    :param targets_cls:       [m] class of every (non-crowd) target.
    :param recall_thresholds: [R] recall points for AP; None = COCO's 101 points.
    :param score_threshold:   precision/recall/F1 use the predictions with score >= it (None = all).
    :return: ap, precision, recall, f1 as float32 [K, T] on device, and unique_classes [K] (sorted target classes).
    """
    device = torch.device(device)
    threshold = float("-inf") if score_threshold is None else float(score_threshold)
    inputs = [t.to(device) for t in (preds_matched, preds_to_ignore, preds_scores, preds_cls, targets_cls)]
    ap, precision, recall, f1, unique_classes = detection_scores(*inputs, recall_thresholds, threshold)
    return ap.float(), precision.float(), recall.float(), f1.float(), unique_classes


def compute_detection_metrics_per_cls(
    preds_matched: Tensor,
    preds_to_ignore: Tensor,
    preds_scores: Tensor,
    n_targets: int,
    recall_thresholds: Tensor,
    score_threshold: float,
    device: torch.device | str,
) -> tuple[Tensor, Tensor, Tensor]:
    """AP, precision and recall [T] of one class from its predictions' matching [n, T] and n_targets targets.

    With n_targets == 0 every value is 0 (recall is undefined there; the class takes no part in the mean AP).
    """
    device = torch.device(device)
    n_targets = int(n_targets)
    if n_targets == 0:
        zeros = torch.zeros(preds_matched.shape[-1], device=device)
        return zeros, zeros.clone(), zeros.clone()
    preds_scores = preds_scores.to(device)
    classes = torch.zeros(len(preds_scores), device=device)
    targets_cls = torch.zeros(n_targets, device=device)
    ap, precision, recall, _, _ = detection_scores(
        preds_matched.to(device),
        preds_to_ignore.to(device),
        preds_scores,
        classes,
        targets_cls,
        recall_thresholds,
        float(score_threshold),
    )
    return ap[0].float(), precision[0].float(), recall[0].float()
