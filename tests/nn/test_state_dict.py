import logging

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from trainwright.nn.state_dict import (
    StrictLoad,
    adapt_state_dict_to_fit_model_layer_names,
    adaptive_load_state_dict,
    raise_informative_runtime_error,
    transfer_weights,
)


class Tiny(nn.Module):
    def __init__(self, num_classes=3, width=4):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3), nn.BatchNorm2d(width))
        self.head = nn.Linear(width, num_classes)


def _random_state(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen).to(v.dtype) for k, v in model.state_dict().items()}


def _assert_loaded(model, state):
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def _renamed(state, prefix="renamed."):
    return {prefix + k.replace(".", "_"): v for k, v in state.items()}


@pytest.mark.parametrize("strict", list(StrictLoad))
def test_every_mode_loads_an_exact_match(strict):
    model, state = Tiny(), _random_state(Tiny())
    adaptive_load_state_dict(model, {"net": state}, strict)
    _assert_loaded(model, state)


def test_on_refuses_other_names_and_says_how_to_load():
    model, state = Tiny(), _random_state(Tiny())
    with pytest.raises(RuntimeError) as info:
        adaptive_load_state_dict(model, _renamed(state), StrictLoad.ON, source="weights.pth")
    message = str(info.value)
    assert "weights.pth" in message
    assert "missing keys (9): backbone.0.weight, backbone.0.bias, backbone.1.weight" in message
    assert "... (9 in all)" in message and "unexpected keys (9): renamed.backbone_0_weight" in message
    assert "StrictLoad.NO_KEY_MATCHING" in message


def test_no_key_matching_pairs_by_order_and_shape():
    model, state = Tiny(), _random_state(Tiny())
    adaptive_load_state_dict(model, _renamed(state), StrictLoad.NO_KEY_MATCHING)
    _assert_loaded(model, state)


def test_no_key_matching_reports_shape_mismatch_with_both_shapes():
    model = Tiny(num_classes=3)
    state = _random_state(Tiny(num_classes=5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError) as info:
        adaptive_load_state_dict(model, state, "no_key_matching", source="c5.pth")
    message = str(info.value)
    assert "c5.pth" in message and "shape mismatches (2)" in message
    assert "head.weight: checkpoint [5, 4] vs model [3, 4]" in message
    assert "head.bias: checkpoint [5] vs model [3]" in message
    assert "transfer_weights()" in message
    _assert_loaded(model, before)  # nothing was half-loaded


def test_off_loads_what_is_there_and_logs_the_rest(caplog):
    model = Tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = _random_state(Tiny())
    partial = {k: v for k, v in state.items() if k.startswith("backbone")}
    partial["extra.weight"] = torch.zeros(1)
    with caplog.at_level(logging.WARNING):
        adaptive_load_state_dict(model, partial, False)
    assert "missing keys (2): head.weight, head.bias" in caplog.text and "extra.weight" in caplog.text
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in partial if k in loaded)
    assert torch.equal(loaded["head.weight"], before["head.weight"])


def test_off_still_refuses_shape_mismatch():
    with pytest.raises(RuntimeError, match=r"head.weight: checkpoint \[5, 4\] vs model \[3, 4\]"):
        adaptive_load_state_dict(Tiny(3), _random_state(Tiny(5)), StrictLoad.OFF)


def test_key_matching_strips_ddp_and_compile_prefixes():
    model, state = Tiny(), _random_state(Tiny())
    wrapped = {f"module._orig_mod.{k}": v for k, v in state.items()}
    adaptive_load_state_dict(model, wrapped, StrictLoad.KEY_MATCHING)
    _assert_loaded(model, state)
    with pytest.raises(RuntimeError, match="missing keys"):
        adaptive_load_state_dict(model, _renamed(state), "key_matching")


def test_strict_values_accepted_and_rejected():
    model, state = Tiny(), _random_state(Tiny())
    for strict in (True, "ON", "off", "NO_KEY_MATCHING"):
        adaptive_load_state_dict(model, state, strict)
    with pytest.raises(ValueError, match="strict must be.*'maybe'"):
        adaptive_load_state_dict(model, state, "maybe")


