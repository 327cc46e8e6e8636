"""ModelConversionCheckCallback through Trainer.train: a convertible model trains; one that is not stops before
the first training step with an error that names the model and the problem."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from trainwright.callbacks.base import Callback
from trainwright.training import Trainer
from trainwright.utils import ModelConversionCheckCallback

pytest.importorskip("onnxruntime")


class SmallNet(torch.nn.Module):
    """[B, 4] -> [B, 2] with BatchNorm."""

    def __init__(self, head: torch.nn.Module | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.bn, self.fc2 = torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2)
        self.head = head or torch.nn.Identity()

    def forward(self, x):
        return self.head(self.fc2(torch.relu(self.bn(self.fc1(x)))))


class _Doubled(torch.autograd.Function):
    """Doubles in PyTorch but exports as Identity: an ONNX graph that computes something else."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def symbolic(g, x):
        return g.op("Identity", x)


class WrongExport(torch.nn.Module):
    def forward(self, x):
        return _Doubled.apply(x)


class NotExportable(torch.nn.Module):
    def forward(self, x):  # no ONNX symbolic exists for eigvalsh
        return torch.cat([x, torch.linalg.eigvalsh(x[:, :, None] @ x[:, None, :])], dim=1)


class StepCounter(Callback):
    def __init__(self):
        self.batches = 0

    def on_train_batch_start(self, context):
        self.batches += 1


def _train(tmp_path, model, callback):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, generator=g)
    data = TensorDataset(x, (x[:, 0] > 0).long())
    counter = StepCounter()
    params = {"max_epochs": 1, "initial_lr": 0.1, "loss": "cross_entropy", "silent_mode": True,
              "phase_callbacks": [callback, counter], "sg_logger": "null"}
    trainer = Trainer("conversion", ckpt_root_dir=tmp_path, device="cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        trainer.train(model, params, DataLoader(data, batch_size=8), DataLoader(data, batch_size=8))
    finally:
        changed = any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    return counter.batches, changed


def test_a_convertible_model_is_checked_then_trains(tmp_path):
    callback = ModelConversionCheckCallback("small_net", (4,), 3, opset_version=13)
    batches, changed = _train(tmp_path, SmallNet(), callback)
    assert batches == 2 and changed
    assert callback.max_abs_diff is not None and callback.max_abs_diff < 1e-5
    assert not list(tmp_path.rglob("*.onnx"))  # the temporary file is gone


def test_onnx_output_that_differs_stops_training_before_any_step(tmp_path):
    model = SmallNet(head=WrongExport())
    with pytest.raises(RuntimeError, match=r"wrong_head failed the ONNX conversion check.*differ") as info:
        _train(tmp_path, model, ModelConversionCheckCallback("wrong_head", [4], 2))
    assert "training did not start" in str(info.value)


def test_a_model_that_cannot_be_converted_stops_training_before_any_step(tmp_path):
    counter_model = SmallNet(head=NotExportable())
    with pytest.raises(RuntimeError, match=r"eig_net failed the ONNX conversion check.*eigvalsh"):
        _train(tmp_path, counter_model, ModelConversionCheckCallback("eig_net", [4], 2))


def test_no_training_step_and_weights_untouched_after_a_failed_check(tmp_path):
    model = SmallNet(head=WrongExport())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    counter = StepCounter()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, generator=g)
    loader = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=4)
    params = {"max_epochs": 1, "initial_lr": 0.1, "loss": "cross_entropy", "silent_mode": True, "sg_logger": "null",
              "phase_callbacks": [ModelConversionCheckCallback("wrong_head", [4], 2), counter]}
    with pytest.raises(RuntimeError):
        Trainer("failed", ckpt_root_dir=tmp_path, device="cpu").train(model, params, loader, loader)
    assert counter.batches == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("args, kwargs, named", [
    (("../up", (4,), 1), {}, "'../up'"),
    (("m", (0, 4), 1), {}, "input_dimensions"),
    (("m", (4,), 0), {}, "primary_batch_size"),
    (("m", (4,), 1), {"opset": 11}, "['opset']"),
])
def test_bad_arguments_are_named(args, kwargs, named):
    with pytest.raises((ValueError, TypeError), match=named.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        ModelConversionCheckCallback(*args, **kwargs)
