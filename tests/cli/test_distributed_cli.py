"""`torchrun --nproc_per_node 2 -m trainwright train ...`: the detection recipe on two processes, end to end."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from cli_helpers import tiny_shapes_overrides
from subprocess_helpers import REPO, run_trainwright


def _torchrun_trainwright(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT", "TRAINWRIGHT_DEBUG")}  # fmt: skip
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "trainwright", *map(str, args)]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
def test_detection_recipe_on_two_processes_writes_each_file_once_and_evaluates(tmp_path):
    overrides = tiny_shapes_overrides(tmp_path, "ddp") + ["training_params.max_epochs=2"]
    result = _torchrun_trainwright("train", *overrides)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    root = tmp_path / "checkpoints"
    assert sorted(os.listdir(root)) == ["ddp"]  # both processes use rank 0's experiment name
    experiment = root / "ddp"
    assert result.stdout.strip().splitlines()[-1] == str(experiment)
    assert result.stdout.count("recipe yolox_n_shapes") == 1 and result.stdout.count(str(experiment)) == 2
    with open(experiment / "results.csv", newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"]  # one row per epoch, no duplicates
    files = os.listdir(experiment)
    assert sum(name.startswith("events.out.tfevents") for name in files) == 1
    assert {"ckpt_best.pth", "ckpt_latest.pth", "recipe.yaml", "train_log.txt", "curves.png"} <= set(files)
    assert not [name for name in files if name.endswith(".tmp") or name.startswith(".")]
    checkpoint = torch.load(experiment / "ckpt_latest.pth", weights_only=True)
    assert checkpoint["epoch"] == 2 and not any(k.startswith("module.") for k in checkpoint["net"])

    evaluated = run_trainwright("evaluate", experiment / "ckpt_best.pth", "--no-plots", "--json")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    summary = json.loads(evaluated.stdout)
    assert summary["num_images"] == 6 and -1.0 <= summary["AP50"] <= 1.0  # the validation split it trained on
