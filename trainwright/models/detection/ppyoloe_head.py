"""The efficient task-aligned head of PP-YOLOE: ESE stems, class logits and distribution-focal box bins.

Levels come in the neck's order (strides 32, 16, 8). Per anchor the head predicts C class logits and, for
each side (left, top, right, bottom), logits over ``reg_max + 1`` bins whose softmax expectation is the
distance from the anchor point to that side, in stride units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from trainwright.models.detection.ppyoloe_blocks import ConvBNAct
from trainwright.ops.boxes import batch_distance2bbox

PRIOR_PROBABILITY = 0.01
# Side of the square "anchor box" of each anchor point, in strides (used by the ATSS assigner).
GRID_CELL_SCALE = 5.0
GRID_CELL_OFFSET = 0.5


class AnchorGrid(NamedTuple):
    """Anchors of all levels, concatenated in level order, cells row-major within a level."""

    boxes: torch.Tensor  # [N, 4] x1, y1, x2, y2 pixels: a square of side GRID_CELL_SCALE * stride
    points: torch.Tensor  # [N, 2] x, y pixels: ((col, row) + 0.5) * stride
    counts: list[int]  # anchors per level
    strides: torch.Tensor  # [N, 1] stride of each anchor


def make_anchor_grid(sizes: Sequence[tuple[int, int]], strides: Sequence[int],
                     device: torch.device | None = None) -> AnchorGrid:
    """Anchor boxes, points, per-level counts and strides (float32) for feature maps of sizes (h_i, w_i)."""
    boxes, points, level_strides = [], [], []
    for (h, w), stride in zip(sizes, strides):
        ys = (torch.arange(h, device=device) + GRID_CELL_OFFSET) * stride
        xs = (torch.arange(w, device=device) + GRID_CELL_OFFSET) * stride
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        level_points = torch.stack([gx, gy], dim=-1).reshape(-1, 2).float()
        half = GRID_CELL_SCALE * stride / 2
        boxes.append(torch.cat([level_points - half, level_points + half], dim=-1))
        points.append(level_points)
        level_strides.append(torch.full((h * w, 1), float(stride), device=device))
    return AnchorGrid(torch.cat(boxes), torch.cat(points), [h * w for h, w in sizes], torch.cat(level_strides))


class ESEAttn(nn.Module):
    """conv(feat * sigmoid(fc(avg_feat))): channel attention from the global average, [B, C, H, W] -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)
        self.conv = ConvBNAct(channels, channels, 1)
        nn.init.normal_(self.fc.weight, std=0.001)

    def forward(self, feat: torch.Tensor, avg_feat: torch.Tensor) -> torch.Tensor:
        return self.conv(feat * torch.sigmoid(self.fc(avg_feat)))


class PPYoloEHead(nn.Module):
    """[P5, P4, P3] -> class logits [B, N, C] and box-bin logits [B, N, 4 * (reg_max + 1)].

    Channel layout of the box logits: side * (reg_max + 1) + bin, sides ordered left, top, right, bottom.
    """

    def __init__(self, num_classes: int, in_channels: Sequence[int], strides: Sequence[int] = (32, 16, 8),
                 reg_max: int = 16):
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = tuple(in_channels)
        self.strides = tuple(strides)
        self.reg_max = reg_max
        self.stem_cls = nn.ModuleList(ESEAttn(c) for c in self.in_channels)
        self.stem_reg = nn.ModuleList(ESEAttn(c) for c in self.in_channels)
        self.pred_cls = nn.ModuleList(self._class_conv(c, num_classes) for c in self.in_channels)
        self.pred_reg = nn.ModuleList(nn.Conv2d(c, 4 * (reg_max + 1), 3, padding=1) for c in self.in_channels)
        for conv in self.pred_reg:
            nn.init.zeros_(conv.weight)
            nn.init.constant_(conv.bias, 1.0)
        self.register_buffer("bin_values", torch.arange(reg_max + 1, dtype=torch.float32), persistent=False)

    @staticmethod
    def _class_conv(in_channels: int, num_classes: int) -> nn.Conv2d:
        """A class prediction conv starting at probability PRIOR_PROBABILITY everywhere (weights 0)."""
        conv = nn.Conv2d(in_channels, num_classes, 3, padding=1)
        nn.init.zeros_(conv.weight)
        nn.init.constant_(conv.bias, -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY))
        return conv

    def replace_classifier(self, num_classes: int) -> None:
        """New class prediction convs for ``num_classes`` classes, on the device of the old ones."""
        device = self.pred_cls[0].weight.device
        self.pred_cls = nn.ModuleList(self._class_conv(c, num_classes) for c in self.in_channels).to(device)
        self.num_classes = num_classes

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-level [B, c_i, h_i, w_i] -> (class logits [B, N, C], box-bin logits [B, N, 4 * (reg_max + 1)])."""
        class_logits, box_logits = [], []
        for i, feat in enumerate(features):
            avg_feat = F.adaptive_avg_pool2d(feat, 1)
            class_logits.append(self.pred_cls[i](self.stem_cls[i](feat, avg_feat) + feat).flatten(2).transpose(1, 2))
            box_logits.append(self.pred_reg[i](self.stem_reg[i](feat, avg_feat)).flatten(2).transpose(1, 2))
        return torch.cat(class_logits, dim=1), torch.cat(box_logits, dim=1)  # contiguous [B, N, *]

    def expected_distances(self, box_logits: torch.Tensor) -> torch.Tensor:
        """Box-bin logits [B, N, 4 * (reg_max + 1)] -> expected distance per side [B, N, 4], in strides."""
        bins = box_logits.reshape(*box_logits.shape[:-1], 4, self.reg_max + 1).softmax(dim=-1)
        return bins @ self.bin_values.to(bins.dtype)

    def decode(self, class_logits: torch.Tensor, box_logits: torch.Tensor,
               grid: AnchorGrid) -> tuple[torch.Tensor, torch.Tensor]:
        """(boxes [B, N, 4] x1, y1, x2, y2 in input pixels, scores [B, N, C] = sigmoid(class logits))."""
        points = grid.points / grid.strides
        boxes = batch_distance2bbox(points, self.expected_distances(box_logits)) * grid.strides
        return boxes, class_logits.sigmoid()
