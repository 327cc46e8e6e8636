"""The fast YOLOX loss variant: SimOTA restricted to each box's own prior, with a scaled dynamic k.

It differs from `YoloXDetectionLoss` in the assignment only (the loss terms are the same):
- a box's dynamic k is the sum of the 10 best IoUs among *its own* prior anchors (inside the box or its
  centre region), times ``dynamic_ks_bias``, truncated to an integer (at least 1);
- a box picks its k cheapest anchors among its own prior anchors only;
- an anchor picked by several boxes goes to the cheapest of the boxes that picked it.
Two options change the normalisation: ``obj_loss_fix`` divides the objectness sum by the number of anchors
of the batch instead of the foreground count, and ``sync_num_fgs`` averages the foreground count over the
processes of a torch.distributed run.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

from trainwright.models.detection.yolox_loss import YoloXDetectionLoss
from trainwright.models.losses import register_loss

__all__ = ["YoloXFastDetectionLoss"]


@register_loss("yolox_fast_loss")
class YoloXFastDetectionLoss(YoloXDetectionLoss):
    """`YoloXDetectionLoss` with the per-box assignment described in this module; same inputs and outputs.

    Args:
        strides, num_classes, use_l1, center_sampling_radius, iou_type: as for `YoloXDetectionLoss`.
        dynamic_ks_bias: factor on every box's dynamic k (compensates for the smaller candidate sets).
        sync_num_fgs: average the foreground count across processes (DDP) before normalising.
        obj_loss_fix: normalise the objectness sum by the anchors of the batch (B * A), not by the foregrounds.
    """

    def __init__(
        self,
        strides: Sequence[int],
        num_classes: int,
        use_l1: bool = False,
        center_sampling_radius: float = 2.5,
        iou_type: str = "iou",
        dynamic_ks_bias: float = 1.1,
        sync_num_fgs: bool = False,
        obj_loss_fix: bool = False,
    ):
        super().__init__(strides, num_classes, use_l1, center_sampling_radius, iou_type)
        if not dynamic_ks_bias > 0:
            raise ValueError(f"dynamic_ks_bias must be > 0, got {dynamic_ks_bias!r}")
        self.dynamic_ks_bias = float(dynamic_ks_bias)
        self.sync_num_fgs = sync_num_fgs
        self.obj_loss_fix = obj_loss_fix

    def _assignment_options(self) -> dict:
        return {"per_box_candidates": True, "dynamic_k_scale": self.dynamic_ks_bias}

    def _normalisers(self, num_fg: int, raw: torch.Tensor):
        fg_norm = max(num_fg, 1)
        if self.sync_num_fgs and dist.is_available() and dist.is_initialized():
            fg_norm = raw.new_tensor(float(fg_norm))
            dist.all_reduce(fg_norm, op=dist.ReduceOp.SUM)
            fg_norm = fg_norm / dist.get_world_size()
        obj_norm = max(raw.shape[0] * raw.shape[1], 1) if self.obj_loss_fix else fg_norm
        return fg_norm, obj_norm
