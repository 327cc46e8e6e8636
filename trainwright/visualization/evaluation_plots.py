"""Evaluation plots (matplotlib, Agg backend): precision-recall curve, F1-confidence curve, confusion matrix.

Each function draws one figure from plain tensors and returns it encoded as PNG, so that a caller can make
every output before writing any. The curves are meant for the classes that have targets (the caller
selects them); the confusion matrix takes every class.
"""

from __future__ import annotations

import io

import torch
from torch import Tensor

__all__ = ["pr_curve_png", "f1_curve_png", "confusion_matrix_png"]

_MAX_LABELLED_CLASSES = 20  # beyond this many classes, their curves are thin grey lines without legend


def _figure(size: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=100, tight_layout=True)


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _class_lines(axes, x: Tensor, curves: Tensor, labels: list[str]) -> None:
    """One line per class: labelled when there are few classes, thin grey otherwise."""
    few = curves.shape[0] <= _MAX_LABELLED_CLASSES
    for curve, label in zip(curves, labels):
        if few:
            axes.plot(x.tolist(), curve.tolist(), linewidth=1, label=label)
        else:
            axes.plot(x.tolist(), curve.tolist(), linewidth=1, color="grey", alpha=0.5)


def _finish(axes, xlabel: str, ylabel: str, title: str) -> None:
    axes.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1), ylim=(0, 1.01))
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=8)


def pr_curve_png(recall: Tensor, precision: Tensor, names: list[str], ap50: Tensor) -> bytes:
    """Precision [K, R] over recall [R] of each class (legend: its AP50) and their mean (legend: mAP@0.5)."""
    figure = _figure((9, 6))
    axes = figure.add_subplot(1, 1, 1)
    _class_lines(axes, recall, precision, [f"{n} {float(a):.3f}" for n, a in zip(names, ap50)])
    if precision.shape[0]:
        axes.plot(recall.tolist(), precision.double().mean(0).tolist(), linewidth=3, color="blue",
                  label=f"all classes {float(ap50.double().mean()):.3f} mAP@0.5")
    _finish(axes, "Recall", "Precision", "Precision-Recall curve (IoU 0.5)")
    return _png(figure)


def f1_curve_png(confidences: Tensor, f1: Tensor, names: list[str]) -> bytes:
    """F1 [K, N] over the confidence threshold [N] of each class and their mean, its best threshold marked."""
    figure = _figure((9, 6))
    axes = figure.add_subplot(1, 1, 1)
    _class_lines(axes, confidences, f1, names)
    if f1.shape[0]:
        mean = f1.double().mean(0)
        best = int(torch.argmax(mean))
        best_conf, best_f1 = float(confidences[best]), float(mean[best])
        axes.plot(confidences.tolist(), mean.tolist(), linewidth=3, color="blue",
                  label=f"all classes {best_f1:.2f} at {best_conf:.3f}")
        axes.axvline(best_conf, color="blue", linestyle="--", linewidth=1)
        axes.plot([best_conf], [best_f1], marker="o", color="red", markersize=7)
    _finish(axes, "Confidence", "F1", "F1-Confidence curve (IoU 0.5)")
    return _png(figure)


def confusion_matrix_png(normalized: Tensor, names: list[str], conf_threshold: float, iou_threshold: float) -> bytes:
    """A column-normalised confusion matrix [K + 1, K + 1] (rows: predicted, columns: true; last: background)."""
    labels = [*names, "background"]
    size = len(labels)
    side = min(max(6.0, 0.45 * size + 3), 30.0)
    figure = _figure((side * 1.15, side))
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(normalized.double().numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    if size <= 30:
        for row, col in torch.nonzero(normalized >= 0.005).tolist():
            value = float(normalized[row, col])
            axes.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=8,
                      color="white" if value > 0.5 else "black")
    ticks = list(range(size))
    font = 8 if size <= 30 else 5
    axes.set_xticks(ticks, labels, rotation=90, fontsize=font)
    axes.set_yticks(ticks, labels, fontsize=font)
    axes.set(xlabel="True", ylabel="Predicted",
             title=f"Confusion matrix, normalised per true class (conf >= {conf_threshold:g}, IoU >= {iou_threshold:g})")
    return _png(figure)
