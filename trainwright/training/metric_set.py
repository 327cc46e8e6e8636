"""Running torchmetrics and loss averages over an epoch, reported as flat name -> float dicts."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping

import torch
import torch.distributed as dist
import torchmetrics

from trainwright.distributed import collective_device

__all__ = ["MetricSet", "LossAverager"]

_OPTIONAL_UPDATE_ARGS = ("device", "inputs", "crowd_targets")


def _update_kwargs_of(metric: torchmetrics.Metric) -> tuple[str, ...]:
    """Which of device / inputs / crowd_targets `metric.update` names (or all when it takes **kwargs)."""
    params = inspect.signature(metric.update).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return _OPTIONAL_UPDATE_ARGS
    return tuple(name for name in _OPTIONAL_UPDATE_ARGS if name in params)


def _flatten(name: str, value) -> dict[str, float]:
    if isinstance(value, Mapping):
        out = {}
        for key, v in value.items():
            out.update(_flatten(str(key), v))
        return out
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"metric {name!r} computed a tensor of shape {tuple(value.shape)}; report scalars only")
        return {name: float(value)}
    return {name: float(value)}


class MetricSet:
    """Metrics of one phase; each is reported under its class name or each key of its compute() dict."""

    def __init__(self, metrics: Iterable[torchmetrics.Metric], device: torch.device | str):
        self.metrics = list(metrics)
        for m in self.metrics:
            if not isinstance(m, torchmetrics.Metric):
                raise TypeError(f"metrics must be torchmetrics.Metric objects, got {type(m).__name__}: {m!r}")
            m.to(device)
        self.device = device
        self._kwargs = [_update_kwargs_of(m) for m in self.metrics]

    def reset(self) -> None:
        for m in self.metrics:
            m.reset()

    def update(self, preds, target, inputs=None, extras: Mapping | None = None) -> None:
        """Feed one batch; device/inputs/crowd_targets only to metrics whose update() names them."""
        available = {"device": self.device, "inputs": inputs, "crowd_targets": (extras or {}).get("crowd_targets")}
        for metric, names in zip(self.metrics, self._kwargs):
            metric.update(preds, target, **{n: available[n] for n in names})

    def compute(self) -> dict[str, float]:
        """Flat name -> value; a second metric of the same class is suffixed `_1`, `_2`, ..."""
        out: dict[str, float] = {}
        for metric in self.metrics:
            base = type(metric).__name__
            name, i = base, 0
            while name in out:
                i += 1
                name = f"{base}_{i}"
            out.update(_flatten(name, metric.compute()))
        return out

    def __len__(self) -> int:
        return len(self.metrics)


class LossAverager:
    """Sample-weighted mean of each loss component over an epoch; kept on the device (no per-batch sync)."""

    def __init__(self):
        self.sum: torch.Tensor | None = None
        self.count = 0

    def update(self, components: torch.Tensor, batch_size: int) -> None:
        if self.sum is None:
            self.sum = components.detach().float() * batch_size
        else:
            self.sum.add_(components.detach(), alpha=batch_size)
        self.count += batch_size

    def mean(self) -> torch.Tensor | None:
        """Mean of each component [K] over every sample of every process (None when no process saw a batch).

        Under torch.distributed every process must call it, also one that saw no batch (an evaluation share
        can be empty): the sums and counts are all-reduced in one tensor [K + 1].
        """
        distributed = dist.is_available() and dist.is_initialized()
        if not distributed:
            return None if self.sum is None else self.sum / self.count
        device = self.sum.device if self.sum is not None else collective_device()
        size = torch.tensor([0 if self.sum is None else self.sum.numel()], device=device)
        dist.all_reduce(size, op=dist.ReduceOp.MAX)
        if int(size) == 0:
            return None
        packed = torch.zeros(int(size) + 1, device=device)
        if self.sum is not None:
            packed[:-1] = self.sum
            packed[-1] = float(self.count)
        dist.all_reduce(packed)
        return packed[:-1] / packed[-1]

    def compute(self, names: list[str]) -> dict[str, float]:
        """name -> mean, averaged over all processes when torch.distributed is initialised."""
        mean = self.mean()
        return {} if mean is None else dict(zip(names, mean.tolist()))
