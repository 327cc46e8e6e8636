"""The unused-parameter check: wrap a configuration, run the code that reads it, report the keys never read."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping, Sequence

from trainwright.config.access_counter import (
    AccessCounterDict,
    AccessCounterList,
    AccessCounterMixin,
    Path,
    ReadTracker,
    format_path,
    is_sequence,
)

__all__ = ["ConfigInspector", "UnusedConfigParamException", "raise_if_unused_params", "warn_if_unused_params"]


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
