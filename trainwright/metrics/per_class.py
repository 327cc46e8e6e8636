"""Per-class detection numbers and curves from one COCO evaluation (trainwright.metrics.coco).

For each category (area "all", the 100 best detections per image and category, crowd regions ignored):
- AP (IoU 0.50:0.95) and AP50: COCO's, so their mean over the categories with targets is the summary's AP
  and AP50;
- the precision-recall curve at IoU 0.5: COCO's interpolated precision at the 101 recall points (its mean
  is AP50);
- precision, recall and F1 at IoU 0.5 for confidence thresholds 0, 0.001, ..., 1 (plain, not interpolated,
  see trainwright.metrics.confidence_curves); the table's precision and recall are read at the threshold
  where the mean F1 over the categories with targets is highest (the lowest such threshold on a tie);
- targets (non-crowd ground truths) and images that have at least one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from trainwright.metrics.average_precision import coco_recall_thresholds
from trainwright.metrics.coco import CocoEvaluation
from trainwright.metrics.confidence_curves import confidence_curves

__all__ = ["PerClassMetrics", "per_class_metrics"]

_ALL_AREAS = 0


@dataclass
class PerClassMetrics:
    """Per-class numbers [K] and curves of one evaluation; AP and AP50 are -1 for a class without targets."""

    names: list[str]
    category_ids: list[int]
    num_images: int
    targets: Tensor  # [K] long
    images: Tensor  # [K] long
    ap: Tensor  # [K] IoU 0.50:0.95
    ap50: Tensor  # [K]
    precision: Tensor  # [K] at best_confidence, IoU 0.5
    recall: Tensor  # [K] at best_confidence, IoU 0.5
    best_confidence: float
    recall_points: Tensor  # [R]
    pr_curve: Tensor  # [K, R] interpolated precision at IoU 0.5
    confidences: Tensor  # [N]
    precision_curve: Tensor  # [K, N]
    recall_curve: Tensor  # [K, N]
    f1_curve: Tensor  # [K, N]

    @property
    def has_targets(self) -> Tensor:
        """[K] bool, the classes that take part in the means."""
        return self.targets > 0

    def mean(self, values: Tensor) -> Tensor:
        """Mean over the classes with targets of values [K, ...] (-1 when no class has targets)."""
        if not bool(self.has_targets.any()):
            return torch.full(values.shape[1:], -1.0, dtype=torch.float64)
        return values[self.has_targets].double().mean(0)

    def rows(self) -> list[dict]:
        """One dict per class (name, category_id, images, targets, precision, recall, AP50, AP), then 'all'
        (every image, every target, the means over the classes with targets)."""
        rows = [
            {"class": name, "category_id": cid, "images": int(n_img), "targets": int(n_tgt), "precision": float(p),
             "recall": float(r), "AP50": float(ap50), "AP": float(ap)}
            for name, cid, n_img, n_tgt, p, r, ap50, ap in zip(
                self.names, self.category_ids, self.images, self.targets, self.precision, self.recall, self.ap50,
                self.ap)
        ]
        rows.append({"class": "all", "category_id": None, "images": self.num_images, "targets": int(self.targets.sum()),
                     **{key: float(self.mean(getattr(self, attr))) for key, attr in
                        (("precision", "precision"), ("recall", "recall"), ("AP50", "ap50"), ("AP", "ap"))}})
        return rows


def per_class_metrics(evaluation: CocoEvaluation, num_confidences: int = 1001) -> PerClassMetrics:
    """Per-class AP, AP50, precision, recall, target and image counts, and the curves behind them."""
    if num_confidences < 2:
        raise ValueError(f"num_confidences must be >= 2, got {num_confidences}")
    ev = evaluation
    num_classes = len(ev.category_ids)
    thr_50 = int(torch.nonzero(ev.iou_thresholds == 0.5)[0])
    targets = ev.positives[:, _ALL_AREAS]
    precision_all = ev.precision[:, _ALL_AREAS].double()  # [K, T, R]
    no_targets = targets == 0
    ap = precision_all.mean((1, 2)).masked_fill(no_targets, -1.0)
    ap50 = precision_all[:, thr_50].mean(1).masked_fill(no_targets, -1.0)
    counted = ~ev.ignored[:, _ALL_AREAS, thr_50]
    confidences = torch.linspace(0, 1, num_confidences, dtype=torch.float64)
    curves = confidence_curves(ev.det_score, ev.det_category, ev.true_positive[:, _ALL_AREAS, thr_50], counted,
                               targets, confidences)
    mean_f1 = curves.f1[~no_targets].mean(0) if bool((~no_targets).any()) else curves.f1.new_zeros(num_confidences)
    best = int(torch.argmax(mean_f1))
    return PerClassMetrics(
        names=list(ev.category_names),
        category_ids=list(ev.category_ids),
        num_images=ev.num_images,
        targets=targets.long().cpu(),
        images=_images_with_targets(ev, num_classes),
        ap=ap.cpu(),
        ap50=ap50.cpu(),
        precision=curves.precision[:, best].cpu(),
        recall=curves.recall[:, best].cpu(),
        best_confidence=float(confidences[best]),
        recall_points=coco_recall_thresholds(),
        pr_curve=precision_all[:, thr_50].cpu(),
        confidences=confidences,
        precision_curve=curves.precision.cpu(),
        recall_curve=curves.recall.cpu(),
        f1_curve=curves.f1.cpu(),
    )


def _images_with_targets(ev: CocoEvaluation, num_classes: int) -> Tensor:
    """[K] number of distinct images with at least one non-crowd ground truth of each class."""
    regular = ~ev.gt_crowd
    pairs = torch.unique(ev.gt_image[regular] * num_classes + ev.gt_category[regular])
    return torch.bincount(pairs % num_classes, minlength=num_classes).cpu()
