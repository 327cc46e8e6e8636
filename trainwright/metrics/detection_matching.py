"""Matching of post-processed predictions to targets, in the reference formats, batched over a whole batch.

Formats:
- predictions of one image: [n, 6] (x1, y1, x2, y2, confidence, class) in pixels, or None for no box;
- batch targets: [N, 6] (image index, class, cx, cy, w, h); per-image targets: [m, 5] (class, cx, cy, w, h)
  (a [m, 6] tensor is read as (image index, class, cx, cy, w, h) and its first column is not used);
- crowd targets: the same layouts; a prediction overlapping a crowd region of its class is ignored.

Boxes are never clipped to the image: a box partly or fully outside is evaluated as given (as COCO does).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from trainwright.metrics.matching import greedy_match, rank_within_groups

__all__ = [
    "get_top_k_idx_per_cls",
    "compute_img_detection_matching",
    "compute_detection_matching",
    "check_predictions",
    "check_prediction_list",
    "check_targets",
    "match_batch",
]

MatchingResult = tuple[Tensor, Tensor, Tensor, Tensor, Tensor]


def get_top_k_idx_per_cls(preds_scores: Tensor, preds_cls: Tensor, top_k: int) -> Tensor:
    """Indices (ascending) of the predictions among the top_k scores of their class; ties keep the input order.

    :param preds_scores: [n] confidence.  :param preds_cls: [n] class.  :return: [<= top_k * n_classes] long.
    """
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    rank = rank_within_groups(preds_cls.long(), preds_scores)
    return torch.nonzero(rank < top_k).flatten()


def check_predictions(preds: Tensor | None, name: str = "preds", num_cls: int | None = None) -> Tensor | None:
    """Validate one image's predictions [n, 6]; raise ValueError naming the problem."""
    preds = _prediction_shape(preds, name)
    if preds is not None and len(preds):
        _check_prediction_values(preds, name, num_cls)
    return preds


def check_prediction_list(preds, name: str, num_cls: int | None = None) -> list[Tensor | None]:
    """Validate per-image predictions (each [n, 6] or None) with one pass over their concatenation."""
    if isinstance(preds, Tensor) and preds.ndim == 3:
        preds = list(preds)
    if isinstance(preds, (str, bytes)) or not isinstance(preds, Sequence):
        raise TypeError(f"{name} must be a list of [n, 6] tensors (or None) per image, got {type(preds).__name__}")
    preds = [_prediction_shape(p, f"{name}[{i}]") for i, p in enumerate(preds)]
    present = [p for p in preds if p is not None and len(p)]
    if present:
        try:
            _check_prediction_values(torch.cat(present), name, num_cls)
        except ValueError:  # find the image to name it
            for i, p in enumerate(preds):
                check_predictions(p, f"{name}[{i}]", num_cls)
            raise
    return preds


def _prediction_shape(preds: Tensor | None, name: str) -> Tensor | None:
    """preds as [n, 6] (an empty tensor of any shape becomes [0, 6]) or None."""
    if preds is None:
        return None
    if not isinstance(preds, Tensor):
        raise TypeError(f"{name} must be a tensor [n, 6] or None, got {type(preds).__name__}")
    if preds.numel() == 0:
        return preds.reshape(0, 6)
    if preds.ndim != 2 or preds.shape[1] != 6:
        raise ValueError(f"{name} must have shape [n, 6] (x1, y1, x2, y2, confidence, class), got {tuple(preds.shape)}")
    return preds


def _check_prediction_values(preds: Tensor, name: str, num_cls: int | None) -> None:
    """Scores not NaN, finite boxes with x1 <= x2 and y1 <= y2, valid class ids."""
    nan_rows = torch.isnan(preds[:, 4])
    if nan_rows.any():
        raise ValueError(f"{name} has NaN confidence scores (rows {torch.nonzero(nan_rows).flatten()[:5].tolist()})")
    if not torch.isfinite(preds[:, :4]).all():
        raise ValueError(f"{name} has non-finite box coordinates")
    if ((preds[:, 2] < preds[:, 0]) | (preds[:, 3] < preds[:, 1])).any():
        raise ValueError(f"{name} has boxes with x2 < x1 or y2 < y1; expected (x1, y1, x2, y2)")
    _check_classes(preds[:, 5], name, num_cls)


