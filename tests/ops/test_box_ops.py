"""Box conversions, areas and the IoU family: hand-computed cases, edge cases, and properties against torchvision."""

import math

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st

from trainwright.ops.boxes import (
    adjust_box_anns,
    batch_distance2bbox,
    box_iou,
    calc_bbox_iou_matrix,
    calculate_bbox_iou_matrix,
    compute_box_area,
    convert_cxcywh_bbox_to_xyxy,
    crowd_ioa,
    cxcywh2xyxy,
    xyxy2cxcywh,
)

COORD = st.floats(0, 500, width=32, allow_subnormal=False)
SIDE = st.floats(0.5, 200, width=32, allow_subnormal=False)


@st.composite
def xyxy_boxes(draw, min_size=0, max_size=12):
    """Proper xyxy boxes (positive width and height) as a float32 tensor [n, 4]."""
    rows = draw(st.lists(st.tuples(COORD, COORD, SIDE, SIDE), min_size=min_size, max_size=max_size))
    boxes = [[x, y, x + w, y + h] for x, y, w, h in rows]
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


# --- conversions ------------------------------------------------------------------------------------------------


def test_xyxy2cxcywh_hand_computed():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    assert xyxy2cxcywh(boxes).tolist() == [[20.0, 40.0, 20.0, 40.0]]
    assert cxcywh2xyxy(torch.tensor([[20.0, 40.0, 20.0, 40.0]])).tolist() == [[10.0, 20.0, 30.0, 60.0]]


def test_conversions_accept_numpy_and_keep_its_dtype():
    boxes = np.array([[0, 0, 4, 2], [1, 1, 3, 5]], dtype=np.float64)
    out = xyxy2cxcywh(boxes)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, [[2, 1, 4, 2], [2, 3, 2, 4]])
    np.testing.assert_allclose(cxcywh2xyxy(out), boxes)
    half = cxcywh2xyxy(np.array([[100.0, 100.0, 20.0, 10.0]], dtype=np.float16))
    assert half.dtype == np.float16 and half.tolist() == [[90.0, 95.0, 110.0, 105.0]]


def test_conversions_never_modify_their_input():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    array = boxes.numpy().copy()
    xyxy2cxcywh(boxes), cxcywh2xyxy(boxes), convert_cxcywh_bbox_to_xyxy(boxes), xyxy2cxcywh(array)
    assert boxes.tolist() == [[10.0, 20.0, 30.0, 60.0]] and array.tolist() == [[10.0, 20.0, 30.0, 60.0]]


@given(xyxy_boxes())
@settings(max_examples=50, deadline=None)
def test_conversions_match_torchvision_and_round_trip(boxes):
    cxcywh = xyxy2cxcywh(boxes)
    torch.testing.assert_close(cxcywh, torchvision.ops.box_convert(boxes, "xyxy", "cxcywh"))
    torch.testing.assert_close(cxcywh2xyxy(cxcywh), boxes, atol=1e-4, rtol=1e-6)


def test_convert_cxcywh_bbox_to_xyxy_2d_and_3d():
    one = torch.tensor([[5.0, 5.0, 4.0, 2.0]])
    assert convert_cxcywh_bbox_to_xyxy(one).tolist() == [[3.0, 4.0, 7.0, 6.0]]
    batch = torch.stack([one, one * 2])
    out = convert_cxcywh_bbox_to_xyxy(batch)
    assert out.shape == (2, 1, 4) and out[1].tolist() == [[6.0, 8.0, 14.0, 12.0]]


@pytest.mark.parametrize("shape", [(4,), (1, 2, 3, 4), (3, 5), (2, 3, 3)])
def test_convert_cxcywh_bbox_to_xyxy_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=r"input_bbox.*" + re_shape(shape)):
        convert_cxcywh_bbox_to_xyxy(torch.zeros(shape))


def re_shape(shape):
    return r"\(" + r",\s*".join(str(s) for s in shape) + r",?\)"


@pytest.mark.parametrize("fn", [xyxy2cxcywh, cxcywh2xyxy])
def test_conversions_reject_wrong_column_count(fn):
    with pytest.raises(ValueError, match=r"bboxes.*\(2, 5\)"):
        fn(torch.zeros(2, 5))


