"""The policies of a run as default callbacks: their order, how a phase callback replaces or steers one, and
what each one writes or decides, through Trainer.train."""

import logging

import pytest
import torch
import torchmetrics
from trainer_helpers import base_params, tiny_model

from trainwright import Trainer
from trainwright.callbacks.base import Callback
from trainwright.training.params import resolve_training_params
from trainwright.training.policies import (
    BestCheckpointKeeper,
    EMAUpdate,
    EpochCheckpoints,
    ModelAveraging,
    ProgressBar,
    ProgressReporter,
    ResultsWriter,
)


class Mine(Callback):
    pass


def test_the_callbacks_of_a_run_in_their_order(tmp_path, loaders):
    seen = []

    class Spy(Callback):
        def on_training_start(self, ctx):
            seen.extend(type(cb).__name__ for cb in trainer.callbacks.callbacks)

    trainer = Trainer("order", "cpu", ckpt_root_dir=tmp_path)
    params = base_params(max_epochs=1, ema=True, lr_mode="cosine", average_best_models=True, phase_callbacks=[Spy()])
    trainer.train(tiny_model(), params, *loaders)
    assert seen == ["NaNGuard", "EMAUpdate", "Spy", "CosineLRCallback", "ProgressBar", "BestCheckpointKeeper",
                    "ModelAveraging", "EpochCheckpoints", "ResultsWriter"]


def test_save_model_false_keeps_the_keeper_and_drops_the_writers_of_checkpoints(tmp_path, loaders):
    trainer = Trainer("nosave", "cpu", ckpt_root_dir=tmp_path)
    trainer.train(tiny_model(), base_params(max_epochs=1, save_model=False, average_best_models=True), *loaders)
    kinds = {type(cb) for cb in trainer.callbacks.callbacks}
    assert BestCheckpointKeeper in kinds and ResultsWriter in kinds
    assert not kinds & {EpochCheckpoints, ModelAveraging, EMAUpdate}
    assert trainer.best_metric is not None
    assert not list((tmp_path / "nosave").glob("*.pth"))


def test_a_progress_reporter_among_the_phase_callbacks_replaces_the_progress_bar(tmp_path, loaders, capsys):
    lines = []

    class Table(ProgressReporter):
        def on_epoch_end(self, ctx):
            lines.append(f"epoch {ctx.epoch} done")

    trainer = Trainer("table", "cpu", ckpt_root_dir=tmp_path)
    trainer.train(tiny_model(), base_params(max_epochs=2, silent_mode=False, phase_callbacks=[Table()]), *loaders)
    assert lines == ["epoch 0 done", "epoch 1 done"]
    assert not any(isinstance(cb, ProgressBar) for cb in trainer.callbacks.callbacks)
    captured = capsys.readouterr()
    assert "Train epoch" not in captured.err and "Epoch 1/2" not in captured.out


def test_the_progress_bar_shows_the_passes_and_one_line_per_epoch(tmp_path, loaders, capsys):
    Trainer("bar", "cpu", ckpt_root_dir=tmp_path).train(tiny_model(), base_params(max_epochs=2, silent_mode=False), *loaders)
    captured = capsys.readouterr()
    assert "Train epoch 0" in captured.err and "Validation epoch 1" in captured.err
    summary = [line for line in captured.out.splitlines() if line.startswith("Epoch ")]
    assert [line.split(" | ")[0] for line in summary] == ["Epoch 1/2", "Epoch 2/2"]


def test_the_nan_guard_defers_to_a_callback_that_handles_non_finite_losses(tmp_path, loaders, caplog):
    class NaNLoss(torch.nn.Module):
        def forward(self, preds, target):
            return torch.nn.functional.cross_entropy(preds, target) * float("nan")

    class StopOnNaN(Callback):
        handles_non_finite_loss = True

        def on_train_loader_end(self, ctx):
            if not torch.isfinite(torch.tensor(list(ctx.metrics_dict.values()))).all():
                ctx.stop_training = True

    trainer = Trainer("defer", "cpu", ckpt_root_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="trainwright"):
        trainer.train(tiny_model(), base_params(max_epochs=3, loss=NaNLoss(), phase_callbacks=[StopOnNaN()]), *loaders)
    assert trainer.state.epochs_done == 1  # the callback stopped it after the first epoch; nothing raised
    warnings = [r.message for r in caplog.records if "non-finite" in r.getMessage()]
    assert len(warnings) == 1  # once per epoch, not once per batch