def check_targets(targets: Tensor | None, name: str, num_images: int, num_cls: int | None = None) -> Tensor:
    """Validate batch targets [N, 6] (image index, class, cx, cy, w, h); None gives an empty tensor."""
    if targets is None:
        return torch.zeros(0, 6)
    if not isinstance(targets, Tensor):
        raise TypeError(f"{name} must be a tensor [N, 6], got {type(targets).__name__}")
    if targets.numel() == 0:
        return targets.reshape(0, 6)
    if targets.ndim != 2 or targets.shape[1] != 6:
        raise ValueError(
            f"{name} must have shape [N, 6] (image index, class, cx, cy, w, h), got {tuple(targets.shape)}"
        )
    if not torch.isfinite(targets).all():
        raise ValueError(f"{name} has non-finite values")
    index = targets[:, 0]
    if ((index < 0) | (index >= num_images) | (index != index.round())).any():
        raise ValueError(
            f"{name} image indices must be integers in [0, {num_images}), got {index.unique()[:10].tolist()}"
        )
    if (targets[:, 4:6] < 0).any():
        raise ValueError(f"{name} has negative box width or height")
    _check_classes(targets[:, 1], name, num_cls)
    return targets


def _check_classes(classes: Tensor, name: str, num_cls: int | None) -> None:
    """Class ids must be integers >= 0 (and < num_cls when given)."""
    bad = (classes < 0) | (classes != classes.round()) | torch.isnan(classes)
    if num_cls is not None:
        bad |= classes >= num_cls
    if bad.any():
        bound = f"[0, {num_cls})" if num_cls is not None else ">= 0"
        raise ValueError(f"{name} class ids must be integers in {bound}, got {classes[bad].unique()[:10].tolist()}")


def _targets_to_xywh(targets: Tensor, height: int, width: int, denormalize: bool) -> Tensor:
    """Boxes [N, 4] (x, y, w, h) in pixels, float64, from (cx, cy, w, h) columns [N, 4]."""
    boxes = targets.double()
    if denormalize:
        boxes = boxes * boxes.new_tensor([width, height, width, height])
    return torch.cat([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, 2:]], dim=1)


