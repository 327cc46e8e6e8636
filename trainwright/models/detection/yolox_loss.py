"""The YOLOX training loss: SimOTA assignment, IoU loss on boxes, BCE on objectness and classes, optional L1.

preds: the train-mode output of a YOLOX model, one raw map [B, 1, H_i, W_i, 5 + C] per stride with channels
(tx, ty, tw, th, obj_logit, cls_logits...), decoded as cx = (tx + gx) * s, cy = (ty + gy) * s, w = exp(tw) * s,
h = exp(th) * s. targets: float [N, 6] = (image index, class, cx, cy, w, h) in input pixels.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainwright.models.detection.simota import Assignment, simota_assign
from trainwright.models.losses import register_loss

IOU_TYPES = ("iou", "giou")


def aligned_iou_cxcywh(pred: torch.Tensor, target: torch.Tensor, iou_type: str = "iou") -> torch.Tensor:
    """IoU (or GIoU) of matching rows of two [M, 4] (cx, cy, w, h) box sets -> [M]."""
    p1, p2 = pred[:, :2] - pred[:, 2:] / 2, pred[:, :2] + pred[:, 2:] / 2
    t1, t2 = target[:, :2] - target[:, 2:] / 2, target[:, :2] + target[:, 2:] / 2
    wh = (torch.minimum(p2, t2) - torch.maximum(p1, t1)).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    union = pred[:, 2] * pred[:, 3] + target[:, 2] * target[:, 3] - inter
    iou = inter / (union + 1e-16)
    if iou_type == "giou":
        enclosing = (torch.maximum(p2, t2) - torch.minimum(p1, t1)).clamp(min=0)
        enclosing_area = enclosing[:, 0] * enclosing[:, 1]
        return iou - (enclosing_area - union) / enclosing_area.clamp(min=1e-16)
    return iou


def pad_targets(targets: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scatter [N, 6] targets into per-image slots: boxes [B, G, 4], classes long [B, G], valid bool [B, G]."""
    image_idx = targets[:, 0].long()
    order = torch.argsort(image_idx, stable=True)
    targets, image_idx = targets[order], image_idx[order]
    counts = torch.bincount(image_idx, minlength=batch_size)
    slots = int(counts.max()) if targets.shape[0] else 0
    slot = torch.arange(targets.shape[0], device=targets.device) - (counts.cumsum(0) - counts)[image_idx]
    boxes = targets.new_zeros(batch_size, slots, 4)
    classes = torch.zeros(batch_size, slots, dtype=torch.long, device=targets.device)
    valid = torch.zeros(batch_size, slots, dtype=torch.bool, device=targets.device)
    boxes[image_idx, slot] = targets[:, 2:6]
    classes[image_idx, slot] = targets[:, 1].long()
    valid[image_idx, slot] = True
    return boxes, classes, valid