def test_the_keeper_logs_why_it_saved_or_not(tmp_path, loaders):
    scores = iter([0.5, 0.25, 0.75])

    class Scripted(torchmetrics.Metric):
        def __init__(self):
            super().__init__()
            self.add_state("n", default=torch.tensor(0.0), dist_reduce_fx="sum")

        def update(self, preds, target):
            self.n += 1

        def compute(self):
            return {"score": next(scores)}

    params = base_params(max_epochs=3, valid_metrics_list=[Scripted()], metric_to_watch="score")
    trainer = Trainer("why", "cpu", ckpt_root_dir=tmp_path)
    trainer.train(tiny_model(), params, *loaders)
    log = (tmp_path / "why" / "train_log.txt").read_text()
    assert "Epoch 1: score 0.5 is the first validation: ckpt_best.pth written" in log
    assert "Epoch 2: score 0.25 is not better than the best 0.5: ckpt_best.pth kept" in log
    assert "Epoch 3: score 0.75 is better than the best so far 0.5: ckpt_best.pth written" in log
    assert trainer.best_metric == 0.75
    assert torch.load(tmp_path / "why" / "ckpt_best.pth", weights_only=True)["acc"] == 0.75


def test_lower_is_better_and_a_default_metric_to_watch_on_the_loss(tmp_path, loaders):
    trainer = Trainer("loss", "cpu", ckpt_root_dir=tmp_path)
    trainer.train(tiny_model(), base_params(max_epochs=2), *loaders)  # no metric: the loss is watched
    assert trainer.state.metric_to_watch == "CrossEntropyLoss"
    keeper = next(cb for cb in trainer.callbacks.callbacks if isinstance(cb, BestCheckpointKeeper))
    assert keeper.greater_is_better is False and keeper.state_dict() == {
        "metric_to_watch": "CrossEntropyLoss", "greater_is_better": False}


def test_context_methods_rename_the_best_checkpoint_and_reset_the_best(tmp_path, loaders):
    class Steer(Callback):
        def on_training_start(self, ctx):
            ctx.context_methods.set_ckpt_best_name("best_of_run.pth")

        def on_train_loader_start(self, ctx):
            ctx.context_methods.reset_best_metric()  # every validation is a new best

    best_epochs = []

    class Count(Callback):
        def on_validation_end_best_epoch(self, ctx):
            best_epochs.append(ctx.epoch)

    trainer = Trainer("steer", "cpu", ckpt_root_dir=tmp_path)
    trainer.train(tiny_model(), base_params(max_epochs=3, phase_callbacks=[Steer(), Count()]), *loaders)
    assert best_epochs == [0, 1, 2]
    assert (tmp_path / "steer" / "best_of_run.pth").exists() and not (tmp_path / "steer" / "ckpt_best.pth").exists()


def test_two_callbacks_cannot_share_a_state_key(tmp_path, loaders):
    from trainwright.training.checkpointing import Checkpointer

    checkpointer = Checkpointer(state=None, enabled=False)
    checkpointer.add_checkpointable("a", Mine())
    with pytest.raises(ValueError, match="same key 'a'"):
        checkpointer.add_checkpointable("a", Mine())


def test_policies_check_what_they_are_built_with():
    params = resolve_training_params(base_params())
    with pytest.raises(ValueError, match="ema=True"):
        EMAUpdate(type("S", (), {"ema": None, "params": params})())
    with pytest.raises(ValueError, match="number_of_models_to_average must be >= 1, got 0"):
        ModelAveraging(state=None, checkpointer=None, keeper=None, n=0)
