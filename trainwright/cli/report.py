"""What `trainwright train` shows and draws: progress bars, a per-epoch table, warnings, and the loss / mAP
curves PNG. Epochs are shown 1-based, as in results.csv, the checkpoint file names and TensorBoard."""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import sys
import time

from tqdm.auto import tqdm

from trainwright.callbacks.base import PhaseContext
from trainwright.logging import RESULTS_CSV, atomic_write
from trainwright.logging.optional import OptionalOutput
from trainwright.training.policies import ProgressReporter

__all__ = ["TrainingReport", "plot_results", "CURVES_FILE", "NON_FINITE_KEY"]

CURVES_FILE = "curves.png"
NON_FINITE_KEY = "NonFinitePredictions"  # the validation result counting inf / NaN predictions
_METRICS = ("mAP@0.50", "mAP@0.50:0.95")
# Validation columns of the table: result name -> column title.
_VALID_COLUMNS = {"Precision@0.50": "P@0.50", "Recall@0.50": "R@0.50", "mAP@0.50": "mAP@0.50",
                  "mAP@0.50:0.95": "mAP@0.50:0.95"}
logger = logging.getLogger("trainwright")


def _short(name: str) -> str:
    """'YoloXDetectionLoss/iou' -> 'iou'."""
    return name.rsplit("/", 1)[-1]


def _loss_parts(results: dict) -> dict[str, float]:
    """Loss components of a phase's results (no metrics, no diagnostics such as num_fg)."""
    return {_short(k): v for k, v in results.items() if "/" in k and _short(k) != "num_fg"}


