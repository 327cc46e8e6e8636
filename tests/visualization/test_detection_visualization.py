import cv2
import numpy as np
import pytest
import torch

from trainwright.visualization import DetectionVisualization, class_colors, drawable_boxes, undo_image_preprocessing


def test_undo_image_preprocessing_layout_and_scale():
    im = torch.zeros(2, 3, 4, 5)
    im[:, 0], im[:, 1], im[:, 2] = 10, 20, 300
    out = undo_image_preprocessing(im)
    assert out.shape == (2, 4, 5, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[1, 3, 4], [255, 20, 10])  # BGR, clipped
    unit = undo_image_preprocessing(torch.full((1, 3, 2, 2), 0.5))
    assert unit[0, 0, 0, 0] == 128
    np.testing.assert_array_equal(undo_image_preprocessing(torch.full((1, 3, 2, 2), 0.5), scale=2.0)[0, 0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="im_tensor"):
        undo_image_preprocessing(torch.zeros(3, 4, 4))


def _batch():
    images = torch.full((2, 3, 40, 60), 50.0)
    preds = [torch.tensor([[10.0, 10, 30, 30, 0.9, 1]]), None]
    targets = torch.tensor([[1, 0, 30, 20, 20, 10.0]])  # image 1: box (20, 15)-(40, 25)
    return images, preds, targets


def test_visualize_batch_draws_predictions_and_ground_truth():
    images, preds, targets = _batch()
    colors = class_colors(2)
    out = DetectionVisualization.visualize_batch(images, preds, targets, "b", ["a", "b"], gt_alpha=1.0)
    assert len(out) == 2 and out[0].shape == (40, 60, 3) and out[0].dtype == np.uint8
    np.testing.assert_array_equal(out[0][20, 10], colors[1])  # left edge of the prediction
    np.testing.assert_array_equal(out[0][20, 45], [50, 50, 50])
    np.testing.assert_array_equal(out[1][20, 20], colors[0])  # left edge of the ground truth
    np.testing.assert_array_equal(out[1][20, 10], [50, 50, 50])  # image 1 has no prediction
    invisible = DetectionVisualization.visualize_batch(images, preds, targets, "b", ["a", "b"], gt_alpha=0.0)
    np.testing.assert_array_equal(invisible[1], np.full((40, 60, 3), 50, np.uint8))
    half = DetectionVisualization.visualize_batch(images, preds, targets, "b", ["a", "b"], gt_alpha=0.4)
    np.testing.assert_allclose(half[1][20, 20], 0.4 * np.array(colors[0]) + 0.6 * 50, atol=1)


def test_visualize_batch_normalised_targets_and_scale():
    images, preds, targets = _batch()
    normalised = targets.clone()
    normalised[:, 2:] /= torch.tensor([60, 40, 60, 40])
    a = DetectionVisualization.visualize_batch(images, preds, targets, "b", ["a", "b"], gt_alpha=1.0)
    b = DetectionVisualization.visualize_batch(images, preds, normalised, "b", ["a", "b"], gt_alpha=1.0)
    np.testing.assert_array_equal(a[1], b[1])
    big = DetectionVisualization.visualize_batch(images, preds, targets, "b", ["a", "b"], image_scale=2.0, gt_alpha=1)
    assert big[0].shape == (80, 120, 3)
    np.testing.assert_array_equal(big[0][40, 20], class_colors(2)[1])
    np.testing.assert_array_equal(big[1][40, 40], class_colors(2)[0])


def test_visualize_batch_writes_jpegs(tmp_path):
    images, preds, targets = _batch()
    result = DetectionVisualization.visualize_batch(images, preds, targets, 7, ["a", "b"], checkpoint_dir=tmp_path / "v")
    assert result is None
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["7_0.jpg", "7_1.jpg"]
    assert cv2.imread(str(tmp_path / "v" / "7_0.jpg")).shape == (40, 60, 3)


def test_visualize_batch_checks_arguments():
    images, preds, targets = _batch()
    with pytest.raises(ValueError, match="pred_boxes"):
        DetectionVisualization.visualize_batch(images, preds[:1], targets, "b", ["a", "b"])
    with pytest.raises(ValueError, match="gt_alpha"):
        DetectionVisualization.visualize_batch(images, preds, targets, "b", ["a", "b"], gt_alpha=2)


def test_unknown_class_index_is_drawn_as_its_number():
    images, _, _ = _batch()
    out = DetectionVisualization.visualize_batch(images, [torch.tensor([[5.0, 5, 20, 20, 0.5, 9]]), None], None, "b",
                                                 ["a"])
    assert out[0].shape == (40, 60, 3)


def test_drawable_boxes_clips_to_the_canvas_and_skips_non_finite_ones():
    inf, nan = float("inf"), float("nan")
    boxes = np.array([[-1e12, -1e12, 1e12, 1e12],  # covers the canvas: clipped to its border
                      [30, 20, 10, 5],  # corners in the other order
                      [5, 5, inf, 8], [nan, 1, 2, 3],  # not finite: skipped
                      [100, 100, 200, 200], [-50, -50, -10, -10],  # wholly outside: skipped
                      [2.4, 3.6, 2e9, 7]])  # beyond int32 on one side
    kept_boxes, kept = drawable_boxes(boxes, 40, 60)
    assert kept.tolist() == [True, True, False, False, False, False, True]
    assert kept_boxes.dtype == np.int32
    assert kept_boxes.tolist() == [[0, 0, 59, 39], [10, 5, 30, 20], [2, 4, 59, 7]]
    assert drawable_boxes(np.zeros((0, 4)), 40, 60)[0].shape == (0, 4)


def test_visualize_batch_with_huge_infinite_and_nan_predictions():
    """Early in training or after divergence boxes reach 1e12 or inf: they are clipped or skipped, never fatal."""
    images = torch.full((1, 3, 40, 60), 50.0)
    preds = [torch.tensor([[-1e12, -1e12, 1e12, 1e12, 0.9, 0], [1e12, 5, 2e12, 9, 0.8, 0],
                           [5, 5, float("inf"), 9, 0.8, 0], [5, 5, 9, 9, float("nan"), 0]])]
    targets = torch.tensor([[0, 1, 30, 20, 1e13, 1e13]])
    out = DetectionVisualization.visualize_batch(images, preds, targets, "b", ["a", "b"], gt_alpha=1.0)
    color = class_colors(2)[0]
    np.testing.assert_array_equal(out[0][20, 0], color)  # the huge box's left edge, clipped to the border
    np.testing.assert_array_equal(out[0][20, 30], [50, 50, 50])
