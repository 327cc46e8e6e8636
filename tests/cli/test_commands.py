"""End to end: `trainwright train` on tiny data, then `evaluate` and `predict` on what it wrote; user errors."""

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest
import torch
from cli_helpers import tiny_run_overrides, tiny_shapes_overrides, write_coco_split

from trainwright.cli import main
from trainwright.cli.inference import load_checkpoint_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one thread is as fast, and immune to OpenMP spinning on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    """One tiny training of the default recipe: (experiment dir, stdout, shapes root, stderr)."""
    root = tmp_path_factory.mktemp("shapes_run")
    code, out, err = run_cli(["train", *tiny_shapes_overrides(root, "tiny")])
    assert code == 0
    return Path(out.strip().splitlines()[-1]), out, root, err


def test_train_writes_the_experiment_directory(shapes_run):
    experiment, out, root, err = shapes_run
    assert experiment == root / "checkpoints" / "tiny"
    for name in ("ckpt_best.pth", "ckpt_latest.pth", "results.csv", "curves.png", "recipe.yaml", "train_log.txt"):
        assert (experiment / name).is_file(), name
    assert list(experiment.glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (experiment / "visualizations").iterdir()) == ["epoch_001_0.jpg", "epoch_001_1.jpg"]
    assert (experiment / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(experiment / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["epoch"] == "1"  # 1-based, as in the table
    for column in ("lr", "Precision@0.50", "Recall@0.50", "mAP@0.50", "mAP@0.50:0.95", "NonFinitePredictions",
                   "YoloXDetectionLoss/iou", "valid/YoloXDetectionLoss/iou"):
        assert column in rows[0], column
    # the per-epoch table: a header with loss parts, precision, recall, both mAPs, lr and time, and one row
    header = next(line for line in out.splitlines() if line.split()[:1] == ["epoch"])
    assert header.split() == ["epoch", "iou", "obj", "cls", "l1", "Loss", "P@0.50", "R@0.50", "mAP@0.50",
                              "mAP@0.50:0.95", "lr", "time", "best"]
    row = out.splitlines()[out.splitlines().index(header) + 1].split()
    assert row[0] == "1" and float(row[8]) == pytest.approx(float(rows[0]["mAP@0.50"]), abs=1e-4)
    assert float(row[6]) == pytest.approx(float(rows[0]["Precision@0.50"]), abs=1e-4) and row[-1] == "*"
    # the summary: the best epoch and why, the per-class table of ckpt_best on the validation images
    assert "best epoch 1/1: mAP@0.50 " in out and "the highest of 1 validation(s)" in out
    assert "per class, ckpt_best.pth on the 6 validation images:" in out
    # the table replaced the Trainer's own progress bar and epoch line
    assert "epoch 1/1 train" in err and "Train epoch" not in err and "Epoch 1/1 |" not in out


def test_evaluate_defaults_to_the_validation_split(shapes_run):
    experiment, _, root, _ = shapes_run
    code, out, _ = run_cli(["evaluate", str(experiment / "ckpt_best.pth"), "--json"])
    assert code == 0
    summary = json.loads(out)
    assert summary["num_images"] == 6 and "shapes" in summary["annotations"]
    assert set(summary) >= {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100"}
    assert all(-1.0 <= summary[k] <= 1.0 for k in ("AP", "AP50", "AR100"))
    code, text, _ = run_cli(["evaluate", str(experiment / "ckpt_latest.pth")])
    assert code == 0 and "Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ]" in text


def test_predict_writes_drawn_images_and_prints_detections(shapes_run, tmp_path):
    experiment, _, root, _ = shapes_run
    images = sorted((root / "shapes").glob("*/images/val/*.png"))[:2]
    output = tmp_path / "drawn"
    code, out, _ = run_cli(["predict", str(experiment / "ckpt_best.pth"), *map(str, images), "--output", str(output),
                            "--conf", "0.0"])
    assert code == 0
    assert sorted(p.name for p in output.iterdir()) == [images[0].name, images[1].name]  # png stays png
    lines = out.splitlines()
    assert lines[0].startswith(f"{images[0]}: ") and "detection(s)" in lines[0]
    detections = [line.split() for line in lines if line.startswith("  ")]
    assert detections and all(d[0] in {"circle", "square", "triangle", "cross", "star"} for d in detections)
    assert all(0.0 <= float(d[1]) <= 1.0 and 0 <= float(d[3]) <= 64 and 0 <= float(d[9]) <= 64 for d in detections)
    # without --conf: the recipe's visualization.conf, stored in the checkpoint
    cm = load_checkpoint_model(str(experiment / "ckpt_best.pth"))
    assert cm.visualization_conf == 0.3 and cm.postprocess == {"conf": 0.01, "iou": 0.6, "max_predictions": 100}
    code, out, _ = run_cli(["predict", str(experiment / "ckpt_best.pth"), str(images[0]), "--output", str(output)])
    assert code == 0 and all(float(line.split()[1]) >= 0.3 for line in out.splitlines() if line.startswith("  "))


def test_real_format_coco_data_trains_and_evaluates(tmp_path):
    """Non-contiguous category ids, crowd boxes and an image without annotations, through the coco recipe."""
    train_images, train_json = write_coco_split(tmp_path / "data", "train", 8, seed=1)
    val_images, val_json = write_coco_split(tmp_path / "data", "val", 3, seed=2)
    paths = [f"dataset.train_images_dir={train_images}", f"dataset.train_annotations={train_json}",
             f"dataset.val_images_dir={val_images}", f"dataset.val_annotations={val_json}"]
    code, out, _ = run_cli(["train", "coco_yolox", *paths, *tiny_run_overrides(tmp_path, "coco")])
    assert code == 0
    experiment = Path(out.strip().splitlines()[-1])
    assert "9 training images, 4 validation images, classes ['block', 'disc']" in out
    code, out, _ = run_cli(["evaluate", str(experiment / "ckpt_best.pth"), "--json", "--images", str(val_images),
                            "--annotations", str(val_json)])
    assert code == 0 and json.loads(out)["num_images"] == 4


@pytest.mark.parametrize(("args", "named"), [
    (["train", "training_params.max_epoch=3"], "training_params.max_epochs"),
    (["train", "no_such_recipe"], "no_such_recipe"),
    (["train", "a", "b"], "at most one recipe"),
    (["train", "coco_yolox"], "dataset.train_images_dir is required"),
    (["evaluate", "missing.pth"], "missing.pth"),
    (["predict", "missing.pth", "nope.png"], "nope.png"),
])
def test_user_errors_exit_non_zero_without_traceback(args, named, monkeypatch):
    monkeypatch.delenv("TRAINWRIGHT_DEBUG", raising=False)
    code, _, err = run_cli(args)
    assert code == 2 and named in err and "Traceback" not in err


def test_bad_evaluate_and_predict_arguments_are_named(shapes_run, tmp_path):
    checkpoint = str(shapes_run[0] / "ckpt_best.pth")
    code, _, err = run_cli(["evaluate", checkpoint, "--images", str(tmp_path)])
    assert code == 2 and "--annotations" in err
    code, _, err = run_cli(["evaluate", checkpoint, "--images", str(tmp_path / "x"), "--annotations", "a.json"])
    assert code == 2 and str(tmp_path / "x") in err
    image = next((shapes_run[2] / "shapes").glob("*/images/val/*.png"))
    code, _, err = run_cli(["predict", checkpoint, str(image), "--conf", "1.5"])
    assert code == 2 and "--conf must be in [0, 1], got 1.5" in err
    not_a_checkpoint = tmp_path / "x.pth"
    not_a_checkpoint.write_bytes(b"not a checkpoint")
    code, _, err = run_cli(["evaluate", str(not_a_checkpoint)])
    assert code == 2 and str(not_a_checkpoint) in err
