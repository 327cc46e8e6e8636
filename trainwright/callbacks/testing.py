"""Callbacks that record what the loop did, for tests."""

from __future__ import annotations

from trainwright.callbacks.base import Phase, PhaseCallback, PhaseContext

__all__ = ["TestLRCallback", "PhaseContextTestCallback"]


class TestLRCallback(PhaseCallback):
    """Appends the first param group's LR to `lr_placeholder` at each validation end (after every LR update
    of the epoch). Epochs that skip validation (run_validation_freq) append nothing."""

    __test__ = False  # not a pytest test class

    def __init__(self, lr_placeholder: list):
        super().__init__(Phase.VALIDATION_EPOCH_END)
        self.lr_placeholder = lr_placeholder

    def __call__(self, context: PhaseContext) -> None:
        self.lr_placeholder.append(context.optimizer.param_groups[0]["lr"])


class PhaseContextTestCallback(PhaseCallback):
    """Keeps the last context seen at `phase` in `self.context`."""

    def __init__(self, phase: Phase | str):
        super().__init__(phase)
        self.context: PhaseContext | None = None

    def __call__(self, context: PhaseContext) -> None:
        self.context = context
