"""The reference's LR-callback rules: update_param_groups, the one-epoch warmup cap, step without updates,
and lr_mode="function" without a function. Expected values come from SuperGradients 3.1's formulas."""

import math

import numpy as np
import pytest
import torch

from trainwright.callbacks.base import PhaseContext
from trainwright.callbacks.lr import (
    BatchStepLinearWarmupLRCallback,
    CosineLRCallback,
    EpochStepWarmupLRCallback,
    ExponentialLRCallback,
    FunctionLRCallback,
    LRScheduleFunctionError,
    PolyLRCallback,
    StepLRCallback,
)
from trainwright.callbacks.lr_registry import build_lr_callbacks
from trainwright.config import HpmStruct
from trainwright.utils import WrappedModel

L = 4  # batches per epoch


def params(**kw):
    base = dict(max_epochs=4, lr_warmup_epochs=0, lr_warmup_steps=0, lr_cooldown_epochs=0, batch_accumulate=1,
                warmup_initial_lr=None, initial_lr=1.0)
    return HpmStruct(**{**base, **kw})


class GroupwiseNet(torch.nn.Module):
    """A model with per-group LRs: group i gets lr * (i + 1); records every call."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
        self.calls = []

    def update_param_groups(self, param_groups, lr, epoch, iter, training_params, total_batch):
        self.calls.append((lr, epoch, iter, training_params, total_batch))
        for i, group in enumerate(param_groups):
            group["lr"] = lr * (i + 1)
        return param_groups


def two_group_optimizer(net):
    return torch.optim.SGD([{"params": net.a.parameters()}, {"params": net.b.parameters()}], lr=1.0)


def fire(cb, event, opt, epoch, batch_idx=None):
    getattr(cb, event)(PhaseContext(optimizer=opt, epoch=epoch, batch_idx=batch_idx))
    return [g["lr"] for g in opt.param_groups]


SCHEDULES = [
    # (class, extra kwargs, event, epoch, batch_idx, the reference's lr at that point)
    (EpochStepWarmupLRCallback, {}, "on_train_loader_start", 1, None, 0.25 + 1 * (1.0 - 0.25) / 3),
    (StepLRCallback, {"lr_updates": [1], "lr_decay_factor": 0.5}, "on_train_loader_end", 2, None, 0.5),
    (PolyLRCallback, {"max_epochs": 4}, "on_train_batch_gradient_step_end", 1, 2, (1 - 6 / 16) ** 0.9),
    (CosineLRCallback, {"max_epochs": 4, "cosine_final_lr_ratio": 0.1}, "on_train_batch_gradient_step_end", 1, 2,
     0.5 * (1 + math.cos(6 / 17 * math.pi)) * 0.9 + 0.1),
    (ExponentialLRCallback, {"lr_decay_factor": 0.5}, "on_train_batch_gradient_step_end", 1, 2, 0.5 ** (6 / 4)),
    (FunctionLRCallback, {"max_epochs": 4, "lr_schedule_function": lambda initial_lr, epoch, iter, **_: 0.1 * iter},
     "on_train_batch_gradient_step_end", 1, 2, 0.2),
]


@pytest.mark.parametrize("cls, extra, event, epoch, batch_idx, lr", SCHEDULES, ids=lambda v: getattr(v, "__name__", ""))
def test_every_schedule_hands_the_lr_to_the_models_update_param_groups(cls, extra, event, epoch, batch_idx, lr):
    net = GroupwiseNet()
    tp = params(lr_warmup_epochs=3) if cls is EpochStepWarmupLRCallback else params()
    cb = cls(initial_lr=1.0, update_param_groups=True, train_loader_len=L, net=WrappedModel(net), training_params=tp,
             **extra)
    opt = two_group_optimizer(net)
    assert fire(cb, event, opt, epoch, batch_idx) == pytest.approx([lr, 2 * lr])
    got_lr, got_epoch, got_iter, got_params, total_batch = net.calls[-1]
    assert got_lr == pytest.approx(lr) and got_epoch == epoch and got_iter == batch_idx
    assert got_params is tp and total_batch == L


def test_batch_warmup_hands_the_lr_to_the_model_too():
    net = GroupwiseNet()
    cb = BatchStepLinearWarmupLRCallback(warmup_initial_lr=0.0, initial_lr=0.3, train_loader_len=L,
                                         update_param_groups=True, lr_warmup_steps=4, training_params=params(), net=net)
    opt = two_group_optimizer(net)
    assert fire(cb, "on_train_batch_start", opt, 0, 2) == pytest.approx([0.2, 0.4])
    assert net.calls == [(pytest.approx(0.2), 0, 2, cb.training_params, L)]


def test_without_the_flag_every_group_gets_the_same_lr():
    net = GroupwiseNet()
    cb = ExponentialLRCallback(lr_decay_factor=0.5, initial_lr=1.0, update_param_groups=False, train_loader_len=L,
                               net=net, training_params=params())
    assert fire(cb, "on_train_batch_gradient_step_end", two_group_optimizer(net), 1, 0) == [0.5, 0.5]
    assert net.calls == []


def test_update_param_groups_errors_name_the_problem():
    common = dict(lr_decay_factor=0.5, initial_lr=1.0, update_param_groups=True, train_loader_len=L,
                  training_params=params())
    cb = ExponentialLRCallback(net=torch.nn.Linear(1, 1), **common)
    with pytest.raises(AttributeError, match="update_param_groups.*Linear has none"):
        fire(cb, "on_train_batch_gradient_step_end", two_group_optimizer(GroupwiseNet()), 1, 0)

    class ForgetsToReturn(GroupwiseNet):
        def update_param_groups(self, param_groups, lr, epoch, iter, training_params, total_batch):
            super().update_param_groups(param_groups, lr, epoch, iter, training_params, total_batch)

    net = ForgetsToReturn()
    opt = two_group_optimizer(net)
    with pytest.raises(TypeError, match="must return the list of param groups, got None"):
        fire(ExponentialLRCallback(net=net, **common), "on_train_batch_gradient_step_end", opt, 1, 0)
    assert len(opt.param_groups) == 2  # the optimizer keeps its groups


def test_batch_warmup_longer_than_an_epoch_is_capped_to_one_epoch_with_a_warning():
    tp = params(max_epochs=4, lr_warmup_steps=10, initial_lr=0.3, cosine_final_lr_ratio=0.1)
    with pytest.warns(UserWarning, match="lr_warmup_steps=10 is more than the 4 batches"):
        warmup = BatchStepLinearWarmupLRCallback(warmup_initial_lr=0.0, initial_lr=0.3, train_loader_len=L,
                                                 update_param_groups=False, lr_warmup_steps=10, training_params=tp,
                                                 net=None)
    assert warmup.lr_warmup_steps == L
    cosine = CosineLRCallback(max_epochs=4, cosine_final_lr_ratio=0.1, initial_lr=0.3, update_param_groups=False,
                              train_loader_len=L, net=None, training_params=tp)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
    used = []
    for g in range(16):  # the loop: batch start (warmup), the step at the current LR, then per-step schedules
        ctx = PhaseContext(optimizer=opt, epoch=g // L, batch_idx=g % L)
        warmup.on_train_batch_start(ctx)
        used.append(opt.param_groups[0]["lr"])
        cosine.on_train_batch_gradient_step_end(ctx)
    # the reference: linspace(0, 0.3, 4) over the first epoch; the cosine owns the LR from step S = 10 on
    # (the value it computes at step g is the LR of step g + 1), the LR stays at 0.3 in between
    total = L * 4 - 10
    cos = [0.5 * 0.3 * (1 + np.cos(i / (total + 1) * np.pi)) * 0.9 + 0.3 * 0.1 for i in range(16)]
    expected = list(np.linspace(0.0, 0.3, 4)) + [0.3] * 7 + [cos[g - 1 - 10] for g in range(11, 16)]
    assert used == pytest.approx(expected)


def test_step_mode_without_updates_keeps_the_initial_lr():
    cb = StepLRCallback(lr_updates=[], lr_decay_factor=0.1, initial_lr=0.2, update_param_groups=False,
                        train_loader_len=L, net=None, training_params=params())
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    assert [fire(cb, "on_train_loader_end", opt, e)[0] for e in range(4)] == [0.2] * 4
    with pytest.warns(UserWarning, match="lr_cooldown_epochs=1 has no effect"):
        StepLRCallback(lr_updates=[2], lr_decay_factor=0.1, initial_lr=0.2, update_param_groups=False,
                       train_loader_len=L, net=None, training_params=params(lr_cooldown_epochs=1))


def test_function_mode_without_a_function_is_an_assertion_and_value_error():
    tp = params(lr_mode="function", lr_schedule_function=None)
    with pytest.raises(LRScheduleFunctionError, match="lr_schedule_function.*got None") as info:
        build_lr_callbacks(tp, net=None, train_loader_len=L)
    assert isinstance(info.value, AssertionError) and isinstance(info.value, ValueError)
