"""EarlyStop as SuperGradients 3.1 defines it: patience, min_delta, threshold, non-finite values, strictness."""

import csv
import logging
import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from trainwright import Trainer
from trainwright.callbacks.base import Phase, PhaseContext
from trainwright.callbacks.early_stopping import MissingMonitorKeyException
from trainwright.utils import EarlyStop


def run(cb, values, key="loss"):
    """Feed values to the callback at its phase; the index of the check that asked to stop, or None."""
    event = "on_validation_loader_end" if cb.phase is Phase.VALIDATION_EPOCH_END else "on_train_loader_end"
    for i, value in enumerate(values):
        ctx = PhaseContext(epoch=i, metrics_dict={key: value}, stop_training=False)
        getattr(cb, event)(ctx)
        if ctx.stop_training:
            return i
    return None


def test_min_mode_stops_after_patience_checks_without_improvement():
    cb = EarlyStop(Phase.VALIDATION_EPOCH_END, monitor="loss", mode="min", patience=2)
    # 4.5 does not improve (1), 3.9 does (reset), an equal 3.9 does not (1), 4.0 neither (2): stop
    assert run(cb, [5.0, 4.0, 4.5, 3.9, 3.9, 4.0, 1.0]) == 5
    assert cb.best_score == 3.9 and cb.wait_count == 2


def test_max_mode_and_min_delta():
    cb = EarlyStop(Phase.VALIDATION_EPOCH_END, monitor="mAP", mode="max", min_delta=0.1, patience=2)
    # 0.55 and 0.59 are not better than 0.5 + 0.1; 0.7 is
    assert run(cb, [0.5, 0.55, 0.7, 0.75, 0.79], key="mAP") == 4
    assert cb.best_score == 0.7
    cb = EarlyStop(Phase.VALIDATION_EPOCH_END, monitor="loss", mode="min", min_delta=0.5, patience=1)
    assert run(cb, [2.0, 1.6, 1.0]) == 1  # 1.6 > 2.0 - 0.5


def test_threshold_stops_at_once():
    cb = EarlyStop(Phase.TRAIN_EPOCH_END, monitor="mAP", mode="max", threshold=0.9, patience=100)
    assert run(cb, [0.1, 0.5, 0.91, 0.95], key="mAP") == 2
    cb = EarlyStop(Phase.TRAIN_EPOCH_END, monitor="loss", mode="min", threshold=0.2, patience=100)
    assert run(cb, [1.0, torch.tensor(0.19)]) == 1


def test_non_finite_value_stops_only_with_check_finite():
    assert run(EarlyStop(Phase.TRAIN_EPOCH_END, monitor="loss"), [1.0, math.nan, 0.5]) == 1
    assert run(EarlyStop(Phase.TRAIN_EPOCH_END, monitor="loss"), [1.0, torch.tensor(math.inf)]) == 1
    unchecked = EarlyStop(Phase.TRAIN_EPOCH_END, monitor="loss", check_finite=False, patience=5)
    assert run(unchecked, [1.0, math.nan, 0.5]) is None and unchecked.best_score == 0.5


def test_missing_monitor_raises_when_strict_and_is_logged_otherwise(caplog):
    with pytest.raises(RuntimeError, match="'mAP@0.50'.*loss"):
        run(EarlyStop(Phase.VALIDATION_EPOCH_END, monitor="mAP@0.50"), [1.0])
    with caplog.at_level(logging.WARNING, logger="trainwright"):
        assert run(EarlyStop(Phase.VALIDATION_EPOCH_END, monitor="mAP@0.50", strict=False), [1.0, 2.0]) is None
    assert "mAP@0.50" in caplog.text
    assert issubclass(MissingMonitorKeyException, Exception)


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="TRAIN_BATCH_END"):
        EarlyStop(Phase.TRAIN_BATCH_END, monitor="loss")
    with pytest.raises(ValueError, match="mode.*'median'"):
        EarlyStop(Phase.VALIDATION_EPOCH_END, monitor="loss", mode="median")
    with pytest.raises(ValueError, match="patience"):
        EarlyStop(Phase.VALIDATION_EPOCH_END, monitor="loss", patience=-1)
    assert EarlyStop("validation_epoch_end", monitor="loss").phase is Phase.VALIDATION_EPOCH_END


class ConstantModel(torch.nn.Module):
    """Predicts nothing useful; its validation loss never improves after the first epoch with lr 0."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


def test_training_stops_after_patience_epochs_through_the_trainer(tmp_path):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,)))
    loader = DataLoader(data, batch_size=8)
    stop = EarlyStop(Phase.VALIDATION_EPOCH_END, monitor="CrossEntropyLoss", mode="min", patience=2)
    params = {"max_epochs": 10, "initial_lr": 0.0, "loss": "cross_entropy", "silent_mode": True,
              "phase_callbacks": [stop], "metric_to_watch": "CrossEntropyLoss",
              "greater_metric_to_watch_is_better": False}
    Trainer("early", ckpt_root_dir=tmp_path, device="cpu").train(ConstantModel(), params, loader, loader)
    with open(tmp_path / "early" / "results.csv", newline="") as f:
        epochs = [row["epoch"] for row in csv.DictReader(f)]
    # lr 0: epoch 1 sets the best, epochs 2 and 3 do not improve -> the run ends after epoch 3
    assert epochs == ["1", "2", "3"]
    assert stop.should_stop and stop.wait_count == 2


def test_state_survives_a_resume():
    stop = EarlyStop(Phase.VALIDATION_EPOCH_END, monitor="mAP", mode="max", patience=3)
    for value in (0.5, 0.4, 0.3):
        stop._check_for_early_stop(value)
    again = EarlyStop(Phase.VALIDATION_EPOCH_END, monitor="mAP", mode="max", patience=3)
    again.load_state_dict(stop.state_dict())
    assert again.best_score == 0.5 and again.wait_count == 2
    assert again._check_for_early_stop(0.45)[1]  # the third check without improvement stops
