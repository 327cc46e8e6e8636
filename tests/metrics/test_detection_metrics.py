"""DetectionMetrics: COCO parity, the reference's keys and flags, bad and empty input."""

import warnings

import numpy as np
import pytest
import torch

from trainwright.metrics import DetectionMetrics, DetectionMetrics_050, DetectionMetrics_050_095


def _feed(metric, batches):
    for preds, targets, crowds in batches:
        metric.update(preds, targets, crowd_targets=crowds)
    return metric.compute()


def _floats(result):
    return {k: float(v) for k, v in result.items()}


@pytest.mark.parametrize("ties", [False, True])
def test_matches_pycocotools_ap_and_ap50(ties, make_batch, batches_to_coco, coco_stats):
    num_cls = 4
    for seed in range(3):
        batches = [make_batch(100 * seed + i, num_cls=num_cls, ties=ties) for i in range(3)]
        stats = coco_stats(*batches_to_coco(batches, num_cls))
        full = _feed(DetectionMetrics_050_095(num_cls, normalize_targets=True), batches)
        half = _feed(DetectionMetrics_050(num_cls, normalize_targets=True), batches)
        assert float(full["mAP@0.50:0.95"]) == pytest.approx(stats[0], abs=1e-4)
        assert float(half["mAP@0.50"]) == pytest.approx(stats[1], abs=1e-4)


def test_more_than_top_k_predictions_per_class_matches_pycocotools(batches_to_coco, coco_stats):
    g = torch.Generator().manual_seed(0)
    centre = torch.rand(30, 2, generator=g) * 200
    targets = torch.cat([torch.zeros(30, 1), torch.zeros(30, 1), centre, torch.full((30, 2), 20.0)], 1)
    boxes = torch.cat([centre - 10, centre + 10], 1).repeat(5, 1) + torch.randn(150, 4, generator=g) * 3
    preds = [torch.cat([boxes, torch.rand(150, 1, generator=g), torch.zeros(150, 1)], 1)]
    stats = coco_stats(*batches_to_coco([(preds, targets, torch.zeros(0, 6))], 1))
    result = _feed(DetectionMetrics(1, None, normalize_targets=True), [(preds, targets, None)])
    assert float(result["mAP@0.50:0.95"]) == pytest.approx(stats[0], abs=1e-4)


def test_keys_follow_the_iou_range_and_classwise_names(make_batch):
    batch = make_batch(1)
    names = ["cat", "dog", "bird", "fish"]
    metric = DetectionMetrics(4, None, normalize_targets=True, include_classwise_ap=True, class_names=names)
    result = _feed(metric, [batch])
    assert list(result) == [
        "Precision@0.50:0.95",
        "Recall@0.50:0.95",
        "mAP@0.50:0.95",
        "F1@0.50:0.95",
        "AP@0.50:0.95_cat",
        "AP@0.50:0.95_dog",
        "AP@0.50:0.95_bird",
        "AP@0.50:0.95_fish",
    ]
    assert metric.component_names == list(result)
    assert float(result["AP@0.50:0.95_fish"]) == 0.0  # class 3 never has a target
    per_class = [float(result[f"AP@0.50:0.95_{n}"]) for n in names[:3]]
    assert float(result["mAP@0.50:0.95"]) == pytest.approx(np.mean(per_class), abs=1e-6)
    assert list(_feed(DetectionMetrics_050(4, normalize_targets=True), [batch])) == [
        "Precision@0.50",
        "Recall@0.50",
        "mAP@0.50",
        "F1@0.50",
    ]


def test_normalize_targets_flag_is_the_references_inverted_one(make_batch):
    preds, targets, crowds = make_batch(2)
    inputs = torch.zeros(len(preds), 3, 320, 400)
    scale = torch.tensor([1, 1, 400, 320, 400, 320.0])
    pixels = DetectionMetrics(4, None, normalize_targets=True)
    pixels.update(preds, targets, crowd_targets=crowds, inputs=inputs)
    normalised = DetectionMetrics(4, None, normalize_targets=False)
    normalised.update(preds, targets / scale, crowd_targets=crowds / scale, inputs=inputs)
    assert _floats(pixels.compute()) == pytest.approx(_floats(normalised.compute()), abs=1e-6)
    with pytest.raises(ValueError, match="inputs"):
        DetectionMetrics(4, None).update(preds, targets / scale)


def test_callback_receives_the_raw_output_and_the_device(make_batch):
    preds, targets, _ = make_batch(3)
    calls = []

    def callback(raw, device=None):
        calls.append((raw, device))
        return raw["boxes"]

    metric = DetectionMetrics(4, callback, normalize_targets=True)
    metric.update({"boxes": preds}, targets, device="cpu", inputs=torch.zeros(len(preds), 3, 8, 8))
    direct = DetectionMetrics(4, None, normalize_targets=True)
    direct.update(preds, targets)
    assert calls and calls[0][1] == torch.device("cpu")
    assert _floats(metric.compute()) == _floats(direct.compute())


