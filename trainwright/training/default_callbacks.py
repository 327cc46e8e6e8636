"""Every policy of a run as a callback built from the parameters, in the order the events reach them.

detectron2's `DefaultTrainer.build_hooks` is the model: the loop knows none of these; a new policy is a
callback added here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from trainwright.callbacks.base import Callback, CallbackHandler, ContextSgMethods
from trainwright.callbacks.lr_registry import build_lr_callbacks
from trainwright.callbacks.registry import build_callback, build_callback_list
from trainwright.training.checkpointing import Checkpointer
from trainwright.training.policies import (
    BestCheckpointKeeper,
    EMAUpdate,
    EpochCheckpoints,
    ModelAveraging,
    NaNGuard,
    PreciseBN,
    PrePrediction,
    ProgressBar,
    ProgressReporter,
    ResultsWriter,
)
from trainwright.training.run_methods import RunMethods
from trainwright.training.state import TrainState

__all__ = ["RunCallbacks", "build_callbacks"]


class RunCallbacks(NamedTuple):
    """What `build_callbacks` makes: the callbacks in order, the checkpointer they share, the context methods."""

    handler: CallbackHandler
    checkpointer: Checkpointer
    context_methods: ContextSgMethods


def build_callbacks(state: TrainState, additional_configs: Mapping | None = None) -> RunCallbacks:
    """The callbacks of a run, in this order (each event reaches them in it):

    0. PrePrediction (pre_prediction_callback): first, so everything after sees the rewritten batch.
    1. NaNGuard: first at the loss, so no other callback sees a batch with a non-finite loss.
    2. EMAUpdate (ema=True): before the phase callbacks, which see the updated average.
    3. The phase_callbacks, in their order (recipe entries such as {"EarlyStop": {...}} built by name).
    4. The LR schedule (lr_mode, then warmup_mode), built by `callbacks.lr_registry`.
    5. PreciseBN (precise_bn=True): after the phase callbacks' TRAIN_EPOCH_END, before validation.
    6. ProgressBar, unless a phase callback is a ProgressReporter (e.g. the command line's table).
    7. BestCheckpointKeeper: decides metric_to_watch, improvement and ckpt_best.
    8. ModelAveraging (average_best_models=True, save_model=True, rank 0).
    9. EpochCheckpoints (save_model=True): after every callback whose state changes at an epoch's end.
    10. ResultsWriter (rank 0): last, so the text log is closed after everyone else has logged.
    """
    params = state.params
    user: list[Callback] = build_callback_list(params.phase_callbacks)
    writes_checkpoints = bool(params.save_model) and state.is_main
    checkpointer = Checkpointer(state, enabled=writes_checkpoints)
    keeper = BestCheckpointKeeper(state, checkpointer, params.metric_to_watch, params.greater_metric_to_watch_is_better,
                                  params.ckpt_best_name, save=writes_checkpoints)  # fmt: skip

    callbacks: list[Callback] = []
    if params.pre_prediction_callback is not None:
        callbacks.append(PrePrediction(state, build_callback(params.pre_prediction_callback, "pre_prediction_callback")))
    callbacks.append(NaNGuard(state, defer=any(getattr(cb, "handles_non_finite_loss", False) for cb in user)))
    if state.ema is not None:
        callbacks.append(EMAUpdate(state))
    callbacks += user
    callbacks += build_lr_callbacks(params, state.net, state.train_loader_len)
    if params.precise_bn:
        callbacks.append(PreciseBN(state, params.precise_bn_batch_size))
    if not any(isinstance(cb, ProgressReporter) for cb in user):
        callbacks.append(ProgressBar(state, enabled=not params.silent_mode and state.is_main))
    callbacks.append(keeper)
    if params.average_best_models and writes_checkpoints:
        callbacks.append(ModelAveraging(state, checkpointer, keeper, params.number_of_models_to_average))
    if writes_checkpoints:
        callbacks.append(EpochCheckpoints(state, checkpointer, params.save_ckpt_epoch_list))
    if state.is_main:
        callbacks.append(ResultsWriter(state, additional_configs))

    # The phase callbacks' states keep the keys of earlier versions: "<position>:<class name>".
    for i, cb in enumerate(user):
        if hasattr(cb, "state_dict") and hasattr(cb, "load_state_dict"):
            checkpointer.add_checkpointable(f"{i}:{type(cb).__name__}", cb)
    checkpointer.add_checkpointable(keeper.state_key, keeper)
    return RunCallbacks(CallbackHandler(callbacks), checkpointer, RunMethods(state, keeper))
