import csv

import pytest
import torch

import trainwright.callbacks.results as results_module
from trainwright.callbacks.base import PhaseContext
from trainwright.callbacks.results import RoboflowResultCallback


def _run(callback, ckpt_dir, metrics_per_epoch):
    """Feed `callback` the events of a run that validated once per epoch with the given metrics."""
    context = PhaseContext(checkpoints_dir_path=str(ckpt_dir))
    callback.on_training_start(context)
    for metrics in metrics_per_epoch:
        context.update_context(metrics_dict={"loss": 9.0})  # the training pass of the epoch
        callback.on_train_loader_end(context)
        context.update_context(metrics_dict=metrics)
        callback.on_validation_loader_end(context)
    context.update_context(metrics_dict={"loss": 9.0})
    callback.on_training_end(context)


def _read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_rows_are_appended_across_runs_with_one_header(tmp_path):
    (tmp_path / "results.csv").write_text("epoch,loss\n0,1.0\n")
    _run(RoboflowResultCallback("cars"), tmp_path, [{"mAP@0.50": 0.1}, {"mAP@0.50": torch.tensor(0.25)}])
    _run(RoboflowResultCallback("boats"), tmp_path, [{"mAP@0.50": 0.5}])
    assert _read(tmp_path / "roboflow_results.csv") == [["dataset", "mAP@0.50"], ["cars", "0.25"], ["boats", "0.5"]]
    assert (tmp_path / "results.csv").read_text() == "epoch,loss\n0,1.0\n"  # the trainer's table is untouched


def test_explicit_output_path_and_header_alignment(tmp_path):
    out = tmp_path / "sub" / "all.csv"
    _run(RoboflowResultCallback("a", output_path=out), tmp_path, [{"mAP": 0.5, "F1": 0.4}])
    _run(RoboflowResultCallback("b", output_path=str(out)), tmp_path, [{"F1": 0.7, "extra": 1.0}])
    assert _read(out) == [["dataset", "mAP", "F1"], ["a", "0.5", "0.4"], ["b", "", "0.7"]]


def test_nothing_written_without_validation_or_off_the_main_process(tmp_path, monkeypatch):
    _run(RoboflowResultCallback("x"), tmp_path, [])
    assert not (tmp_path / "roboflow_results.csv").exists()
    monkeypatch.setattr(results_module, "is_main_process", lambda: False)
    _run(RoboflowResultCallback("x"), tmp_path, [{"mAP": 0.5}])
    assert not (tmp_path / "roboflow_results.csv").exists()


def test_bad_arguments():
    with pytest.raises(ValueError, match="dataset_name"):
        RoboflowResultCallback("")
    with pytest.raises(ValueError, match="dataset_name"):
        RoboflowResultCallback("  ")
    callback = RoboflowResultCallback("x")
    callback.on_validation_loader_end(PhaseContext(metrics_dict={"mAP": 1.0}))
    with pytest.raises(ValueError, match="output_path"):
        callback.on_training_end(PhaseContext())
