"""PP-YOLOE: CSPResNet backbone, CustomCSPPAN neck, efficient task-aligned head with distribution-focal bins."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import torch
from torch import nn

from trainwright.models.detection.csp_pan import CustomCSPPAN
from trainwright.models.detection.csp_resnet import CSPResNetBackbone
from trainwright.models.detection.ppyoloe_blocks import RepVggBlock
from trainwright.models.detection.ppyoloe_head import AnchorGrid, PPYoloEHead, make_anchor_grid
from trainwright.models.detection.ppyoloe_postprocess import PPYoloEPostPredictionCallback

STRIDES = (32, 16, 8)
_GRID_CACHE_SIZE = 16


class PPYoloE(nn.Module):
    """PP-YOLOE detector, images [B, Cin, H, W] with H and W divisible by 32; N anchors = Σ (H/s)(W/s).

    Train mode returns the raw 6-tuple ``(class_logits [B, N, C], box_logits [B, N, 4 * (reg_max + 1)],
    anchor_boxes [N, 4], anchor_points [N, 2], anchors_per_level list[int], anchor_strides [N, 1])`` — the
    input of PPYoloELoss. Eval mode returns ``((boxes [B, N, 4], scores [B, N, C]), raw 6-tuple)`` with boxes
    x1, y1, x2, y2 in input pixels and scores = sigmoid(class logits). Levels are ordered stride 32, 16, 8
    (``strides``), cells row-major within a level.
    """

    def __init__(self, num_classes: int, depth_mult: float, width_mult: float, in_channels: int = 3,
                 reg_max: int = 16):
        super().__init__()
        _check_positive_int("num_classes", num_classes)
        _check_positive_int("in_channels", in_channels)
        _check_positive_int("reg_max", reg_max)
        for name, value in (("depth_mult", depth_mult), ("width_mult", width_mult)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        self.strides = STRIDES
        self.in_channels = in_channels
        self.backbone = CSPResNetBackbone(depth_mult, width_mult, in_channels)
        self.neck = CustomCSPPAN(depth_mult, width_mult)
        self.head = PPYoloEHead(num_classes, self.neck.out_channels, STRIDES, reg_max)
        self._processing_params: dict[str, Any] = {}
        self._grid_cache: dict[tuple, AnchorGrid] = {}

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def reg_max(self) -> int:
        return self.head.reg_max

    def replace_head(self, new_num_classes: int) -> None:
        """Re-initialise the class predictions for ``new_num_classes`` classes; the rest keeps its weights."""
        _check_positive_int("new_num_classes", new_num_classes)
        self.head.replace_classifier(new_num_classes)

    def set_dataset_processing_params(self, **params: Any) -> None:
        """Store dataset facts used at inference (e.g. ``class_names``, ``input_size``); None values are ignored."""
        self._processing_params.update({k: deepcopy(v) for k, v in params.items() if v is not None})

    def get_processing_params(self) -> dict[str, Any]:
        """A copy of the stored dataset processing parameters (empty dict when none were set)."""
        return deepcopy(self._processing_params)

    @staticmethod
    def get_post_prediction_callback(conf: float, iou: float) -> PPYoloEPostPredictionCallback:
        """The post-processing of this family: score threshold ``conf``, NMS IoU ``iou``, top 1000, at most 300."""
        return PPYoloEPostPredictionCallback(score_threshold=conf, nms_threshold=iou, nms_top_k=1000,
                                             max_predictions=300)

    def fuse(self) -> PPYoloE:
        """Fold every RepVGG block into one 3x3 conv (deployment): same eval outputs, fewer convolutions.

        Uses the BatchNorm running statistics, so fuse after training; the state_dict changes layout
        (``rbr_reparam`` instead of ``branch_3x3``/``branch_1x1``). Returns the model.
        """
        for module in self.modules():
            if isinstance(module, RepVggBlock):
                module.fuse()
        return self

    def prep_model_for_conversion(self, input_size=None, **kwargs) -> None:
        """Prepare for export (the reference's name): fuse the RepVGG blocks; ``input_size`` is not needed."""
        self.fuse()

    def forward(self, x: torch.Tensor):
        _check_input(x, self.in_channels, max(self.strides))
        features = self.neck(self.backbone(x))
        class_logits, box_logits = self.head(features)
        grid = self._grid(tuple(tuple(f.shape[2:]) for f in features), x.device)
        raw = (class_logits, box_logits, grid.boxes.clone(), grid.points.clone(), list(grid.counts),
               grid.strides.clone())
        if self.training:
            return raw
        return self.head.decode(class_logits, box_logits, grid), raw

    def _grid(self, sizes: tuple, device: torch.device) -> AnchorGrid:
        """The anchor grid for feature maps of the given (h, w), cached per sizes and device."""
        key = (sizes, device)
        if key not in self._grid_cache:
            if len(self._grid_cache) >= _GRID_CACHE_SIZE:
                self._grid_cache.clear()
            self._grid_cache[key] = make_anchor_grid(sizes, self.strides, device)
        return self._grid_cache[key]


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_input(x: torch.Tensor, in_channels: int, max_stride: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != in_channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"PP-YOLOE expects images of shape [B, {in_channels}, H, W], got {shape}")
    h, w = x.shape[-2:]
    if h % max_stride or w % max_stride:
        raise ValueError(f"PP-YOLOE input size must be divisible by {max_stride}, got H x W = {h} x {w}; "
                         f"resize or pad the images (e.g. to {-(-h // max_stride) * max_stride} x "
                         f"{-(-w // max_stride) * max_stride})")
