"""PreciseBN: BatchNorm statistics recomputed over many training batches at the end of every training pass."""

from __future__ import annotations

import torch

from trainwright.callbacks.base import Callback, PhaseContext
from trainwright.distributed import compute_precise_bn_stats, get_world_size, unwrap_model
from trainwright.training.state import TrainState

__all__ = ["PreciseBN"]


class PreciseBN(Callback):
    """At on_train_loader_end (after the phase callbacks, before validation: the reference's point), recompute
    the BatchNorm running statistics of the model, and of the EMA model when EMA is on, as plain averages over
    about `batch_size` training samples (`compute_precise_bn_stats`).

    `batch_size` None means the reference's default: one loader batch per process, i.e.
    loader.batch_size * world_size ** 2 samples over all processes.
    """

    def __init__(self, state: TrainState, batch_size: int | None):
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):  # fmt: skip
            raise ValueError(f"precise_bn_batch_size must be a positive integer or None, got {batch_size!r}")
        self.state = state
        self.batch_size = batch_size

    def on_train_loader_end(self, context: PhaseContext) -> None:
        state, world = self.state, get_world_size()
        size = self.batch_size or (getattr(state.train_loader, "batch_size", None) or 1) * world * world
        models = [unwrap_model(state.net)] + ([state.ema.ema] if state.ema is not None else [])
        with torch.no_grad():
            for model in models:
                compute_precise_bn_stats(model, state.train_loader, size, world)
