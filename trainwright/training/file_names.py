"""File names given as parameters that become paths inside the experiment directory."""

from __future__ import annotations

import os

__all__ = ["experiment_file"]


def experiment_file(experiment_dir: str, name, param: str) -> str:
    """The path of the file `name` in `experiment_dir`, or a ValueError naming `param` when `name` is not a plain
    file name (empty, absolute, with a directory part, "." or "..") and so could point outside the directory."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{param} must be a file name, got {name!r}")
    separators = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    if os.path.isabs(name) or any(sep in name for sep in separators) or name in (".", ".."):
        raise ValueError(f"{param} must be a file name inside the experiment directory (no folders), got {name!r}")
    return os.path.join(experiment_dir, name)
