"""Names that become paths: a plain file or folder name, so the file stays inside the folder it is joined to."""

from __future__ import annotations

import os

__all__ = ["check_file_name"]

_NAME_MAX = 255  # bytes in one path component on common file systems


def _problem(name: str) -> str | None:
    """Why `name` is not a plain name of one file inside a folder, or None when it is one."""
    if name.strip() == "":
        return "it is empty"
    if name in (".", ".."):
        return "it names a folder, not a file inside it"
    if os.path.isabs(name) or "/" in name or "\\" in name or (os.altsep and os.altsep in name):
        return "it is a path; give a plain name without '/' or '\\'"
    bad = [c for c in name if ord(c) < 32 or ord(c) == 127]
    if bad:
        return f"it holds the control character {bad[0]!r}"
    if len(name.encode("utf-8", "surrogateescape")) > _NAME_MAX:
        return f"it is longer than {_NAME_MAX} bytes"
    return None


def check_file_name(what: str, name) -> str:
    """`name` itself when it is a plain name of a file or folder (no separator, not `.`/`..`, no control
    character); else a ValueError naming `what` (e.g. "training_params.ckpt_best_name") and the value."""
    if not isinstance(name, str):
        raise ValueError(f"{what} must be a file name (a string), got {name!r}")
    problem = _problem(name)
    if problem is not None:
        raise ValueError(f"{what}={name!r} is not a plain name inside its folder: {problem}")
    return name
