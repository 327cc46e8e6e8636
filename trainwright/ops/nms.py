"""Non-maximum suppression over raw detector output: greedy per-class NMS and Matrix NMS.

``matrix_non_max_suppression`` lives in ``trainwright.ops.matrix_nms`` and is importable from here too.
Raw output rows are (cx, cy, w, h, objectness, class_0 score, ..., class_{C-1} score); results are one
tensor per image with rows (x1, y1, x2, y2, score, class).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from enum import Enum

import torch
import torchvision
from torch import Tensor

from trainwright.ops._checks import Prediction, check_cap, check_raw_output, compute_dtype
from trainwright.ops.boxes import cxcywh2xyxy
from trainwright.ops.candidate_cap import DEFAULT_MAX_CANDIDATES_PER_CLASS, top_k_per_class
from trainwright.ops.matrix_nms import matrix_non_max_suppression


class NMS_Type(str, Enum):
    """Which suppression algorithm post-processing runs."""

    ITERATIVE = "iterative"
    MATRIX = "matrix"


def _candidates(pred: Tensor, conf_thres: float, multi_label: bool, with_confidence: bool):
    """The reference filter for one image [N, 5 + C] -> (boxes [K, 4] xyxy, scores [K], classes [K])."""
    rows = pred[pred[:, 4] > conf_thres]
    rows = rows.to(compute_dtype(rows.dtype))
    class_scores = rows[:, 5:]
    if with_confidence:
        class_scores = class_scores * rows[:, 4:5]
    if multi_label:
        box_idx, classes = (class_scores > conf_thres).nonzero(as_tuple=True)
        scores = class_scores[box_idx, classes]
    else:
        scores, classes = class_scores.max(dim=1)
        box_idx = (scores > conf_thres).nonzero(as_tuple=True)[0]
        scores, classes = scores[box_idx], classes[box_idx]
    boxes = cxcywh2xyxy(rows[box_idx, :4])
    return boxes, scores, classes


# Above this many box coordinates torchvision's batched_nms runs NMS class by class on CPU (below it, one NMS
# call on class-offset boxes); _batched_nms follows the same split so that both keep exactly the same boxes.
_PER_CLASS_MIN_NUMEL_CPU = 4000


def _batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_thres: float) -> Tensor:
    """Same result as ``torchvision.ops.batched_nms`` (kept indices, decreasing score), with less overhead.

    For many CPU candidates, torchvision scans the whole candidate list once per class; here the candidates
    are grouped by class with one stable sort and each group goes to the same NMS kernel, in the same order.
    """
    if boxes.device.type != "cpu" or boxes.numel() <= _PER_CLASS_MIN_NUMEL_CPU:
        return torchvision.ops.batched_nms(boxes, scores, classes, iou_thres)
    order = torch.argsort(classes, stable=True)
    counts = torch.bincount(classes[order])
    starts = counts.cumsum(0) - counts
    sorted_boxes, sorted_scores = boxes[order], scores[order]
    groups = counts > 1
    kept_in_group = [
        torch.ops.torchvision.nms(sorted_boxes[start:start + count], sorted_scores[start:start + count], iou_thres)
        for start, count in zip(starts[groups].tolist(), counts[groups].tolist())
    ]
    offsets = starts[groups].repeat_interleave(torch.tensor([len(k) for k in kept_in_group], dtype=torch.long))
    singles = starts[counts == 1]  # a class with one candidate keeps it
    kept_positions = torch.cat([singles, torch.cat(kept_in_group) + offsets]) if kept_in_group else singles
    keep_mask = torch.zeros_like(scores, dtype=torch.bool)
    keep_mask[order[kept_positions]] = True
    keep = torch.where(keep_mask)[0]
    return keep[scores[keep].sort(descending=True)[1]]


def _nms_image(
    pred: Tensor,
    conf_thres: float,
    iou_thres: float,
    multi_label: bool,
    with_confidence: bool,
    nms_top_k: int | None,
    max_predictions: int | None,
    max_candidates_per_class: int | None = None,
) -> Tensor | None:
    """Filter, suppress and format one image's raw rows [N, 5 + C] -> [n, 6] or None."""
    boxes, scores, classes = _candidates(pred, conf_thres, multi_label, with_confidence)
    finite = torch.isfinite(boxes).all(dim=1)
    if not bool(finite.all()):
        boxes, scores, classes = boxes[finite], scores[finite], classes[finite]
    if nms_top_k is not None and scores.numel() > nms_top_k:
        top = scores.topk(nms_top_k).indices
        boxes, scores, classes = boxes[top], scores[top], classes[top]
    if max_candidates_per_class is not None:
        boxes, scores, classes = _cap_per_class(boxes, scores, classes, max_candidates_per_class)
    if scores.numel() == 0:
        return None
    keep = _batched_nms(boxes, scores, classes, iou_thres)
    if max_predictions is not None:
        keep = keep[:max_predictions]
    if keep.numel() == 0:
        return None
    out = torch.cat([boxes[keep], scores[keep, None], classes[keep, None].to(boxes.dtype)], dim=1)
    return out.to(pred.dtype)


