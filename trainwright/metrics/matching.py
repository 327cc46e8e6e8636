"""COCO-style greedy matching of detections to ground truth, batched over images, classes and thresholds.

The rule is the one of the COCO evaluation: within one group (an image and a class), detections are visited
by decreasing score; each takes, among the ground truths not taken yet whose IoU reaches the threshold, the
one with the highest IoU, preferring ground truths that are not ignored (the last one wins a tie). Crowd
ground truths are never used up and their overlap is measured as intersection over detection area.

The greedy pass is sequential by nature; here it runs in a few rounds over all groups and thresholds at once:
in each round every detection whose candidate ground truths cannot be taken by a better-ranked, still
undecided detection of its group is decided. The result is identical to the sequential pass.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["pairwise_iou_xywh", "rank_within_groups", "candidate_pairs", "greedy_match"]


def pairwise_iou_xywh(det: Tensor, gt: Tensor, gt_crowd: Tensor) -> Tensor:
    """IoU of matching rows of det [P, 4] and gt [P, 4] (x, y, w, h); intersection over det area where gt_crowd [P]."""
    right = torch.minimum(det[:, 0] + det[:, 2], gt[:, 0] + gt[:, 2]) - torch.maximum(det[:, 0], gt[:, 0])
    bottom = torch.minimum(det[:, 1] + det[:, 3], gt[:, 1] + gt[:, 3]) - torch.maximum(det[:, 1], gt[:, 1])
    inter = right.clamp(min=0) * bottom.clamp(min=0)
    det_area = det[:, 2] * det[:, 3]
    union = torch.where(gt_crowd, det_area, det_area + gt[:, 2] * gt[:, 3] - inter)
    return torch.where(inter > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(inter))


def rank_within_groups(groups: Tensor, scores: Tensor) -> Tensor:
    """Rank [N] of each row by decreasing score inside its group (0 = best); ties keep the input order."""
    order = _group_then_score_order(groups, scores)
    sorted_groups = groups[order]
    first = torch.searchsorted(sorted_groups, sorted_groups)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device) - first
    return rank


def _group_then_score_order(groups: Tensor, scores: Tensor) -> Tensor:
    """Permutation [N] sorting by group, then decreasing score, then input position."""
    order = torch.argsort(-scores, stable=True)
    return order[torch.argsort(groups[order], stable=True)]


def candidate_pairs(det_group: Tensor, gt_group: Tensor) -> tuple[Tensor, Tensor]:
    """Every (detection, ground truth) index pair [P] sharing a group; gt indices refer to the input order."""
    gt_order = torch.argsort(gt_group, stable=True)
    sorted_gt_group = gt_group[gt_order]
    start = torch.searchsorted(sorted_gt_group, det_group)
    count = torch.searchsorted(sorted_gt_group, det_group, right=True) - start
    pair_det = torch.repeat_interleave(torch.arange(det_group.numel(), device=det_group.device), count)
    offsets = torch.cumsum(count, 0) - count
    within = torch.arange(pair_det.numel(), device=det_group.device) - torch.repeat_interleave(offsets, count)
    return pair_det, gt_order[start[pair_det] + within]


def greedy_match(
    det_boxes: Tensor,
    det_group: Tensor,
    det_rank: Tensor,
    gt_boxes: Tensor,
    gt_group: Tensor,
    gt_crowd: Tensor,
    gt_ignore: Tensor,
    iou_thresholds: Tensor,
) -> tuple[Tensor, Tensor]:
    """Match detections to ground truths for every ignore setting and IoU threshold at once.

    :param det_boxes:      [D, 4] detection boxes (x, y, w, h), float64 recommended.
    :param det_group:      [D] integer group id (e.g. image * num_classes + class).
    :param det_rank:       [D] rank of each detection inside its group by decreasing score (0 = best).
    :param gt_boxes:       [G, 4] ground-truth boxes (x, y, w, h).
    :param gt_group:       [G] group id of each ground truth; within a group, later rows win IoU ties.
    :param gt_crowd:       [G] bool, crowd regions (reusable, overlap = intersection / detection area).
    :param gt_ignore:      [G, A] bool, whether the ground truth is ignored under each of A settings.
    :param iou_thresholds: [T] IoU thresholds; a pair matches when IoU >= threshold.
    :return: (matched, matched_ignored), both bool [D, A, T]: the detection found a ground truth, and that
             ground truth is an ignored one.
    """
    device = det_boxes.device
    num_det, num_gt, num_settings = det_boxes.shape[0], gt_boxes.shape[0], gt_ignore.shape[1]
    thresholds = iou_thresholds.to(device=device, dtype=det_boxes.dtype)
    num_configs = num_settings * thresholds.numel()
    matched = torch.zeros(num_det, num_configs, dtype=torch.bool, device=device)
    matched_ignored = torch.zeros_like(matched)
    if num_det and num_gt:
        config_thr = thresholds.repeat(num_settings)
        config_ignore = gt_ignore.repeat_interleave(thresholds.numel(), dim=1)  # [G, C]
        dets, chosen = _match_in_rounds(
            det_boxes, det_group, det_rank, gt_boxes, gt_group, gt_crowd, config_ignore, config_thr
        )
        found = chosen >= 0
        configs = torch.arange(num_configs, device=device).expand_as(chosen)
        matched[dets] = found
        matched_ignored[dets] = found & config_ignore[chosen.clamp(min=0), configs]
    shape = (num_det, num_settings, thresholds.numel())
    return matched.view(shape), matched_ignored.view(shape)


def _match_in_rounds(
    det_boxes: Tensor,
    det_group: Tensor,
    det_rank: Tensor,
    gt_boxes: Tensor,
    gt_group: Tensor,
    gt_crowd: Tensor,
    config_ignore: Tensor,
    config_thr: Tensor,
) -> tuple[Tensor, Tensor]:
    """The detections [D'] that have candidates and the ground truth each picks per config [D', C] (-1: none)."""
    device = det_boxes.device
    num_configs = config_thr.numel()
    pair_det, pair_gt = candidate_pairs(det_group, gt_group)
    pair_iou = pairwise_iou_xywh(det_boxes[pair_det], gt_boxes[pair_gt], gt_crowd[pair_gt])
    keep = pair_iou >= config_thr.min()  # a pair below every threshold can never match
    pair_det, pair_gt, pair_iou = pair_det[keep], pair_gt[keep], pair_iou[keep]
    pair_rank = det_rank[pair_det]
    pair_crowd = gt_crowd[pair_gt]
    # Work on the detections that have a candidate at all, renumbered 0..D'-1; write back at the end.
    dets_with_pairs, pair_det = torch.unique(pair_det, return_inverse=True)
    local_chosen = torch.full((dets_with_pairs.numel() * num_configs,), -1, dtype=torch.long, device=device)
    configs = torch.arange(num_configs, device=device)
    live = pair_iou[:, None] >= config_thr[None, :]  # [P, C]: pair can match and its detection is undecided
    taken = torch.zeros(gt_boxes.shape[0] * num_configs, dtype=torch.bool, device=device)
    no_rank = torch.iinfo(torch.long).max
    while pair_det.numel():
        gt_slot = pair_gt[:, None] * num_configs + configs
        det_slot = pair_det[:, None] * num_configs + configs
        avail = live & (pair_crowd[:, None] | ~taken[gt_slot])
        # A non-crowd ground truth is contested for a detection when a better-ranked undecided one can take it.
        contestable = avail & ~pair_crowd[:, None]
        best_rank = torch.full_like(taken, no_rank, dtype=torch.long)
        best_rank.scatter_reduce_(0, gt_slot[contestable], pair_rank[:, None].expand_as(gt_slot)[contestable], "amin")
        contested = contestable & (best_rank[gt_slot] < pair_rank[:, None])
        blocked = torch.zeros(local_chosen.numel(), dtype=torch.bool, device=device)
        blocked[det_slot[contested]] = True
        decide = live & ~blocked[det_slot]
        _choose(avail & decide, pair_gt, pair_iou, config_ignore, det_slot, local_chosen)
        taken_now = decide & (local_chosen[det_slot] == pair_gt[:, None]) & ~pair_crowd[:, None]
        taken[gt_slot[taken_now]] = True
        live = live & ~decide
        rows = live.any(1)
        pair_det, pair_gt, pair_iou = pair_det[rows], pair_gt[rows], pair_iou[rows]
        pair_rank, pair_crowd, live = pair_rank[rows], pair_crowd[rows], live[rows]
    return dets_with_pairs, local_chosen.view(-1, num_configs)


def _choose(cand: Tensor, pair_gt: Tensor, pair_iou: Tensor, config_ignore: Tensor, det_slot: Tensor, chosen: Tensor):
    """For the deciding detections, pick the best candidate [P, C]: not-ignored first, highest IoU, last on ties."""
    ignored = config_ignore[pair_gt]
    regular = cand & ~ignored
    has_regular = torch.zeros(chosen.numel(), dtype=torch.bool, device=cand.device)
    has_regular[det_slot[regular]] = True
    cand = torch.where(has_regular[det_slot], regular, cand & ignored)
    if not bool(cand.any()):
        return
    slots = det_slot[cand]
    ious = pair_iou[:, None].expand_as(cand)[cand]
    best = torch.full((chosen.numel(),), -1.0, dtype=pair_iou.dtype, device=cand.device)
    best.scatter_reduce_(0, slots, ious, "amax")
    winners = ious == best[slots]
    gts = pair_gt[:, None].expand_as(cand)[cand]
    chosen.scatter_reduce_(0, slots[winners], gts[winners], "amax")
