"""SuperGradients 3.1 training parameters through Trainer.train: its whole default_train_params.yaml, the keys
without effect, ckpt_name, load_opt_params, precise_bn, pre_prediction_callback, callbacks and losses by name."""

import warnings

import pytest
import torch
import torchmetrics
import yaml
from torch.utils.data import DataLoader
from trainer_helpers import base_params, make_loaders, tiny_model

from trainwright import Trainer
from trainwright.callbacks.base import Callback, Phase
from trainwright.callbacks.testing import TestLRCallback
from trainwright.training.losses import build_loss
from trainwright.training.params import resolve_training_params
from trainwright.training.sg_params import IGNORED_SG_PARAMS

# SG 3.1.0's recipes/training_hyperparams/default_train_params.yaml: every key with its value (comments dropped).
SG_DEFAULT_TRAIN_PARAMS_YAML = """
resume: False
resume_path:
ckpt_name: ckpt_latest.pth
lr_mode:
lr_schedule_function:
lr_warmup_epochs: 0
lr_warmup_steps: 0
lr_cooldown_epochs: 0
warmup_initial_lr:
step_lr_update_freq:
cosine_final_lr_ratio: 0.01
warmup_mode: linear_epoch_step
lr_updates:
  _target_: super_gradients.training.utils.utils.empty_list
pre_prediction_callback:
optimizer: SGD
optimizer_params: {}
load_opt_params: True
zero_weight_decay_on_bias_and_bn: False
loss:
criterion_params: {}
ema: False
ema_params:
  decay: 0.9999
  decay_type: exp
  beta: 15
train_metrics_list: []
valid_metrics_list: []
metric_to_watch: Accuracy
greater_metric_to_watch_is_better: True
launch_tensorboard: False
tensorboard_port:
tb_files_user_prompt: False
save_tensorboard_to_s3: False
precise_bn: False
precise_bn_batch_size:
sync_bn: False
silent_mode: False
mixed_precision: False
save_ckpt_epoch_list: []
average_best_models: True
dataset_statistics: False
batch_accumulate: 1
run_validation_freq: 1
save_model: True
seed: 42
phase_callbacks: []
log_installed_packages: True
clip_grad_norm:
ckpt_best_name: ckpt_best.pth
max_train_batches:
max_valid_batches:
sg_logger: base_sg_logger
sg_logger_params:
  tb_files_user_prompt: False
  launch_tensorboard: False
  tensorboard_port:
  save_checkpoints_remote: False
  save_tensorboard_remote: False
  save_logs_remote: False
  monitor_system: True
_convert_: all
"""

# Keys of SG 3.1.0's training/params.py DEFAULT_TRAINING_PARAMS that its YAML file lacks.
SG_PARAMS_NOT_IN_YAML = {"enable_qat": False, "resume_strict_load": False, "kill_ddp_pgroup_on_end": True}


class Accuracy(torchmetrics.Metric):
    """Reported as "Accuracy", the metric SG's default metric_to_watch names."""

    def __init__(self):
        super().__init__()
        self.add_state("correct", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, preds, target):
        self.correct += (preds.argmax(1) == target).sum()
        self.total += target.numel()

    def compute(self):
        return self.correct / self.total


def sg_default_params(**required):
    params = yaml.safe_load(SG_DEFAULT_TRAIN_PARAMS_YAML)
    params.update(max_epochs=1, initial_lr=0.1, loss="cross_entropy", valid_metrics_list=[Accuracy()], silent_mode=True)
    params.update(required)
    return params


def test_the_whole_sg_default_train_params_file_loads_with_one_warning(tmp_path, loaders):
    trainer = Trainer("sgdefaults", ckpt_root_dir=tmp_path, device="cpu")
    with pytest.warns(UserWarning, match="without effect in trainwright") as record:
        results = trainer.train(tiny_model(), sg_default_params(**SG_PARAMS_NOT_IN_YAML), *loaders)
    mine = [w for w in record if "without effect" in str(w.message)]
    assert len(mine) == 1
    message = str(mine[0].message)
    for key in ("launch_tensorboard", "tensorboard_port", "tb_files_user_prompt", "save_tensorboard_to_s3",
                "log_installed_packages", "dataset_statistics", "_convert_", *SG_PARAMS_NOT_IN_YAML):
        assert f"{key}=" in message
    assert "sync_bn" not in message and "precise_bn" not in message
    assert "Accuracy" in results and trainer.state.params.lr_updates == []
    assert (tmp_path / "sgdefaults" / "average_model.pth").is_file()  # SG's average_best_models: True


