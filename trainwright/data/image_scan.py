"""The up-front check of a dataset's image files: each file's displayed size and orientation, or why it is unusable.

Fast by design: Pillow reads only the header (format, size, pixel type, EXIF orientation) and a few bytes at
the end of the file tell whether a JPEG, PNG, GIF, WebP or BMP file is complete. Only a file that fails that
quick test, or whose format or pixel type is unusual, is decoded in full to confirm it (by Pillow, by
OpenCV, the loader's decoder, and for JPEG by finding its end-of-image marker), so a dataset of ordinary
images is checked without decoding any of them. Files are probed by a few threads (the work is mostly I/O).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from trainwright.data.image_io import decode_stored, displayed_size, exif_orientation

__all__ = ["ImageScan", "NOT_FOUND", "probe_image", "scan_image_files"]

NOT_FOUND = "file not found"
_ENDINGS = {"JPEG": b"\xff\xd9", "MPO": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82", "GIF": b"\x3b"}
_USUAL_FORMATS = {"JPEG", "MPO", "PNG", "BMP", "WEBP", "TIFF"}
_USUAL_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
                "I;16", "I;16L", "I;16B", "I;16N"}
_CHUNK = 64  # files per thread task: amortises the pool's overhead on large datasets


@dataclass(frozen=True)
class ImageScan:
    """What scan_image_files found for N files.

    widths, heights (int64 [N]): size as displayed (EXIF orientation applied); 0 for an unusable file.
    orientations (int64 [N]): EXIF orientation 1..8 (1 for an unusable file).
    problems (dict[int, str]): position of each unusable file -> why (NOT_FOUND for a missing one).
    """

    widths: np.ndarray
    heights: np.ndarray
    orientations: np.ndarray
    problems: dict[int, str]


def scan_image_files(paths: list[str], workers: int | None = None) -> ImageScan:
    """Probe every file of ``paths`` (see the module docstring); ``workers`` threads (default: up to 8)."""
    workers = workers or min(8, (os.cpu_count() or 1) + 2)
    chunks = [paths[i:i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    if workers > 1 and len(chunks) > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="image-scan") as pool:
            results = [r for chunk in pool.map(_probe_all, chunks) for r in chunk]
    else:
        results = _probe_all(paths)
    problems = {i: r for i, r in enumerate(results) if isinstance(r, str)}
    sizes = np.array([(1, 0, 0) if isinstance(r, str) else r for r in results], dtype=np.int64).reshape(-1, 3)
    return ImageScan(sizes[:, 1], sizes[:, 2], sizes[:, 0], problems)


def _probe_all(paths: list[str]) -> list[tuple[int, int, int] | str]:
    return [probe_image(path) for path in paths]


def probe_image(path: str) -> tuple[int, int, int] | str:
    """(orientation, width, height) of the image file at ``path`` as displayed, or why it cannot be used."""
    try:
        with open(path, "rb") as handle:
            with Image.open(handle) as image:
                (width, height), fmt, mode = image.size, image.format, image.mode
                orientation = exif_orientation(image)
            complete = _ends_completely(handle, fmt)
    except FileNotFoundError:
        return NOT_FOUND
    except UnidentifiedImageError:
        return "not an image file (format not recognised)"
    except Image.DecompressionBombError as err:
        return f"too large to decode safely ({err})"
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    except Exception as err:  # Pillow's format plugins raise assorted errors on a malformed header
        return f"malformed image header ({type(err).__name__}: {err})"
    if width < 1 or height < 1:
        return f"has no pixels ({width}x{height})"
    if not complete or fmt not in _USUAL_FORMATS or mode not in _USUAL_MODES:
        problem = _decode_problem(path, fmt, mode)
        if problem:
            return problem
    return (orientation, *displayed_size(width, height, orientation))


def _ends_completely(handle, fmt: str | None) -> bool:
    """Whether the file's last bytes (or, for WebP and BMP, its declared size) show it was written completely."""
    size = handle.seek(0, os.SEEK_END)
    ending = _ENDINGS.get(fmt)
    if ending is not None:
        handle.seek(max(0, size - len(ending)))
        return handle.read(len(ending)) == ending
    if fmt in ("WEBP", "BMP"):  # RIFF size at bytes 4..8 counts from byte 8; BMP file size at bytes 2..6
        offset, extra = (4, 8) if fmt == "WEBP" else (2, 0)
        handle.seek(offset)
        return int.from_bytes(handle.read(4), "little") + extra <= size
    return True


def _decode_problem(path: str, fmt: str | None, mode: str) -> str | None:
    """Why a suspicious file cannot be decoded in full, or None when it can (e.g. data after a JPEG's end)."""
    if fmt in ("JPEG", "MPO"):
        with open(path, "rb") as handle:
            if not jpeg_is_complete(handle.read()):
                return "truncated (the JPEG data stops before its end-of-image marker)"
    try:
        with Image.open(path) as image:
            image.load()
    except Exception as err:  # Pillow's decoders raise assorted errors on corrupt data
        return f"cannot be decoded ({type(err).__name__}: {err})"
    if decode_stored(path) is None:
        return f"OpenCV cannot decode it (format {fmt}, pixel type {mode})"
    return None


def jpeg_is_complete(data: bytes) -> bool:
    """Whether JPEG ``data`` has an end-of-image marker after the start of its first scan.

    The segments before the scan (EXIF with its thumbnail, tables) are skipped by their lengths; inside the
    entropy-coded scan a 0xFF byte is never followed by 0xD9, so that pair is the image's end.
    """
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0xDA:  # start of scan
            return data.find(b"\xff\xd9", pos) != -1
        elif 0xD0 <= marker <= 0xD8 or marker == 0x01:  # markers without a length
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return False
