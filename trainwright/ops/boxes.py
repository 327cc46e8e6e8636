"""Box formats, areas and the IoU family.

Conventions shared by every function here:

- ``xyxy`` is (x1, y1, x2, y2) and ``cxcywh`` is (centre x, centre y, width, height), in any unit.
- Inputs are never modified; each function returns a new tensor (or numpy array where it accepts one).
- The dtype of the input is kept. float16/bfloat16 inputs are computed in float32 and cast back, so that
  sums and areas cannot overflow; ``compute_box_area`` returns float32 for them (an area of 256x256 pixels
  already overflows float16).
- A box with x2 < x1 (or y2 < y1) is degenerate: it is read as the empty box with x2 = x1 (y2 = y1), so its
  area is 0 and it overlaps nothing.
- Two empty boxes have an IoU of 0 (not 0/0). Non-finite coordinates are not rejected: a NaN coordinate gives
  NaN in every value computed from that box, and other values are left alone.
- Empty inputs give empty outputs of the right shape. Malformed shapes raise ``ValueError`` naming the
  argument and the shape it had.
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch
import torchvision
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _check_last_dim(name: str, value: ArrayLike, size: int, ndims: tuple[int, ...] | None = None) -> None:
    if not isinstance(value, (Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    shape = tuple(value.shape)
    if ndims is not None and len(shape) not in ndims:
        wanted = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{name} must be {wanted} with {size} values per box, got shape {shape}")
    if len(shape) == 0 or shape[-1] != size:
        raise ValueError(f"{name} must have {size} values in its last dimension, got shape {shape}")


def _as_compute(boxes: Tensor) -> Tensor:
    """The tensor in the dtype arithmetic happens in: float32 for half precision and integers."""
    if boxes.dtype in _LOW_PRECISION or not boxes.is_floating_point():
        return boxes.float()
    return boxes


def _back(result: Tensor, like: Tensor) -> Tensor:
    """Cast a floating result back to the floating dtype of the input (integers give float32)."""
    return result.to(like.dtype) if like.is_floating_point() else result


def _convert(bboxes: ArrayLike, to_xyxy: bool) -> ArrayLike:
    if isinstance(bboxes, np.ndarray):
        work = bboxes.astype(np.float32) if bboxes.dtype == np.float16 else bboxes
        a, b, c, d = (work[..., k] for k in range(4))
        if to_xyxy:
            out = np.stack([a - c / 2, b - d / 2, a + c / 2, b + d / 2], axis=-1)
        else:
            out = np.stack([(a + c) / 2, (b + d) / 2, c - a, d - b], axis=-1)
        return out.astype(bboxes.dtype) if np.issubdtype(bboxes.dtype, np.floating) else out
    work = _as_compute(bboxes)
    a, b, c, d = work.unbind(-1)
    if to_xyxy:
        out = torch.stack([a - c / 2, b - d / 2, a + c / 2, b + d / 2], dim=-1)
    else:
        out = torch.stack([(a + c) / 2, (b + d) / 2, c - a, d - b], dim=-1)
    return _back(out, bboxes)


def xyxy2cxcywh(bboxes: ArrayLike) -> ArrayLike:
    """(x1, y1, x2, y2) -> (cx, cy, w, h) for an array or tensor of shape [..., 4] (usually [n, 4])."""
    _check_last_dim("bboxes", bboxes, 4)
    return _convert(bboxes, to_xyxy=False)


def cxcywh2xyxy(bboxes: ArrayLike) -> ArrayLike:
    """(cx, cy, w, h) -> (x1, y1, x2, y2) for an array or tensor of shape [..., 4] (usually [n, 4])."""
    _check_last_dim("bboxes", bboxes, 4)
    return _convert(bboxes, to_xyxy=True)


def convert_cxcywh_bbox_to_xyxy(input_bbox: ArrayLike) -> ArrayLike:
    """(cx, cy, w, h) -> (x1, y1, x2, y2) for the boxes of one image [n, 4] or of a batch [B, n, 4]."""
    _check_last_dim("input_bbox", input_bbox, 4, ndims=(2, 3))
    return _convert(input_bbox, to_xyxy=True)


def sanitize_boxes(boxes: Tensor) -> Tensor:
    """Read inverted xyxy boxes [..., 4] as empty ones: x2 = max(x1, x2), y2 = max(y1, y2); NaN stays NaN."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    x2 = torch.where(x2 < x1, x1, x2)
    y2 = torch.where(y2 < y1, y1, y2)
    return torch.stack([x1, y1, x2, y2], dim=-1)


def compute_box_area(box: Tensor) -> Tensor:
    """Areas of boxes given column-wise: box [4, n] (or [4]) in xyxy -> [1, n] (or [1]).

    Inverted boxes have area 0. float16/bfloat16 boxes give float32 areas.
    """
    if not isinstance(box, Tensor):
        raise TypeError(f"box must be a torch.Tensor, got {type(box).__name__}")
    if box.ndim not in (1, 2) or box.shape[0] != 4:
        raise ValueError(f"box must have shape [4] or [4, n] (one box per column), got shape {tuple(box.shape)}")
    work = _as_compute(box) if box.dtype in _LOW_PRECISION else box
    width = (work[2:3] - work[0:1]).clamp(min=0)
    height = (work[3:4] - work[1:2]).clamp(min=0)
    return width * height


