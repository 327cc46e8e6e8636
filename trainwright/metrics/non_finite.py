"""Counting the predictions a model could not make: boxes or scores that are inf or NaN (a diverged model)."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["NonFinitePredictions"]


class NonFinitePredictions(Metric):
    """The number of predicted rows (boxes with their scores) that hold an inf or NaN value.

    A diverging detector often shows it here first: box sizes overflow to inf while the loss still looks
    normal, and NMS silently drops those boxes. Reported under its class name, summed over processes.

    `update(preds, target)` takes the model's eval output: a tensor [B, N, K] (for YOLOX the decoded
    cx, cy, w, h, objectness, class scores), or a tuple / list whose first element is one or is a pair
    (boxes [B, N, 4], scores [B, N, C]) as PP-YOLOE's; `target` is unused.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("non_finite", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds, target=None) -> None:
        """Count the rows of one batch's predictions [B, N, K] with a non-finite value."""
        decoded = preds[0] if isinstance(preds, (tuple, list)) and len(preds) else preds
        if isinstance(decoded, (tuple, list)) and decoded and all(isinstance(t, Tensor) for t in decoded):
            decoded = _side_by_side(decoded)
        if not isinstance(decoded, Tensor) or decoded.ndim < 2:
            shape = tuple(decoded.shape) if isinstance(decoded, Tensor) else type(decoded).__name__
            raise ValueError(f"NonFinitePredictions expects predictions [B, N, K] (or a tuple starting with them), "
                             f"got {shape}")
        rows = decoded.detach().reshape(-1, decoded.shape[-1])
        self.non_finite += (~torch.isfinite(rows)).any(dim=1).sum().to(self.non_finite.device)
        self.total += rows.shape[0]

    def compute(self) -> Tensor:
        """The count of non-finite rows since the last reset (0-d long tensor)."""
        return self.non_finite.clone()


def _side_by_side(parts) -> Tensor:
    """Tensors [B, N, K_i] of one prediction (boxes, scores) as one [B, N, sum K_i]."""
    if any(t.ndim != 3 or t.shape[:2] != parts[0].shape[:2] for t in parts):
        shapes = ", ".join(str(tuple(t.shape)) for t in parts)
        raise ValueError(f"NonFinitePredictions expects predictions [B, N, K] side by side, got shapes {shapes}")
    return torch.cat([t.detach() for t in parts], dim=-1)
