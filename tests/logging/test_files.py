"""Experiment-directory writers: atomic saves, results.csv, the TensorBoard logger, the registry."""

import csv

import numpy as np
import pytest
import torch

from trainwright.logging import NullSGLogger, ResultsCSV, atomic_torch_save, atomic_write, build_sg_logger


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, lambda f: f.write(b"old"))

    def fail(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temporary file left behind


def test_atomic_write_gives_the_permissions_a_plain_open_would(tmp_path):
    atomic_write(tmp_path / "atomic.txt", lambda f: f.write(b"x"))
    (tmp_path / "plain.txt").write_bytes(b"x")
    assert (tmp_path / "atomic.txt").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode


def test_atomic_torch_save_round_trips(tmp_path):
    atomic_torch_save({"a": torch.arange(3)}, tmp_path / "sub" / "c.pth")
    assert torch.equal(torch.load(tmp_path / "sub" / "c.pth", weights_only=True)["a"], torch.arange(3))


def test_results_csv_grows_columns_and_trims_on_resume(tmp_path):
    path = tmp_path / "results.csv"
    results = ResultsCSV(path)
    results.add_row(0, {"lr": 0.1, "valid/loss": 1.0})
    results.add_row(1, {"lr": 0.05, "valid/loss": 0.5, "valid/mAP": 0.2})
    results.add_row(2, {"lr": 0.01, "valid/loss": 0.4, "valid/mAP": 0.3})
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "lr", "valid/loss", "valid/mAP"] and rows[0]["valid/mAP"] == ""
    resumed = ResultsCSV(path, resume_from_epoch=2)
    resumed.add_row(2, {"lr": 0.02, "valid/loss": 0.45, "valid/mAP": 0.25})
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [(r["epoch"], r["lr"]) for r in rows] == [("0", "0.1"), ("1", "0.05"), ("2", "0.02")]


def test_tensorboard_logger_writes_events_and_checkpoints(tmp_path):
    logger = build_sg_logger("base_sg_logger", str(tmp_path), launch_tensorboard=False)  # reference-only keys ignored
    logger.add_scalar("loss", 1.0, 0)
    logger.add_scalars({"a": 1.0, "b": torch.tensor(2.0)}, 1)
    logger.add_image("img", np.zeros((3, 4, 4), dtype=np.uint8), global_step=0)
    logger.add_images("imgs", torch.zeros(2, 4, 4, 3), data_format="NHWC", global_step=0)
    logger.add_text("note", "hello", 0)
    logger.add_checkpoint("ckpt.pth", {"x": torch.ones(1)})
    logger.close()
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())
    assert torch.load(tmp_path / "ckpt.pth", weights_only=True)["x"].item() == 1.0
    assert logger.local_dir() == str(tmp_path)


def test_registry_accepts_instances_and_rejects_unknown_names(tmp_path):
    null = NullSGLogger()
    assert build_sg_logger(null, str(tmp_path)) is null
    with pytest.raises(ValueError, match="sg_logger='wandb'"):
        build_sg_logger("wandb", str(tmp_path))
