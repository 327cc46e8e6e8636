"""Convolution blocks of the CSPDarknet/PAFPN family: Conv-BN-SiLU, depthwise-separable conv, Bottleneck, CSP, SPP.

Attribute names are part of the state_dict layout (``conv``/``bn``, ``dconv``, ``cv1``/``cv2``,
``conv1``..``conv3``/``bottlenecks``), so checkpoints of the reference implementation load unchanged.
"""

import torch
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.03


class ConvBNSiLU(nn.Module):
    """Conv2d (no bias, padding k//2 unless given) -> BatchNorm2d -> SiLU: [B, Cin, H, W] -> [B, Cout, H/s, W/s]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, padding: int | None = None):
        super().__init__()
        padding = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        # Not in place: under autograd an in-place SiLU first copies its input (the backward needs it), one more
        # pass over every activation of the network.
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DepthwiseConvBNSiLU(nn.Module):
    """Depthwise-separable conv: depthwise ConvBNSiLU(k, stride) then pointwise ConvBNSiLU(1x1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.dconv = ConvBNSiLU(in_channels, in_channels, kernel_size, stride, groups=in_channels)
        self.conv = ConvBNSiLU(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.dconv(x))


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, depthwise: bool = False) -> nn.Module:
    """The 3x3 convolution of the family: depthwise-separable when ``depthwise`` (nano models), plain otherwise."""
    if depthwise:
        return DepthwiseConvBNSiLU(in_channels, out_channels, 3, stride)
    return ConvBNSiLU(in_channels, out_channels, 3, stride)


class Bottleneck(nn.Module):
    """1x1 conv then 3x3 conv on ``channels``, plus the input when ``shortcut``: [B, C, H, W] -> [B, C, H, W]."""

    def __init__(self, channels: int, shortcut: bool = True, depthwise: bool = False):
        super().__init__()
        self.cv1 = ConvBNSiLU(channels, channels, 1)
        self.cv2 = conv3x3(channels, channels, 1, depthwise)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.shortcut else y


class CSPLayer(nn.Module):
    """Cross-stage-partial block: conv3(cat[bottlenecks(conv1(x)), conv2(x)]), [B, Cin, H, W] -> [B, Cout, H, W]."""

    def __init__(self, in_channels: int, out_channels: int, num_bottlenecks: int, shortcut: bool = True,
                 depthwise: bool = False):
        super().__init__()
        hidden = int(out_channels * 0.5)
        # Registration order (conv3 before the bottlenecks) fixes the state_dict key order.
        self.conv1 = ConvBNSiLU(in_channels, hidden, 1)
        self.conv2 = ConvBNSiLU(in_channels, hidden, 1)
        self.conv3 = ConvBNSiLU(2 * hidden, out_channels, 1)
        self.bottlenecks = nn.Sequential(*(Bottleneck(hidden, shortcut, depthwise) for _ in range(num_bottlenecks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat([self.bottlenecks(self.conv1(x)), self.conv2(x)], dim=1))


class SPP(nn.Module):
    """Spatial pyramid pooling: cv2(cat[h, maxpool5(h), maxpool9(h), maxpool13(h)]) with h = cv1(x)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        hidden = in_channels // 2
        self.cv1 = ConvBNSiLU(in_channels, hidden, 1)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.cv2 = ConvBNSiLU(hidden * (len(kernel_sizes) + 1), out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.cv1(x)
        return self.cv2(torch.cat([h, *(pool(h) for pool in self.pools)], dim=1))


class Concat(nn.Module):
    """Concatenate a sequence of [B, Ci, H, W] maps along channels (a parameter-free slot in a layer list)."""

    def forward(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(tensors, dim=1)
