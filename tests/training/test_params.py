"""training_params resolution: defaults, accepted containers, unknown names."""

import pytest
from omegaconf import OmegaConf

from trainwright.config import HpmStruct, UnusedConfigParamException
from trainwright.training.params import DEFAULT_TRAINING_PARAMS, resolve_training_params

REQUIRED = {"max_epochs": 3, "initial_lr": 0.1, "loss": "cross_entropy"}


@pytest.mark.parametrize("container", [dict, OmegaConf.create, lambda d: HpmStruct(**d)])
def test_defaults_fill_missing_names(container):
    params = resolve_training_params(container({**REQUIRED, "ema_params": {"decay": 0.5}}))
    assert params.max_epochs == 3 and params.lr_mode is None and params.batch_accumulate == 1
    assert params.ema_params == {"decay": 0.5, "decay_type": "exp", "beta": 15}
    assert set(params) == set(DEFAULT_TRAINING_PARAMS)


def test_unknown_name_is_an_error_naming_it_with_a_hint():
    with pytest.raises(UnusedConfigParamException, match="max_epoch") as info:
        resolve_training_params({**REQUIRED, "max_epoch": 3, "foo_bar": 1})
    assert set(info.value.unused_params) == {"max_epoch", "foo_bar"}
    assert info.value.suggestions == {"max_epoch": "max_epochs"}


def test_required_and_bad_values():
    with pytest.raises(ValueError, match="initial_lr"):
        resolve_training_params({"max_epochs": 3, "loss": "mse"})
    with pytest.raises(ValueError, match="batch_accumulate"):
        resolve_training_params({**REQUIRED, "batch_accumulate": 0})
    with pytest.raises(TypeError, match="optimizer_params"):
        resolve_training_params({**REQUIRED, "optimizer_params": 3})
    with pytest.raises(TypeError, match="training_params"):
        resolve_training_params(["max_epochs"])
