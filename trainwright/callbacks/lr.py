"""Learning-rate schedules and warmups as callbacks, selected by name from `training_params`.

Notation used in the formulas below:
  lr0 = initial_lr, W = lr_warmup_epochs, C = lr_cooldown_epochs, E = max_epochs, L = train_loader_len,
  e = context.epoch (0-based), b = context.batch_idx (0-based), A = batch_accumulate, S = lr_warmup_steps.

Per-step schedules run at `Phase.TRAIN_BATCH_STEP` (after the optimizer step of batch b), so the value computed
for (e, b) is the LR of the next optimizer step. Per-epoch ones run at epoch start (warmup) or end (step).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from trainwright.callbacks.base import Callback, Phase, PhaseCallback, PhaseContext

__all__ = [
    "LRCallbackBase",
    "EpochStepWarmupLRCallback",
    "LinearStepWarmupLRCallback",
    "BatchStepLinearWarmupLRCallback",
    "StepLRCallback",
    "PolyLRCallback",
    "CosineLRCallback",
    "ExponentialLRCallback",
    "FunctionLRCallback",
    "LRSchedulerCallback",
    "IllegalLRSchedulerMetric",
    "LRScheduleFunctionError",
]


def _param(training_params: Any, name: str, default: Any = 0) -> Any:
    """`training_params.name`, or `default` when absent or None (so partial params work in tests)."""
    value = getattr(training_params, name, None) if training_params is not None else None
    return default if value is None else value


def _write_lr(cb, optimizer, epoch: int, batch_idx) -> None:
    """Write `cb.lr` into every param group, or delegate to the model when `cb.update_param_groups` is set.

    The model's ``update_param_groups(param_groups, lr, epoch, iter, training_params, total_batch)`` gets the
    optimizer's groups, the new LR, the epoch, the batch index (None for per-epoch schedules), the training
    parameters and the number of batches per epoch; the list it returns becomes the optimizer's groups.
    """
    if not cb.update_param_groups:
        for group in optimizer.param_groups:
            group["lr"] = cb.lr
        return
    model = getattr(cb.net, "module", cb.net)  # unwrap DistributedDataParallel / WrappedModel
    update = getattr(model, "update_param_groups", None)
    if not callable(update):
        raise AttributeError(
            f"{type(cb).__name__}(update_param_groups=True) needs a net with an update_param_groups(param_groups, "
            f"lr, epoch, iter, training_params, total_batch) method; {type(model).__name__} has none"
        )
    groups = update(optimizer.param_groups, cb.lr, epoch, batch_idx, cb.training_params, cb.train_loader_len)
    if not isinstance(groups, list):
        raise TypeError(
            f"{type(model).__name__}.update_param_groups must return the list of param groups, got {groups!r}"
        )
    optimizer.param_groups = groups


class LRCallbackBase(PhaseCallback):
    """Base of the built-in schedules: at its phase, if `is_lr_scheduling_enabled`, run `perform_scheduling`."""

    def __init__(self, phase, initial_lr, update_param_groups, train_loader_len, net, training_params, **kwargs):
        super().__init__(phase)
        self.initial_lr = float(initial_lr)
        self.lr = float(initial_lr)
        self.update_param_groups = bool(update_param_groups)
        self.train_loader_len = int(train_loader_len)
        self.net = net
        self.training_params = training_params

    def __call__(self, context: PhaseContext) -> None:
        if self.is_lr_scheduling_enabled(context):
            self.perform_scheduling(context)

    def is_lr_scheduling_enabled(self, context: PhaseContext) -> bool:
        """Whether this schedule owns the LR at the context's epoch/batch."""
        raise NotImplementedError

    def perform_scheduling(self, context: PhaseContext) -> None:
        """Compute `self.lr` from the context and write it to the optimizer."""
        raise NotImplementedError

    def update_lr(self, optimizer, epoch, batch_idx=None) -> None:
        """Write `self.lr` into the optimizer's param groups (or via `net.update_param_groups`)."""
        _write_lr(self, optimizer, epoch, batch_idx)

    def _tp(self, name: str, default: Any = 0) -> Any:
        return _param(self.training_params, name, default)

    def _in_main_schedule(self, epoch: int) -> bool:
        """W <= e < E - C."""
        return self._tp("lr_warmup_epochs") <= epoch < self._tp("max_epochs") - self._tp("lr_cooldown_epochs")


