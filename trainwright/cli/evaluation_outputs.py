"""What `trainwright evaluate` adds to the COCO summary: the per-class table, the plots, the detections JSON.

Output paths are checked before the model runs; every file is made in memory first and written atomically
once all of them are ready, so an error never leaves a partial or half-updated set of files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from trainwright.logging import atomic_write
from trainwright.metrics.coco import CocoEvaluation
from trainwright.metrics.confusion import detection_confusion_matrix, normalize_confusion_matrix
from trainwright.metrics.per_class import PerClassMetrics
from trainwright.visualization.evaluation_plots import confusion_matrix_png, f1_curve_png, pr_curve_png

__all__ = ["CONFUSION_CONF", "CONFUSION_IOU", "check_output_paths", "check_not_inputs", "per_class_table",
           "evaluation_files", "write_files"]

CONFUSION_CONF = 0.25  # predictions below this confidence are left out of the confusion matrix
CONFUSION_IOU = 0.5
PLOT_SUFFIXES = ("pr_curve.png", "f1_curve.png", "confusion_matrix.png")


def check_output_paths(output_dir: str | None, save_json: str | None) -> None:
    """One-line errors, before any work, for an --output that is not a folder and an unwritable --save-json."""
    if output_dir is not None:
        existing = Path(os.path.abspath(output_dir))
        while not existing.exists():  # the folder is created later: its nearest existing ancestor must be one
            existing = existing.parent
        if not existing.is_dir():
            raise NotADirectoryError(f"--output must be a folder, but {existing} is a file")
    if save_json is not None:
        if os.path.isdir(save_json):
            raise IsADirectoryError(f"--save-json must be a file name, but {save_json} is a folder")
        parent = os.path.dirname(os.path.abspath(save_json))
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"--save-json {save_json}: folder {parent} does not exist")


def check_not_inputs(outputs: list[tuple[str, str | None]], inputs: list[str]) -> None:
    """ValueError when an output path ((flag, path) pairs) is one of the input files, which it would overwrite."""
    protected = {os.path.realpath(path): path for path in inputs}
    for flag, path in outputs:
        if path is not None and os.path.realpath(path) in protected:
            raise ValueError(f"{flag} {path} would overwrite the input {protected[os.path.realpath(path)]}; "
                             "choose another path")


def plot_paths(folder: str, checkpoint: str) -> list[str]:
    """`<folder>/<checkpoint stem>_<plot>.png` for the PR curve, the F1 curve and the confusion matrix."""
    stem = Path(checkpoint).stem
    return [os.path.join(folder, f"{stem}_{suffix}") for suffix in PLOT_SUFFIXES]


def per_class_table(metrics: PerClassMetrics) -> str:
    """The per-class table: class, images, targets, precision, recall, AP50, AP; 'all' (means) first."""
    rows = metrics.rows()
    width = max(12, *(len(str(r["class"])) for r in rows))
    header = f"{'class':<{width}} {'images':>7} {'targets':>8} {'precision':>9} {'recall':>7} {'AP50':>7} {'AP':>7}"
    lines = [header]
    for row in [rows[-1], *rows[:-1]]:
        ap50, ap = (_number(row[k]) for k in ("AP50", "AP"))
        lines.append(f"{row['class']:<{width}} {row['images']:>7} {row['targets']:>8} {row['precision']:>9.3f} "
                     f"{row['recall']:>7.3f} {ap50:>7} {ap:>7}")
    lines.append(f"(precision and recall at IoU 0.5 and confidence >= {metrics.best_confidence:.3f}, the threshold "
                 "of the best mean F1; AP50 and AP as COCO's, '-' for a class without targets)")
    return "\n".join(lines)


def _number(value: float) -> str:
    return "-" if value < 0 else f"{value:.3f}"


def evaluation_files(evaluation: CocoEvaluation, metrics: PerClassMetrics, paths: list[str]) -> dict[str, bytes]:
    """PNG bytes of the PR curve, the F1-confidence curve and the confusion matrix, keyed by their paths."""
    with_targets = metrics.has_targets
    names = [n for n, keep in zip(metrics.names, with_targets.tolist()) if keep]
    matrix = detection_confusion_matrix(
        evaluation.det_box, evaluation.det_score, evaluation.det_category, evaluation.det_image, evaluation.gt_box,
        evaluation.gt_category, evaluation.gt_image, len(metrics.names), target_crowd=evaluation.gt_crowd,
        conf_threshold=CONFUSION_CONF, iou_threshold=CONFUSION_IOU)
    pngs = [
        pr_curve_png(metrics.recall_points, metrics.pr_curve[with_targets], names, metrics.ap50[with_targets]),
        f1_curve_png(metrics.confidences, metrics.f1_curve[with_targets], names),
        confusion_matrix_png(normalize_confusion_matrix(matrix.cpu()), metrics.names, CONFUSION_CONF, CONFUSION_IOU),
    ]
    return dict(zip(paths, pngs))


def detections_json(detections: list[dict]) -> bytes:
    """COCO results JSON of the detections."""
    return json.dumps(detections).encode()


def write_files(files: dict[str, bytes]) -> None:
    """Write each file atomically (its folder is created when missing)."""
    for path, data in files.items():
        atomic_write(path, lambda f, data=data: f.write(data))
