"""Tensor, model and environment helpers of the SuperGradients 3.1 utilities, as it defines them."""

import logging
import random
from collections import namedtuple

import numpy as np
import pytest
import torch

from trainwright.utils import (
    WrappedModel,
    check_models_have_same_weights,
    convert_to_tensor,
    random_seed,
    tensor_container_to_device,
    torch_version_is_greater_or_equal,
)


def test_convert_to_tensor_copies_lists_and_arrays_to_float32_and_keeps_tensors():
    t = torch.arange(3)
    assert convert_to_tensor(t) is t
    array = np.array([[1, 2], [3, 4]], dtype=np.float64)
    out = convert_to_tensor(array)
    assert out.dtype == torch.float32 and out.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    array[0, 0] = 9  # no shared memory
    assert out[0, 0] == 1
    assert convert_to_tensor([0.5, 1]).tolist() == [0.5, 1.0]


def test_tensor_container_to_device_keeps_the_structure():
    Pair = namedtuple("Pair", "a b")
    obj = {"x": torch.ones(2), "y": [torch.zeros(1), (torch.ones(1), "text")], "p": Pair(torch.ones(1), 3), "n": None}
    moved = tensor_container_to_device(obj, "cpu")
    assert set(moved) == {"x", "y", "p", "n"}
    assert isinstance(moved["y"], list) and isinstance(moved["y"][1], tuple) and moved["y"][1][1] == "text"
    assert isinstance(moved["p"], Pair) and moved["p"].b == 3 and moved["n"] is None
    assert torch.equal(moved["x"], obj["x"])
    meta = tensor_container_to_device([torch.ones(2)], torch.device("meta"))
    assert meta[0].device.type == "meta"


def test_wrapped_model_forwards_and_prefixes_state_dict_keys():
    inner = torch.nn.Linear(2, 1)
    wrapped = WrappedModel(inner)
    x = torch.randn(3, 2)
    assert torch.equal(wrapped(x), inner(x))
    assert list(wrapped.state_dict()) == ["module.weight", "module.bias"]
    assert wrapped.module is inner
    with pytest.raises(TypeError, match="nn.Module"):
        WrappedModel(lambda x: x)


def test_check_models_have_same_weights(caplog):
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    b = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    b.load_state_dict(a.state_dict())
    assert check_models_have_same_weights(a, b)
    with torch.no_grad():
        b[0].bias[0] += 1e-6
    with caplog.at_level(logging.INFO, logger="trainwright"):
        assert not check_models_have_same_weights(a, b)
    assert "0.bias" in caplog.text
    assert not check_models_have_same_weights(a, torch.nn.Sequential(torch.nn.Linear(2, 2)))  # fewer layers


def test_random_seed_seeds_every_generator_with_seed_plus_rank():
    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    random_seed(False, "cpu", 7)
    first = draws()
    random_seed(False, "cuda:3", 7)  # no DDP: rank 0 whatever the device
    assert draws() == first
    random_seed(True, "cuda:3", 4)  # DDP: rank = device index, so seed 4 + 3
    assert draws() == first
    random_seed(True, "cuda:2", 4)
    assert draws() != first
    with pytest.raises(TypeError, match="seed"):
        random_seed(False, "cpu", "7")


def test_torch_version_is_greater_or_equal():
    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    assert torch_version_is_greater_or_equal(major, minor)
    assert torch_version_is_greater_or_equal(1, 10)
    assert not torch_version_is_greater_or_equal(major, minor + 1)
    assert not torch_version_is_greater_or_equal(major + 1, 0)
