"""Reliability journeys through `trainwright train` in a subprocess, as a user runs it: names that would leave
their folder, bad overrides, a run interrupted and resumed with the command it printed, resume errors and an
experiment directory held by another run. Each asserts the exit code, a one-line error without a traceback
that names the problem, and what is (not) on disk afterwards."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainwright.training.experiment_dir import LOCK_FILE, claim_experiment_dir

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "cli"))

from cli_helpers import tiny_shapes_overrides  # noqa: E402


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    env.pop("TRAINWRIGHT_DEBUG", None)
    return env


def train(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainwright", "train", *map(str, args)], capture_output=True,
                          text=True, env=_env(), cwd=cwd, timeout=600)


def assert_one_line_error(result, *fragments):
    assert result.returncode not in (0, 130), result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and "TRAINWRIGHT_DEBUG" not in line]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def snapshot(directory: Path) -> dict:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in directory.iterdir()}


def tiny(root: Path, name: str = "run", epochs: int = 1) -> list[str]:
    return tiny_shapes_overrides(root, name) + [f"training_params.max_epochs={epochs}"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-epoch run: its experiment directory."""
    root = tmp_path_factory.mktemp("finished")
    result = train(*tiny(root))
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("override, named", [
    ("experiment_name=../escaped", "experiment_name"),
    ("experiment_name=..", "experiment_name"),
    ("experiment_name=.", "experiment_name"),
    ('experiment_name="a\\nb"', "control character"),  # YAML's "\n": a newline in the name
    ("training_params.ckpt_best_name=../victim.txt", "ckpt_best_name"),
    ("training_params.ckpt_best_name=VICTIM", "ckpt_best_name"),
])
def test_a_name_that_leaves_its_folder_is_refused_and_nothing_is_written(tmp_path, override, named):
    victim = tmp_path / "checkpoints" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("the user's file")
    override = override.replace("VICTIM", str(victim))
    result = train(*tiny(tmp_path), override)
    assert_one_line_error(result, named)
    assert victim.read_text() == "the user's file"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["victim.txt"]  # no experiment folder
    assert not (tmp_path / "escaped").exists()


def test_an_absolute_experiment_name_is_refused(tmp_path):
    result = train(*tiny(tmp_path), f"experiment_name={tmp_path / 'elsewhere'}")
    assert_one_line_error(result, "experiment_name")
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("override, fragments", [
    ("training_params.max_epochs=[1", ["training_params.max_epochs=[1", "not valid YAML"]),
    ("training_params.max_epochs=!!python/object:os.system 1", ["YAML tags"]),
    ("training_params.max_epochs=true", ["max_epochs", "True"]),
    ("training_params.initial_lr=abc", ["initial_lr", "abc"]),
    ("training_params.initial_lr=.nan", ["initial_lr", "nan"]),
])
def test_a_bad_override_is_one_line_naming_it_and_nothing_is_written(tmp_path, override, fragments):
    result = train(*tiny(tmp_path), override)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_one_line(tmp_path):
    result = train(*tiny(tmp_path), "device=cuda")
    assert_one_line_error(result, "device='cuda'", "no CUDA GPU")
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_ctrl_c_then_the_printed_command_ends_where_an_uninterrupted_run_does(tmp_path):
    uninterrupted = train(*tiny(tmp_path, "whole", epochs=2))
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    directory = tmp_path / "checkpoints" / "cut"
    process = subprocess.Popen([sys.executable, "-m", "trainwright", "train", *tiny(tmp_path, "cut", epochs=2)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        while not (directory / "ckpt_latest.pth").exists():  # the first epoch is complete: interrupt the second
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=300)
    finally:
        process.kill()
    if process.returncode == 0:
        pytest.skip("the run ended before the interrupt reached it")
    assert process.returncode == 130, err
    assert "Traceback" not in err, err
    command = next(line.strip() for line in out.splitlines() if line.strip().startswith("trainwright train --resume"))
    assert command == f"trainwright train --resume {directory}"
    recipe = (directory / "recipe.yaml").read_bytes()
    resumed = subprocess.run([sys.executable, "-m", "trainwright", *command.split()[1:]], capture_output=True,
                             text=True, env=_env(), timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert (directory / "recipe.yaml").read_bytes() == recipe  # the run's own recipe, not overwritten
    assert not (directory / LOCK_FILE).exists()
    ends = [torch.load(d / "ckpt_latest.pth", weights_only=True) for d in (directory, tmp_path / "checkpoints" / "whole")]
    assert ends[0]["epoch"] == ends[1]["epoch"] == 2
    assert all(torch.equal(ends[0]["net"][k], v) for k, v in ends[1]["net"].items())


def test_resume_without_the_recipe_name_continues_the_run_with_its_own_recipe(tmp_path, finished):
    recipe = (finished / "recipe.yaml").read_text()
    result = train(f"experiment_name={finished.name}", f"ckpt_root_dir={finished.parent}",
                   "training_params.resume=true", "training_params.max_epochs=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert torch.load(finished / "ckpt_latest.pth", weights_only=True)["epoch"] == 2
    saved = (finished / "recipe.yaml").read_text()
    assert saved.replace("max_epochs: 2", "max_epochs: 1") == recipe  # only the new length is recorded


def test_resume_refuses_another_recipe_or_a_change_of_what_is_trained(finished):
    before = snapshot(finished)
    named = train("--resume", finished, "coco_yolox")
    assert_one_line_error(named, "--resume reads the recipe from", "coco_yolox")
    changed = train("--resume", finished, "model.architecture=yolox_s", "training_params.max_epochs=3")
    assert_one_line_error(changed, "model.architecture")
    assert snapshot(finished) == before


def test_resume_of_a_missing_directory_is_named(tmp_path):
    result = train("--resume", tmp_path / "nothing")
    assert_one_line_error(result, str(tmp_path / "nothing"))
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize("damage", ["truncate", "empty"])
def test_resume_from_a_broken_checkpoint_names_it_and_changes_nothing(tmp_path, finished, damage):
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in finished.iterdir():
        if path.is_file():
            (copy / path.name).write_bytes(path.read_bytes())
    latest = copy / "ckpt_latest.pth"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2] if damage == "truncate" else b"")
    before = snapshot(copy)
    result = train("--resume", copy, "training_params.max_epochs=2")
    assert_one_line_error(result, str(latest))
    assert snapshot(copy) == before


def test_resume_of_a_directory_another_run_holds_is_refused_naming_its_pid(finished):
    before = snapshot(finished)
    with claim_experiment_dir(finished, create=False):
        held = snapshot(finished)
        result = train("--resume", finished, "training_params.max_epochs=5")
        assert_one_line_error(result, f"PID {os.getpid()}", "in use by another run")
        assert snapshot(finished) == held
    assert snapshot(finished) == before
