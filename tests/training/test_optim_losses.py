"""Optimizers and losses by name; the loss-output convention."""

import pytest
import torch

from trainwright.training.losses import build_loss, loss_item_names, register_loss, split_loss_output
from trainwright.training.optim import build_optimizer


def model():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(), torch.nn.Linear(2, 1)
    )


@pytest.mark.parametrize(
    "name, cls",
    [
        ("SGD", torch.optim.SGD),
        ("Adam", torch.optim.Adam),
        ("AdamW", torch.optim.AdamW),
        ("RMSProp", torch.optim.RMSprop),
    ],
)
def test_optimizers_by_name(name, cls):
    opt = build_optimizer(name, model(), 0.3, {"weight_decay": 1e-4}, False)
    assert isinstance(opt, cls) and opt.param_groups[0]["lr"] == 0.3 and opt.param_groups[0]["weight_decay"] == 1e-4


def test_zero_weight_decay_on_bias_and_bn():
    m = model()
    opt = build_optimizer("sgd", m, 0.1, {"weight_decay": 5e-4, "momentum": 0.9}, True)
    no_decay, decay = opt.param_groups  # the reference's order
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(m[0].weight), id(m[3].weight)}
    assert {id(p) for p in no_decay["params"]} == {id(m[0].bias), id(m[1].weight), id(m[1].bias), id(m[3].bias)}


def test_optimizer_instance_is_used_as_is():
    m = model()
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    assert build_optimizer(opt, m, 0.1, {}, True) is opt


def test_losses_by_name_and_registry():
    assert isinstance(build_loss("mse", {}), torch.nn.MSELoss)
    assert build_loss("cross_entropy", {"label_smoothing": 0.1}).label_smoothing == 0.1

    @register_loss("twice_l1")
    class TwiceL1(torch.nn.Module):
        def forward(self, a, b):
            return 2 * (a - b).abs().mean()

    assert isinstance(build_loss("twice_l1", {}), TwiceL1)
    with pytest.raises(ValueError, match="loss='nope'"):
        build_loss("nope", {})
    with pytest.raises(TypeError, match="loss must be"):
        build_loss(3, {})


def test_loss_output_convention_and_names():
    loss, items = split_loss_output(torch.tensor(2.0, requires_grad=True))
    assert loss.requires_grad and items.tolist() == [2.0] and not items.requires_grad
    loss, items = split_loss_output((torch.tensor(3.0), torch.tensor([1.0, 2.0])))
    assert items.tolist() == [1.0, 2.0]
    with pytest.raises(TypeError, match="a loss must return"):
        split_loss_output(3.0)

    class Named(torch.nn.Module):
        component_names = ["a", "b"]

    assert loss_item_names(torch.nn.MSELoss(), 1) == ["MSELoss"]
    assert loss_item_names(Named(), 2) == ["Named/a", "Named/b"]
    assert loss_item_names(torch.nn.MSELoss(), 2) == ["MSELoss/0", "MSELoss/1"]
    with pytest.raises(ValueError, match="component_names"):
        loss_item_names(Named(), 3)


def test_yolox_loss_is_registered_by_the_model_package():
    import subprocess
    import sys

    # A fresh interpreter: building by name must not depend on anyone having imported the model first.
    code = ("from trainwright.training.losses import build_loss; "
            "print(type(build_loss('yolox_loss', {'num_classes': 3, 'strides': [8]})).__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "trainwright.models.detection.yolox_loss"
