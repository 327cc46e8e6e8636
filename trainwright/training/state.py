"""The state of a run: plain dataclasses the loop and the default callbacks read and write.

`LoopState` is what any pass over a loader works with (`Trainer.test` uses it alone); `TrainState` adds what
training owns, with `state_dict()` / `load_state_dict()` for the checkpoint. Callbacks see both through
`PhaseContext`, a view of them (`trainwright.training.context`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainwright.config import HpmStruct
from trainwright.distributed import unwrap_model
from trainwright.logging import AbstractSGLogger
from trainwright.nn.checkpoint_keys import BEST_METRIC, EMA_NET, EPOCH, NET, OPTIMIZER, SCALER
from trainwright.training.ema import ModelEMA
from trainwright.training.memory_layout import contiguous_tensors
from trainwright.training.metric_set import LossAverager, MetricSet

__all__ = ["BatchState", "LoopState", "TrainState"]


@dataclass(eq=False)
class BatchState:
    """The batch being processed and what the model and the loss made of it (overwritten every batch)."""

    index: int | None = None  # position in the current pass (0-based); None before its first batch
    inputs: Any = None  # on the device
    target: Any = None
    extras: dict = field(default_factory=dict)  # the batch's third element, e.g. {"crowd_targets": ...}
    preds: Any = None
    loss: torch.Tensor | None = None  # training only: the scalar that is backpropagated
    loss_items: torch.Tensor | None = None  # the detached loss components [K]


@dataclass(eq=False, kw_only=True)
class LoopState:
    """What a pass over a loader (training, validation or test) works with, and where it is."""

    device: torch.device
    net: nn.Module | None
    criterion: Callable | None
    experiment_name: str
    experiment_dir: str  # ckpt_root_dir/experiment_name: every file of the run goes there
    sg_logger: AbstractSGLogger | None = None
    amp_dtype: torch.dtype | None = None  # autocast dtype of the forward pass; None: autocast off
    epoch: int | None = None  # the epoch in progress (0-based); None outside training
    num_batches: int = 0  # batches of the current pass
    batch: BatchState = field(default_factory=BatchState)
    metrics: MetricSet | None = None  # metrics of the current pass
    losses: LossAverager | None = None  # loss average of the current pass
    metrics_dict: dict[str, float] = field(default_factory=dict)  # results of the last finished pass
    loss_names: list[str] = field(default_factory=list)  # names of the loss components in results

    def autocast(self):
        """The forward-pass context: autocast when amp_dtype is set, else nothing."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


@dataclass(eq=False, kw_only=True)
class TrainState(LoopState):
    """Everything one `Trainer.train` call builds from its arguments and changes as it runs.

    `net`, `optimizer`, `scaler`, `ema`, `epochs_done` and `best_metric` are the checkpoint's part
    (`state_dict()`); the rest is rebuilt from the parameters or recomputed.
    """

    params: HpmStruct  # the resolved training_params
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: ModelEMA | None  # the EMA of the weights (ema=True); the EMAUpdate callback updates it
    train_loader: Iterable
    valid_loader: Iterable | None
    train_loader_len: int  # batches per training epoch (max_train_batches applied)
    train_metrics: MetricSet
    valid_metrics: MetricSet
    processing_params: dict | None  # stored in every checkpoint, e.g. class names and input size
    is_main: bool  # the process that writes files (rank 0)
    resumed_from: str | None = None  # the checkpoint this run continues, None for a fresh run
    epochs_done: int = 0  # finished epochs: where the loop (re)starts
    global_step: int = 0  # training batches seen, 1-based (epoch * train_loader_len + batch + 1)
    train_results: dict[str, float] = field(default_factory=dict)  # this epoch's training losses and metrics
    valid_results: dict[str, float] = field(default_factory=dict)  # this epoch's validation ({} if none ran)
    metric_to_watch: str | None = None  # decided by the BestCheckpointKeeper
    best_metric: float | None = None  # best value of metric_to_watch so far (BestCheckpointKeeper)
    new_best: bool = False  # whether this epoch's validation improved best_metric (BestCheckpointKeeper)
    stop_training: bool = False  # set by a callback: the loop ends after the current epoch
    interrupted: bool = False  # Ctrl-C ended the run
    interrupt_signal: int | None = None  # the signal that asked the run to stop (InterruptCheck)
    averaged_weights: dict | None = None  # average of the best epochs (ModelAveraging), validated at the end

    @property
    def eval_net(self) -> nn.Module:
        """The model validation and ckpt_best use: the EMA when EMA is on."""
        return self.ema.ema if self.ema is not None else self.net

    def validates(self, epoch: int) -> bool:
        """Whether `epoch` ends with a validation: every run_validation_freq epochs, and after the last."""
        if self.valid_loader is None:
            return False
        return (epoch + 1) % self.params.run_validation_freq == 0 or epoch == self.params.max_epochs - 1

    def state_dict(self) -> dict:
        """Weights, optimizer, scaler, EMA, finished epochs and best metric under the checkpoint keys."""
        out = {
            NET: contiguous_tensors(unwrap_model(self.net).state_dict()),
            OPTIMIZER: self.optimizer.state_dict(),
            SCALER: self.scaler.state_dict(),
            EPOCH: int(self.epochs_done),
            BEST_METRIC: None if self.best_metric is None else float(self.best_metric),
        }
        if self.ema is not None:
            out[EMA_NET] = contiguous_tensors(self.ema.state_dict())
        return out

    def load_state_dict(self, checkpoint: dict) -> None:
        """Inverse of `state_dict`; a checkpoint without scaler or EMA entries leaves those as built, and the
        optimizer is left as built when the parameters say load_opt_params=False."""
        unwrap_model(self.net).load_state_dict(checkpoint[NET])
        if self.params.get("load_opt_params", True):  # False: the optimizer starts afresh (the reference's option)
            self.optimizer.load_state_dict(checkpoint[OPTIMIZER])
        if checkpoint.get(SCALER) and self.scaler.is_enabled():
            self.scaler.load_state_dict(checkpoint[SCALER])
        if self.ema is not None and EMA_NET in checkpoint:
            self.ema.load_state_dict(checkpoint[EMA_NET])
        self.epochs_done = int(checkpoint.get(EPOCH, 0))
        self.best_metric = checkpoint.get(BEST_METRIC)
