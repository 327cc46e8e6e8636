"""Anchors: layout of the anchor tensors, validation, state_dict and device handling."""

import pytest
import torch

from trainwright.models.detection.anchors import Anchors

COCO_ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]


def test_anchor_tensors_by_hand():
    anchors = Anchors([[8, 16, 32, 24], [64, 32, 16, 48]], strides=[8, 16])
    assert anchors.detection_layers_num == 2 and anchors.num_anchors == 2
    assert anchors.stride.tolist() == [8.0, 16.0]
    assert anchors.anchors.tolist() == [[[1.0, 2.0], [4.0, 3.0]], [[4.0, 2.0], [1.0, 3.0]]]
    assert anchors.anchor_grid.shape == (2, 1, 2, 1, 1, 2)
    assert anchors.anchor_grid[1, 0, 1, 0, 0].tolist() == [16.0, 48.0]
    assert torch.equal(anchors(), anchors.anchors)


def test_coco_anchors_in_grid_units_times_stride_give_pixels():
    anchors = Anchors(COCO_ANCHORS, [8, 16, 32])
    assert anchors.anchors.shape == (3, 3, 2)
    pixels = anchors.anchors * anchors.stride.view(-1, 1, 1)
    torch.testing.assert_close(pixels, torch.tensor(COCO_ANCHORS, dtype=torch.float32).view(3, 3, 2))
    torch.testing.assert_close(anchors.anchor_grid.view(3, 3, 2), pixels)


def test_anchor_tensors_are_saved_and_moved_with_the_module():
    anchors = Anchors(COCO_ANCHORS, [8, 16, 32])
    assert sorted(anchors.state_dict()) == ["_anchor_grid", "_anchors", "_stride"]
    assert list(anchors.parameters()) == []
    doubled = Anchors(COCO_ANCHORS, [8, 16, 32]).to(torch.float64)
    assert doubled.anchors.dtype == torch.float64
    restored = Anchors([[1] * 6] * 3, [1, 1, 1])
    restored.load_state_dict(anchors.state_dict())
    torch.testing.assert_close(restored.anchors, anchors.anchors)


@pytest.mark.parametrize("anchors_list, strides, match", [
    ([[10, 13, 16]], [8], "even"),
    ([[10, 13], [1, 2, 3, 4]], [8, 16], "same"),
    ([[10, 13]], [8, 16], "strides"),
    ([[10, 13]], [0], "positive"),
    ([[10, -13]], [8], "positive"),
    ([], [], "non-empty"),
])
def test_malformed_anchors_are_rejected(anchors_list, strides, match):
    with pytest.raises(ValueError, match=match):
        Anchors(anchors_list, strides)
