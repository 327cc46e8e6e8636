"""`context.context_methods` as SuperGradients 3.1 hands it out: get_net, set_net, set_ckpt_best_name,
reset_best_metric, validate_epoch and set_ema at the epoch-level events only; Trainer.get_net / set_net."""

import copy

import pytest
import torch
from trainer_helpers import base_params, tiny_model

from trainwright import Trainer
from trainwright.callbacks.base import EVENTS, Callback

METHODS = {"get_net", "set_net", "set_ckpt_best_name", "reset_best_metric", "validate_epoch", "set_ema"}
EPOCH_EVENTS = {"on_training_start", "on_train_loader_start", "on_train_loader_end", "on_validation_loader_start",
                "on_validation_loader_end", "on_validation_end_best_epoch", "on_epoch_end", "on_training_end"}
BATCH_EVENTS = {"on_train_batch_start", "on_train_batch_loss_end", "on_train_batch_backward_end",
                "on_train_batch_gradient_step_start", "on_train_batch_gradient_step_end", "on_train_batch_end",
                "on_validation_batch_start", "on_validation_batch_end"}


def available(context):
    return {name for name in METHODS if hasattr(context.context_methods, name)}


class MethodsPerEvent(Callback):
    """Which context methods every event sees; also carries an attribute from a batch event to the epoch end."""

    def __init__(self):
        self.seen = {}
        for event in EVENTS:
            setattr(self, event, self._recorder(event))

    def _recorder(self, event):
        def record(context):
            self.seen.setdefault(event, set()).update(available(context) or {"<none>"})
            if event == "on_train_batch_end":
                context.update_context(my_note=context.batch_idx)
            if event == "on_epoch_end":
                self.seen["note"] = context.my_note

        return record


def test_methods_at_epoch_level_events_only(tmp_path, loaders):
    spy = MethodsPerEvent()
    trainer = Trainer("phases", ckpt_root_dir=tmp_path, device="cpu")
    trainer.train(tiny_model(), base_params(max_epochs=1, phase_callbacks=[spy]), *loaders)
    for event in EPOCH_EVENTS:
        assert spy.seen[event] == METHODS, event
    for event in BATCH_EVENTS:
        assert spy.seen[event] == {"<none>"}, event
    assert spy.seen["note"] == 3  # batch and epoch events share the context's attributes

    test_spy = MethodsPerEvent()
    trainer.test(trainer.net, loaders[1], [], test_phase_callbacks=[test_spy])
    assert set(test_spy.seen) >= {"on_test_loader_start", "on_test_batch_end", "on_test_loader_end"}
    assert all(v == {"<none>"} for k, v in test_spy.seen.items() if k.startswith("on_test"))


def test_get_net_is_the_model_and_set_net_replaces_it(tmp_path, loaders):
    replacement = tiny_model(seed=5)
    reference = copy.deepcopy(replacement).eval()
    seen = {}

    class Swap(Callback):
        def on_train_loader_end(self, context):
            seen["before"] = context.context_methods.get_net
            context.context_methods.set_net(replacement)

        def on_validation_loader_end(self, context):
            seen["validated"] = context.net

    trainer = Trainer("swap", ckpt_root_dir=tmp_path, device="cpu")
    model = tiny_model()
    results = trainer.train(model, base_params(max_epochs=1, phase_callbacks=[Swap()]), *loaders)
    assert seen["before"] is model and seen["validated"] is replacement
    assert trainer.get_net is replacement  # a property, as in SG
    # the replacement (untrained: the optimizer keeps the first model's parameters) is what was validated
    expected = Trainer("ref", ckpt_root_dir=tmp_path, device="cpu").test(reference, loaders[1], [], loss="cross_entropy")
    assert results == pytest.approx(expected)


def test_set_net_warns_when_the_optimizer_does_not_update_the_new_model(tmp_path, loaders, caplog):
    class Swap(Callback):
        def on_training_start(self, context):
            context.context_methods.set_net(tiny_model(seed=3))

    Trainer("warn", ckpt_root_dir=tmp_path, device="cpu").train(
        tiny_model(), base_params(max_epochs=1, phase_callbacks=[Swap()]), *loaders)
    assert "parameters the optimizer does not update" in caplog.text


def test_trainer_set_net_and_get_net(tmp_path):
    trainer = Trainer("nets", ckpt_root_dir=tmp_path, device="cpu")
    assert trainer.get_net is None
    model = tiny_model()
    trainer.set_net(model)
    assert trainer.get_net is model and trainer.net is model


def test_validate_epoch_returns_the_validation_tuple_and_leaves_the_pass_alone(tmp_path, loaders):
    seen = {}

    class Validate(Callback):
        def on_train_loader_end(self, context):
            before = dict(context.metrics_dict)
            seen["tuple"] = context.context_methods.validate_epoch(context.epoch)
            seen["metrics_dict_kept"] = context.metrics_dict == before

        def on_validation_loader_end(self, context):
            seen["valid"] = dict(context.metrics_dict)

    trainer = Trainer("validate", ckpt_root_dir=tmp_path, device="cpu")
    trainer.train(tiny_model(), base_params(max_epochs=1, phase_callbacks=[Validate()]), *loaders)
    # nothing changes the weights between the call and the epoch's validation: same values, SG's order
    assert seen["tuple"] == pytest.approx(tuple(seen["valid"].values()))
    assert seen["metrics_dict_kept"]


def test_set_ema_switches_the_average_off(tmp_path, loaders):
    class NoEma(Callback):
        def on_training_start(self, context):
            context.context_methods.set_ema(False)

    trainer = Trainer("noema", ckpt_root_dir=tmp_path, device="cpu")
    trainer.train(tiny_model(), base_params(max_epochs=1, ema=True, phase_callbacks=[NoEma()]), *loaders)
    assert trainer.ema_model is None
    assert "ema_net" not in torch.load(tmp_path / "noema" / "ckpt_latest.pth", weights_only=True)


def test_set_ema_true_without_ema_is_a_clear_error(tmp_path, loaders):
    class Ema(Callback):
        def on_training_start(self, context):
            context.context_methods.set_ema(True)

    with pytest.raises(ValueError, match="built without ema=True"):
        Trainer("ema", ckpt_root_dir=tmp_path, device="cpu").train(
            tiny_model(), base_params(max_epochs=1, phase_callbacks=[Ema()]), *loaders)
