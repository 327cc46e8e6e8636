"""Measuring while training: a running weighted average, and a millisecond timer for CPU or CUDA work."""

from __future__ import annotations

import time

import torch

__all__ = ["AverageMeter", "Timer"]


class AverageMeter:
    """Weighted average of a scalar or a vector over batches: sum(value * batch_size) / sum(batch_size)."""

    def __init__(self):
        self._sum: torch.Tensor | None = None
        self._count = 0

    def update(self, value: float | tuple | list | torch.Tensor, batch_size: int) -> None:
        """Add one batch's value (a number, or a vector [K] of numbers), weighted by ``batch_size``."""
        value = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value)
        value = value.to("cpu", torch.float64)
        if self._sum is not None and value.shape != self._sum.shape:
            raise ValueError(f"AverageMeter: value of shape {tuple(value.shape)} after values of shape "
                             f"{tuple(self._sum.shape)}")
        weighted = value * batch_size
        self._sum = weighted if self._sum is None else self._sum + weighted
        self._count += batch_size

    @property
    def average(self) -> float | tuple[float, ...]:
        """0 before any update; a float for scalar values; a tuple of floats for vector values."""
        if self._sum is None:
            return 0
        mean = self._sum / self._count
        return float(mean) if mean.dim() < 1 else tuple(mean.tolist())


class Timer:
    """Elapsed milliseconds between `start()` and `stop()`.

    On a CUDA device (when CUDA is available) CUDA events time the queued GPU work and `stop()` waits for
    it; otherwise a monotonic wall clock is used.

    Args:
        device: "cpu", "cuda", "cuda:<index>" or a torch.device.
    """

    def __init__(self, device: str | torch.device):
        self.on_gpu = torch.device(device).type == "cuda" and torch.cuda.is_available()
        if self.on_gpu:
            self.starter = torch.cuda.Event(enable_timing=True)
            self.ender = torch.cuda.Event(enable_timing=True)
        else:
            self.starter, self.ender = 0.0, 0.0

    def start(self) -> None:
        """Mark the start."""
        if self.on_gpu:
            self.starter.record()
        else:
            self.starter = time.perf_counter()

    def stop(self) -> float:
        """Milliseconds since the last `start()`."""
        if self.on_gpu:
            self.ender.record()
            torch.cuda.synchronize()
            return float(self.starter.elapsed_time(self.ender))
        self.ender = time.perf_counter()
        return (self.ender - self.starter) * 1000.0
