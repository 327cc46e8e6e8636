"""Precision/recall curves and COCO-interpolated precision, batched over segments (classes) and configs.

Detections of one segment are ranked by decreasing score (ties keep the input order). Along that ranking,
precision = TP / (TP + FP + eps) and recall = TP / positives, exactly as the COCO evaluation computes them;
ignored detections count as neither. The interpolated precision at recall r is the highest precision reached
at any recall >= r, sampled at each recall threshold (0 once r is beyond the final recall).

Precision only rises at true positives, so the curve is evaluated at those points alone; the work is
proportional to the number of true positives, never to segments x configs x detections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["coco_recall_thresholds", "coco_iou_thresholds", "DetectionCurves", "detection_curves"]

_EPS = float(np.spacing(1))  # the COCO evaluation's epsilon in TP / (TP + FP + eps)


def coco_recall_thresholds(num: int = 101, device: torch.device | str | None = None) -> Tensor:
    """The COCO recall thresholds [num] in float64 (0, 0.01, ..., 1 for 101 points), bit-identical to COCO's."""
    return torch.from_numpy(np.linspace(0.0, 1.0, num)).to(device)


def coco_iou_thresholds(device: torch.device | str | None = None) -> Tensor:
    """The COCO IoU thresholds [10] in float64 (0.50, 0.55, ..., 0.95), bit-identical to COCO's."""
    return torch.from_numpy(np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)).to(device)


@dataclass
class DetectionCurves:
    """Per segment and config: sampled interpolated precision [S, C, R], final recall [S, C], TP count [S, C],
    and (when a score threshold was given) precision and recall at that threshold [S, C]."""

    sampled_precision: Tensor
    final_recall: Tensor
    true_positives: Tensor
    precision_at_score: Tensor | None = None
    recall_at_score: Tensor | None = None

    @property
    def average_precision(self) -> Tensor:
        """[S, C] mean of the sampled precision over the recall thresholds."""
        return self.sampled_precision.mean(-1)


def detection_curves(
    scores: Tensor,
    segments: Tensor,
    true_positive: Tensor,
    counted: Tensor,
    num_positives: Tensor,
    recall_thresholds: Tensor,
    score_threshold: float | None = None,
) -> DetectionCurves:
    """Evaluate the precision/recall curves of S segments under C configs.

    :param scores:            [N] detection confidence (rows already in the tie-break order wanted).
    :param segments:          [N] segment (class) index in [0, S) of each detection.
    :param true_positive:     [N, C] bool, detection is a true positive under each config.
    :param counted:           [N, C] bool, detection counts (TP or FP, i.e. not ignored) under each config.
    :param num_positives:     [S, C] number of (not ignored) ground truths; segments with 0 give zeros.
    :param recall_thresholds: [R] recall points, increasing.
    :param score_threshold:   also report precision (interpolated) and recall over detections with score >= it.
    """
    device = scores.device
    num_segments, num_configs = num_positives.shape
    order = torch.argsort(-scores, stable=True)
    order = order[torch.argsort(segments[order], stable=True)]
    seg = segments[order]
    tp = true_positive[order].T.contiguous()  # [C, N]; row-contiguous makes the scans along N fast
    counted_cum = counted[order].T.contiguous().cumsum(1, dtype=torch.int32) if scores.numel() else None
    seg_start = torch.searchsorted(seg, torch.arange(num_segments, device=device))

    cfg, row = tp.nonzero(as_tuple=True)  # TP entries sorted by config, then rank
    curve = cfg * num_segments + seg[row]  # curve id per entry, non-decreasing
    num_curves = num_configs * num_segments
    tp_count = torch.bincount(curve, minlength=num_curves)
    curve_first = torch.cumsum(tp_count, 0) - tp_count
    k = torch.arange(curve.numel(), device=device) - curve_first[curve] + 1
    if curve.numel():
        seen = counted_cum[cfg, row] - _count_before(counted_cum, seg_start)[cfg, seg[row]]
        precision = k.double() / (seen.double() + _EPS)
    else:
        precision = torch.zeros(0, dtype=torch.float64, device=device)
    envelope = _suffix_max_per_curve(precision, curve, num_curves)

    positives = num_positives.T.reshape(-1).to(device)  # [C * S] in curve order
    sampled = _sample(envelope, curve_first, tp_count, positives, recall_thresholds.to(device, torch.float64))
    recall = torch.where(positives > 0, tp_count.double() / positives.clamp(min=1).double(), 0.0)
    result = DetectionCurves(
        sampled_precision=_per_segment(sampled, num_configs, num_segments),
        final_recall=_per_segment(recall, num_configs, num_segments),
        true_positives=_per_segment(tp_count, num_configs, num_segments),
    )
    if score_threshold is not None:
        above = torch.bincount(seg[scores[order] >= score_threshold], minlength=num_segments)
        p, r = _at_score(above, seg_start, counted_cum, tp, envelope, curve_first, tp_count, positives)
        result.precision_at_score = _per_segment(p, num_configs, num_segments)
        result.recall_at_score = _per_segment(r, num_configs, num_segments)
    return result


