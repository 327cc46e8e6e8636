"""SimOTA dynamic-k label assignment (YOLOX), batched over images with padded ground truth.

Shapes: B images, A anchors (all levels concatenated), G ground-truth slots per image (padded), C classes.
Boxes are (cx, cy, w, h) in input pixels.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F

# Cost added to an (anchor, box) pair that is not inside both the box and its centre region.
OUTSIDE_PRIOR_COST = 1e5
# Number of best IoUs summed into a box's dynamic k.
DYNAMIC_K_CANDIDATES = 10


class Assignment(NamedTuple):
    """Result of SimOTA: which anchors are foreground and which box each one learns."""

    fg_mask: torch.Tensor  # bool [B, A]
    matched_gt: torch.Tensor  # long [B, A], index into the G slots (meaningful where fg_mask)
    matched_iou: torch.Tensor  # float [B, A], IoU of the prediction with its box (0 where background)


def pairwise_iou_cxcywh(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """IoU of every box of [B, G, 4] with every box of [B, A, 4] (cx, cy, w, h) -> [B, G, A]."""
    half1, half2 = boxes1[..., 2:] / 2, boxes2[..., 2:] / 2
    lt = torch.maximum((boxes1[..., :2] - half1)[:, :, None], (boxes2[..., :2] - half2)[:, None])
    rb = torch.minimum((boxes1[..., :2] + half1)[:, :, None], (boxes2[..., :2] + half2)[:, None])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area1 = (boxes1[..., 2] * boxes1[..., 3])[:, :, None]
    area2 = (boxes2[..., 2] * boxes2[..., 3])[:, None]
    return inter / (area1 + area2 - inter + eps)


def center_prior(
    anchor_centers: torch.Tensor, anchor_strides: torch.Tensor, gt_boxes: torch.Tensor, radius: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where anchor centres fall in each box and in its centre square of half-side radius * stride.

    anchor_centers [A, 2] (pixels), anchor_strides [A], gt_boxes [B, G, 4] -> (in_box, in_center), bool [B, G, A].
    """
    centers = anchor_centers[None, None]  # [1, 1, A, 2]
    gt_xy, gt_half = gt_boxes[..., None, :2], gt_boxes[..., None, 2:] / 2  # [B, G, 1, 2]
    in_box = ((centers - (gt_xy - gt_half)).amin(-1) > 0) & (((gt_xy + gt_half) - centers).amin(-1) > 0)
    reach = (radius * anchor_strides)[None, None, :, None]  # [1, 1, A, 1]
    in_center = ((centers - gt_xy).abs() < reach).all(-1)
    return in_box, in_center


def classification_cost(scores: torch.Tensor, gt_classes: torch.Tensor) -> torch.Tensor:
    """Summed BCE between each anchor's class scores and each box's one-hot class.

    scores [B, A, C] probabilities, gt_classes long [B, G] -> [B, G, A]. Uses
    sum_c BCE(p_c, onehot_c) = -sum_c log(1 - p_c) - (log p_k - log(1 - p_k)) for the box's class k,
    so no [B, G, A, C] tensor is built.
    """
    p = scores.clamp(1e-7, 1 - 1e-7)
    background = -torch.log1p(-p).sum(-1)  # [B, A]
    p_box_class = p.gather(2, gt_classes[:, None, :].expand(-1, p.shape[1], -1)).transpose(1, 2)  # [B, G, A]
    return background[:, None, :] - (torch.log(p_box_class) - torch.log1p(-p_box_class))


