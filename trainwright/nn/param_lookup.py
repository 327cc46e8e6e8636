"""Reading one parameter out of a config-like object, forgiving of case and separators; nested overrides.

`get_param(params, "OptimizerParams")` finds ``params["optimizer_params"]`` (or ``params.optimizer_params``):
names are compared with every character that is not a letter or a digit removed and in lower case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = ["get_param", "recursive_override", "fuzzy_str"]


def fuzzy_str(name: str) -> str:
    """``name`` lower-cased with spaces, underscores and symbols removed: 'Optimizer_Params ' -> 'optimizerparams'."""
    return re.sub(r"[\W_]", "", str(name)).lower()


def _lookup(params: Any, name: str) -> tuple[bool, Any]:
    """(found, value) of ``name`` in a mapping (keys) or any other object (attributes), exact match first."""
    if isinstance(params, Mapping):
        if name in params:
            return True, params[name]
        wanted = fuzzy_str(name)
        for key in params.keys():
            if isinstance(key, str) and fuzzy_str(key) == wanted:
                return True, params[key]
        return False, None
    if params is None:
        return False, None
    if hasattr(params, name):
        return True, getattr(params, name)
    wanted = fuzzy_str(name)
    for attr in dir(params):
        if fuzzy_str(attr) == wanted:
            return True, getattr(params, attr)
    return False, None


def get_param(params: Any, name: str, default_val: Any = None) -> Any:
    """The value of ``name`` in ``params`` (a mapping, HpmStruct, OmegaConf config or any object), else ``default_val``.

    Names match exactly first, then ignoring case, underscores and symbols (see `fuzzy_str`). When
    ``default_val`` is a mapping the result is a new dict: ``default_val`` updated with the found mapping,
    so ``get_param(tp, "optimizer_params", {"lr": 0.1, "momentum": 0.9})`` fills in the keys the user left
    out. A found None then counts as "not given" and yields a copy of the default.
    """
    found, value = _lookup(params, name)
    if not found:
        value = default_val
    if isinstance(default_val, Mapping):
        if value is None:
            return dict(default_val)
        if not isinstance(value, Mapping):
            raise TypeError(f"get_param: {name!r} is {value!r}, but its default {dict(default_val)!r} is a mapping")
        return {**default_val, **value}
    return value


def recursive_override(base: MutableMapping, extension: Mapping) -> None:
    """Update ``base`` in place with ``extension``; where both hold a mapping under a key, merge them key by key.

    Example: base {"a": {"x": 1, "y": 2}}, extension {"a": {"y": 3}, "b": 4} -> base {"a": {"x": 1, "y": 3}, "b": 4}.
    """
    for key, value in extension.items():
        current = base[key] if key in base else None
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            if not isinstance(current, MutableMapping):  # a read-only mapping is replaced by a merged copy
                current = base[key] = dict(current)
            recursive_override(current, value)
        else:
            base[key] = value