def _pairwise_parts(box1: Tensor, box2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Float32/64 (intersection [N, M], area1 [N], area2 [M]) of sanitized xyxy boxes."""
    area1 = (box1[:, 2] - box1[:, 0]) * (box1[:, 3] - box1[:, 1])
    area2 = (box2[:, 2] - box2[:, 0]) * (box2[:, 3] - box2[:, 1])
    top_left = torch.maximum(box1[:, None, :2], box2[None, :, :2])
    bottom_right = torch.minimum(box1[:, None, 2:], box2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    return wh[..., 0] * wh[..., 1], area1, area2


def _prepare_pair(name1: str, box1: Tensor, name2: str, box2: Tensor) -> tuple[Tensor, Tensor]:
    for name, box in ((name1, box1), (name2, box2)):
        if not isinstance(box, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(box).__name__}")
        _check_last_dim(name, box, 4, ndims=(2,))
    return sanitize_boxes(_as_compute(box1)), sanitize_boxes(_as_compute(box2))


def _safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """numerator / denominator with 0/0 defined as 0 (NaN inputs still give NaN)."""
    return torch.where(denominator == 0, torch.zeros_like(numerator), numerator / denominator)


def box_iou(box1: Tensor, box2: Tensor) -> Tensor:
    """Pairwise IoU of xyxy boxes: box1 [N, 4], box2 [M, 4] -> [N, M].

    Same values as ``torchvision.ops.box_iou`` for proper boxes; inverted boxes count as empty and two empty
    boxes have IoU 0.
    """
    a, b = _prepare_pair("box1", box1, "box2", box2)
    iou = torchvision.ops.box_iou(a, b)
    # torchvision divides 0 by 0 for two empty boxes; an empty box overlaps nothing, so that IoU is 0.
    empty1 = (a[:, 2] == a[:, 0]) | (a[:, 3] == a[:, 1])
    empty2 = (b[:, 2] == b[:, 0]) | (b[:, 3] == b[:, 1])
    return _back(iou.masked_fill(empty1[:, None] & empty2[None, :], 0.0), box1)


def crowd_ioa(det_box: Tensor, crowd_box: Tensor) -> Tensor:
    """Intersection over the detection's area: det_box [N, 4], crowd_box [M, 4] (xyxy) -> [N, M].

    An empty detection has IoA 0 with every crowd box.
    """
    a, b = _prepare_pair("det_box", det_box, "crowd_box", crowd_box)
    inter, det_area, _ = _pairwise_parts(a, b)
    return _back(_safe_divide(inter, det_area[:, None].expand_as(inter)), det_box)


def calculate_bbox_iou_matrix(
    box1: Tensor,
    box2: Tensor,
    x1y1x2y2: bool = True,
    GIoU: bool = False,
    DIoU: bool = False,
    CIoU: bool = False,
    eps: float = 1e-9,
) -> Tensor:
    """IoU, GIoU, DIoU or CIoU of every pair: box1 [N, 4], box2 [M, 4] -> [N, M].

    Boxes are xyxy when ``x1y1x2y2`` else cxcywh. At most one of GIoU / DIoU / CIoU applies, checked in
    that order (CIoU implies the DIoU distance term). ``eps`` is added to the union, the enclosing area and
    the enclosing diagonal, so no pair divides by zero; the values match torchvision's ``box_iou``,
    ``generalized_box_iou``, ``distance_box_iou`` and ``complete_box_iou`` up to that eps.
    """
    for name, box in (("box1", box1), ("box2", box2)):
        if not isinstance(box, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(box).__name__}")
        _check_last_dim(name, box, 4, ndims=(2,))
    a, b = _as_compute(box1), _as_compute(box2)
    if not x1y1x2y2:
        a, b = _convert(a, to_xyxy=True), _convert(b, to_xyxy=True)
    a, b = sanitize_boxes(a), sanitize_boxes(b)
    inter, area1, area2 = _pairwise_parts(a, b)
    union = area1[:, None] + area2[None, :] - inter + eps
    iou = inter / union
    if GIoU or DIoU or CIoU:
        enclose_wh = (torch.maximum(a[:, None, 2:], b[None, :, 2:]) - torch.minimum(a[:, None, :2], b[None, :, :2]))
        if GIoU:
            enclose_area = enclose_wh[..., 0] * enclose_wh[..., 1] + eps
            iou = iou - (enclose_area - union) / enclose_area
        else:
            diagonal2 = (enclose_wh**2).sum(-1) + eps
            centre_delta = (a[:, None, :2] + a[:, None, 2:] - b[None, :, :2] - b[None, :, 2:]) / 2
            penalty = (centre_delta**2).sum(-1) / diagonal2
            if CIoU:
                penalty = penalty + _aspect_penalty(a, b, iou, eps)
            iou = iou - penalty
    return _back(iou, box1)


def _aspect_penalty(a: Tensor, b: Tensor, iou: Tensor, eps: float) -> Tensor:
    """CIoU's alpha * v term for sanitized xyxy boxes a [N, 4], b [M, 4] -> [N, M]."""
    angle1 = torch.atan((a[:, 2] - a[:, 0]) / (a[:, 3] - a[:, 1] + eps))
    angle2 = torch.atan((b[:, 2] - b[:, 0]) / (b[:, 3] - b[:, 1] + eps))
    v = (4 / math.pi**2) * (angle2[None, :] - angle1[:, None]) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return alpha * v


def calc_bbox_iou_matrix(pred: Tensor) -> Tensor:
    """IoU of every pair of boxes within each image: pred [B, n, 4+] (xyxy first) -> [B, n, n]."""
    if not isinstance(pred, Tensor):
        raise TypeError(f"pred must be a torch.Tensor, got {type(pred).__name__}")
    if pred.ndim != 3 or pred.shape[-1] < 4:
        raise ValueError(f"pred must have shape [B, n, 4] (xyxy first; extra columns ignored), got {tuple(pred.shape)}")
    x1, y1, x2, y2 = sanitize_boxes(_as_compute(pred[..., :4])).unbind(-1)
    area = (x2 - x1) * (y2 - y1)
    # [B, n, n] temporaries are updated in place: this runs on every detection of a batch in matrix NMS.
    inter = torch.minimum(x2[:, :, None], x2[:, None, :]).sub_(torch.maximum(x1[:, :, None], x1[:, None, :]))
    height = torch.minimum(y2[:, :, None], y2[:, None, :]).sub_(torch.maximum(y1[:, :, None], y1[:, None, :]))
    inter.clamp_(min=0).mul_(height.clamp_(min=0))
    union = (area[:, :, None] + area[:, None, :]).sub_(inter)
    iou = inter.div_(union).masked_fill_(union == 0, 0.0)  # two empty boxes: 0, not 0/0
    return _back(iou, pred)


def batch_distance2bbox(points: Tensor, distance: Tensor, max_shapes: Tensor | None = None) -> Tensor:
    """Decode (left, top, right, bottom) distances from anchor points into xyxy boxes.

    points [..., 2] (x, y) broadcastable against distance [B, ..., 4] -> boxes [B, ..., 4]. With max_shapes
    [B, 2] = (height, width) per image, boxes are clipped to [0, width] x [0, height].
    """
    _check_last_dim("points", points, 2)
    _check_last_dim("distance", distance, 4)
    x1y1 = points - distance[..., :2]
    x2y2 = points + distance[..., 2:]
    boxes = torch.cat([x1y1, x2y2], dim=-1)
    if max_shapes is None:
        return boxes
    if not isinstance(max_shapes, Tensor) or max_shapes.ndim != 2 or max_shapes.shape[-1] != 2:
        raise ValueError(f"max_shapes must have shape [B, 2] (height, width), got {tuple(getattr(max_shapes, 'shape', ()))}")
    if boxes.ndim < 2 or max_shapes.shape[0] != boxes.shape[0]:
        raise ValueError(f"max_shapes has {max_shapes.shape[0]} rows but the boxes have shape {tuple(boxes.shape)}")
    limits = max_shapes.flip(-1).repeat(1, 2).to(boxes.dtype)
    limits = limits.reshape(limits.shape[0], *([1] * (boxes.ndim - 2)), 4)
    return torch.minimum(boxes, limits).clamp(min=0)


def adjust_box_anns(bbox: ArrayLike, scale_ratio: float, padw: float, padh: float, w_max: float, h_max: float):
    """Scale xyxy boxes by ``scale_ratio``, shift them by the padding and clip them to the image.

    bbox [n, 4+] array or tensor; the first four columns are x1, y1, x2, y2 and further columns are copied
    unchanged. Returns a new array (tensor) of the same shape and dtype.
    """
    if not isinstance(bbox, (Tensor, np.ndarray)):
        raise TypeError(f"bbox must be a numpy array or torch.Tensor, got {type(bbox).__name__}")
    if bbox.ndim != 2 or bbox.shape[1] < 4:
        raise ValueError(f"bbox must have shape [n, 4] or more columns (x1, y1, x2, y2 first), got {tuple(bbox.shape)}")
    out = bbox.copy() if isinstance(bbox, np.ndarray) else bbox.clone()
    xs, ys = bbox[:, 0:4:2] * scale_ratio + padw, bbox[:, 1:4:2] * scale_ratio + padh
    if isinstance(bbox, np.ndarray):
        out[:, 0:4:2] = np.clip(xs, 0, w_max)
        out[:, 1:4:2] = np.clip(ys, 0, h_max)
    else:
        out[:, 0:4:2] = xs.clamp(0, w_max)
        out[:, 1:4:2] = ys.clamp(0, h_max)
    return out
