"""Configuration inspection: access-counting views of a configuration and the unused-parameter check.

The views wrap a dict, list, tuple, OmegaConf `DictConfig` / `ListConfig` or `HpmStruct` and record every
key read by its dotted path, written as the reference writes it (``a.b.0.c``). What counts as a read:
``cfg[key]``, ``cfg.key``, ``cfg.get(key)``, ``items()`` / ``values()`` and ``**cfg`` unpacking. ``keys()``,
``len()``, iteration over keys and ``key in cfg`` do not consume a value (a membership test is still
remembered as a key the code asked for, for typo hints). Sequences whose items are all scalars are returned
as they are and their items are not tracked one by one; an item of a sequence that is itself a mapping or a
sequence is tracked like a key.

``with raise_if_unused_params(cfg) as cfg:`` (or `warn_if_unused_params`) reports, when the block ends,
every key that was never read, with the closest key the code asked for when it looks like a typo.
"""

from __future__ import annotations

import copy
import difflib
import warnings
from collections import Counter
from collections.abc import Mapping, MutableMapping, MutableSequence, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainwright.nn.hpm_struct import HpmStruct

__all__ = [
    "AccessCounterDict",
    "AccessCounterHpmStruct",
    "AccessCounterList",
    "AccessCounterMixin",
    "ConfigInspector",
    "HpmStruct",
    "UnusedConfigParamException",
    "format_path",
    "raise_if_unused_params",
    "warn_if_unused_params",
]


Path = tuple  # segments: mapping keys and sequence indices


def format_path(path: Path) -> str:
    """Render ``("a", 0, "b")`` as ``a.0.b``, the reference's dotted form."""
    return ".".join(str(seg) for seg in path)


def _as_path(prefix: str | tuple | None) -> Path:
    """A path tuple from the reference's string prefix (``"a.0.b."``) or a tuple."""
    if prefix is None or prefix == "":
        return ()
    if isinstance(prefix, tuple):
        return prefix
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a dotted string such as 'a.b.' or a tuple, got {prefix!r}")
    return tuple(int(p) if p.isdigit() else p for p in prefix.strip(".").split("."))


def _as_tracker(access_counter, config) -> ReadTracker:
    if access_counter is None:
        return ReadTracker(config)
    if isinstance(access_counter, ReadTracker):
        return access_counter
    raise TypeError(
        "access_counter must be None (a fresh count) or the `access_counter` of another view, "
        f"got {type(access_counter).__name__}"
    )


class ReadTracker:
    """Shared state of one inspected configuration: every parameter path, reads, and asked-for keys."""

    def __init__(self, config):
        self.all_params: set[Path] = set(_walk(_plain(config), ()))
        self.reads: Counter = Counter()
        self.requested: set[Path] = set()


def _plain(obj):
    """The underlying container of a wrapper, OmegaConf node or HpmStruct, without counting reads."""
    if isinstance(obj, AccessCounterMixin):
        return _plain(obj._config)
    if isinstance(obj, (DictConfig, ListConfig)):
        return OmegaConf.to_container(obj, resolve=False)
    if isinstance(obj, HpmStruct):
        return dict(obj._entries())
    return obj


def is_sequence(obj) -> bool:
    return isinstance(obj, (list, tuple, ListConfig, AccessCounterList))


def _is_container(obj) -> bool:
    return isinstance(obj, Mapping) or is_sequence(obj)


def _walk(obj, prefix: Path):
    if isinstance(obj, Mapping):
        items = obj.items()
    elif is_sequence(obj):
        items = ((i, v) for i, v in enumerate(obj) if _is_container(_plain(v)))
    else:
        return
    for key, value in items:
        path = prefix + (key,)
        yield path
        yield from _walk(_plain(value), path)


def _wrap(value, tracker: ReadTracker, path: Path):
    if isinstance(value, Mapping):
        return AccessCounterDict(value, tracker, path)
    if is_sequence(value) and any(_is_container(v) for v in _plain(value)):
        return AccessCounterList(value, tracker, path)
    return value