@pytest.mark.parametrize("fn", [xyxy2cxcywh, cxcywh2xyxy, convert_cxcywh_bbox_to_xyxy])
def test_conversions_of_empty_input_are_empty(fn):
    assert fn(torch.zeros(0, 4)).shape == (0, 4)


def test_conversions_keep_half_precision_without_overflow():
    boxes = torch.tensor([[40960.0, 40960.0, 51200.0, 51200.0]], dtype=torch.float16)
    out = xyxy2cxcywh(boxes)  # x1 + x2 overflows float16; the result itself does not
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert out.float().tolist() == [[46080.0, 46080.0, 10240.0, 10240.0]]
    assert cxcywh2xyxy(torch.tensor([[10.0, 10.0, 4.0, 4.0]], dtype=torch.bfloat16)).dtype == torch.bfloat16


# --- areas ------------------------------------------------------------------------------------------------------


def test_compute_box_area_takes_boxes_as_columns():
    boxes = torch.tensor([[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 5.0, 2.0]])
    assert compute_box_area(boxes.T).tolist() == [[6.0, 4.0]]
    assert compute_box_area(boxes[0]).tolist() == [6.0]
    assert compute_box_area(torch.zeros(4, 0)).shape == (1, 0)


def test_compute_box_area_inverted_box_is_zero_and_half_does_not_overflow():
    assert compute_box_area(torch.tensor([5.0, 5.0, 1.0, 9.0])).tolist() == [0.0]
    area = compute_box_area(torch.tensor([0.0, 0.0, 640.0, 640.0], dtype=torch.float16))
    assert area.dtype == torch.float32 and area.item() == 640.0 * 640.0


def test_compute_box_area_rejects_row_layout():
    with pytest.raises(ValueError, match=r"box.*\(3, 4\)"):
        compute_box_area(torch.zeros(3, 4))


# --- IoU --------------------------------------------------------------------------------------------------------


def test_box_iou_hand_computed():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[5.0, 5.0, 15.0, 15.0], [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[25 / 175, 1.0, 0.0]]))


@given(xyxy_boxes(), xyxy_boxes())
@settings(max_examples=50, deadline=None)
def test_box_iou_matches_torchvision(box1, box2):
    torch.testing.assert_close(box_iou(box1, box2), torchvision.ops.box_iou(box1, box2))


def test_box_iou_degenerate_boxes():
    inverted = torch.tensor([[10.0, 10.0, 0.0, 0.0]])  # x2 < x1: read as the empty box at (10, 10)
    proper = torch.tensor([[0.0, 0.0, 20.0, 20.0]])
    point = torch.tensor([[10.0, 10.0, 10.0, 10.0]])
    assert box_iou(inverted, proper).item() == 0.0
    assert box_iou(point, point).item() == 0.0  # 0/0 is defined as 0, unlike torchvision
    assert torchvision.ops.box_iou(point, point).isnan().item()


def test_box_iou_nan_propagates_only_to_its_row():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [float("nan"), 0.0, 10.0, 10.0]])
    iou = box_iou(boxes, boxes[:1])
    assert iou[0, 0].item() == 1.0 and iou[1, 0].isnan()


def test_box_iou_empty_and_dtype():
    assert box_iou(torch.zeros(0, 4), torch.zeros(3, 4)).shape == (0, 3)
    big = torch.tensor([[0.0, 0.0, 600.0, 600.0], [300.0, 0.0, 900.0, 600.0]], dtype=torch.float16)
    iou = box_iou(big, big)  # the areas (360000) overflow float16
    assert iou.dtype == torch.float16
    torch.testing.assert_close(iou.float(), torch.tensor([[1.0, 1 / 3], [1 / 3, 1.0]]), atol=1e-3, rtol=0)
    assert box_iou(big.bfloat16(), big.bfloat16()).dtype == torch.bfloat16
    ints = torch.tensor([[0, 0, 2, 2]])
    assert box_iou(ints, ints).dtype == torch.float32


@pytest.mark.parametrize("shape", [(4,), (2, 3), (1, 2, 4)])
def test_box_iou_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=r"box2.*" + re_shape(shape)):
        box_iou(torch.zeros(1, 4), torch.zeros(shape))


