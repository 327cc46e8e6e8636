"""Resume reads through the one checkpoint reader: a broken, foreign or finished checkpoint is an error naming the
file, before anything is written."""

import pytest
import torch
from trainer_helpers import base_params, make_loaders, tiny_model

from trainwright import Trainer
from trainwright.checkpoints import CorruptCheckpointError
from trainwright.training.checkpointing import ResumeMismatchError


@pytest.fixture
def finished(tmp_path):
    """An experiment directory after a 2-epoch run: (directory, {file name: (mtime, size)})."""
    Trainer("exp", ckpt_root_dir=tmp_path, device="cpu").train(tiny_model(), base_params(), *make_loaders())
    directory = tmp_path / "exp"
    return directory


def snapshot(directory):
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in directory.iterdir()}


def resume(directory, **params):
    Trainer(directory.name, ckpt_root_dir=directory.parent, device="cpu").train(
        tiny_model(), base_params(resume=True, **params), *make_loaders())


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_a_broken_latest_checkpoint_is_named_and_nothing_is_written(finished, damage):
    latest = finished / "ckpt_latest.pth"
    data = latest.read_bytes()
    latest.write_bytes({"truncate": data[: len(data) // 2], "empty": b"", "garbage": b"not a checkpoint" * 10}[damage])
    before = snapshot(finished)
    with pytest.raises(CorruptCheckpointError) as info:
        resume(finished, max_epochs=4)
    message = str(info.value)
    assert str(latest) in message and "\n" not in message
    assert snapshot(finished) == before


def test_a_checkpoint_of_another_model_is_named(finished):
    class Wider(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x)

    before = snapshot(finished)
    with pytest.raises(ResumeMismatchError, match="cannot resume from .*ckpt_latest.pth: it does not fit"):
        Trainer("exp", ckpt_root_dir=finished.parent, device="cpu").train(
            Wider(), base_params(resume=True, max_epochs=4), *make_loaders())
    assert snapshot(finished) == before


def test_a_finished_run_has_nothing_to_resume_unless_it_is_made_longer(finished):
    with pytest.raises(ValueError, match="already finished 2 epoch\\(s\\) of max_epochs=2; raise training_params"):
        resume(finished)
    resume(finished, max_epochs=3)
    assert torch.load(finished / "ckpt_latest.pth", weights_only=True)["epoch"] == 3


def test_a_file_that_is_not_a_training_checkpoint_is_named(finished, tmp_path):
    weights_only = tmp_path / "weights.pth"
    torch.save({"state_dict": tiny_model().state_dict()}, weights_only)
    with pytest.raises(CorruptCheckpointError, match="weights.pth: it is not a training checkpoint"):
        resume(finished, max_epochs=4, resume_path=str(weights_only))
