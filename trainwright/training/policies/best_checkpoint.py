"""BestCheckpointKeeper: whether a validation improved the watched metric, and ckpt_best.pth when it did."""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Callable, Mapping

from trainwright.callbacks.base import Callback, PhaseContext
from trainwright.logging import check_file_name
from trainwright.training.checkpointing import Checkpointer
from trainwright.training.state import TrainState

__all__ = ["BestCheckpointKeeper"]

logger = logging.getLogger("trainwright")


class BestCheckpointKeeper(Callback):
    """Owns `metric_to_watch` and its comparison, picked once, and keeps ckpt_best (`ckpt_best_name`).

    metric_to_watch None means the first validation metric, or the first loss item when there is none (then
    lower is better whatever `greater_is_better` says); it is decided at the first validation and published
    in `state.metric_to_watch`. After each validation it sets `state.new_best` and `state.best_metric` (a NaN or
    infinite value is never the best: it is warned about with its epoch and the best so far stands); at the
    end of the epoch it writes the checkpoint (with the EMA weights as `net` when EMA is on) if `save`, and
    logs why it saved or not.
    """

    state_key = "best_checkpoint"

    def __init__(self, state: TrainState, checkpointer: Checkpointer, metric_to_watch: str | None,
                 greater_is_better: bool, ckpt_best_name: str, save: bool = True):  # fmt: skip
        self.state = state
        self.checkpointer = checkpointer
        self.greater_is_better = bool(greater_is_better)
        self.ckpt_best_name = check_file_name("training_params.ckpt_best_name", ckpt_best_name)
        self.save = save
        self._is_better: Callable[[float, float], bool] | None = None
        self._verdict = ""
        self._configured = metric_to_watch
        state.metric_to_watch = metric_to_watch

    # --- the decision ------------------------------------------------------------------------------------------

    def on_train_loader_start(self, context: PhaseContext) -> None:
        self.state.new_best = False

    def on_validation_loader_end(self, context: PhaseContext) -> None:
        state = self.state
        results = state.metrics_dict
        name = self._watched(results)
        value, best = float(results[name]), state.best_metric
        if best is not None and not math.isfinite(best):  # written by a version that let a NaN become the best
            best = None
        if not math.isfinite(value):
            state.new_best = False
            self._verdict = f"{name} is {value}: a NaN or infinite value never counts as the best; {self.ckpt_best_name} kept"
            logger.warning("Epoch %d: %s is %s: a NaN or infinite value never counts as the best; %s kept",
                           state.epoch + 1, name, value, self.ckpt_best_name)  # fmt: skip
            return
        state.new_best = best is None or self._is_better(value, best)
        if state.new_best:
            state.best_metric = value
            first = "the first validation" if best is None else f"better than the best so far {best:.6g}"
            self._verdict = f"{name} {value:.6g} is {first}: {self.ckpt_best_name} {self._written()}"
        else:
            self._verdict = f"{name} {value:.6g} is not better than the best {best:.6g}: {self.ckpt_best_name} kept"

    def _watched(self, results: Mapping[str, float]) -> str:
        """metric_to_watch, decided (with its comparison) on the first results it sees."""
        state = self.state
        if state.metric_to_watch is None:
            metrics = [k for k in results if k not in state.loss_names]
            state.metric_to_watch = metrics[0] if metrics else next(iter(results))
            if not metrics:
                self.greater_is_better = False
        if state.metric_to_watch not in results:
            raise ValueError(f"metric_to_watch={state.metric_to_watch!r} is not among the validation results "
                             f"{sorted(results)}")  # fmt: skip
        if self._is_better is None:
            self._is_better = operator.gt if self.greater_is_better else operator.lt
        return state.metric_to_watch

    def _written(self) -> str:
        return "written" if self.save and self.checkpointer.enabled else "not written (save_model=False)"

    # --- the file ---------------------------------------------------------------------------------------------

    def on_epoch_end(self, context: PhaseContext) -> None:
        state = self.state
        if not state.valid_results:
            return
        logger.info("Epoch %d: %s", state.epoch + 1, self._verdict)
        if state.new_best and self.save:
            checkpoint = self.checkpointer.build(state.valid_results)
            if state.ema is not None:
                self.checkpointer.save_weights(self.ckpt_best_name, checkpoint, state.ema.state_dict())
            else:
                self.checkpointer.save(self.ckpt_best_name, checkpoint)

    # --- the reference's context methods, and resume ----------------------------------------------------------

    def set_ckpt_best_name(self, name: str) -> None:
        """Write the best checkpoint under `name` (a plain file name) from now on."""
        self.ckpt_best_name = check_file_name("ckpt_best_name", name)

    def reset_best_metric(self) -> None:
        """Forget the best value: the next validation counts as an improvement."""
        self.state.best_metric = None

    def state_dict(self) -> dict:
        """The decided metric and direction (a resumed run keeps comparing what it compared)."""
        return {"metric_to_watch": self.state.metric_to_watch, "greater_is_better": self.greater_is_better}

    def load_state_dict(self, state_dict: Mapping) -> None:
        if self._configured is None:  # decided by the first run; a configured metric_to_watch stands as given
            self.state.metric_to_watch = state_dict["metric_to_watch"]
            self.greater_is_better = bool(state_dict["greater_is_better"])
