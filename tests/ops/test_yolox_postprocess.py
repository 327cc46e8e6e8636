"""YoloXPostPredictionCallback: the eval output or the decoded tensor in, per-image boxes after NMS out."""

import pytest
import torch

from trainwright.models.detection.postprocess import DetectionPostPredictionCallback, YoloXPostPredictionCallback
from trainwright.ops.nms import NMS_Type, non_max_suppression


def decoded(batch=2, boxes=300, classes=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, boxes, 2, generator=gen) * 320
    wh = 8 + torch.rand(batch, boxes, 2, generator=gen) * 60
    return torch.cat([xy, wh, torch.rand(batch, boxes, 1 + classes, generator=gen) ** 3], dim=2)


def test_is_a_post_prediction_callback_with_the_documented_defaults():
    cb = YoloXPostPredictionCallback()
    assert isinstance(cb, DetectionPostPredictionCallback)
    assert (cb.conf, cb.iou, cb.classes, cb.nms_top_k, cb.max_predictions) == (0.001, 0.6, None, 1000, 300)
    assert cb.multi_label_per_box and cb.with_confidence


def test_tuple_and_tensor_give_the_nms_result_and_input_is_untouched():
    x = decoded()
    before = x.clone()
    cb = YoloXPostPredictionCallback(conf=0.01, iou=0.5, nms_top_k=None, max_predictions=None)
    from_tuple = cb((x, [torch.zeros(2, 1, 4, 4, 10)]))
    from_tensor = cb(x)
    expected = non_max_suppression(x, 0.01, 0.5, multi_label_per_box=True, with_confidence=True)
    for a, b, c in zip(from_tuple, from_tensor, expected):
        assert torch.equal(a, c) and torch.equal(b, c)
    assert torch.equal(x, before)


def test_caps_and_device():
    x = decoded(seed=1)
    out = YoloXPostPredictionCallback(conf=0.01, nms_top_k=50, max_predictions=10)(x, device="cpu")
    assert all(o is not None and len(o) <= 10 and o.device.type == "cpu" for o in out)


def test_classes_filter_equals_filtering_the_output():
    x = decoded(seed=2)
    everything = YoloXPostPredictionCallback(conf=0.01, nms_top_k=None, max_predictions=None)(x)
    only = YoloXPostPredictionCallback(conf=0.01, classes=[1, 3], nms_top_k=None, max_predictions=None)(x)
    for full, part in zip(everything, only):
        wanted = full[(full[:, 5] == 1) | (full[:, 5] == 3)]
        assert torch.equal(part, wanted)
    assert YoloXPostPredictionCallback(classes=[])(x) == [None, None]
    with pytest.raises(ValueError, match="classes"):
        YoloXPostPredictionCallback(classes=[5])(x)


def test_matrix_nms_and_empty_images():
    x = decoded(seed=3)
    out = YoloXPostPredictionCallback(conf=0.05, nms_type=NMS_Type.MATRIX, max_predictions=20)(x)
    assert all(o.shape[1] == 6 and len(o) <= 20 for o in out)
    quiet = torch.zeros(2, 10, 10)
    assert YoloXPostPredictionCallback()(quiet) == [None, None]
    assert YoloXPostPredictionCallback(nms_type="matrix")(quiet) == [None, None]


def test_malformed_input_raises():
    with pytest.raises(ValueError, match=r"\(10, 85\)"):
        YoloXPostPredictionCallback()(torch.zeros(10, 85))
    with pytest.raises(ValueError, match="list"):
        YoloXPostPredictionCallback()([[torch.zeros(1)]])


def test_reference_yolox_output(sg_models_dir):
    outputs = torch.load(sg_models_dir / "yolox_n_c80_outputs.pt", map_location="cpu", weights_only=True)
    found = [v for v in _tensors(outputs) if v.ndim == 3 and v.shape[-1] == 85]
    if not found:
        pytest.skip("no decoded [B, N, 85] tensor in the fixture")
    out = YoloXPostPredictionCallback()(found[0])
    assert len(out) == found[0].shape[0]
    for o in out:
        assert o is None or (o.shape[1] == 6 and len(o) <= 300 and (o[:, 4] > 0.001).all())


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


def test_post_prediction_base_is_abstract_and_importable_from_utils():
    from trainwright.utils import DetectionPostPredictionCallback as FromUtils

    assert FromUtils is DetectionPostPredictionCallback
    with pytest.raises(TypeError):
        DetectionPostPredictionCallback()

    class Identity(DetectionPostPredictionCallback):
        def forward(self, x, device):
            return [x.to(device)]

    assert Identity()(torch.ones(1, 6), "cpu")[0].shape == (1, 6)
