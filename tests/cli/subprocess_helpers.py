"""Helpers of the subprocess CLI tests: a tiny checkpoint that does detect things, and running the command."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from trainwright.models import get_model

REPO = Path(__file__).resolve().parents[2]


def write_detecting_checkpoint(path: Path, class_names: list[str], category_ids: list[int],
                               input_size=(64, 64), valid_data: dict | None = None) -> Path:
    """An untrained YOLOX-N whose objectness and class biases are raised, so that it reports boxes everywhere
    (scores about 0.7 for the first class and 0.6 for the others), saved with the processing_params that
    `trainwright train` stores."""
    torch.manual_seed(0)
    model = get_model("yolox_n", num_classes=len(class_names))
    state = model.state_dict()
    for name, value in state.items():
        if ".obj_preds." in name and name.endswith(".bias"):
            value.fill_(4.0)
        elif ".cls_preds." in name and name.endswith(".bias"):
            value.copy_(torch.tensor([1.0] + [0.5] * (len(class_names) - 1)))
    params = {"class_names": class_names, "category_ids": category_ids, "input_size": list(input_size),
              "architecture": "yolox_n", "arch_params": {}, "postprocess": {"iou": 0.65, "max_predictions": 100}}
    if valid_data is not None:
        params["valid_data"] = valid_data
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"net": state, "processing_params": params}, path)
    return path


def run_trainwright(*args, cwd=None) -> subprocess.CompletedProcess:
    """`python -m trainwright ARGS` in a fresh process (this checkout first on the path), output captured."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    env.pop("TRAINWRIGHT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "trainwright", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)
