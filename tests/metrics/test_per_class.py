"""Per-class AP, AP50, precision, recall and curves from one COCO evaluation: hand-computed and pycocotools."""

import contextlib
import io

import numpy as np
import pytest
import torch

from trainwright.metrics.coco import coco_evaluate, coco_evaluation
from trainwright.metrics.confidence_curves import confidence_curves
from trainwright.metrics.per_class import per_class_metrics


def hand_case():
    """cat (id 7): 2 targets, detections TP .9, FP .8, TP .6; dog (id 9): 1 target, TP .7, FP .05 and a .95
    on a crowd region; owl (id 11): no target."""
    images = [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}]
    categories = [{"id": 7, "name": "cat"}, {"id": 9, "name": "dog"}, {"id": 11, "name": "owl"}]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [0, 0, 10, 10]},
        {"id": 2, "image_id": 1, "category_id": 7, "bbox": [50, 50, 20, 20]},
        {"id": 3, "image_id": 2, "category_id": 9, "bbox": [10, 10, 30, 30]},
        {"id": 4, "image_id": 2, "category_id": 9, "bbox": [60, 0, 40, 40], "iscrowd": 1},
    ]
    detections = [
        {"image_id": 1, "category_id": 7, "bbox": [0, 0, 10, 10], "score": 0.9},
        {"image_id": 1, "category_id": 7, "bbox": [80, 0, 10, 10], "score": 0.8},  # overlaps nothing
        {"image_id": 1, "category_id": 7, "bbox": [50, 50, 20, 20], "score": 0.6},
        {"image_id": 2, "category_id": 9, "bbox": [10, 10, 30, 30], "score": 0.7},
        {"image_id": 2, "category_id": 9, "bbox": [0, 60, 10, 10], "score": 0.05},  # overlaps nothing
        {"image_id": 2, "category_id": 9, "bbox": [65, 5, 20, 20], "score": 0.95},  # on the crowd: ignored
    ]
    return {"images": images, "annotations": annotations, "categories": categories}, detections


def test_hand_computed_per_class_numbers():
    gt, dets = hand_case()
    metrics = per_class_metrics(coco_evaluation(gt, dets))
    assert metrics.names == ["cat", "dog", "owl"] and metrics.category_ids == [7, 9, 11]
    assert metrics.targets.tolist() == [2, 1, 0] and metrics.images.tolist() == [1, 1, 0]
    # cat ranks TP, FP, TP: interpolated precision 1 up to recall 0.5 (51 points), 2/3 after (50 points)
    cat_ap = (51 + 50 * 2 / 3) / 101
    torch.testing.assert_close(metrics.ap, torch.tensor([cat_ap, 1.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(metrics.ap50, torch.tensor([cat_ap, 1.0, -1.0], dtype=torch.float64))
    # mean F1 over cat and dog: 0.733 up to 0.05 (dog's FP kept), 0.9 on (0.05, 0.6], less above
    assert metrics.best_confidence == pytest.approx(0.051)
    torch.testing.assert_close(metrics.precision, torch.tensor([2 / 3, 1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(metrics.recall, torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))
    f1_at = {c: metrics.f1_curve[:, round(c * 1000)].tolist() for c in (0.0, 0.7, 0.85, 0.92)}
    np.testing.assert_allclose(f1_at[0.0], [0.8, 2 / 3, 0.0])
    np.testing.assert_allclose(f1_at[0.7], [0.5, 1.0, 0.0])  # cat keeps .9 and .8: P 1/2, R 1/2
    np.testing.assert_allclose(f1_at[0.85], [2 / 3, 0.0, 0.0])  # cat keeps .9: P 1, R 1/2
    np.testing.assert_allclose(f1_at[0.92], [0.0, 0.0, 0.0])  # the crowd-covered 0.95 counts nowhere
    # the means of the table are the COCO summary's AP and AP50
    stats, all_row = coco_evaluate(gt, dets), metrics.rows()[-1]
    assert all_row["class"] == "all" and all_row["targets"] == 3
    assert all_row["AP"] == pytest.approx(stats["AP"]) and all_row["AP50"] == pytest.approx(stats["AP50"])
    assert all_row["precision"] == pytest.approx(5 / 6) and all_row["recall"] == pytest.approx(1.0)


def test_pr_curve_is_the_interpolated_precision_at_iou_050():
    gt, dets = hand_case()
    metrics = per_class_metrics(coco_evaluation(gt, dets))
    assert metrics.pr_curve.shape == (3, 101) and metrics.recall_points[50] == 0.5
    expected_cat = torch.tensor([1.0] * 51 + [2 / 3] * 50, dtype=torch.float64)
    torch.testing.assert_close(metrics.pr_curve[0], expected_cat)
    torch.testing.assert_close(metrics.pr_curve.mean(1)[:2], metrics.ap50[:2])


def test_confidence_curves_on_a_grid():
    scores = torch.tensor([0.9, 0.5, 0.5, 0.2, 0.7])
    classes = torch.tensor([0, 0, 0, 0, 1])
    true_positive = torch.tensor([True, False, True, True, True])
    counted = torch.tensor([True, True, True, False, True])  # 0.2 is ignored
    curves = confidence_curves(scores, classes, true_positive, counted, torch.tensor([4, 1]),
                               torch.tensor([0.0, 0.5, 0.8, 1.0]))
    torch.testing.assert_close(curves.precision, torch.tensor([[2 / 3, 2 / 3, 1, 0], [1, 1, 0, 0]]).double())
    torch.testing.assert_close(curves.recall, torch.tensor([[0.5, 0.5, 0.25, 0], [1, 1, 0, 0]]).double())
    torch.testing.assert_close(curves.f1[:, 0], torch.tensor([2 * (2 / 3 * 0.5) / (2 / 3 + 0.5), 1.0]).double())


def _pycocotools_precision(gt, dets):
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        evaluator = cocoeval.COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator.eval["precision"][:, :, :, 0, 2]  # [T, R, K] at area all, 100 detections


@pytest.mark.parametrize("seed", [0, 1])
def test_per_class_ap_matches_pycocotools(seed, coco_dataset):
    gt, dets = coco_dataset(seed, num_images=25)
    metrics = per_class_metrics(coco_evaluation(gt, dets))
    reference = _pycocotools_precision(gt, dets)
    has_targets = (reference > -1).all(axis=(0, 1))
    assert has_targets.tolist() == metrics.has_targets.tolist()
    reference = reference[:, :, has_targets]  # [T, R, K']
    np.testing.assert_allclose(metrics.ap[has_targets].numpy(), reference.mean(axis=(0, 1)), atol=1e-6)
    np.testing.assert_allclose(metrics.ap50[has_targets].numpy(), reference[0].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(metrics.pr_curve[has_targets].numpy(), reference[0].T, atol=1e-6)
