"""The access-counting views of `trainwright.config` under the reference's names, with `get_all_params()`.

`AccessCounterDict(config)` wraps a mapping (dict, OmegaConf DictConfig, HpmStruct) and
`AccessCounterHpmStruct(config)` an HpmStruct; reading through the view counts the read. Besides
`get_used_params()` / `get_unused_params()`, these views (and every nested view read from them) answer
`get_all_params()`: the dotted path of every parameter under the view, so that
``get_unused_params() == get_all_params() - get_used_params()``. Paths are written as
`trainwright.config.format_path` writes them; items of a list are counted one by one only when they
are themselves containers.
"""

from __future__ import annotations

from typing import Any

from trainwright import config as _config

__all__ = ["AccessCounterDict", "AccessCounterHpmStruct", "AccessCounterList"]


def _as_path(prefix: str | tuple | None) -> tuple:
    """The reference's string prefix ('a.0.b.') or a path tuple -> path tuple ('a', 0, 'b')."""
    if prefix is None or prefix == "":
        return ()
    if isinstance(prefix, tuple):
        return prefix
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a dotted string such as 'a.b.' or a tuple, got {prefix!r}")
    return tuple(int(p) if p.isdigit() else p for p in prefix.strip(".").split("."))


def _as_tracker(access_counter: Any, config: Any) -> _config._Tracker:
    if access_counter is None:
        return _config._Tracker(config)
    if isinstance(access_counter, _config._Tracker):
        return access_counter
    raise TypeError(
        "access_counter must be None (a fresh count) or the `access_counter` of another view, "
        f"got {type(access_counter).__name__}"
    )


class _AllParamsMixin:
    """Adds `get_all_params` and keeps nested views of the same family."""

    _tracker: _config._Tracker
    _prefix: tuple

    def get_all_params(self) -> set[str]:
        """Dotted paths of every parameter under this view (nested ones included), read or not."""
        n = len(self._prefix)
        return {
            _config.format_path(p) for p in self._tracker.all_params if len(p) > n and p[:n] == self._prefix
        }

    @property
    def access_counter(self) -> _config._Tracker:
        """The shared count of this view and of every view nested in it (pass it to build another view on it)."""
        return self._tracker

    def maybe_wrap_as_counter(self, value, key, count_usage: bool = True):
        wrapped = super().maybe_wrap_as_counter(value, key, count_usage)
        if type(wrapped) is _config.AccessCounterDict:
            return AccessCounterDict(wrapped._config, wrapped._tracker, wrapped._prefix)
        if type(wrapped) is _config.AccessCounterList:
            return AccessCounterList(wrapped._config, wrapped._tracker, wrapped._prefix)
        return wrapped


class AccessCounterDict(_AllParamsMixin, _config.AccessCounterDict):
    """Counting view of a mapping-like config; ``prefix`` is the path of ``config`` inside its root ('a.b.')."""

    def __init__(self, config, access_counter=None, prefix: str | tuple = ""):
        super().__init__(config, _as_tracker(access_counter, config), _as_path(prefix))


class AccessCounterList(_AllParamsMixin, _config.AccessCounterList):
    """Counting view of a sequence config holding nested containers."""

    def __init__(self, config, access_counter=None, prefix: str | tuple = ""):
        super().__init__(config, _as_tracker(access_counter, config), _as_path(prefix))


class AccessCounterHpmStruct(AccessCounterDict):
    """Counting view of an `HpmStruct` (its schema is not a parameter)."""

    def __init__(self, config: _config.HpmStruct, access_counter=None, prefix: str | tuple = ""):
        if not isinstance(config, _config.HpmStruct):
            raise TypeError(f"AccessCounterHpmStruct wraps an HpmStruct, got {type(config).__name__}")
        super().__init__(config, access_counter, prefix)
