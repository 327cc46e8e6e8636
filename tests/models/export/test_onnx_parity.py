"""ONNX Runtime on an exported YOLOX against the PyTorch model on the same images."""

import numpy as np
import pytest
import torch
from export_helpers import images, lively_yolox

from trainwright.export import ExportGraph, InGraphNMS, OnnxDetector, export_onnx
from trainwright.models.detection.postprocess import YoloXPostPredictionCallback
from trainwright.models.export.checks import inference_session, run_onnx
from trainwright.ops.nms import non_max_suppression

pytest.importorskip("onnxruntime")

SIZE = (64, 64)


@pytest.fixture(scope="module")
def model():
    return lively_yolox(input_size=SIZE)


@pytest.fixture(scope="module")
def raw_file(model, tmp_path_factory):
    return export_onnx(model, tmp_path_factory.mktemp("raw") / "yolox.onnx", SIZE, dynamic_batch=True)


@pytest.fixture(scope="module")
def nms_file(model, tmp_path_factory):
    return export_onnx(model, tmp_path_factory.mktemp("nms") / "yolox_nms.onnx", SIZE, dynamic_batch=True, nms=True,
                       conf=0.25, iou=0.6, max_predictions=40)


def _sorted_rows(rows: np.ndarray) -> np.ndarray:
    """Rows [n, 6] ordered by class, then score, then x1: equal scores may come in either order."""
    return rows[np.lexsort((rows[:, 0], -rows[:, 4], rows[:, 5]))]


def test_raw_outputs_match_pytorch_within_1e_4(model, raw_file):
    x = images(3, SIZE)
    boxes, scores = run_onnx(inference_session(raw_file), x)
    with torch.no_grad():
        want_boxes, want_scores = model.boxes_and_scores(model(x))
    assert boxes.shape == tuple(want_boxes.shape) and scores.shape == tuple(want_scores.shape)
    assert scores.std() > 0.05  # scores spread: the comparison is not between constants
    assert np.abs(scores - want_scores.numpy()).max() <= 1e-4
    # boxes are pixels (up to hundreds): float32 agreement relative to their magnitude
    assert np.abs(boxes - want_boxes.numpy()).max() <= 1e-4 * np.abs(want_boxes.numpy()).max()


@pytest.mark.parametrize("batch", [1, 3])
def test_in_graph_nms_keeps_what_non_max_suppression_keeps(model, nms_file, batch):
    x = images(batch, SIZE, seed=batch)
    detections, counts = run_onnx(inference_session(nms_file), x)
    assert detections.shape == (batch, 40, 6) and counts.dtype == np.int64
    with torch.no_grad():
        want = non_max_suppression(model(x)[0], conf_thres=0.25, iou_thres=0.6, multi_label_per_box=True,
                                   with_confidence=True, max_predictions=40)
    for image in range(batch):
        expected = want[image].numpy() if want[image] is not None else np.zeros((0, 6), np.float32)
        assert counts[image] == len(expected) > 0
        got = _sorted_rows(detections[image, : counts[image]])
        expected = _sorted_rows(expected)
        np.testing.assert_array_equal(got[:, 5], expected[:, 5])
        np.testing.assert_allclose(got[:, 4], expected[:, 4], atol=1e-4)
        np.testing.assert_allclose(got[:, :4], expected[:, :4], atol=1e-4 * max(1.0, np.abs(expected[:, :4]).max()))
        assert not detections[image, counts[image]:].any()  # rows past the count are zeros


def test_eager_graph_matches_non_max_suppression_exactly_with_a_small_cap(model):
    """The cap per image (M best over all classes) is applied after NMS per class, as max_predictions is."""
    x = images(2, SIZE, seed=5)
    graph = ExportGraph(model, InGraphNMS(conf=0.3, iou=0.5, max_predictions=3)).eval()
    with torch.no_grad():
        detections, counts = graph(x)
        want = non_max_suppression(model(x)[0], 0.3, 0.5, True, True, max_predictions=3)
    for image in range(2):
        assert counts[image] == len(want[image])
        torch.testing.assert_close(detections[image, : counts[image]], want[image])


def test_no_candidate_gives_zero_detections(model, tmp_path):
    path = export_onnx(model, tmp_path / "strict.onnx", SIZE, nms=True, conf=1.0, batch_size=2)
    detections, counts = run_onnx(inference_session(path), images(2, SIZE))
    assert counts.tolist() == [0, 0] and not detections.any()


def test_onnx_detector_post_processing_matches_the_pytorch_callback(model, raw_file):
    x = images(2, SIZE, seed=7)
    detector = OnnxDetector(raw_file)
    got = detector.post_prediction_callback(conf=0.3, iou=0.6, max_predictions=50)(detector.model(x), device="cpu")
    with torch.no_grad():
        want = YoloXPostPredictionCallback(conf=0.3, iou=0.6, max_predictions=50)(model(x), device="cpu")
    for g, w in zip(got, want):
        assert len(g) == len(w) > 0
        g, w = _sorted_rows(g.numpy()), _sorted_rows(w.numpy())
        np.testing.assert_array_equal(g[:, 5], w[:, 5])
        np.testing.assert_allclose(g[:, :5], w[:, :5], atol=1e-4 * max(1.0, np.abs(w[:, :4]).max()))


def test_a_fixed_batch_file_runs_any_batch_in_chunks(model, tmp_path):
    path = export_onnx(model, tmp_path / "b2.onnx", SIZE, batch_size=2)
    detector = OnnxDetector(path)
    x = images(3, SIZE, seed=9)
    boxes, scores = detector.model(x)
    with torch.no_grad():
        want_boxes, want_scores = model.boxes_and_scores(model(x))
    assert boxes.shape == want_boxes.shape
    torch.testing.assert_close(scores, want_scores, atol=1e-4, rtol=0)


def test_nms_file_refuses_settings_it_cannot_apply(nms_file):
    detector = OnnxDetector(nms_file)
    assert detector.postprocess["iou"] == 0.6 and detector.postprocess["max_predictions"] == 40
    with pytest.raises(ValueError, match="below the threshold 0.25 built into"):
        detector.post_prediction_callback(conf=0.1)
    with pytest.raises(ValueError, match="iou 0.6; iou 0.5 cannot change it"):
        detector.post_prediction_callback(conf=0.3, iou=0.5)
    rows = detector.post_prediction_callback(conf=0.5, iou=0.6, max_predictions=5)(
        detector.model(images(1, SIZE)), device="cpu")[0]
    assert rows is not None and len(rows) <= 5 and (rows[:, 4] > 0.5).all()
