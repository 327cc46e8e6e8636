"""Evaluation metrics: COCO-exact detection mAP as a torchmetrics Metric, and the COCO summary evaluator."""

from trainwright.metrics.coco import coco_evaluate
from trainwright.metrics.detection import (
    DetectionMetrics,
    DetectionMetrics_050,
    DetectionMetrics_050_095,
    compute_detection_matching,
    compute_detection_metrics,
    compute_detection_metrics_per_cls,
    compute_img_detection_matching,
    get_top_k_idx_per_cls,
)
from trainwright.metrics.iou_threshold import IouThreshold
from trainwright.metrics.non_finite import NonFinitePredictions

__all__ = [
    "coco_evaluate",
    "DetectionMetrics",
    "DetectionMetrics_050",
    "DetectionMetrics_050_095",
    "IouThreshold",
    "NonFinitePredictions",
    "compute_detection_matching",
    "compute_detection_metrics",
    "compute_detection_metrics_per_cls",
    "compute_img_detection_matching",
    "get_top_k_idx_per_cls",
]
