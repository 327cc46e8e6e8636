"""`StateContext`: the reference API's PhaseContext as a view of a LoopState / TrainState.

Each documented attribute reads (and, where it is the state's own field, writes) the state, so the loop keeps
one typed state and callbacks written for the reference see their usual names.

As in the reference, `context_methods` (get_net, set_net, set_ckpt_best_name, reset_best_metric,
validate_epoch, set_ema) is available to the epoch-level events only (training start and end, the start
and end of the training and validation passes, a new best, the end of an epoch); batch events see the
same context through `batch_view()`, where it is an empty `ContextSgMethods`.
"""

from __future__ import annotations

from typing import Any

from trainwright.callbacks.base import CONTEXT_ATTRIBUTES, ContextSgMethods, PhaseContext
from trainwright.training.state import LoopState

__all__ = ["StateContext"]

# context attribute -> path in the state ("batch.inputs" is state.batch.inputs). Training-only fields read
# None in a test pass.
_FIELDS = {
    "epoch": "epoch",
    "batch_idx": "batch.index",
    "inputs": "batch.inputs",
    "target": "batch.target",
    "additional_batch_items": "batch.extras",
    "preds": "batch.preds",
    "loss_log_items": "batch.loss_items",
    "metrics_dict": "metrics_dict",
    "metrics_compute_fn": "metrics",
    "loss_avg_meter": "losses",
    "loss_logging_items_names": "loss_names",
    "net": "net",
    "criterion": "criterion",
    "device": "device",
    "experiment_name": "experiment_name",
    "checkpoints_dir_path": "experiment_dir",
    "ckpt_dir": "experiment_dir",
    "sg_logger": "sg_logger",
    "optimizer": "optimizer",
    "ema_model": "ema",
    "train_loader": "train_loader",
    "valid_loader": "valid_loader",
    "training_params": "params",
    "train_metrics": "train_metrics",
    "valid_metrics": "valid_metrics",
    "metric_to_watch": "metric_to_watch",
    "stop_training": "stop_training",
}


def _state_field(path: str) -> property:
    owner, _, name = path.rpartition(".")

    def target(view: StateContext):
        state = view._state
        return getattr(state, owner) if owner else state

    def get(view: StateContext) -> Any:
        return getattr(target(view), name, None)

    def set_(view: StateContext, value: Any) -> None:
        setattr(target(view), name, value)

    return property(get, set_, doc=f"state.{path}")


class StateContext(PhaseContext):
    """A PhaseContext whose documented attributes are those of `state` (see `_FIELDS`).

    `lr_warmup_epochs` and `ddp_silent_mode` are read from the parameters and the rank; `context_methods` is an
    empty `ContextSgMethods` unless given; other attributes (test_loader, test_metrics, a callback's own) are
    plain ones, set with `update_context`.
    """

    def __init__(self, state: LoopState, **attributes: Any):
        object.__setattr__(self, "_state", state)
        object.__setattr__(self, "_context_methods", ContextSgMethods())
        for name in CONTEXT_ATTRIBUTES:
            if not hasattr(type(self), name):
                object.__setattr__(self, name, None)
        self.update_context(**attributes)

    @property
    def state(self) -> LoopState:
        """The state this context shows."""
        return self._state

    @property
    def context_methods(self) -> ContextSgMethods:
        """The run's methods for callbacks (see the module docstring)."""
        return self._context_methods

    @context_methods.setter
    def context_methods(self, methods: ContextSgMethods | None) -> None:
        object.__setattr__(self, "_context_methods", methods if methods is not None else ContextSgMethods())

    def batch_view(self) -> StateContext:
        """This context as the batch events see it: the same attributes (one shared set) without context_methods."""
        view = object.__new__(_BatchStateContext)
        view.__dict__ = self.__dict__
        return view

    @property
    def lr_warmup_epochs(self) -> int | None:
        params = getattr(self._state, "params", None)
        return None if params is None else params.lr_warmup_epochs

    @property
    def ddp_silent_mode(self) -> bool:
        return not getattr(self._state, "is_main", True)

    def __repr__(self) -> str:
        return f"StateContext(epoch={self.epoch}, batch_idx={self.batch_idx}, state={type(self._state).__name__})"


for _name, _path in _FIELDS.items():
    setattr(StateContext, _name, _state_field(_path))


class _BatchStateContext(StateContext):
    """`StateContext.batch_view()`: shares every attribute of its context; `context_methods` is empty there."""

    @property
    def context_methods(self) -> ContextSgMethods:
        return ContextSgMethods()

    @context_methods.setter
    def context_methods(self, methods: ContextSgMethods | None) -> None:
        StateContext.context_methods.fset(self, methods)
