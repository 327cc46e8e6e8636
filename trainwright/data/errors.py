"""What a dataset that cannot be used as given raises, and what it warns with when it repairs something."""

from __future__ import annotations

import os

__all__ = ["DatasetError", "MissingImagesError", "DatasetWarning", "examples"]


class DatasetError(ValueError):
    """A dataset file that cannot be used as given; the one-line message starts with the file's path.

    Attributes:
        path (str): the annotation or image file at fault.
    """

    def __init__(self, path: str | os.PathLike, message: str):
        self.path = os.fspath(path)
        super().__init__(f"{self.path}: {' '.join(message.splitlines())}")


class MissingImagesError(DatasetError, FileNotFoundError):
    """Image files an annotation file lists are not there (a DatasetError and a FileNotFoundError)."""


class DatasetWarning(UserWarning):
    """Something in a dataset was repaired (boxes clipped or dropped, a size taken from the file), never silently."""


def examples(items, limit: int = 5) -> str:
    """``a, b, c`` for at most ``limit`` items, with ``, ...`` when there are more."""
    items = list(items)
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (", ..." if len(items) > limit else "")
