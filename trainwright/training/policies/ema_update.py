"""EMAUpdate: the exponential moving average of the weights follows every optimizer step."""

from __future__ import annotations

from trainwright.callbacks.base import Callback, PhaseContext
from trainwright.training.state import TrainState

__all__ = ["EMAUpdate"]


class EMAUpdate(Callback):
    """After each optimizer step, blends the weights into `state.ema` (ema_params: decay, decay_type, beta).

    The decay schedule runs over the run's batches: step = state.global_step of
    train_loader_len * max_epochs. Placed before the phase callbacks, which see the updated average.
    """

    def __init__(self, state: TrainState):
        if state.ema is None:
            raise ValueError("EMAUpdate needs a TrainState built with ema=True")
        self.state = state

    def on_train_batch_gradient_step_end(self, context: PhaseContext) -> None:
        state = self.state
        if state.ema is None:  # switched off by context_methods.set_ema(False)
            return
        state.ema.update(state.net, step=state.global_step, total_steps=state.train_loader_len * state.params.max_epochs)
