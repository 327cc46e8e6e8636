"""The end of `trainwright train`: which epoch was best and why it was kept, early stopping, divergence, the
per-class table of the best checkpoint on the validation images, and where the files are.

Epochs are 1-based, as in the table, results.csv, ckpt_epoch_<N>.pth and TensorBoard.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from pathlib import Path

from torch.utils.data import Subset

from trainwright.callbacks.early_stopping import EarlyStop
from trainwright.checkpoints import read_ckpt_state_dict
from trainwright.cli.evaluate import predict_coco_detections
from trainwright.cli.evaluation_outputs import per_class_table
from trainwright.cli.inference import load_checkpoint_model
from trainwright.cli.report import CURVES_FILE, TrainingReport
from trainwright.logging import RESULTS_CSV, TEXT_LOG
from trainwright.logging.optional import OptionalOutput
from trainwright.metrics.coco import coco_evaluation
from trainwright.metrics.per_class import per_class_metrics
from trainwright.nn.checkpoint_keys import ACC, EPOCH, LATEST_CHECKPOINT
from trainwright.training.policies import BestCheckpointKeeper

__all__ = ["print_training_summary", "best_epoch_line", "per_class_validation"]


def print_training_summary(trainer, results: dict, experiment_dir: Path, seconds: float) -> None:
    """Print the summary of a finished (or interrupted) `Trainer.train` run of a recipe."""
    state, callbacks = trainer.state, trainer.callbacks.callbacks
    report = _find(callbacks, TrainingReport)
    final = ", ".join(f"{k} {results[k]:.4f}" for k in ("mAP@0.50", "mAP@0.50:0.95") if k in results)
    stopped = report is not None and report.stopped_early and not trainer.interrupted
    print(f"done in {seconds / 60:.1f} min" + (" (interrupted)" if trainer.interrupted else "")
          + (" (stopped early)" if stopped else "") + (f"; last validation: {final}" if final else ""))
    best = experiment_dir / state.params.ckpt_best_name
    keeper = _find(callbacks, BestCheckpointKeeper)
    if best.is_file() and keeper is not None:
        print(best_epoch_line(best, experiment_dir / RESULTS_CSV, state.metric_to_watch, keeper.greater_is_better,
                              state.params.max_epochs, state.ema is not None))
    if stopped:
        print(_early_stop_line(_find(callbacks, EarlyStop), report.last_epoch, state.params.max_epochs))
    if report is not None and report.non_finite:
        epochs = ", ".join(f"{epoch} ({count})" for epoch, count in report.non_finite)
        print(f"not finite (inf or NaN) predictions in the validation of epoch(s) {epochs}: early in training, or "
              "a diverging model; if it persists, lower training_params.initial_lr or set training_params.clip_grad_norm")
    if best.is_file() and not trainer.interrupted and state.valid_loader is not None:
        with OptionalOutput("per-class table"):
            table, count = per_class_validation(best, state.valid_loader, state.params.max_valid_batches, trainer.device)
            print(f"per class, {best.name} on the {count} validation images:\n{table}")
    files = [("checkpoints", f"{best.name}, {LATEST_CHECKPOINT}"), ("per-epoch results", RESULTS_CSV),
             ("loss and mAP curves", CURVES_FILE), ("predictions drawn", "visualizations/"),
             ("TensorBoard", f"tensorboard --logdir {experiment_dir}"), ("resolved recipe", "recipe.yaml"),
             ("log", TEXT_LOG)]
    for what, where in files:
        print(f"  {what:<20} {where}")


def _find(callbacks: list, kind: type):
    return next((cb for cb in callbacks if isinstance(cb, kind)), None)


def best_epoch_line(best: Path, results_csv: Path, metric: str | None, greater_is_better: bool, max_epochs: int,
                    ema: bool) -> str:
    """'best epoch 3/6: mAP@0.50 0.4123, the highest of 6 validations (...); ckpt_best.pth holds its EMA weights'."""
    checkpoint = read_ckpt_state_dict(best)
    epoch, value = checkpoint.get(EPOCH), checkpoint.get(ACC)
    shown = f"{value:.4f}" if isinstance(value, (int, float)) else "n/a"
    validations = _validations(results_csv, metric)
    extreme, better = ("highest", "higher") if greater_is_better else ("lowest", "lower")
    return (f"best epoch {epoch}/{max_epochs}: {metric} {shown}, the {extreme} of {validations} validation(s), first "
            f"reached then (training_params.metric_to_watch, {better} is better); {best.name} holds its "
            f"{'EMA ' if ema else ''}weights")


def _validations(results_csv: Path, metric: str | None) -> int:
    """Rows of results.csv with a value of `metric` (the validated epochs)."""
    if metric is None or not results_csv.is_file():
        return 0
    with open(results_csv, newline="", encoding="utf-8") as f:
        return sum(1 for row in csv.DictReader(f) if row.get(metric) not in (None, ""))


def _early_stop_line(stop: EarlyStop | None, last_epoch: int | None, max_epochs: int) -> str:
    if stop is None:
        return f"stopped after epoch {last_epoch} of {max_epochs}: a callback asked to stop"
    if not math.isfinite(stop.best_score) or stop.wait_count < stop.patience:
        reason = f"{stop.monitor_key} was not finite"
    else:
        reason = (f"{stop.monitor_key} did not improve by more than {stop.min_delta:g} for {stop.wait_count} "
                  f"validation(s) (training_params.early_stopping_patience={stop.patience})")
    return f"stopped early after epoch {last_epoch} of {max_epochs}: {reason}"


def per_class_validation(checkpoint: Path, valid_loader, max_batches: int | None, device) -> tuple[str, int]:
    """(the per-class table of `trainwright evaluate`, number of images) of `checkpoint` on the images the run
    validated on: the loader's dataset, at most `max_batches` batches of it."""
    dataset, indices = valid_loader.dataset, None
    if isinstance(dataset, Subset):
        dataset, indices = dataset.dataset, list(dataset.indices)
    indices = list(range(len(dataset))) if indices is None else indices
    if max_batches is not None:
        indices = indices[: max_batches * valid_loader.batch_size]
    cm = load_checkpoint_model(os.fspath(checkpoint), device)
    with warnings.catch_warnings():  # "no detections" and the like: the table's zeros say it
        warnings.simplefilter("ignore")
        detections = predict_coco_detections(cm, dataset, valid_loader.batch_size, indices)
        ground_truth = _ground_truth_of(dataset.annotations_file, {dataset.records[i].image_id for i in indices})
        table = per_class_table(per_class_metrics(coco_evaluation(ground_truth, detections)))
    return table, len(indices)


def _ground_truth_of(annotations_file, image_ids: set[int]) -> dict:
    """The COCO annotations JSON restricted to `image_ids` (categories kept whole)."""
    with open(annotations_file, encoding="utf-8") as f:
        data = json.load(f)
    data["images"] = [im for im in data["images"] if im["id"] in image_ids]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in image_ids]
    return data