class EpochStepWarmupLRCallback(LRCallbackBase):
    """Linear warmup with one step per epoch, at each epoch start while e <= W (W > 0).

    lr(e) = w0 + e * (lr0 - w0) / W, where w0 = warmup_initial_lr, or lr0 / (W + 1) when that is None.
    At e = W this gives lr0 exactly, the value the main schedule starts from.
    """

    def __init__(self, **kwargs):
        super().__init__(Phase.TRAIN_EPOCH_START, **kwargs)
        warmup_epochs = self._tp("lr_warmup_epochs")
        warmup_initial_lr = _param(self.training_params, "warmup_initial_lr", None)
        self.warmup_initial_lr = (
            float(warmup_initial_lr) if warmup_initial_lr is not None else self.initial_lr / (warmup_epochs + 1)
        )
        self.warmup_step_size = (self.initial_lr - self.warmup_initial_lr) / warmup_epochs if warmup_epochs > 0 else 0.0

    def perform_scheduling(self, context: PhaseContext) -> None:
        self.lr = self.warmup_initial_lr + context.epoch * self.warmup_step_size
        self.update_lr(context.optimizer, context.epoch, None)

    def is_lr_scheduling_enabled(self, context: PhaseContext) -> bool:
        warmup_epochs = self._tp("lr_warmup_epochs")
        return warmup_epochs > 0 and context.epoch <= warmup_epochs


class LinearStepWarmupLRCallback(EpochStepWarmupLRCallback):
    """Deprecated name of `EpochStepWarmupLRCallback` (`warmup_mode="linear_step"`); warns with FutureWarning
    (shown by default: the reference logs a warning) when built."""

    def __init__(self, **kwargs):
        warnings.warn(
            "LinearStepWarmupLRCallback (warmup_mode='linear_step') is deprecated; use EpochStepWarmupLRCallback "
            "(warmup_mode='linear_epoch_step')",
            FutureWarning,
            stacklevel=2,
        )
        super().__init__(**kwargs)


class BatchStepLinearWarmupLRCallback(Callback):
    """Linear warmup per batch, at each batch start, over the first N global steps.

    N = min(S, L) when S > 0: as in the reference, a warmup longer than one epoch is capped to the batches of
    one epoch, with a warning (so that it cannot overlap a per-epoch schedule); the main schedules still read
    S itself (e.g. the cosine starts at step S). N = W * L when S is 0 (the reference does no warmup then).
    lr(g) = linspace(warmup_initial_lr, lr0, N)[g] for the global batch index g = e * L + b < N;
    i.e. lr(g) = w0 + g * (lr0 - w0) / (N - 1), reaching lr0 at g = N - 1. When warmup_initial_lr is None the
    start is lr0 / (W + 1), as for the per-epoch warmup (a documented choice: the reference needs it given).
    """

    def __init__(
        self,
        warmup_initial_lr,
        initial_lr,
        train_loader_len,
        update_param_groups,
        lr_warmup_steps,
        training_params,
        net,
        **kwargs,
    ):
        super().__init__()
        warmup_epochs = _param(training_params, "lr_warmup_epochs")
        self.initial_lr = float(initial_lr)
        self.lr = float(initial_lr)
        if warmup_initial_lr is None:
            warmup_initial_lr = self.initial_lr / (warmup_epochs + 1)
        self.warmup_initial_lr = float(warmup_initial_lr)
        self.train_loader_len = int(train_loader_len)
        requested = int(lr_warmup_steps or 0)
        if requested < 0:
            raise ValueError(f"lr_warmup_steps must be >= 0, got {lr_warmup_steps!r}")
        if requested > self.train_loader_len:
            warnings.warn(
                f"lr_warmup_steps={requested} is more than the {self.train_loader_len} batches of one epoch; the "
                f"warmup is capped to {self.train_loader_len} steps so that it ends with the first epoch",
                UserWarning,
                stacklevel=2,
            )
        self.lr_warmup_steps = min(requested, self.train_loader_len) or self.train_loader_len * int(warmup_epochs)
        self.learning_rates = np.linspace(self.warmup_initial_lr, self.initial_lr, self.lr_warmup_steps, endpoint=True)
        self.update_param_groups = bool(update_param_groups)
        self.training_params = training_params
        self.net = net

    def on_train_batch_start(self, context: PhaseContext) -> None:
        step = context.epoch * self.train_loader_len + context.batch_idx
        if step < self.lr_warmup_steps:
            self.lr = float(self.learning_rates[step])
            self.update_lr(context.optimizer, context.epoch, context.batch_idx)

    def update_lr(self, optimizer, epoch, batch_idx=None) -> None:
        """Write `self.lr` into the optimizer's param groups (or via `net.update_param_groups`)."""
        _write_lr(self, optimizer, epoch, batch_idx)


