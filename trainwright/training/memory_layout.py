"""The memory layout of a model in training: channels-last on request, checkpoints always in the default layout.

Channels-last (NHWC) keeps a pixel's channels together. On CPU it makes the many small convolutions,
BatchNorms and activations of a small depthwise model faster (YOLOX-N at 128-160 px, batch 16: 1.2-1.35x per
step, measured with both layouts in turns); large models at 640 px were slower in it, so it is a choice
(training parameter `channels_last`), not a default. Inputs need no conversion: a convolution whose weight is
channels-last gives a channels-last output.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["contiguous_tensors", "use_channels_last"]


def use_channels_last(model: nn.Module) -> nn.Module:
    """Put the 4-d weights of `model` (its convolutions) in channels-last layout, in place; returns `model`."""
    return model.to(memory_format=torch.channels_last)


def contiguous_tensors(state_dict: Mapping[str, object]) -> dict[str, object]:
    """`state_dict` with every tensor in the default contiguous layout (a no-op for tensors already so), so that a
    checkpoint reads the same whichever layout the model trained in."""
    return {k: v.contiguous() if isinstance(v, torch.Tensor) else v for k, v in state_dict.items()}
