"""ONNX export of PP-YOLOE: RepVGG blocks fused first, ONNX Runtime against the (unfused) PyTorch model."""

import numpy as np
import pytest
import torch
from export_helpers import images

from trainwright.export import OnnxDetector, export_onnx
from trainwright.models import get_model
from trainwright.models.detection.ppyoloe_blocks import RepVggBlock
from trainwright.models.detection.ppyoloe_postprocess import PPYoloEPostPredictionCallback
from trainwright.models.export.checks import inference_session, run_onnx

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SIZE = (64, 64)
pytestmark = pytest.mark.slow  # three ONNX exports of PP-YOLOE, each checked in onnxruntime


def lively_ppyoloe(seed: int = 0):
    """A PP-YOLOE-S (5 classes, width 0.25) whose scores and boxes vary: BN statistics from random images (so
    fusing them matters), prediction convs perturbed (a fresh head predicts the same everywhere)."""
    torch.manual_seed(seed)
    model = get_model("ppyoloe_s", num_classes=5, width_mult=0.25)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 3, *SIZE) * 255)
        for conv in model.head.pred_cls:
            conv.weight.normal_(0, 3e-4)
            conv.bias.normal_(0, 0.5)
        for conv in model.head.pred_reg:
            conv.weight.normal_(0, 3e-4)
            conv.bias.normal_(0, 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return lively_ppyoloe()


@pytest.fixture(scope="module")
def raw_file(model, tmp_path_factory):
    return export_onnx(model, tmp_path_factory.mktemp("raw") / "ppyoloe.onnx", SIZE, dynamic_batch=True)


def _assert_same_rows(got: np.ndarray, expected: np.ndarray) -> None:
    """Every expected row [n, 6] has a row of the same class in `got` with the same box and score (within
    float32 tolerance): rows may come in another order where scores tie."""
    scale = np.array([1e-4 * max(1.0, np.abs(expected[:, :4]).max())] * 4 + [1e-4])
    for row in expected:
        same_class = got[got[:, 5] == row[5]]
        assert len(same_class), f"no detection of class {row[5]}"
        assert (np.abs(same_class[:, :5] - row[:5]) <= scale).all(axis=1).any(), f"no detection matches {row}"


def test_export_fuses_repvgg_blocks_in_the_file_and_leaves_the_model_alone(model, raw_file):
    blocks = [m for m in model.modules() if isinstance(m, RepVggBlock)]
    assert blocks and not any(b.fused for b in blocks)  # the caller's model keeps its training layout
    graph = onnx.load(str(raw_file)).graph
    initialisers = {init.name for init in graph.initializer}
    assert not any("branch_1x1" in name for name in initialisers)
    convs = sum(node.op_type == "Conv" for node in graph.node)
    unfused_convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert convs == unfused_convs - len(blocks)  # two convs per RepVGG block became one


def test_raw_outputs_match_pytorch_within_1e_4(model, raw_file):
    x = images(3, SIZE)
    boxes, scores = run_onnx(inference_session(raw_file), x)
    with torch.no_grad():
        want_boxes, want_scores = model.boxes_and_scores(model(x))
    assert boxes.shape == (3, 4 * 4 + 2 * 2 + 8 * 8, 4) and scores.shape == (3, 84, 5)
    assert scores.std() > 0.05 and want_boxes.std() > 1  # the comparison is not between constants
    assert np.abs(scores - want_scores.numpy()).max() <= 1e-4
    assert np.abs(boxes - want_boxes.numpy()).max() <= 1e-4 * np.abs(want_boxes.numpy()).max()


def test_in_graph_nms_matches_the_pytorch_post_prediction_callback(model, tmp_path):
    path = export_onnx(model, tmp_path / "nms.onnx", SIZE, dynamic_batch=True, nms=True, conf=0.7, iou=0.5,
                       max_predictions=300)
    x = images(2, SIZE, seed=4)
    detections, counts = run_onnx(inference_session(path), x)
    with torch.no_grad():
        want = PPYoloEPostPredictionCallback(0.7, 0.5, nms_top_k=None, max_predictions=300)(model(x), device="cpu")
    for image in range(2):
        expected = want[image].numpy()
        assert 300 > counts[image] == len(expected) > 0  # no cap: which near-ties a cap keeps is arbitrary
        _assert_same_rows(detections[image, : counts[image]], expected)


def test_onnx_detector_post_processing_matches_ppyoloe_nms(model, raw_file):
    x = images(2, SIZE, seed=7)
    detector = OnnxDetector(raw_file)
    got = detector.post_prediction_callback(conf=0.3, iou=0.6, max_predictions=50)(detector.model(x), device="cpu")
    with torch.no_grad():
        want = PPYoloEPostPredictionCallback(0.3, 0.6, max_predictions=50)(model(x), device="cpu")
    for g, w in zip(got, want):
        assert len(g) == len(w) > 0
        _assert_same_rows(g.numpy(), w.numpy())
