"""non_max_suppression and matrix_non_max_suppression: exactness against torchvision, filters, formats, edge cases."""

import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st

from trainwright.ops import nms as nms_module
from trainwright.ops.nms import (
    NMS_Type,
    matrix_non_max_suppression,
    non_max_suppression,
)


def raw_output(batch, boxes, classes, seed=0, spread=100.0):
    """Random decoded output [batch, boxes, 5 + classes]: clustered cxcywh boxes and scores in [0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.rand(batch, boxes, 2, generator=gen) * spread
    sizes = 5 + torch.rand(batch, boxes, 2, generator=gen) * 30
    scores = torch.rand(batch, boxes, 1 + classes, generator=gen) ** 2
    return torch.cat([centres, sizes, scores], dim=2)


def reference_pipeline(raw, conf, iou, multi_label, with_confidence):
    """The reference filter written plainly, then torchvision.ops.batched_nms."""
    out = []
    for image in raw:
        rows = image[image[:, 4] > conf]
        scores = rows[:, 5:] * rows[:, 4:5] if with_confidence else rows[:, 5:]
        if multi_label:
            idx, cls = (scores > conf).nonzero(as_tuple=True)
            score = scores[idx, cls]
        else:
            score, cls = scores.max(1)
            idx = (score > conf).nonzero(as_tuple=True)[0]
            score, cls = score[idx], cls[idx]
        boxes = torchvision.ops.box_convert(rows[idx, :4], "cxcywh", "xyxy")
        keep = torchvision.ops.batched_nms(boxes, score, cls, iou)
        kept = torch.cat([boxes[keep], score[keep, None], cls[keep, None].float()], dim=1)
        out.append(kept if len(kept) else None)
    return out


def assert_same(ours, expected):
    assert len(ours) == len(expected)
    for a, b in zip(ours, expected):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.equal(a, b)


@given(
    batch=st.integers(1, 3),
    boxes=st.integers(0, 60),
    classes=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    conf=st.sampled_from([0.0, 0.05, 0.3]),
    iou=st.sampled_from([0.3, 0.5, 0.7]),
    multi_label=st.booleans(),
    with_confidence=st.booleans(),
)
@settings(max_examples=50, deadline=None)
def test_matches_torchvision_batched_nms(batch, boxes, classes, seed, conf, iou, multi_label, with_confidence):
    raw = raw_output(batch, boxes, classes, seed)
    ours = non_max_suppression(raw, conf, iou, multi_label, with_confidence)
    assert_same(ours, reference_pipeline(raw, conf, iou, multi_label, with_confidence))


@pytest.mark.parametrize("classes", [1, 7, 80])
def test_many_candidates_per_class_path_matches_torchvision_exactly(classes):
    gen = torch.Generator().manual_seed(classes)
    n = 6000
    xy = torch.rand(n, 2, generator=gen) * 300
    boxes = torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=gen) * 60], dim=1)
    scores = (torch.rand(n, generator=gen) * 20).round() / 20  # many tied scores
    labels = torch.randint(classes, (n,), generator=gen)
    assert boxes.numel() > nms_module._PER_CLASS_MIN_NUMEL_CPU
    expected = torchvision.ops.batched_nms(boxes, scores, labels, 0.5)
    assert torch.equal(nms_module._batched_nms(boxes, scores, labels, 0.5), expected)


def test_large_batch_matches_torchvision_and_an_executor_does_not_change_results():
    raw = raw_output(4, 3000, 10, seed=3, spread=600)
    expected = reference_pipeline(raw, 0.01, 0.6, True, True)
    assert sum(len(e) for e in expected) > 1000
    assert_same(non_max_suppression(raw, 0.01, 0.6, True, True), expected)
    with ThreadPoolExecutor(max_workers=3) as pool:
        assert_same(non_max_suppression(raw, 0.01, 0.6, True, True, executor=pool), expected)


def row(cx, cy, w, h, obj, *cls):
    return [cx, cy, w, h, obj, *cls]


def test_hand_computed_suppression_and_format():
    raw = torch.tensor([[
        row(50, 50, 20, 20, 0.9, 0.8, 0.1),   # kept: class 0, score 0.8
        row(51, 50, 20, 20, 0.9, 0.7, 0.1),   # IoU 0.905 with the first, same class: suppressed
        row(52, 50, 20, 20, 0.9, 0.1, 0.6),   # class 1: kept, no competitor
        row(90, 90, 10, 10, 0.05, 0.9, 0.9),  # objectness below conf: never a candidate
    ]])
    out = non_max_suppression(raw, conf_thres=0.3, iou_thres=0.5, multi_label_per_box=True)
    torch.testing.assert_close(out[0], torch.tensor([[40.0, 40.0, 60.0, 60.0, 0.8, 0.0],
                                                     [42.0, 40.0, 62.0, 60.0, 0.6, 1.0]]))


def test_with_confidence_multiplies_the_objectness():
    raw = torch.tensor([[row(50, 50, 20, 20, 0.5, 0.8, 0.5)]])
    plain = non_max_suppression(raw, conf_thres=0.3, iou_thres=0.5)[0]
    assert plain[:, 4:].tolist() == [[pytest.approx(0.8), 0.0], [0.5, 1.0]]
    combined = non_max_suppression(raw, conf_thres=0.3, iou_thres=0.5, with_confidence=True)[0]
    assert combined[:, 4:].tolist() == [[pytest.approx(0.4), 0.0]]  # 0.25 fails the threshold


def test_single_label_keeps_only_the_best_class():
    raw = torch.tensor([[row(50, 50, 20, 20, 0.9, 0.6, 0.7)]])
    assert len(non_max_suppression(raw, 0.3, 0.5, multi_label_per_box=True)[0]) == 2
    single = non_max_suppression(raw, 0.3, 0.5, multi_label_per_box=False)[0]
    assert single[:, 4:].tolist() == [[pytest.approx(0.7), 1.0]]


def test_none_for_images_without_boxes_and_empty_inputs():
    raw = torch.tensor([[row(50, 50, 20, 20, 0.9, 0.8)], [row(50, 50, 20, 20, 0.01, 0.8)],
                        [row(50, 50, 20, 20, 0.9, 0.01)]])
    out = non_max_suppression(raw, 0.3, 0.5)
    assert out[0].shape == (1, 6) and out[1] is None and out[2] is None
    assert non_max_suppression(torch.zeros(3, 0, 7)) == [None, None, None]
    assert non_max_suppression(torch.zeros(0, 10, 7)) == []
    assert non_max_suppression([]) == []


def test_list_input_with_different_box_counts():
    raw = raw_output(2, 30, 3, seed=5)
    listed = [raw[0], raw[1, :10]]
    out = non_max_suppression(listed, 0.1, 0.5)
    assert_same(out[:1], non_max_suppression(raw[:1], 0.1, 0.5))
    assert_same(out[1:], non_max_suppression(raw[1:, :10], 0.1, 0.5))


def test_caps_on_candidates_and_predictions():
    raw = raw_output(2, 200, 5, seed=11, spread=1000)
    full = non_max_suppression(raw, 0.05, 0.5)
    capped = non_max_suppression(raw, 0.05, 0.5, max_predictions=7)
    for a, b in zip(capped, full):
        assert torch.equal(a, b[:7])
    top = non_max_suppression(raw, 0.05, 0.5, nms_top_k=20)
    for image, kept in zip(raw, top):
        scores = image[:, 5:][image[:, 4] > 0.05]
        twentieth = scores[scores > 0.05].sort(descending=True).values[19]
        assert len(kept) <= 20 and (kept[:, 4] >= twentieth).all()
    assert non_max_suppression(raw, 0.05, 0.5, max_predictions=0) == [None, None]


def test_input_is_never_modified():
    raw = raw_output(2, 50, 3, seed=1)
    before = raw.clone()
    non_max_suppression(raw, 0.1, 0.5, with_confidence=True)
    non_max_suppression(raw, 0.1, 0.5, multi_label_per_box=False)
    matrix_non_max_suppression(raw, 0.1)
    assert torch.equal(raw, before)


def test_half_precision_in_half_precision_out():
    raw = raw_output(2, 80, 3, seed=2)
    raw[..., :2] *= 100  # centres up to 10000 px: their float16 sums would lose the boxes
    out16 = non_max_suppression(raw.half(), 0.1, 0.5)
    out32 = non_max_suppression(raw.half().float(), 0.1, 0.5)
    for a, b in zip(out16, out32):
        assert a.dtype == torch.float16
        torch.testing.assert_close(a.float(), b, atol=0, rtol=1e-3)
    assert matrix_non_max_suppression(raw.bfloat16(), 0.1)[0].dtype == torch.bfloat16


def test_nan_scores_never_pass_and_non_finite_boxes_are_dropped():
    raw = torch.tensor([[row(50, 50, 20, 20, float("nan"), 0.9), row(50, 50, 20, 20, 0.9, float("nan")),
                         row(float("nan"), 50, 20, 20, 0.9, 0.9), row(50, 50, float("inf"), 20, 0.9, 0.9),
                         row(10, 10, 4, 4, 0.9, 0.9)]])
    for multi_label in (True, False):
        out = non_max_suppression(raw, 0.3, 0.5, multi_label_per_box=multi_label)[0]
        assert out.tolist() == [[8.0, 8.0, 12.0, 12.0, pytest.approx(0.9), 0.0]]


def test_negative_size_boxes_overlap_nothing():
    # w < 0 decodes to x2 < x1: such a box suppresses nothing and is not suppressed, as in torchvision.
    raw = torch.tensor([[row(50, 50, -20, 20, 0.9, 0.9), row(50, 50, 20, 20, 0.9, 0.8)]])
    out = non_max_suppression(raw, 0.3, 0.5)[0]
    assert out[:, 4].tolist() == [pytest.approx(0.9), pytest.approx(0.8)]
    assert_same(non_max_suppression(raw, 0.3, 0.5), reference_pipeline(raw, 0.3, 0.5, True, False))


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(10, 85), r"prediction.*\(10, 85\)"),
        (torch.zeros(2, 10, 5), r"prediction.*\(2, 10, 5\)"),
        ([torch.zeros(3, 6), torch.zeros(3)], r"prediction\[1\].*\(3,\)"),
    ],
)
def test_malformed_prediction_raises(bad, match):
    with pytest.raises(ValueError, match=match):
        non_max_suppression(bad)


def test_bad_caps_and_types_raise():
    with pytest.raises(ValueError, match="nms_top_k"):
        non_max_suppression(torch.zeros(1, 2, 6), nms_top_k=-1)
    with pytest.raises(TypeError, match="prediction"):
        non_max_suppression("boxes")
    with pytest.raises(ValueError, match="kernel"):
        matrix_non_max_suppression(torch.zeros(1, 2, 6), kernel="box")
    with pytest.raises(ValueError, match=r"pred.*\(2, 6\)"):
        matrix_non_max_suppression(torch.zeros(2, 6))


# --- matrix NMS -------------------------------------------------------------------------------------------------


def test_matrix_nms_gaussian_decay_hand_computed():
    raw = torch.tensor([[
        row(50, 50, 20, 20, 1.0, 0.9, 0.0),  # best box: nothing above it, no decay
        row(55, 50, 20, 20, 1.0, 0.8, 0.0),  # IoU 15*20 / (800 - 300) = 0.6 with the first
        row(55, 50, 20, 20, 1.0, 0.0, 0.7),  # other class: no decay
    ]])
    out = matrix_non_max_suppression(raw, conf_thres=0.01, sigma=2.0)[0]
    assert out[:, 5].tolist() == [0.0, 0.0, 1.0]
    torch.testing.assert_close(out[:, 4], torch.tensor([0.9, 0.8 * math.exp(-2.0 * 0.36), 0.7]))
    linear = matrix_non_max_suppression(raw, conf_thres=0.01, kernel="linear")[0]
    torch.testing.assert_close(linear[:, 4], torch.tensor([0.9, 0.8 * 0.4, 0.7]))
    assert out[0, :4].tolist() == [40.0, 40.0, 60.0, 60.0]


def test_matrix_nms_threshold_cap_and_empty():
    raw = raw_output(2, 40, 3, seed=4, spread=1000)
    out = matrix_non_max_suppression(raw, conf_thres=0.05, max_num_of_detections=10)
    assert all(len(o) <= 10 and o.shape[1] == 6 and (o[:, 4] > 0.05).all() for o in out)
    empty = matrix_non_max_suppression(torch.zeros(2, 0, 8))
    assert [e.shape for e in empty] == [(0, 6), (0, 6)]


def test_nms_type_enum():
    assert NMS_Type("iterative") is NMS_Type.ITERATIVE and NMS_Type.MATRIX == "matrix"


def test_matrix_nms_ignores_rows_with_nan():
    raw = torch.tensor([[
        row(50, 50, 20, 20, 1.0, 0.95),
        row(float("nan"), 50, 20, 20, 1.0, 0.99),
        row(50, 50, 20, 20, 1.0, float("nan")),
        row(200, 200, 20, 20, 1.0, 0.5),
    ]])
    out = matrix_non_max_suppression(raw, conf_thres=0.1)[0]
    torch.testing.assert_close(out[:, 4], torch.tensor([0.95, 0.5]))
    assert torch.isfinite(out).all()


@given(
    batch=st.integers(1, 3),
    boxes=st.integers(1, 80),
    classes=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    kernel=st.sampled_from(["gaussian", "linear"]),
    sigma=st.sampled_from([0.0, 0.5, 3.0]),
)
@settings(max_examples=50, deadline=None)
def test_matrix_nms_same_class_pairs_equal_the_dense_matrices(batch, boxes, classes, seed, kernel, sigma):
    from trainwright.ops.matrix_nms import _dense_decay, _pairwise_decay

    raw = raw_output(batch, boxes, classes, seed, spread=60)
    raw[0, :3, 2] = -raw[0, :3, 2]  # a few inverted boxes
    xyxy = torchvision.ops.box_convert(raw[..., :4], "cxcywh", "xyxy")
    labels = raw[..., 5:].argmax(dim=2)
    torch.testing.assert_close(_pairwise_decay(xyxy, labels, kernel, sigma), _dense_decay(xyxy, labels, kernel, sigma))


def test_matrix_nms_negative_sigma_uses_the_dense_path(monkeypatch):
    from trainwright.ops import matrix_nms

    def refuse(*args):
        raise AssertionError("same-class pairs assume sigma >= 0")

    monkeypatch.setattr(matrix_nms, "_pairwise_decay", refuse)
    raw = raw_output(1, 30, 2, seed=9, spread=40)
    out = matrix_non_max_suppression(raw, conf_thres=0.0, sigma=-1.0)[0]
    assert out.shape == (30, 6) and torch.isfinite(out).all()


@pytest.mark.parametrize("poison", [None, "negative_obj", "nan_cls", "inf_cls", "minus_inf_cls"])
def test_matrix_nms_best_scores_equal_the_products(poison):
    from trainwright.ops.matrix_nms import _best_scores

    raw = raw_output(2, 200, 7, seed=13)
    if poison == "negative_obj":
        raw[0, 0, 4] = -0.5
    elif poison == "nan_cls":
        raw[1, 3, 6] = float("nan")
    elif poison == "inf_cls":
        raw[1, 3, 6] = float("inf")
    elif poison == "minus_inf_cls":
        raw[0, 5, 4], raw[0, 5, 7] = 0.0, float("-inf")
    expected = (raw[..., 5:] * raw[..., 4:5]).max(dim=2).values
    torch.testing.assert_close(_best_scores(raw), expected, equal_nan=True, rtol=0, atol=0)


def test_worker_threads_follow_the_callers_autograd_mode():
    raw = raw_output(4, 50, 3, seed=21).requires_grad_()
    with ThreadPoolExecutor(max_workers=2) as pool:
        with torch.no_grad():
            assert not any(o.requires_grad for o in non_max_suppression(raw, 0.1, 0.5, executor=pool) if o is not None)
        with torch.inference_mode():
            out = non_max_suppression(raw.detach(), 0.1, 0.5, executor=pool)
            assert all(o.is_inference() for o in out if o is not None)
        assert all(o.requires_grad for o in non_max_suppression(raw, 0.1, 0.5, executor=pool) if o is not None)
