"""PP-YOLOE through the commands a user types: train the shipped recipe (tiny), then evaluate, predict, export,
resume it, and fine-tune from its checkpoint; recipe mistakes of the family give one-line errors."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from subprocess_helpers import REPO, run_trainwright

from trainwright.checkpoints import read_ckpt_state_dict

pytestmark = pytest.mark.slow  # trains PP-YOLOE twice in subprocesses


def tiny_ppyoloe_overrides(root, name: str = "pp") -> list[str]:
    """ppyoloe_s_shapes shrunk: width 0.25, 8 training / 4 validation 64x64 images, two epochs of two batches
    (ATSS in the first, the task-aligned assigner in the second), batches resized to 32 or 64."""
    return [
        f"ckpt_root_dir={root / 'checkpoints'}", f"experiment_name={name}", f"dataset.root={root / 'shapes'}",
        "dataset.generation={image_size: 64, num_train: 8, num_val: 4, min_object_size: 10, max_object_size: 30}",
        "dataset.input_size=[64,64]", "dataset.cache_images=false", "model.arch_params={width_mult: 0.25}",
        "train_dataloader.batch_size=4", "train_dataloader.num_workers=0", "train_dataloader.random_resize_sizes=[32,64]",
        "valid_dataloader.batch_size=4", "valid_dataloader.num_workers=0",
        "visualization.num_images=2", "training_params.max_epochs=2", "training_params.max_train_batches=2",
        "training_params.static_assigner_end_epoch=1", "training_params.lr_warmup_epochs=0",
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ppyoloe")
    result = run_trainwright("train", "ppyoloe_s_shapes", *tiny_ppyoloe_overrides(root))
    assert result.returncode == 0, result.stderr[-3000:]
    return root, root / "checkpoints" / "pp", result


def _image(path):
    image = np.full((70, 90, 3), 127, np.uint8)
    cv2.circle(image, (30, 30), 15, (0, 0, 255), -1)
    cv2.imwrite(str(path), image)
    return path


def test_train_writes_a_ppyoloe_checkpoint(trained):
    _, experiment, result = trained
    assert "ppyoloe_s on shapes data" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == str(experiment)
    for name in ("ckpt_best.pth", "ckpt_latest.pth", "results.csv", "recipe.yaml"):
        assert (experiment / name).is_file(), name
    ckpt = read_ckpt_state_dict(str(experiment / "ckpt_latest.pth"))
    params = ckpt["processing_params"]
    assert params["architecture"] == "ppyoloe_s" and params["arch_params"] == {"width_mult": 0.25}
    assert any(key.startswith("head.pred_cls") for key in ckpt["net"])
    header = (experiment / "results.csv").read_text().splitlines()[0]
    assert "loss_dfl" in header  # the PP-YOLOE loss components were logged


def test_evaluate_a_ppyoloe_checkpoint(trained, tmp_path):
    _, experiment, _ = trained
    result = run_trainwright("evaluate", experiment / "ckpt_best.pth", "--json", "--output", tmp_path / "plots")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["num_images"] == 4 and 0.0 <= summary["AP50"] <= 1.0
    assert any((tmp_path / "plots").iterdir())


def test_predict_with_a_ppyoloe_checkpoint(trained, tmp_path):
    _, experiment, _ = trained
    source = _image(tmp_path / "photo.jpg")
    result = run_trainwright("predict", experiment / "ckpt_best.pth", source, "--output", tmp_path / "out",
                             "--conf", "0.0001", "--save-json", tmp_path / "det.json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "photo.jpg").is_file()
    detections = json.loads((tmp_path / "det.json").read_text())
    assert detections and all(len(d["bbox"]) == 4 for d in detections)


@pytest.mark.parametrize("nms", [False, True])
def test_export_a_ppyoloe_checkpoint_and_predict_with_the_file(trained, tmp_path, nms):
    pytest.importorskip("onnxruntime")
    _, experiment, _ = trained
    target = tmp_path / ("nms.onnx" if nms else "raw.onnx")
    result = run_trainwright("export", experiment / "ckpt_best.pth", "--output", target,
                             *(["--nms", "--conf", "0.0001"] if nms else []))
    assert result.returncode == 0, result.stderr[-2000:]
    assert target.is_file() and "checked in onnxruntime" in result.stdout
    assert ("detections" if nms else "scores [1, N, 5]") in result.stdout
    out = tmp_path / "out"
    result = run_trainwright("predict", target, _image(tmp_path / "photo.png"), "--output", out, "--conf", "0.001")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "photo.png").is_file()


def test_resume_continues_the_ppyoloe_run(trained):
    root, experiment, _ = trained
    before = read_ckpt_state_dict(str(experiment / "ckpt_latest.pth"))["epoch"]
    args = [a for a in tiny_ppyoloe_overrides(root) if not a.startswith("training_params.max_epochs")]
    result = run_trainwright("train", "ppyoloe_s_shapes", *args, "training_params.max_epochs=3",
                             "training_params.resume=true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(experiment)  # the same folder, not pp_2
    assert read_ckpt_state_dict(str(experiment / "ckpt_latest.pth"))["epoch"] > before


def test_fine_tune_from_a_ppyoloe_checkpoint_on_other_classes(trained):
    _, experiment, _ = trained
    code = (
        "import torch; from trainwright import models; "
        f"m = models.get('ppyoloe_s', arch_params={{'width_mult': 0.25}}, num_classes=2, "
        f"checkpoint_path={str(experiment / 'ckpt_best.pth')!r}); "
        "print(m.num_classes, m.head.pred_cls[0].out_channels, float(m.backbone.stem.conv1.seq.conv.weight.sum()))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    classes, channels, stem_sum = result.stdout.strip().splitlines()[-1].split()
    ckpt = read_ckpt_state_dict(str(experiment / "ckpt_best.pth"))
    weights = ckpt.get("ema_net") or ckpt["net"]
    assert (classes, channels) == ("2", "2")
    assert float(stem_sum) == pytest.approx(float(weights["backbone.stem.conv1.seq.conv.weight"].sum()), abs=1e-4)


def test_a_ppyoloe_recipe_mistake_gives_a_one_line_error(tmp_path):
    result = run_trainwright("train", "ppyoloe_s_shapes", *tiny_ppyoloe_overrides(tmp_path),
                             "augmentation.mosaic_off_epoch=1")
    assert result.returncode != 0
    assert result.stderr.startswith("trainwright train: error: augmentation.mosaic_off_epoch=1 is a YOLOX stage")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "checkpoints").exists()