def _cap_per_class(boxes: Tensor, scores: Tensor, classes: Tensor, cap: int) -> tuple[Tensor, Tensor, Tensor]:
    """Keep the `cap` best candidates of each class (see trainwright.ops.candidate_cap); warn when it cuts."""
    kept = top_k_per_class(scores, classes, cap)
    if kept is None:
        return boxes, scores, classes
    warnings.warn(
        f"non_max_suppression: {scores.numel() - kept.numel()} of {scores.numel()} candidates dropped before NMS "
        f"(a class had {int(torch.bincount(classes).max())} > max_candidates_per_class={cap}; only its {cap} "
        f"best-scored ones were kept). Raise the confidence threshold, or pass max_candidates_per_class=None "
        f"to keep all (NMS time grows with the square of a class's candidates).",
        stacklevel=2,
    )
    return boxes[kept], scores[kept], classes[kept]


def _map_images(
    fn: Callable[[Tensor], Tensor | None], images: Sequence[Tensor], executor: Executor | None
) -> list[Tensor | None]:
    """fn over each image; on `executor`, several CPU images at once (torch kernels release the GIL)."""
    if executor is None or len(images) < 2 or images[0].device.type != "cpu":
        return [fn(image) for image in images]
    # Autograd and inference modes are per thread: the workers take the caller's.
    grad_enabled, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def call(image: Tensor) -> Tensor | None:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad_enabled):
            return fn(image)

    return list(executor.map(call, images))


def non_max_suppression(
    prediction: Prediction,
    conf_thres: float = 0.1,
    iou_thres: float = 0.6,
    multi_label_per_box: bool = True,
    with_confidence: bool = False,
    *,
    nms_top_k: int | None = None,
    max_predictions: int | None = None,
    max_candidates_per_class: int | None = DEFAULT_MAX_CANDIDATES_PER_CLASS,
    executor: Executor | None = None,
) -> list[Tensor | None]:
    """Greedy per-class NMS over raw output [B, N, 5 + C] (or a list of [N_i, 5 + C]) -> B x ([n, 6] or None).

    A row is a candidate when its objectness is above ``conf_thres``; each class score (times the
    objectness when ``with_confidence``) above ``conf_thres`` then makes a (box, score, class) candidate,
    every such class with ``multi_label_per_box``, else only the best class. Candidates go through
    ``torchvision.ops.batched_nms`` (boxes of different classes never suppress each other), so the kept
    boxes are exactly the ones it keeps. Each image gives [n, 6] rows (x1, y1, x2, y2, score, class) in
    decreasing score order, in the input's dtype and device, or None when no box is left.

    ``nms_top_k`` keeps only the best-scored candidates before NMS and ``max_predictions`` the first rows
    after it; None (the default) keeps all. ``max_candidates_per_class`` (default 10000) keeps only the best
    candidates of a class that has more, with a warning: greedy NMS costs up to n^2 / 2 IoUs for a class of
    n candidates, so this bounds its time; the result is unchanged whenever no class has more (None: no cap,
    exactly the reference). NaN scores never pass the threshold, and candidates with a
    non-finite box coordinate are dropped before NMS. A box with negative width or height overlaps nothing
    (it is kept when its score passes and suppresses no other box). The input is never modified. With an
    ``executor`` (a thread pool the caller owns), the images of a CPU batch run concurrently on it (torch
    kernels release the GIL); without one, one after the other.
    """
    images = check_raw_output("prediction", prediction)
    check_cap("nms_top_k", nms_top_k)
    check_cap("max_predictions", max_predictions)
    check_cap("max_candidates_per_class", max_candidates_per_class)
    if len(images) == 0:
        return []

    def run(pred: Tensor) -> Tensor | None:
        return _nms_image(pred, conf_thres, iou_thres, multi_label_per_box, with_confidence, nms_top_k,
                          max_predictions, max_candidates_per_class)

    return _map_images(run, list(images.unbind(0)) if isinstance(images, Tensor) else images, executor)


__all__ = [
    "NMS_Type",
    "matrix_non_max_suppression",
    "non_max_suppression",
]
