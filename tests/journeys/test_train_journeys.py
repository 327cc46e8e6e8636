"""Training journeys through the real `trainwright train` in a subprocess, on tiny data: an untrained model
whose boxes overflow (drawing on), a shortened coco_yolox (refused, then trained with the suggested schedule,
evaluated and predicted with), fine-tuning from a SuperGradients checkpoint, early stopping; and configuration
errors that leave nothing behind (through the same entry point in this process: they end before any training,
so a fresh interpreter per case would only add its start-up time)."""

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from train_journey_helpers import (
    SG_FIXTURES,
    coco_paths,
    no_traceback,
    results_rows,
    tiny_settings,
    tiny_shapes,
    trainwright,
    write_exploding_checkpoint,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """The tiny shapes dataset (5 classes, COCO format), generated once for the module."""
    return tiny_shapes(tmp_path_factory.mktemp("data"))


@pytest.fixture
def run(tmp_path):
    """trainwright(*args) from tmp_path with an empty weights cache (nothing can be downloaded)."""
    return lambda *args: trainwright(*args, cwd=tmp_path, torch_home=tmp_path / "torch_home")


def _experiment(proc) -> Path:
    return Path(proc.stdout.strip().splitlines()[-1])


def test_an_untrained_model_with_overflowing_boxes_trains_draws_and_reports_them(shapes, run, tmp_path):
    """Boxes beyond int32 are drawn clipped; infinite ones are counted and reported, not a crash."""
    checkpoint = write_exploding_checkpoint(tmp_path / "exploding.pth", num_classes=5)
    proc = run("train", "coco_yolox", *coco_paths(shapes), *tiny_settings(tmp_path, "exploding"),
               "model.pretrained_weights=null", f"model.checkpoint_path={checkpoint}", "visualization.freq=1",
               "visualization.conf=0.3", "training_params.lr_warmup_epochs=0", "training_params.lr_cooldown_epochs=0",
               "augmentation.mosaic_off_epoch=null")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert no_traceback(proc)
    experiment = _experiment(proc)
    assert f"yolox_n: loaded 642 of 642 tensors (weights) from {checkpoint}" in proc.stdout
    assert sorted(p.name for p in (experiment / "visualizations").iterdir()) == ["epoch_001_0.jpg", "epoch_001_1.jpg"]
    # level 1 gives 16 infinite boxes per 64x64 image: 6 validation images
    assert float(results_rows(experiment)[0]["NonFinitePredictions"]) == 96
    assert "warning: epoch 1: 96 predicted boxes or scores are not finite" in proc.stderr
    assert "not finite (inf or NaN) predictions in the validation of epoch(s) 1 (96)" in proc.stdout
    for name in ("ckpt_best.pth", "ckpt_latest.pth", "results.csv", "curves.png"):
        assert (experiment / name).is_file(), name


def test_a_shortened_coco_yolox_is_refused_then_trains_with_the_fix_evaluates_and_predicts(shapes, run, tmp_path):
    settings = [*coco_paths(shapes), *tiny_settings(tmp_path, "short", epochs=4), "model.pretrained_weights=null",
                "visualization.freq=0"]
    refused = run("train", "coco_yolox", *settings)
    assert refused.returncode == 2 and no_traceback(refused)
    assert ("the schedule does not fit in training_params.max_epochs=4: lr_warmup_epochs=1 + lr_cooldown_epochs=5 "
            ">= max_epochs leaves no epoch for the cosine decay") in refused.stderr
    assert "augmentation.mosaic_off_epoch=45 >= max_epochs" in refused.stderr
    assert not (tmp_path / "checkpoints").exists()  # nothing was created
    fix = re.search(r"For 4 epochs set e\.g\. (.+?), or raise", refused.stderr).group(1).split()
    assert fix == ["training_params.lr_warmup_epochs=1", "training_params.lr_cooldown_epochs=1",
                   "augmentation.mosaic_off_epoch=3"]

    proc = run("train", "coco_yolox", *settings, *fix)  # the user pastes the suggested values
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert no_traceback(proc)
    lrs = [float(row["lr"]) for row in results_rows(_experiment(proc))]
    assert len(lrs) == 4 and lrs[0] == pytest.approx(0.0025)  # warmed up to initial_lr in epoch 1
    assert lrs[0] > lrs[1] > lrs[2]  # the cosine decay of epochs 2 and 3
    assert lrs[3] == pytest.approx(lrs[2])  # the cooldown epoch keeps the last rate
    _evaluate_and_predict_like_the_readme(_experiment(proc) / "ckpt_best.pth", shapes, run, tmp_path)


def _evaluate_and_predict_like_the_readme(checkpoint: Path, shapes: Path, run, tmp_path: Path) -> None:
    """Steps 6 and 7 of the README on a trained checkpoint: evaluate on its own validation split (plots beside
    it, detections to JSON), then predict on the validation folder with label files."""
    evaluated = run("evaluate", checkpoint, "--save-json", tmp_path / "detections.json")
    assert evaluated.returncode == 0 and no_traceback(evaluated), evaluated.stderr[-3000:]
    for plot in ("pr_curve", "f1_curve", "confusion_matrix"):
        assert (checkpoint.parent / f"ckpt_best_{plot}.png").read_bytes()[:4] == b"\x89PNG", plot
    assert isinstance(json.loads((tmp_path / "detections.json").read_text()), list)
    table = [line.split()[0] for line in evaluated.stdout.splitlines() if re.match(r"^\w+ +\d+ +\d+ ", line)]
    assert table == ["all", "circle", "square", "triangle", "cross", "star"]

    images = sorted(p.name for p in (shapes / "images" / "val").iterdir())
    predicted = run("predict", checkpoint, shapes / "images" / "val", "--output", tmp_path / "predictions",
                    "--save-txt")
    assert predicted.returncode == 0 and no_traceback(predicted), predicted.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "predictions").iterdir()) == [*images, "labels"]
    assert sorted(p.name for p in (tmp_path / "predictions" / "labels").iterdir()) == [
        f"{Path(name).stem}.txt" for name in images]


