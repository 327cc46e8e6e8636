"""One pass of a model over a loader without gradients (validation or test), firing that pass's events."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from trainwright.callbacks.base import Callback, PhaseContext
from trainwright.training.batches import move_to_device, unpack_batch
from trainwright.training.context import StateContext
from trainwright.training.distributed_run import same_numbers
from trainwright.training.losses import loss_item_names, split_loss_output
from trainwright.training.metric_set import LossAverager, MetricSet
from trainwright.training.state import LoopState

__all__ = ["PassEvents", "validation_events", "test_events", "NO_EVENTS", "evaluate", "loss_results"]

Event = Callable[[PhaseContext], None]


@dataclass(frozen=True)
class PassEvents:
    """The four events of an evaluation pass, as the callbacks' methods to call."""

    loader_start: Event
    batch_start: Event
    batch_end: Event
    loader_end: Event


def validation_events(callbacks: Callback) -> PassEvents:
    return PassEvents(callbacks.on_validation_loader_start, callbacks.on_validation_batch_start,
                      callbacks.on_validation_batch_end, callbacks.on_validation_loader_end)  # fmt: skip


def test_events(callbacks: Callback) -> PassEvents:
    return PassEvents(callbacks.on_test_loader_start, callbacks.on_test_batch_start, callbacks.on_test_batch_end,
                      callbacks.on_test_loader_end)  # fmt: skip


def _nothing(context: PhaseContext) -> None:
    return None


NO_EVENTS = PassEvents(_nothing, _nothing, _nothing, _nothing)


def loss_results(state: LoopState, losses: LossAverager) -> dict[str, float]:
    """Name -> mean of each loss component of a pass (averaged over processes); records the names in the state."""
    mean = losses.mean()
    if mean is None:
        return {}
    state.loss_names = loss_item_names(state.criterion, mean.numel())
    return dict(zip(state.loss_names, mean.tolist()))


@torch.no_grad()
def evaluate(state: LoopState, model: nn.Module, loader, metrics: MetricSet, events: PassEvents,
             context: PhaseContext, max_batches: int | None = None) -> dict[str, float]:  # fmt: skip
    """Run `model` in eval mode over `loader` (at most `max_batches`); returns each loss item and metric.

    The batch and its predictions go to `state.batch`, the results to `state.metrics_dict` before
    `events.loader_end`. The model's train/eval mode is restored afterwards. The batch events see the context
    as batch events do (`StateContext.batch_view`: no context_methods), the loader events as it is.
    """
    batch_context = context.batch_view() if isinstance(context, StateContext) else context
    was_training = model.training
    model.eval()
    metrics.reset()
    state.metrics, state.losses = metrics, LossAverager()
    state.num_batches = len(loader) if max_batches is None else min(len(loader), max_batches)
    batch = state.batch
    batch.index, batch.loss = None, None
    events.loader_start(context)
    for index, raw in enumerate(itertools.islice(loader, state.num_batches)):
        batch.index = index
        batch.inputs, batch.target, batch.extras = move_to_device(unpack_batch(raw), state.device)
        events.batch_start(batch_context)
        with state.autocast():
            batch.preds = model(batch.inputs)
            batch.loss_items = None
            if state.criterion is not None:
                _, batch.loss_items = split_loss_output(state.criterion(batch.preds, batch.target))
                state.losses.update(batch.loss_items, len(batch.inputs))
        metrics.update(batch.preds, batch.target, batch.inputs, batch.extras)
        events.batch_end(batch_context)
    state.metrics_dict = results = same_numbers({**loss_results(state, state.losses), **metrics.compute()})
    events.loader_end(context)
    model.train(was_training)
    return results
