"""The COCO bbox evaluation (the twelve numbers of COCOeval.summarize) in vectorised torch, no C extension.

Rules reproduced from the reference COCO API:
- images and categories are those listed in the ground truth; detections of other categories are ignored,
  detections on images not listed are an error;
- per image and category only the 100 best-scored detections are kept (ties keep the input order);
- a ground truth is ignored when it is a crowd (`iscrowd`) or its `area` field lies outside the area range;
  (like the reference, an `ignore` field is not read: `iscrowd` alone decides);
- an unmatched detection whose box area (w * h) lies outside the area range is ignored;
- matching, precision and recall as in `matching` and `average_precision`; a summary over nothing
  (no ground truth in that area range) is -1, as in the reference.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainwright.metrics.average_precision import coco_iou_thresholds, coco_recall_thresholds, detection_curves
from trainwright.metrics.matching import greedy_match, rank_within_groups

__all__ = ["coco_evaluate", "coco_evaluation", "CocoEvaluation", "COCO_STAT_NAMES"]

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
_AREA_RANGES = ((0.0, 1e5**2), (0.0, 32.0**2), (32.0**2, 96.0**2), (96.0**2, 1e5**2))  # all, small, medium, large
_MAX_DETS = (1, 10, 100)


@dataclass
class CocoEvaluation:
    """The matching and precision curves behind the COCO summary, kept for per-class numbers and plots.

    K categories (sorted ids), A = 4 area ranges (all, small, medium, large), T = 10 IoU thresholds
    (0.50:0.95), R = 101 recall points. Detections are those taken into the evaluation (the 100 best per
    image and category), D of them; ground truths are the G of listed images and categories.
    """

    num_images: int
    category_ids: list[int]
    category_names: list[str]
    iou_thresholds: Tensor  # [T]
    precision: Tensor  # [K, A, T, R] interpolated precision at each recall point
    positives: Tensor  # [K, A] ground truths that are not ignored
    det_image: Tensor  # [D] image index (into the sorted image ids)
    det_category: Tensor  # [D] category index
    det_box: Tensor  # [D, 4] x, y, w, h
    det_score: Tensor  # [D]
    det_rank: Tensor  # [D] rank by score within its image and category
    true_positive: Tensor  # [D, A, T]
    ignored: Tensor  # [D, A, T] neither true nor false positive
    gt_image: Tensor  # [G]
    gt_category: Tensor  # [G]
    gt_box: Tensor  # [G, 4] x, y, w, h
    gt_crowd: Tensor  # [G] bool

    def summary(self) -> dict[str, float]:
        """The twelve numbers of COCOeval.summarize(), see coco_evaluate."""
        return _summarize(self)


def coco_evaluate(
    ground_truth: Mapping[str, Any] | str | os.PathLike,
    detections: Sequence[Mapping[str, Any]] | str | os.PathLike,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """COCO bbox summary of detections against a COCO ground truth, equal to pycocotools' COCOeval.stats.

    :param ground_truth: a COCO dataset dict (`images`, `annotations`, `categories`) or the path to its JSON.
                         Each annotation needs `image_id`, `category_id`, `bbox` (x, y, w, h); `area` defaults
                         to w * h and `iscrowd` to 0.
    :param detections:   a list of COCO result dicts (`image_id`, `category_id`, `bbox` as x, y, w, h, `score`)
                         or the path to their JSON.
    :param device:       where to compute.
    :return: {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"} -> float;
             -1 for a summary without any ground truth (as the reference).
    """
    return coco_evaluation(ground_truth, detections, device).summary()


def coco_evaluation(
    ground_truth: Mapping[str, Any] | str | os.PathLike,
    detections: Sequence[Mapping[str, Any]] | str | os.PathLike,
    device: torch.device | str = "cpu",
) -> CocoEvaluation:
    """Match and accumulate like coco_evaluate (same arguments), keeping what per-class numbers need."""
    gt = _load(ground_truth, "ground_truth", Mapping)
    dets = _load(detections, "detections", Sequence)
    for key in ("images", "annotations", "categories"):
        if key not in gt:
            raise ValueError(
                f"ground_truth has no '{key}' list; a COCO dataset dict needs images, annotations, categories"
            )
    image_ids = np.unique(np.asarray([img["id"] for img in gt["images"]], dtype=np.int64))
    names = {int(cat["id"]): str(cat.get("name", cat["id"])) for cat in gt["categories"]}
    category_ids = np.unique(np.asarray(list(names), dtype=np.int64))
    gt_arrays = _ground_truth_arrays(gt["annotations"], image_ids, category_ids)
    det_arrays = _detection_arrays(dets, image_ids, category_ids)
    if not (gt_arrays["crowd"] == 0).any():
        warnings.warn(
            "coco_evaluate: the ground truth has no (non-crowd) annotation; every summary is -1", stacklevel=3
        )
    if det_arrays["score"].size == 0:
        warnings.warn("coco_evaluate: there are no detections to evaluate; AP and AR are 0", stacklevel=3)
    tensors = {name: torch.from_numpy(value).to(device) for name, value in {**gt_arrays, **det_arrays}.items()}
    return _match(tensors, len(image_ids), category_ids.tolist(), [names[c] for c in category_ids.tolist()])


def _load(source, name: str, kind: type):
    """The parsed JSON at a path, or source itself when it already is a container of the expected kind."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8") as handle:
            source = json.load(handle)
    if not isinstance(source, kind) or isinstance(source, (str, bytes)):
        raise TypeError(f"{name} must be a {kind.__name__} or a path to its JSON, got {type(source).__name__}")
    return source


