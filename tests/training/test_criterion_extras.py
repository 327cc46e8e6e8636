"""Batch extras reach the loss when its forward names them (crowd_targets for PPYoloELoss), in training and
validation, and never a loss that does not take them."""

import torch
from trainer_helpers import base_params, tiny_model

from trainwright.training import Trainer
from trainwright.training.batches import criterion_extras


class RecordingLoss(torch.nn.Module):
    """Cross-entropy that records the crowd_targets of every call (the loss of a crowd-aware detector)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, preds, target, crowd_targets=None):
        self.seen.append(None if crowd_targets is None else crowd_targets.clone())
        return torch.nn.functional.cross_entropy(preds, target)


def _loader(with_crowd: bool):
    g = torch.Generator().manual_seed(0)
    batches = []
    for i in range(3):
        x, y = torch.randn(4, 4, generator=g), torch.randint(0, 2, (4,), generator=g)
        crowd = torch.full((1, 6), float(i))
        batches.append((x, y, {"crowd_targets": crowd, "other": 1}) if with_crowd else (x, y))
    return batches


def test_crowd_targets_reach_a_loss_that_takes_them_in_training_and_validation(tmp_path):
    loss = RecordingLoss()
    trainer = Trainer("crowd", ckpt_root_dir=str(tmp_path))
    trainer.train(tiny_model(), base_params(max_epochs=1, loss=loss), _loader(True), _loader(True))
    assert len(loss.seen) == 6  # 3 training + 3 validation batches
    assert all(seen is not None for seen in loss.seen)
    assert [float(seen[0, 0]) for seen in loss.seen] == [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]


def test_batches_without_crowd_call_the_loss_with_targets_alone(tmp_path):
    loss = RecordingLoss()
    Trainer("plain", ckpt_root_dir=str(tmp_path)).train(tiny_model(), base_params(max_epochs=1, loss=loss),
                                                         _loader(False), _loader(False))
    assert loss.seen and all(seen is None for seen in loss.seen)


def test_only_the_extras_a_loss_names_are_passed():
    crowd = torch.zeros(0, 6)
    assert criterion_extras(RecordingLoss(), {"crowd_targets": crowd, "other": 1}) == {"crowd_targets": crowd}
    assert criterion_extras(torch.nn.CrossEntropyLoss(), {"crowd_targets": crowd}) == {}
    assert criterion_extras(lambda preds, target: 0, {"crowd_targets": crowd}) == {}
    assert criterion_extras(RecordingLoss(), {}) == {}
