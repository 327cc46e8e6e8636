"""IouThreshold as SuperGradients 3.1 defines it, and DetectionMetrics reading it as a range, not two thresholds."""

import numpy as np
import pytest
import torch

from trainwright.metrics.average_precision import coco_iou_thresholds
from trainwright.utils import DetectionMetrics, IouThreshold


def _feed(metric, batches):
    for preds, targets, crowds in batches:
        metric.update(preds, targets, crowd_targets=crowds)
    return {k: float(v) for k, v in metric.compute().items()}


def test_members_values_and_methods():
    assert IouThreshold.MAP_05 == (0.5, 0.5) and IouThreshold.MAP_05_TO_095 == (0.5, 0.95)
    assert IouThreshold.MAP_05[0] == 0.5 and not IouThreshold.MAP_05.is_range()
    assert IouThreshold.MAP_05_TO_095.is_range()
    assert torch.equal(IouThreshold.MAP_05.to_tensor(), torch.tensor([0.5]))
    # 0.5:0.05:0.95, ten values, the same float32 values as torch.linspace gives
    assert torch.equal(IouThreshold.MAP_05_TO_095.to_tensor(), torch.linspace(0.5, 0.95, 10))
    assert torch.equal(IouThreshold.MAP_05_TO_095.to_tensor(torch.float64), coco_iou_thresholds())
    assert IouThreshold["MAP_05_TO_095"] is IouThreshold.MAP_05_TO_095


def test_range_member_gives_the_same_map_as_the_explicit_range(make_batch):
    batches = [make_batch(10 + i) for i in range(3)]
    explicit = np.round(np.arange(0.5, 0.951, 0.05), 2).tolist()
    metric = DetectionMetrics(4, None, normalize_targets=True, iou_thres=IouThreshold.MAP_05_TO_095)
    assert metric.iou_thresholds.numel() == 10
    by_enum = _feed(metric, batches)
    by_list = _feed(DetectionMetrics(4, None, normalize_targets=True, iou_thres=explicit), batches)
    two_thresholds = _feed(DetectionMetrics(4, None, normalize_targets=True, iou_thres=[0.5, 0.95]), batches)
    assert list(by_enum) == ["Precision@0.50:0.95", "Recall@0.50:0.95", "mAP@0.50:0.95", "F1@0.50:0.95"]
    assert by_enum == pytest.approx(by_list, abs=1e-12)
    assert by_enum["mAP@0.50:0.95"] != pytest.approx(two_thresholds["mAP@0.50:0.95"], abs=1e-6)
    default = _feed(DetectionMetrics(4, None, normalize_targets=True), batches)
    assert default == by_enum  # the reference's default is MAP_05_TO_095


def test_single_member_is_iou_one_half(make_batch):
    batches = [make_batch(20 + i) for i in range(2)]
    metric = DetectionMetrics(4, None, normalize_targets=True, iou_thres=IouThreshold.MAP_05)
    by_enum = _feed(metric, batches)
    assert metric.iou_thres is IouThreshold.MAP_05 and metric.iou_thresholds.tolist() == [0.5]
    assert list(by_enum) == ["Precision@0.50", "Recall@0.50", "mAP@0.50", "F1@0.50"]
    assert by_enum == _feed(DetectionMetrics(4, None, normalize_targets=True, iou_thres=0.5), batches)
