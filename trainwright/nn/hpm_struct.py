"""`HpmStruct`: a bag of hyper-parameters read as attributes or items, with an optional schema check."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = ["HpmStruct"]


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
