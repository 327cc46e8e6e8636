"""The per-epoch table and the curves PNG of `trainwright train`."""

import cv2
import numpy as np
import torch
from omegaconf import OmegaConf

from trainwright.callbacks.base import PhaseContext
from trainwright.cli.report import TrainingReport, plot_results


def _context(epoch, metrics=None, lr=0.01):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    params = OmegaConf.create({"max_epochs": 3, "max_train_batches": None, "max_valid_batches": None})
    return PhaseContext(epoch=epoch, metrics_dict=metrics or {}, optimizer=optimizer, training_params=params,
                        train_loader=[0, 1], valid_loader=[0], checkpoints_dir_path=None)


def test_table_has_a_row_per_epoch_with_dashes_when_not_validated(capsys):
    report = TrainingReport(show=True, plot=False)
    train = {"Loss/iou": 2.5, "Loss/obj": 1.25, "Loss/num_fg": 3.0, "Loss/loss": 3.75}
    report.on_train_loader_start(_context(0))
    report.on_train_loader_end(_context(0, train, lr=0.02))
    report.on_validation_loader_start(_context(0))
    report.on_validation_loader_end(_context(0, {"mAP@0.50": 0.5, "mAP@0.50:0.95": 0.25, "Loss/iou": 9.0,
                                                 "Precision@0.50": 0.75, "Recall@0.50": 0.625}))
    report.on_validation_end_best_epoch(_context(0))
    report.on_epoch_end(_context(0))
    report.on_train_loader_start(_context(1))
    report.on_train_loader_end(_context(1, train, lr=0.005))
    report.on_epoch_end(_context(1))  # epoch 2 had no validation
    report.on_training_end(_context(1))
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert lines[0] == ["epoch", "iou", "obj", "loss", "P@0.50", "R@0.50", "mAP@0.50", "mAP@0.50:0.95", "lr", "time",
                        "best"]
    assert lines[1][:9] == ["1", "2.5000", "1.2500", "3.7500", "0.7500", "0.6250", "0.5000", "0.2500", "2.00e-02"]
    assert lines[1][-1] == "*"  # a new best
    assert lines[2][:9] == ["2", "2.5000", "1.2500", "3.7500", "-", "-", "-", "-", "5.00e-03"]
    assert len(lines[2]) == 10 and len(lines) == 3
    assert report.best_epoch == 1 and report.last_epoch == 2 and report.non_finite == []


def test_non_finite_predictions_are_reported_and_logged(capsys):
    report = TrainingReport(show=True, plot=False)
    report.on_training_start(_context(0))
    report.on_train_loader_start(_context(2))
    report.on_train_loader_end(_context(2, {"Loss/iou": 1.0}))
    report.on_validation_loader_end(_context(2, {"mAP@0.50": 0.0, "NonFinitePredictions": 12.0}))
    report.on_epoch_end(_context(2))
    report.on_training_end(_context(2))
    err = capsys.readouterr().err
    assert "warning: epoch 3: 12 predicted boxes or scores are not finite (inf or NaN; NMS drops them)" in err
    assert report.non_finite == [(3, 12)]


def test_a_failing_curves_plot_is_logged_once_and_the_run_goes_on(tmp_path, capsys):
    (tmp_path / "results.csv").write_text("epoch,lr\n1,not-a-number\n")
    report = TrainingReport(show=True, plot=True)
    context = _context(0)
    context.checkpoints_dir_path = str(tmp_path)
    report.on_training_start(context)
    for _ in range(3):
        report.on_train_loader_start(context)
    report.on_training_end(context)
    err = capsys.readouterr().err
    assert err.count("could not write the loss and mAP curves (curves.png)") == 1
    assert not (tmp_path / "curves.png").exists()


def test_silent_report_prints_nothing(capsys):
    report = TrainingReport(show=False, plot=False)
    report.on_train_loader_start(_context(0))
    report.on_train_loader_end(_context(0, {"Loss/iou": 1.0}))
    report.on_epoch_end(_context(0))
    report.on_training_end(_context(0))
    assert capsys.readouterr().out == ""


def test_plot_results_writes_a_png(tmp_path):
    csv_path = tmp_path / "results.csv"
    csv_path.write_text("epoch,lr,L/iou,L/l1,valid/L/iou,mAP@0.50,mAP@0.50:0.95\n"
                        "1,0.1,2.0,0.0,2.5,0.1,0.05\n2,0.05,1.0,0.0,1.5,,\n3,0.01,0.5,0.3,0.9,0.6,0.3\n")
    plot_results(csv_path, tmp_path / "curves.png")
    image = cv2.imread(str(tmp_path / "curves.png"))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 400
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10  # something was drawn
