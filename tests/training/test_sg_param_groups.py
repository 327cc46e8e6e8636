"""A model's own parameter groups and per-group LRs (SuperGradients 3.1's `initialize_param_groups` and
`update_param_groups`), and SG's default optimizer settings, through Trainer.train."""

import math

import pytest
import torch
from trainer_helpers import base_params

from trainwright import Trainer
from trainwright.callbacks.base import Callback
from trainwright.training.optim import build_optimizer

HEAD_FACTOR = 10.0


class TwoGroupNet(torch.nn.Module):
    """A backbone and a head; the head trains at HEAD_FACTOR times the scheduled LR (as SG's STDC does)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU())
        self.head = torch.nn.Linear(8, 2)
        self.calls = []  # (lr, epoch, iter, total_batch) of each update_param_groups call

    def forward(self, x):
        return self.head(self.backbone(x))

    def initialize_param_groups(self, lr, training_params):
        return [
            {"named_params": self.backbone.named_parameters(), "lr": lr, "name": "backbone"},
            {"named_params": dict(self.head.named_parameters()), "lr": lr * HEAD_FACTOR, "name": "head"},
        ]

    def update_param_groups(self, param_groups, lr, epoch, iter, training_params, total_batch):
        self.calls.append((lr, epoch, iter, total_batch))
        for group in param_groups:
            group["lr"] = lr * (HEAD_FACTOR if group["name"] == "head" else 1.0)
        return param_groups


class GroupLRs(Callback):
    """The LR of every group when each training batch starts: the LRs its optimizer step uses."""

    def __init__(self):
        self.steps = []

    def on_train_batch_start(self, context):
        self.steps.append([g["lr"] for g in context.optimizer.param_groups])


def sg_schedule(lr0, w0, warmup_epochs, max_epochs, batches, final_ratio):
    """SG 3.1's LR for each training step: per-epoch linear warmup set at each epoch start while e <= W, then the
    cosine set after each optimizer step (e, b): 0.5 * lr0 * (1 + cos(pi * i / (I + 1))) * (1 - r) + lr0 * r
    with i = L * (e - W) + b and I = L * (E - W)."""
    lr, out = None, []
    total = batches * (max_epochs - warmup_epochs)
    for epoch in range(max_epochs):
        if epoch <= warmup_epochs:
            lr = w0 + epoch * (lr0 - w0) / warmup_epochs
        for b in range(batches):
            out.append(lr)
            if epoch >= warmup_epochs:
                i = batches * (epoch - warmup_epochs) + b
                lr = 0.5 * lr0 * (1 + math.cos(math.pi * i / (total + 1))) * (1 - final_ratio) + lr0 * final_ratio
    return out


def test_a_model_with_its_own_groups_trains_with_sg_per_group_lrs(tmp_path, loaders):
    model, spy = TwoGroupNet(), GroupLRs()
    params = base_params(max_epochs=3, initial_lr=0.1, lr_mode="cosine", cosine_final_lr_ratio=0.1, lr_warmup_epochs=1,
                         warmup_initial_lr=0.01, zero_weight_decay_on_bias_and_bn=True,
                         optimizer_params={"momentum": 0.9, "weight_decay": 5e-4}, phase_callbacks=[spy])
    trainer = Trainer("groups", ckpt_root_dir=tmp_path, device="cpu")
    trainer.train(model, params, *loaders)

    groups = trainer.state.optimizer.param_groups
    # each of the model's groups split in two, SG's order: no weight decay first, then the rest
    assert [g["name"] for g in groups] == ["backbone", "backbone", "head", "head"]
    assert [g["weight_decay"] for g in groups] == [0.0, 5e-4, 0.0, 5e-4]
    assert {id(p) for p in groups[2]["params"]} == {id(model.head.bias)}
    base = sg_schedule(0.1, 0.01, warmup_epochs=1, max_epochs=3, batches=4, final_ratio=0.1)
    expected = [[lr, lr, lr * HEAD_FACTOR, lr * HEAD_FACTOR] for lr in base]
    assert spy.steps == [pytest.approx(e, rel=1e-12) for e in expected]
    # the schedules hand every new LR to the model, with the epoch, the batch (None per epoch) and L
    assert (0.01, 0, None, 4) in model.calls and all(c[3] == 4 for c in model.calls)


def test_initial_group_lrs_come_from_the_model_when_no_schedule_runs(tmp_path, loaders):
    model, spy = TwoGroupNet(), GroupLRs()
    Trainer("const", ckpt_root_dir=tmp_path, device="cpu").train(
        model, base_params(max_epochs=1, initial_lr=0.05, phase_callbacks=[spy]), *loaders)
    assert spy.steps == [[0.05, 0.05 * HEAD_FACTOR]] * 4
    assert model.calls == []  # no schedule, so nobody asks the model


def test_a_model_without_update_param_groups_gets_one_lr_in_every_group(tmp_path, loaders):
    class OnlyInit(TwoGroupNet):
        update_param_groups = None

    spy = GroupLRs()
    params = base_params(max_epochs=2, initial_lr=0.1, lr_mode="step", lr_updates=[1], phase_callbacks=[spy])
    Trainer("init", ckpt_root_dir=tmp_path, device="cpu").train(OnlyInit(), params, *loaders)
    assert spy.steps[:4] == [[0.1, 1.0]] * 4  # the model's initial groups
    # after epoch 0 the step schedule (decay after epoch 1) writes one LR into every group
    assert spy.steps[4:] == [[0.1, 0.1]] * 4


@pytest.mark.parametrize("groups, message", [
    (None, "must return a list of dicts"),
    ([{"lr": 0.1}], "group 0 must be a dict with 'named_params'"),
])  # fmt: skip
def test_bad_initialize_param_groups_is_a_clear_error(tmp_path, loaders, groups, message):
    class Bad(TwoGroupNet):
        def initialize_param_groups(self, lr, training_params):
            return groups

    with pytest.raises(TypeError, match=message):
        Trainer("bad", ckpt_root_dir=tmp_path, device="cpu").train(Bad(), base_params(), *loaders)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("name, expected", [
    ("SGD", {"momentum": 0.9, "weight_decay": 1e-4}),
    ("Adam", {"weight_decay": 1e-4}),
    ("RMSProp", {"momentum": 0.9, "weight_decay": 1e-4}),
    ("AdamW", {"weight_decay": 0.01}),  # SG has no defaults for AdamW: torch's
])  # fmt: skip
def test_sg_default_optimizer_settings_under_the_given_ones(name, expected):
    model = torch.nn.Linear(2, 1)
    group = build_optimizer(name, model, 0.1, {}, False).param_groups[0]
    assert {k: group[k] for k in expected} == expected
    assert build_optimizer(name, model, 0.1, {"weight_decay": 0.0}, False).param_groups[0]["weight_decay"] == 0.0


def test_the_recipe_in_the_checkpoint_records_the_optimizer_settings_used(tmp_path, loaders):
    trainer = Trainer("recipe", ckpt_root_dir=tmp_path, device="cpu")
    trainer.train(torch.nn.Linear(4, 2), base_params(max_epochs=1, optimizer_params={"nesterov": True}), *loaders)
    recipe = torch.load(tmp_path / "recipe" / "ckpt_latest.pth", weights_only=True)["recipe"]
    assert recipe["optimizer_params"] == {"weight_decay": 1e-4, "momentum": 0.9, "nesterov": True}
    assert trainer.state.optimizer.param_groups[0]["momentum"] == 0.9