def test_adapt_returns_renamed_checkpoint_in_model_order():
    model_sd = Tiny().state_dict()
    state = _random_state(Tiny())
    checkpoint = {"net": _renamed(state), "epoch": 4}
    adapted = adapt_state_dict_to_fit_model_layer_names(model_sd, checkpoint)
    assert adapted["epoch"] == 4 and list(adapted["net"]) == list(model_sd)
    assert all(torch.equal(adapted["net"][k], state[k]) for k in model_sd)
    bare = adapt_state_dict_to_fit_model_layer_names(model_sd, _renamed(state))
    assert list(bare) == list(model_sd)


def test_adapt_fails_on_count_or_shape():
    model_sd = Tiny(3).state_dict()
    state = _renamed(_random_state(Tiny(3)))
    assert adapt_state_dict_to_fit_model_layer_names(model_sd, dict(list(state.items())[:-1])) is None
    assert adapt_state_dict_to_fit_model_layer_names(model_sd, _renamed(_random_state(Tiny(5)))) is None


def test_adapt_exclude_keeps_the_model_values():
    model_sd = Tiny(3).state_dict()
    state = _random_state(Tiny(5))
    adapted = adapt_state_dict_to_fit_model_layer_names(model_sd, state, exclude=["head"])
    assert torch.equal(adapted["head.weight"], model_sd["head.weight"])
    assert torch.equal(adapted["backbone.0.weight"], state["backbone.0.weight"])


def test_adapt_solver_reshapes_each_pair():
    model_sd = Tiny(3).state_dict()
    state = _random_state(Tiny(5))
    calls = []

    def solver(ckpt_key, ckpt_val, model_key, model_val):
        calls.append((ckpt_key, model_key))
        return ckpt_val[: model_val.shape[0]] if ckpt_val.shape != model_val.shape else ckpt_val

    adapted = adapt_state_dict_to_fit_model_layer_names(model_sd, state, solver=solver)
    assert len(calls) == len(model_sd) and calls[0] == ("backbone.0.weight", "backbone.0.weight")
    assert torch.equal(adapted["head.weight"], state["head.weight"][:3])
    model = Tiny(3)
    adaptive_load_state_dict(model, _renamed(state), StrictLoad.NO_KEY_MATCHING, solver=solver)
    assert torch.equal(model.head.bias, state["head.bias"][:3])


def test_raise_informative_runtime_error_always_raises():
    model_sd = Tiny().state_dict()
    with pytest.raises(RuntimeError, match="^boom$"):
        raise_informative_runtime_error(model_sd, {"net": dict(model_sd)}, "boom")
    with pytest.raises(RuntimeError, match="boom\n  missing keys"):
        raise_informative_runtime_error(model_sd, {"x": torch.zeros(1)}, ValueError("boom"))


def test_transfer_weights_copies_what_fits_and_reports_the_rest(caplog):
    model = Tiny(3)
    head_before = model.head.weight.detach().clone()
    state = _random_state(Tiny(5))
    state["unknown.weight"] = torch.zeros(2)
    with caplog.at_level(logging.WARNING):
        report = transfer_weights(model, {"net": state})
    assert torch.equal(model.backbone[0].weight, state["backbone.0.weight"])
    assert torch.equal(model.head.weight, head_before)
    assert [k for k, _, _ in report.shape_mismatch] == ["head.weight", "head.bias"]
    assert report.shape_mismatch[0][1:] == ((5, 4), (3, 4))
    assert report.not_in_model == ["unknown.weight"] and report.not_in_checkpoint == []
    assert len(report.loaded) == 7 and "head.weight" in caplog.text and "loaded 7 tensors" in str(report)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=5), st.text("abc_", min_size=1, max_size=6))
def test_renaming_then_adapting_roundtrips(widths, prefix):
    layers = [nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
    model = nn.Sequential(*layers)
    state = _random_state(model)
    adapted = adapt_state_dict_to_fit_model_layer_names(model.state_dict(), _renamed(state, prefix))
    assert list(adapted) == list(state) and all(torch.equal(adapted[k], state[k]) for k in state)
