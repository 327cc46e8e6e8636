"""ModelEMA decay schedules and the averaging update."""

import math

import pytest
import torch

from trainwright.training.ema import ModelEMA, constant_decay, exp_decay, threshold_decay


def test_decay_schedules_by_hand():
    assert constant_decay(0.9, 5, 100) == 0.9
    assert threshold_decay(0.9999, 0, 100) == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    assert threshold_decay(0.9999, 10, 100) == pytest.approx(11 / 20)
    assert threshold_decay(0.5, 1000, 2000) == 0.5
    assert exp_decay(0.9, 10, 100, beta=15) == pytest.approx(0.9 * (1 - math.exp(-1.5)))
    assert exp_decay(0.9, 0, 100) == 0.0


def test_update_blends_floats_and_copies_integer_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(2, 1, bias=False), torch.nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    ema = ModelEMA(model, decay=0.5, decay_type="constant")
    with torch.no_grad():
        model[0].weight.fill_(3.0)
    model[1].num_batches_tracked += 7
    ema.update(model, step=1, total_steps=10)
    assert torch.equal(ema.ema[0].weight, torch.full((1, 2), 2.0))  # 0.5 * 1 + 0.5 * 3
    assert int(ema.ema[1].num_batches_tracked) == 7
    assert not any(p.requires_grad for p in ema.ema.parameters()) and not ema.ema.training


def test_threshold_decay_used_by_update():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ModelEMA(model, decay=0.9999, decay_type="threshold")
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, step=0, total_steps=10)  # d = 0.1
    assert ema.ema.weight.item() == pytest.approx(0.9)


def test_bad_params():
    with pytest.raises(ValueError, match="decay_type='linear'"):
        ModelEMA(torch.nn.Linear(1, 1), decay_type="linear")
    with pytest.raises(ValueError, match="unknown key"):
        ModelEMA.from_params(torch.nn.Linear(1, 1), decay=0.9, warmup=3)
