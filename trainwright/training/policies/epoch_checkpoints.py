"""EpochCheckpoints: ckpt_latest.pth after every epoch (what resume reads), ckpt_epoch_<N>.pth, and Ctrl-C."""

from __future__ import annotations

from collections.abc import Iterable

from trainwright.callbacks.base import Callback, PhaseContext
from trainwright.nn.checkpoint_keys import (
    INTERRUPTED_AT,
    INTERRUPTED_CHECKPOINT,
    LATEST_CHECKPOINT,
    epoch_checkpoint_name,
)
from trainwright.training.checkpointing import Checkpointer
from trainwright.training.state import TrainState

__all__ = ["EpochCheckpoints"]


class EpochCheckpoints(Callback):
    """Writes ckpt_latest.pth at the end of every epoch and ckpt_epoch_<N>.pth after the (1-based) epochs of
    `save_ckpt_epoch_list`. Placed after every callback whose state changes at the end of an epoch, so
    ckpt_latest holds the state of all of them.

    An interruption (Ctrl-C, or SIGTERM from the command line) never touches ckpt_latest.pth: it stays the
    clean state of the last finished epoch, from which a resume continues exactly as if nothing had happened.
    The weights of the moment of the interruption (mid-epoch, or trained but not yet validated) go to
    ckpt_interrupted.pth, marked with `interrupted_at` {"epoch", "batch_idx"}: to look at, or to continue
    from with resume_path (the interrupted epoch then restarts from its beginning with those weights).
    """

    def __init__(self, state: TrainState, checkpointer: Checkpointer, save_ckpt_epoch_list: Iterable[int] = ()):
        self.state = state
        self.checkpointer = checkpointer
        self.epochs = set(save_ckpt_epoch_list)
        self._last_valid_results: dict[str, float] = {}

    def on_epoch_end(self, context: PhaseContext) -> None:
        state = self.state
        self._last_valid_results = state.valid_results or self._last_valid_results
        checkpoint = self.checkpointer.build(state.valid_results)
        self.checkpointer.save(LATEST_CHECKPOINT, checkpoint)
        if state.epochs_done in self.epochs:
            self.checkpointer.save(epoch_checkpoint_name(state.epochs_done), checkpoint)

    def on_training_end(self, context: PhaseContext) -> None:
        state = self.state
        if state.interrupted:
            epoch = state.epoch if state.epoch is not None else state.epochs_done
            extra = {INTERRUPTED_AT: {"epoch": int(epoch), "batch_idx": state.batch.index}}
            self.checkpointer.save(INTERRUPTED_CHECKPOINT, self.checkpointer.build(self._last_valid_results, extra))