def test_batching_does_not_change_the_result(make_batch):
    preds, targets, crowds = make_batch(4, batch_size=6)
    whole = DetectionMetrics(4, None, normalize_targets=True)
    whole.update(preds, targets, crowd_targets=crowds)
    split = DetectionMetrics(4, None, normalize_targets=True)
    for lo, hi in ((0, 2), (2, 6)):
        keep, keep_crowd = (targets[:, 0] >= lo) & (targets[:, 0] < hi), (crowds[:, 0] >= lo) & (crowds[:, 0] < hi)
        shift = torch.tensor([lo, 0, 0, 0, 0, 0.0])
        split.update(preds[lo:hi], targets[keep] - shift, crowd_targets=crowds[keep_crowd] - shift)
    assert _floats(whole.compute()) == pytest.approx(_floats(split.compute()), abs=1e-7)


def test_hand_computed_precision_recall_f1_and_ap():
    # One class, two objects; predictions by score: TP (0.9), FP (0.8), TP (0.7).
    targets = torch.tensor([[0, 0, 15, 15, 10, 10], [0, 0, 65, 65, 10, 10.0]])
    preds = [torch.tensor([[10, 10, 20, 20, 0.9, 0], [100, 100, 110, 110, 0.8, 0], [60, 60, 70, 70, 0.7, 0.0]])]
    metric = DetectionMetrics_050(1, None, normalize_targets=True, score_thres=0.75)
    result = _feed(metric, [(preds, targets, None)])
    assert float(result["mAP@0.50"]) == pytest.approx((51 * 1 + 50 * 2 / 3) / 101, abs=1e-6)
    # At score >= 0.75: one TP of two objects; precision interpolated = best precision at recall >= 0.5 = 2/3.
    assert float(result["Recall@0.50"]) == pytest.approx(0.5)
    assert float(result["Precision@0.50"]) == pytest.approx(2 / 3, abs=1e-6)
    assert float(result["F1@0.50"]) == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5), abs=1e-6)


def test_crowd_overlaps_are_ignored_not_false_positives():
    targets = torch.tensor([[0, 0, 15, 15, 10, 10.0]])
    crowds = torch.tensor([[0, 0, 200, 200, 100, 100.0]])
    preds = [torch.tensor([[10, 10, 20, 20, 0.5, 0], [190, 190, 200, 200, 0.9, 0.0]])]
    with_crowd = DetectionMetrics_050(1, None, normalize_targets=True)
    with_crowd.update(preds, targets, crowd_targets=crowds)
    without = DetectionMetrics_050(1, None, normalize_targets=True)
    without.update(preds, targets)
    assert float(with_crowd.compute()["mAP@0.50"]) == pytest.approx(1.0)
    assert float(without.compute()["mAP@0.50"]) == pytest.approx(0.5, abs=1e-6)  # FP first, then the TP
    assert len(with_crowd.pred_scores[0]) == 1  # the ignored prediction is not even stored


def test_boxes_outside_the_image_are_evaluated_as_given():
    targets = torch.tensor([[0, 0, -5, 300, 30, 40.0]])  # partly left of and below a 100 x 100 image
    preds = [torch.tensor([[-20, 280, 10, 320, 0.9, 0.0]])]
    metric = DetectionMetrics_050(1, None, normalize_targets=True)
    metric.update(preds, targets, inputs=torch.zeros(1, 3, 100, 100))
    assert float(metric.compute()["mAP@0.50"]) == pytest.approx(1.0)


def test_top_k_predictions_limits_each_class_and_image():
    targets = torch.tensor([[0, 0, 15, 15, 10, 10.0]])
    preds = [torch.tensor([[100, 100, 110, 110, 0.9, 0], [10, 10, 20, 20, 0.5, 0.0]])]
    top1 = _feed(DetectionMetrics_050(1, None, normalize_targets=True, top_k_predictions=1), [(preds, targets, None)])
    top2 = _feed(DetectionMetrics_050(1, None, normalize_targets=True, top_k_predictions=2), [(preds, targets, None)])
    assert float(top1["mAP@0.50"]) == 0.0
    assert float(top2["mAP@0.50"]) == pytest.approx(0.5, abs=1e-6)


