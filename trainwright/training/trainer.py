"""The Trainer: the loop, and nothing else.

Read `train` top to bottom: the state is built from the parameters (`setup.build_train_state`), every policy
is a callback (`default_callbacks.build_callbacks`), then each epoch trains (`_train_epoch`), validates when
due (`_validate`) and fires `on_epoch_end`, where checkpoints and results are written. The events fire in the
order documented in `trainwright.callbacks.base`.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import os

import torch
from torch import nn

from trainwright.callbacks.base import CallbackHandler
from trainwright.distributed import is_main_process, unwrap_model
from trainwright.logging import check_file_name, interrupts_deferred
from trainwright.training.batches import move_to_device, unpack_batch
from trainwright.training.checkpointing import read_resume_checkpoint
from trainwright.training.context import StateContext
from trainwright.training.data_order import set_epoch_order
from trainwright.training.default_callbacks import build_callbacks
from trainwright.training.devices import resolve_device
from trainwright.training.evaluation import NO_EVENTS, evaluate, loss_results, test_events, validation_events
from trainwright.training.experiment_dir import claim_experiment_dir
from trainwright.training.losses import build_loss, split_loss_output
from trainwright.training.metric_set import LossAverager, MetricSet
from trainwright.training.params import resolve_training_params
from trainwright.training.policies import ProgressBar, ProgressReporter
from trainwright.training.setup import build_train_state, open_sg_logger
from trainwright.training.state import LoopState, TrainState

__all__ = ["Trainer"]

logger = logging.getLogger("trainwright")


class Trainer:
    """Trains and evaluates a model; files go to `experiment_dir` = `ckpt_root_dir/experiment_name/`.

    Args:
        experiment_name: name of the run and of its directory.
        ckpt_root_dir: parent of the experiment directory (default: ./checkpoints).
        device: "cpu", "cuda", "cuda:1", a torch.device, or None for CUDA when available.
    """

    def __init__(self, experiment_name: str, ckpt_root_dir: str | os.PathLike | None = None, device=None):
        self.experiment_name = check_file_name("experiment_name", experiment_name)  # stays inside ckpt_root_dir
        self.ckpt_root_dir = os.fspath(ckpt_root_dir) if ckpt_root_dir is not None else os.path.abspath("checkpoints")
        self.experiment_dir = os.path.join(self.ckpt_root_dir, experiment_name)
        self.device = resolve_device(device)
        self.state: TrainState | None = None  # the last training's state, its callbacks and their context
        self.callbacks: CallbackHandler | None = None
        self.context: StateContext | None = None
        self.net: nn.Module | None = None
        self.ema_model = None
        self.valid_metrics: dict[str, float] = {}
        self.best_metric: float | None = None
        self.interrupted = False
        self.interrupt_signal: int | None = None  # the signal that interrupted the last training, if one did

    @property
    def checkpoints_dir_path(self) -> str:
        """The reference's name of `experiment_dir`."""
        return self.experiment_dir

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
        params = resolve_training_params(training_params)
        resume = read_resume_checkpoint(params, self.experiment_dir)  # before anything is built or written
        state = build_train_state(model, params, train_loader, valid_loader, device=self.device,
                                  experiment_name=self.experiment_name, experiment_dir=self.experiment_dir,
                                  processing_params=processing_params)  # fmt: skip
        callbacks, checkpointer, methods = build_callbacks(state, additional_configs_to_log)
        if resume is not None:
            checkpointer.restore(*resume)
        self.state, self.net, self.ema_model = state, state.net, state.ema
        self.valid_metrics, self.interrupted = {}, False
        self.callbacks, self.context = callbacks, StateContext(state, context_methods=methods)
        # The directory is this run's alone while it trains (rank 0 writes); another run there is refused.
        with claim_experiment_dir(self.experiment_dir) if state.is_main else contextlib.nullcontext():
            open_sg_logger(state)  # the first file of the run, once nothing else can fail
            self._run(state, callbacks)
        self.best_metric, self.interrupt_signal = state.best_metric, state.interrupt_signal
        return self.valid_metrics

    def _run(self, state: TrainState, callbacks: CallbackHandler) -> None:
        """The epochs; on_training_end always runs (also after an error or an interruption)."""
        params = state.params
        try:
            callbacks.on_training_start(self.context)
            for epoch in range(state.epochs_done, params.max_epochs):
                if state.stop_training:
                    logger.info("A callback asked to stop training before epoch %d", epoch)
                    break
                self._train_epoch(epoch)
                if state.validates(epoch):
                    self._validate()
                with interrupts_deferred():  # the epoch's files (checkpoints, results) are written as a whole
                    state.epochs_done = epoch + 1
                    callbacks.on_epoch_end(self.context)
            self._validate_averaged_model()
        except KeyboardInterrupt:
            state.interrupted = self.interrupted = True
            logger.warning("Training interrupted at epoch %s, batch %s", state.epoch, state.batch.index)
        except Exception:
            if state.interrupt_signal is None:
                logger.exception("Training stopped by an error at epoch %s, batch %s", state.epoch, state.batch.index)
                raise
            # A second Ctrl-C raised inside a library call that turned it into an error of its own.
            state.interrupted = self.interrupted = True
            logger.warning("Training interrupted at epoch %s, batch %s", state.epoch, state.batch.index, exc_info=True)
        finally:
            try:
                callbacks.on_training_end(self.context)
            finally:
                state.sg_logger.flush()
                state.sg_logger.close()

    def _train_epoch(self, epoch: int) -> None:
        state, callbacks = self.state, self.callbacks
        state.net.train()
        set_epoch_order(state.train_loader, state.params.seed, epoch)
        state.train_metrics.reset()
        state.metrics, state.losses = state.train_metrics, LossAverager()
        state.epoch, state.num_batches, state.batch.index = epoch, state.train_loader_len, None
        state.metrics_dict, state.train_results, state.valid_results = {}, {}, {}
        callbacks.on_train_loader_start(self.context)
        for batch_idx, batch in enumerate(itertools.islice(state.train_loader, state.train_loader_len)):
            self._train_step(epoch, batch_idx, batch)
        train_metrics = state.train_metrics.compute() if len(state.train_metrics) else {}
        state.train_results = state.metrics_dict = {**loss_results(state, state.losses), **train_metrics}
        callbacks.on_train_loader_end(self.context)

    def _train_step(self, epoch: int, batch_idx: int, raw_batch) -> None:
        """Forward, loss, backward, and an optimizer step at each accumulation boundary."""
        state, callbacks, context, batch = self.state, self.callbacks, self.context, self.state.batch
        batch.index = batch_idx
        batch.inputs, batch.target, batch.extras = move_to_device(unpack_batch(raw_batch), state.device)
        state.global_step = epoch * state.train_loader_len + batch_idx + 1
        callbacks.on_train_batch_start(context)
        with state.autocast():
            batch.preds = state.net(batch.inputs)
            batch.loss, batch.loss_items = split_loss_output(state.criterion(batch.preds, batch.target))
        state.losses.update(batch.loss_items, len(batch.inputs))
        if len(state.train_metrics):
            state.train_metrics.update(batch.preds, batch.target, batch.inputs, batch.extras)
        callbacks.on_train_batch_loss_end(context)
        state.scaler.scale(batch.loss).backward()
        callbacks.on_train_batch_backward_end(context)
        if state.global_step % state.params.batch_accumulate == 0:
            self._optimizer_step()
        callbacks.on_train_batch_end(context)

    def _optimizer_step(self) -> None:
        """Clip (on unscaled gradients), step, zero the gradients."""
        state = self.state
        self.callbacks.on_train_batch_gradient_step_start(self.context)
        if state.params.clip_grad_norm:
            state.scaler.unscale_(state.optimizer)
            torch.nn.utils.clip_grad_norm_(state.net.parameters(), state.params.clip_grad_norm)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.optimizer.zero_grad(set_to_none=True)
        self.callbacks.on_train_batch_gradient_step_end(self.context)

    def _validate(self) -> None:
        """Validate the model validation uses (the EMA when on); on improvement, fire on_validation_end_best_epoch."""
        state = self.state
        state.valid_results = self.valid_metrics = evaluate(
            state, state.eval_net, state.valid_loader, state.valid_metrics, validation_events(self.callbacks),
            self.context, state.params.max_valid_batches)  # fmt: skip
        if state.new_best:
            self.callbacks.on_validation_end_best_epoch(self.context)

    def _validate_averaged_model(self) -> None:
        """After the last epoch: validate the average of the best epochs (average_best_models), no batch events."""
        state = self.state
        if state.averaged_weights is None or state.valid_loader is None:
            return
        model = copy.deepcopy(unwrap_model(state.eval_net))
        model.load_state_dict(state.averaged_weights)
        results = evaluate(state, model, state.valid_loader, state.valid_metrics, NO_EVENTS, self.context,
                           state.params.max_valid_batches)  # fmt: skip
        self.callbacks.on_average_best_models_validation_end(self.context)
        logger.info("Averaged model of the best epochs: %s", results)

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
        state = LoopState(device=self.device, net=model, criterion=criterion, experiment_name=self.experiment_name,
                          experiment_dir=self.experiment_dir)  # fmt: skip
        metrics = MetricSet(test_metrics_list or [], self.device)
        callbacks = list(test_phase_callbacks or [])
        if not any(isinstance(cb, ProgressReporter) for cb in callbacks):
            callbacks.append(ProgressBar(state, enabled=not silent_mode and is_main_process()))
        context = StateContext(state, test_loader=test_loader, test_metrics=metrics)
        return evaluate(state, model, test_loader, metrics, test_events(CallbackHandler(callbacks)), context)
