import functools
import pickle

import pytest
import torch
from torch import nn

from trainwright.nn.activations import get_builtin_activation_type

ACTIVATIONS = ["ReLU", "ReLU6", "SiLU", "GELU", "Mish", "Hardswish", "Sigmoid", "Tanh", "ELU", "LeakyReLU",
               "PReLU", "Softplus", "Hardsigmoid", "LogSigmoid", "Identity"]


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_names_and_lower_case_names(name):
    cls = getattr(nn, name)
    assert get_builtin_activation_type(name) is cls
    assert get_builtin_activation_type(name.lower()) is cls


def test_aliases_none_and_classes():
    assert get_builtin_activation_type("leaky_relu") is nn.LeakyReLU
    assert get_builtin_activation_type("swish") is nn.SiLU
    assert get_builtin_activation_type(None) is nn.Identity
    assert get_builtin_activation_type(nn.GELU) is nn.GELU


def test_kwargs_are_bound():
    act_type = get_builtin_activation_type("LeakyReLU", negative_slope=0.2, inplace=True)
    act = act_type()
    assert isinstance(act, nn.LeakyReLU) and act.negative_slope == 0.2 and act.inplace
    x = torch.tensor([-1.0, 2.0])
    assert torch.equal(act(x.clone()), torch.tensor([-0.2, 2.0]))
    assert pickle.loads(pickle.dumps(act_type))().negative_slope == 0.2
    assert isinstance(act_type, functools.partial)


def test_unknown_kwarg_is_reported_now():
    with pytest.raises(TypeError, match=r"LeakyReLU does not accept \['slope'\]"):
        get_builtin_activation_type("LeakyReLU", slope=0.01)


def test_unknown_name_lists_the_closest():
    with pytest.raises(ValueError, match="'Relu6x'.*closest names:.*ReLU6"):
        get_builtin_activation_type("Relu6x")
    with pytest.raises(TypeError, match="got int"):
        get_builtin_activation_type(3)
