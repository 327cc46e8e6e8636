"""Task-aligned assignment (TOOD): anchors chosen by class score and predicted-box IoU together."""

from __future__ import annotations

import torch

from trainwright.models.detection.label_assignment import (
    BoxAssignment,
    empty_assignment,
    k_best_mask,
    keep_best_box_per_anchor,
    matched_boxes,
    pairwise_iou_xyxy,
    points_inside_boxes,
)


@torch.no_grad()
def task_aligned_assign(
    pred_scores: torch.Tensor,
    pred_boxes: torch.Tensor,
    anchor_points: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_classes: torch.Tensor,
    gt_valid: torch.Tensor,
    topk: int = 13,
    alpha: float = 1.0,
    beta: float = 6.0,
    eps: float = 1e-9,
) -> BoxAssignment:
    """Assign anchors to boxes by the alignment metric t = score^alpha * IoU^beta of their predictions.

    pred_scores [B, A, C] class probabilities; pred_boxes [B, A, 4] decoded predictions; anchor_points [A, 2];
    gt_boxes [B, G, 4]; gt_classes long [B, G]; gt_valid bool [B, G]. Boxes xyxy and points in pixels.

    For each box, the ``topk`` anchors inside it (centre strictly inside) with the largest t for the box's
    class are positive (fewer when fewer anchors lie inside). An anchor positive for several boxes keeps the
    one its predicted box overlaps most. target_score = t / max t of the box's positives * max IoU of the
    box's positives, so the best-aligned anchor of a box learns that box's best IoU.
    """
    batch, num_anchors, _ = pred_scores.shape
    if gt_boxes.shape[1] == 0:
        return empty_assignment(batch, num_anchors, pred_scores.device, pred_scores.dtype)
    ious = pairwise_iou_xyxy(gt_boxes, pred_boxes)  # [B, G, A]
    class_scores = pred_scores.gather(2, gt_classes[:, None, :].expand(-1, num_anchors, -1)).transpose(1, 2)
    alignment = class_scores.pow(alpha) * ious.pow(beta)  # [B, G, A]
    inside = points_inside_boxes(anchor_points, gt_boxes, eps)
    # Anchors outside a box rank below every anchor inside it, so ties at 0 never crowd out inside anchors.
    top = k_best_mask(alignment.masked_fill(~inside, -1.0), topk, largest=True)
    positive = keep_best_box_per_anchor(top & inside & gt_valid[..., None], ious)
    fg_mask, matched_gt = matched_boxes(positive)

    alignment = alignment * positive
    best_alignment = alignment.amax(-1, keepdim=True)
    best_iou = (ious * positive).amax(-1, keepdim=True)
    target_score = (alignment / (best_alignment + eps) * best_iou).amax(1)  # [B, A]
    return BoxAssignment(fg_mask, matched_gt, target_score)
