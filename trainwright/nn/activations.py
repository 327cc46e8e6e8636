"""Look up a `torch.nn` activation class by name, with its keyword arguments bound."""

from __future__ import annotations

import difflib
import functools
import inspect

from torch import nn

__all__ = ["get_builtin_activation_type"]

_ALIASES = {"leaky_relu": "LeakyReLU", "swish": "SiLU"}


@functools.cache
def _module_types() -> dict[str, type[nn.Module]]:
    """Every `nn.Module` class of the `torch.nn` namespace, by its name and its lower-case name."""
    types = {}
    for name in dir(nn):
        obj = getattr(nn, name)
        if isinstance(obj, type) and issubclass(obj, nn.Module):
            types[name] = obj
            types[name.lower()] = obj
    for alias, name in _ALIASES.items():
        types[alias] = types[name]
    return types


def get_builtin_activation_type(activation: str | type[nn.Module] | None, **kwargs):
    """Return the `torch.nn` class named ``activation`` ready to instantiate with no argument.

    Accepts the class name (``"ReLU"``), its lower-case form (``"relu"``), the aliases ``leaky_relu``
    (LeakyReLU) and ``swish`` (SiLU), or a module class itself; None gives `nn.Identity`. With ``kwargs``
    the result is ``functools.partial(cls, **kwargs)`` (picklable; the keywords are checked against the
    class now, not at instantiation), else the class itself.
    """
    if activation is None:
        cls = nn.Identity
    elif isinstance(activation, type) and issubclass(activation, nn.Module):
        cls = activation
    elif isinstance(activation, str):
        types = _module_types()
        cls = types.get(activation)
        if cls is None:
            # Compare case-insensitively, suggest the class names (and aliases) as spelled.
            spelled = {name.lower(): name for name in types if name != name.lower() or name in _ALIASES}
            close = difflib.get_close_matches(activation.lower(), list(spelled), n=5, cutoff=0.5)
            close = [spelled[name] for name in close]
            hint = f"; closest names: {', '.join(close)}" if close else ""
            raise ValueError(f"activation {activation!r} is not a torch.nn module name{hint}")
    else:
        raise TypeError(f"activation must be a str, an nn.Module class or None, got {type(activation).__name__}")
    if not kwargs:
        return cls
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as error:
        raise TypeError(f"activation {cls.__name__} does not accept {sorted(kwargs)}: {error}") from None
    return functools.partial(cls, **kwargs)