def match_batch(
    preds: Sequence[Tensor | None],
    targets: Tensor,
    crowd_targets: Tensor,
    height: int,
    width: int,
    iou_thresholds: Tensor,
    denormalize_targets: bool,
    top_k: int,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Match every image's predictions at once.

    :return: matched [P, T] bool, ignored [P, T] bool, scores [P], classes [P], image index [P] of the
             concatenated predictions (image order, then input order); predictions beyond top_k of their
             class in their image are ignored at every threshold.
    """
    device = torch.device(device) if device is not None else targets.device
    parts = [p.to(device) if p is not None else torch.zeros(0, 6, device=device) for p in preds]
    counts = torch.tensor([len(p) for p in parts], device=device)
    flat = torch.cat(parts).reshape(-1, 6) if parts else torch.zeros(0, 6, device=device)
    image = torch.repeat_interleave(torch.arange(len(parts), device=device), counts)
    targets, crowd_targets = targets.to(device), crowd_targets.to(device)
    all_classes = torch.cat([flat[:, 5], targets[:, 1], crowd_targets[:, 1], flat.new_zeros(1)])
    num_groups = int(all_classes.max()) + 1
    thresholds = iou_thresholds.to(device=device, dtype=torch.float64).reshape(-1)
    pred_group = image * num_groups + flat[:, 5].long()
    rank = rank_within_groups(pred_group, flat[:, 4])
    kept = rank < top_k
    pred_box = flat[kept, :4].double()
    pred_box = torch.cat([pred_box[:, :2], pred_box[:, 2:] - pred_box[:, :2]], dim=1)
    gt = torch.cat([targets, crowd_targets])
    gt_box = _targets_to_xywh(gt[:, 2:6], height, width, denormalize_targets)
    gt_group = gt[:, 0].long() * num_groups + gt[:, 1].long()
    crowd = torch.arange(len(gt), device=device) >= len(targets)
    found, found_ignored = greedy_match(
        pred_box, pred_group[kept], rank[kept], gt_box, gt_group, crowd, crowd[:, None], thresholds
    )
    matched = torch.zeros(len(flat), thresholds.numel(), dtype=torch.bool, device=device)
    ignored = torch.ones_like(matched)
    matched[kept] = found[:, 0] & ~found_ignored[:, 0]
    ignored[kept] = found_ignored[:, 0]
    return matched, ignored, flat[:, 4], flat[:, 5], image


def _image_targets(targets: Tensor | None, name: str) -> Tensor:
    """Per-image targets [m, 5] or [m, 6] as batch targets [m, 6] with image index 0."""
    if targets is None:
        return torch.zeros(0, 6)
    if targets.numel() == 0:
        return targets.new_zeros(0, 6)
    if targets.ndim != 2 or targets.shape[1] not in (5, 6):
        raise ValueError(f"{name} must have shape [m, 5] (class, cx, cy, w, h) or [m, 6], got {tuple(targets.shape)}")
    if targets.shape[1] == 6:
        targets = targets[:, 1:]
    return torch.cat([targets.new_zeros(len(targets), 1), targets], dim=1)


def compute_img_detection_matching(
    preds: Tensor | None,
    targets: Tensor,
    crowd_targets: Tensor | None,
    height: int,
    width: int,
    iou_thresholds: Tensor,
    device: torch.device | str,
    denormalize_targets: bool,
    top_k: int = 100,
    return_on_cpu: bool = True,
) -> MatchingResult:
    """Match one image's predictions [n, 6] to its targets [m, 5] (class, cx, cy, w, h) and crowd targets.

    Only the top_k predictions of each class take part; the others are marked ignored at every threshold.
    denormalize_targets=True multiplies target boxes by (width, height, width, height) first.

    :return: preds_matched [n, T] bool, preds_to_ignore [n, T] bool (overlaps a crowd region, or not in the
             top_k), preds_scores [n], preds_cls [n], targets_cls [m]; on CPU when return_on_cpu.
    """
    preds = check_predictions(preds, "preds")
    batch_targets = check_targets(_image_targets(targets, "targets"), "targets", 1)
    batch_crowd = check_targets(_image_targets(crowd_targets, "crowd_targets"), "crowd_targets", 1)
    matched, ignored, scores, classes, _ = match_batch(
        [preds],
        batch_targets,
        batch_crowd,
        height,
        width,
        torch.as_tensor(iou_thresholds),
        denormalize_targets,
        top_k,
        device,
    )
    out_device = "cpu" if return_on_cpu else device
    result = (matched, ignored, scores, classes, batch_targets[:, 1].to(matched.device))
    return tuple(t.to(out_device) for t in result)


def compute_detection_matching(
    output: Sequence[Tensor | None],
    targets: Tensor,
    height: int,
    width: int,
    iou_thresholds: Tensor,
    denormalize_targets: bool,
    device: torch.device | str,
    crowd_targets: Tensor | None = None,
    top_k: int = 100,
    return_on_cpu: bool = True,
) -> list[MatchingResult]:
    """Match a batch: output is one [n_i, 6] tensor (or None) per image, targets [N, 6] (index, class, cx, cy, w, h).

    :return: one (preds_matched, preds_to_ignore, preds_scores, preds_cls, targets_cls) tuple per image, as
             compute_img_detection_matching returns them; all images are matched in one vectorised pass.
    """
    output = check_prediction_list(output, "output")
    targets = check_targets(targets, "targets", len(output))
    crowd_targets = check_targets(crowd_targets, "crowd_targets", len(output))
    matched, ignored, scores, classes, image = match_batch(
        output,
        targets,
        crowd_targets,
        height,
        width,
        torch.as_tensor(iou_thresholds),
        denormalize_targets,
        top_k,
        device,
    )
    out_device = "cpu" if return_on_cpu else matched.device
    counts = torch.bincount(image, minlength=len(output)).tolist()
    target_image = targets[:, 0].long()
    target_counts = torch.bincount(target_image, minlength=len(output)).tolist()
    target_cls = targets[torch.argsort(target_image, stable=True), 1]
    parts = [
        t.to(out_device).split(n)
        for t, n in zip((matched, ignored, scores, classes, target_cls), (counts,) * 4 + (target_counts,))
    ]
    return list(zip(*parts))
