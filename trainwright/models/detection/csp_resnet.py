"""CSPResNet backbone of PP-YOLOE: a three-conv stem and four CSP stages with effective-SE attention."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from trainwright.models.detection.ppyoloe_blocks import ConvBNAct, CSPResBasicBlock, EffectiveSE

# Channels of the stem and of the four stages, and blocks per stage, at multiplier 1 (the "L" model).
BASE_CHANNELS = (64, 128, 256, 512, 1024)
BASE_LAYERS = (3, 6, 6, 3)
# Stages whose outputs feed the neck: strides 8, 16 and 32.
RETURN_STAGES = (1, 2, 3)


def scale(value: int, mult: float) -> int:
    """A channel or block count designed for multiplier 1, scaled by ``mult`` (round half to even, at least 1)."""
    return max(round(value * mult), 1)


class CSPResStage(nn.Module):
    """Stride-2 CSP stage: conv3(attn(cat[conv1(x), blocks(conv2(x))])) with x = conv_down(input).

    [B, Cin, H, W] -> [B, Cout, H/2, W/2]; the hidden width is the even number nearest below (Cin + Cout) / 2.
    """

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int):
        super().__init__()
        half = (in_channels + out_channels) // 2 // 2
        self.conv_down = ConvBNAct(in_channels, 2 * half, 3, stride=2)
        self.conv1 = ConvBNAct(2 * half, half, 1)
        self.conv2 = ConvBNAct(2 * half, half, 1)
        self.blocks = nn.Sequential(*(CSPResBasicBlock(half, residual=True) for _ in range(num_blocks)))
        self.attn = EffectiveSE(2 * half)
        self.conv3 = ConvBNAct(2 * half, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_down(x)
        return self.conv3(self.attn(torch.cat([self.conv1(x), self.blocks(self.conv2(x))], dim=1)))


class CSPResNetBackbone(nn.Module):
    """[B, Cin, H, W] -> [C3 (stride 8), C4 (stride 16), C5 (stride 32)] with channels ``out_channels``."""

    def __init__(self, depth_mult: float, width_mult: float, in_channels: int = 3,
                 channels: Sequence[int] = BASE_CHANNELS, layers: Sequence[int] = BASE_LAYERS):
        super().__init__()
        widths = [scale(c, width_mult) for c in channels]
        depths = [scale(n, depth_mult) for n in layers]
        self.stem = nn.Sequential(OrderedDict([
            ("conv1", ConvBNAct(in_channels, widths[0] // 2, 3, stride=2)),
            ("conv2", ConvBNAct(widths[0] // 2, widths[0] // 2, 3)),
            ("conv3", ConvBNAct(widths[0] // 2, widths[0], 3)),
        ]))
        self.stages = nn.ModuleList(CSPResStage(widths[i], widths[i + 1], depths[i]) for i in range(len(depths)))
        self.out_channels = tuple(widths[i + 1] for i in RETURN_STAGES)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in RETURN_STAGES:
                outputs.append(x)
        return outputs
