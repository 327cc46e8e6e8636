"""CustomCSPPAN, the neck of PP-YOLOE: a top-down FPN then a bottom-up PAN built from CSP stages."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainwright.models.detection.csp_resnet import scale
from trainwright.models.detection.ppyoloe_blocks import ConvBNAct, CSPResBasicBlock

# Neck input (C3, C4, C5) and output (P5, P4, P3) channels, and blocks per stage, at multiplier 1.
BASE_IN_CHANNELS = (256, 512, 1024)
BASE_OUT_CHANNELS = (768, 384, 192)
BASE_BLOCKS = 3


class SPP(nn.Module):
    """conv(cat[x, maxpool5(x), maxpool9(x), maxpool13(x)]) (stride 1): [B, C, H, W] -> [B, Cout, H, W].

    A stride-1 max-pool of size 9 is two of size 5 in a row and one of size 13 is three (windows clipped at
    the border alike), so the pools are computed as a chain of 5 x 5 pools: the same values, 3.7x fewer
    comparisons.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.pool = nn.MaxPool2d(5, stride=1, padding=2)
        self.conv = ConvBNAct(in_channels * 4, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool5 = self.pool(x)
        pool9 = self.pool(pool5)
        return self.conv(torch.cat([x, pool5, pool9, self.pool(pool9)], dim=1))


class CSPStage(nn.Module):
    """conv3(cat[conv1(x), convs(conv2(x))]); ``convs`` holds the blocks and, with ``spp``, an SPP in the middle."""

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int, spp: bool = False):
        super().__init__()
        half = out_channels // 2
        self.conv1 = ConvBNAct(in_channels, half, 1)
        self.conv2 = ConvBNAct(in_channels, half, 1)
        convs: list[tuple[str, nn.Module]] = []
        for i in range(num_blocks):
            convs.append((str(i), CSPResBasicBlock(half, residual=False)))
            if spp and i == (num_blocks - 1) // 2:
                convs.append(("spp", SPP(half, half)))
        self.convs = nn.Sequential(OrderedDict(convs))
        self.conv3 = ConvBNAct(2 * half, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat([self.conv1(x), self.convs(self.conv2(x))], dim=1))


def _stage(in_channels: int, out_channels: int, num_blocks: int, spp: bool = False) -> nn.Sequential:
    # Each stage sits in a one-element sequence: the reference layout names its keys "<stage>.0.<...>".
    return nn.Sequential(OrderedDict([("0", CSPStage(in_channels, out_channels, num_blocks, spp))]))


class CustomCSPPAN(nn.Module):
    """[C3, C4, C5] -> [P5, P4, P3] (strides 32, 16, 8) with channels ``out_channels``.

    Top-down: F5 = fpn_stages[0](C5); F4 = fpn_stages[1](cat[up(fpn_routes[0](F5)), C4]);
    P3 = fpn_stages[2](cat[up(fpn_routes[1](F4)), C3]). Bottom-up: P4 = pan_stages[1](cat[pan_routes[1](P3), F4]);
    P5 = pan_stages[0](cat[pan_routes[0](P4), F5]). Upsampling is nearest x2, pan routes are stride-2 3x3 convs.
    """

    def __init__(self, depth_mult: float, width_mult: float, in_channels: Sequence[int] = BASE_IN_CHANNELS,
                 out_channels: Sequence[int] = BASE_OUT_CHANNELS, num_blocks: int = BASE_BLOCKS):
        super().__init__()
        c3, c4, c5 = (scale(c, width_mult) for c in in_channels)
        o5, o4, o3 = (scale(c, width_mult) for c in out_channels)
        n = scale(num_blocks, depth_mult)
        self.fpn_stages = nn.ModuleList([
            _stage(c5, o5, n, spp=True),
            _stage(c4 + o5 // 2, o4, n),
            _stage(c3 + o4 // 2, o3, n),
        ])
        self.fpn_routes = nn.ModuleList([ConvBNAct(o5, o5 // 2, 1), ConvBNAct(o4, o4 // 2, 1)])
        self.pan_stages = nn.ModuleList([_stage(o5 + o4, o5, n), _stage(o4 + o3, o4, n)])
        self.pan_routes = nn.ModuleList([ConvBNAct(o4, o4, 3, stride=2), ConvBNAct(o3, o3, 3, stride=2)])
        self.out_channels = (o5, o4, o3)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        c3, c4, c5 = features
        f5 = self.fpn_stages[0](c5)
        f4 = self.fpn_stages[1](torch.cat([_up(self.fpn_routes[0](f5)), c4], dim=1))
        p3 = self.fpn_stages[2](torch.cat([_up(self.fpn_routes[1](f4)), c3], dim=1))
        p4 = self.pan_stages[1](torch.cat([self.pan_routes[1](p3), f4], dim=1))
        p5 = self.pan_stages[0](torch.cat([self.pan_routes[0](p4), f5], dim=1))
        return [p5, p4, p3]


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")
