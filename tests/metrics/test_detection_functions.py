"""The reference matching/scoring functions: formats, hand-computed values, consistency with each other."""

import pytest
import torch

from trainwright.metrics import (
    compute_detection_matching,
    compute_detection_metrics,
    compute_detection_metrics_per_cls,
    compute_img_detection_matching,
    get_top_k_idx_per_cls,
)
from trainwright.metrics.average_precision import coco_iou_thresholds

THRESHOLDS = torch.tensor([0.5, 0.75])


def test_get_top_k_idx_per_cls():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.7, 0.5, 0.3])
    classes = torch.tensor([0, 0, 0, 1, 0, 1.0])
    assert get_top_k_idx_per_cls(scores, classes, 2).tolist() == [1, 2, 3, 5]  # tie 0.5: index 2 before 4
    assert get_top_k_idx_per_cls(scores, classes, 1).tolist() == [1, 3]
    assert get_top_k_idx_per_cls(scores, classes, 0).numel() == 0
    with pytest.raises(ValueError, match="top_k"):
        get_top_k_idx_per_cls(scores, classes, -1)


def test_img_matching_hand_computed():
    preds = torch.tensor(
        [
            [10, 10, 20, 20, 0.9, 0],  # exact hit on the class-0 target
            [11, 11, 21, 21, 0.8, 0],  # duplicate: IoU 0.68 with the same (already taken) target
            [40, 40, 44, 44, 0.7, 1],  # inside the class-1 crowd region
            [40, 40, 44, 44, 0.6, 0],  # inside the crowd region, but of another class
        ]
    )
    targets = torch.tensor([[0, 15, 15, 10, 10.0]])  # (class, cx, cy, w, h)
    crowd = torch.tensor([[1, 50, 50, 40, 40.0]])
    matched, ignored, scores, classes, target_cls = compute_img_detection_matching(
        preds, targets, crowd, 100, 100, THRESHOLDS, "cpu", denormalize_targets=False
    )
    assert matched.tolist() == [[True, True], [False, False], [False, False], [False, False]]
    assert ignored.tolist() == [[False, False], [False, False], [True, True], [False, False]]
    assert scores.tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6])
    assert classes.tolist() == [0, 0, 1, 0] and target_cls.tolist() == [0]


def test_img_matching_denormalises_and_reads_six_column_targets():
    preds = torch.tensor([[10, 20, 30, 60, 0.9, 2.0]])
    normalised = torch.tensor([[5, 2, 0.2, 0.4, 0.2, 0.4]])  # (index, class, cx, cy, w, h) in [0, 1] of 100 x 100
    matched, *_ = compute_img_detection_matching(preds, normalised, None, 100, 100, THRESHOLDS, "cpu", True)
    assert matched.all()
    matched, *_ = compute_img_detection_matching(preds, normalised, None, 100, 100, THRESHOLDS, "cpu", False)
    assert not matched.any()


def test_img_matching_top_k_and_none_predictions():
    preds = torch.tensor([[0, 0, 10, 10, 0.2, 0], [0, 0, 10, 10, 0.9, 0], [50, 50, 60, 60, 0.1, 1.0]])
    targets = torch.tensor([[0, 5, 5, 10, 10.0]])
    matched, ignored, *_ = compute_img_detection_matching(
        preds, targets, None, 100, 100, THRESHOLDS, "cpu", False, top_k=1
    )
    assert ignored[:, 0].tolist() == [True, False, False]  # the lower-scored class-0 prediction is beyond top_k
    assert matched[:, 0].tolist() == [False, True, False]
    matched, ignored, scores, classes, target_cls = compute_img_detection_matching(
        None, targets, None, 100, 100, THRESHOLDS, "cpu", False
    )
    assert matched.shape == (0, 2) and ignored.shape == (0, 2) and scores.numel() == 0 and target_cls.tolist() == [0]


def test_batch_matching_equals_per_image_matching(make_batch):
    preds, targets, crowds = make_batch(7)
    batch = compute_detection_matching(
        preds, targets, 320, 320, coco_iou_thresholds(), False, "cpu", crowd_targets=crowds
    )
    assert len(batch) == len(preds)
    for i, result in enumerate(batch):
        single = compute_img_detection_matching(
            preds[i],
            targets[targets[:, 0] == i, 1:],
            crowds[crowds[:, 0] == i, 1:],
            320,
            320,
            coco_iou_thresholds(),
            "cpu",
            False,
        )
        for got, want in zip(result, single):
            assert torch.equal(got, want)


