"""CSPDarknet backbone of YOLOX: a stem and four down-sampling stages, returning the stride 8/16/32 features."""

import torch
from torch import nn

from trainwright.models.detection.blocks import SPP, ConvBNSiLU, CSPLayer, conv3x3

# Indices in the layer list of the stride 8, 16 and 32 outputs.
OUTPUT_LAYERS = (4, 6, 9)


def scaled_width(channels: int, width_mult: float) -> int:
    """Channel count of a layer designed for ``channels`` at width multiplier 1."""
    return int(channels * width_mult)


def scaled_depth(repeats: int, depth_mult: float) -> int:
    """Number of repeated blocks for a stage designed with ``repeats`` blocks at depth multiplier 1."""
    return max(round(repeats * depth_mult), 1)


class CSPDarknet(nn.Module):
    """[B, Cin, H, W] -> (C3 [B, c256, H/8, W/8], C4 [B, c512, H/16, W/16], C5 [B, c1024, H/32, W/32]).

    ``cN`` is N scaled by ``width_mult``; the layers sit in ``_modules_list`` (indices 0..9) so that the
    state_dict keys match the reference layout.
    """

    def __init__(self, depth_mult: float, width_mult: float, depthwise: bool = False, in_channels: int = 3):
        super().__init__()
        c64, c128, c256, c512, c1024 = (scaled_width(c, width_mult) for c in (64, 128, 256, 512, 1024))
        n3, n9 = scaled_depth(3, depth_mult), scaled_depth(9, depth_mult)
        self.out_channels = (c256, c512, c1024)
        self._modules_list = nn.ModuleList([
            ConvBNSiLU(in_channels, c64, 6, stride=2, padding=2),
            conv3x3(c64, c128, 2, depthwise),
            CSPLayer(c128, c128, n3, True, depthwise),
            conv3x3(c128, c256, 2, depthwise),
            CSPLayer(c256, c256, n9, True, depthwise),
            conv3x3(c256, c512, 2, depthwise),
            CSPLayer(c512, c512, n9, True, depthwise),
            conv3x3(c512, c1024, 2, depthwise),
            SPP(c1024, c1024),
            CSPLayer(c1024, c1024, n3, False, depthwise),
        ])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outputs = []
        for i, layer in enumerate(self._modules_list):
            x = layer(x)
            if i in OUTPUT_LAYERS:
                outputs.append(x)
        return tuple(outputs)
