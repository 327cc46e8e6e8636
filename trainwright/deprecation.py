"""Deprecated aliases: a callable that warns each time it is used, then behaves like its target."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["wrap_with_warning"]


def wrap_with_warning(cls: Callable, message: str) -> Callable[..., Any]:
    """Return a factory that emits ``DeprecationWarning(message)`` at every call, then returns ``cls(*args, **kwargs)``.

    The factory carries the target's name, docstring and signature (``__wrapped__``); it is a function, so
    ``isinstance(obj, factory)`` does not work: check against the target class instead.
    """
    if not callable(cls):
        raise TypeError(f"wrap_with_warning: cls must be a class or a function, got {type(cls).__name__}")
    if not isinstance(message, str) or not message:
        raise ValueError(f"wrap_with_warning: message must be a non-empty string, got {message!r}")

    @functools.wraps(cls, updated=())
    def deprecated_factory(*args, **kwargs):
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return cls(*args, **kwargs)

    return deprecated_factory
