"""Trainer.train / test: events, outputs, metrics naming, stopping, interruption."""

import csv
import os

import pytest
import torch
import torchmetrics
from trainer_helpers import base_params, make_loaders, tiny_model

from trainwright import Trainer
from trainwright.callbacks.base import EVENTS, Callback, Phase
from trainwright.callbacks.testing import PhaseContextTestCallback, TestLRCallback


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def __getattribute__(self, name):
        if name in EVENTS:
            return lambda ctx: object.__getattribute__(self, "events").append(name)
        return object.__getattribute__(self, name)


def test_event_order_of_one_epoch(tmp_path):
    train, _ = make_loaders(n=16, batch_size=8)
    valid = make_loaders(n=16, batch_size=16)[1]
    rec = Recorder()
    Trainer("ev", "cpu", ckpt_root_dir=tmp_path).train(tiny_model(), base_params(max_epochs=1, phase_callbacks=[rec]), train, valid)
    step = [
        "on_train_batch_start",
        "on_train_batch_loss_end",
        "on_train_batch_backward_end",
        "on_train_batch_gradient_step_start",
        "on_train_batch_gradient_step_end",
        "on_train_batch_end",
    ]
    assert rec.events == [
        "on_training_start",
        "on_train_loader_start",
        *step,
        *step,
        "on_train_loader_end",
        "on_validation_loader_start",
        "on_validation_batch_start",
        "on_validation_batch_end",
        "on_validation_loader_end",
        "on_validation_end_best_epoch",
        "on_epoch_end",
        "on_training_end",
    ]


def test_context_attributes_at_phases(tmp_path, loaders):
    pre, batch, val = (
        PhaseContextTestCallback(p) for p in (Phase.PRE_TRAINING, Phase.TRAIN_BATCH_END, Phase.VALIDATION_EPOCH_END)
    )
    pre_snapshot = {}

    class Snap(Callback):
        def on_training_start(self, ctx):
            pre_snapshot.update(
                epoch=ctx.epoch,
                optimizer=ctx.optimizer,
                net=ctx.net,
                sg_logger=ctx.sg_logger,
                ckpt=ctx.checkpoints_dir_path,
                params=ctx.training_params,
            )

    metric = torchmetrics.classification.MulticlassAccuracy(num_classes=2)
    Trainer("ctx", "cpu", ckpt_root_dir=tmp_path).train(
        tiny_model(), base_params(phase_callbacks=[pre, batch, val, Snap()], valid_metrics_list=[metric]), *loaders
    )
    assert pre_snapshot["optimizer"] is not None and pre_snapshot["net"] is not None
    assert pre_snapshot["ckpt"] == os.path.join(tmp_path, "ctx") and pre_snapshot["params"].max_epochs == 2
    assert batch.context.preds.shape == (8, 2) and batch.context.loss_log_items.shape == (1,)
    assert batch.context.inputs.shape == (8, 4) and batch.context.target.shape == (8,)
    assert set(val.context.metrics_dict) == {"CrossEntropyLoss", "MulticlassAccuracy"}