def test_every_key_of_the_sg_file_is_known_or_ignored():
    keys = set(yaml.safe_load(SG_DEFAULT_TRAIN_PARAMS_YAML)) | set(SG_PARAMS_NOT_IN_YAML)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resolved = resolve_training_params(sg_default_params(**SG_PARAMS_NOT_IN_YAML))
    assert keys - set(IGNORED_SG_PARAMS) <= set(resolved)
    assert not set(IGNORED_SG_PARAMS) & set(resolved)


def test_no_warning_without_ignored_keys(recwarn):
    resolve_training_params(base_params())
    assert not [w for w in recwarn if "without effect" in str(w.message)]


def test_a_hydra_object_other_than_an_empty_list_is_a_clear_error(tmp_path, loaders):
    params = base_params(lr_updates={"_target_": "numpy.arange", "start": 1})
    with pytest.raises(ValueError, match="training_params.lr_updates is a Hydra object"):
        Trainer("target", ckpt_root_dir=tmp_path, device="cpu").train(tiny_model(), params, *loaders)
    assert not (tmp_path / "target").exists()


def test_warmup_mode_linear_step_is_the_deprecated_epoch_warmup(tmp_path, loaders):
    runs = {}
    for mode in ("linear_step", "linear_epoch_step"):
        lrs = []
        params = base_params(max_epochs=3, lr_warmup_epochs=2, warmup_mode=mode, phase_callbacks=[TestLRCallback(lrs)])
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            Trainer(mode, ckpt_root_dir=tmp_path, device="cpu").train(tiny_model(), params, *loaders)
        runs[mode] = (lrs, [w for w in record if issubclass(w.category, FutureWarning)])
    assert runs["linear_step"][0] == runs["linear_epoch_step"][0] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1])
    assert "linear_step" in str(runs["linear_step"][1][0].message) and not runs["linear_epoch_step"][1]


# --- resume: ckpt_name, load_opt_params ------------------------------------------------------------------------


class EpochsSeen(Callback):
    def __init__(self):
        self.epochs, self.optimizer_state_sizes = [], []

    def on_training_start(self, context):
        self.optimizer_state_sizes.append(len(context.optimizer.state))

    def on_train_loader_start(self, context):
        self.epochs.append(context.epoch)


def test_resume_reads_ckpt_name_from_the_experiment_directory(tmp_path, loaders):
    Trainer("run", ckpt_root_dir=tmp_path, device="cpu").train(
        tiny_model(), base_params(max_epochs=2, save_ckpt_epoch_list=[1]), *loaders)
    seen = EpochsSeen()
    trainer = Trainer("run", ckpt_root_dir=tmp_path, device="cpu")
    trainer.train(tiny_model(), base_params(max_epochs=3, resume=True, ckpt_name="ckpt_epoch_1.pth",
                                            phase_callbacks=[seen]), *loaders)  # fmt: skip
    assert trainer.state.resumed_from == str(tmp_path / "run" / "ckpt_epoch_1.pth")
    assert seen.epochs == [1, 2] and seen.optimizer_state_sizes[0] > 0  # the optimizer state came back


@pytest.mark.parametrize("name", ["../elsewhere.pth", "sub/ckpt.pth", "/tmp/ckpt.pth", "..", ""])
def test_a_ckpt_name_that_leaves_the_experiment_directory_is_refused(tmp_path, loaders, name):
    Trainer("safe", ckpt_root_dir=tmp_path, device="cpu").train(tiny_model(), base_params(max_epochs=1), *loaders)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "safe").iterdir()}
    with pytest.raises(ValueError, match="ckpt_name"):
        Trainer("safe", ckpt_root_dir=tmp_path, device="cpu").train(
            tiny_model(), base_params(max_epochs=2, resume=True, ckpt_name=name), *loaders)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "safe").iterdir()} == before


def test_resume_from_a_missing_ckpt_name_names_the_file(tmp_path, loaders):
    with pytest.raises(FileNotFoundError, match="ckpt_epoch_7.pth"):
        Trainer("none", ckpt_root_dir=tmp_path, device="cpu").train(
            tiny_model(), base_params(resume=True, ckpt_name="ckpt_epoch_7.pth"), *loaders)