def test_crowd_ioa_hand_computed():
    det = torch.tensor([[0.0, 0.0, 10.0, 10.0], [2.0, 2.0, 4.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    crowd = torch.tensor([[5.0, 0.0, 25.0, 10.0], [0.0, 0.0, 100.0, 100.0]])
    torch.testing.assert_close(crowd_ioa(det, crowd), torch.tensor([[0.5, 1.0], [0.0, 1.0], [0.0, 0.0]]))
    assert crowd_ioa(torch.zeros(2, 4), torch.zeros(0, 4)).shape == (2, 0)
    with pytest.raises(ValueError, match=r"crowd_box.*\(3, 5\)"):
        crowd_ioa(det, torch.zeros(3, 5))


@given(xyxy_boxes(min_size=1), xyxy_boxes(min_size=1))
@settings(max_examples=50, deadline=None)
def test_crowd_ioa_is_intersection_over_detection_area(det, crowd):
    ioa = crowd_ioa(det, crowd)
    assert ((ioa >= 0) & (ioa <= 1 + 1e-6)).all()
    assert (ioa >= box_iou(det, crowd) - 1e-6).all()
    union = compute_box_area(det.T)[0][:, None] + compute_box_area(crowd.T)[0][None, :]
    inter = box_iou(det, crowd) * union / (1 + box_iou(det, crowd))
    torch.testing.assert_close(ioa, inter / compute_box_area(det.T)[0][:, None], atol=1e-4, rtol=1e-4)


MODES = {
    "iou": ({}, torchvision.ops.box_iou),
    "giou": ({"GIoU": True}, torchvision.ops.generalized_box_iou),
    "diou": ({"DIoU": True}, torchvision.ops.distance_box_iou),
    "ciou": ({"CIoU": True}, torchvision.ops.complete_box_iou),
}


@pytest.mark.parametrize("mode", sorted(MODES))
@given(box1=xyxy_boxes(), box2=xyxy_boxes())
@settings(max_examples=50, deadline=None)
def test_calculate_bbox_iou_matrix_matches_torchvision(mode, box1, box2):
    flags, reference = MODES[mode]
    expected = reference(box1, box2)
    torch.testing.assert_close(calculate_bbox_iou_matrix(box1, box2, **flags), expected, atol=1e-5, rtol=1e-5)
    centred = calculate_bbox_iou_matrix(xyxy2cxcywh(box1), xyxy2cxcywh(box2), x1y1x2y2=False, **flags)
    torch.testing.assert_close(centred, expected, atol=1e-4, rtol=1e-4)


def test_calculate_bbox_iou_matrix_hand_computed():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[2.0, 0.0, 4.0, 2.0]])  # touching: IoU 0, enclosing box 4x2, union 8
    assert calculate_bbox_iou_matrix(a, b).item() == pytest.approx(0.0)
    assert calculate_bbox_iou_matrix(a, b, GIoU=True).item() == pytest.approx(0.0)
    assert calculate_bbox_iou_matrix(a, b, DIoU=True).item() == pytest.approx(-4 / 20)
    far = torch.tensor([[4.0, 0.0, 6.0, 2.0]])  # enclosing 6x2, union 8 -> GIoU = 0 - 4/12
    assert calculate_bbox_iou_matrix(a, far, GIoU=True).item() == pytest.approx(-1 / 3)
    tall = torch.tensor([[0.0, 0.0, 2.0, 4.0]])  # IoU 1/2, centre distance 1, diagonal^2 = 20
    v = 4 / math.pi**2 * (math.atan(0.5) - math.atan(1.0)) ** 2
    expected = 0.5 - 1 / 20 - v * v / (1 - 0.5 + v)
    assert calculate_bbox_iou_matrix(a, tall, CIoU=True).item() == pytest.approx(expected, abs=1e-6)


def test_calculate_bbox_iou_matrix_edge_cases():
    point = torch.tensor([[3.0, 3.0, 3.0, 3.0]])
    for flags in ({}, {"GIoU": True}, {"DIoU": True}, {"CIoU": True}):
        value = calculate_bbox_iou_matrix(point, point, **flags)
        assert torch.isfinite(value).all(), flags  # eps keeps 0/0 away
    assert calculate_bbox_iou_matrix(torch.zeros(0, 4), torch.zeros(5, 4), GIoU=True).shape == (0, 5)
    half = calculate_bbox_iou_matrix(torch.tensor([[0.0, 0.0, 500.0, 500.0]]).half(),
                                     torch.tensor([[0.0, 0.0, 500.0, 250.0]]).half(), CIoU=True)
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    with pytest.raises(ValueError, match=r"box1.*\(4,\)"):
        calculate_bbox_iou_matrix(torch.zeros(4), point)


def test_calc_bbox_iou_matrix_per_image():
    pred = torch.tensor([[[0.0, 0.0, 10.0, 10.0, 0.9], [5.0, 5.0, 15.0, 15.0, 0.8]],
                         [[0.0, 0.0, 1.0, 1.0, 0.1], [2.0, 2.0, 3.0, 3.0, 0.2]]])
    out = calc_bbox_iou_matrix(pred)
    assert out.shape == (2, 2, 2)
    torch.testing.assert_close(out[0], box_iou(pred[0, :, :4], pred[0, :, :4]))
    assert out[1].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert calc_bbox_iou_matrix(torch.zeros(3, 0, 4)).shape == (3, 0, 0)
    with pytest.raises(ValueError, match=r"pred.*\(2, 4\)"):
        calc_bbox_iou_matrix(torch.zeros(2, 4))


# --- decoding and annotation adjustment -------------------------------------------------------------------------


def test_batch_distance2bbox_hand_computed_and_clipped():
    points = torch.tensor([[10.0, 10.0], [50.0, 5.0]])  # [A, 2], shared by the batch
    distance = torch.tensor([[[1.0, 2.0, 3.0, 4.0], [20.0, 20.0, 20.0, 20.0]]]).repeat(2, 1, 1)
    out = batch_distance2bbox(points, distance)
    assert out.shape == (2, 2, 4) and out[0].tolist() == [[9.0, 8.0, 13.0, 14.0], [30.0, -15.0, 70.0, 25.0]]
    clipped = batch_distance2bbox(points, distance, max_shapes=torch.tensor([[20.0, 60.0], [100.0, 100.0]]))
    assert clipped[0].tolist() == [[9.0, 8.0, 13.0, 14.0], [30.0, 0.0, 60.0, 20.0]]
    assert clipped[1, 1].tolist() == [30.0, 0.0, 70.0, 25.0]
    assert distance.tolist()[0][0] == [1.0, 2.0, 3.0, 4.0]


def test_batch_distance2bbox_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"distance.*\(1, 2, 3\)"):
        batch_distance2bbox(torch.zeros(2, 2), torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match=r"max_shapes.*\(2,\)"):
        batch_distance2bbox(torch.zeros(2, 2), torch.zeros(1, 2, 4), max_shapes=torch.zeros(2))
    assert batch_distance2bbox(torch.zeros(0, 2), torch.zeros(3, 0, 4)).shape == (3, 0, 4)


