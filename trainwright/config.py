"""Configuration objects and the unused-parameter check.

`HpmStruct` is an attribute-access bag of hyper-parameters. `raise_if_unused_params` /
`warn_if_unused_params` wrap a configuration (dict, list, tuple, OmegaConf `DictConfig` / `ListConfig`,
`HpmStruct`) in an access-counting view; when the ``with`` block ends, every key that was never read is
reported by its dotted path (``a.b[0].c``), with the closest key the code asked for when it looks like a
typo.

What counts as a read: ``cfg[key]``, ``cfg.key``, ``cfg.get(key)``, ``items()`` / ``values()`` and
``**cfg`` unpacking. ``keys()``, ``len()``, iteration over keys and ``key in cfg`` do not consume a value
(a membership test is still remembered as a key the code asked for, for typo hints). Sequences whose items
are all scalars are returned as they are and their items are not tracked one by one; an item of a
sequence that is itself a mapping or a sequence is tracked like a key.
"""

from __future__ import annotations

import copy
import difflib
import warnings
from collections import Counter
from collections.abc import Mapping, MutableMapping, MutableSequence, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = [
    "AccessCounterDict",
    "AccessCounterList",
    "AccessCounterMixin",
    "ConfigInspector",
    "HpmStruct",
    "UnusedConfigParamException",
    "raise_if_unused_params",
    "warn_if_unused_params",
]

_SCHEMA_ATTR = "_schema"
_JSON_TYPES = {
    "string": str,
    "number": (int, float),
    "integer": int,
    "boolean": bool,
    "array": (list, tuple),
    "object": Mapping,
    "null": type(None),
}


