"""Precision, recall and F1 of each class as functions of the confidence threshold, on a fixed grid.

At threshold c a class's detections with score >= c are kept: precision = TP / kept (0 when nothing is kept),
recall = TP / targets (0 without targets), F1 = 2 P R / (P + R) (0 when both are 0). These are the plain,
not interpolated, values. Ignored detections (a crowd match in the COCO evaluation) count neither as kept nor
as TP. One histogram pass over the detections, no loop over thresholds or classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ConfidenceCurves", "confidence_curves"]


@dataclass
class ConfidenceCurves:
    """Per class and threshold: precision, recall and F1 [K, N] at the thresholds [N]."""

    thresholds: Tensor
    precision: Tensor
    recall: Tensor
    f1: Tensor


def confidence_curves(
    scores: Tensor,
    classes: Tensor,
    true_positive: Tensor,
    counted: Tensor,
    num_targets: Tensor,
    thresholds: Tensor,
) -> ConfidenceCurves:
    """Precision, recall and F1 of K classes at N confidence thresholds.

    Args:
        scores (Tensor[D]): detection confidence.
        classes (Tensor[D]): class index in [0, K) of each detection.
        true_positive (Tensor[D]): bool, the detection matched a target of its class.
        counted (Tensor[D]): bool, the detection counts (is a TP or an FP, not ignored).
        num_targets (Tensor[K]): targets of each class.
        thresholds (Tensor[N]): increasing confidence thresholds.

    Returns:
        ConfidenceCurves with precision, recall, f1 [K, N] in float64.
    """
    num_classes, num_thr = num_targets.numel(), thresholds.numel()
    thresholds = thresholds.to(scores.device, torch.float64)
    # bucket b holds the scores in [thresholds[b-1], thresholds[b]); a threshold t_c keeps buckets > c
    bucket = torch.searchsorted(thresholds, scores.double(), right=True)
    cell = classes.long() * (num_thr + 1) + bucket
    size = num_classes * (num_thr + 1)
    kept_hist = torch.bincount(cell[counted], minlength=size).view(num_classes, num_thr + 1)
    tp_hist = torch.bincount(cell[true_positive & counted], minlength=size).view(num_classes, num_thr + 1)
    kept = _count_at_or_above(kept_hist).double()
    tp = _count_at_or_above(tp_hist).double()
    targets = num_targets.to(scores.device).double()[:, None]
    precision = torch.where(kept > 0, tp / kept.clamp(min=1), 0.0)
    recall = torch.where(targets > 0, tp / targets.clamp(min=1), 0.0)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-300), 0.0)
    return ConfidenceCurves(thresholds, precision, recall, f1)


def _count_at_or_above(hist: Tensor) -> Tensor:
    """[K, N] detections with score >= threshold c, from bucket counts [K, N + 1]."""
    reverse_cumsum = hist.flip(1).cumsum(1).flip(1)  # [K, N + 1]: counts in buckets >= b
    return reverse_cumsum[:, 1:]
