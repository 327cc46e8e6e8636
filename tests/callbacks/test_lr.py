"""LR schedules against sequences computed by hand from the documented formulas."""

import math
import warnings

import pytest
import torch

from trainwright.callbacks.base import Phase, PhaseContext
from trainwright.callbacks.lr import (
    BatchStepLinearWarmupLRCallback,
    CosineLRCallback,
    EpochStepWarmupLRCallback,
    ExponentialLRCallback,
    FunctionLRCallback,
    IllegalLRSchedulerMetric,
    LinearStepWarmupLRCallback,
    LRSchedulerCallback,
    PolyLRCallback,
    StepLRCallback,
)
from trainwright.callbacks.lr_registry import build_lr_callbacks
from trainwright.config import HpmStruct


def make(max_epochs=4, **kw):
    base = dict(
        max_epochs=max_epochs,
        lr_warmup_epochs=0,
        lr_warmup_steps=0,
        lr_cooldown_epochs=0,
        batch_accumulate=1,
        warmup_initial_lr=None,
    )
    base.update(kw)
    return HpmStruct(**base)


def optimizer(lr=1.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def fire(cb, event, opt, epoch, batch_idx=None):
    getattr(cb, event)(PhaseContext(optimizer=opt, epoch=epoch, batch_idx=batch_idx))
    return opt.param_groups[0]["lr"]


def common(tp, lr=1.0, loader_len=2):
    return dict(initial_lr=lr, update_param_groups=False, train_loader_len=loader_len, net=None, training_params=tp)


def test_epoch_warmup_default_start_is_lr_over_w_plus_one():
    tp = make(lr_warmup_epochs=3)
    cb = EpochStepWarmupLRCallback(**common(tp, lr=0.1))
    opt = optimizer(0.1)
    got = [fire(cb, "on_train_loader_start", opt, e) for e in range(5)]
    assert got == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1])
    assert cb.phase is Phase.TRAIN_EPOCH_START


def test_epoch_warmup_from_given_initial_lr_and_leaves_later_epochs_alone():
    tp = make(lr_warmup_epochs=2, warmup_initial_lr=0.01)
    cb = EpochStepWarmupLRCallback(**common(tp, lr=0.1))
    opt = optimizer(0.1)
    assert [fire(cb, "on_train_loader_start", opt, e) for e in range(3)] == pytest.approx([0.01, 0.055, 0.1])
    opt.param_groups[0]["lr"] = 0.5
    assert fire(cb, "on_train_loader_start", opt, 3) == 0.5


def test_deprecated_alias_warns_and_behaves_the_same():
    tp = make(lr_warmup_epochs=3)
    with pytest.warns(FutureWarning, match="EpochStepWarmupLRCallback"):
        cb = LinearStepWarmupLRCallback(**common(tp, lr=0.1))
    assert isinstance(cb, EpochStepWarmupLRCallback)
    assert fire(cb, "on_train_loader_start", optimizer(), 1) == pytest.approx(0.05)


def test_batch_warmup_over_explicit_steps():
    tp = make()
    cb = BatchStepLinearWarmupLRCallback(
        warmup_initial_lr=0.0,
        initial_lr=0.1,
        train_loader_len=6,
        update_param_groups=False,
        lr_warmup_steps=5,
        training_params=tp,
        net=None,
    )
    opt = optimizer(0.1)
    opt.param_groups[0]["lr"] = 0.5
    got = [fire(cb, "on_train_batch_start", opt, e, b) for e in range(2) for b in range(6)]
    assert got == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1] + [0.1] * 7)


def test_batch_warmup_steps_default_to_warmup_epochs_times_loader_len():
    tp = make(lr_warmup_epochs=1)
    cb = BatchStepLinearWarmupLRCallback(
        warmup_initial_lr=0.02,
        initial_lr=0.1,
        train_loader_len=3,
        update_param_groups=False,
        lr_warmup_steps=0,
        training_params=tp,
        net=None,
    )
    opt = optimizer(0.1)
    assert [fire(cb, "on_train_batch_start", opt, 0, b) for b in range(3)] == pytest.approx([0.02, 0.06, 0.1])


