"""From `Trainer.train`'s arguments to a TrainState: seeds, the model on its device, loss, optimizer, AMP scaler,
EMA and metrics, each built once from the parameters; then the experiment logger, the first thing written."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch
from torch import nn

from trainwright.config import HpmStruct
from trainwright.distributed import get_rank, is_main_process, unwrap_model
from trainwright.logging import NullSGLogger, build_sg_logger
from trainwright.training.cpu_speed import apply_cpu_speed_settings
from trainwright.training.data_order import shard_loader
from trainwright.training.distributed_run import wrap_model
from trainwright.training.ema import ModelEMA
from trainwright.training.losses import build_loss
from trainwright.training.memory_layout import use_channels_last
from trainwright.training.metric_set import MetricSet
from trainwright.training.optim import build_optimizer, optimizer_params_with_defaults
from trainwright.training.state import TrainState

__all__ = ["build_train_state", "open_sg_logger"]

logger = logging.getLogger("trainwright")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_train_state(model: nn.Module, params: HpmStruct, train_loader, valid_loader, *, device: torch.device,
                      experiment_name: str, experiment_dir: str, processing_params: dict | None) -> TrainState:
    """The TrainState of a run; nothing is written yet (see `open_sg_logger`).

    Under torch.distributed each process seeds with seed + rank, the model is wrapped in DistributedDataParallel
    (`distributed_run.wrap_model`) and the loaders give each process its share (`data_order.shard_loader`).
    """
    on_cpu = device.type == "cpu"
    apply_cpu_speed_settings(
        flush_denormal=params.flush_denormal if params.flush_denormal is not None else on_cpu,
        reuse_memory=params.cpu_memory_reuse if params.cpu_memory_reuse is not None else on_cpu,
    )
    seed_everything(params.seed + get_rank())
    if params.channels_last:
        use_channels_last(model)
    net = wrap_model(model, device, sync_bn=bool(params.sync_bn))
    train_loader = shard_loader(train_loader, params.seed, training=True, what="training loader")
    valid_loader = shard_loader(valid_loader, params.seed, training=False, what="validation loader")
    criterion = build_loss(params.loss, params.criterion_params)
    if isinstance(criterion, nn.Module):
        criterion.to(device)
    # The options the optimizer gets, the reference's defaults included, are what the checkpoint's recipe records.
    params.optimizer_params = optimizer_params_with_defaults(params.optimizer, params.optimizer_params)
    optimizer = build_optimizer(params.optimizer, unwrap_model(net), params.initial_lr, params.optimizer_params,
                                params.zero_weight_decay_on_bias_and_bn, training_params=params)  # fmt: skip
    amp = bool(params.mixed_precision)
    train_loader_len = len(train_loader)
    if params.max_train_batches is not None:
        train_loader_len = min(train_loader_len, int(params.max_train_batches))
    is_main = is_main_process()
    return TrainState(
        device=device, net=net, criterion=criterion, experiment_name=experiment_name, experiment_dir=experiment_dir,
        amp_dtype=(torch.float16 if device.type == "cuda" else torch.bfloat16) if amp else None,
        params=params, optimizer=optimizer, scaler=torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda"),
        ema=ModelEMA.from_params(net, **params.ema_params) if params.ema else None,
        train_loader=train_loader, valid_loader=valid_loader, train_loader_len=train_loader_len,
        train_metrics=MetricSet(params.train_metrics_list, device), valid_metrics=MetricSet(params.valid_metrics_list, device),
        processing_params=processing_params, is_main=is_main, metric_to_watch=params.metric_to_watch,
    )  # fmt: skip


def open_sg_logger(state: TrainState) -> None:
    """Create the experiment directory and the run's logger (rank 0; the others get a NullSGLogger)."""
    if not state.is_main:
        state.sg_logger = NullSGLogger()
        return
    os.makedirs(state.experiment_dir, exist_ok=True)
    state.sg_logger = build_sg_logger(state.params.sg_logger, state.experiment_dir, **state.params.sg_logger_params)
