"""Multi-stage training: callbacks that change the training objects once a given epoch starts."""

from __future__ import annotations

from typing import Any

from trainwright.callbacks.base import Phase, PhaseCallback, PhaseContext

__all__ = ["TrainingStageSwitchCallbackBase", "YoloXTrainingStageSwitchCallback"]


class TrainingStageSwitchCallbackBase(PhaseCallback):
    """At the start of epoch `next_stage_start_epoch`, calls `apply_stage_change(context)` once.

    A run resumed past that epoch applies the change at its first epoch, so the later stage is never lost.
    Subclasses implement `apply_stage_change` by changing the objects of the context (dataset, criterion, ...).
    """

    def __init__(self, next_stage_start_epoch: int):
        super().__init__(Phase.TRAIN_EPOCH_START)
        if isinstance(next_stage_start_epoch, bool) or not isinstance(next_stage_start_epoch, int):
            raise TypeError(f"next_stage_start_epoch must be an int, got {next_stage_start_epoch!r}")
        if next_stage_start_epoch < 0:
            raise ValueError(f"next_stage_start_epoch must be >= 0, got {next_stage_start_epoch}")
        self.next_stage_start_epoch = next_stage_start_epoch
        self.stage_changed = False

    def on_training_start(self, context: PhaseContext) -> None:
        self.stage_changed = False
        super().on_training_start(context)

    def __call__(self, context: PhaseContext) -> None:
        if context.epoch is None:
            raise ValueError(f"{type(self).__name__} needs context.epoch at the start of a training epoch, got None")
        if not self.stage_changed and context.epoch >= self.next_stage_start_epoch:
            self.apply_stage_change(context)
            self.stage_changed = True

    def apply_stage_change(self, context: PhaseContext) -> None:
        """Change the context's objects for the next stage (called once, at next_stage_start_epoch)."""
        raise NotImplementedError(f"{type(self).__name__} must implement apply_stage_change(context)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(next_stage_start_epoch={self.next_stage_start_epoch})"


def _mosaic_switch_owner(dataset: Any) -> Any:
    """The dataset itself, or the one it wraps (Subset-style `.dataset` chain), that has set_mosaic_enabled."""
    current = dataset
    while current is not None:
        if callable(getattr(current, "set_mosaic_enabled", None)):
            return current
        current = getattr(current, "dataset", None)
    raise TypeError(
        f"the training dataset ({type(dataset).__name__}) has no set_mosaic_enabled(enabled) method, "
        "so the YOLOX stage switch cannot turn mosaic and mixup off"
    )


class YoloXTrainingStageSwitchCallback(TrainingStageSwitchCallbackBase):
    """The last YOLOX stage: mosaic and mixup off in the training dataset, the L1 box loss on.

    Each DataLoader worker holds its own copy of the dataset, so the change reaches the workers only when
    new ones start: every epoch with persistent_workers=False, or at the next epoch with the loaders of
    `trainwright.data.build_detection_loader` (they restart their persistent workers when the switch happens).
    """

    def __init__(self, next_stage_start_epoch: int = 285):
        super().__init__(next_stage_start_epoch)

    def on_training_start(self, context: PhaseContext) -> None:
        # Fail at the start of training, not hundreds of epochs later when the switch is due.
        if context.train_loader is not None and context.criterion is not None:
            self._switch_targets(context)
        super().on_training_start(context)

    def apply_stage_change(self, context: PhaseContext) -> None:
        dataset, criterion = self._switch_targets(context)
        dataset.set_mosaic_enabled(False)
        criterion.use_l1 = True
        restart = getattr(context.train_loader, "restart_workers", None)
        if callable(restart):
            restart()

    def _switch_targets(self, context: PhaseContext) -> tuple[Any, Any]:
        """(dataset with set_mosaic_enabled, criterion with use_l1) of the context, or a clear error."""
        if context.train_loader is None or context.criterion is None:
            raise ValueError(
                f"{type(self).__name__} needs context.train_loader and context.criterion, got "
                f"train_loader={context.train_loader!r}, criterion={context.criterion!r}"
            )
        loader = context.train_loader
        if getattr(loader, "persistent_workers", False) and not callable(getattr(loader, "restart_workers", None)):
            raise ValueError(
                "the training DataLoader uses persistent_workers=True: its workers would keep mosaic on; "
                "build it with trainwright.data.build_detection_loader or with persistent_workers=False"
            )
        if not hasattr(context.criterion, "use_l1"):
            raise TypeError(f"the criterion ({type(context.criterion).__name__}) has no use_l1 attribute to turn on")
        return _mosaic_switch_owner(context.train_loader.dataset), context.criterion
