"""The IoU thresholds of the usual detection metrics as an enum: mAP@0.5 and mAP@0.5:0.95."""

from __future__ import annotations

import enum

import numpy as np
import torch

__all__ = ["IouThreshold"]

_STEP = 0.05


class IouThreshold(tuple, enum.Enum):
    """(first, last) IoU threshold; a range is sampled every 0.05 (COCO's 0.50, 0.55, ..., 0.95).

    The members are tuples, so ``IouThreshold.MAP_05_TO_095 == (0.5, 0.95)``; `DetectionMetrics`
    recognises the enum and evaluates all ten thresholds of the range.
    """

    MAP_05 = (0.5, 0.5)
    MAP_05_TO_095 = (0.5, 0.95)

    def is_range(self) -> bool:
        """True when first and last threshold differ."""
        return self[0] != self[1]

    def to_tensor(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The thresholds [T]: [0.5] for MAP_05; 0.50:0.05:0.95 (T = 10) for MAP_05_TO_095.

        Computed in float64 and then cast, so float64 values are bit-identical to the COCO evaluator's.
        """
        count = int(np.round((self[1] - self[0]) / _STEP)) + 1 if self.is_range() else 1
        return torch.from_numpy(np.linspace(self[0], self[1], count)).to(dtype)
