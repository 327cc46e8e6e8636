"""The state of one `Trainer.train` call: the objects built from training_params, the outputs it writes,
best-metric tracking and resume. The loop itself lives in `trainer.py`."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import random
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from trainwright.callbacks.base import CallbackHandler, ContextSgMethods, PhaseContext
from trainwright.callbacks.lr_registry import build_lr_callbacks
from trainwright.distributed import get_local_rank, is_distributed, is_main_process
from trainwright.logging import NullSGLogger, ResultsCSV, attach_text_log, build_sg_logger
from trainwright.training.averaging import BestModelsAverager
from trainwright.training.checkpointing import build_checkpoint, load_checkpoint, plain, restore_rng_state
from trainwright.training.ema import ModelEMA
from trainwright.training.losses import build_loss, loss_item_names
from trainwright.training.metric_set import LossAverager, MetricSet
from trainwright.training.optim import build_optimizer
from trainwright.training.params import resolve_training_params

__all__ = ["TrainingRun", "unpack_batch", "move_to_device"]

logger = logging.getLogger("trainwright")


def unpack_batch(batch) -> tuple:
    """(inputs, targets, extras dict) from a batch `(inputs, targets)` or `(inputs, targets, extras)`."""
    if isinstance(batch, (tuple, list)):
        if len(batch) == 2:
            return batch[0], batch[1], {}
        if len(batch) == 3 and isinstance(batch[2], Mapping):
            return batch[0], batch[1], dict(batch[2])
    raise ValueError(
        f"a batch must be (inputs, targets) or (inputs, targets, extras_dict), got {type(batch).__name__}"
        + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
    )


def move_to_device(obj, device: torch.device):
    """Tensors (also inside tuples, lists and dicts) moved to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=device.type == "cuda")
    if isinstance(obj, tuple):
        return tuple(move_to_device(o, device) for o in obj)
    if isinstance(obj, list):
        return [move_to_device(o, device) for o in obj]
    if isinstance(obj, dict):
        return {k: move_to_device(v, device) for k, v in obj.items()}
    return obj


def results_row(lr: float, train_results: Mapping, valid_results: Mapping, loss_names) -> dict[str, object]:
    """One results.csv row: training loss parts and validation metrics under their own names (`mAP@0.50`).

    The rest is prefixed by its phase so no column is ambiguous: `valid/<loss part>`, `train/<metric>`.
    """
    row: dict[str, object] = {"lr": lr}
    row.update({k if k in loss_names else f"train/{k}": v for k, v in train_results.items()})
    row.update({f"valid/{k}" if k in loss_names else k: v for k, v in valid_results.items()})
    return row


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