class HpmStruct(MutableMapping):
    """A bag of hyper-parameters read as attributes (``hpm.lr``) or items (``hpm["lr"]``).

    An optional JSON-schema-like ``schema`` (``required``, ``properties`` with ``type``, ``enum``,
    ``minimum``, ``maximum``) is checked by `validate`.
    """

    def __init__(self, **entries):
        object.__setattr__(self, _SCHEMA_ATTR, None)
        self.__dict__.update(entries)

    def set_schema(self, schema: Mapping | None) -> None:
        """Attach a schema that `validate` checks."""
        object.__setattr__(self, _SCHEMA_ATTR, schema)

    @property
    def schema(self) -> Mapping | None:
        """The schema set with `set_schema` (None when unset)."""
        return self.__dict__.get(_SCHEMA_ATTR)

    @schema.setter
    def schema(self, value: Mapping | None) -> None:
        self.set_schema(value)

    def override(self, **entries) -> None:
        """Update entries in place; nested mappings are merged key by key instead of replaced."""
        for key, value in entries.items():
            current = self.__dict__.get(key)
            if isinstance(current, Mapping) and isinstance(value, Mapping):
                self.__dict__[key] = _merged(current, value)
            else:
                self.__dict__[key] = value

    def to_dict(self, include_schema: bool = True) -> dict:
        """The entries as a plain dict (a shallow copy); the schema under ``"schema"`` when set and asked for."""
        out = dict(self._entries())
        if include_schema and self.__dict__.get(_SCHEMA_ATTR) is not None:
            out["schema"] = self.__dict__[_SCHEMA_ATTR]
        return out

    def validate(self) -> None:
        """Check the entries against the schema; raise ValueError naming the first offending key."""
        schema = self.__dict__.get(_SCHEMA_ATTR)
        if schema is None:
            return
        for key in schema.get("required", ()):
            if key not in self.__dict__:
                raise ValueError(f"HpmStruct: required entry {key!r} is missing (entries: {sorted(self)})")
        for key, rule in schema.get("properties", {}).items():
            if key in self.__dict__:
                _check_rule(key, self.__dict__[key], rule)

    def _entries(self):
        return ((k, v) for k, v in self.__dict__.items() if k != _SCHEMA_ATTR)

    def __getitem__(self, key):
        if key == _SCHEMA_ATTR or key not in self.__dict__:
            raise KeyError(key)
        return self.__dict__[key]

    def __setitem__(self, key, value):
        self.__dict__[key] = value

    def __delitem__(self, key):
        if key == _SCHEMA_ATTR:
            raise KeyError(key)
        del self.__dict__[key]

    def __iter__(self):
        return (k for k, _ in self._entries())

    def __len__(self):
        return len(self.__dict__) - (_SCHEMA_ATTR in self.__dict__)

    def __getattr__(self, name):
        # Only called when normal lookup fails: an entry that does not exist.
        if name.startswith("__"):
            raise AttributeError(name)
        close = difflib.get_close_matches(name, [str(k) for k in self], n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise AttributeError(f"HpmStruct has no entry {name!r}{hint}")

    def __repr__(self):
        return f"HpmStruct({', '.join(f'{k}={v!r}' for k, v in self._entries())})"


def _merged(base: Mapping, update: Mapping) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(out.get(key), Mapping) and isinstance(value, Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _check_rule(key: str, value: Any, rule: Mapping) -> None:
    expected = rule.get("type")
    if expected is not None:
        types = tuple(_JSON_TYPES[t] for t in ([expected] if isinstance(expected, str) else expected))
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ValueError(f"HpmStruct: entry {key!r}={value!r} should be of type {expected}")
    if "enum" in rule and value not in rule["enum"]:
        raise ValueError(f"HpmStruct: entry {key!r}={value!r} is not one of {list(rule['enum'])}")
    if "minimum" in rule and value < rule["minimum"]:
        raise ValueError(f"HpmStruct: entry {key!r}={value!r} is below the minimum {rule['minimum']}")
    if "maximum" in rule and value > rule["maximum"]:
        raise ValueError(f"HpmStruct: entry {key!r}={value!r} is above the maximum {rule['maximum']}")


# ----------------------------------------------------------------------------------------------------------
# Access counting

Path = tuple  # segments: mapping keys and sequence indices


def format_path(path: Path) -> str:
    """Render ``("a", 0, "b")`` as ``a[0].b``."""
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else str(seg))
    return out


class _Tracker:
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


def _is_sequence(obj) -> bool:
    return isinstance(obj, (list, tuple, ListConfig, AccessCounterList))


def _is_container(obj) -> bool:
    return isinstance(obj, Mapping) or _is_sequence(obj)


def _walk(obj, prefix: Path):
    if isinstance(obj, Mapping):
        items = obj.items()
    elif _is_sequence(obj):
        items = ((i, v) for i, v in enumerate(obj) if _is_container(_plain(v)))
    else:
        return
    for key, value in items:
        path = prefix + (key,)
        yield path
        yield from _walk(_plain(value), path)


def _wrap(value, tracker: _Tracker, path: Path):
    if isinstance(value, Mapping):
        return AccessCounterDict(value, tracker, path)
    if _is_sequence(value) and any(_is_container(v) for v in _plain(value)):
        return AccessCounterList(value, tracker, path)
    return value


class AccessCounterMixin:
    """Common part of the access-counting views: wraps values read from the config and records the reads."""

    _config: Any
    _tracker: _Tracker
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

    def __init__(self, config, tracker: _Tracker | None = None, prefix: Path = ()):
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "_tracker", tracker if tracker is not None else _Tracker(config))
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

    def __init__(self, config, tracker: _Tracker | None = None, prefix: Path = ()):
        self._config = config
        self._tracker = tracker if tracker is not None else _Tracker(config)
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


# ----------------------------------------------------------------------------------------------------------
# The check


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
            f"{len(roots)} configuration parameter(s) were never used; check them for typos or remove them:\n"
            + "\n".join(lines)
        )
        return UnusedConfigParamException(message, [format_path(p) for p in roots], suggestions)


def _closest_requested(path: Path, tracker: _Tracker) -> Path | None:
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
    if _is_sequence(config):
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