def test_load_opt_params_false_resumes_with_a_fresh_optimizer(tmp_path, loaders):
    Trainer("fresh", ckpt_root_dir=tmp_path, device="cpu").train(tiny_model(), base_params(max_epochs=1), *loaders)
    seen = EpochsSeen()
    trainer = Trainer("fresh", ckpt_root_dir=tmp_path, device="cpu")
    trainer.train(tiny_model(), base_params(max_epochs=2, resume=True, load_opt_params=False, phase_callbacks=[seen]),
                  *loaders)  # fmt: skip
    assert seen.epochs == [1] and seen.optimizer_state_sizes == [0]  # weights and epoch resumed, optimizer not


# --- precise BatchNorm ---------------------------------------------------------------------------------------


def bn_input_stats(fc1, loader, batches):
    """SG's precise BN: the plain average over `batches` loader batches of each batch's BN input mean and
    (unbiased) variance."""
    means, variances = [], []
    for (x, _), _ in zip(loader, range(batches)):
        h = fc1(x)
        means.append(h.mean(0))
        variances.append(h.var(0, unbiased=True))
    return torch.stack(means).mean(0), torch.stack(variances).mean(0)


@pytest.mark.parametrize("ema", [False, True])
def test_precise_bn_recomputes_the_statistics_before_validation(tmp_path, ema):
    train, valid = make_loaders()
    train = DataLoader(train.dataset, batch_size=8, shuffle=False)  # known batches
    seen = {}

    class AtValidation(Callback):
        def on_validation_loader_start(self, context):
            seen["net"] = context.net.bn.running_mean.clone()

    params = base_params(max_epochs=2, precise_bn=True, precise_bn_batch_size=16, ema=ema,
                         phase_callbacks=[AtValidation()])  # fmt: skip
    trainer = Trainer("pbn", ckpt_root_dir=tmp_path, device="cpu")
    trainer.train(tiny_model(), params, train, valid)
    with torch.no_grad():
        for model in [trainer.net] + ([trainer.ema_model.ema] if ema else []):
            mean, var = bn_input_stats(model.fc1, train, batches=2)  # 16 samples = 2 batches of 8
            assert torch.allclose(model.bn.running_mean, mean, atol=1e-6)
            assert torch.allclose(model.bn.running_var, var, atol=1e-6)
    assert torch.equal(seen["net"], trainer.net.bn.running_mean)  # recomputed before the last validation
    assert [type(cb).__name__ for cb in trainer.callbacks.callbacks].index("PreciseBN") > 1  # after phase callbacks


def test_without_precise_bn_the_statistics_are_the_running_ones(tmp_path):
    train, valid = make_loaders()
    train = DataLoader(train.dataset, batch_size=8, shuffle=False)
    trainer = Trainer("nopbn", ckpt_root_dir=tmp_path, device="cpu")
    trainer.train(tiny_model(), base_params(max_epochs=2), train, valid)
    with torch.no_grad():
        mean, _ = bn_input_stats(trainer.net.fc1, train, batches=2)
    assert not torch.allclose(trainer.net.bn.running_mean, mean, atol=1e-6)


def test_bad_precise_bn_batch_size_fails_before_training(tmp_path, loaders):
    with pytest.raises(ValueError, match="precise_bn_batch_size must be a positive integer"):
        Trainer("pbnbad", ckpt_root_dir=tmp_path, device="cpu").train(
            tiny_model(), base_params(precise_bn=True, precise_bn_batch_size=0), *loaders)
    assert not (tmp_path / "pbnbad").exists()


# --- pre_prediction_callback -----------------------------------------------------------------------------------


