"""SuperGradients 3.1 training parameters through Trainer.train: LR rules and the legacy EMA form."""

import pytest
from trainer_helpers import base_params, tiny_model

from trainwright import Trainer
from trainwright.callbacks.testing import TestLRCallback


def test_step_mode_without_updates_trains_at_a_constant_lr(tmp_path, loaders):
    lrs = []
    params = base_params(max_epochs=3, lr_mode="step", lr_updates=[], phase_callbacks=[TestLRCallback(lrs)])
    Trainer("step", ckpt_root_dir=tmp_path, device="cpu").train(tiny_model(), params, *loaders)
    assert lrs == [0.1, 0.1, 0.1]


def test_function_mode_without_a_function_fails_before_training(tmp_path, loaders):
    with pytest.raises(AssertionError, match="lr_schedule_function"):
        Trainer("fn", ckpt_root_dir=tmp_path, device="cpu").train(tiny_model(), base_params(lr_mode="function"),
                                                                  *loaders)
    assert not (tmp_path / "fn" / "ckpt_latest.pth").exists()


def test_batch_warmup_longer_than_an_epoch_warns_and_ends_with_the_first_epoch(tmp_path, loaders):
    lrs = []
    params = base_params(max_epochs=2, warmup_mode="linear_batch_step", lr_warmup_steps=50, warmup_initial_lr=0.0,
                         phase_callbacks=[TestLRCallback(lrs)])
    with pytest.warns(UserWarning, match="lr_warmup_steps=50 is more than the 4 batches"):
        Trainer("warm", ckpt_root_dir=tmp_path, device="cpu").train(tiny_model(), params, *loaders)
    assert lrs == pytest.approx([0.1, 0.1])  # warmed up to initial_lr within epoch 0


@pytest.mark.parametrize("exp_activation, decay_type", [(True, "exp"), (False, "constant")])
def test_legacy_ema_exp_activation_is_accepted_with_a_warning(tmp_path, loaders, exp_activation, decay_type):
    params = base_params(max_epochs=1, ema=True, ema_params={"decay": 0.9, "exp_activation": exp_activation})
    trainer = Trainer("ema", ckpt_root_dir=tmp_path, device="cpu")
    with pytest.warns(FutureWarning, match=f"exp_activation is deprecated; use decay_type: '{decay_type}'"):
        trainer.train(tiny_model(), params, *loaders)
    assert trainer.ema_model.decay_type == decay_type and trainer.ema_model.decay == 0.9
    assert (tmp_path / "ema" / "ckpt_best.pth").is_file()
