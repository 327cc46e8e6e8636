"""PhaseContext during training and test: a view of the trainer's state under the reference's names."""

import pytest
import torchmetrics
from trainer_helpers import base_params, make_loaders, tiny_model

from trainwright import Trainer
from trainwright.callbacks.base import Callback, PhaseContext
from trainwright.training.metric_set import LossAverager


class Snapshot(Callback):
    """Records what callbacks see at a few events."""

    def __init__(self):
        self.seen = {}

    def on_training_start(self, ctx):
        self.seen["start"] = dict(epoch=ctx.epoch, dir=ctx.checkpoints_dir_path, ckpt_dir=ctx.ckpt_dir,
                                  warmup=ctx.lr_warmup_epochs, silent=ctx.ddp_silent_mode, watch=ctx.metric_to_watch,
                                  ema=ctx.ema_model, optimizer=ctx.optimizer, is_context=isinstance(ctx, PhaseContext))

    def on_train_batch_loss_end(self, ctx):
        self.seen.setdefault("train", dict(metrics=ctx.metrics_compute_fn, meter=ctx.loss_avg_meter,
                                           items=ctx.loss_log_items, batch=ctx.batch_idx))

    def on_validation_batch_end(self, ctx):
        self.seen.setdefault("valid", dict(metrics=ctx.metrics_compute_fn, names=ctx.loss_logging_items_names))


def test_training_context_reads_the_state(tmp_path, loaders):
    snap = Snapshot()
    metric = torchmetrics.classification.MulticlassAccuracy(num_classes=2)
    trainer = Trainer("view", "cpu", ckpt_root_dir=tmp_path)
    params = base_params(max_epochs=1, ema=True, lr_warmup_epochs=0, valid_metrics_list=[metric],
                         metric_to_watch="MulticlassAccuracy", phase_callbacks=[snap])
    trainer.train(tiny_model(), params, *loaders)
    state, start = trainer.state, snap.seen["start"]
    assert start["is_context"] and start["epoch"] is None
    assert start["dir"] == start["ckpt_dir"] == trainer.experiment_dir == trainer.checkpoints_dir_path
    assert (start["warmup"], start["silent"], start["watch"]) == (0, False, "MulticlassAccuracy")
    assert start["ema"] is state.ema and start["optimizer"] is state.optimizer
    train = snap.seen["train"]
    assert train["metrics"] is state.train_metrics and isinstance(train["meter"], LossAverager)
    assert train["batch"] == 0 and train["items"].shape == (1,)
    assert snap.seen["valid"]["metrics"] is state.valid_metrics
    assert snap.seen["valid"]["names"] == ["CrossEntropyLoss"]  # known once the training pass ended


def test_a_callback_writes_through_the_context(tmp_path, loaders):
    class StopAfterFirstEpoch(Callback):
        def on_train_loader_end(self, ctx):
            ctx.update_context(stop_training=True, my_note="seen")

    trainer = Trainer("stop", "cpu", ckpt_root_dir=tmp_path)
    trainer.train(tiny_model(), base_params(max_epochs=5, phase_callbacks=[StopAfterFirstEpoch()]), *loaders)
    assert trainer.state.stop_training and trainer.state.epochs_done == 1
    assert trainer.context.my_note == "seen"


def test_attributes_the_reference_has_and_trainwright_does_not_are_gone(tmp_path, loaders):
    context = PhaseContext()
    for name in ("checkpoint_params", "architecture", "arch_params"):
        with pytest.raises(AttributeError):
            getattr(context, name)
    assert PhaseContext(architecture="yolox_s").architecture == "yolox_s"  # a caller may still set them


def test_test_context_has_the_test_objects(tmp_path):
    seen = {}

    class Spy(Callback):
        def on_test_batch_end(self, ctx):
            seen.update(loader=ctx.test_loader, metrics=ctx.test_metrics, net=ctx.net, optimizer=ctx.optimizer,
                        computing=ctx.metrics_compute_fn, preds=ctx.preds.shape)

    model, loader = tiny_model(), make_loaders()[1]
    metric = torchmetrics.classification.MulticlassAccuracy(num_classes=2)
    Trainer("t", "cpu", ckpt_root_dir=tmp_path).test(model, loader, [metric], test_phase_callbacks=[Spy()], silent_mode=True)
    assert seen["loader"] is loader and seen["net"] is model and seen["optimizer"] is None
    assert seen["metrics"] is seen["computing"] and seen["metrics"].metrics == [metric]
    assert seen["preds"] == (8, 2)
