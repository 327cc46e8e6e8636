"""ATSS (adaptive training sample selection): the static assigner of PP-YOLOE's first training epochs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from trainwright.models.detection.label_assignment import (
    BoxAssignment,
    aligned_iou_xyxy,
    empty_assignment,
    k_best_mask,
    keep_best_box_per_anchor,
    matched_boxes,
    pairwise_iou_xyxy,
    points_inside_boxes,
)


def nearest_per_level(distances: torch.Tensor, anchors_per_level: Sequence[int], topk: int) -> torch.Tensor:
    """bool mask of the ``topk`` nearest anchors of every level (lower index on ties): [..., A] -> [..., A]."""
    levels = distances.split(list(anchors_per_level), dim=-1)
    return torch.cat([k_best_mask(level, topk, largest=False) for level in levels], dim=-1)


@torch.no_grad()
def atss_assign(
    anchor_boxes: torch.Tensor,
    anchors_per_level: Sequence[int],
    gt_boxes: torch.Tensor,
    gt_valid: torch.Tensor,
    pred_boxes: torch.Tensor,
    topk: int = 9,
    eps: float = 1e-9,
) -> BoxAssignment:
    """Assign anchors to boxes by their fixed anchor boxes; the class target is the predicted box's IoU.

    anchor_boxes [A, 4] (levels concatenated, ``anchors_per_level`` anchors each); gt_boxes [B, G, 4];
    gt_valid bool [B, G]; pred_boxes [B, A, 4] decoded predictions. All xyxy in pixels.

    For each box: on every level, the ``topk`` anchors whose centres are nearest to the box centre are
    candidates; the IoU threshold is the mean plus the (unbiased) standard deviation of the candidates' anchor
    box IoUs; candidates above it whose centre lies inside the box are positive. An anchor positive for
    several boxes keeps the one its anchor box overlaps most. target_score = IoU(predicted box, its box).
    """
    batch, num_anchors = pred_boxes.shape[:2]
    if sum(anchors_per_level) != num_anchors:
        raise ValueError(f"anchors_per_level {list(anchors_per_level)} sums to {sum(anchors_per_level)}, "
                         f"but there are {num_anchors} anchors")
    if gt_boxes.shape[1] == 0:
        return empty_assignment(batch, num_anchors, pred_boxes.device, pred_boxes.dtype)
    ious = pairwise_iou_xyxy(gt_boxes, anchor_boxes)  # [B, G, A]
    anchor_centers = (anchor_boxes[:, :2] + anchor_boxes[:, 2:]) / 2
    gt_centers = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
    distances = (gt_centers[:, :, None] - anchor_centers).norm(dim=-1)  # [B, G, A]
    candidates = nearest_per_level(distances, anchors_per_level, topk) & gt_valid[..., None]

    count = candidates.sum(-1, keepdim=True)
    mean = (ious * candidates).sum(-1, keepdim=True) / count.clamp(min=1)
    variance = ((ious - mean).square() * candidates).sum(-1, keepdim=True) / (count - 1).clamp(min=1)
    positive = candidates & (ious > mean + variance.sqrt()) & points_inside_boxes(anchor_centers, gt_boxes, eps)
    fg_mask, matched_gt = matched_boxes(keep_best_box_per_anchor(positive, ious))

    own_boxes = gt_boxes.gather(1, matched_gt[..., None].expand(-1, -1, 4))  # [B, A, 4]
    target_score = aligned_iou_xyxy(pred_boxes, own_boxes) * fg_mask
    return BoxAssignment(fg_mask, matched_gt, target_score)
