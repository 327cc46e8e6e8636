"""Matrix NMS (SOLOv2, arXiv:1912.04488): every score decays by its overlap with better boxes of its class.

Only same-class pairs can decay a score, so the decay is computed over the list of those pairs, not over a
dense [B, k, k] matrix; the result equals the dense formulation (kept as the path for sigma < 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainwright.ops._checks import check_cap, check_raw_output, compute_dtype
from trainwright.ops.boxes import calc_bbox_iou_matrix, cxcywh2xyxy, sanitize_boxes


def matrix_non_max_suppression(
    pred: Tensor,
    conf_thres: float = 0.1,
    kernel: str = "gaussian",
    sigma: float = 3.0,
    max_num_of_detections: int = 500,
) -> list[Tensor]:
    """Matrix NMS over raw output pred [B, N, 5 + C] -> B x [n, 6].

    Each row's score is its best class score times its objectness. The ``max_num_of_detections`` best rows
    per image are kept; each score is decayed by its overlap with higher-scored boxes of the same class
    ("gaussian": exp(-sigma * iou^2), "linear": 1 - iou, both compensated by the suppressor's own overlap),
    and rows whose decayed score is above ``conf_thres`` are returned as (x1, y1, x2, y2, score, class) in
    order of their score before decay. An image without any row gives an empty [0, 6] tensor. Rows with a
    NaN score or a non-finite box coordinate are never returned and decay no other row. The input is never
    modified.
    """
    pred = check_raw_output("pred", pred)
    if not isinstance(pred, Tensor):
        raise TypeError("pred must be a tensor [batch, boxes, 5 + num_classes] for matrix NMS")
    if kernel not in ("gaussian", "linear"):
        raise ValueError(f"kernel must be 'gaussian' or 'linear', got {kernel!r}")
    check_cap("max_num_of_detections", max_num_of_detections)
    work = pred.to(compute_dtype(pred.dtype))
    k = min(max_num_of_detections, work.shape[1])
    if k == 0:
        return [pred.new_zeros(0, 6) for _ in range(pred.shape[0])]
    scores = _best_scores(work)
    usable = torch.isfinite(work[..., :4]).all(dim=2) & ~scores.isnan()
    scores, order = scores.masked_fill(~usable, float("-inf")).topk(k, dim=1)
    top_rows = work.gather(1, order[..., None].expand(-1, -1, work.shape[2]))
    labels = (top_rows[..., 5:] * top_rows[..., 4:5]).argmax(dim=2)
    boxes = cxcywh2xyxy(work[..., :4].gather(1, order[..., None].expand(-1, -1, 4)))
    if kernel == "gaussian" and sigma < 0:
        decay = _dense_decay(boxes, labels, kernel, sigma)
    else:
        decay = _pairwise_decay(boxes, labels, kernel, sigma)
    rows = torch.cat([boxes, (scores * decay)[..., None], labels[..., None].to(boxes.dtype)], dim=2)
    return [image_rows[image_rows[:, 4] > conf_thres].to(pred.dtype) for image_rows in rows]


def _best_scores(work: Tensor) -> Tensor:
    """max over classes of class score * objectness, [B, N, 5 + C] -> [B, N].

    For finite scores and objectness >= 0, multiplying by the objectness keeps the order of the class
    scores even after rounding, so the best product is the best class score times the objectness, and the
    [B, N, C] product is not needed.
    """
    obj, cls = work[..., 4], work[..., 5:]
    best = cls.amax(dim=2)
    if bool((obj >= 0).all() and torch.isfinite(obj).all() and torch.isfinite(best).all()
            and torch.isfinite(cls.amin(dim=2)).all()):
        return best * obj
    return (cls * obj[..., None]).amax(dim=2)


def _dense_decay(boxes: Tensor, labels: Tensor, kernel: str, sigma: float) -> Tensor:
    """Decay factors [B, k] of score-sorted boxes [B, k, 4] with labels [B, k], from full [B, k, k] matrices."""
    # ious[b, i, j]: overlap of row j with the higher-scored row i of the same class (0 elsewhere).
    ious = calc_bbox_iou_matrix(boxes).mul_(labels[:, :, None] == labels[:, None, :])
    ious = ious.nan_to_num_(nan=0.0).triu_(1)  # unusable rows decay nothing
    compensate = ious.max(dim=1).values[:, :, None]
    if kernel == "gaussian":
        # min_i exp(-sigma * (iou_ij^2 - c_i^2)) is exp of -sigma times the max (min for sigma < 0) exponent
        exponent = ious.square_().sub_(compensate.square())
        worst = exponent.max(dim=1).values if sigma >= 0 else exponent.min(dim=1).values
        return torch.exp(-sigma * worst)
    return ious.neg_().add_(1).div_((1 - compensate).clamp(min=1e-6)).min(dim=1).values


def _same_class_pairs(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Flat indices (i, j) into [B * k] of every pair in one image and class with i scored above j.

    labels [B, k] belong to rows sorted by decreasing score in each image.
    """
    batch, k = labels.shape
    group = (torch.arange(batch, device=labels.device)[:, None] * (int(labels.max()) + 1) + labels).flatten()
    order = torch.argsort(group, stable=True)  # grouped, still by decreasing score inside a group
    counts = torch.unique_consecutive(group[order], return_counts=True)[1]
    group_start = (counts.cumsum(0) - counts).repeat_interleave(counts)
    rank = torch.arange(batch * k, device=labels.device) - group_start  # rows above it in its group
    j_sorted = torch.arange(batch * k, device=labels.device).repeat_interleave(rank)
    first_pair = (rank.cumsum(0) - rank).repeat_interleave(rank)
    i_sorted = group_start[j_sorted] + torch.arange(j_sorted.numel(), device=labels.device) - first_pair
    return order[i_sorted], order[j_sorted]


def _pairwise_decay(boxes: Tensor, labels: Tensor, kernel: str, sigma: float) -> Tensor:
    """Same as _dense_decay for sigma >= 0, computed over same-class pairs only.

    Every other term of the dense minimum is >= 1 and the best box contributes exactly 1, so the decay of a
    row is min(1, its same-class terms).
    """
    i, j = _same_class_pairs(labels)
    flat = sanitize_boxes(boxes.reshape(-1, 4))  # as calc_bbox_iou_matrix reads inverted boxes
    a, b = flat[i], flat[j]
    width = torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])
    height = torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])
    inter = width.clamp(min=0) * height.clamp(min=0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - inter
    iou = (inter / union).masked_fill_(union == 0, 0.0).nan_to_num_(nan=0.0)
    zeros = flat.new_zeros(flat.shape[0])
    compensate = zeros.scatter_reduce(0, j, iou, "amax")[i]
    if kernel == "gaussian":
        worst = zeros.scatter_reduce(0, j, iou.square() - compensate.square(), "amax")
        decay = torch.exp(-sigma * worst)
    else:
        ratio = (1 - iou) / (1 - compensate).clamp(min=1e-6)
        decay = torch.ones_like(zeros).scatter_reduce(0, j, ratio, "amin")
    return decay.view(labels.shape)