class ShapeNet(torch.nn.Module):
    """A tiny conv net that records the input sizes it sees in training and in evaluation."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 1)
        self.sizes = {"train": [], "eval": []}

    def forward(self, x):
        self.sizes["train" if self.training else "eval"].append(tuple(x.shape[-2:]))
        return self.fc(self.conv(x).mean((2, 3)))


class BoxLoss(torch.nn.Module):
    """Regresses the mean box coordinate; records the targets it gets."""

    def __init__(self):
        super().__init__()
        self.targets = []

    def forward(self, preds, targets):
        if preds.requires_grad:
            self.targets.append(targets.clone())
        return (preds.mean() - targets[:, 2:].mean() / 100) ** 2


def detection_batches(n_batches=4, size=16):
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(n_batches):
        boxes = torch.tensor([[0, 1, 8.0, 6.0, 4.0, 2.0], [1, 0, 4.0, 10.0, 2.0, 6.0]])
        batches.append((torch.rand(2, 3, size, size, generator=g), boxes))
    return batches


def test_pre_prediction_callback_rewrites_training_batches_only(tmp_path):
    calls = []

    def double_and_shift(inputs, targets, batch_idx):
        calls.append(batch_idx)
        return inputs * 2, targets + 1

    model, loss = ShapeNet(), BoxLoss()
    batches = detection_batches()
    params = base_params(max_epochs=1, loss=loss, pre_prediction_callback=double_and_shift)
    Trainer("pre", ckpt_root_dir=tmp_path, device="cpu").train(model, params, batches, batches)
    assert calls == [0, 1, 2, 3]
    assert all(torch.equal(t, batches[0][1] + 1) for t in loss.targets)
    assert batches[0][1][0, 2] == 8.0  # the loader's tensors are untouched


def test_multiscale_by_name_resizes_inputs_and_boxes_as_sg(tmp_path):
    model, loss = ShapeNet(), BoxLoss()
    batches = detection_batches(n_batches=4, size=16)
    multiscale = {"DetectionMultiscalePrePredictionCallback": {"multiscale_range": 1, "image_size_steps": 8,
                                                               "change_frequency": 2}}  # fmt: skip
    params = base_params(max_epochs=2, loss=loss, pre_prediction_callback=multiscale)
    Trainer("multiscale", ckpt_root_dir=tmp_path, device="cpu").train(model, params, batches, batches)
    train = model.sizes["train"]
    assert train[0] == (24, 24)  # the largest size first: (16 // 8 + 1) * 8
    assert all(train[i] == train[i + 1] for i in (0, 2, 4, 6))  # a new size every 2 batches
    assert set(train) <= {(8, 8), (16, 16), (24, 24)}
    assert set(model.sizes["eval"]) == {(16, 16)}
    for size, targets in zip(train, loss.targets):
        scale = size[0] / 16
        assert torch.allclose(targets[:, 2:], batches[0][1][:, 2:] * scale)
        assert torch.equal(targets[:, :2], batches[0][1][:, :2])


def test_a_pre_prediction_callback_that_is_not_callable_fails_before_training(tmp_path, loaders):
    with pytest.raises(TypeError, match="pre_prediction_callback must be callable"):
        Trainer("prebad", ckpt_root_dir=tmp_path, device="cpu").train(
            tiny_model(), base_params(pre_prediction_callback=3), *loaders)
    assert not (tmp_path / "prebad").exists()


# --- callbacks and losses by name ------------------------------------------------------------------------------


def test_phase_callbacks_by_name_as_sg_recipes_write_them(tmp_path, loaders):
    early_stop = {"EarlyStop": {"phase": "TRAIN_EPOCH_END", "monitor": "CrossEntropyLoss", "mode": "min",
                                "threshold": 10.0}}  # fmt: skip
    trainer = Trainer("named", ckpt_root_dir=tmp_path, device="cpu")
    trainer.train(tiny_model(), base_params(max_epochs=5, phase_callbacks=[early_stop]), *loaders)
    assert trainer.state.epochs_done == 1  # the threshold is reached at once
    stop = [cb for cb in trainer.callbacks.callbacks if type(cb).__name__ == "EarlyStop"][0]
    assert stop.phase is Phase.TRAIN_EPOCH_END and stop.threshold == 10.0


@pytest.mark.parametrize("entry, error, message", [
    ({"EarlyStopping": {"phase": "TRAIN_EPOCH_END", "monitor": "x"}}, ValueError, "'EarlyStopping' is not a registered"),
    ({"EarlyStop": {}, "Other": {}}, ValueError, "one-entry mapping"),
    ({"EarlyStop": 3}, TypeError, "arguments of 'EarlyStop' must be a mapping"),
])  # fmt: skip
def test_a_bad_callback_entry_is_a_clear_error_before_anything_is_written(tmp_path, loaders, entry, error, message):
    with pytest.raises(error, match=message):
        Trainer("badcb", ckpt_root_dir=tmp_path, device="cpu").train(
            tiny_model(), base_params(phase_callbacks=[entry]), *loaders)
    assert not (tmp_path / "badcb").exists()


def test_yolox_loss_names_as_sg_registers_them():
    import trainwright.models.detection  # noqa: F401  (registers the detection losses)

    for name, cls in (("yolox_loss", "YoloXDetectionLoss"), ("yolox_fast_loss", "YoloXFastDetectionLoss")):
        assert type(build_loss(name, {"strides": [8, 16, 32], "num_classes": 3})).__name__ == cls
        assert type(build_loss({name: {"strides": [8, 16, 32], "num_classes": 3}}, {})).__name__ == cls
