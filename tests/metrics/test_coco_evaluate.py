"""coco_evaluate equals pycocotools' COCOeval.stats on generated data, and handles bad or empty input."""

import json
import warnings

import numpy as np
import pytest

from trainwright.metrics import coco_evaluate
from trainwright.metrics.coco import COCO_STAT_NAMES

SCENARIOS = {
    "plain": dict(),
    "ties": dict(score_decimals=1),
    "clustered_contested": dict(clustered=True, objects=12.0, false_positives=60, num_images=20),
    "many_crowds": dict(crowd=0.3),
    "no_misses_few_fp": dict(miss=0.0, false_positives=1),
    "more_than_100_per_class": dict(num_images=6, num_categories=2, objects=40.0, false_positives=150, clustered=True),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_matches_pycocotools(scenario, coco_dataset, coco_stats):
    for seed in range(2):
        gt, dets = coco_dataset(seed, **SCENARIOS[scenario])
        ours = coco_evaluate(gt, dets)
        assert list(ours) == list(COCO_STAT_NAMES)
        np.testing.assert_allclose(list(ours.values()), coco_stats(gt, dets), atol=1e-4, rtol=0)


def test_reads_json_paths(tmp_path, coco_dataset, coco_stats):
    gt, dets = coco_dataset(3)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dets))
    ours = coco_evaluate(str(tmp_path / "gt.json"), tmp_path / "dt.json")
    np.testing.assert_allclose(list(ours.values()), coco_stats(gt, dets), atol=1e-4, rtol=0)


def test_perfect_detections_score_one():
    gt = {
        "images": [{"id": 1}],
        "categories": [{"id": 1}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 60], "area": 3000.0}],
    }
    dets = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 60], "score": 0.9}]
    ours = coco_evaluate(gt, dets)
    assert ours["AP"] == pytest.approx(1.0) and ours["APm"] == pytest.approx(1.0)
    assert ours["APs"] == -1 and ours["APl"] == -1  # no ground truth of those sizes: -1 as in the reference


def test_area_defaults_to_box_area_and_iscrowd_to_zero(coco_dataset, coco_stats):
    gt, dets = coco_dataset(5, area_field=False)
    reference = {**gt, "annotations": [{**a, "area": a["bbox"][2] * a["bbox"][3]} for a in gt["annotations"]]}
    ours = coco_evaluate(gt, dets)
    np.testing.assert_allclose(list(ours.values()), coco_stats(reference, dets), atol=1e-4, rtol=0)


def test_detections_of_unknown_categories_are_left_out(coco_dataset):
    gt, dets = coco_dataset(1)
    extra = [{**d, "category_id": 999} for d in dets[:20]]
    assert coco_evaluate(gt, dets) == coco_evaluate(gt, dets + extra)


def test_no_detections_gives_zero_and_a_warning(coco_dataset):
    gt, _ = coco_dataset(2)
    with pytest.warns(UserWarning, match="no detections"):
        ours = coco_evaluate(gt, [])
    assert ours["AP"] == 0 and ours["AR100"] == 0


def test_no_ground_truth_gives_minus_one_and_a_warning(coco_dataset):
    gt, dets = coco_dataset(2)
    with pytest.warns(UserWarning, match="no \\(non-crowd\\) annotation"):
        ours = coco_evaluate({**gt, "annotations": []}, dets)
    assert all(v == -1 for v in ours.values())


def test_detection_on_unknown_image_is_an_error(coco_dataset):
    gt, dets = coco_dataset(0)
    with pytest.raises(ValueError, match="image_id \\[424242\\]"):
        coco_evaluate(gt, dets + [{**dets[0], "image_id": 424242}])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"score": float("nan")}, "finite"),
        ({"bbox": [1, 2, 3]}, "4 numbers"),
        ({"bbox": [1, 2, float("inf"), 3]}, "finite"),
    ],
)
def test_bad_detection_is_an_error(change, message, coco_dataset):
    gt, dets = coco_dataset(0)
    with pytest.raises(ValueError, match=message):
        coco_evaluate(gt, [{**dets[0], **change}] + dets[1:])


def test_missing_keys_are_errors(coco_dataset):
    gt, dets = coco_dataset(0)
    with pytest.raises(ValueError, match="score"):
        coco_evaluate(gt, [{k: v for k, v in dets[0].items() if k != "score"}])
    with pytest.raises(ValueError, match="categories"):
        coco_evaluate({"images": [], "annotations": []}, dets)
    with pytest.raises(TypeError, match="ground_truth"):
        coco_evaluate([1, 2], dets)


def test_input_order_of_detections_does_not_matter_without_ties(coco_dataset):
    gt, dets = coco_dataset(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert coco_evaluate(gt, dets) == pytest.approx(coco_evaluate(gt, dets[::-1]), abs=1e-12)
