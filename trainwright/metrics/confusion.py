"""Detection confusion matrix: which class each target was detected as, with a background row and column.

Definition (per image; all images at once, vectorised):
1. Predictions with score >= ``conf_threshold`` take part; crowd targets are not targets.
2. A (prediction, target) pair of the same image is a candidate when their IoU, whatever their classes, is
   >= ``iou_threshold``.
3. Candidates are taken greedily, one to one: in order of decreasing IoU (ties: higher prediction score
   first, then lower prediction index, then lower target index), a pair is taken when neither its
   prediction nor its target has been taken yet.
4. A taken pair adds 1 at [predicted class, target class]; an untaken target adds 1 at
   [background, target class] (missed); an untaken prediction adds 1 at [predicted class, background]
   (false positive) unless it covers a crowd region (intersection over its own area >= ``iou_threshold``),
   where it counts nowhere, as crowd regions are ignored by the COCO evaluation. [background, background]
   is always 0.

The greedy pass runs in rounds: every pair that comes first in the order for both its prediction and its
target is taken (a sequential pass takes it too: no earlier pair can use either side), then every pair
touching a taken prediction or target is dropped. The result equals the sequential pass.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainwright.metrics.matching import candidate_pairs, pairwise_iou_xywh

__all__ = ["detection_confusion_matrix", "normalize_confusion_matrix"]


def detection_confusion_matrix(
    pred_boxes: Tensor,
    pred_scores: Tensor,
    pred_classes: Tensor,
    pred_images: Tensor,
    target_boxes: Tensor,
    target_classes: Tensor,
    target_images: Tensor,
    num_classes: int,
    target_crowd: Tensor | None = None,
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.5,
) -> Tensor:
    """Counts [K + 1, K + 1] indexed [predicted class, true class]; index K is the background (see module doc).

    Args:
        pred_boxes (Tensor[D, 4]): predictions (x, y, w, h).
        pred_scores (Tensor[D]): confidence.
        pred_classes (Tensor[D]): class in [0, K).
        pred_images (Tensor[D]): integer image id of each prediction.
        target_boxes (Tensor[G, 4]): targets (x, y, w, h).
        target_classes (Tensor[G]): class in [0, K).
        target_images (Tensor[G]): integer image id of each target.
        num_classes (int): K.
        target_crowd (Tensor[G], optional): bool, crowd regions (not targets; see module doc).

    Returns:
        Tensor[K + 1, K + 1] of int64 counts.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    device = pred_boxes.device
    crowd = torch.zeros_like(target_classes, dtype=torch.bool) if target_crowd is None else target_crowd.bool()
    confident = pred_scores >= conf_threshold
    boxes, scores, classes, images = (pred_boxes[confident].double(), pred_scores[confident],
                                      pred_classes[confident].long(), pred_images[confident].long())
    regular = ~crowd
    t_boxes, t_classes = target_boxes[regular].double(), target_classes[regular].long()
    pred_match, target_match = _greedy_one_to_one(boxes, scores, images, t_boxes, target_images[regular].long(),
                                                  iou_threshold)
    background = num_classes
    taken, unmatched_targets = pred_match >= 0, target_match < 0
    on_crowd = _covers_crowd(boxes, images, target_boxes[crowd].double(), target_images[crowd].long(), iou_threshold)
    false_positive = ~taken & ~on_crowd
    rows = torch.cat([classes[taken], classes[false_positive],
                      torch.full((int(unmatched_targets.sum()),), background, dtype=torch.long, device=device)])
    cols = torch.cat([t_classes[pred_match[taken]],
                      torch.full((int(false_positive.sum()),), background, dtype=torch.long, device=device),
                      t_classes[unmatched_targets]])
    size = num_classes + 1
    return torch.bincount(rows * size + cols, minlength=size * size).view(size, size)


def _greedy_one_to_one(boxes, scores, images, t_boxes, t_images, iou_threshold) -> tuple[Tensor, Tensor]:
    """The target taken by each prediction [D] and the prediction taking each target [G] (-1: none)."""
    device = boxes.device
    pred_match = torch.full((boxes.shape[0],), -1, dtype=torch.long, device=device)
    target_match = torch.full((t_boxes.shape[0],), -1, dtype=torch.long, device=device)
    pair_pred, pair_target = candidate_pairs(images, t_images)
    iou = pairwise_iou_xywh(boxes[pair_pred], t_boxes[pair_target], torch.zeros_like(pair_pred, dtype=torch.bool))
    keep = iou >= iou_threshold
    pair_pred, pair_target, iou = pair_pred[keep], pair_target[keep], iou[keep]
    # One strict order of the pairs: decreasing IoU, then score, then lower prediction and target index.
    order = torch.arange(iou.numel(), device=device)
    for key in (pair_target, pair_pred, -scores[pair_pred].double(), -iou):  # least significant first
        order = order[torch.argsort(key[order], stable=True)]
    position = torch.empty_like(order)
    position[order] = torch.arange(order.numel(), device=device)
    none = torch.iinfo(torch.long).max
    while position.numel():
        first_of_pred = torch.full_like(pred_match, none).scatter_reduce_(0, pair_pred, position, "amin")
        first_of_target = torch.full_like(target_match, none).scatter_reduce_(0, pair_target, position, "amin")
        take = (first_of_pred[pair_pred] == position) & (first_of_target[pair_target] == position)
        pred_match[pair_pred[take]] = pair_target[take]
        target_match[pair_target[take]] = pair_pred[take]
        alive = (pred_match[pair_pred] < 0) & (target_match[pair_target] < 0)
        pair_pred, pair_target, position = pair_pred[alive], pair_target[alive], position[alive]
    return pred_match, target_match


def _covers_crowd(boxes: Tensor, images: Tensor, crowd_boxes: Tensor, crowd_images: Tensor, threshold: float) -> Tensor:
    """[D] bool: the prediction's intersection with a crowd region of its image, over its own area, >= threshold."""
    covered = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    if crowd_boxes.numel() == 0 or boxes.numel() == 0:
        return covered
    pair_pred, pair_crowd = candidate_pairs(images, crowd_images)
    ioa = pairwise_iou_xywh(boxes[pair_pred], crowd_boxes[pair_crowd], torch.ones_like(pair_pred, dtype=torch.bool))
    covered[pair_pred[ioa >= threshold]] = True
    return covered


def normalize_confusion_matrix(matrix: Tensor) -> Tensor:
    """Each column (true class, and the background column of false positives) divided by its sum; 0 if empty."""
    matrix = matrix.double()
    totals = matrix.sum(0, keepdim=True)
    return torch.where(totals > 0, matrix / totals.clamp(min=1), 0.0)