def test_batch_matching_checks_its_inputs():
    with pytest.raises(ValueError, match="output\\[0\\] must have shape"):
        compute_detection_matching([torch.zeros(1, 7)], torch.zeros(0, 6), 10, 10, THRESHOLDS, False, "cpu")
    with pytest.raises(ValueError, match="image indices"):
        compute_detection_matching([None], torch.tensor([[3, 0, 1, 1, 1, 1.0]]), 10, 10, THRESHOLDS, False, "cpu")


def _three_predictions():
    """One class, two targets; by score: TP (0.9), FP (0.8), TP (0.7) at both thresholds."""
    matched = torch.tensor([[True, True], [False, False], [True, True]])
    return matched, torch.zeros_like(matched), torch.tensor([0.9, 0.8, 0.7])


def test_metrics_per_cls_hand_computed():
    matched, ignored, scores = _three_predictions()
    recall_points = torch.linspace(0, 1, 101)
    ap, precision, recall = compute_detection_metrics_per_cls(matched, ignored, scores, 2, recall_points, 0.75, "cpu")
    assert ap.tolist() == pytest.approx([(51 + 50 * 2 / 3) / 101] * 2, abs=1e-6)
    assert recall.tolist() == pytest.approx([0.5, 0.5])
    assert precision.tolist() == pytest.approx([2 / 3, 2 / 3], abs=1e-6)  # interpolated: best at recall >= 0.5
    ap, precision, recall = compute_detection_metrics_per_cls(matched, ignored, scores, 2, recall_points, 0.95, "cpu")
    assert precision.tolist() == [0, 0] and recall.tolist() == [0, 0]  # nothing above the score threshold
    zeros = compute_detection_metrics_per_cls(matched, ignored, scores, 0, recall_points, 0.1, "cpu")
    assert all(t.tolist() == [0, 0] for t in zeros)


def test_ignored_predictions_count_neither_way():
    matched, ignored, scores = _three_predictions()
    ignored[1] = True  # the false positive overlaps a crowd: now both TPs come first
    ap, precision, recall = compute_detection_metrics_per_cls(
        matched, ignored, scores, 2, torch.linspace(0, 1, 101), 0.1, "cpu"
    )
    assert ap.tolist() == pytest.approx([1.0, 1.0]) and precision.tolist() == pytest.approx([1.0, 1.0])


def test_metrics_over_classes():
    matched, ignored, scores = _three_predictions()
    matched = torch.cat([matched, torch.tensor([[True, False]]), torch.tensor([[True, True]])])
    ignored = torch.cat([ignored, torch.zeros(2, 2, dtype=torch.bool)])
    scores = torch.cat([scores, torch.tensor([0.5, 0.4])])
    preds_cls = torch.tensor([0, 0, 0, 2, 5.0])  # class 5 has no target: left out
    targets_cls = torch.tensor([0, 0, 2.0])
    ap, precision, recall, f1, classes = compute_detection_metrics(
        matched, ignored, scores, preds_cls, targets_cls, "cpu"
    )
    assert classes.tolist() == [0, 2]
    assert ap.shape == precision.shape == recall.shape == f1.shape == (2, 2)
    assert ap[1].tolist() == pytest.approx([1.0, 0.0])
    assert ap[0].tolist() == pytest.approx([(51 + 50 * 2 / 3) / 101] * 2, abs=1e-6)
    expected_f1 = 2 * precision * recall / (precision + recall + 1e-16)
    assert torch.allclose(f1, expected_f1)


def test_metrics_reject_inconsistent_shapes_and_nan():
    matched, ignored, scores = _three_predictions()
    with pytest.raises(ValueError, match="same predictions"):
        compute_detection_metrics(matched, ignored, scores[:2], torch.zeros(3), torch.zeros(2), "cpu")
    with pytest.raises(ValueError, match="NaN"):
        compute_detection_metrics(
            matched, ignored, torch.tensor([0.1, float("nan"), 0.2]), torch.zeros(3), torch.zeros(2), "cpu"
        )


def test_metrics_with_nothing():
    empty = torch.zeros(0, 2, dtype=torch.bool)
    ap, precision, recall, f1, classes = compute_detection_metrics(
        empty, empty, torch.zeros(0), torch.zeros(0), torch.zeros(0), "cpu"
    )
    assert ap.shape == (0, 2) and classes.numel() == 0
    ap, precision, recall, f1, classes = compute_detection_metrics(
        empty, empty, torch.zeros(0), torch.zeros(0), torch.tensor([1.0]), "cpu"
    )
    assert ap.tolist() == [[0, 0]] and not torch.isnan(f1).any()