class TrainingRun:
    """Everything `Trainer.train` builds from its arguments, plus the per-epoch bookkeeping."""

    def __init__(self, trainer, model: nn.Module, training_params, train_loader, valid_loader, processing_params):
        self.trainer = trainer
        self.params = params = resolve_training_params(training_params)
        self.device = trainer.device
        self.main = is_main_process()
        self._seed_everything(params.seed)
        self.train_loader, self.valid_loader = train_loader, valid_loader
        self.train_loader_len = len(train_loader)
        if params.max_train_batches is not None:
            self.train_loader_len = min(self.train_loader_len, int(params.max_train_batches))
        self.net = self._prepare_model(model)
        self.criterion = build_loss(params.loss, params.criterion_params)
        if isinstance(self.criterion, nn.Module):
            self.criterion.to(self.device)
        self.optimizer = build_optimizer(params.optimizer, _unwrap(self.net), params.initial_lr,
                                         params.optimizer_params, params.zero_weight_decay_on_bias_and_bn)  # fmt: skip
        amp_on_cuda = params.mixed_precision and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp_on_cuda)
        self.amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self.ema = ModelEMA.from_params(self.net, **params.ema_params) if params.ema else None
        self.train_metrics = MetricSet(params.train_metrics_list, self.device)
        self.valid_metrics = MetricSet(params.valid_metrics_list, self.device)
        self.metric_to_watch = params.metric_to_watch
        self.greater_is_better = bool(params.greater_metric_to_watch_is_better)
        self.best_metric: float | None = None
        self.start_epoch = 0
        self.processing_params = processing_params
        self.experiment_dir = trainer.checkpoints_dir_path
        self._loss_names: list[str] = []
        self.averager = (BestModelsAverager(params.number_of_models_to_average, self.greater_is_better)
                         if params.average_best_models else None)  # fmt: skip
        ckpt = self._resume() if (params.resume or params.resume_path) else None
        self._open_outputs()
        lr_callbacks = build_lr_callbacks(params, self.net, self.train_loader_len)
        self.callbacks = CallbackHandler(list(params.phase_callbacks) + lr_callbacks)
        self.context = self._build_context()
        if ckpt is not None:
            self._load_callback_states(ckpt.get("callback_states") or {})
            if ckpt.get("rng_state") is not None:  # last, so nothing above shifts the restored streams
                restore_rng_state(ckpt["rng_state"])

    # --- setup -------------------------------------------------------------------------------------------------

    def _seed_everything(self, seed: int) -> None:
        flush = self.params.flush_denormal
        if flush if flush is not None else self.device.type == "cpu":
            torch.set_flush_denormal(True)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _prepare_model(self, model: nn.Module) -> nn.Module:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        model = model.to(self.device)
        if is_distributed():
            ids = [get_local_rank()] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        return model

    def _open_outputs(self) -> None:
        """Experiment directory, sg_logger, text log and results.csv (rank 0 only)."""
        self._text_handler = None
        if not self.main:
            self.sg_logger, self.results_csv = NullSGLogger(), None
            return
        os.makedirs(self.experiment_dir, exist_ok=True)
        self.sg_logger = build_sg_logger(self.params.sg_logger, self.experiment_dir, **self.params.sg_logger_params)
        self._text_handler = attach_text_log(logger, os.path.join(self.experiment_dir, "train_log.txt"))
        resumed_at = self.start_epoch if (self.params.resume or self.params.resume_path) else None
        self.results_csv = ResultsCSV(os.path.join(self.experiment_dir, "results.csv"), resume_from_epoch=resumed_at)
        logger.info("Experiment %s in %s, training params: %s", self.trainer.experiment_name, self.experiment_dir,
                    plain(self.params.to_dict(include_schema=False)))  # fmt: skip

    def _build_context(self) -> PhaseContext:
        methods = ContextSgMethods(get_net=lambda: self.net, set_ckpt_best_name=self._set_ckpt_best_name,
                                   reset_best_metric=self._reset_best_metric)  # fmt: skip
        return PhaseContext(
            optimizer=self.optimizer, net=self.net, ema_model=self.ema, criterion=self.criterion, device=self.device,
            experiment_name=self.trainer.experiment_name, ckpt_dir=self.experiment_dir,
            checkpoints_dir_path=self.experiment_dir, sg_logger=self.sg_logger, train_loader=self.train_loader,
            valid_loader=self.valid_loader, training_params=self.params, lr_warmup_epochs=self.params.lr_warmup_epochs,
            metric_to_watch=self.metric_to_watch, valid_metrics=self.valid_metrics,
            train_metrics=self.train_metrics, ddp_silent_mode=not self.main, context_methods=methods,
            stop_training=False,
        )  # fmt: skip

    def _set_ckpt_best_name(self, name: str) -> None:
        self.params.ckpt_best_name = name

    def _reset_best_metric(self) -> None:
        self.best_metric = None

    def _resume(self) -> dict:
        """Load model, optimizer, scaler, EMA, epoch and best metric; return the checkpoint (RNG and callback
        states are restored once the callbacks exist)."""
        path = self.params.resume_path or os.path.join(self.experiment_dir, "ckpt_latest.pth")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"cannot resume: no checkpoint at {path!r}")
        ckpt = load_checkpoint(path, device="cpu")
        _unwrap(self.net).load_state_dict(ckpt["net"])
        self.optimizer.load_state_dict(ckpt["optimizer_state_dict"])
        if ckpt.get("scaler_state_dict") and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt["scaler_state_dict"])
        if self.ema is not None and "ema_net" in ckpt:
            self.ema.load_state_dict(ckpt["ema_net"])
        self.start_epoch = int(ckpt.get("epoch", 0))
        self.best_metric = ckpt.get("best_metric")
        if "interrupted_at" in ckpt:
            logger.warning("Resuming from a checkpoint saved by an interruption %s: epoch %d restarts from its "
                           "beginning with the weights of the interruption", ckpt["interrupted_at"], self.start_epoch)  # fmt: skip
        logger.info("Resumed from %s at epoch %d (best metric %s)", path, self.start_epoch, self.best_metric)
        return ckpt

    # --- per batch / per epoch ------------------------------------------------------------------------------------

    def autocast(self):
        """The forward-pass context: autocast when mixed_precision is on, else nothing."""
        if not self.params.mixed_precision:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def check_finite(self, loss: torch.Tensor, epoch: int, batch_idx: int) -> None:
        """Stop with an error naming the epoch and batch when the loss is NaN or infinite."""
        value = loss.detach()
        # One scalar read is far cheaper than isfinite + all + bool on a per-batch path.
        finite = math.isfinite(value.item()) if value.numel() == 1 else bool(torch.isfinite(value).all())
        if not finite:
            raise FloatingPointError(
                f"loss is {loss.detach().float().cpu().tolist()} at epoch {epoch}, batch {batch_idx}: training stopped"
                f"; the last good checkpoint (if any) is {os.path.join(self.experiment_dir, 'ckpt_latest.pth')}"
            )

    def loss_names(self, losses: LossAverager) -> list[str]:
        if losses.sum is None:
            return []
        self._loss_names = loss_item_names(self.criterion, losses.sum.numel())
        return self._loss_names

    def should_validate(self, epoch: int) -> bool:
        return (epoch + 1) % self.params.run_validation_freq == 0 or epoch == self.params.max_epochs - 1

    def eval_net(self) -> nn.Module:
        """The model validation and ckpt_best use: the EMA when EMA is on."""
        return self.ema.ema if self.ema is not None else self.net

    def watched_name(self, results: Mapping[str, float]) -> str:
        """metric_to_watch, or by default the first metric (else the first loss item, lower is better)."""
        if self.metric_to_watch is None:
            metrics = [k for k in results if k not in self._loss_names]
            self.metric_to_watch = metrics[0] if metrics else next(iter(results))
            if not metrics:
                self.greater_is_better = False
            self.context.metric_to_watch = self.metric_to_watch
        if self.metric_to_watch not in results:
            raise ValueError(f"metric_to_watch={self.metric_to_watch!r} is not among the validation results "
                             f"{sorted(results)}")  # fmt: skip
        return self.metric_to_watch

    def update_best(self, results: Mapping[str, float]) -> bool:
        value = results[self.watched_name(results)]
        improved = self.best_metric is None or (
            value > self.best_metric if self.greater_is_better else value < self.best_metric
        )
        if improved:
            self.best_metric = value
        return improved

    def _callback_states(self) -> dict:
        """State of every callback that has one (`state_dict()`), keyed by position and class name."""
        return {f"{i}:{type(cb).__name__}": cb.state_dict()
                for i, cb in enumerate(self.callbacks.callbacks) if hasattr(cb, "state_dict")}  # fmt: skip

    def _load_callback_states(self, states: Mapping) -> None:
        for i, cb in enumerate(self.callbacks.callbacks):
            key = f"{i}:{type(cb).__name__}"
            if key in states and hasattr(cb, "load_state_dict"):
                cb.load_state_dict(states[key])

    def _checkpoint(self, finished_epochs: int, metrics: Mapping, extra: Mapping | None = None) -> dict:
        acc = metrics.get(self.metric_to_watch) if metrics and self.metric_to_watch else None
        extra = {"callback_states": self._callback_states(), **(extra or {})}
        return build_checkpoint(
            net=self.net, optimizer=self.optimizer, scaler=self.scaler, epoch=finished_epochs, acc=acc,
            best_metric=self.best_metric, metrics=metrics or {}, ema=self.ema, processing_params=self.processing_params,
            recipe=self.params.to_dict(include_schema=False), extra=extra,
        )  # fmt: skip

    def save_epoch_checkpoints(self, epoch: int, valid_results: Mapping, improved: bool) -> None:
        """ckpt_latest every epoch; ckpt_best on improvement; ckpt_epoch_N; average_model (rank 0)."""
        if not (self.main and self.params.save_model):
            return
        ckpt = self._checkpoint(epoch + 1, valid_results)
        self.sg_logger.add_checkpoint("ckpt_latest.pth", ckpt, global_step=epoch)
        if improved:
            best = {**ckpt, "net": self.ema.state_dict()} if self.ema is not None else ckpt
            self.sg_logger.add_checkpoint(self.params.ckpt_best_name, best, global_step=epoch)
        if epoch + 1 in self.params.save_ckpt_epoch_list:
            self.sg_logger.add_checkpoint(f"ckpt_epoch_{epoch + 1}.pth", ckpt, global_step=epoch)
        if self.averager is not None and valid_results:
            value = valid_results[self.watched_name(valid_results)]
            if self.averager.update(_unwrap(self.eval_net()).state_dict(), value):
                average = {**ckpt, "net": self.averager.average()}
                average.pop("ema_net", None)
                self.sg_logger.add_checkpoint("average_model.pth", average, global_step=epoch)

    def log_epoch(self, epoch: int, train_results: Mapping, valid_results: Mapping, improved: bool) -> None:
        if not self.main:
            return
        lr = self.optimizer.param_groups[0]["lr"]
        values = {"lr": lr, **{f"train/{k}": v for k, v in train_results.items()},
                  **{f"valid/{k}": v for k, v in valid_results.items()}}  # fmt: skip
        self.sg_logger.add_scalars(values, global_step=epoch)
        self.results_csv.add_row(epoch, results_row(lr, train_results, valid_results, self._loss_names))
        parts = [f"Epoch {epoch + 1}/{self.params.max_epochs}", f"lr {lr:.4g}"]
        parts += [f"train {k} {v:.4f}" for k, v in train_results.items()]
        parts += [f"valid {k} {v:.4f}" for k, v in valid_results.items()]
        line = " | ".join(parts) + (f"  (best {self.metric_to_watch})" if improved else "")
        logger.info(line)
        if not self.params.silent_mode:
            tqdm.write(line)

    def log_config(self, tag: str, config: Mapping) -> None:
        """A configuration as text in the text log and the sg_logger (rank 0)."""
        if self.main:
            text = repr(plain(dict(config)))
            logger.info("%s: %s", tag, text)
            self.sg_logger.add_text(tag, text)

    def save_interrupted(self, epoch: int, batch_idx) -> None:
        """On Ctrl-C: ckpt_latest with the current weights; resume restarts `epoch` from its beginning."""
        if self.main and self.params.save_model:
            extra = {"interrupted_at": {"epoch": int(epoch), "batch_idx": batch_idx}}
            self.sg_logger.add_checkpoint("ckpt_latest.pth", self._checkpoint(epoch, self.trainer.valid_metrics, extra))

    def finish_averaging(self, trainer) -> None:
        """Validate the averaged model (no per-batch events) and fire on_average_best_models_validation_end."""
        if self.averager is None or not self.averager.snapshots or self.valid_loader is None:
            return
        model = copy.deepcopy(_unwrap(self.eval_net()))
        model.load_state_dict(self.averager.average())
        results = trainer._evaluate(self, model, self.valid_loader, self.valid_metrics, "validation", self.context.epoch,
                                    self.params.max_valid_batches, callbacks=CallbackHandler([]))  # fmt: skip
        self.context.update_context(metrics_dict=results)
        self.callbacks.on_average_best_models_validation_end(self.context)
        logger.info("Averaged model of the %d best epochs: %s", len(self.averager.snapshots), results)

    def close(self) -> None:
        self.sg_logger.flush()
        self.sg_logger.close()
        if self._text_handler is not None:
            logger.removeHandler(self._text_handler)
            self._text_handler.close()
