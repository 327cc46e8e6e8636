"""Convolution blocks of the PP-YOLOE family: Conv-BN-SiLU, the re-parameterisable RepVGG block, effective SE.

Attribute names are part of the state_dict layout (``seq.conv``/``seq.bn``, ``branch_3x3``/``branch_1x1``,
``project``, ``conv1``/``conv2``), so checkpoints of the reference implementation load unchanged. BatchNorm
keeps PyTorch's defaults (eps 1e-5, momentum 0.1), as the reference does for this family.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNAct(nn.Module):
    """Conv2d (no bias, padding k//2) -> BatchNorm2d -> SiLU in ``seq``: [B, Cin, H, W] -> [B, Cout, H/s, W/s]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.seq = nn.Sequential()
        self.seq.add_module("conv", nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                                              bias=False))
        self.seq.add_module("bn", nn.BatchNorm2d(out_channels))
        # Not in place: SiLU's backward needs its input, so an in-place SiLU would first copy it anyway.
        self.seq.add_module("act", nn.SiLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


def _conv_bn(channels: int, kernel_size: int) -> nn.Sequential:
    branch = nn.Sequential()
    branch.add_module("conv", nn.Conv2d(channels, channels, kernel_size, 1, kernel_size // 2, bias=False))
    branch.add_module("bn", nn.BatchNorm2d(channels))
    return branch


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight [O, I, k, k] and bias [O] of the single conv equal to ``bn(conv(x))`` with BN's running stats."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return conv.weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale


class RepVggBlock(nn.Module):
    """SiLU(BN(conv3x3(x)) + BN(conv1x1(x))) on ``channels``: [B, C, H, W] -> [B, C, H, W].

    ``fuse()`` folds both branches and their BatchNorms (running statistics) into one 3x3 conv with bias,
    ``rbr_reparam``: the same eval-mode outputs, one convolution instead of two, and the branch parameters
    leave the state_dict (deployment layout).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.branch_3x3 = _conv_bn(channels, 3)
        self.branch_1x1 = _conv_bn(channels, 1)
        self.act = nn.SiLU()
        self.rbr_reparam: nn.Conv2d | None = None

    @property
    def fused(self) -> bool:
        return self.rbr_reparam is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rbr_reparam is not None:
            return self.act(self.rbr_reparam(x))
        return self.act(self.branch_3x3(x) + self.branch_1x1(x))

    @torch.no_grad()
    def fuse(self) -> None:
        """Replace the two branches by their equivalent 3x3 conv (no-op when already fused)."""
        if self.rbr_reparam is not None:
            return
        weight3, bias3 = fold_batchnorm(self.branch_3x3.conv, self.branch_3x3.bn)
        weight1, bias1 = fold_batchnorm(self.branch_1x1.conv, self.branch_1x1.bn)
        conv3 = self.branch_3x3.conv
        fused = nn.Conv2d(conv3.in_channels, conv3.out_channels, 3, 1, 1, bias=True,
                          device=conv3.weight.device, dtype=conv3.weight.dtype)
        fused.weight.copy_(weight3 + F.pad(weight1, [1, 1, 1, 1]))
        fused.bias.copy_(bias3 + bias1)
        del self.branch_3x3, self.branch_1x1
        self.rbr_reparam = fused


class EffectiveSE(nn.Module):
    """Effective squeeze-excitation: x * hardsigmoid(project(mean over H, W of x)), [B, C, H, W] -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.project = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.hardsigmoid(self.project(x.mean((2, 3), keepdim=True)))


class CSPResBasicBlock(nn.Module):
    """ConvBNAct 3x3 then RepVggBlock on ``channels``, plus the input when ``residual``."""

    def __init__(self, channels: int, residual: bool = True):
        super().__init__()
        self.conv1 = ConvBNAct(channels, channels, 3)
        self.conv2 = RepVggBlock(channels)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.residual else y