def test_step_lr_with_explicit_updates():
    cb = StepLRCallback(lr_updates=[2, 4], lr_decay_factor=0.1, **common(make(max_epochs=6)))
    opt = optimizer()
    got = [fire(cb, "on_train_loader_end", opt, e) for e in range(6)]
    assert got == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_step_lr_update_freq_builds_milestones():
    cb = StepLRCallback(step_lr_update_freq=2.5, lr_decay_factor=0.5, **common(make(max_epochs=10)))
    assert cb.lr_updates == [3, 5, 8]
    with pytest.raises(ValueError, match="mutually exclusive"):
        StepLRCallback(lr_updates=[1], step_lr_update_freq=2, lr_decay_factor=0.5, **common(make()))


def test_poly():
    cb = PolyLRCallback(max_epochs=2, **common(make(max_epochs=2)))
    opt = optimizer()
    got = [fire(cb, "on_train_batch_gradient_step_end", opt, e, b) for e in range(2) for b in range(2)]
    # I = 2 * 2 = 4 steps; lr = (1 - i/4) ** 0.9
    assert got == pytest.approx([1.0, 0.75**0.9, 0.5**0.9, 0.25**0.9])


def test_poly_counts_accumulated_steps():
    cb = PolyLRCallback(max_epochs=2, **common(make(max_epochs=2, batch_accumulate=2)))
    # i = 3/2, I = 4/2 -> (1 - 0.75) ** 0.9, independent of A: the ratio is what matters
    assert fire(cb, "on_train_batch_gradient_step_end", optimizer(), 1, 1) == pytest.approx(0.25**0.9)


def test_cosine_hand_values():
    cb = CosineLRCallback(max_epochs=2, cosine_final_lr_ratio=0.1, **common(make(max_epochs=2)))
    opt = optimizer()
    got = [fire(cb, "on_train_batch_gradient_step_end", opt, e, b) for e in range(2) for b in range(2)]
    # I = 4: lr(i) = 0.5 * (1 + cos(pi * i / 5)) * 0.9 + 0.1; cos(pi/5) = 0.809017, cos(2pi/5) = 0.309017
    assert got == pytest.approx([1.0, 0.91405765, 0.68905765, 0.41094235], abs=1e-7)
    assert cb.compute_learning_rate(4, 4, 1.0, 0.1) == pytest.approx(0.18594235, abs=1e-7)


def test_cosine_waits_for_epoch_warmup_and_counts_from_its_end():
    cb = CosineLRCallback(max_epochs=3, cosine_final_lr_ratio=0.0, **common(make(max_epochs=3, lr_warmup_epochs=1)))
    opt = optimizer(0.3)
    assert fire(cb, "on_train_batch_gradient_step_end", opt, 0, 1) == 0.3  # still warming up
    # epoch 1 is step 0 of I = 2 * (3 - 1) = 4
    assert fire(cb, "on_train_batch_gradient_step_end", opt, 1, 0) == pytest.approx(1.0)
    assert fire(cb, "on_train_batch_gradient_step_end", opt, 1, 1) == pytest.approx(0.5 * (1 + math.cos(math.pi / 5)))


def test_cosine_after_batch_warmup_steps():
    cb = CosineLRCallback(max_epochs=2, cosine_final_lr_ratio=0.0, **common(make(max_epochs=2, lr_warmup_steps=1)))
    opt = optimizer(0.3)
    assert fire(cb, "on_train_batch_gradient_step_end", opt, 0, 0) == 0.3  # step 0 < S
    # I = 2*2 - 1 = 3; step (0,1) -> i = 0; step (1,1) -> i = 2: 0.5 * (1 + cos(pi * 2 / 4)) = 0.5
    assert fire(cb, "on_train_batch_gradient_step_end", opt, 0, 1) == pytest.approx(1.0)
    assert fire(cb, "on_train_batch_gradient_step_end", opt, 1, 1) == pytest.approx(0.5)


def test_exponential():
    cb = ExponentialLRCallback(lr_decay_factor=0.5, **common(make(max_epochs=3)))
    opt = optimizer()
    got = [fire(cb, "on_train_batch_gradient_step_end", opt, e, b) for e in range(2) for b in range(2)]
    assert got == pytest.approx([1.0, 0.70710678, 0.5, 0.35355339])