def _main(args: list[str]) -> tuple[int, str, str]:
    """`trainwright ARGS` through its entry point in this process: (exit code, stdout, stderr)."""
    from trainwright.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def test_fine_tuning_a_supergradients_yolox_n_of_80_classes_onto_5(shapes, run, tmp_path):
    checkpoint = SG_FIXTURES / "yolox_n_c80_ckpt.pth"
    if not checkpoint.is_file():
        pytest.skip(f"SuperGradients fixture not found at {checkpoint} (../shared beside the checkout)")
    proc = run("train", "coco_yolox", *coco_paths(shapes), *tiny_settings(tmp_path, "finetune"),
               "model.pretrained_weights=null", f"model.checkpoint_path={checkpoint}", "visualization.freq=0",
               "training_params.lr_warmup_epochs=0", "training_params.lr_cooldown_epochs=0",
               "augmentation.mosaic_off_epoch=null")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert no_traceback(proc)
    assert f"yolox_n: loaded 636 of 642 tensors (weights) from {checkpoint}" in proc.stdout
    assert "class predictions re-initialised for 5 classes: _head._modules_list.14.cls_preds.0.weight" in proc.stdout
    assert "classes ['circle', 'square', 'triangle', 'cross', 'star']" in proc.stdout
    experiment = _experiment(proc)
    assert (experiment / "ckpt_best.pth").is_file() and len(results_rows(experiment)) == 1
    assert re.search(r"best epoch 1/1: mAP@0.50:0.95 \d\.\d{4}, the highest of 1 validation", proc.stdout)
    table = proc.stdout[proc.stdout.index("per class, ckpt_best.pth on the 6 validation images:"):]
    assert all(name in table for name in ("all", "circle", "square", "triangle", "cross", "star"))


@pytest.mark.parametrize(("overrides", "named"), [
    (["model.pretrained_weights=coco", "model.checkpoint_path=x.pth"],
     "model.pretrained_weights='coco' and model.checkpoint_path='x.pth' both name the starting weights"),
    (["model.pretrained_weights=null", "model.checkpoint_path=missing.pth"], "no checkpoint file at 'missing.pth'"),
    (["model.pretrained_weights=imagenet"], "no weights 'imagenet' registered for architecture 'yolox_n'"),
    (["training_params.early_stopping_patience=0"], "early_stopping_patience must be a positive integer"),
])
def test_fine_tuning_and_early_stopping_mistakes_stop_before_anything_is_written(shapes, tmp_path, monkeypatch,
                                                                                  overrides, named):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv("TRAINWRIGHT_DEBUG", raising=False)
    code, _, err = _main(["train", "coco_yolox", *coco_paths(shapes), *tiny_settings(tmp_path, "bad"),
                          "training_params.lr_warmup_epochs=0", "training_params.lr_cooldown_epochs=0",
                          "augmentation.mosaic_off_epoch=null", *overrides])
    assert code == 2 and "Traceback" not in err
    assert named in err and len(err.strip().splitlines()) == 2  # the error and the debug hint
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "torch_home").exists()


def test_early_stopping_ends_the_run_and_says_why(shapes, run, tmp_path):
    proc = run("train", *tiny_settings(tmp_path, "early", epochs=6), f"dataset.root={shapes.parent}",
               "dataset.generation={image_size: 64, num_train: 12, num_val: 6, min_object_size: 10, "
               "max_object_size: 30}", "visualization.freq=0", "training_params.lr_warmup_epochs=0",
               "training_params.early_stopping_patience=1", "training_params.early_stopping_min_delta=1.0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert no_traceback(proc)
    # no mAP can rise by more than 1.0: epoch 1 sets the best, epoch 2 does not improve on it -> stop
    assert [row["epoch"] for row in results_rows(_experiment(proc))] == ["1", "2"]
    assert ("stopped early after epoch 2 of 6: mAP@0.50 did not improve by more than 1 for 1 validation(s) "
            "(training_params.early_stopping_patience=1)") in proc.stdout
    assert "done in" in proc.stdout and "(stopped early)" in proc.stdout
