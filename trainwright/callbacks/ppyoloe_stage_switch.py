"""PP-YOLOE's two training stages: the static (ATSS) assigner first, the task-aligned assigner afterwards."""

from __future__ import annotations

from trainwright.callbacks.base import PhaseContext
from trainwright.callbacks.stage_switch import TrainingStageSwitchCallbackBase

__all__ = ["PPYoloETrainingStageSwitchCallback"]


class PPYoloETrainingStageSwitchCallback(TrainingStageSwitchCallbackBase):
    """At the start of epoch ``static_assigner_end_epoch`` (0-based), turns the criterion's static assigner off.

    The criterion is a PPYoloELoss (anything with a ``use_static_assigner`` attribute): epochs
    0 .. static_assigner_end_epoch - 1 assign anchors with ATSS, later epochs with the task-aligned assigner.
    A run resumed at or after that epoch switches at its first epoch.
    """

    def __init__(self, static_assigner_end_epoch: int):
        super().__init__(next_stage_start_epoch=static_assigner_end_epoch)
        self.static_assigner_end_epoch = static_assigner_end_epoch

    def on_training_start(self, context: PhaseContext) -> None:
        # Fail at the start of training, not many epochs later when the switch is due.
        if context.criterion is not None:
            self._check_criterion(context.criterion)
        super().on_training_start(context)

    def apply_stage_change(self, context: PhaseContext) -> None:
        self._check_criterion(context.criterion)
        context.criterion.use_static_assigner = False

    def _check_criterion(self, criterion) -> None:
        if not hasattr(criterion, "use_static_assigner"):
            raise TypeError(f"{type(self).__name__} needs a PPYoloELoss criterion (with use_static_assigner), "
                            f"got {type(criterion).__name__}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(static_assigner_end_epoch={self.static_assigner_end_epoch})"
