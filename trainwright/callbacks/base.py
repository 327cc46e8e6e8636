"""The callback protocol of the training loop: events, the shared context, the legacy Phase API.

Events of one `Trainer.train` run, in order::

    on_training_start                                   Phase.PRE_TRAINING
    for epoch:
        on_train_loader_start                           Phase.TRAIN_EPOCH_START
        for batch in train_loader:
            on_train_batch_start
            on_train_batch_loss_end                     Phase.TRAIN_BATCH_END
            on_train_batch_backward_end
            on_train_batch_gradient_step_start          (only on batches where the optimizer steps)
            on_train_batch_gradient_step_end            Phase.TRAIN_BATCH_STEP (idem)
            on_train_batch_end
        on_train_loader_end                             Phase.TRAIN_EPOCH_END
        on_validation_loader_start                      (epochs that validate, see run_validation_freq)
        for batch in valid_loader:
            on_validation_batch_start
            on_validation_batch_end                     Phase.VALIDATION_BATCH_END
        on_validation_loader_end                        Phase.VALIDATION_EPOCH_END
        on_validation_end_best_epoch                    Phase.VALIDATION_END_BEST_EPOCH (on improvement)
        on_epoch_end                                    (trainwright's own: checkpoints and results are written)
    on_average_best_models_validation_end               Phase.AVERAGE_BEST_MODELS_VALIDATION_EPOCH_END
    on_training_end                                     Phase.POST_TRAINING (also after an error or Ctrl-C)

`Trainer.test` fires the test events: on_test_loader_start, then on_test_batch_start and on_test_batch_end
(Phase.TEST_BATCH_END) per batch, then on_test_loader_end (Phase.TEST_END).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

__all__ = ["Phase", "PhaseContext", "Callback", "PhaseCallback", "CallbackHandler", "ContextSgMethods"]


class Phase(str, enum.Enum):
    """The moments a legacy `PhaseCallback` can be attached to (each maps to one `Callback` event)."""

    PRE_TRAINING = "PRE_TRAINING"
    TRAIN_BATCH_END = "TRAIN_BATCH_END"
    TRAIN_BATCH_STEP = "TRAIN_BATCH_STEP"
    TRAIN_EPOCH_START = "TRAIN_EPOCH_START"
    TRAIN_EPOCH_END = "TRAIN_EPOCH_END"
    VALIDATION_BATCH_END = "VALIDATION_BATCH_END"
    VALIDATION_EPOCH_END = "VALIDATION_EPOCH_END"
    VALIDATION_END_BEST_EPOCH = "VALIDATION_END_BEST_EPOCH"
    TEST_BATCH_END = "TEST_BATCH_END"
    TEST_END = "TEST_END"
    AVERAGE_BEST_MODELS_VALIDATION_EPOCH_END = "AVERAGE_BEST_MODELS_VALIDATION_EPOCH_END"
    POST_TRAINING = "POST_TRAINING"


# Every attribute a callback may read (the reference's, less checkpoint_params, architecture and arch_params:
# trainwright takes a built model and has no checkpoint parameters). Those that do not apply read None.
CONTEXT_ATTRIBUTES = (
    "epoch", "batch_idx", "optimizer", "metrics_dict", "inputs", "preds", "target", "metrics_compute_fn",
    "loss_avg_meter", "loss_log_items", "criterion", "device", "experiment_name", "ckpt_dir",
    "checkpoints_dir_path", "net", "lr_warmup_epochs", "sg_logger", "train_loader", "valid_loader",
    "test_loader", "training_params", "ddp_silent_mode", "metric_to_watch", "valid_metrics", "train_metrics",
    "test_metrics", "ema_model", "loss_logging_items_names", "additional_batch_items", "stop_training",
    "context_methods",
)  # fmt: skip


class PhaseContext:
    """What a callback sees of the run; attributes are the keyword arguments, unknown names allowed.

    The documented attributes (`CONTEXT_ATTRIBUTES`: epoch, batch_idx, inputs, target, preds, loss_log_items,
    optimizer, net, ema_model, criterion, metrics_dict, sg_logger, checkpoints_dir_path (alias ckpt_dir),
    train_loader, valid_loader, training_params, device, lr_warmup_epochs, metrics_compute_fn (the metrics of
    the current pass), loss_avg_meter, loss_logging_items_names, ...) read None until set. During training
    the context is a view of the trainer's state (`trainwright.training.context.StateContext`).
    A callback may set `context.stop_training = True` to end training after the current epoch.
    """

    def __init__(self, **kwargs: Any):
        for name in CONTEXT_ATTRIBUTES:
            setattr(self, name, None)
        self.update_context(**kwargs)

    def update_context(self, **kwargs: Any) -> None:
        """Set (or overwrite) the given attributes."""
        for name, value in kwargs.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        filled = sorted(k for k, v in vars(self).items() if v is not None)
        return f"PhaseContext({', '.join(filled)})"


class Callback:
    """Base class of everything that hooks into the loop: override the events you need (all no-ops here)."""

    def on_training_start(self, context: PhaseContext) -> None:
        """Once, before the first epoch (optimizer, net, loaders, sg_logger, ... are set)."""

    def on_train_loader_start(self, context: PhaseContext) -> None:
        """Each epoch, before the first training batch (context.epoch is set)."""

    def on_train_batch_start(self, context: PhaseContext) -> None:
        """Each training batch, once inputs/target are on the device (batch_idx, inputs, target set)."""

    def on_train_batch_loss_end(self, context: PhaseContext) -> None:
        """After the forward pass and the loss (preds, loss_log_items set)."""

    def on_train_batch_backward_end(self, context: PhaseContext) -> None:
        """After loss.backward()."""

    def on_train_batch_gradient_step_start(self, context: PhaseContext) -> None:
        """Before the optimizer step (only on accumulation boundaries); gradients are unscaled when clipping."""

    def on_train_batch_gradient_step_end(self, context: PhaseContext) -> None:
        """After the optimizer step: the place for per-step LR updates."""

    def on_train_batch_end(self, context: PhaseContext) -> None:
        """After everything of a training batch."""

    def on_train_loader_end(self, context: PhaseContext) -> None:
        """Each epoch, after the last training batch (metrics_dict holds the training metrics)."""

    def on_validation_loader_start(self, context: PhaseContext) -> None:
        """Each validated epoch, before the first validation batch."""

    def on_validation_batch_start(self, context: PhaseContext) -> None:
        """Each validation batch, once inputs/target are on the device."""

    def on_validation_batch_end(self, context: PhaseContext) -> None:
        """After the forward pass, loss and metric update of a validation batch."""

    def on_validation_loader_end(self, context: PhaseContext) -> None:
        """After the last validation batch (metrics_dict holds the validation metrics)."""

    def on_validation_end_best_epoch(self, context: PhaseContext) -> None:
        """After validation, only when metric_to_watch improved."""

    def on_epoch_end(self, context: PhaseContext) -> None:
        """Once per epoch, after training and (when it ran) validation: where checkpoints and results are written.

        trainwright's own event (the reference has none); no Phase maps to it.
        """

    def on_average_best_models_validation_end(self, context: PhaseContext) -> None:
        """After the averaged model was validated (average_best_models=True)."""

    def on_test_loader_start(self, context: PhaseContext) -> None:
        """Before the first test batch."""

    def on_test_batch_start(self, context: PhaseContext) -> None:
        """Each test batch, once inputs/target are on the device."""

    def on_test_batch_end(self, context: PhaseContext) -> None:
        """After the forward pass and metric update of a test batch."""

    def on_test_loader_end(self, context: PhaseContext) -> None:
        """After the last test batch (metrics_dict holds the test metrics)."""

    def on_training_end(self, context: PhaseContext) -> None:
        """Once, after training (also after an exception or Ctrl-C)."""


# Which event fires each legacy Phase (PhaseCallback implements exactly this mapping).
EVENT_OF_PHASE = {
    Phase.PRE_TRAINING: "on_training_start",
    Phase.TRAIN_EPOCH_START: "on_train_loader_start",
    Phase.TRAIN_BATCH_END: "on_train_batch_loss_end",
    Phase.TRAIN_BATCH_STEP: "on_train_batch_gradient_step_end",
    Phase.TRAIN_EPOCH_END: "on_train_loader_end",
    Phase.VALIDATION_BATCH_END: "on_validation_batch_end",
    Phase.VALIDATION_EPOCH_END: "on_validation_loader_end",
    Phase.VALIDATION_END_BEST_EPOCH: "on_validation_end_best_epoch",
    Phase.AVERAGE_BEST_MODELS_VALIDATION_EPOCH_END: "on_average_best_models_validation_end",
    Phase.TEST_BATCH_END: "on_test_batch_end",
    Phase.TEST_END: "on_test_loader_end",
    Phase.POST_TRAINING: "on_training_end",
}
EVENTS = tuple(name for name in vars(Callback) if name.startswith("on_"))


def _as_phase(phase: Phase | str) -> Phase:
    if isinstance(phase, Phase):
        return phase
    try:
        return Phase(str(phase).upper())
    except ValueError:
        raise ValueError(f"phase={phase!r} is not a Phase; expected one of {[p.value for p in Phase]}") from None


class PhaseCallback(Callback):
    """A callback that runs `self(context)` at the single event of its `phase` (the legacy API)."""

    def __init__(self, phase: Phase | str):
        self.phase = _as_phase(phase)

    def __call__(self, context: PhaseContext) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(context)")

    def _fire(self, phase: Phase, context: PhaseContext) -> None:
        if self.phase is phase:
            self(context)

    def on_training_start(self, context: PhaseContext) -> None:
        self._fire(Phase.PRE_TRAINING, context)

    def on_train_loader_start(self, context: PhaseContext) -> None:
        self._fire(Phase.TRAIN_EPOCH_START, context)

    def on_train_batch_loss_end(self, context: PhaseContext) -> None:
        self._fire(Phase.TRAIN_BATCH_END, context)

    def on_train_batch_gradient_step_end(self, context: PhaseContext) -> None:
        self._fire(Phase.TRAIN_BATCH_STEP, context)

    def on_train_loader_end(self, context: PhaseContext) -> None:
        self._fire(Phase.TRAIN_EPOCH_END, context)

    def on_validation_batch_end(self, context: PhaseContext) -> None:
        self._fire(Phase.VALIDATION_BATCH_END, context)

    def on_validation_loader_end(self, context: PhaseContext) -> None:
        self._fire(Phase.VALIDATION_EPOCH_END, context)

    def on_validation_end_best_epoch(self, context: PhaseContext) -> None:
        self._fire(Phase.VALIDATION_END_BEST_EPOCH, context)

    def on_average_best_models_validation_end(self, context: PhaseContext) -> None:
        self._fire(Phase.AVERAGE_BEST_MODELS_VALIDATION_EPOCH_END, context)

    def on_test_batch_end(self, context: PhaseContext) -> None:
        self._fire(Phase.TEST_BATCH_END, context)

    def on_test_loader_end(self, context: PhaseContext) -> None:
        self._fire(Phase.TEST_END, context)

    def on_training_end(self, context: PhaseContext) -> None:
        self._fire(Phase.POST_TRAINING, context)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(phase={self.phase.name})"


class CallbackHandler(Callback):
    """Runs each event on every callback, in list order (`callbacks` may be appended to later)."""

    def __init__(self, callbacks: Iterable[Callback]):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances, got {type(cb).__name__}: {cb!r}")

    def __repr__(self) -> str:
        return f"CallbackHandler({self.callbacks!r})"

    def on_training_start(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_training_start(context)

    def on_train_loader_start(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_train_loader_start(context)

    def on_train_batch_start(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_start(context)

    def on_train_batch_loss_end(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_loss_end(context)

    def on_train_batch_backward_end(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_backward_end(context)

    def on_train_batch_gradient_step_start(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_gradient_step_start(context)

    def on_train_batch_gradient_step_end(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_gradient_step_end(context)

    def on_train_batch_end(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_end(context)

    def on_train_loader_end(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_train_loader_end(context)

    def on_validation_loader_start(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_validation_loader_start(context)

    def on_validation_batch_start(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_validation_batch_start(context)

    def on_validation_batch_end(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_validation_batch_end(context)

    def on_validation_loader_end(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_validation_loader_end(context)

    def on_validation_end_best_epoch(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_validation_end_best_epoch(context)

    def on_epoch_end(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(context)

    def on_average_best_models_validation_end(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_average_best_models_validation_end(context)

    def on_test_loader_start(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_test_loader_start(context)

    def on_test_batch_start(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_test_batch_start(context)

    def on_test_batch_end(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_test_batch_end(context)

    def on_test_loader_end(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_test_loader_end(context)

    def on_training_end(self, context: PhaseContext) -> None:
        for cb in self.callbacks:
            cb.on_training_end(context)


class ContextSgMethods:
    """Run methods handed to callbacks as attributes (`context.context_methods`), e.g.
    ``ContextSgMethods(reset_best_metric=keeper.reset_best_metric)``; empty when built without arguments.

    During training, at the epoch-level events: ``get_net`` (the model, a property), ``set_net(net)``,
    ``set_ckpt_best_name(name)``, ``reset_best_metric()``, ``validate_epoch(epoch)`` and ``set_ema(val)``
    (`trainwright.training.run_methods.RunMethods`); batch events get an empty one, as in the reference.
    """

    def __init__(self, **methods: Any):
        for name, fn in methods.items():
            setattr(self, name, fn)
