"""Helpers of the training journeys: the real `trainwright` command in a subprocess, tiny data and settings."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import torch

from trainwright.data import ShapesConfig, generate_shapes_dataset
from trainwright.models import get_model

REPO = Path(__file__).resolve().parents[2]
SG_FIXTURES = REPO.parent / "shared" / "fixtures" / "sg_models"
TINY_SHAPES = ShapesConfig(image_size=64, num_train=12, num_val=6, min_object_size=10, max_object_size=30)


def trainwright(*args, cwd: Path, torch_home: Path) -> subprocess.CompletedProcess:
    """`python -m trainwright ARGS` in a fresh process, one thread, this checkout first on the path, an empty
    weights cache; output captured."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "TORCH_HOME": str(torch_home)}
    env.pop("TRAINWRIGHT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "trainwright", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def tiny_shapes(root: Path) -> Path:
    """The shapes dataset in COCO format, 12 training and 6 validation images of 64x64, generated under root."""
    return generate_shapes_dataset(TINY_SHAPES, root=root)


def coco_paths(data: Path) -> list[str]:
    """The four dataset overrides of the coco_yolox recipe for a COCO-format folder (images/, annotations/)."""
    return [f"dataset.train_images_dir={data / 'images' / 'train'}",
            f"dataset.train_annotations={data / 'annotations' / 'instances_train.json'}",
            f"dataset.val_images_dir={data / 'images' / 'val'}",
            f"dataset.val_annotations={data / 'annotations' / 'instances_val.json'}"]


def tiny_settings(root: Path, name: str, epochs: int = 1) -> list[str]:
    """Any detection recipe shrunk to `epochs` epochs of two 64x64 batches of 4, one thread, no workers."""
    return [f"ckpt_root_dir={root / 'checkpoints'}", f"experiment_name={name}", "num_threads=1",
            "model.architecture=yolox_n", "dataset.input_size=[64,64]", "dataset.cache_images=false",
            "augmentation.mosaic_prob=0.0", "train_dataloader.batch_size=4", "train_dataloader.num_workers=0",
            "valid_dataloader.batch_size=6", "valid_dataloader.num_workers=0", "visualization.num_images=2",
            f"training_params.max_epochs={epochs}", "training_params.max_train_batches=2",
            "training_params.ema_params.decay=0.9"]


def no_traceback(proc: subprocess.CompletedProcess) -> bool:
    return "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


def results_rows(experiment: Path) -> list[dict]:
    with open(experiment / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def write_exploding_checkpoint(path: Path, num_classes: int) -> Path:
    """A YOLOX-N whose boxes are unusable the way an early or diverging model's are, deterministically:
    level 0 (stride 8) predicts boxes about 8.5e13 px wide (finite, far beyond int32) with objectness 0.98,
    and level 1 overflows to inf in eval mode only (a BatchNorm running mean of -1e30), so the training loss
    stays finite while validation sees infinite boxes."""
    torch.manual_seed(0)
    state = get_model("yolox_n", num_classes=num_classes).state_dict()
    head = "_head._modules_list.14."
    state[head + "reg_preds.0.bias"][2:] = 30.0
    state[head + "obj_preds.0.bias"].fill_(4.0)
    state[head + "reg_convs.1.1.conv.bn.running_mean"].fill_(-1e30)
    torch.save({"net": state}, path)
    return path
