"""The PP-YOLOE training loss: varifocal classification, GIoU and distribution focal box losses.

preds: the train-mode output of a PP-YOLOE model, ``(class_logits [B, N, C], box_logits [B, N, 4 * (R + 1)],
anchor_boxes [N, 4], anchor_points [N, 2], anchors_per_level, anchor_strides [N, 1])`` (or the eval-mode
``(decoded, raw)`` pair, whose raw part is used), R = reg_max. targets: float [N, 6] = (image index, class, cx,
cy, w, h) in input pixels, as for the YOLOX loss. crowd_targets (optional, same layout): crowd regions.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from trainwright.distributed import get_world_size, is_distributed
from trainwright.models.detection.atss import atss_assign
from trainwright.models.detection.label_assignment import BoxAssignment, points_inside_boxes
from trainwright.models.detection.task_aligned import task_aligned_assign
from trainwright.models.detection.yolox_loss import pad_targets
from trainwright.models.losses import register_loss
from trainwright.ops.boxes import batch_distance2bbox

VARIFOCAL_ALPHA, FOCAL_GAMMA = 0.75, 2.0
ATSS_TOPK, TAL_TOPK, TAL_ALPHA, TAL_BETA = 9, 13, 1.0, 6.0


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """[..., 4] (cx, cy, w, h) -> [..., 4] (x1, y1, x2, y2)."""
    return torch.cat([boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2], dim=-1)


def giou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """1 - GIoU of matching rows of two [M, 4] xyxy box sets -> [M]."""
    inter_wh = (torch.minimum(pred[:, 2:], target[:, 2:]) - torch.maximum(pred[:, :2], target[:, :2])).clamp(min=0)
    inter = inter_wh[:, 0] * inter_wh[:, 1]
    union = (pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1]) \
        + (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1]) - inter + eps
    enclosing_wh = torch.maximum(pred[:, 2:], target[:, 2:]) - torch.minimum(pred[:, :2], target[:, :2])
    enclosing = enclosing_wh[:, 0] * enclosing_wh[:, 1] + eps
    return 1 - (inter / union - (enclosing - union) / enclosing)


def distribution_focal_loss(bin_logits: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """Cross-entropy towards the two bins around each target distance, weighted by nearness, averaged over sides.

    bin_logits [M, 4, R + 1]; distances [M, 4] in bins, within [0, R) -> [M].
    """
    left = distances.long()
    weight_left = (left + 1).to(distances.dtype) - distances
    log_probs = bin_logits.log_softmax(dim=-1)
    nll_left = -log_probs.gather(-1, left[..., None]).squeeze(-1)
    nll_right = -log_probs.gather(-1, (left + 1)[..., None]).squeeze(-1)
    return (nll_left * weight_left + nll_right * (1 - weight_left)).mean(-1)


@register_loss("ppyoloe_loss")
class PPYoloELoss(nn.Module):
    """PP-YOLOE loss; ``loss(preds, targets, crowd_targets=None) -> (total, components)``.

    Anchors are assigned by ATSS while ``use_static_assigner`` (the first epochs, see
    PPYoloETrainingStageSwitchCallback), by the task-aligned assigner afterwards. With S = the sum of the
    positives' target scores (averaged over processes in distributed training, at least 1):
    total = classification_loss_weight * cls / S + iou_loss_weight * Σ score·(1 - GIoU) / S
    + dfl_loss_weight * Σ score·DFL / S, box terms in stride units on the positives only. cls is the
    varifocal loss (or, with use_varifocal_loss=False, the focal loss) towards the target scores.
    Crowd boxes are never targets; an anchor whose centre lies in a crowd region of class k gets no
    background loss for class k (unless it is a positive of class k).
    """

    def __init__(
        self,
        num_classes: int,
        use_varifocal_loss: bool = True,
        use_static_assigner: bool = True,
        reg_max: int = 16,
        classification_loss_weight: float = 1.0,
        iou_loss_weight: float = 2.5,
        dfl_loss_weight: float = 0.5,
    ):
        super().__init__()
        for name, value in (("num_classes", num_classes), ("reg_max", reg_max)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.num_classes = num_classes
        self.use_varifocal_loss = use_varifocal_loss
        self.use_static_assigner = use_static_assigner
        self.reg_max = reg_max
        self.classification_loss_weight = classification_loss_weight
        self.iou_loss_weight = iou_loss_weight
        self.dfl_loss_weight = dfl_loss_weight
        self.register_buffer("bin_values", torch.arange(reg_max + 1, dtype=torch.float32), persistent=False)

    @property
    def component_names(self) -> list[str]:
        """Names of the entries of the components tensor (the weighted sum is ``loss``)."""
        return ["loss_cls", "loss_iou", "loss_dfl", "loss"]

    def forward(self, preds, targets: torch.Tensor,
                crowd_targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """preds: PP-YOLOE output; targets [N, 6]; crowd_targets [M, 6] -> (total scalar, components [4])."""
        if isinstance(preds, tuple) and len(preds) == 2 and isinstance(preds[1], (tuple, list)):
            preds = preds[1]  # eval-mode output (decoded, raw): validation losses use the raw part
        class_logits, box_logits, anchor_boxes, anchor_points, anchors_per_level, strides = self._unpack(preds)
        batch = class_logits.shape[0]
        self._check_targets("targets", targets, batch)
        gt_boxes, gt_classes, gt_valid = pad_targets(targets.to(class_logits), batch)
        gt_boxes = cxcywh_to_xyxy(gt_boxes)

        points = anchor_points / strides  # stride units
        bins = box_logits.reshape(*box_logits.shape[:2], 4, self.reg_max + 1)
        pred_boxes = batch_distance2bbox(points, bins.softmax(-1) @ self.bin_values.to(bins))  # [B, N, 4], stride units
        assignment = self.assign(class_logits.detach(), pred_boxes.detach() * strides, anchor_boxes,
                                 anchors_per_level, anchor_points, gt_boxes, gt_classes, gt_valid)
        ignore = None
        if crowd_targets is not None:
            self._check_targets("crowd_targets", crowd_targets, batch)
            ignore = self._crowd_ignore(crowd_targets.to(class_logits), anchor_points, batch)

        normaliser = self._normaliser(assignment.target_score.sum())
        fg_b, fg_a = assignment.fg_mask.nonzero(as_tuple=True)
        fg_gt = assignment.matched_gt[fg_b, fg_a]
        fg_score = assignment.target_score[fg_b, fg_a]
        positives = (fg_b, fg_a, gt_classes[fg_b, fg_gt])

        loss_cls = self._classification_loss(class_logits, positives, fg_score, ignore) / normaliser
        target_boxes = gt_boxes[fg_b, fg_gt] / strides[fg_a]
        loss_iou = (giou_loss(pred_boxes[fg_b, fg_a], target_boxes) * fg_score).sum() / normaliser
        fg_points = points[fg_a]
        distances = torch.cat([fg_points - target_boxes[:, :2], target_boxes[:, 2:] - fg_points], dim=-1)
        distances = distances.clamp(0, self.reg_max - 0.01)
        loss_dfl = (distribution_focal_loss(bins[fg_b, fg_a], distances) * fg_score).sum() / normaliser

        total = (self.classification_loss_weight * loss_cls + self.iou_loss_weight * loss_iou
                 + self.dfl_loss_weight * loss_dfl)
        return total, torch.stack([loss_cls, loss_iou, loss_dfl, total]).detach()

    def assign(self, class_logits, pred_boxes, anchor_boxes, anchors_per_level, anchor_points,
               gt_boxes, gt_classes, gt_valid) -> BoxAssignment:
        """The current stage's assignment (ATSS while use_static_assigner, else task-aligned); boxes in pixels."""
        if self.use_static_assigner:
            return atss_assign(anchor_boxes, anchors_per_level, gt_boxes, gt_valid, pred_boxes, ATSS_TOPK)
        return task_aligned_assign(class_logits.sigmoid(), pred_boxes, anchor_points, gt_boxes, gt_classes,
                                   gt_valid, TAL_TOPK, TAL_ALPHA, TAL_BETA)

    def _classification_loss(self, logits, positives, fg_score, ignore) -> torch.Tensor:
        """Varifocal (or focal) loss summed over anchors and classes; positives index (image, anchor, class)."""
        target = logits.new_zeros(logits.shape).index_put_(positives, fg_score)
        probs = logits.sigmoid()
        if self.use_varifocal_loss:
            weight = VARIFOCAL_ALPHA * probs.pow(FOCAL_GAMMA)
            if ignore is not None:
                weight.masked_fill_(ignore, 0.0)
            weight.index_put_(positives, fg_score)
        else:
            weight = (probs - target).abs().pow(FOCAL_GAMMA)
            if self.use_static_assigner:  # the reference balances classes with alpha 0.25 only in the ATSS stage
                weight = weight * (0.25 * target + 0.75 * (1 - target))
            if ignore is not None:
                weight = weight.masked_fill(ignore, 0.0).index_put(positives, weight[positives])
        return (weight * F.binary_cross_entropy_with_logits(logits, target, reduction="none")).sum()

    def _crowd_ignore(self, crowd_targets, anchor_points, batch) -> torch.Tensor:
        """bool [B, N, C]: anchor centre inside a crowd region of that class."""
        crowd_boxes, crowd_classes, crowd_valid = pad_targets(crowd_targets, batch)
        inside = points_inside_boxes(anchor_points, cxcywh_to_xyxy(crowd_boxes)) & crowd_valid[..., None]
        classes = F.one_hot(crowd_classes, self.num_classes).to(anchor_points.dtype)  # [B, Gc, C]
        return (inside.transpose(1, 2).to(anchor_points.dtype) @ classes) > 0

    @staticmethod
    def _normaliser(score_sum: torch.Tensor) -> torch.Tensor:
        # Training steps (grad enabled) average over processes, as every rank computes the loss; validation may not.
        if is_distributed() and torch.is_grad_enabled():
            score_sum = score_sum.detach().clone()
            dist.all_reduce(score_sum, op=dist.ReduceOp.SUM)
            score_sum = score_sum / get_world_size()
        return score_sum.clamp(min=1.0)

    def _unpack(self, preds):
        if not isinstance(preds, (tuple, list)) or len(preds) != 6:
            raise ValueError(f"preds must be the PP-YOLOE output tuple of 6 items (class logits, box logits, anchor "
                             f"boxes, anchor points, anchors per level, strides), got {type(preds).__name__}"
                             f"{'' if not isinstance(preds, (tuple, list)) else f' of length {len(preds)}'}")
        class_logits, box_logits, anchor_boxes, anchor_points, anchors_per_level, strides = preds
        if class_logits.ndim != 3 or class_logits.shape[-1] != self.num_classes:
            raise ValueError(f"class logits must have shape [B, N, {self.num_classes}], got {tuple(class_logits.shape)}")
        batch, num_anchors = class_logits.shape[:2]
        if tuple(box_logits.shape) != (batch, num_anchors, 4 * (self.reg_max + 1)):
            raise ValueError(f"box logits must have shape [{batch}, {num_anchors}, {4 * (self.reg_max + 1)}] "
                             f"(reg_max={self.reg_max}), got {tuple(box_logits.shape)}")
        if sum(anchors_per_level) != num_anchors:
            raise ValueError(f"anchors per level {list(anchors_per_level)} do not add up to {num_anchors} anchors")
        return (class_logits.float(), box_logits.float(), anchor_boxes.float(), anchor_points.float(),
                list(anchors_per_level), strides.float())

    def _check_targets(self, name: str, targets: torch.Tensor, batch: int) -> None:
        if not isinstance(targets, torch.Tensor) or targets.ndim != 2 or targets.shape[1] != 6:
            shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
            raise ValueError(f"{name} must have shape [N, 6] (image index, class, cx, cy, w, h), got {shape}")
        if targets.shape[0]:
            image_idx, classes = targets[:, 0], targets[:, 1]
            if image_idx.min() < 0 or image_idx.max() >= batch:
                raise ValueError(f"{name} image index must be in [0, {batch}), got {image_idx.unique().tolist()}")
            if classes.min() < 0 or classes.max() >= self.num_classes:
                raise ValueError(f"{name} class must be in [0, {self.num_classes}), got {classes.unique().tolist()}")
