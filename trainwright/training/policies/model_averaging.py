"""ModelAveraging: average_model.pth, the average of the weights of the best validated epochs."""

from __future__ import annotations

import math

from trainwright.callbacks.base import Callback, PhaseContext
from trainwright.distributed import unwrap_model
from trainwright.nn.checkpoint_keys import AVERAGE_CHECKPOINT, EMA_NET
from trainwright.training.averaging import BestModelsAverager
from trainwright.training.checkpointing import Checkpointer
from trainwright.training.policies.best_checkpoint import BestCheckpointKeeper
from trainwright.training.state import TrainState

__all__ = ["ModelAveraging"]


class ModelAveraging(Callback):
    """Keeps the validated weights (EMA when on) of the `number_of_models_to_average` best epochs, ranked by the
    keeper's metric and comparison, and writes their average to average_model.pth whenever that set changes.

    The average is published in `state.averaged_weights`; after the last epoch the loop validates it and fires
    on_average_best_models_validation_end. The kept weights live in memory only: a resumed run starts a new set.
    """

    def __init__(self, state: TrainState, checkpointer: Checkpointer, keeper: BestCheckpointKeeper, n: int):
        if n < 1:
            raise ValueError(f"number_of_models_to_average must be >= 1, got {n}")
        self.state = state
        self.checkpointer = checkpointer
        self.keeper = keeper
        self.n = n
        self.averager: BestModelsAverager | None = None  # built at the first validation, once the keeper decided

    def on_epoch_end(self, context: PhaseContext) -> None:
        state = self.state
        if not state.valid_results:
            return
        if self.averager is None:
            self.averager = BestModelsAverager(self.n, self.keeper.greater_is_better)
        value = state.valid_results[state.metric_to_watch]
        if not math.isfinite(value):  # never among the best (the keeper warns)
            return
        if not self.averager.update(unwrap_model(state.eval_net).state_dict(), value):
            return
        state.averaged_weights = self.averager.average()
        checkpoint = self.checkpointer.build(state.valid_results)
        checkpoint.pop(EMA_NET, None)
        self.checkpointer.save_weights(AVERAGE_CHECKPOINT, checkpoint, state.averaged_weights)
