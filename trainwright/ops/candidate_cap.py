"""The per-class candidate cap of greedy NMS: bounds the work of the NMS kernel on one huge class.

The greedy NMS kernel compares every kept box with every lower-scored box of its class, so a class with n
candidates that barely overlap costs about n^2 / 2 IoUs (a million such candidates: far beyond 15 minutes
on a CPU). Keeping only the best ``cap`` candidates of each class bounds that to cap^2 / 2 per class; a
class with at most ``cap`` candidates is untouched, so the result only changes when the cap is hit.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["DEFAULT_MAX_CANDIDATES_PER_CLASS", "top_k_per_class"]

# Above every class count of the usual inputs (a 640x640 YOLOX gives one candidate per class per row: 8400),
# small enough that one capped class costs well under a second of CPU.
DEFAULT_MAX_CANDIDATES_PER_CLASS = 10_000


def top_k_per_class(scores: Tensor, classes: Tensor, k: int) -> Tensor | None:
    """Indices of the k best-scored candidates of each class, or None when no class has more than k.

    Args:
        scores (Tensor[N]): candidate scores.
        classes (Tensor[N]): integer class of each candidate.
        k (int): candidates kept per class; ties at the cut keep the earlier candidate.

    Returns:
        Tensor[M] (ascending indices, M < N) of the candidates kept, or None when nothing is cut.
    """
    if classes.numel() <= k or int(torch.bincount(classes).max()) <= k:
        return None
    order = torch.argsort(scores, descending=True, stable=True)
    order = order[torch.argsort(classes[order], stable=True)]  # by class, best first within each class
    sorted_classes = classes[order]
    rank = torch.arange(order.numel(), device=order.device) - torch.searchsorted(sorted_classes, sorted_classes)
    return order[rank < k].sort().values
