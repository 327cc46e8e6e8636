"""Every training parameter is checked for type and range, and every name that becomes a path stays inside its
folder, before anything is built or written; devices the machine lacks are named."""

import math

import pytest
import torch
from trainer_helpers import base_params, make_loaders, tiny_model

from trainwright import Trainer
from trainwright.training.devices import resolve_device
from trainwright.training.params import resolve_training_params


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("max_epochs", True, "a positive integer"),
    ("max_epochs", 2.0, "a positive integer"),
    ("max_epochs", "3", "a positive integer"),
    ("batch_accumulate", False, "a positive integer"),
    ("run_validation_freq", 0, "a positive integer"),
    ("seed", True, "an integer"),
    ("seed", 1.5, "an integer"),
    ("max_train_batches", True, "a positive integer or null"),
    ("max_valid_batches", 0, "a positive integer or null"),
    ("lr_warmup_epochs", -1, "a non-negative integer"),
    ("lr_warmup_epochs", True, "a non-negative integer"),
    ("initial_lr", "abc", "a finite number >= 0 (or a mapping of them per parameter group)"),
    ("initial_lr", math.nan, "a finite number >= 0 (or a mapping of them per parameter group)"),
    ("initial_lr", math.inf, "a finite number >= 0 (or a mapping of them per parameter group)"),
    ("initial_lr", -0.1, "a finite number >= 0 (or a mapping of them per parameter group)"),
    ("initial_lr", True, "a finite number >= 0 (or a mapping of them per parameter group)"),
    ("warmup_initial_lr", math.nan, "a finite number >= 0 or null"),
    ("cosine_final_lr_ratio", "x", "a finite number >= 0"),
    ("lr_updates", [1, True], "a list of non-negative integers"),
    ("save_ckpt_epoch_list", [0], "a list of positive integers"),
    ("ema", "false", "true or false"),
    ("silent_mode", 1.0, "true or false"),
    ("metric_to_watch", 3, "a metric name or null"),
])
def test_a_wrong_type_or_range_is_one_line_naming_the_parameter_and_value(name, value, expected):
    with pytest.raises(ValueError) as info:
        resolve_training_params(base_params(**{name: value}))
    assert str(info.value) == f"training_params.{name} must be {expected}, got {value!r}"


def test_valid_values_pass():
    params = resolve_training_params(base_params(initial_lr=0, lr_updates=[2, 4], save_ckpt_epoch_list=[1],
                                                 seed=-3, warmup_initial_lr=1e-4, ema=True, max_train_batches=None))
    assert params.initial_lr == 0 and params.lr_updates == [2, 4]
    per_group = {"backbone": 0.01, "head": 0.1}  # one learning rate per parameter group
    assert resolve_training_params(base_params(initial_lr=per_group)).initial_lr == per_group


@pytest.mark.parametrize("name", ["../outside.pth", "/tmp/abs.pth", ".", "", "a/b.pth", "x\ny.pth"])
def test_a_best_checkpoint_name_outside_the_experiment_directory_fails_before_training(tmp_path, name):
    target = tmp_path / "outside.pth"
    target.write_bytes(b"precious")
    with pytest.raises(ValueError, match="training_params.ckpt_best_name=") as info:
        Trainer("exp", ckpt_root_dir=tmp_path / "root", device="cpu").train(
            tiny_model(), base_params(ckpt_best_name=name), *make_loaders())
    assert repr(name) in str(info.value)
    assert target.read_bytes() == b"precious" and not (tmp_path / "root").exists()


@pytest.mark.parametrize("name", ["../x", "/abs", ".", "..", "", "a/b", "tab\there"])
def test_an_experiment_name_that_leaves_ckpt_root_dir_is_refused(tmp_path, name):
    with pytest.raises(ValueError, match="experiment_name=") as info:
        Trainer(name, ckpt_root_dir=tmp_path / "root", device="cpu")
    assert repr(name) in str(info.value)
    assert not (tmp_path / "root").exists()


def test_the_best_checkpoint_name_set_by_a_callback_is_checked_too(tmp_path):
    from trainwright.callbacks.base import Callback

    class Rename(Callback):
        def on_training_start(self, ctx):
            ctx.context_methods.set_ckpt_best_name("../escape.pth")

    with pytest.raises(ValueError, match="ckpt_best_name='../escape.pth'"):
        Trainer("exp", ckpt_root_dir=tmp_path, device="cpu").train(
            tiny_model(), base_params(phase_callbacks=[Rename()]), *make_loaders())
    assert not (tmp_path / "escape.pth").exists()


def test_cuda_without_a_gpu_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:0", torch.device("cuda")):
        with pytest.raises(ValueError, match="no CUDA GPU is available on this machine: use device=cpu"):
            Trainer("exp", device=device)
    assert resolve_device(None) == torch.device("cpu")


def test_a_device_beyond_the_machine_or_not_a_device_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match="'cuda:5', but this machine has 2 CUDA GPU"):
        resolve_device("cuda:5")
    with pytest.raises(ValueError, match="device='gpu' is not a device name"):
        resolve_device("gpu")
