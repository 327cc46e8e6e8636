"""`trainwright train` on broken COCO data, in a subprocess as a user runs it: exit 2, one line naming the problem."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import tiny_run_overrides, write_coco_split

pytestmark = pytest.mark.slow  # each run starts a Python with torch: seconds, not milliseconds

REPO = Path(__file__).resolve().parents[2]


def train_on(tmp_path, train_json) -> subprocess.CompletedProcess:
    data = tmp_path / "data"
    val_images, val_json = write_coco_split(data, "val", 2, seed=2)
    args = ["train", "coco_yolox", f"dataset.train_images_dir={data / 'images' / 'train'}",
            f"dataset.train_annotations={train_json}", f"dataset.val_images_dir={val_images}",
            f"dataset.val_annotations={val_json}", *tiny_run_overrides(tmp_path, "broken")]
    env = {k: v for k, v in os.environ.items() if k != "TRAINWRIGHT_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "trainwright", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *named: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert lines and lines[0].startswith("trainwright train: error: "), result.stderr
    assert all(line.startswith("(set TRAINWRIGHT_DEBUG=1") for line in lines[1:]), result.stderr
    for text in named:
        assert text in lines[0], (text, lines[0])


def assert_no_experiment_folder(tmp_path) -> None:
    root = tmp_path / "checkpoints"
    assert not root.exists() or not any(root.iterdir()), sorted(root.iterdir())


@pytest.fixture
def train_split(tmp_path):
    return write_coco_split(tmp_path / "data", "train", 3, seed=1)


def test_duplicate_image_id_stops_before_training(tmp_path, train_split):
    _, train_json = train_split
    data = json.loads(train_json.read_text())
    data["images"][1]["id"] = data["images"][0]["id"]
    train_json.write_text(json.dumps(data))
    result = train_on(tmp_path, train_json)
    assert_one_line_error(result, str(train_json), "duplicate image id 1000", "train_000.jpg", "train_001.jpg")
    assert_no_experiment_folder(tmp_path)


def test_invalid_json_stops_before_training(tmp_path, train_split):
    _, train_json = train_split
    train_json.write_text(train_json.read_text()[:-40])
    result = train_on(tmp_path, train_json)
    assert_one_line_error(result, str(train_json), "invalid JSON at line 1, column")
    assert_no_experiment_folder(tmp_path)