def _index_of(ids: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each id in the sorted array known, and whether it is there at all."""
    pos = np.searchsorted(known, ids).clip(max=max(len(known) - 1, 0))
    found = known[pos] == ids if len(known) else np.zeros(len(ids), dtype=bool)
    return pos, found


def _boxes(records: Sequence[Mapping[str, Any]], name: str) -> np.ndarray:
    """[N, 4] float64 bbox of each record, with a clear error on a malformed one."""
    if len(records) == 0:
        return np.zeros((0, 4), dtype=np.float64)
    try:
        boxes = np.asarray([r["bbox"] for r in records], dtype=np.float64).reshape(len(records), -1)
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"every {name} needs a 'bbox' of 4 numbers (x, y, w, h): {err}") from err
    if boxes.shape[1] != 4:
        raise ValueError(f"every {name} 'bbox' must have 4 numbers (x, y, w, h), got {boxes.shape[1]}")
    return boxes


def _ground_truth_arrays(annotations, image_ids: np.ndarray, category_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Ground truths of listed images and categories, in annotation order."""
    img, img_found = _index_of(np.asarray([a["image_id"] for a in annotations], dtype=np.int64), image_ids)
    cat, cat_found = _index_of(np.asarray([a["category_id"] for a in annotations], dtype=np.int64), category_ids)
    boxes = _boxes(annotations, "annotation")
    area = np.asarray([a.get("area", b[2] * b[3]) for a, b in zip(annotations, boxes)], dtype=np.float64)
    crowd = np.asarray([bool(a.get("iscrowd", 0)) for a in annotations], dtype=bool)
    keep = img_found & cat_found
    return {
        "gt_image": img[keep],
        "gt_category": cat[keep],
        "gt_box": boxes[keep],
        "gt_area": area[keep],
        "crowd": crowd[keep],
    }


def _detection_arrays(dets, image_ids: np.ndarray, category_ids: np.ndarray) -> dict[str, np.ndarray]:
    """Detections of listed categories, stably ordered by image (COCO's tie order across images)."""
    try:
        image = np.asarray([d["image_id"] for d in dets], dtype=np.int64)
        category = np.asarray([d["category_id"] for d in dets], dtype=np.int64)
        score = np.asarray([d["score"] for d in dets], dtype=np.float64)
    except KeyError as err:
        raise ValueError(f"every detection needs image_id, category_id, bbox and score; one lacks {err}") from err
    boxes = _boxes(dets, "detection")
    img, img_found = _index_of(image, image_ids)
    if not img_found.all():
        raise ValueError(
            f"detections refer to image_id {image[~img_found][:5].tolist()} not in the ground truth images"
        )
    if not np.isfinite(score).all():
        raise ValueError(f"detection scores must be finite, got {score[~np.isfinite(score)][:5].tolist()}")
    if not np.isfinite(boxes).all():
        raise ValueError("detection bboxes must be finite numbers")
    cat, cat_found = _index_of(category, category_ids)
    order = np.argsort(img[cat_found], kind="stable")
    return {
        "det_image": img[cat_found][order],
        "det_category": cat[cat_found][order],
        "det_box": boxes[cat_found][order],
        "score": score[cat_found][order],
    }


def _match(t: dict[str, Tensor], num_images: int, category_ids: list[int], category_names: list[str]) -> CocoEvaluation:
    """Match the detections (see module docstring) and sample the precision curves of every category."""
    num_categories = len(category_ids)
    device = t["score"].device
    ranges = torch.tensor(_AREA_RANGES, dtype=torch.float64, device=device)
    num_areas = ranges.shape[0]
    gt_out = (t["gt_area"][:, None] < ranges[:, 0]) | (t["gt_area"][:, None] > ranges[:, 1])
    gt_ignore = t["crowd"][:, None] | gt_out  # [G, A]
    positives = torch.zeros(num_categories, num_areas, dtype=torch.long, device=device)
    positives.index_add_(0, t["gt_category"], (~gt_ignore).long())

    det_group = t["det_image"] * num_categories + t["det_category"]
    rank = rank_within_groups(det_group, t["score"])
    keep = rank < _MAX_DETS[-1]
    boxes, category, score, rank, det_group = (
        t["det_box"][keep],
        t["det_category"][keep],
        t["score"][keep],
        rank[keep],
        det_group[keep],
    )
    iou_thresholds = coco_iou_thresholds(device)
    num_thr = iou_thresholds.numel()
    matched, matched_ignored = greedy_match(
        boxes,
        det_group,
        rank,
        t["gt_box"],
        t["gt_image"] * num_categories + t["gt_category"],
        t["crowd"],
        gt_ignore,
        iou_thresholds,
    )
    det_area = boxes[:, 2] * boxes[:, 3]
    det_out = (det_area[:, None] < ranges[:, 0]) | (det_area[:, None] > ranges[:, 1])  # [D, A]
    ignored = matched_ignored | (~matched & det_out[:, :, None])
    true_positive = matched & ~ignored
    num_configs = num_areas * num_thr
    curves = detection_curves(
        score,
        category,
        true_positive.reshape(-1, num_configs),
        (~ignored).reshape(-1, num_configs),
        positives.repeat_interleave(num_thr, dim=1),
        coco_recall_thresholds(device=device),
    )
    return CocoEvaluation(
        num_images=num_images,
        category_ids=category_ids,
        category_names=category_names,
        iou_thresholds=iou_thresholds,
        precision=curves.sampled_precision.view(num_categories, num_areas, num_thr, -1),
        positives=positives,
        det_image=t["det_image"][keep],
        det_category=category,
        det_box=boxes,
        det_score=score,
        det_rank=rank,
        true_positive=true_positive,
        ignored=ignored,
        gt_image=t["gt_image"],
        gt_category=t["gt_category"],
        gt_box=t["gt_box"],
        gt_crowd=t["crowd"],
    )


def _summarize(ev: CocoEvaluation) -> dict[str, float]:
    """The twelve summary numbers of a CocoEvaluation."""
    num_categories = len(ev.category_ids)
    precision, positives, category, rank = ev.precision, ev.positives, ev.det_category, ev.det_rank
    valid = positives > 0  # [K, A]
    recall = {
        m: _recall(ev.true_positive[rank < m], category[rank < m], positives, num_categories) for m in _MAX_DETS
    }
    thr_50 = int(torch.nonzero(ev.iou_thresholds == 0.5)[0])
    thr_75 = int(torch.nonzero(ev.iou_thresholds == 0.75)[0])
    stats = [
        _mean(precision[:, 0], valid[:, 0]),
        _mean(precision[:, 0, thr_50], valid[:, 0]),
        _mean(precision[:, 0, thr_75], valid[:, 0]),
        *(_mean(precision[:, a], valid[:, a]) for a in (1, 2, 3)),
        *(_mean(recall[m][:, 0], valid[:, 0]) for m in _MAX_DETS),
        *(_mean(recall[_MAX_DETS[-1]][:, a], valid[:, a]) for a in (1, 2, 3)),
    ]
    return dict(zip(COCO_STAT_NAMES, stats))


def _recall(true_positive: Tensor, category: Tensor, positives: Tensor, num_categories: int) -> Tensor:
    """Final recall [K, A, T] from true positives [D, A, T] of the detections kept and positives [K, A]."""
    counts = torch.zeros((num_categories, *true_positive.shape[1:]), dtype=torch.int32, device=category.device)
    counts.index_add_(0, category, true_positive.int())
    return counts.double() / positives.clamp(min=1)[:, :, None].double()


def _mean(values: Tensor, valid: Tensor) -> float:
    """Mean over the categories marked valid (all other dims included); -1 when none is."""
    if not bool(valid.any()):
        return -1.0
    return float(values[valid].mean())
