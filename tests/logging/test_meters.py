"""AverageMeter and Timer as SuperGradients 3.1 defines them."""

import time

import pytest
import torch

from trainwright.utils import AverageMeter, Timer


def test_average_meter_weights_by_batch_size():
    meter = AverageMeter()
    assert meter.average == 0
    meter.update(2.0, batch_size=1)
    meter.update(torch.tensor(5.0), batch_size=3)
    assert meter.average == pytest.approx((2 * 1 + 5 * 3) / 4)
    assert isinstance(meter.average, float)


def test_average_meter_of_vectors_gives_a_tuple():
    meter = AverageMeter()
    meter.update([1.0, 10.0], 2)
    meter.update(torch.tensor([4.0, 40.0]), 1)
    assert meter.average == pytest.approx((2.0, 20.0))
    assert isinstance(meter.average, tuple)
    with pytest.raises(ValueError, match="shape"):
        meter.update(1.0, 1)


def test_average_meter_does_not_keep_the_graph():
    meter = AverageMeter()
    w = torch.ones(1, requires_grad=True)
    meter.update((w * 3).sum(), 2)
    assert meter.average == 3.0 and not meter._sum.requires_grad


def test_timer_on_cpu_measures_milliseconds():
    timer = Timer("cpu")
    assert not timer.on_gpu
    timer.start()
    time.sleep(0.02)
    elapsed = timer.stop()
    assert elapsed >= 19.9  # sleep never returns early; both use the monotonic clock
    assert not Timer("cuda").on_gpu or torch.cuda.is_available()