class AccessCounterMixin:
    """Common part of the access-counting views: wraps values read from the config and records the reads."""

    _config: Any
    _tracker: ReadTracker
    _prefix: Path

    def maybe_wrap_as_counter(self, value, key, count_usage: bool = True):
        """Return ``value`` (read under ``key``) wrapped as a counting view when it is a container; count the read."""
        path = self._prefix + (key,)
        if count_usage:
            self._tracker.reads[path] += 1
            self._tracker.requested.add(path)
        return _wrap(value, self._tracker, path)

    def _ask(self, key) -> None:
        self._tracker.requested.add(self._prefix + (key,))

    @property
    def access_counter(self) -> ReadTracker:
        """The count shared by this view and every view nested in it (pass it to build another view on it)."""
        return self._tracker

    def get_all_params(self) -> set[str]:
        """Dotted paths of every parameter under this view (nested ones included), read or not."""
        n = len(self._prefix)
        return {format_path(p) for p in self._tracker.all_params if len(p) > n and p[:n] == self._prefix}

    def get_used_params(self) -> set[str]:
        """Dotted paths under this view that were read at least once."""
        return {format_path(p) for p in self._tracker.reads if p[: len(self._prefix)] == self._prefix}

    def get_unused_params(self) -> set[str]:
        """Dotted paths under this view that were never read (a never-read subtree lists all its keys)."""
        return {format_path(p) for p in self._unused_paths()}

    def _unused_paths(self) -> list[Path]:
        n = len(self._prefix)
        return sorted(
            (p for p in self._tracker.all_params if p[:n] == self._prefix and p not in self._tracker.reads),
            key=lambda p: [str(s) for s in p],
        )

    def unwrap(self):
        """The wrapped configuration itself (reads on it are not counted)."""
        return self._config

    def __deepcopy__(self, memo):
        # A copy is a plain configuration: counting belongs to the inspected original.
        return copy.deepcopy(self._config, memo)

    def __eq__(self, other):
        return _plain(self) == _plain(other)

    def __repr__(self):
        return f"{type(self).__name__}({self._config!r})"


class AccessCounterDict(AccessCounterMixin, MutableMapping):
    """Counting view of a mapping-like config (dict, `DictConfig`, `HpmStruct`); attribute and item access."""

    def __init__(self, config, access_counter: ReadTracker | None = None, prefix: str | Path = ""):
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "_tracker", _as_tracker(access_counter, config))
        object.__setattr__(self, "_prefix", _as_path(prefix))

    def __getitem__(self, key):
        self._ask(key)
        return self.maybe_wrap_as_counter(self._config[key], key)

    def __getattr__(self, name):
        if name.startswith("__") or name in ("_config", "_tracker", "_prefix"):
            raise AttributeError(name)
        self._ask(name)
        if name not in self._config:
            raise AttributeError(f"configuration {format_path(self._prefix) or '<root>'} has no key {name!r}")
        return self.maybe_wrap_as_counter(self._config[name], name)

    def __setitem__(self, key, value):
        self._config[key] = value
        self._tracker.reads[self._prefix + (key,)] += 1

    def __setattr__(self, name, value):
        self[name] = value

    def __delitem__(self, key):
        del self._config[key]

    def __contains__(self, key):
        self._ask(key)
        return key in self._config

    def get(self, key, default=None):
        self._ask(key)
        return self[key] if key in self._config else default

    def __iter__(self):
        return iter(list(self._config.keys()))

    def __len__(self):
        return len(self._config)

    def to_dict(self, include_schema: bool = True) -> dict:
        """A plain copy of the whole config, for logging; these reads are not counted."""
        if isinstance(self._config, HpmStruct):
            return self._config.to_dict(include_schema)
        return dict(_plain(self))


class AccessCounterList(AccessCounterMixin, MutableSequence):
    """Counting view of a sequence config (list, tuple, `ListConfig`) holding nested containers."""

    def __init__(self, config, access_counter: ReadTracker | None = None, prefix: str | Path = ""):
        self._config = config
        self._tracker = _as_tracker(access_counter, config)
        self._prefix = _as_path(prefix)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._config)))]
        if not isinstance(index, int):
            raise TypeError(f"sequence indices must be integers or slices, got {type(index).__name__}")
        value = self._config[index]
        return self.maybe_wrap_as_counter(value, index % len(self._config))

    def __setitem__(self, index, value):
        self._config[index] = value

    def __delitem__(self, index):
        del self._config[index]

    def insert(self, index, value):
        self._config.insert(index, value)

    def __len__(self):
        return len(self._config)


