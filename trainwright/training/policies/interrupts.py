"""InterruptCheck: Ctrl-C stops a run at the next batch boundary, so the interrupt path always runs cleanly."""

from __future__ import annotations

import logging
import signal
import threading

from trainwright.callbacks.base import Callback, PhaseContext
from trainwright.training.state import TrainState

__all__ = ["InterruptCheck"]

logger = logging.getLogger("trainwright")


class InterruptCheck(Callback):
    """Turns Ctrl-C into a stop at the next batch boundary: the loop then ends as interrupted (on_training_end
    runs and saves ckpt_interrupted.pth, ckpt_latest.pth stays the last finished epoch's).

    While the run lasts it takes over each of SIGINT and SIGTERM whose handler is Python's default Ctrl-C
    handler (`signal.default_int_handler`: SIGINT by default, SIGTERM when the command line asks for it), in the
    main thread. The first signal is recorded in `state.interrupt_signal` and raises KeyboardInterrupt at the
    next batch or pass boundary, never inside a library call that could swallow it or inside a write; a
    second one raises at once. First in the callback order, so its handlers are restored first at the end.
    """

    def __init__(self, state: TrainState):
        self.state = state
        self._previous: dict[int, object] = {}

    def on_training_start(self, context: PhaseContext) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is signal.default_int_handler:
                self._previous[signum] = signal.signal(signum, self._request_stop)

    def _request_stop(self, signum: int, frame) -> None:
        if self.state.interrupt_signal is not None:
            raise KeyboardInterrupt(signal.Signals(signum).name)
        self.state.interrupt_signal = signum
        logger.warning("%s: the run stops at the end of this batch and saves; send it again to stop at once",
                       signal.Signals(signum).name)  # fmt: skip

    def _stop_if_requested(self, context: PhaseContext) -> None:
        if self.state.interrupt_signal is not None:
            raise KeyboardInterrupt(signal.Signals(self.state.interrupt_signal).name)

    on_train_loader_start = _stop_if_requested
    on_train_batch_end = _stop_if_requested
    on_validation_loader_start = _stop_if_requested
    on_validation_batch_end = _stop_if_requested

    def on_training_end(self, context: PhaseContext) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
