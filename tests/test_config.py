import copy
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from trainwright.config import (
    AccessCounterDict,
    AccessCounterList,
    ConfigInspector,
    HpmStruct,
    UnusedConfigParamException,
    raise_if_unused_params,
    warn_if_unused_params,
)

# --- HpmStruct ----------------------------------------------------------------------------------------------


def test_hpmstruct_attribute_and_item_access():
    hpm = HpmStruct(lr=0.1, epochs=3)
    assert hpm.lr == 0.1 and hpm["epochs"] == 3
    hpm.momentum = 0.9
    assert hpm["momentum"] == 0.9
    assert dict(hpm) == {"lr": 0.1, "epochs": 3, "momentum": 0.9}
    assert len(hpm) == 3 and "lr" in hpm and "nope" not in hpm


def test_hpmstruct_missing_attribute_suggests_close_names():
    hpm = HpmStruct(lr_warmup_epochs=1)
    with pytest.raises(AttributeError, match="lr_warmup_epochs"):
        _ = hpm.lr_wramup_epochs


def test_hpmstruct_override_merges_nested_mappings():
    hpm = HpmStruct(optimizer_params={"weight_decay": 1e-4, "momentum": 0.9}, lr=0.1)
    hpm.override(optimizer_params={"momentum": 0.5}, lr=0.01)
    assert hpm.optimizer_params == {"weight_decay": 1e-4, "momentum": 0.5}
    assert hpm.lr == 0.01


def test_hpmstruct_to_dict_and_schema_validation():
    hpm = HpmStruct(lr=0.1, optimizer="sgd")
    schema = {
        "required": ["lr"],
        "properties": {"lr": {"type": "number", "minimum": 0}, "optimizer": {"enum": ["sgd", "adam"]}},
    }
    hpm.set_schema(schema)
    assert hpm.schema is schema
    hpm.validate()
    assert hpm.to_dict() == {"lr": 0.1, "optimizer": "sgd", "schema": schema}
    assert hpm.to_dict(include_schema=False) == {"lr": 0.1, "optimizer": "sgd"}
    assert "schema" not in dict(hpm)
    hpm.lr = -1.0
    with pytest.raises(ValueError, match="'lr'.*minimum"):
        hpm.validate()
    hpm.lr = "fast"
    with pytest.raises(ValueError, match="'lr'.*type number"):
        hpm.validate()
    hpm.lr, hpm.optimizer = 0.1, "rmsprop"
    with pytest.raises(ValueError, match="'optimizer'.*not one of"):
        hpm.validate()
    del hpm["lr"]
    with pytest.raises(ValueError, match="required entry 'lr'"):
        hpm.validate()


def test_hpmstruct_deepcopy_roundtrip():
    hpm = HpmStruct(a={"b": [1, 2]})
    clone = copy.deepcopy(hpm)
    clone.a["b"].append(3)
    assert hpm.a == {"b": [1, 2]} and clone.a == {"b": [1, 2, 3]}


# --- counting -----------------------------------------------------------------------------------------------


def _inputs():
    plain = {"lr": 0.1, "model": {"depth": 3, "width": 8}, "layers": [{"k": 3}, {"k": 5}], "size": (2, 2)}
    return [
        plain,
        OmegaConf.create(plain),
        HpmStruct(**copy.deepcopy(plain)),
    ]


@pytest.mark.parametrize("config", _inputs(), ids=["dict", "DictConfig", "HpmStruct"])
def test_nested_reads_are_counted_by_dotted_path(config):
    with pytest.warns(UserWarning, match="model.width"), warn_if_unused_params(config) as cfg:
        assert cfg["lr"] == 0.1
        assert cfg.model.depth == 3
        assert cfg.layers[1]["k"] == 5
        assert list(cfg.size) == [2, 2]
        assert cfg.get_unused_params() == {"model.width", "layers.0", "layers.0.k"}
        assert {"lr", "model", "model.depth", "layers", "layers.1", "layers.1.k", "size"} <= cfg.get_used_params()


@pytest.mark.parametrize("config", _inputs(), ids=["dict", "DictConfig", "HpmStruct"])
def test_everything_read_raises_nothing(config):
    with raise_if_unused_params(config) as cfg:
        _ = cfg.lr, cfg.size
        assert dict(**cfg.model) == {"depth": 3, "width": 8}  # ** unpacking reads every value
        assert [layer["k"] for layer in cfg.layers] == [3, 5]


def test_typo_is_reported_with_the_closest_requested_key():
    config = {"training": {"lr_wramup_epochs": 3, "max_epochs": 10}, "extra": {"a": 1, "b": 2}}
    with pytest.raises(UnusedConfigParamException) as info:
        with raise_if_unused_params(config) as cfg:
            training = cfg.training
            warmup = training.get("lr_warmup_epochs", 0)
            epochs = training["max_epochs"]
    assert (warmup, epochs) == (0, 10)
    error = info.value
    # A subtree never read is listed once, by its root.
    assert error.unused_params == ["extra", "training.lr_wramup_epochs"]
    assert error.suggestions == {"training.lr_wramup_epochs": "training.lr_warmup_epochs"}
    assert "training.lr_wramup_epochs  (did you mean 'training.lr_warmup_epochs'?)" in str(error)
    assert "- extra\n" in str(error) + "\n"


def test_membership_test_is_not_a_read_but_hints_typos():
    with pytest.raises(UnusedConfigParamException) as info:
        with raise_if_unused_params({"batch_szie": 4}) as cfg:
            assert "batch_size" not in cfg
    assert info.value.suggestions == {"batch_szie": "batch_size"}


