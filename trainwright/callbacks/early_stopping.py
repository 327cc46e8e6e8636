"""Early stopping: end training when a monitored metric stops improving, reaches a threshold or is not finite."""

from __future__ import annotations

import logging
import math
import operator

import torch

from trainwright.callbacks.base import Phase, PhaseCallback, PhaseContext

__all__ = ["EarlyStop", "MissingMonitorKeyException"]

logger = logging.getLogger("trainwright")


class MissingMonitorKeyException(Exception):
    """The monitored metric is not among the metrics of the epoch (raised only with strict=False, then logged)."""


class EarlyStop(PhaseCallback):
    """Watches ``context.metrics_dict[monitor]`` at each epoch end and sets ``context.stop_training`` when:

    - check_finite and the value is NaN or infinite;
    - threshold is given and the value is beyond it (below it in "min" mode, above it in "max" mode);
    - the value has not improved for ``patience`` checks in a row, where improving means
      ``value < best - min_delta`` ("min") or ``value > best + min_delta`` ("max").
    The trainer finishes the current epoch (validation, checkpoints) and then stops.

    :param phase:        Phase.VALIDATION_EPOCH_END (validation metrics) or Phase.TRAIN_EPOCH_END (training
                         loss items and metrics).
    :param monitor:      the metric's name as it appears in metrics_dict, e.g. "mAP@0.50" or "YoloXDetectionLoss/Loss".
    :param mode:         "min" or "max": whether lower or higher values are better.
    :param min_delta:    the smallest change that counts as an improvement.
    :param patience:     checks without improvement after which training stops.
    :param check_finite: stop as soon as the value is NaN or infinite.
    :param threshold:    stop as soon as the value reaches this level (None: no threshold).
    :param verbose:      also log the outcome of checks that do not stop training.
    :param strict:       a missing monitor key raises RuntimeError; with False it is logged and the check skipped.

    With check_finite=True the callback also takes over non-finite training losses (`handles_non_finite_loss`):
    training goes on past a NaN or infinite loss (the batch's update is skipped, so the weights stay finite),
    and this callback stops the run when the monitored value, e.g. the epoch's loss average, is not finite.
    """

    mode_dict = {"min": operator.lt, "max": operator.gt}
    supported_phases = (Phase.VALIDATION_EPOCH_END, Phase.TRAIN_EPOCH_END)

    def __init__(
        self,
        phase: Phase | str,
        monitor: str,
        mode: str = "min",
        min_delta: float = 0.0,
        patience: int = 3,
        check_finite: bool = True,
        threshold: float | None = None,
        verbose: bool = False,
        strict: bool = True,
    ):
        super().__init__(phase)
        if self.phase not in self.supported_phases:
            raise ValueError(f"EarlyStop does not support phase {self.phase.name}; expected one of "
                             f"{[p.name for p in self.supported_phases]}")
        if mode not in self.mode_dict:
            raise ValueError(f"EarlyStop mode must be one of {sorted(self.mode_dict)}, got {mode!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStop patience must be an integer >= 0, got {patience!r}")
        self.monitor_key = monitor
        self.mode = mode
        self.min_delta = float(min_delta)
        self.patience = patience
        self.check_finite = check_finite
        self.threshold = threshold
        self.verbose = verbose
        self.strict = strict
        self.monitor_op = self.mode_dict[mode]
        self.best_score = math.inf if mode == "min" else -math.inf
        self.wait_count = 0
        self.should_stop = False

    @property
    def handles_non_finite_loss(self) -> bool:
        """Whether the trainer leaves a non-finite loss to this callback (check_finite=True) instead of stopping."""
        return bool(self.check_finite)

    def __call__(self, context: PhaseContext) -> None:
        try:
            current = self._get_metric_value(context.metrics_dict or {})
        except MissingMonitorKeyException as e:
            logger.warning("%s", e)
            return
        reason, self.should_stop = self._check_for_early_stop(current)
        if self.should_stop:
            logger.info("%s", reason)
            context.update_context(stop_training=True)
        elif self.verbose:
            logger.info("%s", reason)

    def _get_metric_value(self, metrics_dict: dict) -> float:
        if self.monitor_key not in metrics_dict:
            message = f"EarlyStop: monitor {self.monitor_key!r} is not in the metrics {sorted(metrics_dict)}"
            raise (RuntimeError if self.strict else MissingMonitorKeyException)(message)
        value = metrics_dict[self.monitor_key]
        return float(value.detach().float().mean()) if isinstance(value, torch.Tensor) else float(value)

    def _check_for_early_stop(self, current: float) -> tuple[str, bool]:
        """(why, stop?) for the new value; updates the best score and the count of checks without improvement."""
        name = self.monitor_key
        if self.check_finite and not math.isfinite(current):
            return f"{name} = {current} is not finite (best was {self.best_score:.4g}): stopping", True
        if self.threshold is not None and self.monitor_op(current, self.threshold):
            return f"{name} = {current:.4g} reached the threshold {self.threshold}: stopping", True
        signed_delta = self.min_delta if self.mode == "max" else -self.min_delta
        if self.monitor_op(current - signed_delta, self.best_score):
            previous, self.best_score, self.wait_count = self.best_score, current, 0
            change = f" by {abs(current - previous):.4g}" if math.isfinite(previous) else ""
            return f"{name} improved{change}; new best {current:.4g}", False
        self.wait_count += 1
        reason = f"{name} did not improve in the last {self.wait_count} check(s)"
        if self.wait_count >= self.patience:
            return f"{reason}; best {self.best_score:.4g}: stopping", True
        return reason, False

    def __repr__(self) -> str:
        return (f"EarlyStop(phase={self.phase.name}, monitor={self.monitor_key!r}, mode={self.mode!r}, "
                f"patience={self.patience})")
