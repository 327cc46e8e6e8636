"""Multi-scale training as a `pre_prediction_callback`: every few batches the inputs are resized to a new
size, a multiple of `image_size_steps` around the loader's size (the reference's YOLOX-style multi-scale)."""

from __future__ import annotations

import random

import torch
import torch.distributed as dist
import torch.nn.functional as F

from trainwright.distributed import is_distributed, is_main_process

__all__ = ["MultiscalePrePredictionCallback", "DetectionMultiscalePrePredictionCallback"]


class MultiscalePrePredictionCallback:
    """`(inputs, targets, batch_idx) -> (inputs, targets)`: resizes the batch to a size drawn every few batches.

    Every `change_frequency` batches (batch_idx % change_frequency == 0) a new height is drawn among the
    multiples of `image_size_steps` within `multiscale_range` steps of the batch's height (the largest one
    first, so that a run that fits the memory at the start keeps fitting), the width keeping the batch's
    aspect ratio: size = s * steps, width = steps * int(s * W / H), s uniform in [H // steps - range,
    H // steps + range] (and at least 1). Under torch.distributed rank 0 draws and broadcasts, so every process
    uses the same size. The inputs are resized bilinearly when the size differs.

    Args:
        multiscale_range: how many steps above and below the batch's size the new size may be.
        image_size_steps: sizes are multiples of this (the model's largest stride).
        change_frequency: batches between two draws.
    """

    def __init__(self, multiscale_range: int = 5, image_size_steps: int = 32, change_frequency: int = 10):
        for name, value in (("image_size_steps", image_size_steps), ("change_frequency", change_frequency)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(multiscale_range, bool) or not isinstance(multiscale_range, int) or multiscale_range < 0:
            raise ValueError(f"multiscale_range must be an integer >= 0, got {multiscale_range!r}")
        self.multiscale_range = multiscale_range
        self.image_size_steps = image_size_steps
        self.frequency = change_frequency
        self.sampled_imres_once = False
        self.new_input_size: tuple[int, int] | None = None

    def _draw_size(self, height: int, width: int) -> tuple[int, int]:
        steps = height // self.image_size_steps
        low, high = max(1, steps - self.multiscale_range), max(1, steps + self.multiscale_range)
        size = random.randint(low, high) if self.sampled_imres_once else high
        self.sampled_imres_once = True
        return self.image_size_steps * size, self.image_size_steps * int(size * width / height)

    def _next_size(self, inputs: torch.Tensor) -> tuple[int, int]:
        height, width = inputs.shape[-2:]
        size = torch.tensor(self._draw_size(height, width) if is_main_process() else (0, 0), device=inputs.device)
        if is_distributed():
            dist.broadcast(size, 0)
        return int(size[0]), int(size[1])

    def __call__(self, inputs: torch.Tensor, targets, batch_idx: int):
        """Args: inputs (Tensor[B, C, H, W]). Returns the resized inputs and the targets."""
        if batch_idx % self.frequency == 0 or self.new_input_size is None:
            self.new_input_size = self._next_size(inputs)
        if tuple(inputs.shape[-2:]) != self.new_input_size:
            inputs = F.interpolate(inputs, size=self.new_input_size, mode="bilinear", align_corners=False)
        return inputs, targets


class DetectionMultiscalePrePredictionCallback(MultiscalePrePredictionCallback):
    """`MultiscalePrePredictionCallback` that also scales the boxes of the targets.

    Targets are rows (image index, class, cx, cy, w, h) in pixels, `Tensor[N, 6]` (or `[B, N, 6]`): the x
    columns (cx, w) are multiplied by new_width / width and the y columns (cy, h) by new_height / height.
    The caller's tensor is left unchanged.
    """

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_idx: int):
        height, width = inputs.shape[-2:]
        inputs, targets = super().__call__(inputs, targets, batch_idx)
        new_height, new_width = inputs.shape[-2:]
        if (new_height, new_width) != (height, width):
            targets = targets.clone()
            targets[..., 2::2] *= new_width / width
            targets[..., 3::2] *= new_height / height
        return inputs, targets
