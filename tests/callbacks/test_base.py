"""Phase mapping, context and handler dispatch."""

import pytest

from trainwright.callbacks.base import (
    EVENT_OF_PHASE,
    EVENTS,
    Callback,
    CallbackHandler,
    ContextSgMethods,
    Phase,
    PhaseCallback,
    PhaseContext,
)


class Recorder(PhaseCallback):
    def __init__(self, phase, log):
        super().__init__(phase)
        self.log = log

    def __call__(self, context):
        self.log.append((self.phase, context.epoch))


@pytest.mark.parametrize("phase", list(Phase))
def test_each_phase_fires_on_exactly_its_event(phase):
    log = []
    cb = Recorder(phase, log)
    context = PhaseContext(epoch=7)
    for event in EVENTS:
        getattr(cb, event)(context)
    assert log == [(phase, 7)]
    log.clear()
    getattr(cb, EVENT_OF_PHASE[phase])(context)
    assert log == [(phase, 7)]


def test_phase_accepts_its_string_value_and_rejects_others():
    assert Recorder("train_epoch_end", []).phase is Phase.TRAIN_EPOCH_END
    with pytest.raises(ValueError, match="NOT_A_PHASE"):
        Recorder("NOT_A_PHASE", [])


def test_context_defaults_to_none_and_updates():
    context = PhaseContext(epoch=1, custom=3)
    assert context.batch_idx is None and context.net is None and context.custom == 3
    context.update_context(batch_idx=5, epoch=2)
    assert (context.epoch, context.batch_idx) == (2, 5)


def test_handler_calls_callbacks_in_order_and_sees_appended_ones():
    calls = []

    class A(Callback):
        def on_train_batch_end(self, context):
            calls.append("A")

    class B(Callback):
        def on_train_batch_end(self, context):
            calls.append("B")

    handler = CallbackHandler([A(), B()])
    handler.on_train_batch_end(PhaseContext())
    handler.callbacks.append(A())
    handler.on_train_batch_end(PhaseContext())
    handler.on_training_start(PhaseContext())  # no override: nothing happens
    assert calls == ["A", "B", "A", "B", "A"]


def test_handler_rejects_non_callbacks():
    with pytest.raises(TypeError, match="Callback instances"):
        CallbackHandler([object()])


def test_phase_callback_without_call_raises():
    with pytest.raises(NotImplementedError):
        PhaseCallback(Phase.TEST_END).on_test_loader_end(PhaseContext())


def test_context_sg_methods_exposes_given_callables():
    methods = ContextSgMethods(get_net=lambda: "net")
    assert methods.get_net() == "net"


def test_the_handler_dispatches_every_event_by_its_own_method():
    assert tuple(name for name in vars(CallbackHandler) if name.startswith("on_")) == EVENTS
    calls = []

    class All(Callback):
        pass

    for event in EVENTS:
        setattr(All, event, lambda self, ctx, event=event: calls.append(event))
    handler = CallbackHandler([All()])
    for event in EVENTS:
        getattr(handler, event)(PhaseContext())
    assert calls == list(EVENTS)