@register_loss("yolox_loss")
class YoloXDetectionLoss(nn.Module):
    """YOLOX loss with SimOTA dynamic-k assignment; `loss(preds, targets) -> (total, components)`.

    total = (reg_weight * sum(IoU loss) + sum(obj BCE) + sum(cls BCE) + sum(L1)) / max(num foreground, 1);
    the components report each term divided by the foreground count, the IoU one without reg_weight.
    The IoU loss is 1 - IoU^2 (iou_type="iou") or 1 - GIoU (iou_type="giou"); the class target of a
    foreground anchor is its one-hot class times the IoU of its prediction with its box; the L1 term
    (only when use_l1) compares the raw (tx, ty, tw, th) with (cx/s - gx, cy/s - gy, log(w/s), log(h/s)).
    """

    def __init__(
        self,
        strides: Sequence[int] = (8, 16, 32),
        num_classes: int = 80,
        use_l1: bool = False,
        center_sampling_radius: float = 2.5,
        iou_type: str = "iou",
        reg_weight: float = 5.0,
    ):
        super().__init__()
        if iou_type not in IOU_TYPES:
            raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if len(strides) == 0 or any(s <= 0 for s in strides):
            raise ValueError(f"strides must be a non-empty sequence of positive numbers, got {strides!r}")
        self.strides = tuple(strides)
        self.num_classes = num_classes
        self.use_l1 = use_l1
        self.center_sampling_radius = center_sampling_radius
        self.iou_type = iou_type
        self.reg_weight = reg_weight
        self._grid_cache: dict = {}

    @property
    def component_names(self) -> list[str]:
        """Names of the entries of the components tensor (the reference's): the four terms, num_fg (foreground
        anchors per ground-truth box) and the total, "Loss" (so a run can watch "YoloXDetectionLoss/Loss")."""
        return ["iou", "obj", "cls", "l1", "num_fg", "Loss"]

    def _check_inputs(self, preds, targets: torch.Tensor) -> None:
        if not isinstance(preds, (list, tuple)) or len(preds) != len(self.strides):
            raise ValueError(
                f"preds must be a list of {len(self.strides)} maps (one per stride {self.strides}), got "
                f"{type(preds).__name__} of length {len(preds) if isinstance(preds, (list, tuple)) else 'n/a'}"
            )
        for i, level in enumerate(preds):
            if level.ndim != 5 or level.shape[1] != 1 or level.shape[-1] != 5 + self.num_classes:
                raise ValueError(
                    f"preds[{i}] must have shape [B, 1, H, W, {5 + self.num_classes}], got {tuple(level.shape)}"
                )
        if targets.ndim != 2 or targets.shape[1] != 6:
            raise ValueError(f"targets must have shape [N, 6], got {tuple(targets.shape)}")
        if targets.shape[0]:
            batch = preds[0].shape[0]
            image_idx, classes = targets[:, 0], targets[:, 1]
            if image_idx.min() < 0 or image_idx.max() >= batch:
                raise ValueError(f"targets image index must be in [0, {batch}), got {image_idx.unique().tolist()}")
            if classes.min() < 0 or classes.max() >= self.num_classes:
                raise ValueError(f"targets class must be in [0, {self.num_classes}), got {classes.unique().tolist()}")

    def _grids(self, preds: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell offsets (gx, gy) [A, 2] and strides [A] for all levels, row-major within a level."""
        key = (tuple(tuple(p.shape[2:4]) for p in preds), preds[0].device)
        if key not in self._grid_cache:
            cells, strides = [], []
            for level, stride in zip(preds, self.strides):
                h, w = level.shape[2:4]
                gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
                cells.append(torch.stack([gx, gy], -1).reshape(-1, 2))
                strides.append(torch.full((h * w,), float(stride)))
            device = preds[0].device
            self._grid_cache = {key: (torch.cat(cells).float().to(device), torch.cat(strides).to(device))}
        return self._grid_cache[key]

    def forward(self, preds: Sequence[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """preds: list of [B, 1, H, W, 5 + C]; targets [N, 6] -> (total loss scalar, components [6] detached)."""
        if isinstance(preds, tuple) and len(preds) == 2 and isinstance(preds[1], (list, tuple)):
            preds = preds[1]  # eval-mode output (decoded, raw maps): validation losses use the raw maps
        self._check_inputs(preds, targets)
        batch = preds[0].shape[0]
        raw = torch.cat([p.reshape(batch, -1, p.shape[-1]) for p in preds], 1).float()  # [B, A, 5 + C]
        cells, strides = self._grids(preds)
        boxes = torch.cat([(raw[..., :2] + cells) * strides[:, None], raw[..., 2:4].exp() * strides[:, None]], -1)
        obj_logits, cls_logits = raw[..., 4], raw[..., 5:]
        gt_boxes, gt_classes, gt_valid = pad_targets(targets.to(raw), batch)

        scores = (cls_logits.detach().sigmoid() * obj_logits.detach().sigmoid()[..., None]).sqrt()
        centers = (cells + 0.5) * strides[:, None]
        assignment = simota_assign(
            boxes.detach(), scores, centers, strides, gt_boxes, gt_classes, gt_valid, self.center_sampling_radius,
            **self._assignment_options(),
        )
        return self._losses(raw, boxes, cells, strides, assignment, gt_boxes, gt_classes, int(gt_valid.sum()))

    def _assignment_options(self) -> dict:
        """Extra keyword arguments of `simota_assign` (none: the original SimOTA)."""
        return {}

    def _normalisers(self, num_fg: int, raw: torch.Tensor) -> tuple[float | torch.Tensor, float | torch.Tensor]:
        """(divisor of the iou, cls and l1 sums, divisor of the objectness sum): both max(num_fg, 1) here."""
        return max(num_fg, 1), max(num_fg, 1)

    def _losses(self, raw, boxes, cells, strides, assignment: Assignment, gt_boxes, gt_classes, num_gts):
        """Sum each term over anchors, normalise by the foreground count, and stack the components."""
        fg_b, fg_a = assignment.fg_mask.nonzero(as_tuple=True)
        gt_idx = assignment.matched_gt[fg_b, fg_a]
        target_boxes = gt_boxes[fg_b, gt_idx]  # [F, 4]
        fg_norm, obj_norm = self._normalisers(int(fg_b.numel()), raw)

        iou = aligned_iou_cxcywh(boxes[fg_b, fg_a], target_boxes, self.iou_type)
        iou_loss = (1 - iou.pow(2)) if self.iou_type == "iou" else (1 - iou.clamp(-1.0, 1.0))
        obj_loss = F.binary_cross_entropy_with_logits(raw[..., 4], assignment.fg_mask.to(raw), reduction="sum")
        cls_target = F.one_hot(gt_classes[fg_b, gt_idx], self.num_classes).to(raw)
        cls_target = cls_target * assignment.matched_iou[fg_b, fg_a, None]
        cls_loss = F.binary_cross_entropy_with_logits(raw[fg_b, fg_a, 5:], cls_target, reduction="sum")
        if self.use_l1:
            fg_strides = strides[fg_a, None]
            l1_target = torch.cat(
                [target_boxes[:, :2] / fg_strides - cells[fg_a], torch.log(target_boxes[:, 2:] / fg_strides + 1e-8)],
                -1,
            )
            l1_loss = (raw[fg_b, fg_a, :4] - l1_target).abs().sum()
        else:
            l1_loss = raw.new_zeros(())

        terms = torch.stack([iou_loss.sum() / fg_norm, obj_loss / obj_norm, cls_loss / fg_norm, l1_loss / fg_norm])
        total = self.reg_weight * terms[0] + terms[1] + terms[2] + terms[3]
        fg_per_gt = raw.new_tensor([fg_b.numel() / max(num_gts, 1)])
        components = torch.cat([terms.detach(), fg_per_gt, total.detach()[None]])
        return total, components
