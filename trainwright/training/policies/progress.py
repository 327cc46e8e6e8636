"""What a run shows on the console: progress bars and one line per epoch."""

from __future__ import annotations

import time

from tqdm.auto import tqdm

from trainwright.callbacks.base import Callback, PhaseContext
from trainwright.training.policies.results import epoch_summary
from trainwright.training.state import LoopState, TrainState

__all__ = ["ProgressReporter", "ProgressBar"]


class ProgressReporter(Callback):
    """Base of the console reporters: one among the phase callbacks replaces the default ProgressBar."""


class ProgressBar(ProgressReporter):
    """A tqdm bar per training, validation and test pass (the training one with the loss and images per
    second), and the epoch summary line after each epoch. `enabled=False` (silent_mode, ranks > 0) shows nothing.
    """

    def __init__(self, state: LoopState, enabled: bool = True):
        self.state = state
        self.enabled = enabled
        self._bar = None
        self._seen, self._start = 0, 0.0

    def _open(self, desc: str) -> None:
        if self.enabled:
            self._bar = tqdm(total=self.state.num_batches, desc=desc, leave=False, dynamic_ncols=True, unit="batch")

    def _close(self, context: PhaseContext | None = None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _advance(self, context: PhaseContext | None = None) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def on_train_loader_start(self, context: PhaseContext) -> None:
        self._open(f"Train epoch {self.state.epoch + 1}")  # 1-based, as in the summary line and results.csv
        self._seen, self._start = 0, time.perf_counter()

    def on_train_batch_end(self, context: PhaseContext) -> None:
        if self._bar is None:
            return
        batch = self.state.batch
        self._seen += len(batch.inputs)
        self._bar.update(1)
        if batch.index % 10 == 0 or batch.index == self.state.num_batches - 1:
            rate = self._seen / (time.perf_counter() - self._start)
            self._bar.set_postfix(loss=f"{float(batch.loss.detach()):.4f}", img_s=f"{rate:.1f}")

    on_train_loader_end = _close

    def on_validation_loader_start(self, context: PhaseContext) -> None:
        self._open(f"Validation epoch {self.state.epoch + 1}")

    on_validation_batch_end = _advance
    on_validation_loader_end = _close

    def on_test_loader_start(self, context: PhaseContext) -> None:
        self._open("Test")

    on_test_batch_end = _advance
    on_test_loader_end = _close

    def on_epoch_end(self, context: PhaseContext) -> None:
        if self.enabled and isinstance(self.state, TrainState):
            tqdm.write(epoch_summary(self.state))

    on_training_end = _close
