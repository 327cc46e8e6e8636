"""A non-finite training loss: the run stops at once by default; with EarlyStop(check_finite=True) registered it
goes on and EarlyStop decides at its phase, as in SuperGradients 3.1 (with the weights kept finite)."""

import pytest
import torch
from trainer_helpers import base_params, tiny_model

from trainwright import Trainer
from trainwright.callbacks.base import Callback, Phase
from trainwright.utils import EarlyStop


class NaNOnBatch(torch.nn.Module):
    """Cross-entropy, NaN on the training batches whose index is in `bad` (counted per epoch)."""

    def __init__(self, bad):
        super().__init__()
        self.bad, self.calls = set(bad), 0

    def forward(self, preds, target):
        loss = torch.nn.functional.cross_entropy(preds, target)
        if preds.requires_grad:
            index, self.calls = self.calls % 4, self.calls + 1
            if index in self.bad:
                return loss * float("nan")
        return loss


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])


def test_by_default_a_nan_loss_stops_training(tmp_path, loaders):
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 0, batch 1"):
        Trainer("stop", ckpt_root_dir=tmp_path, device="cpu").train(
            tiny_model(), base_params(loss=NaNOnBatch({1})), *loaders)


def test_early_stop_without_check_finite_does_not_take_over(tmp_path, loaders):
    stop = EarlyStop(Phase.TRAIN_EPOCH_END, monitor="NaNOnBatch", check_finite=False)
    assert not stop.handles_non_finite_loss
    with pytest.raises(FloatingPointError):
        Trainer("nocheck", ckpt_root_dir=tmp_path, device="cpu").train(
            tiny_model(), base_params(loss=NaNOnBatch({1}), phase_callbacks=[stop]), *loaders)


def test_early_stop_with_check_finite_decides_at_its_phase(tmp_path, loaders):
    stop = EarlyStop(Phase.TRAIN_EPOCH_END, monitor="NaNOnBatch", check_finite=True, patience=100)
    assert stop.handles_non_finite_loss
    model = tiny_model()
    before = weights(model)
    trainer = Trainer("decides", ckpt_root_dir=tmp_path, device="cpu")
    trainer.train(model, base_params(max_epochs=4, loss=NaNOnBatch({1}), phase_callbacks=[stop]), *loaders)
    # the epoch's training loss average is NaN: EarlyStop stops after the first epoch, as in SG
    assert trainer.state.epochs_done == 1 and stop.should_stop
    assert torch.isnan(torch.tensor(trainer.state.train_results["NaNOnBatch"]))
    # the other batches trained; the NaN batch's update was skipped, so weights and checkpoints stay finite
    after = weights(trainer.net)
    assert torch.isfinite(after).all() and not torch.equal(after, before)
    latest = torch.load(tmp_path / "decides" / "ckpt_latest.pth", weights_only=True)["net"]
    assert all(torch.isfinite(v).all() for v in latest.values() if v.is_floating_point())


def test_a_validation_monitor_keeps_training_past_nan_batches(tmp_path, loaders):
    stop = EarlyStop(Phase.VALIDATION_EPOCH_END, monitor="NaNOnBatch", check_finite=True, patience=100)
    trainer = Trainer("goes_on", ckpt_root_dir=tmp_path, device="cpu")
    trainer.train(tiny_model(), base_params(max_epochs=3, loss=NaNOnBatch({2}), phase_callbacks=[stop]), *loaders)
    assert trainer.state.epochs_done == 3  # the validation loss stays finite: nothing asks to stop
    assert torch.isfinite(weights(trainer.net)).all()



def test_with_accumulation_a_window_ending_on_a_nan_batch_ends_without_a_step(tmp_path, loaders):
    snapshots, gradients_left = [], []

    class Parameters(Callback):
        def on_train_batch_end(self, context):
            snapshots.append(torch.cat([p.detach().flatten().clone() for p in context.net.parameters()]))
            gradients_left.append(any(p.grad is not None for p in context.net.parameters()))

    model = tiny_model()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    stop = EarlyStop(Phase.TRAIN_EPOCH_END, monitor="NaNOnBatch", check_finite=True)
    params = base_params(max_epochs=1, batch_accumulate=2, loss=NaNOnBatch({1}), phase_callbacks=[stop, Parameters()])
    Trainer("accumulate", ckpt_root_dir=tmp_path, device="cpu").train(model, params, *loaders)
    # batches 0 and 1 form the first window and batch 1 is NaN: no step; the next window (2, 3) steps
    assert torch.equal(snapshots[0], before) and torch.equal(snapshots[1], before)
    assert torch.equal(snapshots[2], before) and not torch.equal(snapshots[3], before)
    assert torch.isfinite(snapshots[3]).all()
    assert gradients_left == [True, False, True, False]  # batch 0's gradients were dropped with its window