def test_adjust_box_anns_scales_pads_and_clips_a_copy():
    bbox = np.array([[10.0, 10.0, 50.0, 40.0, 7.0], [-5.0, 0.0, 400.0, 300.0, 2.0]])
    out = adjust_box_anns(bbox, scale_ratio=0.5, padw=10, padh=20, w_max=100, h_max=120)
    np.testing.assert_allclose(out, [[15.0, 25.0, 35.0, 40.0, 7.0], [7.5, 20.0, 100.0, 120.0, 2.0]])
    assert bbox[0, 0] == 10.0  # the caller's array is untouched
    tensor_out = adjust_box_anns(torch.tensor(bbox), 0.5, 10, 20, 100, 120)
    np.testing.assert_allclose(tensor_out.numpy(), out)
    assert adjust_box_anns(np.zeros((0, 4)), 1.0, 0, 0, 10, 10).shape == (0, 4)
    with pytest.raises(ValueError, match=r"bbox.*\(4,\)"):
        adjust_box_anns(np.zeros(4), 1.0, 0, 0, 10, 10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_box_ops_on_cuda_match_cpu():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0]])
    for fn in (box_iou, crowd_ioa, lambda x, y: calculate_bbox_iou_matrix(x, y, CIoU=True)):
        torch.testing.assert_close(fn(a.cuda(), a.cuda()).cpu(), fn(a, a))
