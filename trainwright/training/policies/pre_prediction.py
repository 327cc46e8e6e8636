"""PrePrediction: the reference's `pre_prediction_callback`, rewriting each training batch before the forward."""

from __future__ import annotations

from collections.abc import Callable

from trainwright.callbacks.base import Callback, PhaseContext
from trainwright.training.state import TrainState

__all__ = ["PrePrediction"]


class PrePrediction(Callback):
    """Calls ``inputs, targets = fn(inputs, targets, batch_idx)`` on every training batch (not on validation).

    It is the first callback, so every other one (and the model) sees the rewritten batch, as in the reference,
    which calls it before on_train_batch_start. Multi-scale training is
    `trainwright.callbacks.multiscale.DetectionMultiscalePrePredictionCallback`.
    """

    def __init__(self, state: TrainState, fn: Callable):
        if not callable(fn):
            raise TypeError(f"pre_prediction_callback must be callable as (inputs, targets, batch_idx) -> "
                            f"(inputs, targets), got {fn!r}")  # fmt: skip
        self.state = state
        self.fn = fn

    def on_train_batch_start(self, context: PhaseContext) -> None:
        batch = self.state.batch
        out = self.fn(batch.inputs, batch.target, batch.index)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError(f"pre_prediction_callback {self.fn!r} must return (inputs, targets), got "
                            f"{type(out).__name__}")  # fmt: skip
        batch.inputs, batch.target = out
