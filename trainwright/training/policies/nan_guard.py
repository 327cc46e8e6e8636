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
    True`, e.g. an early stop that checks the loss) it only warns, once per epoch, and leaves the decision to it.
    """

    def __init__(self, state: TrainState, defer: bool = False):
        self.state = state
        self.defer = defer
        self._warned_epoch: int | None = None

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
            if self._warned_epoch != epoch:
                self._warned_epoch = epoch
                logger.warning("loss is %s%s at epoch %d, batch %d; a callback handles non-finite losses, training "
                               "goes on", loss.float().cpu().tolist(), where, epoch, batch_idx)  # fmt: skip
            return
        latest = os.path.join(self.state.experiment_dir, LATEST_CHECKPOINT)
        raise FloatingPointError(f"loss is {loss.float().cpu().tolist()}{where} at epoch {epoch}, batch {batch_idx}: "
                                 f"training stopped; the last good checkpoint (if any) is {latest}")
