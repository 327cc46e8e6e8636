"""get_param / recursive_override and the counting views' get_all_params, as SuperGradients 3.1 defines them."""

import pytest
from omegaconf import OmegaConf

from trainwright.config import ConfigInspector, HpmStruct, UnusedConfigParamException, raise_if_unused_params
from trainwright.utils import AccessCounterDict, AccessCounterHpmStruct, get_param, recursive_override


def test_get_param_exact_then_ignoring_case_and_separators():
    params = {"optimizer_params": {"lr": 1e-4}, "batch": 32, "Max-Epochs": 3}
    assert get_param(params, "batch") == 32
    assert get_param(params, "OptimizerParams") == {"lr": 1e-4}
    assert get_param(params, "max_epochs") == 3
    assert get_param(params, "missing") is None
    assert get_param(params, "missing", default_val=7) == 7


def test_get_param_fills_a_mapping_default_with_the_found_keys():
    # the reference's documented example
    default_opt_params = {"lr": 0.1, "momentum": 0.99, "alpha": 0.001}
    training_params = {"optimizer_params": {"lr": 0.0001}, "batch": 32}
    got = get_param(training_params, name="OptimizerParams", default_val=default_opt_params)
    assert got == {"lr": 0.0001, "momentum": 0.99, "alpha": 0.001}
    assert default_opt_params == {"lr": 0.1, "momentum": 0.99, "alpha": 0.001}  # the default is not modified
    assert get_param({}, "optimizer_params", default_opt_params) == default_opt_params
    assert get_param({"optimizer_params": None}, "optimizer_params", default_opt_params) == default_opt_params
    with pytest.raises(TypeError, match="'optimizer_params' is 3"):
        get_param({"optimizer_params": 3}, "optimizer_params", default_opt_params)


def test_get_param_reads_hpmstruct_omegaconf_and_plain_objects():
    assert get_param(HpmStruct(lr_mode="cosine"), "LR_Mode") == "cosine"
    assert get_param(OmegaConf.create({"warmup_mode": "linear_epoch_step"}), "warmupMode") == "linear_epoch_step"

    class Params:
        initial_lr = 0.5

    assert get_param(Params(), "initial_lr") == 0.5
    assert get_param(Params(), "InitialLR") == 0.5
    assert get_param(Params(), "other", "x") == "x"
    assert get_param(None, "anything", 1) == 1


def test_recursive_override_merges_nested_mappings_in_place():
    base = {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "b": [1, 2], "c": 3}
    assert recursive_override(base, {"a": {"y": {"q": 5}, "z": 0}, "b": [3], "d": {"k": 1}}) is None
    assert base == {"a": {"x": 1, "y": {"p": 1, "q": 5}, "z": 0}, "b": [3], "c": 3, "d": {"k": 1}}
    base = {"a": {"x": 1}}
    recursive_override(base, {"a": 2})  # a mapping replaced by a scalar, as asked
    assert base == {"a": 2}


def test_hpmstruct_override_agrees_with_recursive_override():
    nested = {"ema_params": {"decay": 0.9, "beta": 15}, "lr": 0.1}
    hpm = HpmStruct(**{k: (dict(v) if isinstance(v, dict) else v) for k, v in nested.items()})
    hpm.override(ema_params={"decay": 0.99})
    recursive_override(nested, {"ema_params": {"decay": 0.99}})
    assert hpm.to_dict(include_schema=False) == nested


def test_get_all_params_lists_every_path_and_unused_is_all_minus_used():
    config = {"model": {"depth": 3, "blocks": [{"width": 8}, {"width": 16}]}, "lr": 0.1, "tags": ["a", "b"]}
    view = AccessCounterDict(config)
    everything = view.get_all_params()
    assert {"model", "model.depth", "model.blocks", "lr", "tags"} <= everything
    assert all(p.startswith("model.blocks") for p in everything if "width" in p) and len(everything) == 9
    _ = view["model"]["depth"]
    _ = view.lr
    assert view.get_unused_params() == everything - view.get_used_params()
    assert "model.depth" not in view.get_unused_params() and "tags" in view.get_unused_params()
    nested = view["model"]
    assert isinstance(nested, AccessCounterDict)
    assert nested.get_all_params() == {p for p in everything if p.startswith("model.")}


def test_access_counter_hpmstruct_excludes_the_schema_and_shares_counts():
    hpm = HpmStruct(lr=0.1, optimizer_params={"momentum": 0.9})
    hpm.set_schema({"required": ["lr"]})
    view = AccessCounterHpmStruct(hpm)
    assert view.get_all_params() == {"lr", "optimizer_params", "optimizer_params.momentum"}
    assert view.lr == 0.1
    assert view.get_unused_params() == {"optimizer_params", "optimizer_params.momentum"}
    # a second view built on the same count, under the reference's dotted prefix
    inner = AccessCounterDict(hpm.optimizer_params, access_counter=view.access_counter, prefix="optimizer_params.")
    assert inner.get_all_params() == {"optimizer_params.momentum"}
    assert inner["momentum"] == 0.9
    assert view.get_unused_params() == {"optimizer_params"}
    with pytest.raises(TypeError, match="HpmStruct"):
        AccessCounterHpmStruct({"lr": 0.1})
    with pytest.raises(TypeError, match="access_counter"):
        AccessCounterDict({}, access_counter={"lr": 1})


def test_a_view_drives_the_unused_parameter_check():
    with pytest.raises(UnusedConfigParamException, match="tags"):
        with ConfigInspector(AccessCounterDict({"lr": 0.1, "tags": []}), "raise") as cfg:
            assert cfg.get_all_params() == {"lr", "tags"}
            _ = cfg["lr"]


def test_the_unused_parameter_message_starts_with_the_reference_sentence_and_uses_dotted_indices():
    cfg = {"layers": [{"k": 3}, {"k": 5}], "lr": 0.1, "lr_wramup": 1}
    with pytest.raises(UnusedConfigParamException) as info:
        with raise_if_unused_params(cfg) as view:
            _ = view["lr"], view["layers"][1]["k"], view.get("lr_warmup")
    message = str(info.value)
    assert message.startswith(
        "Detected unused parameters in configuration object that were not consumed by caller: layers.0, lr_wramup"
    )
    assert "lr_wramup  (did you mean 'lr_warmup'?)" in message
    assert info.value.unused_params == ["layers.0", "lr_wramup"]