def _per_segment(values: Tensor, num_configs: int, num_segments: int) -> Tensor:
    """Reshape values laid out [C * S, ...] (curve order) to [S, C, ...]."""
    return values.reshape(num_configs, num_segments, *values.shape[1:]).transpose(0, 1)


def _count_before(counted_cum: Tensor, seg_start: Tensor) -> Tensor:
    """[C, S] counted detections before each segment's first row."""
    before = seg_start - 1
    values = counted_cum[:, before.clamp(min=0)] if counted_cum.shape[1] else counted_cum.new_zeros(1)
    return torch.where(before[None, :] >= 0, values, 0)


def _suffix_max_per_curve(values: Tensor, curve: Tensor, num_curves: int) -> Tensor:
    """Max of values[j] over j >= i within the same curve, for values sorted by curve [E]."""
    if values.numel() == 0:
        return values
    rev_values, rev_curve = values.flip(0), curve.flip(0)
    # Offsetting each curve above all earlier ones (in reversed order) makes one cummax restart per curve;
    # the indices it returns pick the exact original values back.
    key = rev_values + 2.0 * (num_curves - rev_curve).double()
    _, index = torch.cummax(key, 0)
    return rev_values[index].flip(0)


def _sample(envelope: Tensor, first: Tensor, count: Tensor, positives: Tensor, thresholds: Tensor) -> Tensor:
    """Interpolated precision [curves, R] at each recall threshold.

    Recall reaches r first at the c-th true positive, c the least integer with c / positives >= r (compared
    in float64 like COCO); beyond the last true positive the precision is 0.
    """
    pos = positives.clamp(min=1).double()[:, None]
    needed = torch.ceil(thresholds[None, :] * pos)
    needed = torch.where((needed > 0) & ((needed - 1) / pos >= thresholds), needed - 1, needed)
    needed = torch.where(needed / pos < thresholds, needed + 1, needed).long()
    reachable = (needed <= count[:, None]) & (count[:, None] > 0) & (positives[:, None] > 0)
    if envelope.numel() == 0:
        return torch.zeros(reachable.shape, dtype=torch.float64, device=envelope.device)
    index = (first[:, None] + (needed - 1).clamp(min=0)).clamp(max=envelope.numel() - 1)
    return torch.where(reachable, envelope[index], 0.0)


def _at_score(above, seg_start, counted_cum, tp, envelope, curve_first, tp_count, positives):
    """Interpolated precision and recall [C * S] after the detections of each segment with score >= threshold."""
    num_configs, num_segments = tp.shape[0], seg_start.numel()
    shape = (num_configs * num_segments,)
    zeros = torch.zeros(shape, dtype=torch.float64, device=above.device)
    if tp.shape[1] == 0:
        return zeros, zeros.clone()
    last = (seg_start + above - 1).clamp(min=0)  # last row above the threshold, per segment
    seen = (counted_cum[:, last] - _count_before(counted_cum, seg_start)).reshape(shape)
    tp_cum = tp.cumsum(1, dtype=torch.int32)
    tp_before = torch.where(seg_start > 0, tp_cum[:, (seg_start - 1).clamp(min=0)], 0)
    tp_seen = (tp_cum[:, last] - tp_before).reshape(shape)
    has_rows = (above > 0).repeat(num_configs)
    precision = tp_seen.double() / (seen.double() + _EPS)
    later = tp_seen < tp_count  # a later true positive may raise the interpolated precision
    if envelope.numel():
        later_best = envelope[(curve_first + tp_seen).clamp(max=envelope.numel() - 1)]
        precision = torch.where(later, torch.maximum(precision, later_best), precision)
    precision = torch.where(has_rows, precision, 0.0)
    recall = torch.where(has_rows & (positives > 0), tp_seen.double() / positives.clamp(min=1).double(), 0.0)
    return precision, recall
