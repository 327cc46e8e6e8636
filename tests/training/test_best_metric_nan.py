"""A NaN or infinite validation metric never becomes the best, is warned about with its epoch, and never blocks a
later best."""

import logging
import math

import pytest
import torch
import torchmetrics
from trainer_helpers import TinyNet, base_params, make_loaders

from trainwright import Trainer


class NaNInFirstValidation(TinyNet):
    """Outputs NaN in the first validation pass (4 batches), then behaves."""

    def __init__(self):
        torch.manual_seed(0)
        super().__init__()
        self.nan_batches_left = 4

    def forward(self, x):
        out = super().forward(x)
        if not self.training and self.nan_batches_left > 0:
            self.nan_batches_left -= 1
            return out * float("nan")
        return out


def test_a_model_with_nan_in_the_first_validation_gets_its_best_checkpoint_later(tmp_path, caplog):
    trainer = Trainer("nan", ckpt_root_dir=tmp_path, device="cpu")
    with caplog.at_level(logging.WARNING, logger="trainwright"):
        trainer.train(NaNInFirstValidation(), base_params(max_epochs=4), *make_loaders())  # the loss is watched
    best = torch.load(tmp_path / "nan" / "ckpt_best.pth", weights_only=True)
    assert best["epoch"] >= 2 and math.isfinite(best["acc"]) and best["acc"] == trainer.best_metric
    assert any("Epoch 1: CrossEntropyLoss is nan" in r.getMessage() for r in caplog.records)
    log = (tmp_path / "nan" / "train_log.txt").read_text()
    assert "Epoch 2: CrossEntropyLoss" in log and "is the first validation: ckpt_best.pth written" in log


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_metric_between_finite_ones_is_skipped(tmp_path, caplog, bad):
    scores = iter([bad, 0.3, bad, 0.5, 0.4])  # the last: the averaged model, validated after the run

    class Scripted(torchmetrics.Metric):
        def __init__(self):
            super().__init__()
            self.add_state("n", default=torch.tensor(0.0), dist_reduce_fx="sum")

        def update(self, preds, target):
            self.n += 1

        def compute(self):
            return {"score": next(scores)}

    params = base_params(max_epochs=4, valid_metrics_list=[Scripted()], metric_to_watch="score",
                         average_best_models=True)
    trainer = Trainer("scripted", ckpt_root_dir=tmp_path, device="cpu")
    with caplog.at_level(logging.WARNING, logger="trainwright"):
        trainer.train(TinyNet(), params, *make_loaders())
    warned = [r.getMessage() for r in caplog.records if "never counts as the best" in r.getMessage()]
    assert [w.split(":")[0] for w in warned] == ["Epoch 1", "Epoch 3"]
    best = torch.load(tmp_path / "scripted" / "ckpt_best.pth", weights_only=True)
    assert best["epoch"] == 4 and best["acc"] == 0.5 == trainer.best_metric
    average = torch.load(tmp_path / "scripted" / "average_model.pth", weights_only=True)
    assert all(torch.isfinite(v).all() for v in average["net"].values() if v.dtype.is_floating_point)