class AccessCounterHpmStruct(AccessCounterDict):
    """Counting view of an `HpmStruct` (its schema is not a parameter)."""

    def __init__(self, config: HpmStruct, access_counter: ReadTracker | None = None, prefix: str | Path = ""):
        if not isinstance(config, HpmStruct):
            raise TypeError(f"AccessCounterHpmStruct wraps an HpmStruct, got {type(config).__name__}")
        super().__init__(config, access_counter, prefix)


class UnusedConfigParamException(Exception):
    """Raised when a configuration holds keys the code never read (a typo or an outdated parameter)."""

    def __init__(self, message: str, unused_params: Sequence[str] = (), suggestions: Mapping[str, str] | None = None):
        super().__init__(message)
        self.unused_params = list(unused_params)
        self.suggestions = dict(suggestions or {})


class ConfigInspector:
    """Context manager: yields the counting view, and on a clean exit reports the keys never read.

    ``unused_params_action`` is ``"raise"`` (UnusedConfigParamException), ``"warn"`` (UserWarning) or
    ``"ignore"``. When the block raises, that exception propagates unchanged and nothing is checked.
    """

    def __init__(self, wrapped_config: AccessCounterMixin, unused_params_action: str = "raise"):
        if unused_params_action not in ("raise", "warn", "ignore"):
            raise ValueError(f"unused_params_action must be 'raise', 'warn' or 'ignore', got {unused_params_action!r}")
        self.wrapped_config = wrapped_config
        self.unused_params_action = unused_params_action

    def __enter__(self):
        return self.wrapped_config

    def __exit__(self, exc_type, exc_value, traceback):
        if exc_type is not None or self.unused_params_action == "ignore":
            return False
        error = self.build_exception()
        if error is None:
            return False
        if self.unused_params_action == "raise":
            raise error
        warnings.warn(str(error), UserWarning, stacklevel=2)
        return False

    def build_exception(self) -> UnusedConfigParamException | None:
        """The report of the keys not read so far, or None when every key was read."""
        unused = self.wrapped_config._unused_paths()
        unused_set = set(unused)
        # List a never-read subtree once, by its root.
        roots = [p for p in unused if not any(p[:i] in unused_set for i in range(1, len(p)))]
        if not roots:
            return None
        tracker = self.wrapped_config._tracker
        suggestions = {}
        lines = []
        for path in roots:
            hint = _closest_requested(path, tracker)
            name = format_path(path)
            if hint is not None:
                suggestions[name] = format_path(hint)
                lines.append(f"  - {name}  (did you mean {format_path(hint)!r}?)")
            else:
                lines.append(f"  - {name}")
        message = (
            "Detected unused parameters in configuration object that were not consumed by caller: "
            + ", ".join(format_path(p) for p in roots)
            + "\nCheck them for typos or remove them:\n"
            + "\n".join(lines)
        )
        return UnusedConfigParamException(message, [format_path(p) for p in roots], suggestions)


def _closest_requested(path: Path, tracker: ReadTracker) -> Path | None:
    """The key the code asked for (present or not) under the same parent whose name is closest to ``path``."""
    name = path[-1]
    if not isinstance(name, str):
        return None
    siblings = {
        p[-1]: p
        for p in tracker.requested
        if p[:-1] == path[:-1] and isinstance(p[-1], str) and p[-1] != name and p not in tracker.all_params
    }
    for p in tracker.reads:
        if p[:-1] == path[:-1] and isinstance(p[-1], str) and p[-1] != name:
            siblings[p[-1]] = p
    match = difflib.get_close_matches(name, list(siblings), n=1, cutoff=0.75)
    return siblings[match[0]] if match else None


def _wrap_root(config) -> AccessCounterMixin:
    if isinstance(config, Mapping):
        return AccessCounterDict(config)
    if is_sequence(config):
        return AccessCounterList(config)
    raise TypeError(
        "config must be a mapping, a list/tuple, an OmegaConf DictConfig/ListConfig or an HpmStruct, "
        f"got {type(config).__name__}"
    )


def raise_if_unused_params(config) -> ConfigInspector:
    """``with raise_if_unused_params(cfg) as cfg:`` raises UnusedConfigParamException for keys never read."""
    return ConfigInspector(_wrap_root(config), "raise")


def warn_if_unused_params(config) -> ConfigInspector:
    """``with warn_if_unused_params(cfg) as cfg:`` warns (UserWarning) about keys never read."""
    return ConfigInspector(_wrap_root(config), "warn")
