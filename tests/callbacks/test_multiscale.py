"""Multi-scale pre-prediction callbacks as SuperGradients 3.1 defines them: the sizes drawn, when, and the boxes."""

import random

import pytest
import torch

from trainwright.utils import DetectionMultiscalePrePredictionCallback, MultiscalePrePredictionCallback


def test_sizes_are_steps_around_the_input_size_the_largest_first():
    random.seed(0)
    cb = MultiscalePrePredictionCallback(multiscale_range=2, image_size_steps=32, change_frequency=3)
    images = torch.rand(1, 3, 128, 256)  # 4 steps high, aspect 2
    sizes = [tuple(cb(images, None, i)[0].shape[-2:]) for i in range(30)]
    assert sizes[0] == (192, 384)  # (4 + 2) * 32, width 32 * int(6 * 2)
    assert all(sizes[i] == sizes[i + 1] == sizes[i + 2] for i in range(0, 30, 3))  # a draw every 3 batches
    assert set(sizes) <= {(32 * s, 64 * s) for s in range(2, 7)} and len(set(sizes)) > 1


def test_a_small_input_never_draws_an_empty_size():
    random.seed(1)
    cb = MultiscalePrePredictionCallback(multiscale_range=5, image_size_steps=32, change_frequency=1)
    sizes = {tuple(cb(torch.rand(1, 3, 64, 64), None, i)[0].shape[-2:]) for i in range(50)}
    assert min(sizes) >= (32, 32)


def test_detection_boxes_follow_the_resize_and_the_callers_targets_are_kept():
    random.seed(0)
    cb = DetectionMultiscalePrePredictionCallback(multiscale_range=1, image_size_steps=16, change_frequency=10)
    targets = torch.tensor([[0.0, 2.0, 10.0, 20.0, 4.0, 8.0]])
    images, out = cb(torch.rand(2, 3, 32, 64), targets, 0)  # first draw: (2 + 1) * 16 = 48 high, 96 wide
    assert images.shape[-2:] == (48, 96)
    assert torch.allclose(out, torch.tensor([[0.0, 2.0, 15.0, 30.0, 6.0, 12.0]]))
    assert targets[0, 2] == 10.0


@pytest.mark.parametrize("kwargs", [{"image_size_steps": 0}, {"change_frequency": 0}, {"multiscale_range": -1}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        MultiscalePrePredictionCallback(**kwargs)
