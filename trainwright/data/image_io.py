"""Decoding an image file to uint8 RGB as it is displayed: the EXIF orientation applied, every pixel type 8-bit.

Orientation rule (used by the datasets, their size checks and `predict` alike): an image is what a viewer
shows, i.e. the stored pixel grid turned by its EXIF orientation tag, and annotations refer to that view.
The tag is read once with Pillow (header only) and applied here; OpenCV's own handling is turned off so that
the size a scan reports and the pixels a loader returns always agree.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from PIL import Image

from trainwright.data.errors import DatasetError

__all__ = ["ORIENTATION_TAG", "apply_orientation", "displayed_size", "exif_orientation", "read_orientation",
           "read_rgb_image"]

ORIENTATION_TAG = 0x0112
_READ_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def exif_orientation(image: Image.Image) -> int:
    """EXIF orientation (1..8) of an opened Pillow image, 1 when it has none or a malformed one."""
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a malformed EXIF block can fail in many ways; it then orients nothing
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def read_orientation(path: str) -> int:
    """EXIF orientation (1..8) of the image file at ``path`` from its header; 1 when Pillow cannot read it."""
    try:
        with Image.open(path) as image:
            return exif_orientation(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return 1


def displayed_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """(width, height) of a stored width x height grid once ``orientation`` is applied (5..8 swap the axes)."""
    return (height, width) if orientation >= 5 else (width, height)


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixel grid [H, W, C] turned as EXIF ``orientation`` (1..8) says it is displayed.

    1: as stored; 2: mirrored left-right; 3: rotated 180; 4: mirrored top-bottom; 5: transposed;
    6: rotated 90 clockwise; 7: transversed; 8: rotated 90 counter-clockwise (as Pillow's exif_transpose).
    """
    if orientation == 2:
        return cv2.flip(image, 1)
    if orientation == 3:
        return cv2.rotate(image, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(image, 0)
    if orientation == 5:
        return cv2.transpose(image)
    if orientation == 6:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.flip(cv2.transpose(image), -1)
    if orientation == 8:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return image


def decode_stored(path: str) -> np.ndarray | None:
    """uint8 [H, W, 3] BGR of the stored pixel grid (orientation not applied), None when OpenCV cannot decode it.

    Grayscale and palette images are expanded, alpha is dropped, CMYK converted and 16-bit samples reduced to
    their high byte by OpenCV's IMREAD_COLOR.
    """
    return cv2.imread(path, _READ_FLAGS)


def read_rgb_image(path: str, orientation: int | None = None) -> np.ndarray:
    """uint8 [H, W, 3] RGB image at ``path`` as displayed (see the module docstring).

    Args:
        path: image file (any format OpenCV decodes; grayscale, palette, RGBA, CMYK and 16-bit become 8-bit RGB).
        orientation: the file's EXIF orientation when already known (from a scan); read from the file when None.
    Raises FileNotFoundError or DatasetError naming the path.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    image = decode_stored(path)
    if image is None:
        raise DatasetError(path, "cannot decode the image (corrupt or unsupported format)")
    if orientation is None:
        orientation = read_orientation(path)
    return cv2.cvtColor(apply_orientation(image, orientation), cv2.COLOR_BGR2RGB)
