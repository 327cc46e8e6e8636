"""The Trainer: owns the loop; everything optional (LR, EMA, checkpoints policy, logging) is a collaborator.

Read `train` top to bottom: setup (`TrainingRun`), then `_train_epoch` / `_evaluate` per epoch, then
`_end_epoch` (best-metric tracking, checkpoints, logs). The callback events fire in the order documented in
`trainwright.callbacks.base`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from types import SimpleNamespace

import torch
from torch import nn
from tqdm.auto import tqdm

from trainwright.callbacks.base import CallbackHandler, PhaseContext
from trainwright.distributed import is_main_process
from trainwright.training.data_order import set_epoch_order
from trainwright.training.losses import build_loss, loss_item_names, split_loss_output
from trainwright.training.metric_set import LossAverager, MetricSet
from trainwright.training.run import TrainingRun, move_to_device, unpack_batch

__all__ = ["Trainer"]

logger = logging.getLogger("trainwright")


class Trainer:
    """Trains and evaluates a model; files go to `ckpt_root_dir/experiment_name/`.

    Args:
        experiment_name: name of the run and of its directory.
        ckpt_root_dir: parent of the experiment directory (default: ./checkpoints).
        device: "cpu", "cuda", "cuda:1", a torch.device, or None for CUDA when available.
    """

    def __init__(self, experiment_name: str, ckpt_root_dir: str | os.PathLike | None = None, device=None):
        if not isinstance(experiment_name, str) or not experiment_name.strip():
            raise ValueError(f"experiment_name must be a non-empty string, got {experiment_name!r}")
        self.experiment_name = experiment_name
        self.ckpt_root_dir = os.fspath(ckpt_root_dir) if ckpt_root_dir is not None else os.path.abspath("checkpoints")
        self.checkpoints_dir_path = os.path.join(self.ckpt_root_dir, experiment_name)
        self.device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        self.net: nn.Module | None = None
        self.ema_model = None
        self.run: TrainingRun | None = None
        self.valid_metrics: dict[str, float] = {}
        self.best_metric: float | None = None
        self.interrupted = False

    # --- training ------------------------------------------------------------------------------------------------

    def train(self, model: nn.Module, training_params=None, train_loader=None, valid_loader=None, *,
              processing_params: dict | None = None, additional_configs_to_log: dict | None = None,
              ) -> dict[str, float]:  # fmt: skip
        """Train `model` with `training_params` (dict / OmegaConf / HpmStruct; see `params.DEFAULT_TRAINING_PARAMS`).

        Batches are `(inputs, targets)` or `(inputs, targets, extras_dict)`. Returns the last validation metrics.
        `processing_params` (e.g. {"class_names": [...], "input_size": [H, W]}) is stored in every checkpoint;
        `additional_configs_to_log` (e.g. the dataset config) goes to the text log and the sg_logger as text.
        """
        if train_loader is None:
            raise ValueError("train_loader is required")
        run = TrainingRun(self, model, training_params, train_loader, valid_loader, processing_params)
        self.run, self.net, self.ema_model = run, run.net, run.ema
        ctx = run.context
        if additional_configs_to_log:
            run.log_config("additional_configs", additional_configs_to_log)
        try:
            run.callbacks.on_training_start(ctx)
            for epoch in range(run.start_epoch, run.params.max_epochs):
                if ctx.stop_training:
                    logger.info("A callback asked to stop training before epoch %d", epoch)
                    break
                train_results = self._train_epoch(run, epoch)
                valid_results = {}
                if run.valid_loader is not None and run.should_validate(epoch):
                    valid_results = self._evaluate(run, run.eval_net(), run.valid_loader, run.valid_metrics,
                                                   "validation", epoch, run.params.max_valid_batches)  # fmt: skip
                self._end_epoch(run, epoch, train_results, valid_results)
            run.finish_averaging(self)
        except KeyboardInterrupt:
            self.interrupted = True
            logger.warning("Training interrupted at epoch %s, batch %s: saving ckpt_latest.pth", ctx.epoch, ctx.batch_idx)
            run.save_interrupted(ctx.epoch if ctx.epoch is not None else run.start_epoch, ctx.batch_idx)
        except Exception:
            logger.exception("Training stopped by an error at epoch %s, batch %s", ctx.epoch, ctx.batch_idx)
            raise
        finally:
            try:
                run.callbacks.on_training_end(ctx)
            finally:
                run.close()
        self.best_metric = run.best_metric
        return self.valid_metrics

    def _train_epoch(self, run: TrainingRun, epoch: int) -> dict[str, float]:
        net, params, ctx, callbacks = run.net, run.params, run.context, run.callbacks
        net.train()
        set_epoch_order(run.train_loader, params.seed, epoch)
        run.train_metrics.reset()
        losses = LossAverager()
        ctx.update_context(epoch=epoch, batch_idx=None, metrics_dict={})
        callbacks.on_train_loader_start(ctx)
        bar = self._progress(run, run.train_loader_len, f"Train epoch {epoch}")
        seen, start = 0, time.perf_counter()
        for batch_idx, batch in enumerate(itertools.islice(run.train_loader, run.train_loader_len)):
            inputs, target, extras = move_to_device(unpack_batch(batch), run.device)
            ctx.update_context(batch_idx=batch_idx, inputs=inputs, target=target, additional_batch_items=extras)
            callbacks.on_train_batch_start(ctx)
            with run.autocast():
                preds = net(inputs)
                loss, items = split_loss_output(run.criterion(preds, target))
            run.check_finite(loss, epoch, batch_idx)
            losses.update(items, len(inputs))
            if len(run.train_metrics):
                run.train_metrics.update(preds, target, inputs, extras)
            ctx.update_context(preds=preds, loss_log_items=items)
            callbacks.on_train_batch_loss_end(ctx)
            run.scaler.scale(loss).backward()
            callbacks.on_train_batch_backward_end(ctx)
            global_step = epoch * run.train_loader_len + batch_idx + 1
            if global_step % params.batch_accumulate == 0:
                self._optimizer_step(run, global_step)
            callbacks.on_train_batch_end(ctx)
            seen += len(inputs)
            bar.update(1)
            if not bar.disable and (batch_idx % 10 == 0 or batch_idx == run.train_loader_len - 1):
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}", img_s=f"{seen / (time.perf_counter() - start):.1f}")
        bar.close()
        names = run.loss_names(losses)
        results = {**losses.compute(names), **(run.train_metrics.compute() if len(run.train_metrics) else {})}
        ctx.update_context(metrics_dict=results)
        callbacks.on_train_loader_end(ctx)
        return results

    def _optimizer_step(self, run: TrainingRun, global_step: int) -> None:
        """Step at an accumulation boundary: clip (on unscaled gradients), step, zero, update the EMA."""
        run.callbacks.on_train_batch_gradient_step_start(run.context)
        if run.params.clip_grad_norm:
            run.scaler.unscale_(run.optimizer)
            torch.nn.utils.clip_grad_norm_(run.net.parameters(), run.params.clip_grad_norm)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.optimizer.zero_grad(set_to_none=True)
        if run.ema is not None:
            run.ema.update(run.net, step=global_step, total_steps=run.train_loader_len * run.params.max_epochs)
        run.callbacks.on_train_batch_gradient_step_end(run.context)

    # --- evaluation ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _evaluate(self, run, model, loader, metrics: MetricSet, phase: str, epoch, max_batches=None,
                  callbacks: CallbackHandler | None = None) -> dict:  # fmt: skip
        """One pass over `loader` firing the `phase` ("validation" or "test") events; returns losses + metrics."""
        ctx, callbacks = run.context, callbacks if callbacks is not None else run.callbacks
        was_training = model.training
        model.eval()
        metrics.reset()
        losses = LossAverager()
        ctx.update_context(epoch=epoch, batch_idx=None)
        getattr(callbacks, f"on_{phase}_loader_start")(ctx)
        total = len(loader) if max_batches is None else min(len(loader), max_batches)
        bar = self._progress(run, total, f"{phase.capitalize()} epoch {epoch}" if phase == "validation" else "Test")
        for batch_idx, batch in enumerate(itertools.islice(loader, total)):
            inputs, target, extras = move_to_device(unpack_batch(batch), run.device)
            ctx.update_context(batch_idx=batch_idx, inputs=inputs, target=target, additional_batch_items=extras)
            getattr(callbacks, f"on_{phase}_batch_start")(ctx)
            with run.autocast():
                preds = model(inputs)
                items = None
                if run.criterion is not None:
                    _, items = split_loss_output(run.criterion(preds, target))
                    losses.update(items, len(inputs))
            metrics.update(preds, target, inputs, extras)
            ctx.update_context(preds=preds, loss_log_items=items)
            getattr(callbacks, f"on_{phase}_batch_end")(ctx)
            bar.update(1)
        bar.close()
        results = {**losses.compute(run.loss_names(losses)), **metrics.compute()}
        ctx.update_context(metrics_dict=results)
        getattr(callbacks, f"on_{phase}_loader_end")(ctx)
        model.train(was_training)
        return results

    def _end_epoch(self, run: TrainingRun, epoch: int, train_results: dict, valid_results: dict) -> None:
        """Track the best metric, write checkpoints and logs of `epoch`."""
        improved = False
        if valid_results:
            self.valid_metrics = valid_results
            improved = run.update_best(valid_results)
            if improved:
                run.callbacks.on_validation_end_best_epoch(run.context)
        run.save_epoch_checkpoints(epoch, valid_results, improved)
        run.log_epoch(epoch, train_results, valid_results, improved)

    def _progress(self, run, total: int, desc: str):
        disable = run.params.silent_mode or not is_main_process()
        return tqdm(total=total, desc=desc, disable=disable, leave=False, dynamic_ncols=True, unit="batch")

    # --- test ------------------------------------------------------------------------------------------------------

    def test(self, model: nn.Module, test_loader, test_metrics_list, loss=None, silent_mode: bool = False,
             test_phase_callbacks=None, use_ema_net: bool = True, criterion_params: dict | None = None) -> dict:  # fmt: skip
        """Evaluate `model` (or the EMA of the last training when `use_ema_net`) on `test_loader`.

        Returns name -> value for each loss item (when `loss` is given) and each metric.
        """
        if use_ema_net and self.ema_model is not None and model is self.net:
            model = self.ema_model.ema
        model = model.to(self.device)
        criterion = build_loss(loss, criterion_params or {}) if loss is not None else None
        if isinstance(criterion, nn.Module):
            criterion.to(self.device)
        run = _EvalRun(self, criterion, test_phase_callbacks or [], silent_mode)
        metrics = MetricSet(test_metrics_list or [], self.device)
        return self._evaluate(run, model, test_loader, metrics, "test", epoch=None)


class _EvalRun:
    """The few pieces of a run that `Trainer._evaluate` needs, for `Trainer.test`."""

    def __init__(self, trainer: Trainer, criterion, callbacks, silent_mode: bool):
        self.device = trainer.device
        self.criterion = criterion
        self.callbacks = CallbackHandler(callbacks)
        self.context = PhaseContext(device=self.device, criterion=criterion, experiment_name=trainer.experiment_name,
                                    checkpoints_dir_path=trainer.checkpoints_dir_path, net=trainer.net)  # fmt: skip
        self.params = SimpleNamespace(silent_mode=silent_mode)

    def autocast(self):
        return contextlib.nullcontext()

    def loss_names(self, losses: LossAverager) -> list[str]:
        return loss_item_names(self.criterion, 0 if losses.sum is None else losses.sum.numel())
