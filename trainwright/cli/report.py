"""What `trainwright train` shows and draws: progress bars, a per-epoch table, and the loss / mAP curves PNG."""

from __future__ import annotations

import csv
import io
import math
import os
import time

from tqdm.auto import tqdm

from trainwright.callbacks.base import PhaseContext
from trainwright.logging import RESULTS_CSV, atomic_write
from trainwright.training.policies import ProgressReporter

__all__ = ["TrainingReport", "plot_results", "CURVES_FILE"]

CURVES_FILE = "curves.png"
_METRICS = ("mAP@0.50", "mAP@0.50:0.95")


def _short(name: str) -> str:
    """'YoloXDetectionLoss/iou' -> 'iou'."""
    return name.rsplit("/", 1)[-1]


def _loss_parts(results: dict) -> dict[str, float]:
    """Loss components of a phase's results (no metrics, no diagnostics such as num_fg)."""
    return {_short(k): v for k, v in results.items() if "/" in k and _short(k) != "num_fg"}


class TrainingReport(ProgressReporter):
    """Progress bars for training and validation, then one table row per epoch (it replaces the Trainer's
    default progress bar).

    Columns: epoch, each training loss part, mAP@0.50, mAP@0.50:0.95 (validation), lr, epoch time. After each
    epoch the curves of results.csv are redrawn into <experiment dir>/curves.png.
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
        self._header_done = False
        self._seen = 0

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

    def on_train_loader_start(self, context: PhaseContext) -> None:
        self._plot(context)  # results.csv has the previous epoch's row now
        self._epoch_start, self._seen, self._valid = time.perf_counter(), 0, {}
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

    def on_epoch_end(self, context: PhaseContext) -> None:
        self._print_row()

    def on_training_end(self, context: PhaseContext) -> None:
        self._close_bar()
        self._print_row()  # an epoch interrupted after its training pass
        # results.csv gets the last epoch's row after its callbacks: draw once more at the very end.
        self._plot(context)

    # --- table -----------------------------------------------------------------------------------------------

    def _print_row(self) -> None:
        if not self._pending:
            return
        self._pending = False
        if not self.show:
            return
        parts, valid = _loss_parts(self._train), self._valid
        columns = ["epoch", *parts, *_METRICS, "lr", "time"]
        values = [f"{self._epoch + 1}", *(f"{v:.4f}" for v in parts.values()),
                  *(f"{valid[m]:.4f}" if m in valid else "-" for m in _METRICS),
                  f"{self._lr:.2e}", f"{time.perf_counter() - self._epoch_start:.0f}s"]
        widths = [max(len(c), 7) for c in columns]
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
    epochs = [int(e) + 1 for e in columns["epoch"]]
    figure = Figure(figsize=(11, 4.2), dpi=100)
    losses, maps = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    parts: list[str] = []  # one colour per loss part, solid for train, dashed for valid
    for name, values in columns.items():
        # results.csv: training loss parts as "Loss/part", validation ones as "valid/Loss/part", mAPs by name
        phase, loss_part = ("valid", name[len("valid/"):]) if name.startswith("valid/") else ("train", name)
        part = _short(loss_part)
        if "/" in loss_part and not name.startswith("train/") and part != "num_fg" and any(v > 0 for v in values):
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
