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
from trainwright.distributed import (
    MultiGPUMode,
    broadcast_tensors,
    finish_collectives,
    is_distributed,
    is_main_process,
    unwrap_model,
)
from trainwright.logging import check_file_name, interrupts_deferred
from trainwright.training import devices
from trainwright.training.batches import criterion_extras, move_to_device, unpack_batch
from trainwright.training.checkpointing import read_resume_checkpoint
from trainwright.training.context import StateContext
from trainwright.training.data_order import seed_epoch_streams, set_epoch_order, shard_loader
from trainwright.training.default_callbacks import build_callbacks
from trainwright.training.distributed_run import (
    agree_on_stop,
    all_or_none,
    as_peer_lost,
    check_same_batches,
    gradient_sync,
    is_collective_failure,
    resolve_device,
    same_numbers,
    sync_buffers,
)
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


def _shown(epoch: int | None) -> int | None:
    """The 1-based epoch number users see for the 0-based loop index."""
    return None if epoch is None else epoch + 1


class Trainer:
    """Trains and evaluates a model; files go to `experiment_dir` = `ckpt_root_dir/experiment_name/`.

    Args:
        experiment_name: name of the run and of its directory.
        device: "cpu", "cuda", "cuda:1", a torch.device, or None for CUDA when available. Under torch.distributed
            "cuda" (or None on a CUDA machine) means cuda:LOCAL_RANK.
        multi_gpu: "Off" (default), "DDP" or "AUTO" (`distributed.MultiGPUMode`). A process launched by torchrun
            joins its process group (gloo on CPU, nccl on CUDA) whatever this says; "DDP" outside torchrun
            relaunches the current command on every visible GPU (`restart_script_with_ddp`).
        ckpt_root_dir: parent of the experiment directory (default: ./checkpoints).
    """

    def __init__(self, experiment_name: str, device=None, multi_gpu=None,
                 ckpt_root_dir: str | os.PathLike | None = None):  # fmt: skip
        self.experiment_name = check_file_name("experiment_name", experiment_name)  # stays inside ckpt_root_dir
        _check_device_argument(device)
        devices.resolve_device(device)  # a device this machine lacks (cuda without a GPU) is an error naming it
        self.ckpt_root_dir = os.fspath(ckpt_root_dir) if ckpt_root_dir is not None else os.path.abspath("checkpoints")
        self.experiment_dir = os.path.join(self.ckpt_root_dir, experiment_name)
        self.device = resolve_device(device, multi_gpu)
        self.multi_gpu = MultiGPUMode.DISTRIBUTED_DATA_PARALLEL if is_distributed() else MultiGPUMode.OFF
        self.state: TrainState | None = None  # the last training's state, its callbacks and their context
        self.callbacks: CallbackHandler | None = None
        self.context: StateContext | None = None  # what epoch-level events see (with the run's context_methods)
        self.batch_context: StateContext | None = None  # the same view as batch events see it (no context_methods)
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

    @property
    def get_net(self) -> nn.Module | None:
        """The model (the last training's, or the one given to `set_net`); a property, as in the reference."""
        return self.net

    def set_net(self, net: nn.Module) -> None:
        """Replace the model: `get_net`, and during a run the model the loop trains and validates."""
        self.net = net
        if self.state is not None:
            self.state.net = net

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
        with all_or_none("reading the checkpoint to resume from"):
            resume = read_resume_checkpoint(params, self.experiment_dir)  # before anything is built or written
        state = build_train_state(model, params, train_loader, valid_loader, device=self.device,
                                  experiment_name=self.experiment_name, experiment_dir=self.experiment_dir,
                                  processing_params=processing_params)  # fmt: skip
        check_same_batches(state.train_loader_len)
        callbacks, checkpointer, methods = build_callbacks(state, additional_configs_to_log)
        if resume is not None:
            checkpointer.restore(*resume)
        self.state, self.net, self.ema_model = state, state.net, state.ema
        self.valid_metrics, self.interrupted = {}, False
        self.callbacks, self.context = callbacks, StateContext(state, context_methods=methods)
        self.batch_context = self.context.batch_view()
        # The directory is this run's alone while it trains (rank 0 writes); another run there is refused.
        with claim_experiment_dir(self.experiment_dir) if state.is_main else contextlib.nullcontext():
            open_sg_logger(state)  # the first file of the run, once nothing else can fail
            self._run(state, callbacks)
        self.best_metric, self.interrupt_signal = state.best_metric, state.interrupt_signal
        if not self.interrupted:
            finish_collectives()  # every process leaves train() together, with no collective in flight
        return self.valid_metrics

    def _run(self, state: TrainState, callbacks: CallbackHandler) -> None:
        """The epochs; on_training_end always runs (also after an error or an interruption)."""
        params = state.params
        try:
            callbacks.on_training_start(self.context)
            for epoch in range(state.epochs_done, params.max_epochs):
                if state.stop_training:
                    logger.info("A callback asked to stop training before epoch %d", epoch + 1)
                    break
                self._train_epoch(epoch)
                if state.validates(epoch):
                    self._validate()
                with interrupts_deferred():  # the epoch's files (checkpoints, results) are written as a whole
                    state.epochs_done = epoch + 1
                    callbacks.on_epoch_end(self.context)
                state.stop_training = agree_on_stop(state.stop_training)
            self._validate_averaged_model()
        except KeyboardInterrupt:
            state.interrupted = self.interrupted = True
            logger.warning("Training interrupted at epoch %s, batch %s", _shown(state.epoch), state.batch.index)
        except Exception as err:
            if state.interrupt_signal is None:
                logger.exception("Training stopped by an error at epoch %s, batch %s", _shown(state.epoch), state.batch.index)
                if is_distributed() and is_collective_failure(err):
                    raise as_peer_lost(err) from err
                raise
            # A second Ctrl-C raised inside a library call that turned it into an error of its own.
            state.interrupted = self.interrupted = True
            logger.warning("Training interrupted at epoch %s, batch %s", _shown(state.epoch), state.batch.index, exc_info=True)
        finally:
            try:
                callbacks.on_training_end(self.context)
            finally:
                self.net, self.ema_model = state.net, state.ema  # a callback may have replaced them (set_net, set_ema)
                state.sg_logger.flush()
                state.sg_logger.close()

    def _train_epoch(self, epoch: int) -> None:
        state, callbacks = self.state, self.callbacks
        state.net.train()
        set_epoch_order(state.train_loader, state.params.seed, epoch)
        seed_epoch_streams(state.params.seed, epoch)
        state.train_metrics.reset()
        state.metrics, state.losses = state.train_metrics, LossAverager()
        state.epoch, state.num_batches, state.batch.index = epoch, state.train_loader_len, None
        state.metrics_dict, state.train_results, state.valid_results = {}, {}, {}
        callbacks.on_train_loader_start(self.context)
        for batch_idx, batch in enumerate(itertools.islice(state.train_loader, state.train_loader_len)):
            self._train_step(epoch, batch_idx, batch)
        sync_buffers(unwrap_model(state.net))  # DDP would at the next forward; validation and checkpoints need it now
        sync_buffers(state.ema.ema if state.ema is not None else None)
        train_metrics = state.train_metrics.compute() if len(state.train_metrics) else {}
        state.train_results = state.metrics_dict = same_numbers({**loss_results(state, state.losses), **train_metrics})
        callbacks.on_train_loader_end(self.context)

    def _train_step(self, epoch: int, batch_idx: int, raw_batch) -> None:
        """Forward, loss, backward, and an optimizer step at each accumulation boundary."""
        state, callbacks, context, batch = self.state, self.callbacks, self.batch_context, self.state.batch
        batch.index = batch_idx
        batch.inputs, batch.target, batch.extras = move_to_device(unpack_batch(raw_batch), state.device)
        state.global_step = epoch * state.train_loader_len + batch_idx + 1
        stepping = state.global_step % state.params.batch_accumulate == 0
        callbacks.on_train_batch_start(context)
        with gradient_sync(state.net, stepping):  # DDP's no_sync() on the batches that only accumulate
            with state.autocast():
                batch.preds = state.net(batch.inputs)
                loss_extras = criterion_extras(state.criterion, batch.extras)
                batch.loss, batch.loss_items = split_loss_output(state.criterion(batch.preds, batch.target, **loss_extras))
            state.losses.update(batch.loss_items, len(batch.inputs))
            if len(state.train_metrics):
                state.train_metrics.update(batch.preds, batch.target, batch.inputs, batch.extras)
            callbacks.on_train_batch_loss_end(context)
            if batch.loss is not None:
                state.scaler.scale(batch.loss).backward()
        if batch.loss is not None:
            callbacks.on_train_batch_backward_end(context)
            if stepping:
                self._optimizer_step()
        elif stepping:  # NaNGuard skipped a non-finite loss a callback handles: this window ends without a step
            state.optimizer.zero_grad(set_to_none=True)
        callbacks.on_train_batch_end(context)

    def _optimizer_step(self) -> None:
        """Clip (on unscaled gradients), step, zero the gradients."""
        state = self.state
        self.callbacks.on_train_batch_gradient_step_start(self.batch_context)
        if state.params.clip_grad_norm:
            state.scaler.unscale_(state.optimizer)
            torch.nn.utils.clip_grad_norm_(state.net.parameters(), state.params.clip_grad_norm)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.optimizer.zero_grad(set_to_none=True)
        self.callbacks.on_train_batch_gradient_step_end(self.batch_context)

    def _validate(self) -> None:
        """Validate the model validation uses (the EMA when on); on improvement, fire on_validation_end_best_epoch."""
        state = self.state
        state.valid_results = self.valid_metrics = evaluate(
            state, unwrap_model(state.eval_net), state.valid_loader, state.valid_metrics, validation_events(self.callbacks),
            self.context, state.params.max_valid_batches)  # fmt: skip
        if state.new_best:
            self.callbacks.on_validation_end_best_epoch(self.context)

    def _validate_averaged_model(self) -> None:
        """After the last epoch: validate the average of the best epochs (average_best_models), no batch events."""
        state = self.state
        if not same_numbers(state.averaged_weights is not None) or state.valid_loader is None:
            return  # rank 0 (the one that keeps the best models) decides
        model = copy.deepcopy(unwrap_model(state.eval_net))
        if state.averaged_weights is not None:
            model.load_state_dict(state.averaged_weights)
        broadcast_tensors(list(model.state_dict().values()))
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
        model = unwrap_model(model).to(self.device)  # no DDP collectives: each process tests its own share
        criterion = build_loss(loss, criterion_params or {}) if loss is not None else None
        if isinstance(criterion, nn.Module):
            criterion.to(self.device)
        state = LoopState(device=self.device, net=model, criterion=criterion, experiment_name=self.experiment_name,
                          experiment_dir=self.experiment_dir)  # fmt: skip
        metrics = MetricSet(test_metrics_list or [], self.device)
        test_loader = shard_loader(test_loader, 0, training=False, what="test loader")
        callbacks = list(test_phase_callbacks or [])
        if not any(isinstance(cb, ProgressReporter) for cb in callbacks):
            callbacks.append(ProgressBar(state, enabled=not silent_mode and is_main_process()))
        context = StateContext(state, test_loader=test_loader, test_metrics=metrics)
        return evaluate(state, model, test_loader, metrics, test_events(CallbackHandler(callbacks)), context)


def _check_device_argument(device) -> None:
    """A clear error for a device that is not one (e.g. a folder passed where ckpt_root_dir used to be second)."""
    if device is None or isinstance(device, torch.device):
        return
    try:
        torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r} (the arguments "
                         "are Trainer(experiment_name, device, multi_gpu, ckpt_root_dir): pass ckpt_root_dir= "
                         "by keyword)") from None