class _ConsoleWarnings(logging.Handler):
    """The run's warnings on stderr, one line each, written around the progress bars (no tracebacks)."""

    def __init__(self):
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(f"{record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


class TrainingReport(ProgressReporter):
    """Progress bars for training and validation, then one table row per epoch (it replaces the Trainer's
    default progress bar), and the run's warnings on stderr while it trains.

    Columns: epoch, each training loss part, precision and recall at IoU 0.5, mAP@0.50, mAP@0.50:0.95
    (validation), lr, epoch time, and `*` when the epoch is a new best. Predictions that are not finite are
    reported under the row (and logged). After each epoch the curves of results.csv are redrawn into
    <experiment dir>/curves.png (an optional output: a failure is logged once).

    What the summary needs afterwards: `best_epoch`, `non_finite` ([(epoch, count)]), `stopped_early`,
    `last_epoch` (1-based).
    """

    def __init__(self, show: bool = True, plot: bool = True):
        self.show = show
        self.plot = plot
        self._bar = None
        self._epoch_start = 0.0
        self._train: dict[str, float] = {}
        self._valid: dict[str, float] = {}
        self._epoch, self._lr = 0, math.nan
        self._pending = False  # an epoch trained and not reported yet
        self._new_best = False
        self._header_done = False
        self._seen = 0
        self._console: logging.Handler | None = None
        self._curves = OptionalOutput(f"loss and mAP curves ({CURVES_FILE})")
        self.best_epoch: int | None = None
        self.non_finite: list[tuple[int, int]] = []
        self.stopped_early = False
        self.last_epoch: int | None = None

    # --- progress ---------------------------------------------------------------------------------------------

    def _open_bar(self, total: int, desc: str) -> None:
        if self.show:
            self._bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, unit="batch")

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    @staticmethod
    def _batches(loader, limit) -> int:
        return len(loader) if limit is None else min(len(loader), int(limit))

    def on_training_start(self, context: PhaseContext) -> None:
        if self.show and self._console is None:
            self._console = _ConsoleWarnings()
            logger.addHandler(self._console)

    def on_train_loader_start(self, context: PhaseContext) -> None:
        self._plot(context)  # results.csv has the previous epoch's row now
        self._epoch_start, self._seen, self._valid, self._new_best = time.perf_counter(), 0, {}, False
        params = context.training_params
        total = self._batches(context.train_loader, params.max_train_batches if params is not None else None)
        self._open_bar(total, f"epoch {context.epoch + 1}/{params.max_epochs if params is not None else '?'} train")

    def on_train_batch_end(self, context: PhaseContext) -> None:
        if self._bar is None:
            return
        self._seen += len(context.inputs) if context.inputs is not None else 0
        items = context.loss_log_items
        rate = self._seen / max(time.perf_counter() - self._epoch_start, 1e-9)
        if items is not None and len(items):
            self._bar.set_postfix(loss=f"{float(items[-1]):.3f}", img_s=f"{rate:.1f}", refresh=False)
        self._bar.update(1)

    def on_train_loader_end(self, context: PhaseContext) -> None:
        self._close_bar()
        self._train = dict(context.metrics_dict or {})
        self._epoch = context.epoch
        self._lr = context.optimizer.param_groups[0]["lr"] if context.optimizer is not None else math.nan
        self._pending = True

    def on_validation_loader_start(self, context: PhaseContext) -> None:
        params = context.training_params
        total = self._batches(context.valid_loader, params.max_valid_batches if params is not None else None)
        self._open_bar(total, f"epoch {context.epoch + 1} validation")

    def on_validation_batch_end(self, context: PhaseContext) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def on_validation_loader_end(self, context: PhaseContext) -> None:
        self._close_bar()
        self._valid = dict(context.metrics_dict or {})

    def on_validation_end_best_epoch(self, context: PhaseContext) -> None:
        self._new_best, self.best_epoch = True, context.epoch + 1

    def on_epoch_end(self, context: PhaseContext) -> None:
        self.last_epoch = context.epoch + 1
        self._print_row()
        self._report_non_finite()

    def on_training_end(self, context: PhaseContext) -> None:
        self._close_bar()
        self._print_row()  # an epoch interrupted after its training pass
        self.stopped_early = bool(context.stop_training)
        # results.csv gets the last epoch's row after its callbacks: draw once more at the very end.
        self._plot(context)
        if self._console is not None:
            logger.removeHandler(self._console)
            self._console = None

    def _report_non_finite(self) -> None:
        count = int(self._valid.get(NON_FINITE_KEY, 0) or 0)
        if count > 0:
            self.non_finite.append((self._epoch + 1, count))
            logger.warning("epoch %d: %d predicted boxes or scores are not finite (inf or NaN; NMS drops them): "
                           "early in training, or a diverging model; if it persists, lower "
                           "training_params.initial_lr or set training_params.clip_grad_norm", self._epoch + 1, count)

    # --- table -----------------------------------------------------------------------------------------------

    def _print_row(self) -> None:
        if not self._pending:
            return
        self._pending = False
        if not self.show:
            return
        parts, valid = _loss_parts(self._train), self._valid
        columns = ["epoch", *parts, *_VALID_COLUMNS.values(), "lr", "time", "best"]
        values = [f"{self._epoch + 1}", *(f"{v:.4f}" for v in parts.values()),
                  *(f"{valid[m]:.4f}" if m in valid else "-" for m in _VALID_COLUMNS),
                  f"{self._lr:.2e}", f"{time.perf_counter() - self._epoch_start:.0f}s", "*" if self._new_best else ""]
        widths = [max(len(c), 7) for c in columns[:-1]] + [4]
        if not self._header_done:
            tqdm.write("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
            self._header_done = True
        tqdm.write("  ".join(v.rjust(w) for v, w in zip(values, widths)))

    def _plot(self, context: PhaseContext) -> None:
        folder = context.checkpoints_dir_path
        if not self.plot or not folder:
            return
        csv_path = os.path.join(folder, RESULTS_CSV)
        if os.path.isfile(csv_path):
            with self._curves:
                plot_results(csv_path, os.path.join(folder, CURVES_FILE))


def _read_columns(csv_path: str) -> dict[str, list[float]]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, list[float]] = {}
    for name in rows[0].keys() if rows else []:
        columns[name] = [float(r[name]) if r.get(name) not in (None, "") else math.nan for r in rows]
    return columns


def plot_results(csv_path: str | os.PathLike, png_path: str | os.PathLike) -> None:
    """Draw the loss parts (train and valid) and the validation mAPs of results.csv per epoch into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    columns = _read_columns(os.fspath(csv_path))
    if not columns:
        return
    epochs = [int(e) for e in columns["epoch"]]  # 1-based in results.csv
    figure = Figure(figsize=(11, 4.2), dpi=100)
    losses, maps = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    parts: list[str] = []  # one colour per loss part, solid for train, dashed for valid
    for name, values in columns.items():
        # results.csv: training loss parts as "Loss/part", validation ones as "valid/Loss/part", mAPs by name
        phase, loss_part = ("valid", name[len("valid/"):]) if name.startswith("valid/") else ("train", name)
        part = _short(loss_part)
        finite = [v for v in values if math.isfinite(v)]
        if "/" in loss_part and not name.startswith("train/") and part != "num_fg" and any(v > 0 for v in finite):
            parts += [part] if part not in parts else []
            losses.plot(epochs, values, marker=".", linestyle="-" if phase == "train" else "--",
                        color=f"C{parts.index(part)}", label=f"{phase} {part}")
        elif name in _METRICS:
            maps.plot(epochs, values, marker="o", label=name)
    losses.set(title="loss (train solid, valid dashed)", xlabel="epoch", yscale="log")
    maps.set(title="validation mAP", xlabel="epoch", ylim=(0, 1))
    for axes in (losses, maps):
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write(png_path, lambda f: f.write(buffer.getvalue()))