def test_main_schedules_stop_in_cooldown():
    cb = ExponentialLRCallback(lr_decay_factor=0.5, **common(make(max_epochs=3, lr_cooldown_epochs=1)))
    opt = optimizer(0.123)
    assert fire(cb, "on_train_batch_gradient_step_end", opt, 2, 0) == 0.123


def test_function_gets_effective_epoch_and_iters():
    seen = []

    def fn(initial_lr, epoch, iter, max_epoch, iters_per_epoch):
        seen.append((initial_lr, epoch, iter, max_epoch, iters_per_epoch))
        return initial_lr / (1 + epoch * iters_per_epoch + iter)

    cb = FunctionLRCallback(max_epochs=5, lr_schedule_function=fn, **common(make(max_epochs=5, lr_warmup_epochs=1)))
    opt = optimizer()
    assert fire(cb, "on_train_batch_gradient_step_end", opt, 2, 1) == pytest.approx(1 / 4)
    assert seen == [(1.0, 1, 1, 4, 2)]
    with pytest.raises(TypeError, match="callable"):
        FunctionLRCallback(max_epochs=5, lr_schedule_function=3, **common(make()))


def test_update_param_groups_delegates_to_the_model():
    class Net(torch.nn.Module):
        def update_param_groups(self, param_groups, lr, epoch, iter, training_params, total_batch):
            for i, g in enumerate(param_groups):
                g["lr"] = lr * (i + 1)
            return param_groups

    net = Net()
    opt = torch.optim.SGD(
        [{"params": [torch.nn.Parameter(torch.zeros(1))]}, {"params": [torch.nn.Parameter(torch.zeros(1))]}], lr=1.0
    )
    cb = ExponentialLRCallback(
        lr_decay_factor=0.5,
        initial_lr=1.0,
        update_param_groups=True,
        train_loader_len=1,
        net=net,
        training_params=make(),
    )
    fire(cb, "on_train_batch_gradient_step_end", opt, 1, 0)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5, 1.0])


def test_torch_scheduler_callback_and_plateau_metric():
    opt = optimizer()
    cb = LRSchedulerCallback(torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5), Phase.TRAIN_EPOCH_END)
    opt.step()  # torch warns when a scheduler steps before its optimizer
    ctx = PhaseContext(optimizer=opt, epoch=0, lr_warmup_epochs=1)
    cb.on_train_loader_end(ctx)
    assert opt.param_groups[0]["lr"] == 1.0  # during warmup the scheduler is not stepped
    ctx.epoch = 1
    cb.on_train_loader_end(ctx)
    assert opt.param_groups[0]["lr"] == 0.5

    opt = optimizer()
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=0)
    cb = LRSchedulerCallback(plateau, "VALIDATION_EPOCH_END", metric_name="loss")
    for value in (1.0, 2.0):
        cb.on_validation_loader_end(PhaseContext(optimizer=opt, epoch=0, metrics_dict={"loss": value}))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    with pytest.raises(IllegalLRSchedulerMetric, match="'acc'"):
        LRSchedulerCallback(plateau, Phase.VALIDATION_EPOCH_END, "acc").on_validation_loader_end(
            PhaseContext(epoch=0, metrics_dict={"loss": 1.0})
        )


def test_registry_builds_schedule_then_warmup_by_name():
    tp = make(
        max_epochs=4,
        lr_mode="cosine",
        initial_lr=0.1,
        cosine_final_lr_ratio=0.01,
        lr_warmup_epochs=1,
        warmup_mode="linear_epoch_step",
        lr_updates=[],
        lr_decay_factor=0.1,
        step_lr_update_freq=None,
    )
    cbs = build_lr_callbacks(tp, net=None, train_loader_len=3)
    assert [type(c) for c in cbs] == [CosineLRCallback, EpochStepWarmupLRCallback]
    tp.override(lr_mode="CosineLRScheduler", warmup_mode="linear_batch_step")
    assert [type(c) for c in build_lr_callbacks(tp, None, 3)] == [CosineLRCallback, BatchStepLinearWarmupLRCallback]
    tp.override(lr_mode="nope")
    with pytest.raises(ValueError, match="lr_mode='nope'"):
        build_lr_callbacks(tp, None, 3)
    tp.override(lr_mode=None, lr_warmup_epochs=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build_lr_callbacks(tp, None, 3) == []