def test_reset_clears_the_state(make_batch):
    metric = DetectionMetrics(4, None, normalize_targets=True)
    first = _floats(_feed(metric, [make_batch(5)]))
    metric.reset()
    assert metric.pred_scores == [] and metric.target_classes == []
    assert _floats(_feed(metric, [make_batch(5)])) == pytest.approx(first)


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_nothing_seen_gives_zeros_and_a_warning():
    metric = DetectionMetrics(3, None, normalize_targets=True)
    with pytest.warns(UserWarning, match="no ground-truth box"):
        result = metric.compute()
    assert all(float(v) == 0.0 for v in result.values())
    metric.update([None, torch.zeros(0, 6)], torch.zeros(0, 6))
    with pytest.warns(UserWarning, match="no ground-truth box"):
        result = metric.compute()
    assert all(float(v) == 0.0 for v in result.values())


def test_no_predictions_gives_zero_without_nan():
    metric = DetectionMetrics(3, None, normalize_targets=True)
    metric.update([None, None], torch.tensor([[0, 1, 10, 10, 5, 5], [1, 2, 20, 20, 5, 5.0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = metric.compute()
    assert all(float(v) == 0.0 for v in result.values())


GOOD = torch.tensor([[0, 0, 10, 10, 0.5, 1.0]])


@pytest.mark.parametrize(
    "preds, targets, message",
    [
        ([torch.zeros(2, 5)], torch.zeros(0, 6), "shape \\[n, 6\\]"),
        ([torch.tensor([[0, 0, 10, 10, 0.5, 3.0]])], torch.zeros(0, 6), "class ids must be integers in \\[0, 3\\)"),
        ([torch.tensor([[0, 0, 10, 10, float("nan"), 1.0]])], torch.zeros(0, 6), "NaN"),
        ([torch.tensor([[10, 0, 0, 10, 0.5, 1.0]])], torch.zeros(0, 6), "x2 < x1"),
        ([torch.tensor([[0, 0, float("inf"), 10, 0.5, 1.0]])], torch.zeros(0, 6), "non-finite"),
        ([GOOD], torch.zeros(1, 5), "target must have shape \\[N, 6\\]"),
        ([GOOD], torch.tensor([[0, -1, 5, 5, 2, 2.0]]), "target class ids"),
        ([GOOD], torch.tensor([[0, 7, 5, 5, 2, 2.0]]), "target class ids"),
        ([GOOD], torch.tensor([[1, 0, 5, 5, 2, 2.0]]), "image indices"),
        ([GOOD], torch.tensor([[0, 0, 5, 5, -2, 2.0]]), "negative box width"),
        ("boxes", torch.zeros(0, 6), "list of \\[n, 6\\] tensors"),
    ],
)
def test_bad_input_is_a_clear_error(preds, targets, message):
    metric = DetectionMetrics(3, None, normalize_targets=True)
    with pytest.raises((ValueError, TypeError), match=message):
        metric.update(preds, targets)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="class_names has 1 names"):
        DetectionMetrics(2, None, class_names=["a"])
    with pytest.raises(ValueError, match="iou_thres"):
        DetectionMetrics(2, None, iou_thres=1.5)
    with pytest.raises(ValueError, match="num_cls"):
        DetectionMetrics(0, None)
    with pytest.raises(ValueError, match="inputs has 2 images"):
        DetectionMetrics(2, None, normalize_targets=True).update(
            [None], torch.zeros(0, 6), inputs=torch.zeros(2, 3, 4, 4)
        )


def test_custom_thresholds_and_recall_points():
    targets = torch.tensor([[0, 0, 15, 15, 10, 10.0]])
    preds = [torch.tensor([[11, 11, 21, 21, 0.9, 0.0]])]  # IoU 81 / 119 = 0.68
    metric = DetectionMetrics(
        1, None, normalize_targets=True, iou_thres=[0.6, 0.7], recall_thres=torch.tensor([0.0, 1.0])
    )
    result = _feed(metric, [(preds, targets, None)])
    assert float(result["mAP@0.60:0.70"]) == pytest.approx(0.5)


def test_with_the_yolox_post_prediction_callback():
    postprocess = pytest.importorskip("trainwright.models.detection.postprocess")
    # Decoded eval output [B, N, 5 + C]: (cx, cy, w, h, objectness, class scores); one box per target.
    targets = torch.tensor([[0, 1, 30, 40, 20, 10], [0, 0, 80, 60, 30, 30], [1, 2, 50, 50, 40, 20.0]])
    decoded = torch.zeros(2, 4, 8)
    for row, (image, cls, cx, cy, w, h) in enumerate(targets.tolist()):
        decoded[int(image), row % 4, :5] = torch.tensor([cx, cy, w, h, 0.95])
        decoded[int(image), row % 4, 5 + int(cls)] = 0.9
    metric = DetectionMetrics_050_095(3, postprocess.YoloXPostPredictionCallback(), normalize_targets=True)
    metric.update((decoded, []), targets, device="cpu", inputs=torch.zeros(2, 3, 128, 128))
    assert float(metric.compute()["mAP@0.50:0.95"]) == pytest.approx(1.0)
