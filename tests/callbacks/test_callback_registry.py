"""Callbacks by name, in the forms SuperGradients 3.1 recipes use."""

import pytest

from trainwright.callbacks.base import Phase
from trainwright.callbacks.registry import CALLBACKS, build_callback, build_callback_list, register_callback
from trainwright.utils import DetectionMultiscalePrePredictionCallback, EarlyStop


def test_names_mappings_and_objects():
    stop = build_callback({"EarlyStop": {"phase": "VALIDATION_EPOCH_END", "monitor": "mAP@0.50", "mode": "max"}})
    assert isinstance(stop, EarlyStop) and stop.phase is Phase.VALIDATION_EPOCH_END and stop.mode == "max"
    assert isinstance(build_callback("DetectionMultiscalePrePredictionCallback"), DetectionMultiscalePrePredictionCallback)
    obj = object()
    assert build_callback(obj) is obj
    assert build_callback_list(None) == []


def test_names_match_ignoring_case_and_separators_as_sg():
    assert type(build_callback({"early_stop": {"phase": "TRAIN_EPOCH_END", "monitor": "x"}})) is EarlyStop


def test_sg_registered_names_are_known():
    assert {"EarlyStop", "DetectionMultiscalePrePredictionCallback", "YoloXTrainingStageSwitchCallback",
            "DetectionVisualizationCallback", "LRSchedulerCallback", "RoboflowResultCallback"} <= set(CALLBACKS)


def test_register_a_callback():
    @register_callback("MyCounter")
    class MyCounter:
        def __init__(self, start=0):
            self.start = start

    assert build_callback({"MyCounter": {"start": 3}}).start == 3
    del CALLBACKS["MyCounter"]


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match=r"phase_callbacks\[1\]: 'Nope' is not a registered callback; expected one"):
        build_callback_list([{"EarlyStop": {"phase": "TRAIN_EPOCH_END", "monitor": "x"}}, "Nope"])
