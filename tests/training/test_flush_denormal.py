"""Trainer's flush_denormal parameter: on CPU denormal floats are flushed to zero unless told otherwise."""

import pytest
import torch
from trainer_helpers import base_params, make_loaders, tiny_model

from trainwright import Trainer

DENORMAL = 1e-39  # below float32's smallest normal number (1.18e-38)


def flushes() -> bool:
    return torch.tensor([DENORMAL], dtype=torch.float32).mul(1.0).item() == 0.0


@pytest.fixture
def denormals_kept():
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    yield
    torch.set_flush_denormal(True)


@pytest.mark.parametrize(("value", "flushed"), [(None, True), (True, True), (False, False)])
def test_training_on_cpu_flushes_denormals_unless_turned_off(tmp_path, denormals_kept, value, flushed):
    assert not flushes()
    Trainer("flush", ckpt_root_dir=tmp_path, device="cpu").train(
        tiny_model(), base_params(max_epochs=1, flush_denormal=value), *make_loaders(n=8))
    assert flushes() == flushed
