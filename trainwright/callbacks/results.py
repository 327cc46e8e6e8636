"""Callback that appends a run's final validation metrics, labelled with its dataset, to a shared CSV file."""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Mapping

from trainwright.callbacks.base import Callback, PhaseContext
from trainwright.distributed import is_main_process

logger = logging.getLogger(__name__)

DEFAULT_FILE_NAME = "roboflow_results.csv"


class RoboflowResultCallback(Callback):
    """At the end of training, append one row ``dataset, <metric>, ...`` with the final validation metrics.

    dataset_name: the dataset the model was trained on (first column of the row).
    output_path: the CSV file; None means ``<context.checkpoints_dir_path>/roboflow_results.csv``. The default is
        not ``results.csv`` because the Trainer rewrites that file with its per-epoch table.
    The file collects one row per run: it is never rewritten, only appended to, and the header is written only
    when the file is created. A row whose metrics differ from an existing header is aligned to it (missing values
    left empty, metrics the header lacks dropped with a warning). The metrics are those of the last validation
    pass this callback saw (on_validation_loader_end); without one, nothing is written. Main process only.
    """

    def __init__(self, dataset_name: str, output_path: str | os.PathLike | None = None):
        if not isinstance(dataset_name, str) or not dataset_name.strip():
            raise ValueError(f"dataset_name must be a non-empty string, got {dataset_name!r}")
        self.dataset_name = dataset_name
        self.output_path = os.fspath(output_path) if output_path is not None else None
        self.last_valid_metrics: dict[str, object] | None = None

    def on_validation_loader_end(self, context: PhaseContext) -> None:
        self.last_valid_metrics = dict(context.metrics_dict or {})

    def on_training_end(self, context: PhaseContext) -> None:
        if not is_main_process():
            return
        if not self.last_valid_metrics:
            logger.warning("RoboflowResultCallback: no validation metrics were computed, no row written")
            return
        path = self._resolve_path(context)
        row = {"dataset": self.dataset_name, **{k: _plain(v) for k, v in self.last_valid_metrics.items()}}
        append_csv_row(path, row)

    def _resolve_path(self, context: PhaseContext) -> str:
        if self.output_path is not None:
            return self.output_path
        if not context.checkpoints_dir_path:
            raise ValueError("RoboflowResultCallback needs output_path when context.checkpoints_dir_path is not set")
        return os.path.join(context.checkpoints_dir_path, DEFAULT_FILE_NAME)


def append_csv_row(path: str | os.PathLike, row: Mapping[str, object]) -> None:
    """Append `row` to the CSV file `path`, writing the header (the row's keys) first if the file is new or empty."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    columns = _existing_header(path)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns or list(row), restval="", extrasaction="ignore",
                            lineterminator="\n")  # fmt: skip
    if columns is None:
        writer.writeheader()
    else:
        dropped = [k for k in row if k not in columns]
        if dropped:
            logger.warning("%s has no column for %s; those values are not written", path, dropped)
    writer.writerow(row)
    # One write of the whole text in append mode: earlier rows are never touched.
    with open(path, "a", newline="") as f:
        f.write(buffer.getvalue())


def _existing_header(path: str) -> list[str] | None:
    """The column names of an existing non-empty CSV file, or None."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    with open(path, newline="") as f:
        return next(csv.reader(f), None)


def _plain(value: object) -> object:
    """A metric value as a CSV cell: tensors and numpy scalars become floats."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return float(value.item())
    return value
