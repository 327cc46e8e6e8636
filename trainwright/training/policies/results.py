"""ResultsWriter: results.csv, the text log and the sg_logger's scalars of a run (rank 0)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from trainwright.callbacks.base import Callback, PhaseContext
from trainwright.logging import RESULTS_CSV, TEXT_LOG, ResultsCSV, attach_text_log
from trainwright.logging.optional import OptionalOutput
from trainwright.training.checkpointing import plain
from trainwright.training.state import TrainState

__all__ = ["ResultsWriter", "epoch_summary", "results_row"]

logger = logging.getLogger("trainwright")


def results_row(lr: float, train_results: Mapping, valid_results: Mapping, loss_names) -> dict[str, object]:
    """One results.csv row: training loss parts and validation metrics under their own names (`mAP@0.50`).

    The rest is prefixed by its phase so no column is ambiguous: `valid/<loss part>`, `train/<metric>`.
    """
    row: dict[str, object] = {"lr": lr}
    row.update({k if k in loss_names else f"train/{k}": v for k, v in train_results.items()})
    row.update({f"valid/{k}" if k in loss_names else k: v for k, v in valid_results.items()})
    return row


def epoch_summary(state: TrainState) -> str:
    """'Epoch 3/10 | lr 0.01 | train <name> <value> | ... | valid <name> <value>', marked when a new best."""
    parts = [f"Epoch {state.epoch + 1}/{state.params.max_epochs}", f"lr {state.optimizer.param_groups[0]['lr']:.4g}"]
    parts += [f"train {k} {v:.4f}" for k, v in state.train_results.items()]
    parts += [f"valid {k} {v:.4f}" for k, v in state.valid_results.items()]
    return " | ".join(parts) + (f"  (best {state.metric_to_watch})" if state.new_best else "")


class ResultsWriter(Callback):
    """Writes what a run measured, in the experiment directory and the sg_logger.

    - results.csv: one row per epoch (`results_row`), `epoch` 1-based as shown on the console; a resumed run
      drops the rows it is about to recompute.
    - train_log.txt: everything the "trainwright" logger says while training (the parameters first).
    - the sg_logger: per-epoch scalars `lr`, `train/<name>`, `valid/<name>` at step epoch + 1, and
      `additional_configs` as text; optional outputs: a failed write is logged once (`OptionalOutput`).
    Placed last, so the text log is closed after every other callback has logged.
    """

    def __init__(self, state: TrainState, additional_configs: Mapping | None = None):
        self.state = state
        self.additional_configs = additional_configs
        self._text_log: logging.Handler | None = None
        self._csv: ResultsCSV | None = None
        self._scalars = OptionalOutput("TensorBoard scalars")
        self._text = OptionalOutput("TensorBoard text")

    def on_training_start(self, context: PhaseContext) -> None:
        state = self.state
        self._text_log = attach_text_log(logger, os.path.join(state.experiment_dir, TEXT_LOG))
        logger.info("Experiment %s in %s, training params: %s", state.experiment_name, state.experiment_dir,
                    plain(state.params.to_dict(include_schema=False)))  # fmt: skip
        if self.additional_configs:
            text = repr(plain(dict(self.additional_configs)))
            logger.info("additional_configs: %s", text)
            with self._text:
                state.sg_logger.add_text("additional_configs", text)
        resumed_at = state.epochs_done + 1 if state.resumed_from is not None else None  # the first row recomputed
        self._csv = ResultsCSV(os.path.join(state.experiment_dir, RESULTS_CSV), resume_from_epoch=resumed_at)

    def on_epoch_end(self, context: PhaseContext) -> None:
        state = self.state
        lr = state.optimizer.param_groups[0]["lr"]
        scalars = {"lr": lr, **{f"train/{k}": v for k, v in state.train_results.items()},
                   **{f"valid/{k}": v for k, v in state.valid_results.items()}}  # fmt: skip
        with self._scalars:
            state.sg_logger.add_scalars(scalars, global_step=state.epoch + 1)
        self._csv.add_row(state.epoch + 1, results_row(lr, state.train_results, state.valid_results, state.loss_names))
        logger.info(epoch_summary(state))

    def on_training_end(self, context: PhaseContext) -> None:
        if self._text_log is not None:
            logger.removeHandler(self._text_log)
            self._text_log.close()
            self._text_log = None
