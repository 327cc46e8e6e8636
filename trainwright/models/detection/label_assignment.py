"""Building blocks of the PP-YOLOE label assigners (ATSS and task-aligned), batched over images and boxes.

Shapes: B images, G ground-truth slots per image (padded; ``gt_valid`` marks the real ones), A anchors (all
levels concatenated). Boxes are (x1, y1, x2, y2) in input pixels. Ties are broken towards the lower index
(anchor or box), so every assignment is deterministic.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class BoxAssignment(NamedTuple):
    """Which anchors are positive, which box each learns and how confident its class target is."""

    fg_mask: torch.Tensor  # bool [B, A]
    matched_gt: torch.Tensor  # long [B, A], index into the G slots (0 where background)
    target_score: torch.Tensor  # float [B, A], the class target of a positive (0 on background)


def empty_assignment(batch: int, num_anchors: int, device: torch.device, dtype: torch.dtype) -> BoxAssignment:
    """Every anchor background."""
    return BoxAssignment(torch.zeros(batch, num_anchors, dtype=torch.bool, device=device),
                         torch.zeros(batch, num_anchors, dtype=torch.long, device=device),
                         torch.zeros(batch, num_anchors, dtype=dtype, device=device))


def pairwise_iou_xyxy(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """IoU of every box of boxes1 [B, G, 4] with every box of boxes2 [B, A, 4] or [A, 4] -> [B, G, A].

    Boxes with x2 < x1 (or y2 < y1) have area 0.
    """
    boxes2 = boxes2.expand(boxes1.shape[0], -1, -1) if boxes2.ndim == 2 else boxes2
    b1, b2 = boxes1[:, :, None], boxes2[:, None]
    inter_w = (torch.minimum(b1[..., 2], b2[..., 2]) - torch.maximum(b1[..., 0], b2[..., 0])).clamp(min=0)
    inter_h = (torch.minimum(b1[..., 3], b2[..., 3]) - torch.maximum(b1[..., 1], b2[..., 1])).clamp(min=0)
    inter = inter_w * inter_h
    area1 = ((boxes1[..., 2] - boxes1[..., 0]).clamp(min=0) * (boxes1[..., 3] - boxes1[..., 1]).clamp(min=0))
    area2 = ((boxes2[..., 2] - boxes2[..., 0]).clamp(min=0) * (boxes2[..., 3] - boxes2[..., 1]).clamp(min=0))
    return inter / (area1[:, :, None] + area2[:, None] - inter + eps)


def aligned_iou_xyxy(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """IoU of matching rows of two [..., 4] box sets -> [...]."""
    inter_w = (torch.minimum(boxes1[..., 2], boxes2[..., 2]) - torch.maximum(boxes1[..., 0], boxes2[..., 0]))
    inter_h = (torch.minimum(boxes1[..., 3], boxes2[..., 3]) - torch.maximum(boxes1[..., 1], boxes2[..., 1]))
    inter = inter_w.clamp(min=0) * inter_h.clamp(min=0)
    area1 = (boxes1[..., 2] - boxes1[..., 0]).clamp(min=0) * (boxes1[..., 3] - boxes1[..., 1]).clamp(min=0)
    area2 = (boxes2[..., 2] - boxes2[..., 0]).clamp(min=0) * (boxes2[..., 3] - boxes2[..., 1]).clamp(min=0)
    return inter / (area1 + area2 - inter + eps)


def points_inside_boxes(points: torch.Tensor, boxes: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Whether each point [A, 2] (x, y) lies strictly inside (by more than eps) each box [B, G, 4] -> [B, G, A]."""
    x, y = points[:, 0], points[:, 1]
    x1, y1, x2, y2 = (boxes[..., i, None] for i in range(4))
    return (x - x1 > eps) & (y - y1 > eps) & (x2 - x > eps) & (y2 - y > eps)


def k_best_mask(values: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    """bool mask of the ``k`` largest (or smallest) entries along the last dim; ties go to the lower index.

    values [..., n] -> [..., n] with exactly min(k, n) True per row (fewer only where values are NaN).
    """
    k = min(k, values.shape[-1])
    if k == 0:
        return torch.zeros_like(values, dtype=torch.bool)
    kth = values.topk(k, dim=-1, largest=largest).values[..., -1:]
    better = values > kth if largest else values < kth
    tied = values == kth
    room = k - better.sum(-1, keepdim=True)
    return better | (tied & (tied.cumsum(-1) <= room))


def keep_best_box_per_anchor(positive: torch.Tensor, ious: torch.Tensor) -> torch.Tensor:
    """Where an anchor is positive for several boxes, keep only the one it overlaps most (lower index on ties).

    positive bool [B, G, A], ious [B, G, A] -> bool [B, G, A] with at most one True per anchor.
    """
    shared = positive.sum(1, keepdim=True) > 1  # [B, 1, A]
    best = ious.masked_fill(~positive, -1.0).argmax(1, keepdim=True)  # [B, 1, A]
    only_best = torch.arange(positive.shape[1], device=positive.device)[None, :, None] == best
    return torch.where(shared, only_best, positive)


def matched_boxes(positive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(fg_mask bool [B, A], matched_gt long [B, A]) from a one-box-per-anchor positive mask [B, G, A]."""
    return positive.any(1), positive.to(torch.uint8).argmax(1)
