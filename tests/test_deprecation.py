import inspect
import warnings

import pytest

from trainwright.deprecation import wrap_with_warning


class Target:
    """Doc of the target."""

    def __init__(self, a, b=2):
        self.a, self.b = a, b


def test_warns_at_each_call_and_builds_the_target():
    factory = wrap_with_warning(Target, "Target is deprecated, use NewTarget")
    for _ in range(2):
        with pytest.warns(DeprecationWarning, match="use NewTarget"):
            obj = factory(1, b=3)
        assert isinstance(obj, Target) and (obj.a, obj.b) == (1, 3)


def test_no_warning_until_called():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        factory = wrap_with_warning(Target, "old")
    assert factory.__name__ == "Target" and factory.__doc__ == "Doc of the target."
    assert list(inspect.signature(factory).parameters) == ["a", "b"]


def test_wraps_functions_and_points_at_the_caller():
    factory = wrap_with_warning(lambda x: x * 2, "old function")
    with pytest.warns(DeprecationWarning) as record:
        assert factory(4) == 8
    assert record[0].filename == __file__


def test_bad_arguments():
    with pytest.raises(TypeError, match="cls must be"):
        wrap_with_warning(3, "msg")
    with pytest.raises(ValueError, match="message"):
        wrap_with_warning(Target, "")