def gather_candidates(candidate_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of each image's candidate anchors, padded to the largest count.

    candidate_mask bool [B, A] -> (index long [B, M], valid bool [B, M]); index rows are permutations of
    distinct anchors, candidates first.
    """
    counts = candidate_mask.sum(1)
    width = int(counts.max())
    index = torch.sort(candidate_mask.to(torch.uint8), dim=1, descending=True, stable=True).indices[:, :width]
    valid = torch.arange(width, device=index.device)[None] < counts[:, None]
    return index, valid


def dynamic_k_matching(
    cost: torch.Tensor,
    ious: torch.Tensor,
    candidates: torch.Tensor,
    dynamic_k_scale: float = 1.0,
    shared_among_pickers: bool = False,
) -> torch.Tensor:
    """Give each box its dynamic k cheapest candidate anchors, then each anchor to its cheapest box.

    cost, ious [B, G, A]; candidates bool [B, G, A] (pairs allowed at all) -> matching bool [B, G, A].
    k = int(dynamic_k_scale * sum of the box's 10 best candidate IoUs), at least 1. An anchor picked by
    several boxes goes to the cheapest of all its candidate boxes, or, with shared_among_pickers, to the
    cheapest of the boxes that picked it.
    """
    num_anchors = cost.shape[-1]
    k_max = min(DYNAMIC_K_CANDIDATES, num_anchors)
    top_ious = ious.masked_fill(~candidates, 0).topk(k_max, dim=-1).values
    top_sum = top_ious.sum(-1)
    if dynamic_k_scale != 1.0:
        top_sum = top_sum * dynamic_k_scale
    dynamic_k = top_sum.int().clamp(min=1)  # [B, G]
    cost = cost.masked_fill(~candidates, float("inf"))
    k_cap = int(dynamic_k.max())
    cheapest_cost, cheapest_idx = cost.topk(k_cap, dim=-1, largest=False)  # [B, G, k_cap]
    rank = torch.arange(k_cap, device=cost.device)
    keep = (rank < dynamic_k[..., None]) & torch.isfinite(cheapest_cost)
    matching = torch.zeros_like(candidates)
    matching.scatter_(-1, cheapest_idx, keep)
    shared = matching.sum(1) > 1  # [B, A]
    if shared.any():
        deciding_cost = cost.masked_fill(~matching, float("inf")) if shared_among_pickers else cost
        best_gt = deciding_cost.argmin(1)  # [B, A]
        one_hot = F.one_hot(best_gt, cost.shape[1]).transpose(1, 2).bool()  # [B, G, A]
        matching = torch.where(shared[:, None], one_hot, matching)
    return matching


@torch.no_grad()
def simota_assign(
    pred_boxes: torch.Tensor,
    pred_scores: torch.Tensor,
    anchor_centers: torch.Tensor,
    anchor_strides: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_classes: torch.Tensor,
    gt_valid: torch.Tensor,
    center_radius: float = 2.5,
    iou_weight: float = 3.0,
    per_box_candidates: bool = False,
    dynamic_k_scale: float = 1.0,
) -> Assignment:
    """Assign anchors to ground-truth boxes with SimOTA.

    pred_boxes [B, A, 4] decoded (cx, cy, w, h); pred_scores [B, A, C] joint class probabilities
    (YOLOX uses sqrt(sigmoid(cls) * sigmoid(obj))); anchor_centers [A, 2] cell centres in pixels;
    anchor_strides [A]; gt_boxes [B, G, 4]; gt_classes long [B, G]; gt_valid bool [B, G] (False on padding).

    Candidates of an image are the anchors inside any box or any box's centre region; the pair cost is
    BCE class cost + iou_weight * -log(IoU) + OUTSIDE_PRIOR_COST unless the anchor is inside both the box
    and its centre region.

    With per_box_candidates (the variant of the fast YOLOX loss) a box considers only the anchors of its
    own prior (inside it or its centre region), both for its dynamic k and for its k cheapest anchors, and an
    anchor picked by several boxes goes to the cheapest of those; dynamic_k_scale multiplies every k before
    it is truncated to an integer.
    """
    batch, num_anchors = pred_boxes.shape[:2]
    fg_mask = torch.zeros(batch, num_anchors, dtype=torch.bool, device=pred_boxes.device)
    matched_gt = torch.zeros(batch, num_anchors, dtype=torch.long, device=pred_boxes.device)
    matched_iou = pred_boxes.new_zeros(batch, num_anchors)
    if gt_boxes.shape[1] == 0 or not gt_valid.any():
        return Assignment(fg_mask, matched_gt, matched_iou)
    in_box, in_center = center_prior(anchor_centers, anchor_strides, gt_boxes, center_radius)
    in_box, in_center = in_box & gt_valid[..., None], in_center & gt_valid[..., None]
    # Only anchors inside some prior can be matched: cost matrices are built on those alone ([B, G, M]).
    index, slot_valid = gather_candidates((in_box | in_center).any(1))
    if index.shape[1] == 0:
        return Assignment(fg_mask, matched_gt, matched_iou)
    in_both = (in_box & in_center).gather(2, index[:, None].expand(-1, gt_boxes.shape[1], -1))
    boxes = pred_boxes.gather(1, index[..., None].expand(-1, -1, 4))
    scores = pred_scores.gather(1, index[..., None].expand(-1, -1, pred_scores.shape[-1]))
    ious = pairwise_iou_cxcywh(gt_boxes, boxes)
    cost = (
        classification_cost(scores, gt_classes)
        + iou_weight * -torch.log(ious + 1e-8)
        + OUTSIDE_PRIOR_COST * (~in_both).to(ious.dtype)
    )
    allowed = slot_valid[:, None] & gt_valid[..., None]
    if per_box_candidates:
        allowed = allowed & (in_box | in_center).gather(2, index[:, None].expand(-1, gt_boxes.shape[1], -1))
    matching = dynamic_k_matching(cost, ious, allowed, dynamic_k_scale, shared_among_pickers=per_box_candidates)
    fg_mask.scatter_(1, index, matching.any(1))
    matched_gt.scatter_(1, index, matching.to(torch.uint8).argmax(1))
    matched_iou.scatter_(1, index, (ious * matching).sum(1))
    return Assignment(fg_mask, matched_gt, matched_iou)