class StepLRCallback(LRCallbackBase):
    """Step decay at each epoch end (e >= W): lr = lr0 * lr_decay_factor ** #{u in lr_updates : u <= e}.

    With `step_lr_update_freq` f instead of `lr_updates`: lr_updates = [ceil(f * x) for x in 1..E-C-1 with
    W <= ceil(f * x) < E - C]. The two are mutually exclusive. With neither (lr_updates=[]), the LR stays
    lr0 (the reference's behaviour). Explicit lr_updates ignore lr_cooldown_epochs (a warning says so).
    """

    def __init__(self, lr_updates=(), lr_decay_factor=0.1, step_lr_update_freq=None, **kwargs):
        super().__init__(Phase.TRAIN_EPOCH_END, **kwargs)
        lr_updates = list(lr_updates or [])
        if step_lr_update_freq and lr_updates:
            raise ValueError(
                f"lr_updates={lr_updates} and step_lr_update_freq={step_lr_update_freq} are mutually exclusive"
            )
        if lr_updates and self._tp("lr_cooldown_epochs") > 0:
            warnings.warn(
                f"lr_mode='step' with explicit lr_updates={lr_updates}: lr_cooldown_epochs="
                f"{self._tp('lr_cooldown_epochs')} has no effect",
                UserWarning,
                stacklevel=2,
            )
        if step_lr_update_freq:
            last = self._tp("max_epochs") - self._tp("lr_cooldown_epochs")
            warmup = self._tp("lr_warmup_epochs")
            candidates = (int(math.ceil(step_lr_update_freq * x)) for x in range(1, last))
            lr_updates = [u for u in candidates if warmup <= u < last]
        self.lr_updates = lr_updates
        self.lr_decay_factor = float(lr_decay_factor)

    def perform_scheduling(self, context: PhaseContext) -> None:
        passed = sum(1 for u in self.lr_updates if u <= context.epoch)
        self.lr = self.initial_lr * self.lr_decay_factor**passed
        self.update_lr(context.optimizer, context.epoch, None)

    def is_lr_scheduling_enabled(self, context: PhaseContext) -> bool:
        return self._tp("lr_warmup_epochs") <= context.epoch


class PolyLRCallback(LRCallbackBase):
    """Polynomial decay per step for W <= e < E - C.

    lr = lr0 * (1 - i / I) ** 0.9 with i = (L * (e - W) + b) / A and I = L * (E - W - C) / A.
    """

    def __init__(self, max_epochs=None, **kwargs):
        super().__init__(Phase.TRAIN_BATCH_STEP, **kwargs)
        self.max_epochs = max_epochs if max_epochs is not None else self._tp("max_epochs")

    def perform_scheduling(self, context: PhaseContext) -> None:
        warmup, cooldown = self._tp("lr_warmup_epochs"), self._tp("lr_cooldown_epochs")
        accumulate = self._tp("batch_accumulate", 1)
        current = (self.train_loader_len * (context.epoch - warmup) + context.batch_idx) / accumulate
        total = self.train_loader_len * (self.max_epochs - warmup - cooldown) / accumulate
        self.lr = self.initial_lr * pow(1.0 - current / total, 0.9)
        self.update_lr(context.optimizer, context.epoch, context.batch_idx)

    def is_lr_scheduling_enabled(self, context: PhaseContext) -> bool:
        return self._in_main_schedule(context.epoch)


class CosineLRCallback(LRCallbackBase):
    """Cosine annealing per step from lr0 towards lr0 * r (r = cosine_final_lr_ratio).

    i = max(0, L * (e - W) + b - S), I = L * (E - W - C) - S,
    lr = (0.5 * lr0 * (1 + cos(pi * i / (I + 1)))) * (1 - r) + lr0 * r.
    Runs for W <= e < E - C, or, when S > 0, from global step L * e + b >= S on.
    """

    def __init__(self, max_epochs=None, cosine_final_lr_ratio=0.01, **kwargs):
        super().__init__(Phase.TRAIN_BATCH_STEP, **kwargs)
        self.max_epochs = max_epochs if max_epochs is not None else self._tp("max_epochs")
        self.cosine_final_lr_ratio = float(cosine_final_lr_ratio)

    def perform_scheduling(self, context: PhaseContext) -> None:
        warmup, cooldown = self._tp("lr_warmup_epochs"), self._tp("lr_cooldown_epochs")
        steps = self._tp("lr_warmup_steps")
        current = max(0, self.train_loader_len * (context.epoch - warmup) + context.batch_idx - steps)
        total = self.train_loader_len * (self.max_epochs - warmup - cooldown) - steps
        self.lr = float(self.compute_learning_rate(current, total, self.initial_lr, self.cosine_final_lr_ratio))
        self.update_lr(context.optimizer, context.epoch, context.batch_idx)

    def is_lr_scheduling_enabled(self, context: PhaseContext) -> bool:
        steps = self._tp("lr_warmup_steps")
        if steps > 0:
            return self.train_loader_len * context.epoch + context.batch_idx >= steps
        return self._in_main_schedule(context.epoch)

    @classmethod
    def compute_learning_rate(cls, step, total_steps, initial_lr, final_lr_ratio):
        """The cosine formula above for `step` (a number or an array) of `total_steps`."""
        lr = 0.5 * initial_lr * (1.0 + np.cos(step / (total_steps + 1) * math.pi))
        return lr * (1 - final_lr_ratio) + initial_lr * final_lr_ratio