def test_getattr_with_default_on_hpmstruct_hints_typos():
    with pytest.raises(UnusedConfigParamException) as info:
        with raise_if_unused_params(HpmStruct(ema=True, ema_parmas={"decay": 0.9})) as params:
            assert params.ema is True
            assert getattr(params, "ema_params", None) is None
    assert info.value.suggestions == {"ema_parmas": "ema_params"}


def test_unrelated_names_get_no_suggestion():
    with pytest.raises(UnusedConfigParamException) as info:
        with raise_if_unused_params({"zzz": 1, "lr": 2}) as cfg:
            _ = cfg.lr
    assert info.value.unused_params == ["zzz"] and info.value.suggestions == {}


def test_warn_mode_warns_instead_of_raising():
    with pytest.warns(UserWarning, match="unused_key"):
        with warn_if_unused_params({"unused_key": 1, "used": 2}) as cfg:
            _ = cfg["used"]


def test_exception_in_block_propagates_unchanged():
    with pytest.raises(KeyError, match="missing"):
        with raise_if_unused_params({"a": 1}) as cfg:
            _ = cfg["missing"]


def test_missing_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="model has no key 'dpth'"):
        with raise_if_unused_params({"model": {"depth": 1}}) as cfg:
            _ = cfg.model.dpth


def test_list_and_tuple_roots_and_listconfig():
    for config in ([{"a": 1}, {"b": 2}], ({"a": 1}, {"b": 2}), OmegaConf.create([{"a": 1}, {"b": 2}])):
        with pytest.raises(UnusedConfigParamException) as info:
            with raise_if_unused_params(config) as cfg:
                assert isinstance(cfg, AccessCounterList) and len(cfg) == 2
                assert cfg[0]["a"] == 1
        assert info.value.unused_params == ["1"]


def test_scalar_sequences_are_returned_plain():
    with raise_if_unused_params({"milestones": [10, 20], "size": (3, 4)}) as cfg:
        assert type(cfg.milestones) is list and type(cfg["size"]) is tuple


def test_writes_go_to_the_config_and_count_as_used():
    config = {"a": 1}
    with raise_if_unused_params(config) as cfg:
        cfg["a"] = 5
        cfg.b = 6
    assert config == {"a": 5, "b": 6}


def test_nested_inspection_of_a_view_counts_in_both():
    with raise_if_unused_params({"outer": {"x": 1, "y": 2}}) as cfg:
        with pytest.raises(UnusedConfigParamException, match="- y"):
            with raise_if_unused_params(cfg.outer) as inner:
                _ = inner.x
        _ = cfg.outer.y


def test_views_compare_and_copy_as_plain_config():
    config = {"a": {"b": 1}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with warn_if_unused_params(config) as cfg:
            assert cfg == config and isinstance(cfg, AccessCounterDict)
            clone = copy.deepcopy(cfg)
            assert clone == config and type(clone) is dict
            assert cfg.to_dict() == config
            assert "AccessCounterDict" in repr(cfg)


def test_maybe_wrap_as_counter_with_and_without_counting():
    view = AccessCounterDict({"a": {"b": 1}, "c": 2})
    inner = view.maybe_wrap_as_counter({"b": 1}, "a", count_usage=False)
    assert isinstance(inner, AccessCounterDict) and view.get_used_params() == set()
    assert inner["b"] == 1 and view.get_used_params() == {"a.b"}
    assert view.maybe_wrap_as_counter(2, "c") == 2 and view.get_unused_params() == {"a"}


def test_bad_root_type_and_action():
    with pytest.raises(TypeError, match="got int"):
        raise_if_unused_params(3)
    with pytest.raises(ValueError, match="unused_params_action"):
        ConfigInspector(AccessCounterDict({}), "explode")


def test_inspector_ignore_mode_reports_on_demand():
    inspector = ConfigInspector(AccessCounterDict({"a": 1}), "ignore")
    with inspector as cfg:
        pass
    assert cfg.get_unused_params() == {"a"}
    assert inspector.build_exception().unused_params == ["a"]


def test_interpolations_and_missing_values_in_dictconfig():
    config = OmegaConf.create({"base": 2, "derived": "${base}", "later": "???"})
    with pytest.raises(UnusedConfigParamException) as info:
        with raise_if_unused_params(config) as cfg:
            assert cfg.derived == 2
    assert info.value.unused_params == ["base", "later"]


keys = st.text(alphabet="abcdefgh", min_size=1, max_size=4)
configs = st.recursive(
    st.integers(0, 9),
    lambda children: st.dictionaries(keys, children, max_size=4) | st.lists(children, max_size=3),
    max_leaves=12,
)


def _read_all(view):
    if isinstance(view, AccessCounterDict):
        for key in view:
            _read_all(view[key])
    elif isinstance(view, AccessCounterList):
        for item in view:
            _read_all(item)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(keys, configs, max_size=5))
def test_reading_everything_leaves_nothing_unused(config):
    with raise_if_unused_params(config) as cfg:
        _read_all(cfg)
        assert cfg.get_unused_params() == set()


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(keys, configs, min_size=1, max_size=5), st.data())
def test_skipping_one_top_level_key_reports_exactly_it(config, data):
    skipped = data.draw(st.sampled_from(sorted(config)))
    with pytest.raises(UnusedConfigParamException) as info:
        with raise_if_unused_params(config) as cfg:
            for key in cfg:
                if key != skipped:
                    _read_all(cfg[key])
    assert info.value.unused_params == [skipped]
