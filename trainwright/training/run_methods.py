"""`RunMethods`: what the reference hands to epoch-level callbacks as `context.context_methods`."""

from __future__ import annotations

import logging

from torch import nn

from trainwright.callbacks.base import ContextSgMethods
from trainwright.training.evaluation import NO_EVENTS, evaluate
from trainwright.training.policies.best_checkpoint import BestCheckpointKeeper
from trainwright.training.state import BatchState, TrainState

__all__ = ["RunMethods"]

logger = logging.getLogger("trainwright")


class RunMethods(ContextSgMethods):
    """The run's methods for callbacks, with the reference's names.

    - ``get_net``: the model being trained (a property, as in the reference: read it, do not call it);
    - ``set_net(net)``: train and validate `net` from now on (the optimizer keeps the parameters it was built
      with, as in the reference: a warning says so when `net` has others);
    - ``set_ckpt_best_name(name)``, ``reset_best_metric()``: the best checkpoint's file name, and forgetting the
      best value (the next validation is a new best);
    - ``validate_epoch(epoch=None, silent_mode=False)``: one validation pass of the model validation uses, the
      results as a tuple (loss items, then metrics, as in `metrics_dict`); it fires no event and leaves the
      state of the current pass (metrics_dict, batch, ...) as it was;
    - ``set_ema(val)``: switch the EMA of the weights off (False) or back on (True, only for a run built with
      ema=True).
    """

    def __init__(self, state: TrainState, keeper: BestCheckpointKeeper):
        super().__init__()
        self._state = state
        self._ema = state.ema
        self.set_ckpt_best_name = keeper.set_ckpt_best_name
        self.reset_best_metric = keeper.reset_best_metric

    @property
    def get_net(self) -> nn.Module:
        return self._state.net

    def set_net(self, net: nn.Module) -> None:
        if not isinstance(net, nn.Module):
            raise TypeError(f"set_net needs a torch.nn.Module, got {type(net).__name__}")
        state = self._state
        optimized = {id(p) for group in state.optimizer.param_groups for p in group["params"]}
        if any(id(p) not in optimized for p in net.parameters()):
            logger.warning("set_net: the new model has parameters the optimizer does not update (it keeps the "
                           "parameters it was built with)")  # fmt: skip
        state.net = net.to(state.device)

    def validate_epoch(self, epoch: int | None = None, silent_mode: bool = False) -> tuple:
        state = self._state
        if state.valid_loader is None:
            raise ValueError("validate_epoch needs a valid_loader; this run has none")
        saved = (state.batch, state.metrics, state.losses, state.metrics_dict, state.num_batches)
        state.batch = BatchState()
        try:
            results = evaluate(state, state.eval_net, state.valid_loader, state.valid_metrics, NO_EVENTS, None,
                               state.params.max_valid_batches)  # fmt: skip
        finally:
            state.batch, state.metrics, state.losses, state.metrics_dict, state.num_batches = saved
        return tuple(results.values())

    def set_ema(self, val: bool) -> None:
        if val and self._ema is None:
            raise ValueError("set_ema(True): this run was built without ema=True, so there is no average to use")
        self._state.ema = self._ema if val else None
