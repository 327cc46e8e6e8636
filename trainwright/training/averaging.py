"""Average of the best-N validation snapshots of a model (`average_best_models`)."""

from __future__ import annotations

import torch

__all__ = ["BestModelsAverager"]


class BestModelsAverager:
    """Keeps CPU copies of the `n` state dicts with the best watched metric; `average()` blends them."""

    def __init__(self, n: int = 10, greater_is_better: bool = True):
        if n < 1:
            raise ValueError(f"number_of_models_to_average must be >= 1, got {n}")
        self.n = n
        self.greater_is_better = greater_is_better
        self.snapshots: list[tuple[float, dict]] = []  # best first

    def update(self, state_dict: dict, value: float) -> bool:
        """Keep `state_dict` if it ranks among the best `n`; returns whether the kept set changed."""
        if len(self.snapshots) == self.n and not self._better(value, self.snapshots[-1][0]):
            return False
        snapshot = {k: v.detach().to("cpu", copy=True) for k, v in state_dict.items()}
        self.snapshots.append((float(value), snapshot))
        self.snapshots.sort(key=lambda s: s[0], reverse=self.greater_is_better)
        del self.snapshots[self.n :]
        return True

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.greater_is_better else a < b

    def average(self) -> dict:
        """Mean of the floating-point entries; other entries (counters) from the best snapshot."""
        if not self.snapshots:
            raise RuntimeError("no snapshot to average yet")
        best = self.snapshots[0][1]
        out = {}
        for key, value in best.items():
            if value.dtype.is_floating_point:
                out[key] = torch.stack([s[key] for _, s in self.snapshots]).mean(dim=0).to(value.dtype)
            else:
                out[key] = value.clone()
        return out
