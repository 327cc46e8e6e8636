"""Access-counting views of a configuration: every read is recorded by its dotted path (``a.b[0].c``).

What counts as a read: ``cfg[key]``, ``cfg.key``, ``cfg.get(key)``, ``items()`` / ``values()`` and
``**cfg`` unpacking. ``keys()``, ``len()``, iteration over keys and ``key in cfg`` do not consume a value
(a membership test is still remembered as a key the code asked for, for typo hints). Sequences whose items
are all scalars are returned as they are and their items are not tracked one by one; an item of a
sequence that is itself a mapping or a sequence is tracked like a key.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping, MutableMapping, MutableSequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainwright.config.hpm_struct import HpmStruct

__all__ = ["AccessCounterDict", "AccessCounterList", "AccessCounterMixin", "Path", "ReadTracker", "format_path", "is_sequence"]


Path = tuple  # segments: mapping keys and sequence indices


def format_path(path: Path) -> str:
    """Render ``("a", 0, "b")`` as ``a[0].b``."""
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else str(seg))
    return out


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

    def __init__(self, config, tracker: ReadTracker | None = None, prefix: Path = ()):
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "_tracker", tracker if tracker is not None else ReadTracker(config))
        object.__setattr__(self, "_prefix", tuple(prefix))

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

    def __init__(self, config, tracker: ReadTracker | None = None, prefix: Path = ()):
        self._config = config
        self._tracker = tracker if tracker is not None else ReadTracker(config)
        self._prefix = tuple(prefix)

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