class ExponentialLRCallback(LRCallbackBase):
    """Exponential decay per step for W <= e < E - C: lr = lr0 * lr_decay_factor ** ((L * (e - W) + b) / L)."""

    def __init__(self, lr_decay_factor=0.1, **kwargs):
        super().__init__(Phase.TRAIN_BATCH_STEP, **kwargs)
        self.lr_decay_factor = float(lr_decay_factor)

    def perform_scheduling(self, context: PhaseContext) -> None:
        current = self.train_loader_len * (context.epoch - self._tp("lr_warmup_epochs")) + context.batch_idx
        self.lr = self.initial_lr * self.lr_decay_factor ** (current / self.train_loader_len)
        self.update_lr(context.optimizer, context.epoch, context.batch_idx)

    def is_lr_scheduling_enabled(self, context: PhaseContext) -> bool:
        return self._in_main_schedule(context.epoch)


class LRScheduleFunctionError(ValueError, TypeError, AssertionError):
    """lr_mode="function" without a callable lr_schedule_function (an AssertionError too, as in the reference)."""


class FunctionLRCallback(LRCallbackBase):
    """A user function per step for W <= e < E - C:
    lr = lr_schedule_function(initial_lr=lr0, epoch=e - W, iter=b, max_epoch=E - W - C, iters_per_epoch=L).
    """

    def __init__(self, max_epochs=None, lr_schedule_function=None, **kwargs):
        super().__init__(Phase.TRAIN_BATCH_STEP, **kwargs)
        if not callable(lr_schedule_function):
            raise LRScheduleFunctionError(
                "lr_mode='function' needs lr_schedule_function, a callable (initial_lr, epoch, iter, max_epoch, "
                f"iters_per_epoch) -> lr; got {lr_schedule_function!r}"
            )
        self.lr_schedule_function = lr_schedule_function
        self.max_epochs = max_epochs if max_epochs is not None else self._tp("max_epochs")

    def perform_scheduling(self, context: PhaseContext) -> None:
        warmup, cooldown = self._tp("lr_warmup_epochs"), self._tp("lr_cooldown_epochs")
        self.lr = self.lr_schedule_function(
            initial_lr=self.initial_lr,
            epoch=context.epoch - warmup,
            iter=context.batch_idx,
            max_epoch=self.max_epochs - warmup - cooldown,
            iters_per_epoch=self.train_loader_len,
        )
        self.update_lr(context.optimizer, context.epoch, context.batch_idx)

    def is_lr_scheduling_enabled(self, context: PhaseContext) -> bool:
        return self._in_main_schedule(context.epoch)


class IllegalLRSchedulerMetric(Exception):
    """`LRSchedulerCallback.metric_name` is not among the metrics of the epoch."""

    def __init__(self, metric_name: str, metrics_dict: dict):
        self.metric_name = metric_name
        self.message = f"Illegal metric name {metric_name!r}: expected one of {sorted(metrics_dict or {})}"
        super().__init__(self.message)


class LRSchedulerCallback(PhaseCallback):
    """Steps a torch LR scheduler at `phase` once e >= lr_warmup_epochs; `ReduceLROnPlateau` gets
    `context.metrics_dict[metric_name]` (IllegalLRSchedulerMetric when that name is missing)."""

    def __init__(
        self, scheduler: torch.optim.lr_scheduler.LRScheduler | Any, phase: Phase | str, metric_name: str | None = None
    ):
        super().__init__(phase)
        self.scheduler = scheduler
        self.metric_name = metric_name

    def __call__(self, context: PhaseContext) -> None:
        if (context.lr_warmup_epochs or 0) > context.epoch:
            return
        if self.metric_name is None:
            self.scheduler.step()
            return
        metrics = context.metrics_dict or {}
        if self.metric_name not in metrics:
            raise IllegalLRSchedulerMetric(self.metric_name, metrics)
        self.scheduler.step(metrics[self.metric_name])

    def state_dict(self) -> dict:
        """The wrapped scheduler's state (saved in checkpoints so that resume continues it)."""
        return self.scheduler.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.scheduler.load_state_dict(state_dict)

    def __repr__(self) -> str:
        return f"LRSchedulerCallback({self.scheduler!r}, phase={self.phase.name}, metric_name={self.metric_name!r})"