def test_experiment_directory_outputs(tmp_path, loaders):
    metric = torchmetrics.classification.MulticlassAccuracy(num_classes=2)
    params = base_params(
        max_epochs=3,
        valid_metrics_list=[metric],
        save_ckpt_epoch_list=[2],
        average_best_models=True,
        ema=True,
        ema_params={"decay": 0.5, "decay_type": "constant"},
    )
    Trainer("out", "cpu", ckpt_root_dir=tmp_path).train(
        tiny_model(),
        params,
        *loaders,
        processing_params={"class_names": ["a", "b"]},
        additional_configs_to_log={"dataset": "shapes"},
    )
    exp = tmp_path / "out"
    names = set(os.listdir(exp))
    assert {
        "ckpt_latest.pth",
        "ckpt_best.pth",
        "ckpt_epoch_2.pth",
        "average_model.pth",
        "results.csv",
        "train_log.txt",
    } <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    assert not any(n.endswith(".tmp") for n in names)
    latest = torch.load(exp / "ckpt_latest.pth", weights_only=True)
    assert {
        "net",
        "ema_net",
        "optimizer_state_dict",
        "scaler_state_dict",
        "epoch",
        "acc",
        "best_metric",
        "metrics",
        "processing_params",
        "trainwright_version",
        "recipe",
    } <= set(latest)
    assert latest["epoch"] == 3 and latest["processing_params"] == {"class_names": ["a", "b"]}
    assert latest["recipe"]["max_epochs"] == 3 and latest["acc"] == latest["metrics"]["MulticlassAccuracy"]
    best = torch.load(exp / "ckpt_best.pth", weights_only=True)
    assert all(torch.equal(best["net"][k], best["ema_net"][k]) for k in best["net"])  # best = the EMA weights
    assert torch.load(exp / "ckpt_epoch_2.pth", weights_only=True)["epoch"] == 2
    with open(exp / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert set(rows[0]) == {
        "epoch",
        "lr",
        "CrossEntropyLoss",
        "valid/CrossEntropyLoss",
        "MulticlassAccuracy",
    }
    log = (exp / "train_log.txt").read_text()
    assert "Epoch 3/3" in log and "additional_configs: {'dataset': 'shapes'}" in log


class DictMetric(torchmetrics.Metric):
    """Reports two keys and records which optional update arguments it received."""

    def __init__(self):
        super().__init__()
        self.add_state("n", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.seen = []

    def update(self, preds, target, device, crowd_targets=None):
        self.seen.append((str(device), None if crowd_targets is None else tuple(crowd_targets.shape)))
        self.n += len(target)

    def compute(self):
        return {"count": self.n, "mAP@0.50": self.n / 100}


class TwoPartLoss(torch.nn.Module):
    component_names = ["ce", "reg"]

    def forward(self, preds, target):
        ce = torch.nn.functional.cross_entropy(preds, target)
        reg = preds.pow(2).mean() * 0.01
        return ce + reg, torch.stack([ce.detach(), reg.detach()])


def test_metric_and_loss_naming_and_update_kwargs(tmp_path):
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    batches = [(x, y, {"crowd_targets": torch.zeros(3, 6)})]
    metric = DictMetric()
    val = PhaseContextTestCallback(Phase.VALIDATION_EPOCH_END)
    params = base_params(
        max_epochs=1, loss=TwoPartLoss(), valid_metrics_list=[metric], metric_to_watch="mAP@0.50", phase_callbacks=[val]
    )
    results = Trainer("names", "cpu", ckpt_root_dir=tmp_path).train(tiny_model(), params, batches, batches)
    assert results == pytest.approx(
        {
            "TwoPartLoss/ce": results["TwoPartLoss/ce"],
            "TwoPartLoss/reg": results["TwoPartLoss/reg"],
            "count": 8.0,
            "mAP@0.50": 0.08,
        }
    )
    assert metric.seen == [("cpu", (3, 6))]


def test_unknown_metric_to_watch_names_the_available_ones(tmp_path, loaders):
    with pytest.raises(ValueError, match=r"metric_to_watch='Acc'.*CrossEntropyLoss"):
        Trainer("w", "cpu", ckpt_root_dir=tmp_path).train(tiny_model(), base_params(metric_to_watch="Acc"), *loaders)


def test_nan_loss_stops_naming_epoch_and_batch_and_keeps_last_checkpoint(tmp_path, loaders):
    class NaNAt(torch.nn.Module):
        calls = 0

        def forward(self, preds, target):
            NaNAt.calls += 1
            loss = torch.nn.functional.cross_entropy(preds, target)
            return loss * float("nan") if NaNAt.calls == 4 + 4 + 2 else loss  # epoch 1 (4 train + 4 valid), batch 1

    ended = PhaseContextTestCallback(Phase.POST_TRAINING)
    trainer = Trainer("nan", "cpu", ckpt_root_dir=tmp_path)
    with pytest.raises(FloatingPointError, match="epoch 1, batch 1"):
        trainer.train(tiny_model(), base_params(loss=NaNAt(), phase_callbacks=[ended]), *loaders)
    assert ended.context is not None
    ckpt = torch.load(tmp_path / "nan" / "ckpt_latest.pth", weights_only=True)
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["net"].values())


def test_ctrl_c_saves_latest_and_calls_training_end(tmp_path, loaders):
    class Interrupt(Callback):
        def on_train_batch_end(self, ctx):
            if ctx.epoch == 1 and ctx.batch_idx == 2:
                raise KeyboardInterrupt

    ended = PhaseContextTestCallback(Phase.POST_TRAINING)
    trainer = Trainer("ctrlc", "cpu", ckpt_root_dir=tmp_path)
    trainer.train(tiny_model(), base_params(max_epochs=3, phase_callbacks=[Interrupt(), ended]), *loaders)
    assert trainer.interrupted and ended.context is not None
    ckpt = torch.load(tmp_path / "ctrlc" / "ckpt_latest.pth", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["interrupted_at"] == {"epoch": 1, "batch_idx": 2}
    net = trainer.net.state_dict()
    assert all(torch.equal(ckpt["net"][k], net[k]) for k in net)  # the weights at the interruption


def test_batch_limits_validation_freq_and_accumulation(tmp_path, loaders):
    rec = Recorder()
    lrs = []
    params = base_params(
        max_epochs=4,
        max_train_batches=3,
        max_valid_batches=1,
        run_validation_freq=2,
        batch_accumulate=2,
        phase_callbacks=[rec, TestLRCallback(lrs)],
    )
    Trainer("lim", "cpu", ckpt_root_dir=tmp_path).train(tiny_model(), params, *loaders)
    assert rec.events.count("on_train_batch_start") == 4 * 3
    # global steps 1..12, a step every second one
    assert rec.events.count("on_train_batch_gradient_step_end") == 6
    assert rec.events.count("on_validation_loader_start") == 2  # after epochs 2 and 4
    assert rec.events.count("on_validation_batch_start") == 2
    assert lrs == [0.1, 0.1]


def test_lr_schedule_through_the_trainer(tmp_path, loaders):
    lrs = []
    params = base_params(
        max_epochs=4, lr_mode="step", lr_updates=[1, 3], lr_decay_factor=0.5, phase_callbacks=[TestLRCallback(lrs)]
    )
    Trainer("lr", "cpu", ckpt_root_dir=tmp_path).train(tiny_model(), params, *loaders)
    assert lrs == pytest.approx([0.1, 0.05, 0.05, 0.025])


def test_gradient_clipping_bounds_the_step(tmp_path, loaders):
    model = tiny_model()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    params = base_params(max_epochs=1, max_train_batches=1, initial_lr=1.0, optimizer_params={"weight_decay": 0.0},
                         clip_grad_norm=0.01)
    Trainer("clip", "cpu", ckpt_root_dir=tmp_path).train(model, params, loaders[0])
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert 0 < (after - before).norm() <= 0.01 + 1e-6


def test_bfloat16_autocast_on_cpu_runs(tmp_path, loaders):
    dtypes = []

    class Dtype(Callback):
        def on_train_batch_loss_end(self, ctx):
            dtypes.append(ctx.preds.dtype)

    params = base_params(max_epochs=1, mixed_precision=True, phase_callbacks=[Dtype()])
    Trainer("amp", "cpu", ckpt_root_dir=tmp_path).train(tiny_model(), params, *loaders)
    assert dtypes and set(dtypes) == {torch.bfloat16}


def test_test_returns_losses_and_metrics(tmp_path, loaders):
    trainer = Trainer("t", "cpu", ckpt_root_dir=tmp_path)
    metric = torchmetrics.classification.MulticlassAccuracy(num_classes=2)
    results = trainer.test(tiny_model(), loaders[1], [metric], loss="cross_entropy")
    assert set(results) == {"CrossEntropyLoss", "MulticlassAccuracy"} and 0 <= results["MulticlassAccuracy"] <= 1


def test_silent_mode_prints_nothing(tmp_path, loaders, capsys):
    Trainer("quiet", "cpu", ckpt_root_dir=tmp_path).train(tiny_model(), base_params(max_epochs=1), *loaders)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_bad_arguments(tmp_path, loaders):
    with pytest.raises(ValueError, match="experiment_name"):
        Trainer("")
    trainer = Trainer("bad", "cpu", ckpt_root_dir=tmp_path)
    with pytest.raises(ValueError, match="loss='nope'"):
        trainer.train(tiny_model(), base_params(loss="nope"), *loaders)
    with pytest.raises(ValueError, match="optimizer='Adagrad2'"):
        trainer.train(tiny_model(), base_params(optimizer="Adagrad2"), *loaders)
    with pytest.raises(ValueError, match="a batch must be"):
        trainer.train(tiny_model(), base_params(), [torch.zeros(2, 4)])


def test_a_run_that_fails_to_set_up_writes_nothing(tmp_path, loaders):
    with pytest.raises(ValueError, match="lr_mode='nope'"):
        Trainer("bad_lr", "cpu", ckpt_root_dir=tmp_path).train(tiny_model(), base_params(lr_mode="nope"), *loaders)
    assert not (tmp_path / "bad_lr").exists()
    Trainer("other", "cpu", ckpt_root_dir=tmp_path).train(tiny_model(), base_params(max_epochs=1), *loaders)
    before = sorted(p.name for p in (tmp_path / "other").iterdir())

    class Wider(torch.nn.Module):  # another model: its checkpoint cannot be loaded
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x)

    with pytest.raises(RuntimeError):
        Trainer("other", "cpu", ckpt_root_dir=tmp_path).train(Wider(), base_params(resume=True), *loaders)
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == before
