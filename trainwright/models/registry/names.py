"""Model names and versions that become folder names: checked so that they stay inside the registry."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

__all__ = ["check_name", "inside", "sha256_of"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(kind: str, value) -> str:
    """`value` when it is a safe folder name (letters, digits, '.', '_', '-', starting with a letter or digit, at
    most 100 characters, no '..'); a ValueError naming it otherwise."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise ValueError(f"{kind} {value!r} is not allowed: use 1 to 100 letters, digits, '.', '_' or '-', starting "
                         f"with a letter or digit (no path separators, no '..')")
    return value


def inside(root: Path, *parts: str) -> Path:
    """root/parts..., refused with a ValueError when it resolves outside root (e.g. through a symbolic link)."""
    path = root.joinpath(*parts)
    resolved_root = root.resolve()
    if os.path.commonpath([resolved_root, path.resolve()]) != str(resolved_root):
        raise ValueError(f"{path} resolves outside the registry {root}")
    return path


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
