"""NaNGuard: a non-finite training loss ends the run before its backward pass can spoil the weights."""

from __future__ import annotations

import logging
import math
import os

from trainwright.callbacks.base import Callback, PhaseContext
from trainwright.distributed import is_distributed, ranks_where
from trainwright.nn.checkpoint_keys import LATEST_CHECKPOINT
from trainwright.training.state import TrainState

__all__ = ["NaNGuard"]

logger = logging.getLogger("trainwright")


class NaNGuard(Callback):
    """Raises FloatingPointError naming the epoch and batch when a training loss is NaN or infinite.

    It runs first at on_train_batch_loss_end, so no other callback sees the batch and the weights (and the last
    checkpoint) stay finite. Under torch.distributed the processes exchange their flags, so a non-finite loss on
    one stops them all, naming its rank. With `defer=True` (a phase callback declares `handles_non_finite_loss =
    True`, e.g. `EarlyStop(check_finite=True)`) training goes on and that callback decides: the batch still counts
    in the epoch's loss average (which becomes non-finite, as the callback expects), but its backward pass and
    optimizer step are skipped on every process (`state.batch.loss` is set to None), so the weights stay finite.
    It warns once per epoch, at the first such batch.
    """

    def __init__(self, state: TrainState, defer: bool = False):
        self.state = state
        self.defer = defer
        self._skipped = 0  # batches skipped in this epoch

    def on_train_loader_start(self, context: PhaseContext) -> None:
        self._skipped = 0

    def on_train_batch_loss_end(self, context: PhaseContext) -> None:
        loss = self.state.batch.loss.detach()
        # One scalar read is far cheaper than isfinite + all + bool on a per-batch path.
        finite = math.isfinite(loss.item()) if loss.numel() == 1 else bool(loss.isfinite().all())
        where = ""
        if is_distributed():  # every process stops together, from the same flags
            ranks = ranks_where(not finite)
            finite, where = not ranks, f" here, non-finite on rank(s) {ranks}"
        if finite:
            return
        epoch, batch_idx = self.state.epoch, self.state.batch.index
        if self.defer:
            if not self._skipped:
                logger.warning("loss is %s%s at epoch %d, batch %d: its update is skipped; a callback that handles "
                               "non-finite losses decides whether training stops", loss.float().cpu().tolist(),
                               where, epoch, batch_idx)  # fmt: skip
            self._skipped += 1
            self.state.batch.loss = None
            return
        latest = os.path.join(self.state.experiment_dir, LATEST_CHECKPOINT)
        raise FloatingPointError(f"loss is {loss.float().cpu().tolist()}{where} at epoch {epoch}, batch {batch_idx}: "
                                 f"training stopped; the last good checkpoint (if any) is {latest}")
